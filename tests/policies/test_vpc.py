"""Network rules: a compliant fixture, one mutated property, the exact message."""

from __future__ import annotations

import copy
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
PUBLIC_INGRESS = by_name(vpc.POLICIES, "aws-ec2-security-group-disallow-public-ingress")


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


# --- public ingress ---------------------------------------------------------------------

def _lb_group(ingress: list[dict[str, Any]] | None = None) -> Res:
    return Res(SG, "alb-sg", {"id": "sg-alb", "tags": {"sark:role": "load-balancer"}, "ingress": ingress or []})


def _app_group(ingress: list[dict[str, Any]] | None = None) -> Res:
    return Res(SG, "app-sg", {"id": "sg-app", "tags": {"sark:role": "app"}, "ingress": ingress or []})


def _compliant() -> list[Res]:
    lb = _lb_group([{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"],
                     "ipv6CidrBlocks": ["::/0"]}])
    app = _app_group()
    lb_http = Res(VPC_RULE, "alb-http", {"securityGroupId": "sg-alb", "ipProtocol": "tcp", "fromPort": 80,
                                         "toPort": 80, "cidrIpv4": "0.0.0.0/0"},
                  property_dependencies={"securityGroupId": [lb.urn]})
    app_from_lb = Res(VPC_RULE, "app-8000", {"securityGroupId": "sg-app", "ipProtocol": "tcp", "fromPort": 8000,
                                             "toPort": 8000, "referencedSecurityGroupId": "sg-alb"},
                      property_dependencies={"securityGroupId": [app.urn]})
    return [lb, app, lb_http, app_from_lb]


def test_load_balancer_public_on_80_and_443_passes() -> None:
    assert check_stack(PUBLIC_INGRESS, _compliant()).violations == []


def test_inline_world_open_ssh_on_app_group_fails() -> None:
    resources = _compliant()
    resources[1] = _app_group([{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}])
    result = check_stack(PUBLIC_INGRESS, resources)
    assert result.violations == [(urn(SG, "app-sg"),
                                   "'app-sg' opens tcp/22 on app-sg to 0.0.0.0/0; only the security group tagged "
                                   "sark:role=load-balancer may take traffic from the internet.")]


def test_standalone_rule_with_protocol_all_from_ipv6_world_fails() -> None:
    resources = _compliant()
    app = resources[1]
    resources.append(Res(SG_RULE, "app-all", {"type": "ingress", "securityGroupId": "sg-app", "protocol": "-1",
                                              "fromPort": 0, "toPort": 0, "ipv6CidrBlocks": ["::/0"]},
                         property_dependencies={"securityGroupId": [app.urn]}))
    result = check_stack(PUBLIC_INGRESS, resources)
    assert result.messages == [
        "'app-all' opens all ports (protocol -1) on app-sg to ::/0; only the security group tagged "
        "sark:role=load-balancer may take traffic from the internet."]


def test_standalone_rule_resolved_by_group_id_without_dependency() -> None:
    resources = _compliant()
    resources.append(Res(VPC_RULE, "app-pg", {"securityGroupId": "sg-app", "ipProtocol": "tcp", "fromPort": 5400,
                                              "toPort": 5500, "cidrIpv4": "0.0.0.0/0"}))
    result = check_stack(PUBLIC_INGRESS, resources)
    assert result.messages == [
        "'app-pg' opens tcp/5400-5500 on app-sg to 0.0.0.0/0; only the security group tagged "
        "sark:role=load-balancer may take traffic from the internet."]


def test_load_balancer_public_on_other_port_range_fails() -> None:
    resources = _compliant()
    resources[2] = Res(VPC_RULE, "alb-http", {"securityGroupId": "sg-alb", "ipProtocol": "tcp", "fromPort": 80,
                                              "toPort": 8080, "cidrIpv4": "0.0.0.0/0"},
                       property_dependencies={"securityGroupId": [resources[0].urn]})
    result = check_stack(PUBLIC_INGRESS, resources)
    assert result.messages == [
        "'alb-http' opens tcp/80-8080 on alb-sg to 0.0.0.0/0; the load balancer may only be public on tcp/80, 443."]


def test_public_ports_come_from_config() -> None:
    result = check_stack(PUBLIC_INGRESS, _compliant(), config={"publicPorts": [443]})
    assert result.messages == [
        "'alb-http' opens tcp/80 on alb-sg to 0.0.0.0/0; the load balancer may only be public on tcp/443."]


def test_private_cidr_is_not_public() -> None:
    resources = _compliant()
    resources[1] = _app_group([{"protocol": "tcp", "fromPort": 9090, "toPort": 9090, "cidrBlocks": ["10.60.0.0/24"]}])
    assert check_stack(PUBLIC_INGRESS, resources).violations == []


def test_stack_exemption_drops_only_that_resource() -> None:
    resources = copy.deepcopy(_compliant())
    resources[1] = _app_group([{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}])
    exempt = {"exemptions": [{"resource": "app-sg", "reason": "break-glass bastion during migration"}]}
    assert check_stack(PUBLIC_INGRESS, resources, config=exempt).violations == []
