"""CloudWatch rules: alarms that notify someone, log groups with a retention and a key, and the
stack rule that every load balancer, target group, database, cache, TimescaleDB host and app
Auto Scaling group has the alarms the checklist asks for.

The stack rule matches an alarm to a resource by namespace + metric name + dimension value:
the value the resource exposes (load balancer / target group ``arnSuffix``, RDS
``identifier``, EC2 ``id``, Auto Scaling group ``name``, ElastiCache member cluster id)
against the alarm's ``dimensions``, or the ``metricQueries[].metric.dimensions`` of a
metric-math alarm. During a first preview those values are not known yet; then an alarm whose
``dimensions`` / ``metricQueries`` input was computed from the resource (its property
dependencies) counts as attached, so a preview of a new stack is still checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    Severity,
    StackValidationArgs,
)
from pulumi_policy.proxy import UnknownValueError

from ._base import Anchors, policies_of, resource_rule, settings, stack_rule
from ._props import as_bool, as_int, as_list, as_map

METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
LOAD_BALANCERS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
TARGET_GROUPS = ("aws:lb/targetGroup:TargetGroup", "aws:alb/targetGroup:TargetGroup")
RDS_INSTANCE = "aws:rds/instance:Instance"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
CACHE_CLUSTER = "aws:elasticache/cluster:Cluster"
EC2_INSTANCE = "aws:ec2/instance:Instance"
AUTOSCALING_GROUP = "aws:autoscaling/group:Group"

_SNS_ARN = re.compile(r"^arn:[a-z-]+:sns:")


# --------------------------------------------------------------------------------------
# Alarms notify, log groups expire and are encrypted
# --------------------------------------------------------------------------------------

_UNKNOWN = object()


def _read(get: Callable[[], Any]) -> Any:
    """A property value, or ``_UNKNOWN`` if it is not known during preview."""
    try:
        return get()
    except UnknownValueError:
        return _UNKNOWN


def _actions(props: Mapping[str, Any], key: str) -> list[Any] | None:
    """The entries of an action list, ``_UNKNOWN`` for entries not known yet; None if the list itself is unknown.

    A first preview does not know the topic ARN yet; counting the entries must not make the
    rule give up with "can't run during preview".
    """
    value = _read(lambda: props.get(key))
    if value is _UNKNOWN:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str):
        return []
    return [_read(lambda index=index: value[index]) for index in range(len(value))]


def _need(namespace: str, metric_name: str, dimension: str) -> dict[str, str]:
    return {"namespace": namespace, "metricName": metric_name, "dimension": dimension}

# The alarms of components/monitoring.py: checklist 3.3 and Post-Deployment 1 and 5.
DEFAULT_REQUIRED_ALARMS: dict[str, list[dict[str, str]]] = {
    "loadBalancer": [
        # The 5xx-rate alarm is metric math over these three.
        _need("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer"),
        _need("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer"),
        _need("AWS/ApplicationELB", "RequestCount", "LoadBalancer"),
        _need("AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer"),
    ],
    "targetGroup": [_need("AWS/ApplicationELB", "UnHealthyHostCount", "TargetGroup")],
    "dbInstance": [
        _need("AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier"),
        _need("AWS/RDS", "FreeStorageSpace", "DBInstanceIdentifier"),
    ],
    "cacheCluster": [
        _need("AWS/ElastiCache", "DatabaseMemoryUsagePercentage", "CacheClusterId"),
        _need("AWS/ElastiCache", "EngineCPUUtilization", "CacheClusterId"),
        _need("AWS/ElastiCache", "Evictions", "CacheClusterId"),
    ],
    "timescaleInstance": [
        _need("AWS/EC2", "StatusCheckFailed", "InstanceId"),
        _need("AWS/EC2", "StatusCheckFailed_System", "InstanceId"),
        _need("CWAgent", "disk_used_percent", "InstanceId"),
    ],
    "autoScalingGroup": [
        _need("AWS/EC2", "CPUUtilization", "AutoScalingGroupName"),
        _need("CWAgent", "mem_used_percent", "AutoScalingGroupName"),
    ],
    "application": [
        {"namespace": "SARK/App", "metricName": "siem_events_failed_total"},
        {"namespace": "SARK/App", "metricName": "db_pool_size"},
    ],
}

_NEED_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"namespace": {"type": "string"}, "metricName": {"type": "string"},
                       "dimension": {"type": "string"}},
        "required": ["namespace", "metricName", "dimension"],
    },
}


@resource_rule(
    "aws-cloudwatch-metric-alarm-require-actions", [METRIC_ALARM], Severity.MEDIUM,
    "Every CloudWatch alarm has its actions enabled and notifies at least one target.",
    fix="Set actions_enabled=True and alarm_actions=[<alert topic ARN>] (Monitoring's "
        "alert_topic_arn).",
    anchors=Anchors(checkov=["CKV_AWS_319"], securityhub=["CloudWatch.15", "CloudWatch.17"],
                    checklist=["Pre-Deployment 3.3 (alerting rules)", "Post-Deployment 1.1"]),
)
def alarm_has_actions(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """An alarm must notify someone (or act) when it fires."""
    if as_bool(_read(lambda: args.props.get("actionsEnabled"))) is False:
        report_violation("actionsEnabled is false; the alarm changes state without notifying anyone.", None)
    if _actions(args.props, "alarmActions") == []:
        report_violation("alarmActions is empty; nobody is told when the alarm fires. Add the alert topic.", None)


@resource_rule(
    "aws-cloudwatch-metric-alarm-configure-ok-actions", [METRIC_ALARM], Severity.LOW,
    "Every CloudWatch alarm also notifies when it returns to OK.",
    fix="Set ok_actions=[<alert topic ARN>] so on-call sees the recovery.",
    anchors=Anchors(checklist=["Post-Deployment 1.1 (alert delivery)"]),
    level=EnforcementLevel.ADVISORY,
)
def alarm_has_ok_actions(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """An alarm that notifies people should also tell them when the problem is over.

    Alarms whose only actions are EC2 or Auto Scaling actions (recover, reboot, scale) notify
    nobody, so there is no recovery message to send.
    """
    actions = _actions(args.props, "alarmActions")
    notifies = actions is None or any(a is _UNKNOWN or (isinstance(a, str) and _SNS_ARN.match(a))
                                      for a in actions)
    if notifies and _actions(args.props, "okActions") == []:
        report_violation("okActions is empty; on-call is never told the alarm recovered. Add the alert topic.",
                         None)


@resource_rule(
    "aws-cloudwatch-log-group-configure-retention", [LOG_GROUP], Severity.MEDIUM,
    "Log groups keep logs for a set period within the configured bounds, never forever.",
    fix="Set retention_in_days to a CloudWatch Logs retention value within the bounds "
        "(the checklist asks 30-90 days for application logs).",
    anchors=Anchors(checkov=["CKV_AWS_66", "CKV_AWS_338"], securityhub=["CloudWatch.16"],
                    checklist=["Pre-Deployment 3.3 (log retention 30-90 days)"]),
    config={
        "minRetentionDays": {"type": "integer", "default": 30,
                             "description": "Shortest allowed retention in days."},
        "maxRetentionDays": {"type": "integer", "default": 3653,
                             "description": "Longest allowed retention in days (0, never expire, always "
                                            "fails)."},
    },
)
def log_group_retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Log groups keep logs for a bounded period within the configured range."""
    config = settings(args)
    minimum, maximum = config.int("minRetentionDays"), config.int("maxRetentionDays")
    days = as_int(args.props.get("retentionInDays")) or 0
    if days == 0:
        report_violation(f"retentionInDays is not set, so logs never expire; set {minimum} to {maximum} days.", None)
    elif not minimum <= days <= maximum:
        report_violation(f"retentionInDays is {days}; it must be from {minimum} to {maximum} days.", None)


