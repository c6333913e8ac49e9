"""The whole production program, planned offline with the policy pack, as `make plan` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from sarkops.errors import ProgramError
from sarkops.plan import PlanResult, run_plan

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def production(production_plan: PlanResult) -> PlanResult:
    """The session's production plan (tests/conftest.py), shared with the other suites that read it."""
    return production_plan


def test_production_plans_without_mandatory_violations(production: PlanResult) -> None:
    assert [(v.policy, v.urn, v.message) for v in production.report.mandatory] == []


def test_production_exports_the_network(production: PlanResult) -> None:
    outputs = production.recording.outputs
    assert outputs["environment"] == "production"
    assert outputs["vpcId"].startswith("vpc-")
    assert len(outputs["appSubnetIds"]) == 3
    assert outputs["stackKeyArn"].startswith("arn:aws:kms:us-east-1:")


def test_every_resource_lives_inside_a_component(production: PlanResult) -> None:
    rec = production.recording
    components = {r.urn for r in rec.resources if not r.custom}
    orphans = [r.name for r in rec.resources if r.custom and r.parent not in components]
    assert orphans == []


def test_stateful_resources_are_protected(production: PlanResult) -> None:
    stateful = {"aws:kms/key:Key", "aws:rds/instance:Instance", "aws:ebs/volume:Volume",
                "aws:secretsmanager/secret:Secret", "aws:elasticache/replicationGroup:ReplicationGroup"}
    unprotected = [r.name for r in production.recording.resources if r.type in stateful and not r.protect]
    assert unprotected == []


def test_a_bad_config_value_stops_the_plan_with_the_key_named() -> None:
    with pytest.raises(ProgramError, match=r"sark-infra:availabilityZoneCount: 1 is not allowed; expected a whole "
                                          r"number from 2 to 4"):
        run_plan(ROOT, "production", overrides=["availabilityZoneCount=1"])


def test_components_use_fixed_sark_type_tokens_and_name_their_children(production: PlanResult) -> None:
    rec = production.recording
    components = {r.urn: r for r in rec.resources if not r.custom}
    assert all(c.type.startswith("sark:") and c.type.count(":") == 2 for c in components.values())
    misnamed = [(r.name, components[r.parent].name) for r in rec.resources
                if r.parent in components and not r.name.startswith(components[r.parent].name + "-")]
    assert misnamed == []


def test_the_canary_rule_admits_only_the_stacks_nat_addresses_by_default(production: PlanResult) -> None:
    # canaryCidrs is empty in the production stack file: only hosts in the VPC (through NAT) may
    # reach a release by its header before it takes traffic.
    rec = production.recording
    nat_ips = sorted(f"{eip.outputs['publicIp']}/32" for eip in rec.by_type("aws:ec2/eip:Eip"))
    assert len(nat_ips) == 3
    (pin,) = [r for r in rec.by_type("aws:lb/listenerRule:ListenerRule") if r.name.endswith("-pin")]
    (source,) = [c["sourceIp"] for c in pin.inputs["conditions"] if "sourceIp" in c]
    assert sorted(source["values"]) == nat_ips


def test_the_placeholders_output_lists_the_example_values(production: PlanResult) -> None:
    placeholders = production.recording.outputs["placeholders"]
    assert len(placeholders) == 8
    assert all(p.endswith("; set before `pulumi up`") for p in placeholders)
