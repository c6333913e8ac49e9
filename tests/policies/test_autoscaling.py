"""Auto Scaling group rules: the app group as AppHosts builds it, one change, the exact message."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, Severity

from sark_policies import autoscaling
from sark_policies._base import RESOURCE_TYPES
from tests.policies.helpers import UNKNOWN, Res, by_name, check_resource, check_stack, urn

HEALTH = by_name(autoscaling.POLICIES, "aws-autoscaling-group-require-elb-health-check")
IMDS = by_name(autoscaling.POLICIES, "aws-autoscaling-group-require-imdsv2")
ATTACHED = by_name(autoscaling.POLICIES, "aws-autoscaling-attachment-require-elb-health-check")
GROUP = autoscaling.GROUP
LT = autoscaling.LAUNCH_TEMPLATE
LC = autoscaling.LAUNCH_CONFIGURATION
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/sark/1364e43518b0b8a5"


def stack(group: dict[str, Any] | None = None, template: dict[str, Any] | None = None,
          linked: bool = True) -> list[Res]:
    """The app launch template and its Auto Scaling group, as the production program records them."""
    lt = Res(LT, "app-lt", {"id": "lt-0901", "name": "app-lt-5c1", "metadataOptions": {
        "httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}, **(template or {})})
    asg_props = {"name": "app-asg", "healthCheckType": "ELB", "healthCheckGracePeriod": 900,
                 "launchTemplate": {"id": "lt-0901", "version": "1"}, "targetGroupArns": [TG_ARN],
                 "minSize": 2, "maxSize": 4, **(group or {})}
    deps = {"launchTemplate": [lt.urn]} if linked else {}
    return [lt, Res(GROUP, "app-asg", asg_props, property_dependencies=deps)]


def test_metadata() -> None:
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in autoscaling.POLICIES)
    assert "securityhub:AutoScaling.1" in HEALTH.tags
    assert "securityhub:AutoScaling.3" in IMDS.tags
    assert IMDS.severity == Severity.HIGH


def _check(policy: Any, resources: list[Res], **kwargs: Any) -> Any:
    if RESOURCE_TYPES.get(policy.name):
        group = resources[1]
        return check_resource(policy, GROUP, group.props, name=group.name, **kwargs)
    return check_stack(policy, resources, **kwargs)


@pytest.mark.parametrize("policy", autoscaling.POLICIES, ids=lambda p: p.name)
def test_app_group_passes(policy: Any) -> None:
    assert _check(policy, stack()).violations == []


# --- ELB health checks -----------------------------------------------------------------------

def test_group_behind_target_group_with_ec2_checks_fails_before_create() -> None:
    group = stack({"healthCheckType": "EC2"})[1]
    result = check_resource(HEALTH, GROUP, group.props, name="app-asg")
    assert result.violations == [(urn(GROUP, "app-asg"),
                                  "The group serves behind a load balancer but its healthCheckType is EC2; it must be "
                                  "ELB, or hosts failing the load balancer's health check are never replaced.")]


def test_unset_health_check_type_fails() -> None:
    props = {k: v for k, v in stack()[1].props.items() if k != "healthCheckType"}
    assert check_resource(HEALTH, GROUP, props).messages == [
        "The group serves behind a load balancer but its healthCheckType is not set (EC2 status checks only); it "
        "must be ELB, or hosts failing the load balancer's health check are never replaced."]


def test_group_attached_through_an_attachment_resource_is_checked() -> None:
    resources = stack({"healthCheckType": "EC2", "targetGroupArns": []})
    resources.append(Res(autoscaling.ATTACHMENT, "app-attach", {"autoscalingGroupName": UNKNOWN,
                                                                "lbTargetGroupArn": UNKNOWN},
                         property_dependencies={"autoscalingGroupName": [resources[1].urn]}))
    assert check_stack(ATTACHED, resources).violations == [(urn(GROUP, "app-asg"), (
        "Auto Scaling group 'app-asg' is attached to a load balancer but its healthCheckType is EC2; it must be ELB, "
        "or hosts failing the load balancer's health check are never replaced."))]
    assert check_resource(HEALTH, GROUP, resources[1].props).violations == []


def test_traffic_source_attachment_matched_by_name() -> None:
    resources = stack({"healthCheckType": "EC2", "targetGroupArns": []})
    resources.append(Res(autoscaling.TRAFFIC_SOURCE_ATTACHMENT, "app-source", {
        "autoscalingGroupName": "app-asg", "trafficSource": {"identifier": TG_ARN, "type": "elbv2"}}))
    assert len(check_stack(ATTACHED, resources).messages) == 1


def test_group_without_load_balancer_may_use_ec2_checks() -> None:
    resources = stack({"healthCheckType": "EC2", "targetGroupArns": []})
    assert check_resource(HEALTH, GROUP, resources[1].props).violations == []
    assert check_stack(ATTACHED, resources).violations == []


def test_target_groups_unknown_in_preview_count_as_attached() -> None:
    result = check_resource(HEALTH, GROUP, {**stack()[1].props, "healthCheckType": "EC2",
                                            "targetGroupArns": [UNKNOWN], "launchTemplate": UNKNOWN})
    assert len(result.messages) == 1
    assert result.advisories == []


def test_allowed_types_come_from_config() -> None:
    props = stack({"healthCheckType": "EC2"})[1].props
    assert check_resource(HEALTH, GROUP, props, config={"allowedHealthCheckTypes": ["ELB", "EC2"]}).violations == []


# --- IMDSv2 through the launch template ------------------------------------------------------

def test_template_allowing_imdsv1_fails() -> None:
    result = check_stack(IMDS, stack(template={"metadataOptions": {"httpTokens": "optional"}}))
    assert result.violations == [(urn(GROUP, "app-asg"),
                                  "Auto Scaling group 'app-asg' launches from launch template 'app-lt', whose "
                                  "metadataOptions.httpTokens is optional; its instances would accept IMDSv1.")]


def test_template_found_by_id_without_dependency() -> None:
    result = check_stack(IMDS, stack(template={"metadataOptions": {}}, linked=False))
    assert result.messages == [
        "Auto Scaling group 'app-asg' launches from launch template 'app-lt', whose metadataOptions.httpTokens is "
        "not set; its instances would accept IMDSv1."]


def test_template_outside_the_stack_fails_closed() -> None:
    resources = stack({"launchTemplate": {"id": "lt-elsewhere", "version": "$Latest"}}, linked=False)
    assert check_stack(IMDS, resources).messages == [
        "Auto Scaling group 'app-asg' launches from launch template lt-elsewhere, which this stack does not define, "
        "so no rule can check that it requires IMDSv2; define it in the stack or exempt the group with the reason."]


def test_mixed_instances_policy_template_is_followed() -> None:
    resources = stack(template={"metadataOptions": {"httpTokens": "optional"}}, linked=False)
    group = dict(resources[1].props)
    del group["launchTemplate"]
    group["mixedInstancesPolicy"] = {"launchTemplate": {"launchTemplateSpecification": {"launchTemplateId": "lt-0901"}}}
    resources[1].props = group
    assert check_stack(IMDS, resources).messages == [
        "Auto Scaling group 'app-asg' launches from launch template 'app-lt', whose metadataOptions.httpTokens is "
        "optional; its instances would accept IMDSv1."]


def test_launch_configuration_is_followed() -> None:
    resources = [Res(LC, "legacy-lc", {"name": "legacy-lc-1", "metadataOptions": {"httpTokens": "optional"}}),
                 Res(GROUP, "legacy-asg", {"name": "legacy-asg", "launchConfiguration": "legacy-lc-1"})]
    assert check_stack(IMDS, resources).messages == [
        "Auto Scaling group 'legacy-asg' launches from launch configuration 'legacy-lc', whose "
        "metadataOptions.httpTokens is optional; its instances would accept IMDSv1."]


def test_metadata_endpoint_disabled_passes() -> None:
    template = {"metadataOptions": {"httpEndpoint": "disabled"}}
    assert check_stack(IMDS, stack(template=template)).violations == []


def test_exempted_group_is_dropped() -> None:
    resources = stack({"launchTemplate": {"id": "lt-elsewhere"}}, linked=False)
    config = {"exemptions": [{"resource": "app-asg", "reason": "template owned by the platform AMI pipeline stack"}]}
    assert check_stack(IMDS, resources, config=config).violations == []


def test_template_id_unknown_in_a_first_preview_is_followed_by_dependency() -> None:
    template = {"id": UNKNOWN, "metadataOptions": {"httpTokens": "optional"}}
    resources = stack({"launchTemplate": {"id": UNKNOWN, "version": UNKNOWN}}, template)
    result = check_stack(IMDS, resources)
    assert (result.messages, result.advisories) == ([
        "Auto Scaling group 'app-asg' launches from launch template 'app-lt', whose metadataOptions.httpTokens is "
        "optional; its instances would accept IMDSv1."], [])


def test_template_id_unknown_without_a_dependency_waits() -> None:
    result = check_stack(IMDS, stack({"launchTemplate": {"id": UNKNOWN}}, linked=False))
    assert result.violations == []
    assert [a.split("during preview: ")[1] for a in result.advisories] == [
        "it waits for app-asg.launchTemplate (unknown until the resource that computes it exists); everything else "
        "was checked"]
