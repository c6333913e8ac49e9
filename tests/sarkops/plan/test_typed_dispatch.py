"""Skipping policies by their declared resource_types gives exactly the engine's report."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pulumi_aws as aws

from sarkops.plan.policy_runner import LoadedPack, evaluate, load_pack
from sarkops.plan.runtime import Recording

ROOT = Path(__file__).resolve().parents[3]


def _insecure() -> None:
    vpc = aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/16")
    aws.ec2.DefaultSecurityGroup("default-sg", vpc_id=vpc.id, ingress=[
        aws.ec2.DefaultSecurityGroupIngressArgs(protocol="-1", from_port=0, to_port=0, self=True)])
    aws.ec2.Subnet("subnet", vpc_id=vpc.id, cidr_block="10.0.0.0/24", map_public_ip_on_launch=True)
    aws.ec2.SecurityGroup("open", vpc_id=vpc.id, description="open", ingress=[
        aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=22, to_port=22, cidr_blocks=["0.0.0.0/0"])])


def _without_hints(pack: LoadedPack) -> LoadedPack:
    policies = []
    for policy in pack.policies:
        clone = copy.copy(policy)
        if hasattr(clone, "resource_types"):
            del clone.resource_types
        policies.append(clone)
    return dataclasses.replace(pack, policies=policies)


def test_typed_dispatch_matches_calling_every_policy(record: Callable[..., Recording]) -> None:
    rec = record(_insecure)
    pack = load_pack(ROOT / "policies")
    assert any(hasattr(p, "resource_types") for p in pack.policies)
    fast = evaluate(rec, [pack])
    slow = evaluate(rec, [_without_hints(pack)])
    key = [(v.policy, v.urn, v.enforcement_level, v.message) for v in fast.violations]
    assert key == [(v.policy, v.urn, v.enforcement_level, v.message) for v in slow.violations]
    assert {"aws-ec2-default-security-group-disallow-rules", "aws-ec2-subnet-disallow-public-ip-on-launch",
            "aws-ec2-security-group-disallow-public-ingress"} <= {v.policy for v in fast.violations}
    assert [(n.policy, n.urn, n.reason) for n in fast.not_applicable] == \
        [(n.policy, n.urn, n.reason) for n in slow.not_applicable]
