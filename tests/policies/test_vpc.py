"""Network rules: a compliant fixture, one mutated property, the exact message."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, Severity

from sark_policies import vpc
from tests.policies.helpers import UNKNOWN, Res, by_name, check_resource, check_stack, urn

SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
VPC_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"

DEFAULT_SG = by_name(vpc.POLICIES, "aws-ec2-default-security-group-disallow-rules")
SUBNET = by_name(vpc.POLICIES, "aws-ec2-subnet-disallow-public-ip-on-launch")
FLOW_LOGS = by_name(vpc.POLICIES, "aws-ec2-vpc-enable-flow-logs")


def test_metadata() -> None:
    for policy in vpc.POLICIES:
        assert policy.enforcement_level == EnforcementLevel.MANDATORY
        assert policy.severity in (Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)
        assert policy.remediation_steps
        assert policy.tags, policy.name
    assert "securityhub:EC2.2" in DEFAULT_SG.tags


# --- default security group -----------------------------------------------------------

def test_default_security_group_without_rules_passes() -> None:
    result = check_resource(DEFAULT_SG, vpc.DEFAULT_SECURITY_GROUP, {"vpcId": "vpc-1", "ingress": [], "egress": []})
    assert result.violations == []


def test_default_security_group_with_rules_fails() -> None:
    props = {"vpcId": "vpc-1", "ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}],
             "egress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]}
    result = check_resource(DEFAULT_SG, vpc.DEFAULT_SECURITY_GROUP, props)
    assert result.messages == ["The default security group has 1 ingress and 1 egress rules; it must have none."]


def test_other_types_are_ignored() -> None:
    result = check_resource(DEFAULT_SG, SG, {"ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0}]})
    assert result.violations == []


# --- subnets ----------------------------------------------------------------------------

def test_private_subnet_passes() -> None:
    result = check_resource(SUBNET, vpc.SUBNET, {"mapPublicIpOnLaunch": False, "cidrBlock": "10.0.0.0/20"})
    assert result.violations == []


@pytest.mark.parametrize("value", [True, "true"])
def test_subnet_assigning_public_ips_fails(value: Any) -> None:
    result = check_resource(SUBNET, vpc.SUBNET, {"mapPublicIpOnLaunch": value})
    assert result.messages == [
        "mapPublicIpOnLaunch is true; instances launched here would get a public IPv4 address."]


def test_subnet_assigning_ipv6_fails() -> None:
    result = check_resource(SUBNET, vpc.SUBNET, {"mapPublicIpOnLaunch": False, "assignIpv6AddressOnCreation": True})
    assert result.messages == [
        "assignIpv6AddressOnCreation is true; instances launched here would be reachable over IPv6."]


def test_unknown_value_during_preview_is_reported_like_the_engine() -> None:
    result = check_resource(SUBNET, vpc.SUBNET, {"mapPublicIpOnLaunch": UNKNOWN})
    assert result.violations == []
    assert len(result.advisories) == 1
    assert "can't run policy 'aws-ec2-subnet-disallow-public-ip-on-launch'" in result.advisories[0]
    assert "during preview" in result.advisories[0]


def test_exempted_resource_is_not_applicable_with_its_reason() -> None:
    result = check_resource(SUBNET, vpc.SUBNET, {"mapPublicIpOnLaunch": True}, name="legacy-subnet",
                            config={"exemptions": [{"resource": "legacy-subnet",
                                                    "reason": "vendor appliance needs a public IP until Q3"}]})
    assert result.violations == []
    assert result.not_applicable == ["exempted: vendor appliance needs a public IP until Q3"]


# --- flow logs --------------------------------------------------------------------------

def _vpc_and_log(traffic: str = "ALL", linked: bool = True) -> list[Res]:
    the_vpc = Res(vpc.VPC, "main-vpc", {"id": "vpc-123", "cidrBlock": "10.0.0.0/16"})
    log = Res(vpc.FLOW_LOG, "main-flow-log", {"vpcId": "vpc-123" if linked else "vpc-999", "trafficType": traffic},
              property_dependencies={"vpcId": [the_vpc.urn]} if linked else {})
    return [the_vpc, log]


def test_vpc_with_flow_log_passes() -> None:
    assert check_stack(FLOW_LOGS, _vpc_and_log()).violations == []


def test_flow_log_matched_by_id_without_dependency_passes() -> None:
    resources = _vpc_and_log()
    resources[1].property_dependencies = {}
    assert check_stack(FLOW_LOGS, resources).violations == []


def test_vpc_without_flow_log_fails() -> None:
    result = check_stack(FLOW_LOGS, _vpc_and_log(linked=False))
    assert result.violations == [(urn(vpc.VPC, "main-vpc"), "VPC 'main-vpc' has no flow log.")]


def test_flow_log_of_rejected_traffic_only_fails() -> None:
    result = check_stack(FLOW_LOGS, _vpc_and_log(traffic="REJECT"))
    assert result.messages == [
        "VPC 'main-vpc' has flow logs, but none records ALL traffic (accepted and rejected)."]


def test_flow_log_whose_vpc_id_is_unknown_waits_instead_of_guessing() -> None:
    resources = _vpc_and_log(linked=False)
    resources[1].props = {**resources[1].props, "vpcId": UNKNOWN}
    result = check_stack(FLOW_LOGS, resources)
    assert result.violations == []
    assert [a.split("during preview: ")[1] for a in result.advisories] == [
        "it waits for main-flow-log.vpcId (unknown until the resource that computes it exists); everything else was "
        "checked"]


def test_flow_log_linked_by_dependency_decides_although_ids_are_unknown() -> None:
    """A first preview: neither the VPC's id nor the log's vpcId is known, the dependency is."""
    resources = _vpc_and_log(traffic="REJECT")
    resources[0].props = {**resources[0].props, "id": UNKNOWN}
    resources[1].props = {**resources[1].props, "vpcId": UNKNOWN}
    result = check_stack(FLOW_LOGS, resources)
    assert (result.messages, result.advisories) == (
        ["VPC 'main-vpc' has flow logs, but none records ALL traffic (accepted and rejected)."], [])
