"""Per-role security group rules: the firewall matrix passes, one widened rule fails with the exact message."""

from __future__ import annotations

from typing import Any

import pytest

from sark_policies import security_groups
from tests.policies.helpers import UNKNOWN, Res, by_name, check_each, check_resource, check_stack, urn

SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
VPC_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"

PORTS = by_name(security_groups.POLICIES, "aws-ec2-security-group-configure-role-ports")
APP_PORT = by_name(security_groups.POLICIES, "aws-ec2-security-group-require-load-balancer-source-for-app-port")
METRICS = by_name(security_groups.POLICIES, "aws-ec2-security-group-disallow-public-metrics-port")
METRICS_FROM_LB = by_name(security_groups.POLICIES,
                          "aws-ec2-security-group-disallow-load-balancer-source-for-metrics-port")
PUBLIC = by_name(security_groups.POLICIES, "aws-ec2-security-group-disallow-public-ingress")
ROLE_TAG = by_name(security_groups.POLICIES, "aws-ec2-security-group-rule-require-group-role-tag")

ROLES = ("load-balancer", "app", "database", "timescale", "cache")


def group(role: str | None, ingress: list[dict[str, Any]] | None = None) -> Res:
    tags = {"sark:role": role} if role else {}
    return Res(SG, f"{role or 'untagged'}-sg", {"id": f"sg-{role or 'untagged'}", "tags": tags,
                                                "ingress": ingress or []})


def rule(name: str, target: Res, port: int, *, cidr: str | None = None, source: Res | None = None,
         to_port: int | None = None, protocol: str = "tcp") -> Res:
    props: dict[str, Any] = {"securityGroupId": target.props["id"], "ipProtocol": protocol, "fromPort": port,
                             "toPort": to_port if to_port is not None else port,
                             "tags": {"sark:role": target.props["tags"].get("sark:role")}}
    deps: dict[str, list[str]] = {"securityGroupId": [target.urn]}
    if cidr:
        props["cidrIpv4"] = cidr
    if source is not None:
        props["referencedSecurityGroupId"] = source.props["id"]
        deps["referencedSecurityGroupId"] = [source.urn]
    return Res(VPC_RULE, name, props, property_dependencies=deps)


def matrix() -> list[Res]:
    """The firewall matrix of components/security_groups.py."""
    g = {role: group(role) for role in ROLES}
    return [
        *g.values(),
        rule("lb-https", g["load-balancer"], 443, cidr="0.0.0.0/0"),
        rule("lb-http", g["load-balancer"], 80, cidr="0.0.0.0/0"),
        rule("app-from-lb", g["app"], 8000, source=g["load-balancer"]),
        rule("app-metrics", g["app"], 9090, cidr="10.60.0.0/24"),
        rule("app-ssh", g["app"], 22, cidr="10.99.0.0/24"),
        rule("db-from-app", g["database"], 5432, source=g["app"]),
        rule("ts-from-app", g["timescale"], 5432, source=g["app"]),
        rule("ts-ssh", g["timescale"], 22, cidr="10.99.0.0/24"),
        rule("cache-from-app", g["cache"], 6379, source=g["app"]),
    ]


def by(resources: list[Res], name: str) -> Res:
    return next(r for r in resources if r.name == name)


@pytest.mark.parametrize("policy", security_groups.POLICIES, ids=lambda p: p.name)
def test_firewall_matrix_passes(policy: Any) -> None:
    result = check_each(policy, matrix())
    assert (result.violations, result.advisories) == ([], [])


def first_preview(resources: list[Res]) -> list[Res]:
    """As a first preview sends them: every group id, and every id a rule took from a group, unknown."""
    for resource in resources:
        props = dict(resource.props)
        for key in ("id", "securityGroupId", "referencedSecurityGroupId"):
            if key in props:
                props[key] = UNKNOWN
        resource.props = props
    return resources


@pytest.mark.parametrize("policy", security_groups.POLICIES, ids=lambda p: p.name)
def test_firewall_matrix_passes_in_a_first_preview(policy: Any) -> None:
    result = check_each(policy, first_preview(matrix()))
    assert (result.violations, result.advisories) == ([], [])


# --- ports by role -------------------------------------------------------------------------

def test_database_opening_ssh_fails() -> None:
    resources = matrix()
    resources.append(rule("db-ssh", by(resources, "database-sg"), 22, cidr="10.99.0.0/24"))
    assert check_stack(PORTS, resources).violations == [
        (urn(VPC_RULE, "db-ssh"), "'db-ssh' opens tcp/22 on database-sg; sark:role=database may only open tcp/5432.")]


