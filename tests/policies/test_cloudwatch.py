"""CloudWatch rules: a compliant fixture, one mutated property, the exact message.

The stack rule is checked against what ``Monitoring`` really registers: a small program with a
load balancer, a target group, an RDS instance, a replication group, a TimescaleDB host and an
Auto Scaling group, wired into ``Monitoring``, runs under the harness; its recorded outputs and
property dependencies become the stack the rule sees. Deleting any one alarm from that stack
must produce the exact violation.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pulumi_aws as aws
import pytest
from pulumi_policy import EnforcementLevel, Severity

from components.monitoring import Monitoring, MonitoringArgs, cache_member_cluster_ids
from sark_policies import cloudwatch
from sarkops.plan.runtime import plain
from tests.conftest import record_program
from tests.policies.helpers import UNKNOWN, Res, by_name, check_resource, check_stack, urn

ACTIONS = by_name(cloudwatch.POLICIES, "aws-cloudwatch-metric-alarm-require-actions")
OK_ACTIONS = by_name(cloudwatch.POLICIES, "aws-cloudwatch-metric-alarm-configure-ok-actions")
RETENTION = by_name(cloudwatch.POLICIES, "aws-cloudwatch-log-group-configure-retention")
LOG_KMS = by_name(cloudwatch.POLICIES, "aws-cloudwatch-log-group-enable-kms-encryption")
REQUIRED = by_name(cloudwatch.POLICIES, "aws-cloudwatch-require-sark-alarms")

TOPIC = "arn:aws:sns:us-east-1:123456789012:sark-alerts"
KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-4222-a333-444455556666"


def test_metadata() -> None:
    assert {p.name for p in cloudwatch.POLICIES} == {
        "aws-cloudwatch-metric-alarm-require-actions", "aws-cloudwatch-metric-alarm-configure-ok-actions",
        "aws-cloudwatch-log-group-configure-retention", "aws-cloudwatch-log-group-enable-kms-encryption",
        "aws-cloudwatch-require-sark-alarms"}
    for policy in cloudwatch.POLICIES:
        expected = EnforcementLevel.ADVISORY if policy is OK_ACTIONS else EnforcementLevel.MANDATORY
        assert policy.enforcement_level == expected, policy.name
        assert policy.remediation_steps
        assert policy.tags, policy.name
    assert OK_ACTIONS.severity == Severity.LOW
    assert "checkov:CKV_AWS_319" in ACTIONS.tags
    assert "securityhub:CloudWatch.16" in RETENTION.tags


# --- alarm actions ----------------------------------------------------------------------

def _alarm_props(**changes: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": "sark-cpu", "namespace": "AWS/EC2", "metricName": "CPUUtilization",
        "dimensions": {"AutoScalingGroupName": "sark-app"}, "statistic": "Maximum", "period": 300,
        "evaluationPeriods": 2, "threshold": 90, "comparisonOperator": "GreaterThanThreshold",
        "actionsEnabled": True, "alarmActions": [TOPIC], "okActions": [TOPIC], "treatMissingData": "notBreaching",
    }
    props.update(changes)
    return {k: v for k, v in props.items() if v is not None}


def test_alarm_with_actions_passes() -> None:
    assert check_resource(ACTIONS, cloudwatch.METRIC_ALARM, _alarm_props()).violations == []
    assert check_resource(OK_ACTIONS, cloudwatch.METRIC_ALARM, _alarm_props()).violations == []


def test_alarm_with_actions_enabled_unset_passes() -> None:
    # AWS's default for actions_enabled is true.
    assert check_resource(ACTIONS, cloudwatch.METRIC_ALARM, _alarm_props(actionsEnabled=None)).violations == []


@pytest.mark.parametrize("value", [False, "false"])
def test_alarm_with_actions_disabled_fails(value: Any) -> None:
    result = check_resource(ACTIONS, cloudwatch.METRIC_ALARM, _alarm_props(actionsEnabled=value))
    assert result.messages == ["actionsEnabled is false; the alarm changes state without notifying anyone."]


@pytest.mark.parametrize("value", [[], None])
def test_alarm_without_alarm_actions_fails(value: Any) -> None:
    result = check_resource(ACTIONS, cloudwatch.METRIC_ALARM, _alarm_props(alarmActions=value))
    assert result.messages == ["alarmActions is empty; nobody is told when the alarm fires. Add the alert topic."]


def test_alarm_without_ok_actions_is_reported_by_the_advisory_rule_only() -> None:
    props = _alarm_props(okActions=None)
    assert check_resource(ACTIONS, cloudwatch.METRIC_ALARM, props).violations == []
    assert check_resource(OK_ACTIONS, cloudwatch.METRIC_ALARM, props).messages == [
        "okActions is empty; on-call is never told the alarm recovered. Add the alert topic."]


def test_recover_only_alarm_needs_no_ok_notification() -> None:
    props = _alarm_props(alarmActions=["arn:aws:automate:us-east-1:ec2:recover"], okActions=None,
                         metricName="StatusCheckFailed_System", dimensions={"InstanceId": "i-0123456789abcdef0"})
    assert check_resource(ACTIONS, cloudwatch.METRIC_ALARM, props).violations == []
    assert check_resource(OK_ACTIONS, cloudwatch.METRIC_ALARM, props).violations == []


def test_topic_arn_unknown_during_first_preview_still_checks() -> None:
    props = _alarm_props(alarmActions=[UNKNOWN], okActions=[UNKNOWN])
    for policy in (ACTIONS, OK_ACTIONS):
        result = check_resource(policy, cloudwatch.METRIC_ALARM, props)
        assert result.violations == []
        assert result.advisories == []
    result = check_resource(OK_ACTIONS, cloudwatch.METRIC_ALARM, _alarm_props(alarmActions=[UNKNOWN], okActions=[]))
    assert result.messages == ["okActions is empty; on-call is never told the alarm recovered. Add the alert topic."]


def test_whole_action_list_unknown_is_not_a_violation() -> None:
    result = check_resource(ACTIONS, cloudwatch.METRIC_ALARM, _alarm_props(alarmActions=UNKNOWN))
    assert result.violations == []
    assert result.advisories == []


# --- log groups -------------------------------------------------------------------------

def _log_group(**changes: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"name": "/sark/test/app", "retentionInDays": 90, "kmsKeyId": KEY}
    props.update(changes)
    return {k: v for k, v in props.items() if v is not None}


def test_log_group_with_retention_and_key_passes() -> None:
    assert check_resource(RETENTION, cloudwatch.LOG_GROUP, _log_group()).violations == []
    assert check_resource(LOG_KMS, cloudwatch.LOG_GROUP, _log_group()).violations == []


@pytest.mark.parametrize("value", [None, 0])
def test_log_group_that_never_expires_fails(value: Any) -> None:
    result = check_resource(RETENTION, cloudwatch.LOG_GROUP, _log_group(retentionInDays=value))
    assert result.messages == ["retentionInDays is not set, so logs never expire; set 30 to 3653 days."]


def test_log_group_with_short_retention_fails() -> None:
    result = check_resource(RETENTION, cloudwatch.LOG_GROUP, _log_group(retentionInDays=14))
    assert result.messages == ["retentionInDays is 14; it must be from 30 to 3653 days."]


def test_log_group_retention_bounds_come_from_config() -> None:
    config = {"minRetentionDays": 30, "maxRetentionDays": 90}
    assert check_resource(RETENTION, cloudwatch.LOG_GROUP, _log_group(retentionInDays=90), config=config) \
        .violations == []
    result = check_resource(RETENTION, cloudwatch.LOG_GROUP, _log_group(retentionInDays=365), config=config)
    assert result.messages == ["retentionInDays is 365; it must be from 30 to 90 days."]


def test_log_group_key_unknown_during_first_preview_passes_without_advisory() -> None:
    result = check_resource(LOG_KMS, cloudwatch.LOG_GROUP, _log_group(kmsKeyId=UNKNOWN))
    assert result.violations == []
    assert result.advisories == []


def test_log_group_without_key_fails() -> None:
    result = check_resource(LOG_KMS, cloudwatch.LOG_GROUP, _log_group(kmsKeyId=None))
    assert result.messages == ["kmsKeyId is not set; the logs are encrypted with a key the stack does not "
                               "control. Use the stack key."]


# --- required alarms: a realistic stack, recorded from Monitoring -----------------------

def _monitored_program() -> None:
    lb = aws.lb.LoadBalancer("alb", load_balancer_type="application")
    tg = aws.lb.TargetGroup("tg-v1", port=8000, protocol="HTTP", vpc_id="vpc-0123456789abcdef0")
    db = aws.rds.Instance("db", identifier="sark-test-db", instance_class="db.m6i.large", engine="postgres",
                          allocated_storage=100)
    cache_group = aws.elasticache.ReplicationGroup("cache", replication_group_id="sark-test-cache",
                                                   description="sessions", num_cache_clusters=2)
    timescale = aws.ec2.Instance("timescale", ami="ami-0123456789abcdef0", instance_type="m6i.xlarge",
                                 tags={"sark:role": "timescale"})
    asg = aws.autoscaling.Group("app-v1", name="sark-test-app-v1", min_size=2, max_size=4)
    Monitoring("mon", MonitoringArgs(
        region="us-east-1", kms_key_arn=KEY, stack_label="sark-test",
        load_balancer_arn_suffix=lb.arn_suffix, target_group_arn_suffixes={"v1": tg.arn_suffix},
        app_asg_names={"v1": asg.name}, db_instance_identifier=db.identifier, db_max_connections=400,
        cache_cluster_ids=cache_member_cluster_ids(cache_group.replication_group_id, 2),
        timescale_instance_id=timescale.id,
    ))


@cache
def _recorded_stack() -> tuple[Res, ...]:
    """Every custom resource of the program, its outputs as props, dependencies mapped to helper URNs."""
    recording = record_program(_monitored_program)
    custom = [r for r in recording.resources if r.custom]
    urns = {r.urn: urn(r.type, r.name) for r in custom}
    return tuple(
        Res(r.type, r.name, plain(r.outputs),
            property_dependencies={key: [urns[u] for u in deps if u in urns]
                                   for key, deps in r.property_dependencies.items()})
        for r in custom
    )


def _stack() -> list[Res]:
    return copy.deepcopy(list(_recorded_stack()))


def _without(resources: list[Res], name: str) -> list[Res]:
    kept = [r for r in resources if r.name != name]
    assert len(kept) == len(resources) - 1, f"no resource named {name}"
    return kept


def _alarm(resources: list[Res], name: str) -> Res:
    return next(r for r in resources if r.name == name)


def test_recorded_stack_has_every_kind_of_monitored_resource() -> None:
    types = {r.type for r in _stack()}
    assert {"aws:lb/loadBalancer:LoadBalancer", "aws:lb/targetGroup:TargetGroup", cloudwatch.RDS_INSTANCE,
            cloudwatch.REPLICATION_GROUP, cloudwatch.EC2_INSTANCE, cloudwatch.AUTOSCALING_GROUP} <= types


def test_stack_wired_through_monitoring_passes() -> None:
    assert check_stack(REQUIRED, _stack()).violations == []


def _missing(subject: str, namespace: str, metric: str, dimension: str) -> str:
    return f"{subject} has no alarm on {namespace} {metric} with dimension {dimension}."


ALB = "AWS/ApplicationELB"
CACHE = "AWS/ElastiCache"
MEMBER_1 = "Cache replication group 'cache' (member cluster sark-test-cache-001)"
MEMBER_2 = "Cache replication group 'cache' (member cluster sark-test-cache-002)"

REMOVALS: dict[str, list[str]] = {
    "mon-http-5xx-rate": [
        _missing("Load balancer 'alb'", ALB, "HTTPCode_Target_5XX_Count", "LoadBalancer"),
        _missing("Load balancer 'alb'", ALB, "HTTPCode_ELB_5XX_Count", "LoadBalancer"),
        _missing("Load balancer 'alb'", ALB, "RequestCount", "LoadBalancer"),
    ],
    "mon-http-p95-latency": [_missing("Load balancer 'alb'", ALB, "TargetResponseTime", "LoadBalancer")],
    "mon-tg-v1-unhealthy-hosts": [_missing("Target group 'tg-v1'", ALB, "UnHealthyHostCount", "TargetGroup")],
    "mon-app-v1-cpu": [_missing("Auto Scaling group 'app-v1'", "AWS/EC2", "CPUUtilization", "AutoScalingGroupName")],
    "mon-app-v1-memory": [
        _missing("Auto Scaling group 'app-v1'", "CWAgent", "mem_used_percent", "AutoScalingGroupName")],
    "mon-db-connections": [
        _missing("RDS instance 'db'", "AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier")],
    "mon-db-free-storage": [_missing("RDS instance 'db'", "AWS/RDS", "FreeStorageSpace", "DBInstanceIdentifier")],
    "mon-cache-001-memory": [_missing(MEMBER_1, CACHE, "DatabaseMemoryUsagePercentage", "CacheClusterId")],
    "mon-cache-001-engine-cpu": [_missing(MEMBER_1, CACHE, "EngineCPUUtilization", "CacheClusterId")],
    "mon-cache-001-evictions": [_missing(MEMBER_1, CACHE, "Evictions", "CacheClusterId")],
    "mon-cache-002-memory": [_missing(MEMBER_2, CACHE, "DatabaseMemoryUsagePercentage", "CacheClusterId")],
    "mon-cache-002-engine-cpu": [_missing(MEMBER_2, CACHE, "EngineCPUUtilization", "CacheClusterId")],
    "mon-cache-002-evictions": [_missing(MEMBER_2, CACHE, "Evictions", "CacheClusterId")],
    "mon-timescale-status-check": [
        _missing("TimescaleDB host 'timescale'", "AWS/EC2", "StatusCheckFailed", "InstanceId")],
    "mon-timescale-system-check": [
        _missing("TimescaleDB host 'timescale'", "AWS/EC2", "StatusCheckFailed_System", "InstanceId")],
    "mon-timescale-data-disk": [
        _missing("TimescaleDB host 'timescale'", "CWAgent", "disk_used_percent", "InstanceId")],
    "mon-siem-forwarding-failures": ["The stack runs the app but has no alarm on SARK/App siem_events_failed_total."],
    "mon-db-pool-usage": ["The stack runs the app but has no alarm on SARK/App db_pool_size."],
    # Issue #11: hosts running without an out-of-band secret; not (yet) required by the pack.
    "mon-missing-external-secrets": [],
}


def test_removal_table_covers_every_alarm_monitoring_creates() -> None:
    assert {r.name for r in _stack() if r.type == cloudwatch.METRIC_ALARM} == set(REMOVALS)


@pytest.mark.parametrize("alarm_name", sorted(REMOVALS))
def test_removing_any_required_alarm_fails(alarm_name: str) -> None:
    result = check_stack(REQUIRED, _without(_stack(), alarm_name))
    assert result.messages == REMOVALS[alarm_name]


def test_violation_is_reported_on_the_unmonitored_resource() -> None:
    result = check_stack(REQUIRED, _without(_stack(), "mon-db-free-storage"))
    assert [u for u, _ in result.violations] == [urn(cloudwatch.RDS_INSTANCE, "db")]


def test_alarm_on_another_resource_does_not_count() -> None:
    resources = _stack()
    alarm = _alarm(resources, "mon-db-connections")
    alarm.props = {**alarm.props, "dimensions": {"DBInstanceIdentifier": "some-other-db"}}
    result = check_stack(REQUIRED, resources)
    assert result.messages == [
        _missing("RDS instance 'db'", "AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier")]


def test_alarm_on_another_metric_does_not_count() -> None:
    resources = _stack()
    alarm = _alarm(resources, "mon-timescale-data-disk")
    alarm.props = {**alarm.props, "metricName": "mem_used_percent"}
    result = check_stack(REQUIRED, resources)
    assert result.messages == [
        _missing("TimescaleDB host 'timescale'", "CWAgent", "disk_used_percent", "InstanceId")]


def test_every_autoscaling_group_needs_its_own_alarms() -> None:
    resources = _stack()
    resources.append(Res(cloudwatch.AUTOSCALING_GROUP, "app-v2", {"id": "sark-test-app-v2", "name": "sark-test-app-v2",
                                                                  "minSize": 1, "maxSize": 2}))
    result = check_stack(REQUIRED, resources)
    assert result.messages == [
        _missing("Auto Scaling group 'app-v2'", "AWS/EC2", "CPUUtilization", "AutoScalingGroupName"),
        _missing("Auto Scaling group 'app-v2'", "CWAgent", "mem_used_percent", "AutoScalingGroupName"),
    ]


def test_instances_without_the_timescale_role_need_no_host_alarms() -> None:
    resources = _stack()
    resources.append(Res(cloudwatch.EC2_INSTANCE, "bastion", {"id": "i-0fedcba9876543210",
                                                              "tags": {"sark:role": "bastion"}}))
    assert check_stack(REQUIRED, resources).violations == []


def test_network_load_balancers_are_not_held_to_alb_metrics() -> None:
    resources = _stack()
    resources.append(Res("aws:lb/loadBalancer:LoadBalancer", "nlb", {"arnSuffix": "net/nlb/0123",
                                                                     "loadBalancerType": "network"}))
    assert check_stack(REQUIRED, resources).violations == []


def test_legacy_alb_token_is_checked_too() -> None:
    resources = _stack()
    resources.append(Res("aws:alb/loadBalancer:LoadBalancer", "old-alb", {"arnSuffix": "app/old/0123"}))
    result = check_stack(REQUIRED, resources)
    assert result.messages[0] == _missing("Load balancer 'old-alb'", ALB, "HTTPCode_Target_5XX_Count", "LoadBalancer")
    assert len(result.messages) == 4


def test_standalone_cache_cluster_is_checked_by_its_cluster_id() -> None:
    resources = _stack()
    resources.append(Res(cloudwatch.CACHE_CLUSTER, "memcache", {"clusterId": "sark-memcache", "engine": "memcached"}))
    result = check_stack(REQUIRED, resources)
    assert result.messages == [
        _missing("Cache cluster 'memcache'", CACHE, metric, "CacheClusterId")
        for metric in ("DatabaseMemoryUsagePercentage", "EngineCPUUtilization", "Evictions")
    ]


def test_required_set_comes_from_config() -> None:
    config = {"requiredAlarms": {"dbInstance": [
        {"namespace": "AWS/RDS", "metricName": "CPUUtilization", "dimension": "DBInstanceIdentifier"}]}}
    result = check_stack(REQUIRED, _stack(), config=config)
    assert result.messages == [_missing("RDS instance 'db'", "AWS/RDS", "CPUUtilization", "DBInstanceIdentifier")]


def test_exempted_resource_is_skipped() -> None:
    config = {"exemptions": [{"resource": "db", "reason": "read replica for reporting, monitored by the BI team"}]}
    result = check_stack(REQUIRED, _without(_stack(), "mon-db-connections"), config=config)
    assert result.violations == []


# --- required alarms during a first preview (ids not known yet) -------------------------

COUNTS = ("HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "RequestCount")


def _preview_pair(*, linked: bool) -> list[Res]:
    lb = Res("aws:lb/loadBalancer:LoadBalancer", "alb", {"arnSuffix": UNKNOWN, "loadBalancerType": "application"})
    metric = {"namespace": ALB, "dimensions": {"LoadBalancer": UNKNOWN}, "period": 300, "stat": "Sum"}
    rate = Res(cloudwatch.METRIC_ALARM, "rate", _alarm_props(
        namespace=None, metricName=None, dimensions=None, statistic=None, period=None,
        metricQueries=[{"id": f"m{i}", "metric": {**metric, "metricName": name}, "returnData": False}
                       for i, name in enumerate(COUNTS)]
        + [{"id": "e", "expression": "100 * (FILL(m0, 0) + FILL(m1, 0)) / m2", "returnData": True}]),
        property_dependencies={"metricQueries": [lb.urn]} if linked else {})
    latency = Res(cloudwatch.METRIC_ALARM, "latency", _alarm_props(
        namespace=ALB, metricName="TargetResponseTime", dimensions={"LoadBalancer": UNKNOWN}, statistic=None,
        extendedStatistic="p95"), property_dependencies={"dimensions": [lb.urn]} if linked else {})
    return [lb, rate, latency]


def test_unknown_ids_during_preview_match_through_dependencies() -> None:
    result = check_stack(REQUIRED, _preview_pair(linked=True))
    assert result.violations == []
    assert result.advisories == []


def test_unknown_ids_without_dependency_do_not_count() -> None:
    result = check_stack(REQUIRED, _preview_pair(linked=False))
    assert result.messages == [
        _missing("Load balancer 'alb'", ALB, metric, "LoadBalancer")
        for metric in ("HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "RequestCount", "TargetResponseTime")
    ]


def test_replication_group_with_unknown_members_matches_alarms_depending_on_it() -> None:
    group = Res(cloudwatch.REPLICATION_GROUP, "cache", {"replicationGroupId": "sark-test-cache",
                                                        "memberClusters": UNKNOWN})
    alarms = [Res(cloudwatch.METRIC_ALARM, f"cache-{metric}", _alarm_props(
        namespace=CACHE, metricName=metric, dimensions={"CacheClusterId": UNKNOWN}),
        property_dependencies={"dimensions": [group.urn]})
        for metric in ("DatabaseMemoryUsagePercentage", "EngineCPUUtilization", "Evictions")]
    assert check_stack(REQUIRED, [group, *alarms]).violations == []
    result = check_stack(REQUIRED, [group, *alarms[:2]])
    assert result.messages == [
        _missing("Cache replication group 'cache' (its member clusters)", CACHE, "Evictions", "CacheClusterId")]