@resource_rule(
    "aws-cloudwatch-log-group-enable-kms-encryption", [LOG_GROUP], Severity.MEDIUM,
    "Log groups are encrypted with a customer-managed KMS key.",
    fix="Set kms_key_id to the stack key's ARN; its key policy already lets CloudWatch Logs "
        "use it for this account's log groups.",
    anchors=Anchors(checkov=["CKV_AWS_158"], trivy=["AVD-AWS-0017"]),
)
def log_group_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Log groups are encrypted with the stack's customer-managed key."""
    # A key ARN still unknown in a first preview comes from a key the stack creates: that is set.
    if not _read(lambda: args.props.get("kmsKeyId")):
        report_violation("kmsKeyId is not set; the logs are encrypted with a key the stack does not control. "
                         "Use the stack key.", None)


# --------------------------------------------------------------------------------------
# Required alarms (stack rule)
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Metric:
    """One metric an alarm watches."""

    namespace: Any
    metric_name: Any
    dimensions: Any
    """A mapping, or ``_UNKNOWN``; values inside may be ``_UNKNOWN`` too."""


@dataclass(frozen=True)
class _Alarm:
    resource: PolicyResource
    metrics: tuple[_Metric, ...]
    sources: frozenset[str]
    """URNs the alarm's metric inputs were computed from."""