def test_port_range_covering_a_forbidden_port_fails() -> None:
    resources = matrix()
    resources.append(rule("cache-range", by(resources, "cache-sg"), 6379, to_port=6380, source=by(resources, "app-sg")))
    assert check_stack(PORTS, resources).messages == [
        "'cache-range' opens tcp/6379-6380 on cache-sg; sark:role=cache may only open tcp/6379."]


def test_inline_all_protocols_fails() -> None:
    resources = matrix()
    resources[0] = group("load-balancer", [{"protocol": "-1", "fromPort": 0, "toPort": 0,
                                            "cidrBlocks": ["10.0.0.0/8"]}])
    assert check_stack(PORTS, resources).messages == [
        "'load-balancer-sg' opens all ports (protocol -1) on load-balancer-sg; sark:role=load-balancer may only "
        "open tcp/80, 443."]


def test_legacy_rule_resource_is_checked() -> None:
    resources = matrix()
    cache = by(resources, "cache-sg")
    resources.append(Res(SG_RULE, "cache-memcached", {"type": "ingress", "securityGroupId": "sg-cache",
                                                      "protocol": "tcp", "fromPort": 11211, "toPort": 11211,
                                                      "cidrBlocks": ["10.40.0.0/16"]},
                         property_dependencies={"securityGroupId": [cache.urn]}))
    assert check_stack(PORTS, resources).messages == [
        "'cache-memcached' opens tcp/11211 on cache-sg; sark:role=cache may only open tcp/6379."]


def test_untagged_group_fails() -> None:
    resources = matrix()
    stray = group(None)
    resources += [stray, rule("stray-https", stray, 443, cidr="10.0.0.0/8")]
    assert check_stack(PORTS, resources).messages == [
        "'stray-https' opens tcp/443 on untagged-sg, which has no sark:role tag; its ports cannot be checked."]


def test_unknown_role_fails_until_configured() -> None:
    resources = matrix()
    bastion = group("bastion")
    resources += [bastion, rule("bastion-ssh", bastion, 22, cidr="10.99.0.0/24")]
    assert check_stack(PORTS, resources).messages == [
        "'bastion-ssh' opens tcp/22 on bastion-sg (sark:role=bastion), a role without a port allow-list in "
        "rolePorts."]
    config = {"rolePorts": {**security_groups.DEFAULT_ROLE_PORTS, "bastion": [22]}}
    assert check_stack(PORTS, resources, config=config).violations == []


# --- app port --------------------------------------------------------------------------------

def test_app_port_from_a_cidr_fails() -> None:
    resources = matrix()
    resources.append(rule("app-from-office", by(resources, "app-sg"), 8000, cidr="10.99.0.0/24"))
    assert check_stack(APP_PORT, resources).violations == [
        (urn(VPC_RULE, "app-from-office"), "'app-from-office' admits 10.99.0.0/24 to port 8000 of the app hosts; only "
                                           "the load-balancer security group may reach it.")]


def test_app_port_from_another_group_fails() -> None:
    resources = matrix()
    resources.append(rule("app-from-cache", by(resources, "app-sg"), 8000, source=by(resources, "cache-sg")))
    assert check_stack(APP_PORT, resources).messages == [
        "'app-from-cache' admits cache to port 8000 of the app hosts; only the load-balancer security group may "
        "reach it."]


def test_app_port_source_resolved_by_id_without_dependency() -> None:
    resources = matrix()
    widened = rule("app-from-db", by(resources, "app-sg"), 7000, to_port=9000, source=by(resources, "database-sg"))
    widened.property_dependencies = {"securityGroupId": widened.property_dependencies["securityGroupId"]}
    resources.append(widened)
    assert check_stack(APP_PORT, resources).messages == [
        "'app-from-db' admits database to port 8000 of the app hosts; only the load-balancer security group may "
        "reach it."]


# --- metrics port ----------------------------------------------------------------------------

def test_metrics_from_the_internet_fails_before_create() -> None:
    world = rule("app-metrics-world", group("app"), 9090, cidr="0.0.0.0/0")
    result = check_resource(METRICS, VPC_RULE, {**world.props, "securityGroupId": UNKNOWN}, name=world.name)
    assert result.violations == [(world.urn, "opens metrics port 9090 (tcp/9090) to 0.0.0.0/0; only the monitoring "
                                              "network may scrape it.")]


def test_metrics_on_the_load_balancer_group_is_still_refused() -> None:
    lb_all = rule("lb-all", group("load-balancer"), 0, to_port=65535, cidr="0.0.0.0/0")
    assert check_resource(METRICS, VPC_RULE, lb_all.props).messages == [
        "opens metrics port 9090 (tcp/0-65535) to 0.0.0.0/0; only the monitoring network may scrape it."]


