"""Auto Scaling group rules (anchors A1 and C9: Security Hub AutoScaling.1 and AutoScaling.3).

Both are stack rules because what they check lives on other resources:

- a group that serves behind a load balancer must replace hosts the load balancer finds
  unhealthy (``healthCheckType: ELB``), or the checklist's ``/health`` check (Deployment 1.2)
  only takes hosts out of rotation and the group never replaces them. The load balancer may be
  attached on the group itself (``targetGroupArns``, ``loadBalancers``, ``trafficSources``) or
  through ``aws.autoscaling.Attachment`` / ``aws.autoscaling.TrafficSourceAttachment``;
- the launch template (or legacy launch configuration) a group launches from must require
  IMDSv2. The EC2 rules check every template the stack defines; this rule also catches a group
  launching from a template or configuration the stack does not define, which no rule could
  check, and reports it rather than assuming it is fine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ReportViolation, Severity, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

from ._base import Anchors, policies_of, stack_rule
from ._props import as_list, as_map, first

GROUP = "aws:autoscaling/group:Group"
ATTACHMENT = "aws:autoscaling/attachment:Attachment"
TRAFFIC_SOURCE_ATTACHMENT = "aws:autoscaling/trafficSourceAttachment:TrafficSourceAttachment"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
LAUNCH_CONFIGURATION = "aws:ec2/launchConfiguration:LaunchConfiguration"


def _has_entries(props: Mapping[str, Any], key: str) -> bool:
    """Whether a list input has entries; a list still unknown in preview counts as set.

    Only the length is read: entries (target group ARNs) are often unknown in a first preview.
    """
    try:
        value = props.get(key)
    except UnknownValueError:
        return True
    return isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0


def _refers_to(resource: PolicyResource, key: str, group: PolicyResource) -> bool:
    if group in resource.property_dependencies.get(key, []):
        return True
    value = resource.props.get(key)
    return value is not None and value in (group.props.get("name"), group.props.get("id"))


def _attached(group: PolicyResource, resources: Sequence[PolicyResource]) -> bool:
    if any(_has_entries(group.props, key) for key in ("targetGroupArns", "loadBalancers", "trafficSources")):
        return True
    return any(r.resource_type in (ATTACHMENT, TRAFFIC_SOURCE_ATTACHMENT)
               and _refers_to(r, "autoscalingGroupName", group) for r in resources)


@stack_rule(
    "aws-autoscaling-group-require-elb-health-check", Severity.MEDIUM,
    "Auto Scaling groups behind a load balancer use its health check to replace hosts.",
    fix="Set health_check_type='ELB' and a health_check_grace_period long enough for a host to "
        "boot and pass /health (AppHosts uses 900 s).",
    anchors=Anchors(checkov=["CKV2_AWS_15"], securityhub=["AutoScaling.1"],
                    checklist=["Deployment 1.2 (load balancer health check)"]),
    config={"allowedHealthCheckTypes": {"type": "array", "items": {"type": "string"}, "default": ["ELB"],
                                        "description": "healthCheckType values accepted for a group behind a "
                                                       "load balancer."}},
    needs="TODO",
)
def elb_health_check(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Groups behind a load balancer replace the hosts its health check fails."""
    allowed = [str(t) for t in as_list(args.get_config().get("allowedHealthCheckTypes"))]
    for group in (r for r in args.resources if r.resource_type == GROUP):
        if not _attached(group, args.resources):
            continue
        kind = group.props.get("healthCheckType")
        if kind not in allowed:
            shown = kind or "not set (EC2 status checks only)"
            report_violation(f"Auto Scaling group '{group.name}' serves behind a load balancer but its "
                             f"healthCheckType is {shown}; it must be {' or '.join(allowed)}, or hosts failing the "
                             "load balancer's health check are never replaced.", group.urn)


def _launch_source(group: PolicyResource,
                   resources: Sequence[PolicyResource]) -> tuple[str, Any, PolicyResource | None]:
    """``(kind, reference, resource)`` of what the group launches from; resource None if not in the stack."""
    props = group.props
    templates = [r for r in resources if r.resource_type == LAUNCH_TEMPLATE]
    spec = as_map(props.get("launchTemplate"))
    key = "launchTemplate"
    if not spec:
        mixed = first(first(props.get("mixedInstancesPolicy")).get("launchTemplate"))
        spec = first(mixed.get("launchTemplateSpecification"))
        spec = {"id": spec.get("launchTemplateId"), "name": spec.get("launchTemplateName")} if spec else {}
        key = "mixedInstancesPolicy"
    if spec:
        reference = spec.get("id") or spec.get("name")
        for dependency in group.property_dependencies.get(key, []):
            if dependency.resource_type == LAUNCH_TEMPLATE:
                return "launch template", reference, dependency
        found = next((t for t in templates if reference is not None
                      and reference in (t.props.get("id"), t.props.get("name"))), None)
        return "launch template", reference, found
    name = props.get("launchConfiguration")
    if name is None:
        return "", None, None
    for dependency in group.property_dependencies.get("launchConfiguration", []):
        if dependency.resource_type == LAUNCH_CONFIGURATION:
            return "launch configuration", name, dependency
    found = next((c for c in resources if c.resource_type == LAUNCH_CONFIGURATION
                  and name in (c.props.get("name"), c.props.get("id"))), None)
    return "launch configuration", name, found


@stack_rule(
    "aws-autoscaling-group-require-imdsv2", Severity.HIGH,
    "Auto Scaling groups launch from a template or configuration that requires IMDSv2.",
    fix="Launch from an aws.ec2.LaunchTemplate of this stack with metadata_options "
        "http_tokens='required' and http_put_response_hop_limit=1.",
    anchors=Anchors(checkov=["CKV_AWS_79"], trivy=["AVD-AWS-0130"], securityhub=["AutoScaling.3", "EC2.170"]),
    needs="TODO",
)
def launch_source_imdsv2(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every group launches from a template or configuration that requires IMDSv2."""
    for group in (r for r in args.resources if r.resource_type == GROUP):
        kind, reference, source = _launch_source(group, args.resources)
        if not kind:
            continue
        if source is None:
            report_violation(f"Auto Scaling group '{group.name}' launches from {kind} {reference}, which this stack "
                             "does not define, so no rule can check that it requires IMDSv2; define it in the stack "
                             "or exempt the group with the reason.", group.urn)
            continue
        options = as_map(source.props.get("metadataOptions"))
        if options.get("httpEndpoint") == "disabled" or options.get("httpTokens") == "required":
            continue
        shown = options.get("httpTokens") or "not set"
        report_violation(f"Auto Scaling group '{group.name}' launches from {kind} '{source.name}', whose "
                         f"metadataOptions.httpTokens is {shown}; its instances would accept IMDSv1.", group.urn)


POLICIES = policies_of(__name__)
