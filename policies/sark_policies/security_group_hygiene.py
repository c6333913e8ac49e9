"""Security group hygiene (anchors B7, B8 and B10): descriptions, internet egress, rule conflicts.

All three are advisory: none opens a port, but each makes the firewall harder to review or
lets a compromised host talk to more of the internet than it needs.

- Descriptions (B8): every group and every rule, in all three shapes, says why it exists.
  Pulumi's default group description "Managed by Pulumi" counts as missing.
- Internet egress (B7): a group reaches 0.0.0.0/0 or ::/0 only on the ports its ``sark:role``
  needs, from the ``allowedPublicEgress`` config. The defaults are what SARK needs: the app
  hosts fetch packages and the release over HTTP(S), call AWS APIs on 443 and forward audit
  events to the Splunk HTTP Event Collector on 8088; the TimescaleDB host needs HTTP(S) for
  packages and AWS APIs. Protocol ``-1`` to the internet is always reported.
- Rule management conflicts (B10, AWSGuard ``security-group-no-rule-management-conflicts``): a
  standalone rule (``aws.ec2.SecurityGroupRule``, ``aws.vpc.SecurityGroupIngressRule`` or
  ``...EgressRule``) added to a group that also declares inline rules of the same direction.
  The provider treats the inline list as the complete set, so each update removes the
  standalone rule and the next one adds it back. Only the same direction conflicts: a group
  that declares no inline egress leaves its egress rules alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, Severity, StackValidationArgs

from ._base import Anchors, policies_of, resource_rule, settings, stack_rule
from ._props import as_int, as_list, as_map
from ._security_groups import (
    SECURITY_GROUP,
    SECURITY_GROUP_RULE,
    STANDALONE_RULE_TYPES,
    VPC_EGRESS_RULE,
    VPC_INGRESS_RULE,
    WORLD,
    direction,
    egress_rules,
    owner,
    role,
)

PULUMI_DEFAULT_DESCRIPTION = "Managed by Pulumi"

DEFAULT_PUBLIC_EGRESS: dict[str, list[int]] = {"app": [80, 443, 8088], "timescale": [80, 443]}
"""sark:role -> TCP ports its group may reach on the internet (see the module docstring)."""


def _block_ports(block: Mapping[str, Any]) -> str:
    protocol = str(block.get("protocol"))
    if protocol in ("-1", "all"):
        return "all traffic"
    low, high = as_int(block.get("fromPort")), as_int(block.get("toPort"))
    return f"{protocol}/{low}" if low == high else f"{protocol}/{low}-{high}"


@resource_rule(
    "aws-ec2-security-group-require-description",
    [SECURITY_GROUP, SECURITY_GROUP_RULE, VPC_INGRESS_RULE, VPC_EGRESS_RULE], Severity.LOW,
    "Security groups and their rules have descriptions.",
    fix="Give the group a description of its purpose (changing it replaces the group, so set it "
        "at creation) and every rule a description of why it exists.",
    anchors=Anchors(compliance=["aws-ec2-securitygroup-missing-description",
                                "aws-ec2-securitygroup-missing-ingress-rule-description",
                                "aws-ec2-securitygroup-missing-egress-rule-description"],
                    checkov=["CKV_AWS_23"], trivy=["AVD-AWS-0099", "AVD-AWS-0124"]),
    level=EnforcementLevel.ADVISORY,
)
def descriptions(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Groups and rules say why they exist."""
    props = args.props
    described = props.get("description")
    if args.resource_type == SECURITY_GROUP:
        if not described:
            report_violation("description is not set; say what the security group is for.", None)
        elif described == PULUMI_DEFAULT_DESCRIPTION:
            report_violation(f"description is '{PULUMI_DEFAULT_DESCRIPTION}' (the provider's default); say what the "
                             "security group is for.", None)
        for way in ("ingress", "egress"):
            for index, block in enumerate(as_map(b) for b in as_list(props.get(way))):
                if not block.get("description"):
                    report_violation(f"{way}[{index}] ({_block_ports(block)}) has no description; say why the rule "
                                     "exists.", None)
    elif not described:
        report_violation("description is not set; say why the rule exists.", None)


def _port_text(ports: list[int]) -> str:
    return "tcp/" + ", ".join(str(p) for p in ports) if ports else "no port"


@stack_rule(
    "aws-ec2-security-group-disallow-unrestricted-egress", Severity.LOW,
    "Security groups reach the internet only on the ports their role needs.",
    fix="Replace all-traffic egress with the ports the hosts need; add a role's ports to "
        "allowedPublicEgress only when the service truly calls out on them (e.g. a SIEM on 8088).",
    anchors=Anchors(checkov=["CKV_AWS_382"], trivy=["AVD-AWS-0104"],
                    checklist=["Pre-Deployment 1.1 (firewall)"]),
    level=EnforcementLevel.ADVISORY,
    config={"allowedPublicEgress": {
        "type": "object", "additionalProperties": {"type": "array", "items": {"type": "integer"}},
        "default": DEFAULT_PUBLIC_EGRESS,
        "description": "sark:role -> TCP ports its security group may reach on 0.0.0.0/0 or ::/0."}},
    needs="the sark:role of the group a standalone egress rule is attached to",
)
def unrestricted_egress(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Groups reach the internet only on the ports their role needs; never with all protocols."""
    allowed_by_role: Mapping[str, Any] = settings(args).map("allowedPublicEgress")
    for rule in egress_rules(args.resources):
        world = sorted(c for c in rule.cidrs if c in WORLD)
        if not world:
            continue
        group_role = role(rule.group)
        where = rule.group.name if rule.group is not None else "an unresolved security group"
        allowed = sorted({p for p in (as_int(v) for v in as_list(allowed_by_role.get(group_role or ""))) if p})
        if rule.protocol == "tcp" and all(p in allowed for p in range(rule.from_port, rule.to_port + 1)):
            continue
        who = f"sark:role={group_role}" if group_role else "a group without a sark:role tag"
        report_violation(f"'{rule.declared_by.name}' lets {where} reach {', '.join(world)} on {rule.ports()}; "
                         f"{who} may reach the internet only on {_port_text(allowed)} (allowedPublicEgress).",
                         rule.declared_by.urn)


@stack_rule(
    "aws-ec2-security-group-disallow-rule-management-conflicts", Severity.LOW,
    "No security group mixes inline rules with standalone rules of the same direction.",
    fix="Move the group's inline ingress/egress blocks to aws.vpc.SecurityGroupIngressRule / "
        "SecurityGroupEgressRule resources (as components/security_groups.py does), or fold the "
        "standalone rule into the inline list.",
    anchors=Anchors(awsguard=["security-group-no-rule-management-conflicts"]),
    level=EnforcementLevel.ADVISORY,
    needs="the inline rules of the group a standalone rule is attached to (securityGroupId)",
)
def rule_management_conflicts(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """No standalone rule is added to a group that declares inline rules of the same direction."""
    for rule in (r for r in args.resources if r.resource_type in STANDALONE_RULE_TYPES):
        way = direction(rule)
        group = owner(rule, args.resources)
        if way is None or group is None or not as_list(group.props.get(way)):
            continue
        report_violation(f"'{rule.name}' adds an {way} rule to security group '{group.name}', which also declares "
                         f"inline {way} rules; the provider removes one on every update. Declare all of the group's "
                         f"{way} rules one way.", rule.urn)


POLICIES = policies_of(__name__)