def test_metrics_from_the_load_balancer_fails() -> None:
    resources = matrix()
    resources.append(rule("app-metrics-lb", by(resources, "app-sg"), 9090, source=by(resources, "load-balancer-sg")))
    assert check_stack(METRICS_FROM_LB, first_preview(resources)).messages == [
        "'app-metrics-lb' lets the load-balancer security group reach metrics port 9090 on app-sg; metrics must not "
        "be served through the load balancer."]


# --- data ports ------------------------------------------------------------------------------

DATA = by_name(security_groups.POLICIES, "aws-ec2-security-group-require-app-source-for-data-ports")


def test_database_port_from_a_cidr_fails() -> None:
    resources = matrix()
    resources.append(rule("db-from-vpc", by(resources, "database-sg"), 5432, cidr="10.40.0.0/16"))
    assert check_stack(DATA, resources).violations == [
        (urn(VPC_RULE, "db-from-vpc"), "'db-from-vpc' admits 10.40.0.0/16 to port 5432 of database-sg "
                                       "(sark:role=database); only the app security group may reach it.")]


def test_timescale_port_from_the_load_balancer_fails() -> None:
    resources = matrix()
    resources.append(rule("ts-from-lb", by(resources, "timescale-sg"), 5432, source=by(resources, "load-balancer-sg")))
    assert check_stack(DATA, resources).messages == [
        "'ts-from-lb' admits load-balancer to port 5432 of timescale-sg (sark:role=timescale); only the app "
        "security group may reach it."]


def test_cache_port_opened_by_a_range_without_source_fails() -> None:
    resources = matrix()
    resources.append(rule("cache-range", by(resources, "cache-sg"), 6000, to_port=7000))
    assert check_stack(DATA, resources).messages == [
        "'cache-range' opens port 6379 of cache-sg (sark:role=cache) without naming a source; only the app "
        "security group may reach it."]


def test_timescale_ssh_from_admin_cidr_is_not_a_data_port() -> None:
    resources = matrix()
    assert any(r.name == "ts-ssh" for r in resources)
    assert check_stack(DATA, resources).violations == []


def test_data_ports_come_from_config() -> None:
    resources = matrix()
    resources.append(rule("db-from-vpc", by(resources, "database-sg"), 5432, cidr="10.40.0.0/16"))
    assert check_stack(DATA, resources, config={"dataPorts": {"cache": [6379]}}).violations == []


# --- world-open ingress, decided on each resource before create --------------------------------

def _public(resource: Res, **overrides: Any) -> list[str]:
    return check_resource(PUBLIC, resource.type, {**resource.props, **overrides}, name=resource.name).messages


def test_load_balancer_rules_tagged_with_their_role_may_be_public_on_80_and_443() -> None:
    lb = group("load-balancer")
    assert _public(rule("lb-https", lb, 443, cidr="0.0.0.0/0"), securityGroupId=UNKNOWN) == []
    assert _public(rule("lb-http6", lb, 80), cidrIpv6="::/0", securityGroupId=UNKNOWN) == []


def test_ssh_from_the_internet_on_a_group_not_created_yet_fails() -> None:
    ssh = rule("app-ssh-world", group("app"), 22, cidr="0.0.0.0/0")
    assert _public(ssh, securityGroupId=UNKNOWN) == [
        "opens tcp/22 to 0.0.0.0/0; this rule has sark:role=app; only the load balancer's (sark:role=load-balancer) "
        "may take traffic from the internet."]


def test_untagged_rule_may_not_be_public() -> None:
    untagged = rule("endpoints-https", group("vpc-endpoints"), 443, cidr="0.0.0.0/0")
    assert _public(untagged, tags={}) == [
        "opens tcp/443 to 0.0.0.0/0; this rule has no sark:role tag; only the load balancer's "
        "(sark:role=load-balancer) may take traffic from the internet."]


def test_load_balancer_rule_with_protocol_all_fails() -> None:
    lb_all = rule("lb-all", group("load-balancer"), 443, cidr="0.0.0.0/0", protocol="-1")
    assert _public(lb_all) == [
        "opens all ports (protocol -1) to 0.0.0.0/0; the load balancer may only be public on tcp/80, 443."]


