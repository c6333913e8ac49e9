"""Security group rules per role (anchors section B: B3, B4, B5, B6).

The firewall matrix (components/security_groups.py) tags every group ``sark:role=<role>``.
These stack rules read every ingress permission in any of its three shapes
(``_security_groups.ingress_rules``) and check it against the role's allow-list, the app
port's one allowed source, the data ports' one allowed source (checklist 3.2: the databases
and the cache accept only the application servers), and the metrics port's exposure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ReportViolation, Severity, StackValidationArgs

from ._base import Anchors, policies_of, stack_rule
from ._props import as_int, as_list, as_map
from ._security_groups import SECURITY_GROUP, Ingress, ingress_rules, role

DEFAULT_ROLE_PORTS: dict[str, list[int]] = {
    "load-balancer": [80, 443],
    "app": [8000, 9090, 22],
    "database": [5432],
    "timescale": [5432, 22],
    "cache": [6379],
    "vpc-endpoints": [443],
}
"""Ingress ports each role may open (the checklist's firewall section, per tier)."""


def _groups_by_id(resources: Sequence[PolicyResource]) -> dict[str, PolicyResource]:
    return {str(r.props["id"]): r for r in resources
            if r.resource_type == SECURITY_GROUP and isinstance(r.props.get("id"), str)}


def source_roles(rule: Ingress, resources: Sequence[PolicyResource]) -> list[str | None]:
    """The sark:role of each security group the permission admits traffic from (None if unknown)."""
    by_id = _groups_by_id(resources)
    declared = rule.declared_by
    referenced = [d for key in ("referencedSecurityGroupId", "sourceSecurityGroupId")
                  for d in declared.property_dependencies.get(key, []) if d.resource_type == SECURITY_GROUP]
    if referenced:
        return [role(group) for group in referenced]
    roles: list[str | None] = []
    for source in rule.source_groups:
        if source == "self":
            roles.append(role(rule.group))
        else:
            roles.append(role(by_id.get(source)))
    return roles


@stack_rule(
    "aws-ec2-security-group-configure-role-ports", Severity.HIGH,
    "Each security group opens only the ports of its sark:role.",
    fix="Remove the rule, or (if the role truly needs the port) add it to the rolePorts config "
        "of this policy and to the firewall matrix in components/security_groups.py.",
    anchors=Anchors(securityhub=["EC2.18"], checklist=["Pre-Deployment 1.1 (firewall)",
                                                       "Post-Deployment 6 (only intended ports open)"]),
    config={"rolePorts": {"type": "object", "default": DEFAULT_ROLE_PORTS,
                          "description": "sark:role -> TCP ports its security group may open."}},
    needs="TODO",
)
def ports_by_role(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """A security group opens only the ports its role needs."""
    allowed_by_role: Mapping[str, Any] = as_map(args.get_config().get("rolePorts"))
    for rule in ingress_rules(args.resources):
        owner = rule.group.name if rule.group is not None else "an unresolved security group"
        group_role = role(rule.group)
        if group_role is None:
            report_violation(f"'{rule.declared_by.name}' opens {rule.ports()} on {owner}, which has no sark:role tag; "
                             "its ports cannot be checked.", rule.declared_by.urn)
            continue
        if group_role not in allowed_by_role:
            report_violation(f"'{rule.declared_by.name}' opens {rule.ports()} on {owner} (sark:role={group_role}), a "
                             "role without a port allow-list in rolePorts.", rule.declared_by.urn)
            continue
        allowed = sorted({p for p in (as_int(v) for v in as_list(allowed_by_role[group_role])) if p is not None})
        span = range(rule.from_port, rule.to_port + 1)
        if rule.protocol != "tcp" or any(port not in allowed for port in span):
            report_violation(f"'{rule.declared_by.name}' opens {rule.ports()} on {owner}; sark:role={group_role} may "
                             f"only open tcp/{', '.join(str(p) for p in allowed)}.", rule.declared_by.urn)


@stack_rule(
    "aws-ec2-security-group-require-load-balancer-source-for-app-port", Severity.HIGH,
    "The app port (8000) is reachable only from the load balancer's security group.",
    fix="Open 8000 on the app group only with referenced_security_group_id = the load-balancer "
        "group; remove CIDR sources.",
    anchors=Anchors(checklist=["Pre-Deployment 3.2 (reverse proxy in front of :8000)"]),
    config={
        "appPort": {"type": "integer", "default": 8000, "description": "Port the app serves on."},
        "appRole": {"type": "string", "default": "app", "description": "sark:role of the app hosts' group."},
        "loadBalancerRole": {"type": "string", "default": "load-balancer",
                             "description": "sark:role of the load balancer's group."},
    },
    needs="TODO",
)
def app_port_only_from_load_balancer(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The app port admits only the load balancer's security group: no CIDR, no other group."""
    config = args.get_config()
    port = as_int(config.get("appPort")) or 8000
    app_role = str(config.get("appRole", "app"))
    lb_role = str(config.get("loadBalancerRole", "load-balancer"))
    for rule in ingress_rules(args.resources):
        if role(rule.group) != app_role or not rule.covers(port):
            continue
        if rule.cidrs:
            report_violation(f"'{rule.declared_by.name}' admits {', '.join(rule.cidrs)} to port {port} of the app "
                             f"hosts; only the {lb_role} security group may reach it.", rule.declared_by.urn)
        others = [r or "an unknown group" for r in source_roles(rule, args.resources) if r != lb_role]
        if others:
            report_violation(f"'{rule.declared_by.name}' admits {', '.join(others)} to port {port} of the app hosts; "
                             f"only the {lb_role} security group may reach it.", rule.declared_by.urn)
        if not rule.cidrs and not rule.source_groups and not rule.declared_by.property_dependencies.get(
                "referencedSecurityGroupId"):
            report_violation(f"'{rule.declared_by.name}' opens port {port} of the app hosts without naming a source; "
                             f"only the {lb_role} security group may reach it.", rule.declared_by.urn)


DEFAULT_DATA_PORTS: dict[str, list[int]] = {"database": [5432], "timescale": [5432], "cache": [6379]}
"""sark:role -> ports that only the app hosts may reach (PostgreSQL, TimescaleDB, Valkey)."""


@stack_rule(
    "aws-ec2-security-group-require-app-source-for-data-ports", Severity.HIGH,
    "Database and cache ports (5432, 6379) are reachable only from the app hosts' security group.",
    fix="Open the data port only with referenced_security_group_id = the app group; remove CIDR "
        "sources and other groups (operators reach the databases through the app hosts or SSM).",
    anchors=Anchors(checkov=["CKV_AWS_277"], securityhub=["EC2.19"],
                    checklist=["Pre-Deployment 3.2 (Restrict database access)",
                               "Pre-Deployment 1.2 (TimescaleDB)"]),
    config={
        "dataPorts": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "integer"}},
                      "default": DEFAULT_DATA_PORTS,
                      "description": "sark:role -> ports only the app hosts may reach."},
        "appRole": {"type": "string", "default": "app", "description": "sark:role of the app hosts' group."},
    },
    needs="TODO",
)
def data_ports_only_from_app(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Database and cache ports admit only the app hosts' security group: no CIDR, no other group."""
    config = args.get_config()
    data_ports: Mapping[str, Any] = as_map(config.get("dataPorts"))
    app_role = str(config.get("appRole", "app"))
    for rule in ingress_rules(args.resources):
        group_role = role(rule.group)
        ports = [p for p in (as_int(v) for v in as_list(data_ports.get(group_role or ""))) if p is not None]
        port = next((p for p in ports if rule.covers(p)), None)
        if port is None:
            continue
        where = rule.group.name if rule.group is not None else "a data group"
        what = f"port {port} of {where} (sark:role={group_role})"
        if rule.cidrs:
            report_violation(f"'{rule.declared_by.name}' admits {', '.join(rule.cidrs)} to {what}; only the "
                             f"{app_role} security group may reach it.", rule.declared_by.urn)
        others = [r or "an unknown group" for r in source_roles(rule, args.resources) if r != app_role]
        if others:
            report_violation(f"'{rule.declared_by.name}' admits {', '.join(others)} to {what}; only the {app_role} "
                             "security group may reach it.", rule.declared_by.urn)
        if not rule.cidrs and not rule.source_groups and not rule.declared_by.property_dependencies.get(
                "referencedSecurityGroupId"):
            report_violation(f"'{rule.declared_by.name}' opens {what} without naming a source; only the {app_role} "
                             "security group may reach it.", rule.declared_by.urn)


@stack_rule(
    "aws-ec2-security-group-disallow-public-metrics-port", Severity.HIGH,
    "The metrics port (9090) is open neither to the internet nor to the load balancer.",
    fix="Open 9090 only to the monitoring CIDRs (config monitoringCidrs) or a monitoring security "
        "group.",
    anchors=Anchors(checklist=["Pre-Deployment 1.1 (metrics port internal only)", "Pre-Deployment 3.3"]),
    config={
        "metricsPort": {"type": "integer", "default": 9090, "description": "The app's metrics port."},
        "loadBalancerRole": {"type": "string", "default": "load-balancer",
                             "description": "sark:role of the load balancer's group."},
    },
    needs="TODO",
)
def metrics_port_internal(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The metrics port is never open to the internet nor to the load balancer."""
    config = args.get_config()
    port = as_int(config.get("metricsPort")) or 9090
    lb_role = str(config.get("loadBalancerRole", "load-balancer"))
    for rule in ingress_rules(args.resources):
        if not rule.covers(port):
            continue
        owner = rule.group.name if rule.group is not None else "an unresolved security group"
        if rule.is_public:
            report_violation(f"'{rule.declared_by.name}' opens metrics port {port} on {owner} to the internet; only "
                             "the monitoring network may scrape it.", rule.declared_by.urn)
        if lb_role in source_roles(rule, args.resources):
            report_violation(f"'{rule.declared_by.name}' lets the {lb_role} security group reach metrics port {port} "
                             f"on {owner}; metrics must not be served through the load balancer.",
                             rule.declared_by.urn)


POLICIES = policies_of(__name__)
