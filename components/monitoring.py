"""Alerting, logs, host metrics and the dashboard of the SARK stack.

Checklist: Pre-Deployment 3.3 (Prometheus scraping, alert rules, log aggregation with 30-90
days retention), Deployment 2.4 (metrics reach the monitoring system), Post-Deployment 1
(alerts delivered to people, dashboard) and 5 (p95 response time under 500 ms).

Creates:
- an SNS topic for alerts, encrypted with the stack key, whose policy lets only this
  account's CloudWatch alarms (and the account itself) publish, and only over TLS; one
  subscription per configured email address and HTTPS endpoint;
- CloudWatch log groups ``<prefix>/app``, ``<prefix>/system``, ``<prefix>/timescale`` and
  ``<prefix>/prometheus`` (the agent's embedded-metric-format events), encrypted with the
  stack key, with the configured retention, protected and retained on delete;
- per host role (``app``, ``timescale``) an SSM parameter ``AmazonCloudWatch-<name>-<role>``
  holding the CloudWatch agent configuration (components/cloudwatch_agent.py), and one with
  the app hosts' Prometheus scrape configuration; the ``AmazonCloudWatch-`` prefix is what the
  AWS managed policy ``CloudWatchAgentServerPolicy`` lets hosts read;
- CloudWatch metric alarms, each with ALARM and OK notifications to the topic and a chosen
  treatment of missing data (see :func:`Monitoring._alarms`): 5xx error rate, p95 response
  time, unhealthy targets per target group, CPU and memory per app Auto Scaling group, SIEM
  forwarding failures, app hosts running without an out-of-band secret (the SIEM token not
  set yet: SARK started with forwarding off), database connections and app pool usage, RDS free storage, cache
  memory / engine CPU / evictions per cache cluster, TimescaleDB host status checks and data
  volume disk use;
- a CloudWatch dashboard with the checklist's panels.

Every data-tier input is optional so the component can be wired tier by tier; the policy
``aws-cloudwatch-require-sark-alarms`` fails the preview if a load balancer, target group,
database, cache, TimescaleDB host or Auto Scaling group of the stack ends up without its alarms.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components import cloudwatch_agent as agent

ALB = "AWS/ApplicationELB"
RDS = "AWS/RDS"
EC2 = "AWS/EC2"
ELASTICACHE = "AWS/ElastiCache"

LOG_GROUP_KEYS: tuple[str, ...] = ("app", "system", "timescale", "prometheus")
"""Log groups the component creates, by key (``<prefix>/<key>``)."""

# The retention periods CloudWatch Logs accepts (PutRetentionPolicy); anything else is rejected at deploy time.
LOG_RETENTION_VALUES: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)

MISSING_SECRETS_METRIC = "missing_external_secrets"
"""Published by the app hosts (components/templates/app/render_env.py) in :data:`agent.APP_NAMESPACE`."""

# SSM standard parameters hold up to 4 KB; larger values need the (paid) advanced tier.
SSM_STANDARD_LIMIT = 4096
GIB = 1024 ** 3


class MonitoringArgsError(pulumi.RunError):
    """An argument of :class:`Monitoring` is invalid; the message names it, its value and what is allowed."""


@dataclass(frozen=True, kw_only=True)
class MonitoringArgs:
    """Arguments of :class:`Monitoring`."""

    region: str
    """AWS region of the stack; scopes the topic policy and places the dashboard's widgets."""

    kms_key_arn: pulumi.Input[str]
    """The stack key; encrypts the alert topic and the log groups."""

    stack_label: str
    """Value of the ``Stack`` dimension on the app's metrics (e.g. ``sark-production``)."""

    log_group_prefix: str | None = None
    """Log groups are named ``<prefix>/<key>``; None uses ``/sark/<name>``."""

    log_retention_days: int = 90
    """Days logs are kept; the checklist asks for 30 to 90."""

    alert_emails: Sequence[str] = ()
    """Email addresses subscribed to the alert topic (each must confirm the subscription once)."""

    alert_https_endpoints: Sequence[str] = ()
    """HTTPS endpoints (PagerDuty, chat integrations) subscribed to the alert topic. They often embed
    an integration key, so they are passed to AWS as secrets and never appear in resource names."""

    load_balancer_arn_suffix: pulumi.Input[str] | None = None
    """``arn_suffix`` of the application load balancer (the ``LoadBalancer`` dimension); None: no ALB alarms."""

    target_group_arn_suffixes: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """``arn_suffix`` of each target group, keyed by a stable name (e.g. the app version it serves)."""

    app_asg_names: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Name of each app Auto Scaling group, keyed by a stable name (one group per live version in a canary)."""

    db_instance_identifier: pulumi.Input[str] | None = None
    """RDS instance identifier (the ``DBInstanceIdentifier`` dimension); None: no RDS alarms."""

    db_max_connections: int | None = None
    """``max_connections`` of the RDS parameter group; required with ``db_instance_identifier``."""

    app_db_pool_size: int = 20
    """POSTGRES_POOL_SIZE of the app (connections one pool may hold)."""

    cache_cluster_ids: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """ElastiCache member cluster ids (the ``CacheClusterId`` dimension), keyed by a stable name;
    see :func:`cache_member_cluster_ids`."""

    timescale_instance_id: pulumi.Input[str] | None = None
    """EC2 instance id of the TimescaleDB host; None: no TimescaleDB alarms."""

    timescale_data_volume_mount: str = "/var/lib/postgresql"
    """Mount point of the TimescaleDB data volume (the ``path`` dimension of its disk metric)."""

    missing_secrets_alarm: bool = True
    """Alarm when an app host runs without an out-of-band secret (metric ``missing_external_secrets``,
    published by sark-render-env on the hosts every 5 minutes)."""

    timescale_system_check_alarm: bool = True
    """Alarm on ``StatusCheckFailed_System`` too. Turn off only when the TimescaleDB component already
    has an alarm on it that notifies the alert topic (e.g. its auto-recover alarm)."""

    error_rate_percent: float = 5.0
    """Alarm when 5xx responses exceed this share of requests over 5 minutes (checklist: 5%)."""

    p95_latency_ms: float = 500.0
    """Alarm when the p95 target response time exceeds this (checklist: 500 ms)."""

    cpu_percent: float = 90.0
    """Alarm when a host's CPU exceeds this (checklist: 90%)."""

    memory_percent: float = 80.0
    """Alarm when a host's memory use exceeds this (checklist: 80%)."""

    db_connections_percent: float = 80.0
    """Alarm when RDS connections exceed this share of ``db_max_connections``."""

    db_pool_usage_percent: float = 80.0
    """Alarm when the app's ``db_pool_size`` reaches this share of ``app_db_pool_size``."""

    db_min_free_storage_gb: float = 10.0
    """Alarm when RDS free storage drops below this many GiB."""

    cache_memory_percent: float = 80.0
    """Alarm when a cache node's ``DatabaseMemoryUsagePercentage`` exceeds this."""

    cache_engine_cpu_percent: float = 90.0
    """Alarm when a cache node's engine thread CPU exceeds this."""

    timescale_disk_percent: float = 80.0
    """Alarm when the TimescaleDB data volume is fuller than this."""


