"""Security group hygiene: descriptions, internet egress, rule conflicts. Compliant first, then one change."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from sark_policies import security_group_hygiene as hygiene
from tests.policies.helpers import Res, by_name, check_resource, check_stack, urn

SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"

DESCRIPTIONS = by_name(hygiene.POLICIES, "aws-ec2-security-group-require-description")
EGRESS_RULE = by_name(hygiene.POLICIES, "aws-ec2-security-group-disallow-unrestricted-egress")
CONFLICTS = by_name(hygiene.POLICIES, "aws-ec2-security-group-disallow-rule-management-conflicts")


def group(role: str, **props: Any) -> Res:
    return Res(SG, f"{role}-sg", {"id": f"sg-{role}", "description": f"SARK {role}", "tags": {"sark:role": role},
                                  **props})


def egress(name: str, owner: Res, port: int, *, cidr: str = "0.0.0.0/0", protocol: str = "tcp",
           to_port: int | None = None) -> Res:
    return Res(EGRESS, name, {"securityGroupId": owner.props["id"], "ipProtocol": protocol, "fromPort": port,
                              "toPort": port if to_port is None else to_port, "cidrIpv4": cidr,
                              "description": f"{name} out"},
               property_dependencies={"securityGroupId": [owner.urn]})


def matrix() -> list[Res]:
    """The egress of components/security_groups.py: app and TimescaleDB reach the internet on their ports."""
    app, timescale, database = group("app"), group("timescale"), group("database")
    return [
        app, timescale, database,
        egress("app-https", app, 443), egress("app-http", app, 80), egress("app-siem", app, 8088),
        egress("ts-https", timescale, 443), egress("ts-http", timescale, 80),
        egress("app-to-db", app, 5432, cidr="10.40.0.0/16"),
    ]


def test_metadata() -> None:
    assert all(p.enforcement_level == EnforcementLevel.ADVISORY for p in hygiene.POLICIES)
    assert "awsguard:security-group-no-rule-management-conflicts" in CONFLICTS.tags
    assert "checkov:CKV_AWS_382" in EGRESS_RULE.tags


# --- descriptions ------------------------------------------------------------------------------

@pytest.mark.parametrize(("token", "props"), [
    (SG, {"description": "SARK app", "ingress": [{"protocol": "tcp", "fromPort": 443, "toPort": 443,
                                                  "description": "HTTPS"}]}),
    (SG_RULE, {"type": "ingress", "description": "PostgreSQL from the app"}),
    (INGRESS, {"description": "SARK API from the load balancer"}),
    (EGRESS, {"description": "HTTPS out"}),
])
def test_described_groups_and_rules_pass(token: str, props: dict[str, Any]) -> None:
    assert check_resource(DESCRIPTIONS, token, props).violations == []


def test_group_without_description_fails() -> None:
    assert check_resource(DESCRIPTIONS, SG, {"vpcId": "vpc-1"}).messages == [
        "description is not set; say what the security group is for."]


def test_pulumi_default_description_fails() -> None:
    assert check_resource(DESCRIPTIONS, SG, {"description": "Managed by Pulumi"}).messages == [
        "description is 'Managed by Pulumi' (the provider's default); say what the security group is for."]


def test_inline_rule_without_description_fails() -> None:
    props = {"description": "SARK app", "egress": [{"protocol": "-1", "fromPort": 0, "toPort": 0,
                                                    "cidrBlocks": ["0.0.0.0/0"]}],
             "ingress": [{"protocol": "tcp", "fromPort": 8000, "toPort": 8001}]}
    assert check_resource(DESCRIPTIONS, SG, props).messages == [
        "ingress[0] (tcp/8000-8001) has no description; say why the rule exists.",
        "egress[0] (all traffic) has no description; say why the rule exists."]


@pytest.mark.parametrize("token", [SG_RULE, INGRESS, EGRESS])
def test_standalone_rule_without_description_fails(token: str) -> None:
    assert check_resource(DESCRIPTIONS, token, {"fromPort": 443, "toPort": 443}).messages == [
        "description is not set; say why the rule exists."]


# --- internet egress -----------------------------------------------------------------------------

def test_sark_egress_passes() -> None:
    assert check_stack(EGRESS_RULE, matrix()).violations == []


def test_all_traffic_to_the_internet_fails() -> None:
    resources = matrix()
    resources.append(egress("app-all", resources[0], 0, protocol="-1"))
    assert check_stack(EGRESS_RULE, resources).violations == [
        (urn(EGRESS, "app-all"), "'app-all' lets app-sg reach 0.0.0.0/0 on all ports (protocol -1); sark:role=app "
                                 "may reach the internet only on tcp/80, 443, 8088 (allowedPublicEgress).")]


def test_database_reaching_the_internet_fails() -> None:
    resources = matrix()
    resources.append(egress("db-https", resources[2], 443, cidr="::/0"))
    assert check_stack(EGRESS_RULE, resources).messages == [
        "'db-https' lets database-sg reach ::/0 on tcp/443; sark:role=database may reach the internet only on no "
        "port (allowedPublicEgress)."]


def test_inline_egress_port_range_fails() -> None:
    resources = matrix()
    resources[1] = group("timescale", egress=[{"protocol": "tcp", "fromPort": 0, "toPort": 65535,
                                               "cidrBlocks": ["0.0.0.0/0"]}])
    assert check_stack(EGRESS_RULE, resources).messages == [
        "'timescale-sg' lets timescale-sg reach 0.0.0.0/0 on tcp/0-65535; sark:role=timescale may reach the internet "
        "only on tcp/80, 443 (allowedPublicEgress)."]


def test_legacy_egress_rule_of_an_untagged_group_fails() -> None:
    stray = Res(SG, "stray-sg", {"id": "sg-stray", "description": "stray"})
    rule = Res(SG_RULE, "stray-out", {"type": "egress", "securityGroupId": "sg-stray", "protocol": "tcp",
                                      "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]})
    assert check_stack(EGRESS_RULE, [*matrix(), stray, rule]).messages == [
        "'stray-out' lets stray-sg reach 0.0.0.0/0 on tcp/443; a group without a sark:role tag may reach the "
        "internet only on no port (allowedPublicEgress)."]


def test_allowed_egress_comes_from_config() -> None:
    config = {"allowedPublicEgress": {"app": [443], "timescale": [80, 443]}}
    assert check_stack(EGRESS_RULE, matrix(), config=config).messages == [
        "'app-http' lets app-sg reach 0.0.0.0/0 on tcp/80; sark:role=app may reach the internet only on tcp/443 "
        "(allowedPublicEgress).",
        "'app-siem' lets app-sg reach 0.0.0.0/0 on tcp/8088; sark:role=app may reach the internet only on tcp/443 "
        "(allowedPublicEgress)."]


# --- rule management conflicts -------------------------------------------------------------------

def test_standalone_rules_only_pass() -> None:
    assert check_stack(CONFLICTS, matrix()).violations == []


def test_standalone_rule_on_group_with_inline_rules_of_same_direction_fails() -> None:
    resources = matrix()
    resources[0] = group("app", egress=[{"protocol": "tcp", "fromPort": 443, "toPort": 443,
                                         "cidrBlocks": ["0.0.0.0/0"], "description": "HTTPS"}])
    result = check_stack(CONFLICTS, resources)
    assert result.violations[0] == (
        urn(EGRESS, "app-https"),
        "'app-https' adds an egress rule to security group 'app-sg', which also declares inline egress rules; the "
        "provider removes one on every update. Declare all of the group's egress rules one way.")
    assert [m.split("'")[1] for m in result.messages] == ["app-https", "app-http", "app-siem", "app-to-db"]


def test_inline_rules_of_the_other_direction_do_not_conflict() -> None:
    resources = matrix()
    resources[0] = group("app", ingress=[{"protocol": "tcp", "fromPort": 8000, "toPort": 8000,
                                          "securityGroups": ["sg-lb"], "description": "API"}])
    assert check_stack(CONFLICTS, resources).violations == []


def test_legacy_ingress_rule_resolved_by_group_id() -> None:
    app = group("app", ingress=[{"protocol": "tcp", "fromPort": 8000, "toPort": 8000, "description": "API"}])
    rule = Res(SG_RULE, "app-metrics", {"type": "ingress", "securityGroupId": "sg-app", "protocol": "tcp",
                                        "fromPort": 9090, "toPort": 9090, "cidrBlocks": ["10.60.0.0/24"]})
    assert check_stack(CONFLICTS, [app, rule]).messages == [
        "'app-metrics' adds an ingress rule to security group 'app-sg', which also declares inline ingress rules; "
        "the provider removes one on every update. Declare all of the group's ingress rules one way."]
