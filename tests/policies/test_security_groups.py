"""Per-role security group rules: the firewall matrix passes, one widened rule fails with the exact message."""

from __future__ import annotations

from typing import Any

import pytest

from sark_policies import security_groups
from tests.policies.helpers import Res, by_name, check_stack, urn

SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
VPC_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"

PORTS = by_name(security_groups.POLICIES, "aws-ec2-security-group-configure-role-ports")
APP_PORT = by_name(security_groups.POLICIES, "aws-ec2-security-group-require-load-balancer-source-for-app-port")
METRICS = by_name(security_groups.POLICIES, "aws-ec2-security-group-disallow-public-metrics-port")

ROLES = ("load-balancer", "app", "database", "timescale", "cache")


def group(role: str | None, ingress: list[dict[str, Any]] | None = None) -> Res:
    tags = {"sark:role": role} if role else {}
    return Res(SG, f"{role or 'untagged'}-sg", {"id": f"sg-{role or 'untagged'}", "tags": tags,
                                                "ingress": ingress or []})


def rule(name: str, target: Res, port: int, *, cidr: str | None = None, source: Res | None = None,
         to_port: int | None = None, protocol: str = "tcp") -> Res:
    props: dict[str, Any] = {"securityGroupId": target.props["id"], "ipProtocol": protocol, "fromPort": port,
                             "toPort": to_port if to_port is not None else port}
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
    assert check_stack(policy, matrix()).violations == []


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

def test_metrics_from_the_internet_fails() -> None:
    resources = matrix()
    resources.append(rule("app-metrics-world", by(resources, "app-sg"), 9090, cidr="0.0.0.0/0"))
    assert check_stack(METRICS, resources).messages == [
        "'app-metrics-world' opens metrics port 9090 on app-sg to the internet; only the monitoring network may "
        "scrape it."]


def test_metrics_from_the_load_balancer_fails() -> None:
    resources = matrix()
    resources.append(rule("app-metrics-lb", by(resources, "app-sg"), 9090, source=by(resources, "load-balancer-sg")))
    assert check_stack(METRICS, resources).messages == [
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
