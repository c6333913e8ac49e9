"""Monitoring: alarms, alert topic, log groups, agent configuration and dashboard, as recorded.

Generated documents are parsed (topic policy and dashboard JSON, agent JSON, Prometheus YAML)
and checked field by field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from components import cloudwatch_agent as agent
from components.monitoring import (
    SSM_STANDARD_LIMIT,
    Monitoring,
    MonitoringArgs,
    MonitoringArgsError,
    _tier,
    agent_parameter_name,
    cache_member_cluster_ids,
)
from sarkops.plan.runtime import RecordedResource, Recording, is_secret, plain

Record = Callable[..., Recording]

KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-4222-a333-444455556666"
LB = "app/sark-test-alb/0123456789abcdef"
TG = "targetgroup/sark-test-v010/0123456789abcdef"
ASG = "sark-test-app-v0-1-0"
DB = "sark-test-db"
INSTANCE = "i-0123456789abcdef0"
PAGER = "https://events.pagerduty.com/integration/0123456789abcdef/enqueue"

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
PARAMETER = "aws:ssm/parameter:Parameter"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"


def _args(**overrides: Any) -> MonitoringArgs:
    values: dict[str, Any] = {
        "region": "us-east-1", "kms_key_arn": KEY, "stack_label": "sark-test", "log_group_prefix": "/sark/test",
        "alert_emails": ["oncall@example.com"], "alert_https_endpoints": [PAGER],
        "load_balancer_arn_suffix": LB, "target_group_arn_suffixes": {"v0.1.0": TG},
        "app_asg_names": {"v0.1.0": ASG}, "db_instance_identifier": DB, "db_max_connections": 400,
        "cache_cluster_ids": {"001": "sark-test-cache-001", "002": "sark-test-cache-002"},
        "timescale_instance_id": INSTANCE,
    }
    values.update(overrides)
    return MonitoringArgs(**values)


def _run(record: Record, **overrides: Any) -> Recording:
    return record(lambda: Monitoring("mon", _args(**overrides)), {"aws:region": "us-east-1"})


@pytest.fixture(scope="module")
def rec() -> Recording:
    from tests.conftest import record_program

    return record_program(lambda: Monitoring("mon", _args()), {"aws:region": "us-east-1"})


def _alarms(rec: Recording) -> dict[str, dict[str, Any]]:
    return {r.name: plain(r.inputs) for r in rec.by_type(ALARM)}


def _topic_arn(rec: Recording) -> str:
    return rec.one(TOPIC).outputs["arn"]


# --- alarms -------------------------------------------------------------------------------

def _single(namespace: str, metric: str, dimensions: dict[str, str], *, stat: str, threshold: float, period: int,
            periods: int, comparison: str, missing: str) -> dict[str, Any]:
    return {"namespace": namespace, "metricName": metric, "dimensions": dimensions, "statistic": stat,
            "threshold": threshold, "period": period, "evaluationPeriods": periods, "datapointsToAlarm": periods,
            "comparisonOperator": comparison, "treatMissingData": missing}


GT, GE, LT = "GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold"
APP_DIMS = {"Stack": "sark-test"}

EXPECTED: dict[str, dict[str, Any]] = {
    "mon-siem-forwarding-failures": _single("SARK/App", "siem_events_failed_total", APP_DIMS, stat="Sum",
                                            threshold=0, period=60, periods=2, comparison=GT, missing="notBreaching"),
    "mon-db-pool-usage": _single("SARK/App", "db_pool_size", APP_DIMS, stat="Maximum", threshold=16, period=60,
                                 periods=3, comparison=GE, missing="notBreaching"),
    # The hosts publish it every 5 minutes (sark-render-env --report); a host without its SIEM token pages.
    "mon-missing-external-secrets": _single("SARK/App", "missing_external_secrets", APP_DIMS, stat="Maximum",
                                            threshold=1, period=300, periods=1, comparison=GE,
                                            missing="notBreaching"),
    "mon-tg-v0-1-0-unhealthy-hosts": _single("AWS/ApplicationELB", "UnHealthyHostCount",
                                             {"TargetGroup": TG, "LoadBalancer": LB}, stat="Maximum", threshold=1,
                                             period=60, periods=2, comparison=GE, missing="notBreaching"),
    "mon-app-v0-1-0-cpu": _single("AWS/EC2", "CPUUtilization", {"AutoScalingGroupName": ASG}, stat="Maximum",
                                  threshold=90, period=300, periods=2, comparison=GT, missing="notBreaching"),
    "mon-app-v0-1-0-memory": _single("CWAgent", "mem_used_percent", {"AutoScalingGroupName": ASG}, stat="Maximum",
                                     threshold=80, period=300, periods=2, comparison=GT, missing="notBreaching"),
    "mon-db-connections": _single("AWS/RDS", "DatabaseConnections", {"DBInstanceIdentifier": DB}, stat="Maximum",
                                  threshold=320, period=60, periods=3, comparison=GT, missing="breaching"),
    "mon-db-free-storage": _single("AWS/RDS", "FreeStorageSpace", {"DBInstanceIdentifier": DB}, stat="Minimum",
                                   threshold=10 * 1024 ** 3, period=300, periods=1, comparison=LT, missing="missing"),
    **{
        f"mon-cache-{member}-{what}": _single("AWS/ElastiCache", metric,
                                              {"CacheClusterId": f"sark-test-cache-{member}"}, stat=stat,
                                              threshold=threshold, period=300, periods=2, comparison=GT,
                                              missing=missing)
        for member in ("001", "002")
        for what, metric, stat, threshold, missing in (
            ("memory", "DatabaseMemoryUsagePercentage", "Maximum", 80, "missing"),
            ("engine-cpu", "EngineCPUUtilization", "Average", 90, "missing"),
            ("evictions", "Evictions", "Sum", 0, "notBreaching"),
        )
    },
    "mon-timescale-status-check": _single("AWS/EC2", "StatusCheckFailed", {"InstanceId": INSTANCE}, stat="Maximum",
                                          threshold=1, period=60, periods=2, comparison=GE, missing="breaching"),
    "mon-timescale-system-check": _single("AWS/EC2", "StatusCheckFailed_System", {"InstanceId": INSTANCE},
                                          stat="Maximum", threshold=1, period=60, periods=2, comparison=GE,
                                          missing="breaching"),
    "mon-timescale-data-disk": _single("CWAgent", "disk_used_percent",
                                       {"InstanceId": INSTANCE, "path": "/var/lib/postgresql"}, stat="Maximum",
                                       threshold=80, period=300, periods=1, comparison=GT, missing="breaching"),
}


def test_exactly_the_expected_alarms_exist(rec: Recording) -> None:
    assert set(_alarms(rec)) == {*EXPECTED, "mon-http-5xx-rate", "mon-http-p95-latency"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_single_metric_alarm(rec: Recording, name: str) -> None:
    alarm = _alarms(rec)[name]
    assert {key: alarm.get(key) for key in EXPECTED[name]} == EXPECTED[name]
    assert "extendedStatistic" not in alarm
    assert "metricQueries" not in alarm


def test_every_alarm_notifies_the_topic_on_alarm_and_ok(rec: Recording) -> None:
    topic = _topic_arn(rec)
    for name, alarm in _alarms(rec).items():
        assert alarm["name"] == name
        assert alarm["actionsEnabled"] is True, name
        assert alarm["alarmActions"] == [topic], name
        assert alarm["okActions"] == [topic], name
        assert alarm["treatMissingData"] in ("breaching", "notBreaching", "missing"), name


def test_critical_alarms_are_tagged_and_described(rec: Recording) -> None:
    alarms = _alarms(rec)
    critical = sorted(n for n, a in alarms.items() if a["tags"]["sark:severity"] == "critical")
    assert critical == ["mon-missing-external-secrets", "mon-siem-forwarding-failures", "mon-timescale-data-disk",
                        "mon-timescale-status-check", "mon-timescale-system-check"]
    assert alarms["mon-siem-forwarding-failures"]["alarmDescription"].startswith("[critical] ")


def test_error_rate_is_metric_math_over_five_minutes(rec: Recording) -> None:
    alarm = _alarms(rec)["mon-http-5xx-rate"]
    assert {k: alarm[k] for k in ("threshold", "comparisonOperator", "evaluationPeriods", "treatMissingData")} == {
        "threshold": 5, "comparisonOperator": GT, "evaluationPeriods": 1, "treatMissingData": "notBreaching"}
    assert "metricName" not in alarm
    assert "period" not in alarm
    assert "statistic" not in alarm
    queries = {q["id"]: q for q in alarm["metricQueries"]}
    for query_id, metric in (("target5xx", "HTTPCode_Target_5XX_Count"), ("elb5xx", "HTTPCode_ELB_5XX_Count"),
                             ("requests", "RequestCount")):
        assert queries[query_id]["returnData"] is False
        assert queries[query_id]["metric"] == {"namespace": "AWS/ApplicationELB", "metricName": metric,
                                               "dimensions": {"LoadBalancer": LB}, "period": 300, "stat": "Sum"}
    assert queries["errorrate"]["returnData"] is True
    assert queries["errorrate"]["expression"] == "100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests"
    assert [q["id"] for q in alarm["metricQueries"] if q["returnData"]] == ["errorrate"]


def test_p95_latency_uses_the_extended_statistic_in_seconds(rec: Recording) -> None:
    alarm = _alarms(rec)["mon-http-p95-latency"]
    assert {k: alarm.get(k) for k in ("namespace", "metricName", "dimensions", "extendedStatistic", "threshold",
                                      "period", "evaluationPeriods", "comparisonOperator", "treatMissingData",
                                      "evaluateLowSampleCountPercentiles")} == {
        "namespace": "AWS/ApplicationELB", "metricName": "TargetResponseTime", "dimensions": {"LoadBalancer": LB},
        "extendedStatistic": "p95", "threshold": 0.5, "period": 300, "evaluationPeriods": 2,
        "comparisonOperator": GT, "treatMissingData": "notBreaching", "evaluateLowSampleCountPercentiles": "ignore"}
    assert "statistic" not in alarm


def test_thresholds_follow_the_arguments(record: Record) -> None:
    alarms = _alarms(_run(record, error_rate_percent=2.5, cpu_percent=75, memory_percent=70, p95_latency_ms=250,
                          db_max_connections=1000, db_connections_percent=90, app_db_pool_size=10,
                          db_pool_usage_percent=100, timescale_disk_percent=85, db_min_free_storage_gb=50))
    assert alarms["mon-http-5xx-rate"]["threshold"] == 2.5
    assert alarms["mon-app-v0-1-0-cpu"]["threshold"] == 75
    assert alarms["mon-app-v0-1-0-memory"]["threshold"] == 70
    assert alarms["mon-http-p95-latency"]["threshold"] == 0.25
    assert alarms["mon-db-connections"]["threshold"] == 900
    assert alarms["mon-db-pool-usage"]["threshold"] == 10
    assert alarms["mon-timescale-data-disk"]["threshold"] == 85
    assert alarms["mon-db-free-storage"]["threshold"] == 50 * 1024 ** 3


def test_one_set_of_group_alarms_per_live_version(record: Record) -> None:
    alarms = _alarms(_run(record, app_asg_names={"v0.1.0": ASG, "v0.2.0": "sark-test-app-v0-2-0"},
                          target_group_arn_suffixes={"v0.1.0": TG, "v0.2.0": "targetgroup/v020/0f"}))
    assert alarms["mon-app-v0-2-0-cpu"]["dimensions"] == {"AutoScalingGroupName": "sark-test-app-v0-2-0"}
    assert alarms["mon-app-v0-2-0-memory"]["dimensions"] == {"AutoScalingGroupName": "sark-test-app-v0-2-0"}
    assert alarms["mon-tg-v0-2-0-unhealthy-hosts"]["dimensions"] == {"TargetGroup": "targetgroup/v020/0f",
                                                                     "LoadBalancer": LB}


def test_tiers_not_wired_get_no_alarms(record: Record) -> None:
    alarms = _alarms(_run(record, load_balancer_arn_suffix=None, target_group_arn_suffixes={}, app_asg_names={},
                          db_instance_identifier=None, db_max_connections=None, cache_cluster_ids={},
                          timescale_instance_id=None))
    assert set(alarms) == {"mon-siem-forwarding-failures", "mon-db-pool-usage", "mon-missing-external-secrets"}


def test_the_missing_secret_alarm_watches_what_the_hosts_publish(rec: Recording) -> None:
    # The metric name and namespace the host helper publishes, read from the helper itself.
    import importlib.util

    from components.app_hosts import TEMPLATES, host_config

    spec = importlib.util.spec_from_file_location("render_env_for_monitoring", TEMPLATES / "render_env.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    host = host_config(region="us-east-1", parameter_path="/sark/test", wait_seconds=1, metrics_stack_label="sark-test")
    alarm = _alarms(rec)["mon-missing-external-secrets"]
    assert alarm["metricName"] == module.MISSING_METRIC
    assert alarm["namespace"] == host["metrics"]["namespace"]
    assert alarm["dimensions"] == host["metrics"]["dimensions"]


def test_system_check_alarm_can_be_left_to_the_timescale_component(record: Record) -> None:
    alarms = _alarms(_run(record, timescale_system_check_alarm=False))
    assert "mon-timescale-system-check" not in alarms
    assert "mon-timescale-status-check" in alarms


def test_cache_member_cluster_ids_follow_elasticache_naming(record: Record) -> None:
    rec = record(lambda: Monitoring("mon", _args(cache_cluster_ids=cache_member_cluster_ids("sark-cache", 3))))
    dims = sorted(a["dimensions"]["CacheClusterId"] for n, a in _alarms(rec).items() if n.endswith("-evictions"))
    assert dims == ["sark-cache-001", "sark-cache-002", "sark-cache-003"]


def test_alarm_names_output_is_sorted_and_complete(rec: Recording) -> None:
    outputs = rec.one("sark:monitoring:Monitoring").outputs
    assert outputs["alarmNames"] == sorted(_alarms(rec))


# --- alert topic ----------------------------------------------------------------------

def test_topic_is_encrypted_with_the_stack_key(rec: Recording) -> None:
    assert rec.one(TOPIC).inputs["kmsMasterKeyId"] == KEY


def test_topic_policy_lets_only_this_accounts_alarms_publish_over_tls(rec: Recording) -> None:
    policy = json.loads(plain(rec.one("aws:sns/topicPolicy:TopicPolicy").inputs["policy"]))
    topic = _topic_arn(rec)
    statements = {s["Sid"]: s for s in policy["Statement"]}
    alarms = statements["CloudWatchAlarmsOfThisAccountPublish"]
    assert alarms["Effect"] == "Allow"
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms["Action"] == "sns:Publish"
    assert alarms["Resource"] == topic
    assert alarms["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:*"}}
    deny = statements["DenyPublishWithoutTls"]
    assert (deny["Effect"], deny["Principal"], deny["Condition"]) == (
        "Deny", "*", {"Bool": {"aws:SecureTransport": "false"}})
    owner = statements["AccountOwnsTopic"]
    assert owner["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert all(s["Resource"] == topic for s in policy["Statement"])
    assert not any(s["Effect"] == "Allow" and s["Principal"] == "*" for s in policy["Statement"])


def test_subscriptions_from_config(rec: Recording) -> None:
    subscriptions = rec.by_type("aws:sns/topicSubscription:TopicSubscription")
    by_protocol = {s.inputs["protocol"]: s for s in subscriptions}
    assert len(subscriptions) == 2
    assert by_protocol["email"].inputs["endpoint"] == "oncall@example.com"
    https = by_protocol["https"]
    assert is_secret(https.inputs["endpoint"])
    assert plain(https.inputs["endpoint"]) == PAGER
    # The integration key in the URL must not leak into names/URNs.
    assert "pagerduty" not in https.name
    assert "0123456789abcdef" not in https.urn
    assert all(s.inputs["topic"] == _topic_arn(rec) for s in subscriptions)


# --- log groups -----------------------------------------------------------------------

def test_log_groups_are_encrypted_expiring_and_protected(rec: Recording) -> None:
    groups = rec.by_type(LOG_GROUP)
    assert sorted(g.inputs["name"] for g in groups) == [
        "/sark/test/app", "/sark/test/prometheus", "/sark/test/system", "/sark/test/timescale"]
    for group in groups:
        assert group.inputs["retentionInDays"] == 90
        assert group.inputs["kmsKeyId"] == KEY
        assert group.inputs["deletionProtectionEnabled"] is True
        assert group.protect, group.name
        assert group.retain_on_delete, group.name
    assert rec.one("sark:monitoring:Monitoring").outputs["logGroupNames"] == [
        "/sark/test/app", "/sark/test/system", "/sark/test/timescale", "/sark/test/prometheus"]


def test_retention_follows_the_argument(record: Record) -> None:
    assert {g.inputs["retentionInDays"] for g in _run(record, log_retention_days=30).by_type(LOG_GROUP)} == {30}


# --- CloudWatch agent configuration ---------------------------------------------------

def _parameter(rec: Recording, name: str) -> RecordedResource:
    return rec.one(PARAMETER, name)


def _agent(rec: Recording, role: str) -> dict[str, Any]:
    parameter = _parameter(rec, f"mon-agent-{role}")
    assert parameter.inputs["name"] == f"AmazonCloudWatch-mon-{role}"
    assert parameter.inputs["type"] == "String"
    assert parameter.inputs["tier"] == "Standard"
    return json.loads(parameter.inputs["insecureValue"])


def _log_group_names(rec: Recording) -> set[str]:
    return {g.inputs["name"] for g in rec.by_type(LOG_GROUP)}


def test_app_agent_collects_memory_and_disk_per_group_and_instance(rec: Recording) -> None:
    metrics = _agent(rec, "app")["metrics"]
    assert metrics["namespace"] == "CWAgent"
    assert metrics["append_dimensions"] == {"AutoScalingGroupName": "${aws:AutoScalingGroupName}",
                                            "InstanceId": "${aws:InstanceId}"}
    assert metrics["aggregation_dimensions"] == [["AutoScalingGroupName"], ["InstanceId"]]
    collected = metrics["metrics_collected"]
    assert collected["mem"]["measurement"] == ["mem_used_percent"]
    assert collected["disk"]["measurement"] == ["used_percent"]
    assert collected["disk"]["resources"] == ["/"]


def test_app_agent_ships_journal_and_app_logs_to_existing_groups(rec: Recording) -> None:
    files = _agent(rec, "app")["logs"]["logs_collected"]["files"]["collect_list"]
    by_path = {f["file_path"]: f["log_group_name"] for f in files}
    assert by_path == {"/var/log/sark/sark.log": "/sark/test/app", "/var/log/syslog": "/sark/test/system",
                       "/var/log/auth.log": "/sark/test/system", "/var/log/cloud-init-output.log": "/sark/test/system"}
    assert set(by_path.values()) <= _log_group_names(rec)
    streams = [f["log_stream_name"] for f in files]
    assert len(set(streams)) == len(streams)
    assert all(s.startswith("{instance_id}/") for s in streams)


def test_app_agent_scrapes_prometheus_into_the_app_namespace(rec: Recording) -> None:
    prometheus = _agent(rec, "app")["logs"]["metrics_collected"]["prometheus"]
    assert prometheus["prometheus_config_path"] == agent.PROMETHEUS_CONFIG_PATH
    assert prometheus["log_group_name"] == "/sark/test/prometheus"
    assert prometheus["log_group_name"] in _log_group_names(rec)
    emf = prometheus["emf_processor"]
    assert emf["metric_namespace"] == "SARK/App"
    (declaration,) = emf["metric_declaration"]
    assert declaration["source_labels"] == ["job", "Stack"]
    matcher = re.compile(declaration["label_matcher"])
    assert matcher.search("sark;sark-test")
    assert not matcher.search("sark;sark-test-2")
    assert not matcher.search("other;sark-test")
    assert declaration["dimensions"] == [["Stack"]]
    selected = [s.strip("^$") for s in declaration["metric_selectors"]]
    assert selected == ["http_requests_total", "siem_events_sent_total", "siem_events_failed_total", "db_pool_size"]
    assert emf["metric_unit"] == {name: "Count" for name in selected}


def test_prometheus_scrape_config_targets_the_local_metrics_port(rec: Recording) -> None:
    text = _parameter(rec, "mon-agent-app-prometheus").inputs["insecureValue"]
    config = yaml.safe_load(text)
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "sark"
    assert job["metrics_path"] == "/metrics"
    (static,) = job["static_configs"]
    assert static["targets"] == ["localhost:9090"]
    # The labels feed the EMF declaration's source_labels / label_matcher above.
    assert static["labels"] == {"Stack": "sark-test"}
    assert config["global"]["scrape_interval"] == "1m"


def test_component_exposes_what_the_hosts_need(record: Record) -> None:
    holder: dict[str, Monitoring] = {}

    def program() -> None:
        holder["m"] = Monitoring("mon", _args())

    rec = record(program)
    monitoring = holder["m"]
    assert set(monitoring.agent_config_parameter_names) == {"app", "timescale"}
    assert yaml.safe_load(monitoring.prometheus_scrape_config) == yaml.safe_load(
        rec.one(PARAMETER, "mon-agent-app-prometheus").inputs["insecureValue"])
    assert json.loads(monitoring.agent_configs["app"]) == _agent(rec, "app")
    assert monitoring.prometheus_config_path == agent.PROMETHEUS_CONFIG_PATH
    assert ':programname, isequal, "sark" /var/log/sark/sark.log' in monitoring.rsyslog_config.splitlines()
    assert rec.one("sark:monitoring:Monitoring").outputs["agentConfigParameterNames"] == {
        "app": "AmazonCloudWatch-mon-app", "timescale": "AmazonCloudWatch-mon-timescale"}
    # The plain-string form (for args that take a str) names the same parameters.
    assert {role: agent_parameter_name("mon", role) for role in agent.ROLES} == {
        "app": "AmazonCloudWatch-mon-app", "timescale": "AmazonCloudWatch-mon-timescale"}


def test_timescale_agent_watches_the_data_volume_by_path(rec: Recording) -> None:
    config = _agent(rec, "timescale")
    metrics = config["metrics"]
    assert metrics["append_dimensions"] == {"InstanceId": "${aws:InstanceId}"}
    # The data-disk alarm's dimensions (InstanceId + path) must be one of the rollups.
    assert ["InstanceId", "path"] in metrics["aggregation_dimensions"]
    assert metrics["metrics_collected"]["disk"]["resources"] == ["/", "/var/lib/postgresql"]
    assert metrics["metrics_collected"]["mem"]["measurement"] == ["mem_used_percent"]
    assert "metrics_collected" not in config["logs"]
    by_path = {f["file_path"]: f["log_group_name"]
               for f in config["logs"]["logs_collected"]["files"]["collect_list"]}
    assert by_path["/var/log/postgresql/postgresql-*.log"] == "/sark/test/timescale"
    assert by_path["/var/log/syslog"] == "/sark/test/system"


def test_alarm_dimensions_match_what_the_agent_publishes(rec: Recording) -> None:
    alarms = _alarms(rec)
    app = _agent(rec, "app")["metrics"]["aggregation_dimensions"]
    assert sorted(alarms["mon-app-v0-1-0-memory"]["dimensions"]) in app
    timescale = _agent(rec, "timescale")["metrics"]["aggregation_dimensions"]
    assert sorted(alarms["mon-timescale-data-disk"]["dimensions"]) in timescale
    emf = _agent(rec, "app")["logs"]["metrics_collected"]["prometheus"]["emf_processor"]
    assert sorted(alarms["mon-siem-forwarding-failures"]["dimensions"]) in emf["metric_declaration"][0]["dimensions"]
    assert alarms["mon-siem-forwarding-failures"]["namespace"] == emf["metric_namespace"]


def test_data_volume_mount_follows_the_argument(record: Record) -> None:
    rec = _run(record, timescale_data_volume_mount="/data")
    assert _alarms(rec)["mon-timescale-data-disk"]["dimensions"]["path"] == "/data"
    assert _agent(rec, "timescale")["metrics"]["metrics_collected"]["disk"]["resources"] == ["/", "/data"]


def test_large_values_use_the_advanced_tier() -> None:
    assert _tier("x" * SSM_STANDARD_LIMIT) == "Standard"
    assert _tier("x" * (SSM_STANDARD_LIMIT + 1)) == "Advanced"


def test_agent_config_rejects_unknown_roles_and_missing_groups() -> None:
    with pytest.raises(ValueError, match="role 'web' is not known; expected one of app, timescale"):
        agent.agent_config("web", log_groups={}, stack_label="s")
    with pytest.raises(ValueError, match="role 'app' needs log groups prometheus; got app, system"):
        agent.agent_config("app", log_groups={"app": "/a", "system": "/s"}, stack_label="s")


# --- dashboard ------------------------------------------------------------------------

def _panels(rec: Recording) -> dict[str, dict[str, Any]]:
    dashboard = rec.one(DASHBOARD)
    body = json.loads(dashboard.inputs["dashboardBody"])
    return {w["properties"]["title"]: w["properties"] for w in body["widgets"]}


def _series(panel: dict[str, Any]) -> list[tuple[str, ...]]:
    """(namespace, metric, dimension, value) of each metric line; expressions as ("expression", text)."""
    lines = []
    for line in panel["metrics"]:
        if isinstance(line[0], dict):
            lines.append(("expression", line[0]["expression"]))
        else:
            lines.append(tuple(item for item in line if not isinstance(item, dict)))
    return lines


def test_dashboard_has_the_checklist_panels(rec: Recording) -> None:
    panels = _panels(rec)
    assert set(panels) == {"Request rate (requests/minute)", "Error rate (% 5xx)",
                           "Response time p50 / p95 / p99 (seconds)", "SIEM forwarding (events/minute)",
                           "Database connection pool usage", "Memory used (%)", "CPU used (%)"}
    assert all(p["region"] == "us-east-1" for p in panels.values())
    assert rec.one(DASHBOARD).inputs["dashboardName"] == "mon"


def test_dashboard_panel_metrics(rec: Recording) -> None:
    panels = _panels(rec)
    assert _series(panels["Request rate (requests/minute)"]) == [
        ("AWS/ApplicationELB", "RequestCount", "LoadBalancer", LB),
        ("SARK/App", "http_requests_total", "Stack", "sark-test")]
    assert _series(panels["Error rate (% 5xx)"]) == [
        ("expression", "100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests"),
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", LB),
        ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer", LB),
        ("AWS/ApplicationELB", "RequestCount", "LoadBalancer", LB)]
    assert panels["Error rate (% 5xx)"]["annotations"]["horizontal"] == [{"label": "alarm", "value": 5}]
    latency = panels["Response time p50 / p95 / p99 (seconds)"]
    assert [line[-1]["stat"] for line in latency["metrics"]] == ["p50", "p95", "p99"]
    assert {line[:4] == ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", LB]
            for line in latency["metrics"]} == {True}
    assert _series(panels["SIEM forwarding (events/minute)"]) == [
        ("SARK/App", "siem_events_sent_total", "Stack", "sark-test"),
        ("SARK/App", "siem_events_failed_total", "Stack", "sark-test")]
    assert _series(panels["Database connection pool usage"]) == [
        ("SARK/App", "db_pool_size", "Stack", "sark-test"),
        ("AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", DB)]
    assert _series(panels["Memory used (%)"]) == [("CWAgent", "mem_used_percent", "AutoScalingGroupName", ASG)]
    assert _series(panels["CPU used (%)"]) == [("AWS/EC2", "CPUUtilization", "AutoScalingGroupName", ASG)]


def test_dashboard_without_a_load_balancer_drops_its_panels(record: Record) -> None:
    panels = _panels(_run(record, load_balancer_arn_suffix=None, target_group_arn_suffixes={}))
    assert "Error rate (% 5xx)" not in panels
    assert _series(panels["Request rate (requests/minute)"]) == [
        ("SARK/App", "http_requests_total", "Stack", "sark-test")]


# --- structure and bad input ----------------------------------------------------------

def test_children_are_parented_and_named_from_the_component(rec: Recording) -> None:
    component = rec.one("sark:monitoring:Monitoring")
    children = [r for r in rec.resources if r is not component]
    assert all(r.parent == component.urn for r in children)
    assert all(r.name.startswith("mon-") for r in children)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"log_retention_days": 45}, "log_retention_days: 45 is not allowed; expected 30, 60 or 90"),
    ({"log_retention_days": 365}, "log_retention_days: 365 is not allowed; expected 30, 60 or 90"),
    ({"cpu_percent": 150}, "cpu_percent: 150 is not allowed; expected a percentage above 0 and at most 100"),
    ({"p95_latency_ms": 0}, "p95_latency_ms: 0 is not allowed; expected a positive number"),
    ({"db_max_connections": None}, "db_max_connections: None is not allowed; expected the RDS max_connections"),
    ({"alert_https_endpoints": ["http://hooks.example.com/T0KEN"]},
     "alert_https_endpoints: an endpoint starting 'http': is not allowed; expected https:// URLs"),
    ({"load_balancer_arn_suffix": None}, "load_balancer_arn_suffix: None is not allowed with target groups"),
    ({"app_asg_names": {"v1.0": "a", "v1-0": "b"}}, "app_asg_names: keys ['v1-0', 'v1.0'] are not allowed"),
])
def test_bad_arguments_are_named_with_value_and_what_is_allowed(record: Record, overrides: dict[str, Any],
                                                                message: str) -> None:
    with pytest.raises(MonitoringArgsError) as error:
        _run(record, **overrides)
    assert message in str(error.value)
    assert "T0KEN" not in str(error.value)


def test_label_matcher_treats_the_stack_label_literally() -> None:
    config = agent.agent_config("app", log_groups={"app": "/a", "system": "/s", "prometheus": "/p"},
                                stack_label="sark.prod")
    declaration = config["logs"]["metrics_collected"]["prometheus"]["emf_processor"]["metric_declaration"][0]
    matcher = re.compile(declaration["label_matcher"])
    assert matcher.search("sark;sark.prod")
    assert not matcher.search("sark;sarkXprod")


@pytest.mark.parametrize(("value", "ok"), [("30", True), ("60", True), ("90", True), ("45", False), ("14", False)])
def test_log_retention_config_accepts_only_cloudwatch_periods(value: str, ok: bool) -> None:
    from stack_config import ConfigError, parse_config

    raw = {"corsOrigins": '["https://sark.example.com"]', "domainName": "sark.example.com",
           "hostedZoneId": "Z0123456789ABCDEFGHIJ", "splunkHecUrl": "https://splunk.example.com:8088/services/collector",
           "appImageId": "ami-0fedcba9876543210", "timescaleImageId": "ami-0fedcba9876543210",
           "logRetentionDays": value}
    if ok:
        cfg = parse_config(raw.get, project="sark-infra", stack="production", region="us-east-1")
        assert cfg.observability.log_retention_days == int(value)
    else:
        with pytest.raises(ConfigError, match=rf"sark-infra:logRetentionDays: {value} is not allowed; expected "):
            parse_config(raw.get, project="sark-infra", stack="production", region="us-east-1")
