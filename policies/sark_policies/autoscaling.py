"""Auto Scaling group rules (anchors A1 and C9: Security Hub AutoScaling.1 and AutoScaling.3).

What a group's own inputs decide is a resource rule; what lives on other resources is a stack rule:

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

from pulumi_policy import PolicyResource, ReportViolation, ResourceValidationArgs, Severity, StackValidationArgs

from ._base import Anchors, policies_of, resource_rule, settings, stack_rule, wait_for
from ._graph import refers
from ._props import UNKNOWN, as_map, first, known

GROUP = "aws:autoscaling/group:Group"
ATTACHMENT = "aws:autoscaling/attachment:Attachment"
TRAFFIC_SOURCE_ATTACHMENT = "aws:autoscaling/trafficSourceAttachment:TrafficSourceAttachment"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
LAUNCH_CONFIGURATION = "aws:ec2/launchConfiguration:LaunchConfiguration"


def _has_entries(props: Mapping[str, Any], key: str) -> bool:
    """Whether a list input has entries; a list still unknown in preview counts as set.

    Only the length is read: entries (target group ARNs) are often unknown in a first preview.
    """
    value = known(props, key)
    if value is UNKNOWN:
        return True
    return isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0


def _health_check_problem(kind: Any, allowed: list[str]) -> str | None:
    if kind in allowed:
        return None
    return (f"healthCheckType is {kind or 'not set (EC2 status checks only)'}; it must be {' or '.join(allowed)}, "
            "or hosts failing the load balancer's health check are never replaced")


_HEALTH_CHECK_TYPES = {"allowedHealthCheckTypes": {
    "type": "array", "items": {"type": "string"}, "default": ["ELB"],
    "description": "healthCheckType values accepted for a group behind a load balancer."}}


@resource_rule(
    "aws-autoscaling-group-require-elb-health-check", [GROUP], Severity.MEDIUM,
    "Auto Scaling groups behind a load balancer use its health check to replace hosts.",
    fix="Set health_check_type='ELB' and a health_check_grace_period long enough for a host to boot and pass "
        "/health (AppHosts uses 900 s).",
    anchors=Anchors(checkov=["CKV2_AWS_15"], securityhub=["AutoScaling.1"],
                    checklist=["Deployment 1.2 (load balancer health check)"]),
    config=_HEALTH_CHECK_TYPES,
)
def elb_health_check(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A group that names its load balancer itself (target groups, load balancers, traffic sources)
    replaces the hosts the load balancer finds unhealthy."""
    if not any(_has_entries(args.props, key) for key in ("targetGroupArns", "loadBalancers", "trafficSources")):
        return
    problem = _health_check_problem(args.props.get("healthCheckType"), settings(args).strings(
        "allowedHealthCheckTypes"))
    if problem:
        report_violation(f"The group serves behind a load balancer but its {problem}.", None)