def cache_member_cluster_ids(replication_group_id: pulumi.Input[str], node_count: int) -> dict[str, pulumi.Output[str]]:
    """Member cluster ids of a (cluster-mode disabled) replication group: ``<id>-001``, ``<id>-002``, ...

    ElastiCache names the members this way, so the ids (and one set of alarms per member) are
    known at preview time instead of waiting for ``member_clusters``.
    """
    return {f"{index:03d}": pulumi.Output.concat(replication_group_id, f"-{index:03d}")
            for index in range(1, node_count + 1)}


def agent_parameter_name(name: str, role: str) -> str:
    """Name of the SSM parameter holding the agent configuration of ``role``, for a Monitoring named ``name``.

    Known before anything is created, for components that take the name as a plain string
    (e.g. ``TimescaleHostArgs.cloudwatch_agent_parameter``).
    """
    return f"AmazonCloudWatch-{name}-{role}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower() or "x"


def validate_args(args: MonitoringArgs) -> list[str]:
    """Every problem with ``args``, as messages naming the argument, its value and what is allowed."""
    problems: list[str] = []
    if args.log_retention_days not in LOG_RETENTION_VALUES or not 30 <= args.log_retention_days <= 90:
        problems.append(f"log_retention_days: {args.log_retention_days} is not allowed; expected 30, 60 or 90 "
                        "(CloudWatch Logs retention values within the checklist's 30-90 days)")
    problems += _threshold_problems(args)
    if args.db_instance_identifier is not None and (args.db_max_connections is None or args.db_max_connections < 1):
        problems.append(f"db_max_connections: {args.db_max_connections} is not allowed; expected the RDS "
                        "max_connections (a positive whole number) when db_instance_identifier is set")
    for endpoint in args.alert_https_endpoints:
        if not endpoint.startswith("https://"):
            # Only the scheme is shown: the rest of such a URL is often an integration key.
            problems.append(f"alert_https_endpoints: an endpoint starting {endpoint.split(':', 1)[0]!r}: is not "
                            "allowed; expected https:// URLs")
    problems += [f"alert_emails: {email!r} is not allowed; expected an email address"
                 for email in args.alert_emails if "@" not in email or email != email.strip()]
    if args.target_group_arn_suffixes and args.load_balancer_arn_suffix is None:
        problems.append("load_balancer_arn_suffix: None is not allowed with target groups; UnHealthyHostCount "
                        "is published per target group AND load balancer")
    for key, keys in (("target_group_arn_suffixes", args.target_group_arn_suffixes),
                      ("app_asg_names", args.app_asg_names), ("cache_cluster_ids", args.cache_cluster_ids)):
        slugs = [_slug(k) for k in keys]
        if len(set(slugs)) != len(slugs):
            problems.append(f"{key}: keys {sorted(keys)} are not allowed; expected keys that stay distinct as "
                            "resource names (letters, digits and hyphens)")
    if not args.timescale_data_volume_mount.startswith("/"):
        problems.append(f"timescale_data_volume_mount: {args.timescale_data_volume_mount!r} is not allowed; "
                        "expected an absolute path")
    return problems


