"""Security group rules (anchors section B: B1 to B6).

What one resource's own inputs decide is a resource rule, so ``pulumi up`` refuses the rule
before it exists: world-open ingress in all three shapes (inline ``ingress``,
``aws.ec2.SecurityGroupRule``, ``aws.vpc.SecurityGroupIngressRule``; every port range,
protocol ``-1``, IPv4 and IPv6) and the metrics port open to the internet.

The load balancer's own 80/443 exception is decided per resource too: the firewall matrix
(components/security_groups.py) tags each rule resource with its group's ``sark:role``, so a
world-open rule is allowed before create only when it says ``sark:role=load-balancer`` itself
(an inline block: when its group says so). ``aws.ec2.SecurityGroupRule`` cannot carry tags
(pulumi-aws ``ec2/securityGroupRule`` has no ``tags`` input, ``vpc/securityGroupIngressRule``
has), so such a rule is never allowed to be world-open: write it as
``aws.vpc.SecurityGroupIngressRule``. The stack rule
``aws-ec2-security-group-rule-require-group-role-tag`` then checks, from the dependency graph,
that every tag tells the truth about the group the rule is attached to.

What needs other resources stays a stack rule, decided from property dependencies (which group
a rule belongs to, which group it admits), which a first preview knows although the groups'
ids are unknown: the role's port allow-list, the app port's and data ports' one allowed
source, and the load balancer reaching the metrics port.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ReportViolation, ResourceValidationArgs, Severity, StackValidationArgs

from ._base import Anchors, policies_of, resource_rule, settings, stack_rule, wait_for
from ._graph import undecided
from ._props import UNKNOWN, as_int, as_list, known
from ._security_groups import (
    INGRESS_TYPES,
    SECURITY_GROUP,
    SECURITY_GROUP_RULE,
    STANDALONE_RULE_TYPES,
    Ingress,
    ingress_rules,
    owner,
    permissions,
    role,
    rule_role,
    tag,
)

DEFAULT_ROLE_PORTS: dict[str, list[int]] = {
    "load-balancer": [80, 443],
    "app": [8000, 9090, 22],
    "database": [5432],
    "timescale": [5432, 22],
    "cache": [6379],
    "vpc-endpoints": [443],
}
"""Ingress ports each role may open (the checklist's firewall section, per tier)."""

DEFAULT_DATA_PORTS: dict[str, list[int]] = {"database": [5432], "timescale": [5432], "cache": [6379]}
"""sark:role -> ports that only the app hosts may reach (PostgreSQL, TimescaleDB, Valkey)."""

_LB_ROLE = {"loadBalancerRole": {"type": "string", "default": "load-balancer",
                                 "description": "sark:role of the load balancer's group."}}
_APP_ROLE = {"appRole": {"type": "string", "default": "app", "description": "sark:role of the app hosts' group."}}
_METRICS_PORT = {"metricsPort": {"type": "integer", "default": 9090, "description": "The app's metrics port."}}


def _ints(values: Any) -> list[int]:
    return [p for p in (as_int(v) for v in as_list(values)) if p is not None]


def _where(label: str) -> str:
    return f"{label} " if label else ""


# --------------------------------------------------------------------------------------
# Resource rules: decided by the resource's own inputs, before it is created
# --------------------------------------------------------------------------------------

@resource_rule(
    "aws-ec2-security-group-disallow-public-ingress", INGRESS_TYPES, Severity.CRITICAL,
    "No security group accepts traffic from 0.0.0.0/0 or ::/0, except the load balancer on its public ports.",
    fix="Restrict the rule's source to a security group or private CIDR. Only the load balancer's rules may be "
        "public, on tcp/80 (redirect) and tcp/443: write them as aws.vpc.SecurityGroupIngressRule tagged "
        "sark:role=load-balancer (the firewall matrix does).",
    anchors=Anchors(compliance=["aws-ec2-securitygroup-disallow-public-internet-ingress"],
                    checkov=["CKV_AWS_24", "CKV_AWS_25", "CKV_AWS_260", "CKV_AWS_277"],
                    trivy=["AVD-AWS-0107"], securityhub=["EC2.13", "EC2.14", "EC2.18", "EC2.19"],
                    checklist=["Pre-Deployment 1.1 (firewall)", "Pre-Deployment 3.2"]),
    config={
        "publicRole": {"type": "string", "default": "load-balancer",
                       "description": "sark:role tag value of the one security group (and its rules) that may be "
                                      "public."},
        "publicPorts": {"type": "array", "items": {"type": "integer"}, "default": [80, 443],
                        "description": "TCP ports that group may open to the internet."},
    },
)
def no_public_ingress(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Nothing is open to 0.0.0.0/0 or ::/0 except the load balancer's public ports.

    Follows the checklist where anchor rules contradict it: the load balancer is meant to be
    public on 443 and on 80 (the 301 redirect), so compliance-policies'
    ``aws-ec2-securitygroup-disallow-public-internet-ingress`` / ``...-disallow-inbound-http-traffic``
    and Checkov CKV_AWS_260 (which all fire on that group) are ported with the load balancer's
    role (``publicRole``) and ports (``publicPorts``) excepted, not as written.
    """
    config = settings(args)
    public_role, allowed = config.text("publicRole"), config.ints("publicPorts")
    claimed = rule_role(args.resource_type, args.props)
    for permission in permissions(args.resource_type, args.props, "ingress"):
        if not permission.is_public:
            continue
        opens = f"{_where(permission.label)}opens {permission.ports()} to {', '.join(permission.world)}"
        if claimed != public_role:
            if args.resource_type == SECURITY_GROUP_RULE:
                why = (f"an aws.ec2.SecurityGroupRule cannot carry the sark:role={public_role} tag, so it may never "
                       "be world-open; write the load balancer's rules as aws.vpc.SecurityGroupIngressRule")
            else:
                who = f"sark:role={claimed}" if claimed else "no sark:role tag"
                what = "this security group" if args.resource_type == SECURITY_GROUP else "this rule"
                why = (f"{what} has {who}; only the load balancer's (sark:role={public_role}) may take traffic "
                       "from the internet")
            report_violation(f"{opens}; {why}.", None)
        elif not permission.only(allowed):
            report_violation(f"{opens}; the load balancer may only be public on tcp/"
                             f"{', '.join(str(p) for p in sorted(allowed))}.", None)


@resource_rule(
    "aws-ec2-security-group-disallow-public-metrics-port", INGRESS_TYPES, Severity.HIGH,
    "The metrics port (9090) is never open to the internet.",
    fix="Open 9090 only to the monitoring CIDRs (config monitoringCidrs) or a monitoring security group.",
    anchors=Anchors(checklist=["Pre-Deployment 1.1 (metrics port internal only)", "Pre-Deployment 3.3"]),
    config=_METRICS_PORT,
)
def metrics_port_not_public(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """No permission covering the metrics port admits 0.0.0.0/0 or ::/0, whatever the group's role."""
    port = settings(args).int("metricsPort")
    for permission in permissions(args.resource_type, args.props, "ingress"):
        if permission.is_public and permission.covers(port):
            report_violation(f"{_where(permission.label)}opens metrics port {port} ({permission.ports()}) to "
                             f"{', '.join(permission.world)}; only the monitoring network may scrape it.", None)


# --------------------------------------------------------------------------------------
# Stack rules: need the group a rule belongs to, or the group it admits
# --------------------------------------------------------------------------------------

def source_roles(rule: Ingress, resources: Sequence[PolicyResource]) -> list[str | None]:
    """The sark:role of each security group the permission admits traffic from (None if not in the stack).

    Resolved through the property dependencies of ``referencedSecurityGroupId`` /
    ``sourceSecurityGroupId`` (known in a first preview); otherwise by id, waiting for an id
    that is not known yet.
    """
    declared = rule.declared_by
    referenced = [d for key in ("referencedSecurityGroupId", "sourceSecurityGroupId")
                  for d in declared.property_dependencies.get(key, []) if d.resource_type == SECURITY_GROUP]
    if referenced:
        return [role(group) for group in referenced]
    by_id = {known(r.props, "id"): r for r in resources if r.resource_type == SECURITY_GROUP}
    roles: list[str | None] = []
    for source in rule.source_groups:
        if source == "self":
            roles.append(role(rule.group))
        elif source is UNKNOWN:
            wait_for(f"the source security group id of {declared.name}")
        else:
            roles.append(role(by_id.get(source)))
    return roles


def _names_no_source(rule: Ingress) -> bool:
    return not rule.cidrs and not rule.source_groups and not rule.declared_by.property_dependencies.get(
        "referencedSecurityGroupId")


def _owner_name(rule: Ingress) -> str:
    return rule.group.name if rule.group is not None else "an unresolved security group"


@stack_rule(
    "aws-ec2-security-group-rule-require-group-role-tag", Severity.HIGH,
    "A security group rule's sark:role tag names the role of the group it is attached to.",
    fix="Tag each aws.vpc.SecurityGroupIngressRule/EgressRule with the sark:role of its security group (the firewall "
        "matrix does), or remove the tag.",
    needs="the security group a rule is attached to (securityGroupId, by property dependency)",
    covered_by=["aws-ec2-security-group-disallow-public-ingress"],
    anchors=Anchors(checklist=["Pre-Deployment 1.1 (firewall)"]),
)
def role_tags_match_groups(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The role a rule claims (and the public-ingress rule trusts before create) is its group's role."""
    for rule in (r for r in args.resources if r.resource_type in STANDALONE_RULE_TYPES):
        claimed = tag(rule.props)
        if claimed is None:
            continue
        group = owner(rule, args.resources)
        if group is None:
            if undecided(rule, "securityGroupId"):
                continue
            report_violation(f"'{rule.name}' is tagged sark:role={claimed}, but its security group is not defined in "
                             "this stack, so the claim cannot be checked.", rule.urn)
        elif role(group) != claimed:
            report_violation(f"'{rule.name}' is tagged sark:role={claimed}, but its security group '{group.name}' is "
                             f"sark:role={role(group) or '(none)'}.", rule.urn)


@stack_rule(
    "aws-ec2-security-group-configure-role-ports", Severity.HIGH,
    "Each security group opens only the ports of its sark:role.",
    fix="Remove the rule, or (if the role truly needs the port) add it to the rolePorts config of this policy and "
        "to the firewall matrix in components/security_groups.py.",
    needs="the sark:role of the group a standalone rule is attached to",
    covered_by=["aws-ec2-security-group-disallow-public-ingress"],
    anchors=Anchors(securityhub=["EC2.18"], checklist=["Pre-Deployment 1.1 (firewall)",
                                                       "Post-Deployment 6 (only intended ports open)"]),
    config={"rolePorts": {"type": "object", "default": DEFAULT_ROLE_PORTS,
                          "description": "sark:role -> TCP ports its security group may open."}},
)
def ports_by_role(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """A security group opens only the ports its role needs."""
    allowed_by_role: Mapping[str, Any] = settings(args).map("rolePorts")
    for rule in ingress_rules(args.resources):
        owner_name, group_role = _owner_name(rule), role(rule.group)
        if group_role is None:
            if rule.group is None and undecided(rule.declared_by, "securityGroupId"):
                continue
            report_violation(f"'{rule.declared_by.name}' opens {rule.ports()} on {owner_name}, which has no sark:role "
                             "tag; its ports cannot be checked.", rule.declared_by.urn)
            continue
        if group_role not in allowed_by_role:
            report_violation(f"'{rule.declared_by.name}' opens {rule.ports()} on {owner_name} "
                             f"(sark:role={group_role}), a role without a port allow-list in rolePorts.",
                             rule.declared_by.urn)
            continue
        allowed = sorted(set(_ints(allowed_by_role[group_role])))
        if not rule.permission.only(allowed):
            report_violation(f"'{rule.declared_by.name}' opens {rule.ports()} on {owner_name}; sark:role={group_role} "
                             f"may only open tcp/{', '.join(str(p) for p in allowed)}.", rule.declared_by.urn)


@stack_rule(
    "aws-ec2-security-group-require-load-balancer-source-for-app-port", Severity.HIGH,
    "The app port (8000) is reachable only from the load balancer's security group.",
    fix="Open 8000 on the app group only with referenced_security_group_id = the load-balancer group; remove CIDR "
        "sources.",
    needs="the roles of the group a rule opens and of the group it admits (property dependencies)",
    covered_by=["aws-ec2-security-group-disallow-public-ingress"],
    anchors=Anchors(checklist=["Pre-Deployment 3.2 (reverse proxy in front of :8000)"]),
    config={"appPort": {"type": "integer", "default": 8000, "description": "Port the app serves on."},
            **_APP_ROLE, **_LB_ROLE},
)
def app_port_only_from_load_balancer(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The app port admits only the load balancer's security group: no CIDR, no other group."""
    config = settings(args)
    port, app_role, lb_role = config.int("appPort"), config.text("appRole"), config.text("loadBalancerRole")
    for rule in ingress_rules(args.resources):
        if role(rule.group) != app_role or not rule.covers(port):
            continue
        name, urn = rule.declared_by.name, rule.declared_by.urn
        if rule.cidrs:
            report_violation(f"'{name}' admits {', '.join(map(str, rule.cidrs))} to port {port} of the app hosts; "
                             f"only the {lb_role} security group may reach it.", urn)
        others = [r or "an unknown group" for r in source_roles(rule, args.resources) if r != lb_role]
        if others:
            report_violation(f"'{name}' admits {', '.join(others)} to port {port} of the app hosts; only the {lb_role} "
                             "security group may reach it.", urn)
        if _names_no_source(rule):
            report_violation(f"'{name}' opens port {port} of the app hosts without naming a source; only the "
                             f"{lb_role} security group may reach it.", urn)


@stack_rule(
    "aws-ec2-security-group-require-app-source-for-data-ports", Severity.HIGH,
    "Database and cache ports (5432, 6379) are reachable only from the app hosts' security group.",
    fix="Open the data port only with referenced_security_group_id = the app group; remove CIDR sources and other "
        "groups (operators reach the databases through the app hosts or SSM).",
    needs="the roles of the group a rule opens and of the group it admits (property dependencies)",
    covered_by=["aws-ec2-security-group-disallow-public-ingress"],
    anchors=Anchors(checkov=["CKV_AWS_277"], securityhub=["EC2.19"],
                    checklist=["Pre-Deployment 3.2 (Restrict database access)", "Pre-Deployment 1.2 (TimescaleDB)"]),
    config={"dataPorts": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "integer"}},
                          "default": DEFAULT_DATA_PORTS,
                          "description": "sark:role -> ports only the app hosts may reach."},
            **_APP_ROLE},
)
def data_ports_only_from_app(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Database and cache ports admit only the app hosts' security group: no CIDR, no other group."""
    config = settings(args)
    data_ports, app_role = config.map("dataPorts"), config.text("appRole")
    for rule in ingress_rules(args.resources):
        group_role = role(rule.group)
        port = next((p for p in _ints(data_ports.get(group_role or "")) if rule.covers(p)), None)
        if port is None:
            continue
        where = rule.group.name if rule.group is not None else "a data group"
        what = f"port {port} of {where} (sark:role={group_role})"
        name, urn = rule.declared_by.name, rule.declared_by.urn
        if rule.cidrs:
            report_violation(f"'{name}' admits {', '.join(map(str, rule.cidrs))} to {what}; only the {app_role} "
                             "security group may reach it.", urn)
        others = [r or "an unknown group" for r in source_roles(rule, args.resources) if r != app_role]
        if others:
            report_violation(f"'{name}' admits {', '.join(others)} to {what}; only the {app_role} security group may "
                             "reach it.", urn)
        if _names_no_source(rule):
            report_violation(f"'{name}' opens {what} without naming a source; only the {app_role} security group may "
                             "reach it.", urn)


@stack_rule(
    "aws-ec2-security-group-disallow-load-balancer-source-for-metrics-port", Severity.HIGH,
    "The metrics port (9090) is not reachable from the load balancer's security group.",
    fix="Remove the rule admitting the load balancer's group to 9090; metrics are scraped from the monitoring "
        "network only.",
    needs="the role of the group a rule admits (referencedSecurityGroupId, by property dependency)",
    covered_by=["aws-ec2-security-group-disallow-public-metrics-port"],
    anchors=Anchors(checklist=["Pre-Deployment 1.1 (metrics port internal only)", "Pre-Deployment 3.3"]),
    config={**_METRICS_PORT, **_LB_ROLE},
)
def metrics_port_not_from_load_balancer(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Metrics are never served through the load balancer's group."""
    config = settings(args)
    port, lb_role = config.int("metricsPort"), config.text("loadBalancerRole")
    for rule in ingress_rules(args.resources):
        if rule.covers(port) and lb_role in source_roles(rule, args.resources):
            report_violation(f"'{rule.declared_by.name}' lets the {lb_role} security group reach metrics port {port} "
                             f"on {_owner_name(rule)}; metrics must not be served through the load balancer.",
                             rule.declared_by.urn)


POLICIES = policies_of(__name__)