@stack_rule(
    "aws-autoscaling-attachment-require-elb-health-check", Severity.MEDIUM,
    "Auto Scaling groups attached to a load balancer by an attachment resource use its health check.",
    fix="Set health_check_type='ELB' on the group that aws.autoscaling.Attachment / TrafficSourceAttachment "
        "attaches to the load balancer.",
    needs="the attachments whose autoscalingGroupName came from the group (property dependency)",
    covered_by=["aws-autoscaling-group-require-elb-health-check"],
    anchors=Anchors(checkov=["CKV2_AWS_15"], securityhub=["AutoScaling.1"],
                    checklist=["Deployment 1.2 (load balancer health check)"]),
    config=_HEALTH_CHECK_TYPES,
)
def attached_elb_health_check(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """A group attached through aws.autoscaling.Attachment/TrafficSourceAttachment uses the ELB health check."""
    allowed = settings(args).strings("allowedHealthCheckTypes")
    attachments = [r for r in args.resources if r.resource_type in (ATTACHMENT, TRAFFIC_SOURCE_ATTACHMENT)]
    for group in (r for r in args.resources if r.resource_type == GROUP):
        if any(_has_entries(group.props, k) for k in ("targetGroupArns", "loadBalancers", "trafficSources")):
            continue  # the resource rule decides it before create
        if not any(refers(a, "autoscalingGroupName", group, ("name", "id")) for a in attachments):
            continue
        problem = _health_check_problem(known(group.props, "healthCheckType"), allowed)
        if problem:
            report_violation(f"Auto Scaling group '{group.name}' is attached to a load balancer but its {problem}.",
                             group.urn)


def _launch_source(group: PolicyResource,
                   resources: Sequence[PolicyResource]) -> tuple[str, Any, PolicyResource | None]:
    """``(kind, reference, resource)`` of what the group launches from; resource None if not in the stack.

    The launch template is found through the property dependency of ``launchTemplate`` (or
    ``mixedInstancesPolicy``): its id is unknown in a first preview.
    """
    props = group.props
    spec = as_map(known(props, "launchTemplate"))
    key = "launchTemplate"
    if not spec:
        mixed = first(first(known(props, "mixedInstancesPolicy")).get("launchTemplate"))
        spec = first(mixed.get("launchTemplateSpecification"))
        spec = {"id": known(spec, "launchTemplateId"), "name": known(spec, "launchTemplateName")} if spec else {}
        key = "mixedInstancesPolicy"
    if spec:
        for dependency in group.property_dependencies.get(key, []):
            if dependency.resource_type == LAUNCH_TEMPLATE:
                return "launch template", dependency.name, dependency
        reference = known(spec, "id") or known(spec, "name")
        if reference is UNKNOWN:
            wait_for(f"{group.name}.{key}")
            return "", None, None
        found = next((t for t in resources if t.resource_type == LAUNCH_TEMPLATE and reference is not None
                      and reference in (known(t.props, "id"), known(t.props, "name"))), None)
        return "launch template", reference, found
    return _launch_configuration(group, resources)


def _launch_configuration(group: PolicyResource,
                          resources: Sequence[PolicyResource]) -> tuple[str, Any, PolicyResource | None]:
    name = known(group.props, "launchConfiguration")
    if name is None:
        return "", None, None
    for dependency in group.property_dependencies.get("launchConfiguration", []):
        if dependency.resource_type == LAUNCH_CONFIGURATION:
            return "launch configuration", dependency.name, dependency
    if name is UNKNOWN:
        wait_for(f"{group.name}.launchConfiguration")
        return "", None, None
    found = next((c for c in resources if c.resource_type == LAUNCH_CONFIGURATION
                  and name in (known(c.props, "name"), known(c.props, "id"))), None)
    return "launch configuration", name, found


@stack_rule(
    "aws-autoscaling-group-require-imdsv2", Severity.HIGH,
    "Auto Scaling groups launch from a template or configuration that requires IMDSv2.",
    fix="Launch from an aws.ec2.LaunchTemplate of this stack with metadata_options http_tokens='required' and "
        "http_put_response_hop_limit=1.",
    needs="the launch template or configuration a group launches from (property dependency)",
    covered_by=["aws-ec2-launchtemplate-require-imdsv2", "aws-ec2-launchconfiguration-require-imdsv2"],
    anchors=Anchors(checkov=["CKV_AWS_79"], trivy=["AVD-AWS-0130"], securityhub=["AutoScaling.3", "EC2.170"]),
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
        options = as_map(known(source.props, "metadataOptions"))
        if options.get("httpEndpoint") == "disabled" or options.get("httpTokens") == "required":
            continue
        shown = options.get("httpTokens") or "not set"
        report_violation(f"Auto Scaling group '{group.name}' launches from {kind} '{source.name}', whose "
                         f"metadataOptions.httpTokens is {shown}; its instances would accept IMDSv1.", group.urn)


POLICIES = policies_of(__name__)