def _threshold_problems(args: MonitoringArgs) -> list[str]:
    problems: list[str] = []
    percents = {
        "error_rate_percent": args.error_rate_percent, "cpu_percent": args.cpu_percent,
        "memory_percent": args.memory_percent, "db_connections_percent": args.db_connections_percent,
        "db_pool_usage_percent": args.db_pool_usage_percent, "cache_memory_percent": args.cache_memory_percent,
        "cache_engine_cpu_percent": args.cache_engine_cpu_percent,
        "timescale_disk_percent": args.timescale_disk_percent,
    }
    problems += [f"{key}: {value:g} is not allowed; expected a percentage above 0 and at most 100"
                 for key, value in percents.items() if not 0 < value <= 100]
    positives = {"p95_latency_ms": args.p95_latency_ms, "db_min_free_storage_gb": args.db_min_free_storage_gb}
    problems += [f"{key}: {value:g} is not allowed; expected a positive number"
                 for key, value in positives.items() if value <= 0]
    if args.app_db_pool_size < 1:
        problems.append(f"app_db_pool_size: {args.app_db_pool_size} is not allowed; expected at least 1")
    return problems


class Monitoring(pulumi.ComponentResource):
    """Alert topic, log groups, CloudWatch agent configuration, alarms and dashboard."""

    alert_topic_arn: pulumi.Output[str]
    """ARN of the SNS topic every alarm notifies."""

    alarm_names: pulumi.Output[list[str]]
    """Names of all alarms, sorted."""

    dashboard_name: pulumi.Output[str]
    """Name of the CloudWatch dashboard."""

    log_group_names: pulumi.Output[list[str]]
    """Names of the log groups, in :data:`LOG_GROUP_KEYS` order."""

    log_group_arns: pulumi.Output[list[str]]
    """ARNs of the log groups (for scoping a host role's ``logs:PutLogEvents``)."""

    agent_config_parameter_names: dict[str, pulumi.Output[str]]
    """Host role (``app``, ``timescale``) -> SSM parameter holding its CloudWatch agent configuration."""

    agent_configs: dict[str, str]
    """Host role -> the CloudWatch agent configuration JSON stored in that parameter."""

    prometheus_parameter_name: pulumi.Output[str]
    """SSM parameter holding :attr:`prometheus_scrape_config`."""

    prometheus_scrape_config: str
    """Prometheus scrape configuration (YAML) the app hosts write to :attr:`prometheus_config_path`."""

    prometheus_config_path: str
    """Where the app hosts must write the scrape configuration."""

    rsyslog_config: str
    """rsyslog drop-in the app hosts write to ``/etc/rsyslog.d/30-sark.conf`` (the app's journal to a file)."""

    app_metrics_namespace: str
    """CloudWatch namespace of the app's Prometheus metrics."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:monitoring:Monitoring", name, None, opts)
        problems = validate_args(args)
        if problems:
            raise MonitoringArgsError(f"{name}: invalid monitoring arguments:\n  " + "\n  ".join(problems))
        self._name = name
        self._args = args

        self._topic = self._alert_topic(name, args)
        log_groups = self._log_groups(name, args)
        self._agent_parameters(name, args, {key: f"{self._log_prefix}/{key}" for key in LOG_GROUP_KEYS})
        alarms = self._alarms(name, args)
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=_slug(name),
            dashboard_body=pulumi.Output.json_dumps(self._dashboard_body(args)),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.alert_topic_arn = self._topic.arn
        self.alarm_names = pulumi.Output.all(*[alarm.name for alarm in alarms]).apply(sorted)
        self.dashboard_name = dashboard.dashboard_name
        self.log_group_names = pulumi.Output.all(*[group.name for group in log_groups.values()])
        self.log_group_arns = pulumi.Output.all(*[group.arn for group in log_groups.values()])
        self.app_metrics_namespace = agent.APP_NAMESPACE
        self.register_outputs({
            "alertTopicArn": self.alert_topic_arn,
            "alarmNames": self.alarm_names,
            "dashboardName": self.dashboard_name,
            "logGroupNames": self.log_group_names,
            "logGroupArns": self.log_group_arns,
            "agentConfigParameterNames": self.agent_config_parameter_names,
            "prometheusParameterName": self.prometheus_parameter_name,
        })

    # ----------------------------------------------------------------------------------
    # Notifications
    # ----------------------------------------------------------------------------------

    def _alert_topic(self, name: str, args: MonitoringArgs) -> aws.sns.Topic:
        child = pulumi.ResourceOptions(parent=self)
        topic = aws.sns.Topic(f"{name}-alerts", kms_master_key_id=args.kms_key_arn,
                              display_name="SARK alerts", opts=child)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        aws.sns.TopicPolicy(
            f"{name}-alerts-policy",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, account_id).apply(
                lambda values: json.dumps(topic_policy(values[0], values[1], args.region))),
            opts=child,
        )
        for email in args.alert_emails:
            aws.sns.TopicSubscription(f"{name}-alerts-email-{_slug(email)}", topic=topic.arn, protocol="email",
                                      endpoint=email, opts=child)
        for endpoint in args.alert_https_endpoints:
            # Named by a digest: the URL usually carries an integration key that must not reach a URN.
            digest = hashlib.sha256(endpoint.encode()).hexdigest()[:12]
            aws.sns.TopicSubscription(f"{name}-alerts-https-{digest}", topic=topic.arn, protocol="https",
                                      endpoint=pulumi.Output.secret(endpoint), opts=child)
        return topic

    # ----------------------------------------------------------------------------------
    # Logs and the agent configuration
    # ----------------------------------------------------------------------------------

    @property
    def _log_prefix(self) -> str:
        return (self._args.log_group_prefix or f"/sark/{self._name}").rstrip("/")

    def _log_groups(self, name: str, args: MonitoringArgs) -> dict[str, aws.cloudwatch.LogGroup]:
        groups: dict[str, aws.cloudwatch.LogGroup] = {}
        for key in LOG_GROUP_KEYS:
            groups[key] = aws.cloudwatch.LogGroup(
                f"{name}-{key}-logs",
                name=f"{self._log_prefix}/{key}",
                retention_in_days=args.log_retention_days,
                kms_key_id=args.kms_key_arn,
                deletion_protection_enabled=True,
                # Host and audit-service logs are evidence after an incident; a replace or an
                # accidental delete must not take them with it.
                opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True),
            )
        return groups

    def _agent_parameters(self, name: str, args: MonitoringArgs, log_groups: Mapping[str, str]) -> None:
        child = pulumi.ResourceOptions(parent=self)
        self.agent_configs = {
            role: agent.render(agent.agent_config(role, log_groups=log_groups, stack_label=args.stack_label,
                                                  data_volume_mount=args.timescale_data_volume_mount))
            for role in agent.ROLES
        }
        self.agent_config_parameter_names = {}
        for role, text in self.agent_configs.items():
            parameter = aws.ssm.Parameter(
                f"{name}-agent-{role}",
                name=agent_parameter_name(name, role),
                description=f"CloudWatch agent configuration of the SARK {role} hosts (generated by the stack)",
                type="String",
                # Plain configuration, no secrets: insecure_value keeps it readable in previews.
                insecure_value=text,
                tier=_tier(text),
                opts=child,
            )
            self.agent_config_parameter_names[role] = parameter.name
        self.prometheus_scrape_config = agent.prometheus_scrape_config(args.stack_label)
        self.prometheus_config_path = agent.PROMETHEUS_CONFIG_PATH
        self.rsyslog_config = agent.RSYSLOG_SARK_CONF
        prometheus = aws.ssm.Parameter(
            f"{name}-agent-app-prometheus",
            name=agent_parameter_name(name, "app-prometheus"),
            description="Prometheus scrape configuration of the SARK app hosts' CloudWatch agent; hosts write it "
                        f"to {agent.PROMETHEUS_CONFIG_PATH}",
            type="String",
            insecure_value=self.prometheus_scrape_config,
            tier=_tier(self.prometheus_scrape_config),
            opts=child,
        )
        self.prometheus_parameter_name = prometheus.name

    # ----------------------------------------------------------------------------------
    # Alarms
    # ----------------------------------------------------------------------------------

    def _alarm(self, what: str, *, description: str, threshold: float, comparison: str, evaluation_periods: int,
               treat_missing_data: str, severity: str = "warning", **metric: Any) -> aws.cloudwatch.MetricAlarm:
        alarm_name = f"{self._name}-{what}"
        return aws.cloudwatch.MetricAlarm(
            alarm_name,
            name=alarm_name,
            alarm_description=f"[{severity}] {description} Runbook: docs/observability.md#alarms",
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods,
            treat_missing_data=treat_missing_data,
            actions_enabled=True,
            alarm_actions=[self._topic.arn],
            # Recovery is news too: on-call closes the incident when the OK arrives.
            ok_actions=[self._topic.arn],
            tags={"sark:severity": severity},
            opts=pulumi.ResourceOptions(parent=self),
            **metric,
        )

    def _alarms(self, name: str, args: MonitoringArgs) -> list[aws.cloudwatch.MetricAlarm]:
        alarms: list[aws.cloudwatch.MetricAlarm] = []
        alarm = self._alarm
        app_dims = {agent.APP_DIMENSION: args.stack_label}

        alarms.append(alarm(
            "siem-forwarding-failures",
            description="Audit events failed to reach the SIEM in each of the last 2 minutes.",
            severity="critical",
            namespace=agent.APP_NAMESPACE, metric_name="siem_events_failed_total", dimensions=app_dims,
            # The agent publishes counter deltas, so the per-minute Sum is the failures in that minute.
            statistic="Sum", period=60, evaluation_periods=2,
            threshold=0, comparison="GreaterThanThreshold",
            # The labelled counter has no series until the first failure, and an idle minute
            # publishes nothing: silence means no failures. A dead app is caught by target health.
            treat_missing_data="notBreaching",
        ))
        if args.missing_secrets_alarm:
            alarms.append(alarm(
                "missing-external-secrets",
                description="An app host runs without a secret an operator must set (the SIEM token, a Consul or "
                            "Vault token): SARK started with that integration OFF, so audit events are not "
                            "forwarded. Set the value and restart the service (docs/app-tier.md, first deployment).",
                severity="critical",
                namespace=agent.APP_NAMESPACE, metric_name=MISSING_SECRETS_METRIC, dimensions=app_dims,
                # Each host publishes its count every 5 minutes; the worst host decides.
                statistic="Maximum", period=300, evaluation_periods=1,
                threshold=1, comparison="GreaterThanOrEqualToThreshold",
                # No host reporting means no host running; the target-health alarms page for that.
                treat_missing_data="notBreaching",
            ))
        pool_limit = args.app_db_pool_size * args.db_pool_usage_percent / 100
        alarms.append(alarm(
            "db-pool-usage",
            description=f"An app database pool holds {pool_limit:g}+ of its {args.app_db_pool_size} connections.",
            namespace=agent.APP_NAMESPACE, metric_name="db_pool_size", dimensions=app_dims,
            statistic="Maximum", period=60, evaluation_periods=3,
            threshold=pool_limit, comparison="GreaterThanOrEqualToThreshold",
            # No datapoints means no app is running; the target-health alarms page for that.
            treat_missing_data="notBreaching",
        ))

        if args.load_balancer_arn_suffix is not None:
            lb_dims = {"LoadBalancer": args.load_balancer_arn_suffix}

            def count(metric_name: str, query_id: str) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
                return aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id=query_id, return_data=False,
                    metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                        namespace=ALB, metric_name=metric_name, dimensions=lb_dims, period=300, stat="Sum"))

            alarms.append(alarm(
                "http-5xx-rate",
                description=f"More than {args.error_rate_percent:g}% of requests got a 5xx response over 5 minutes.",
                metric_queries=[
                    count("HTTPCode_Target_5XX_Count", "target5xx"),
                    count("HTTPCode_ELB_5XX_Count", "elb5xx"),
                    count("RequestCount", "requests"),
                    aws.cloudwatch.MetricAlarmMetricQueryArgs(
                        id="errorrate", return_data=True, label="5xx responses (% of requests)",
                        # The 5xx counts are only published when non-zero: a missing one means none.
                        expression="100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests"),
                ],
                evaluation_periods=1, threshold=args.error_rate_percent, comparison="GreaterThanThreshold",
                # No requests in the window: nothing failed.
                treat_missing_data="notBreaching",
            ))
            alarms.append(alarm(
                "http-p95-latency",
                description=f"p95 target response time above {args.p95_latency_ms:g} ms for 10 minutes.",
                namespace=ALB, metric_name="TargetResponseTime", dimensions=lb_dims,
                extended_statistic="p95", period=300, evaluation_periods=2,
                threshold=args.p95_latency_ms / 1000, comparison="GreaterThanThreshold",
                # A p95 over a handful of night-time requests is noise, and no requests is no latency.
                evaluate_low_sample_count_percentiles="ignore",
                treat_missing_data="notBreaching",
            ))
            for key, suffix in sorted(args.target_group_arn_suffixes.items()):
                alarms.append(alarm(
                    f"tg-{_slug(key)}-unhealthy-hosts",
                    description=f"Target group {key} has an unhealthy target (failing /health) for 2 minutes.",
                    namespace=ALB, metric_name="UnHealthyHostCount",
                    dimensions={"TargetGroup": suffix, "LoadBalancer": args.load_balancer_arn_suffix},
                    statistic="Maximum", period=60, evaluation_periods=2,
                    threshold=1, comparison="GreaterThanOrEqualToThreshold",
                    # The ALB publishes this every minute for a group it routes to; a group with no
                    # listener rule has no targets serving traffic to be unhealthy.
                    treat_missing_data="notBreaching",
                ))

        for key, asg_name in sorted(args.app_asg_names.items()):
            asg_dims = {"AutoScalingGroupName": asg_name}
            alarms.append(alarm(
                f"app-{_slug(key)}-cpu",
                description=f"An app host of group {key} used more than {args.cpu_percent:g}% CPU for 10 minutes.",
                namespace=EC2, metric_name="CPUUtilization", dimensions=asg_dims,
                # Maximum: one saturated host slows every request it serves even when the group average looks fine.
                statistic="Maximum", period=300, evaluation_periods=2,
                threshold=args.cpu_percent, comparison="GreaterThanThreshold",
                # A group scaled to zero (the old version after a canary) has no CPU to exhaust.
                treat_missing_data="notBreaching",
            ))
            alarms.append(alarm(
                f"app-{_slug(key)}-memory",
                description=f"An app host of group {key} used more than {args.memory_percent:g}% memory for "
                            "10 minutes.",
                namespace=agent.AGENT_NAMESPACE, metric_name="mem_used_percent", dimensions=asg_dims,
                statistic="Maximum", period=300, evaluation_periods=2,
                threshold=args.memory_percent, comparison="GreaterThanThreshold",
                # As for CPU: an empty group publishes nothing; dead hosts are caught by target health.
                treat_missing_data="notBreaching",
            ))

        if args.db_instance_identifier is not None:
            db_dims = {"DBInstanceIdentifier": args.db_instance_identifier}
            max_connections = args.db_max_connections or 0
            limit = max_connections * args.db_connections_percent / 100
            alarms.append(alarm(
                "db-connections",
                description=f"RDS holds more than {limit:g} of its {max_connections} max_connections for "
                            "3 minutes; the app pools are close to exhausting the database.",
                namespace=RDS, metric_name="DatabaseConnections", dimensions=db_dims,
                statistic="Maximum", period=60, evaluation_periods=3,
                threshold=limit, comparison="GreaterThanThreshold",
                # RDS publishes this every minute while the instance is up; silence means the
                # database is down or stopped, which is worth the same page.
                treat_missing_data="breaching",
            ))
            alarms.append(alarm(
                "db-free-storage",
                description=f"RDS has less than {args.db_min_free_storage_gb:g} GiB of free storage.",
                namespace=RDS, metric_name="FreeStorageSpace", dimensions=db_dims,
                statistic="Minimum", period=300, evaluation_periods=1,
                threshold=args.db_min_free_storage_gb * GIB, comparison="LessThanThreshold",
                # Keep the last state through gaps: the connections alarm already pages for an
                # instance that stopped reporting.
                treat_missing_data="missing",
            ))

        for key, cluster_id in sorted(args.cache_cluster_ids.items()):
            cache_dims = {"CacheClusterId": cluster_id}
            slug = _slug(key)
            alarms.append(alarm(
                f"cache-{slug}-memory",
                description=f"Cache node {key} uses more than {args.cache_memory_percent:g}% of its maxmemory.",
                namespace=ELASTICACHE, metric_name="DatabaseMemoryUsagePercentage", dimensions=cache_dims,
                statistic="Maximum", period=300, evaluation_periods=2,
                threshold=args.cache_memory_percent, comparison="GreaterThanThreshold",
                # Gaps happen while ElastiCache replaces a node; keep the last state rather than
                # paging or clearing on them.
                treat_missing_data="missing",
            ))
            alarms.append(alarm(
                f"cache-{slug}-engine-cpu",
                description=f"The engine thread of cache node {key} is above {args.cache_engine_cpu_percent:g}% CPU.",
                namespace=ELASTICACHE, metric_name="EngineCPUUtilization", dimensions=cache_dims,
                statistic="Average", period=300, evaluation_periods=2,
                threshold=args.cache_engine_cpu_percent, comparison="GreaterThanThreshold",
                treat_missing_data="missing",
            ))
            alarms.append(alarm(
                f"cache-{slug}-evictions",
                description=f"Cache node {key} evicted keys for 10 minutes: it is too small for the working set "
                            "(sessions and rate-limit counters get dropped).",
                namespace=ELASTICACHE, metric_name="Evictions", dimensions=cache_dims,
                statistic="Sum", period=300, evaluation_periods=2,
                threshold=0, comparison="GreaterThanThreshold",
                # No datapoint is no eviction.
                treat_missing_data="notBreaching",
            ))

        if args.timescale_instance_id is not None:
            host_dims = {"InstanceId": args.timescale_instance_id}
            checks = ["StatusCheckFailed", *(["StatusCheckFailed_System"] if args.timescale_system_check_alarm else [])]
            for metric_name in checks:
                what = "timescale-status-check" if metric_name == "StatusCheckFailed" else "timescale-system-check"
                alarms.append(alarm(
                    what,
                    description=f"The TimescaleDB host fails its EC2 {metric_name} for 2 minutes.",
                    severity="critical",
                    namespace=EC2, metric_name=metric_name, dimensions=host_dims,
                    statistic="Maximum", period=60, evaluation_periods=2,
                    threshold=1, comparison="GreaterThanOrEqualToThreshold",
                    # EC2 reports status checks every minute for a running instance; none means the
                    # only TimescaleDB host is stopped or gone, an outage of the audit store.
                    treat_missing_data="breaching",
                ))
            alarms.append(alarm(
                "timescale-data-disk",
                description=f"The TimescaleDB data volume ({args.timescale_data_volume_mount}) is more than "
                            f"{args.timescale_disk_percent:g}% full.",
                severity="critical",
                namespace=agent.AGENT_NAMESPACE, metric_name="disk_used_percent",
                dimensions={**host_dims, "path": args.timescale_data_volume_mount},
                statistic="Maximum", period=300, evaluation_periods=1,
                threshold=args.timescale_disk_percent, comparison="GreaterThanThreshold",
                # Nothing else watches this disk: if the agent stops reporting, that is itself a page.
                treat_missing_data="breaching",
            ))
        return alarms

    # ----------------------------------------------------------------------------------
    # Dashboard
    # ----------------------------------------------------------------------------------

    def _dashboard_body(self, args: MonitoringArgs) -> dict[str, Any]:
        """The dashboard as a dict; Outputs inside are resolved by ``Output.json_dumps``."""
        app = [agent.APP_NAMESPACE]
        app_dims = [agent.APP_DIMENSION, args.stack_label]
        widgets: list[dict[str, Any]] = []

        def panel(title: str, metrics: list[Any], *, stat: str = "Sum", period: int = 60,
                  annotations: list[dict[str, Any]] | None = None, y_label: str = "") -> None:
            properties: dict[str, Any] = {
                "title": title, "region": args.region, "view": "timeSeries", "stacked": False,
                "stat": stat, "period": period, "metrics": metrics,
            }
            if annotations:
                properties["annotations"] = {"horizontal": annotations}
            if y_label:
                properties["yAxis"] = {"left": {"label": y_label, "showUnits": False}}
            index = len(widgets)
            widgets.append({"type": "metric", "x": (index % 2) * 12, "y": (index // 2) * 6, "width": 12,
                            "height": 6, "properties": properties})

        lb = args.load_balancer_arn_suffix
        requests: list[Any] = [[*app, "http_requests_total", *app_dims, {"label": "app (Prometheus)"}]]
        if lb is not None:
            requests.insert(0, [ALB, "RequestCount", "LoadBalancer", lb, {"label": "load balancer"}])
        panel("Request rate (requests/minute)", requests)
        if lb is not None:
            panel("Error rate (% 5xx)", [
                [{"expression": "100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests", "id": "errorrate",
                  "label": "5xx %"}],
                [ALB, "HTTPCode_Target_5XX_Count", "LoadBalancer", lb, {"id": "target5xx", "visible": False}],
                [ALB, "HTTPCode_ELB_5XX_Count", "LoadBalancer", lb, {"id": "elb5xx", "visible": False}],
                [ALB, "RequestCount", "LoadBalancer", lb, {"id": "requests", "visible": False}],
            ], period=300, annotations=[{"label": "alarm", "value": args.error_rate_percent}], y_label="%")
            panel("Response time p50 / p95 / p99 (seconds)", [
                [ALB, "TargetResponseTime", "LoadBalancer", lb, {"stat": stat, "label": stat}]
                for stat in ("p50", "p95", "p99")
            ], stat="p95", annotations=[{"label": "p95 alarm", "value": args.p95_latency_ms / 1000}])
        panel("SIEM forwarding (events/minute)", [
            [*app, "siem_events_sent_total", *app_dims, {"label": "sent"}],
            [*app, "siem_events_failed_total", *app_dims, {"label": "failed", "color": "#d62728"}],
        ])
        pool: list[Any] = [[*app, "db_pool_size", *app_dims, {"label": "app pool (worst process)"}]]
        pool_annotations = [{"label": "pool alarm", "value": args.app_db_pool_size * args.db_pool_usage_percent / 100}]
        if args.db_instance_identifier is not None:
            pool.append([RDS, "DatabaseConnections", "DBInstanceIdentifier", args.db_instance_identifier,
                         {"label": "RDS connections", "yAxis": "right"}])
        panel("Database connection pool usage", pool, stat="Maximum", annotations=pool_annotations)
        groups = sorted(args.app_asg_names.items())
        panel("Memory used (%)", [[agent.AGENT_NAMESPACE, "mem_used_percent", "AutoScalingGroupName", asg,
                                   {"label": f"app {key}"}] for key, asg in groups],
              stat="Maximum", period=300, annotations=[{"label": "alarm", "value": args.memory_percent}])
        panel("CPU used (%)", [[EC2, "CPUUtilization", "AutoScalingGroupName", asg, {"label": f"app {key}"}]
                               for key, asg in groups],
              stat="Maximum", period=300, annotations=[{"label": "alarm", "value": args.cpu_percent}])
        return {"start": "-PT6H", "periodOverride": "inherit", "widgets": [w for w in widgets
                                                                          if w["properties"]["metrics"]]}


def topic_policy(topic_arn: str, account_id: str, region: str) -> dict[str, Any]:
    """The alert topic's access policy."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # Replaces SNS's default statement: the account's own principals manage and use the topic.
                "Sid": "AccountOwnsTopic",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": ["sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:AddPermission",
                           "sns:RemovePermission", "sns:DeleteTopic", "sns:Subscribe",
                           "sns:ListSubscriptionsByTopic", "sns:Publish"],
                "Resource": topic_arn,
            },
            {
                "Sid": "CloudWatchAlarmsOfThisAccountPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                # Without the source conditions any account's alarms could publish to us (confused deputy).
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{region}:{account_id}:alarm:*"},
                },
            },
            {
                "Sid": "DenyPublishWithoutTls",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


def _tier(value: str) -> str:
    return "Standard" if len(value.encode()) <= SSM_STANDARD_LIMIT else "Advanced"