@dataclass(frozen=True)
class _Subject:
    """Something that must have alarms: a resource, or one member cluster of a replication group."""

    kind: str
    label: str
    resource: PolicyResource
    value: Any
    """The dimension value that identifies it (``_UNKNOWN`` before it exists)."""


def _dimensions(read_mapping: Callable[[], Any]) -> Any:
    mapping = _read(read_mapping)
    if mapping is _UNKNOWN or not isinstance(mapping, Mapping):
        return mapping if mapping is _UNKNOWN else {}
    return {str(key): _read(lambda key=key: mapping[key]) for key in list(mapping.keys())}


def _alarm_metrics(props: Mapping[str, Any]) -> tuple[_Metric, ...]:
    metrics = [_Metric(_read(lambda: props.get("namespace")), _read(lambda: props.get("metricName")),
                       _dimensions(lambda: props.get("dimensions")))]
    queries = _read(lambda: props.get("metricQueries"))
    for index in range(len(as_list(queries)) if queries is not _UNKNOWN else 0):
        metric = _read(lambda index=index: as_map(queries[index].get("metric")))
        if metric is _UNKNOWN:
            metrics.append(_Metric(_UNKNOWN, _UNKNOWN, _UNKNOWN))
            continue
        metrics.append(_Metric(_read(lambda metric=metric: metric.get("namespace")),
                               _read(lambda metric=metric: metric.get("metricName")),
                               _dimensions(lambda metric=metric: metric.get("dimensions"))))
    return tuple(m for m in metrics if m.metric_name is not None)


def _alarms(resources: Sequence[PolicyResource]) -> list[_Alarm]:
    alarms = []
    for resource in resources:
        if resource.resource_type != METRIC_ALARM:
            continue
        sources = {
            r.urn for key in ("dimensions", "metricQueries")
            for r in resource.property_dependencies.get(key, [])
        }
        alarms.append(_Alarm(resource, _alarm_metrics(resource.props), frozenset(sources)))
    return alarms


def _tag(resource: PolicyResource, key: str) -> Any:
    for field in ("tags", "tagsAll"):
        tags = _read(lambda field=field: as_map(resource.props.get(field)))
        if tags is not _UNKNOWN and key in tags:
            return _read(lambda tags=tags: tags[key])
    return None


def _subjects(resources: Sequence[PolicyResource], timescale_role: str) -> Iterator[_Subject]:
    for r in resources:
        props = r.props
        if r.resource_type in LOAD_BALANCERS:
            # Network and gateway load balancers publish other metrics (AWS/NetworkELB, AWS/GatewayELB).
            if _read(lambda props=props: props.get("loadBalancerType")) in (None, "application"):
                yield _Subject("loadBalancer", "Load balancer", r, _read(lambda props=props: props.get("arnSuffix")))
        elif r.resource_type in TARGET_GROUPS:
            yield _Subject("targetGroup", "Target group", r, _read(lambda props=props: props.get("arnSuffix")))
        elif r.resource_type == RDS_INSTANCE:
            yield _Subject("dbInstance", "RDS instance", r, _read(lambda props=props: props.get("identifier")))
        elif r.resource_type == REPLICATION_GROUP:
            members = _read(lambda props=props: props.get("memberClusters"))
            if members is _UNKNOWN or not as_list(members):
                yield _Subject("cacheCluster", "Cache replication group", r, _UNKNOWN)
            else:
                for index in range(len(members)):
                    yield _Subject("cacheCluster", "Cache replication group", r,
                                   _read(lambda members=members, index=index: members[index]))
        elif r.resource_type == CACHE_CLUSTER and not _read(lambda props=props: props.get("replicationGroupId")):
            yield _Subject("cacheCluster", "Cache cluster", r, _read(lambda props=props: props.get("clusterId")))
        elif r.resource_type == EC2_INSTANCE and _tag(r, "sark:role") == timescale_role:
            yield _Subject("timescaleInstance", "TimescaleDB host", r, _read(lambda props=props: props.get("id")))
        elif r.resource_type == AUTOSCALING_GROUP:
            yield _Subject("autoScalingGroup", "Auto Scaling group", r, _read(lambda props=props: props.get("name")))