def test_load_balancer_port_range_from_ipv6_fails_and_ports_come_from_config() -> None:
    wide = rule("lb-wide", group("load-balancer"), 80, to_port=8080)
    assert _public(wide, cidrIpv6="::/0") == [
        "opens tcp/80-8080 to ::/0; the load balancer may only be public on tcp/80, 443."]
    http = rule("lb-http", group("load-balancer"), 80, cidr="0.0.0.0/0")
    assert check_resource(PUBLIC, VPC_RULE, http.props, config={"publicPorts": [443]}).messages == [
        "opens tcp/80 to 0.0.0.0/0; the load balancer may only be public on tcp/443."]


def test_inline_world_open_ssh_on_app_group_fails() -> None:
    app = group("app", [{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["10.0.0.0/8"]},
                        {"protocol": "tcp", "fromPort": 22, "toPort": 22, "ipv6CidrBlocks": ["::/0"]}])
    assert _public(app, id=UNKNOWN) == [
        "ingress[1] opens tcp/22 to ::/0; this security group has sark:role=app; only the load balancer's "
        "(sark:role=load-balancer) may take traffic from the internet."]


def test_inline_public_ports_on_the_load_balancer_group_pass() -> None:
    lb = group("load-balancer", [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"],
                                  "ipv6CidrBlocks": ["::/0"]}])
    assert _public(lb) == []


def test_legacy_rule_resource_can_never_be_public() -> None:
    legacy = Res(SG_RULE, "lb-https-legacy", {"type": "ingress", "securityGroupId": UNKNOWN, "protocol": "tcp",
                                              "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]})
    assert _public(legacy) == [
        "opens tcp/443 to 0.0.0.0/0; an aws.ec2.SecurityGroupRule cannot carry the sark:role=load-balancer tag, so "
        "it may never be world-open; write the load balancer's rules as aws.vpc.SecurityGroupIngressRule."]


def test_world_open_exemption_is_reported_not_applicable() -> None:
    ssh = rule("app-ssh-world", group("app"), 22, cidr="0.0.0.0/0")
    exempt = {"exemptions": [{"resource": "app-ssh-world", "reason": "break-glass bastion during migration"}]}
    result = check_resource(PUBLIC, VPC_RULE, ssh.props, name=ssh.name, config=exempt)
    assert (result.violations, result.not_applicable) == ([], ["exempted: break-glass bastion during migration"])


# --- the role tags tell the truth ------------------------------------------------------------

def test_rule_claiming_the_load_balancer_role_on_another_group_fails() -> None:
    resources = matrix()
    liar = rule("app-https-world", by(resources, "app-sg"), 443, cidr="0.0.0.0/0")
    liar.props = {**liar.props, "tags": {"sark:role": "load-balancer"}}
    assert _public(liar, securityGroupId=UNKNOWN) == []  # before create, the tag is trusted ...
    result = check_stack(ROLE_TAG, first_preview([*resources, liar]))  # ... and checked from the graph
    assert (result.violations, result.advisories) == ([(liar.urn, (
        "'app-https-world' is tagged sark:role=load-balancer, but its security group 'app-sg' is sark:role=app."))], [])


def test_rule_tagged_for_a_group_outside_the_stack_fails() -> None:
    outside = Res(VPC_RULE, "lb-elsewhere", {"securityGroupId": "sg-0abc", "ipProtocol": "tcp", "fromPort": 443,
                                             "toPort": 443, "cidrIpv4": "0.0.0.0/0",
                                             "tags": {"sark:role": "load-balancer"}})
    assert check_stack(ROLE_TAG, [*matrix(), outside]).messages == [
        "'lb-elsewhere' is tagged sark:role=load-balancer, but its security group is not defined in this stack, so "
        "the claim cannot be checked."]


def test_rule_whose_group_id_is_unknown_without_dependency_waits() -> None:
    orphan = Res(VPC_RULE, "orphan", {"securityGroupId": UNKNOWN, "ipProtocol": "tcp", "fromPort": 443,
                                      "toPort": 443, "cidrIpv4": "0.0.0.0/0", "tags": {"sark:role": "load-balancer"}})
    result = check_stack(ROLE_TAG, [*matrix(), orphan])
    assert result.violations == []
    assert [a.split("during preview: ")[1] for a in result.advisories] == [
        "it waits for orphan.securityGroupId (unknown until the resource that computes it exists); everything else "
        "was checked"]


def test_data_port_from_a_cidr_is_caught_in_a_first_preview() -> None:
    resources = matrix()
    resources.append(rule("db-from-vpc", by(resources, "database-sg"), 5432, cidr="10.40.0.0/16"))
    result = check_stack(DATA, first_preview(resources))
    assert (result.messages, result.advisories) == ([
        "'db-from-vpc' admits 10.40.0.0/16 to port 5432 of database-sg (sark:role=database); only the app security "
        "group may reach it."], [])