def _covers(alarm: _Alarm, subject: _Subject, namespace: str, metric_name: str, dimension: str) -> bool:
    for metric in alarm.metrics:
        if metric.namespace != namespace or metric.metric_name != metric_name:
            continue
        if metric.dimensions is _UNKNOWN:
            value = _UNKNOWN
        elif dimension not in metric.dimensions:
            continue
        else:
            value = metric.dimensions[dimension]
        if value is not _UNKNOWN and subject.value is not _UNKNOWN:
            if value == subject.value:
                return True
        elif subject.resource.urn in alarm.sources:
            return True
    return False


def _describe(subject: _Subject) -> str:
    if subject.kind == "cacheCluster" and subject.resource.resource_type == REPLICATION_GROUP:
        member = "its member clusters" if subject.value is _UNKNOWN else f"member cluster {subject.value}"
        return f"{subject.label} '{subject.resource.name}' ({member})"
    return f"{subject.label} '{subject.resource.name}'"


@stack_rule(
    "aws-cloudwatch-require-sark-alarms", Severity.MEDIUM,
    "Every load balancer, target group, database, cache, TimescaleDB host and app Auto Scaling "
    "group has the checklist's alarms attached.",
    fix="Pass the resource's dimension value (arn_suffix, identifier, member cluster id, "
        "instance id, group name) to components/monitoring.py's MonitoringArgs, which creates "
        "the alarms; or add an aws.cloudwatch.MetricAlarm on the named metric and dimension.",
    anchors=Anchors(checklist=["Pre-Deployment 3.3 (alerting rules)", "Post-Deployment 1.1",
                               "Post-Deployment 5 (p95 < 500 ms)"]),
    config={
        "requiredAlarms": {
            "type": "object",
            "description": "Per kind of resource, the metrics that must have an alarm attached by dimension; "
                           "'application' lists app metrics required once the stack has an Auto Scaling "
                           "group.",
            "properties": {
                **{kind: _NEED_SCHEMA for kind in DEFAULT_REQUIRED_ALARMS if kind != "application"},
                "application": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"namespace": {"type": "string"}, "metricName": {"type": "string"}},
                    "required": ["namespace", "metricName"]}},
            },
            "default": DEFAULT_REQUIRED_ALARMS,
        },
        "timescaleRole": {"type": "string", "default": "timescale",
                          "description": "sark:role tag value of the TimescaleDB host instance."},
    },
    needs="the alarms whose dimensions came from each monitored resource (property dependencies)",
)
def required_alarms(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Each monitored resource has an alarm on each required metric, attached by dimension."""
    config = settings(args)
    required: Mapping[str, Any] = config.map("requiredAlarms")
    timescale_role = config.text("timescaleRole")
    alarms = _alarms(args.resources)
    subjects = list(_subjects(args.resources, timescale_role))

    for subject in subjects:
        for need in as_list(required.get(subject.kind)):
            namespace, metric_name, dimension = need["namespace"], need["metricName"], need["dimension"]
            if any(_covers(alarm, subject, namespace, metric_name, dimension) for alarm in alarms):
                continue
            report_violation(f"{_describe(subject)} has no alarm on {namespace} {metric_name} "
                             f"with dimension {dimension}.", subject.resource.urn)

    # App-level metrics belong to no single resource: they are required once the stack runs the app.
    if any(s.kind == "autoScalingGroup" for s in subjects):
        for need in as_list(required.get("application")):
            namespace, metric_name = need["namespace"], need["metricName"]
            if not any(m.namespace == namespace and m.metric_name == metric_name
                       for alarm in alarms for m in alarm.metrics):
                report_violation(f"The stack runs the app but has no alarm on {namespace} {metric_name}.", None)



POLICIES = policies_of(__name__)
