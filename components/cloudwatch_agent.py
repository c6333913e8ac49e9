"""CloudWatch agent configuration for the SARK hosts, as pure functions (no resources).

:class:`components.monitoring.Monitoring` stores what these functions return in SSM
parameters; the hosts (built by the app and data tiers) fetch it at boot with
``amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c ssm:<parameter>``
(docs/observability.md lists the exact commands).

Two roles:

``app``
    memory and root-disk use per Auto Scaling group and per instance; ``/var/log/syslog``,
    ``/var/log/auth.log`` and ``/var/log/cloud-init-output.log`` to the system log group;
    the SARK service's journal (copied to ``/var/log/sark/sark.log`` by the rsyslog drop-in
    :data:`RSYSLOG_SARK_CONF`) to the app log group; and the app's Prometheus endpoint
    (``:9090/metrics``) scraped every minute, with ``http_requests_total``,
    ``siem_events_sent_total``, ``siem_events_failed_total`` and ``db_pool_size`` turned into
    CloudWatch metrics in :data:`APP_NAMESPACE` through embedded metric format (EMF).
``timescale``
    memory use, and disk use of ``/`` and of the data volume mount per instance; the system
    logs and PostgreSQL's log files to their log groups.

Ubuntu keeps the journal in ``/var/log/syslog`` through rsyslog (installed and on by
default), so the agent, which reads files, ships the journal from there; the SARK unit's
lines additionally go to their own file so the app log group holds only the app.

The CloudWatch agent turns Prometheus counters into the *delta* since the previous scrape
(and drops histograms), so in CloudWatch ``siem_events_failed_total`` summed over a minute
is the number of failures in that minute; the alarms and dashboard rely on that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

ROLES: tuple[str, ...] = ("app", "timescale")
"""Host roles that get an agent configuration."""

AGENT_NAMESPACE = "CWAgent"
"""Namespace of the agent's host metrics (the agent's default)."""

APP_NAMESPACE = "SARK/App"
"""Namespace of the app's own (Prometheus) metrics."""

APP_DIMENSION = "Stack"
"""Dimension every app metric carries; its value names the stack (static scrape label)."""

APP_METRICS: Mapping[str, str] = {
    "http_requests_total": "Count",
    "siem_events_sent_total": "Count",
    "siem_events_failed_total": "Count",
    "db_pool_size": "Count",
}
"""App metrics imported into CloudWatch, with their units."""

METRICS_PORT = 9090
PROMETHEUS_JOB = "sark"
PROMETHEUS_CONFIG_PATH = "/opt/aws/amazon-cloudwatch-agent/etc/sark-prometheus.yaml"
"""Where the hosts write :func:`prometheus_scrape_config`; the agent configuration points here."""

APP_LOG_FILE = "/var/log/sark/sark.log"
POSTGRES_LOG_FILES = "/var/log/postgresql/postgresql-*.log"
SYSTEM_LOG_FILES: tuple[str, ...] = ("/var/log/syslog", "/var/log/auth.log", "/var/log/cloud-init-output.log")

LOG_GROUP_KEYS: Mapping[str, tuple[str, ...]] = {
    "app": ("app", "system", "prometheus"),
    "timescale": ("timescale", "system"),
}
"""Log groups (by key) each role's agent writes to; all of them must exist beforehand."""

RSYSLOG_SARK_CONF = """\
# SARK: the sark.service journal goes to its own file, which the CloudWatch agent ships to
# the app log group. Written by the stack (components/cloudwatch_agent.py); the unit logs
# with SyslogIdentifier=sark. "& stop" keeps these lines out of /var/log/syslog (shipped to
# the system log group), so each line is stored once. Ubuntu's rsyslog.conf sets owner,
# group and mode of the files it creates.
:programname, isequal, "sark" /var/log/sark/sark.log
& stop
"""
"""rsyslog drop-in for the app hosts (``/etc/rsyslog.d/30-sark.conf``)."""

LOGROTATE_SARK_CONF = """\
# SARK: the local copy only bridges agent restarts; CloudWatch Logs keeps the history.
/var/log/sark/sark.log {
    daily
    rotate 7
    compress
    delaycompress
    missingok
    notifempty
    postrotate
        /usr/lib/rsyslog/rsyslog-rotate
    endscript
}
"""
"""logrotate policy for the app log file (:data:`LOGROTATE_PATH`), shipped with the rsyslog drop-in:
without it /var/log/sark/sark.log grows until the root volume is full."""

LOGROTATE_PATH = "/etc/logrotate.d/sark"

# Metrics are collected once a minute: standard resolution is what the alarms evaluate,
# and a finer interval would only multiply PutMetricData cost.
_INTERVAL = 60


def _file(path: str, group: str, stream: str) -> dict[str, Any]:
    # {instance_id} keeps each host's lines apart within the shared group.
    return {"file_path": path, "log_group_name": group, "log_stream_name": f"{{instance_id}}/{stream}",
            "timezone": "UTC"}


def _system_logs(group: str) -> list[dict[str, Any]]:
    return [_file(path, group, path.rsplit("/", 1)[-1].removesuffix(".log")) for path in SYSTEM_LOG_FILES]


def agent_config(role: str, *, log_groups: Mapping[str, str], stack_label: str,
                 data_volume_mount: str = "/var/lib/postgresql") -> dict[str, Any]:
    """The CloudWatch agent JSON for one host role.

    :param role: ``app`` or ``timescale``.
    :param log_groups: log group names by key; must hold every key of :data:`LOG_GROUP_KEYS` for the role.
    :param stack_label: value of the :data:`APP_DIMENSION` dimension on the app's metrics.
    :param data_volume_mount: mount point of the TimescaleDB data volume (``timescale`` only).
    """
    if role not in ROLES:
        raise ValueError(f"agent_config: role {role!r} is not known; expected one of {', '.join(ROLES)}")
    missing = [key for key in LOG_GROUP_KEYS[role] if key not in log_groups]
    if missing:
        raise ValueError(f"agent_config: role {role!r} needs log groups {', '.join(missing)}; "
                         f"got {', '.join(sorted(log_groups)) or 'none'}")

    if role == "app":
        dimensions = {"AutoScalingGroupName": "${aws:AutoScalingGroupName}", "InstanceId": "${aws:InstanceId}"}
        # Per-group series are what the alarms watch (one alarm per group, hosts come and go);
        # per-instance ones let an operator find the host.
        aggregation = [["AutoScalingGroupName"], ["InstanceId"]]
        disks = ["/"]
        files = [_file(APP_LOG_FILE, log_groups["app"], "sark"), *_system_logs(log_groups["system"])]
    else:
        dimensions = {"InstanceId": "${aws:InstanceId}"}
        # The disk series keep their path so the data volume has its own alarm; fstype and
        # device are dropped from this rollup so the alarm need not know the file system.
        aggregation = [["InstanceId"], ["InstanceId", "path"]]
        disks = ["/", data_volume_mount]
        files = [_file(POSTGRES_LOG_FILES, log_groups["timescale"], "postgresql"),
                 *_system_logs(log_groups["system"])]

    config: dict[str, Any] = {
        "agent": {"metrics_collection_interval": _INTERVAL, "logfile":
                  "/opt/aws/amazon-cloudwatch-agent/logs/amazon-cloudwatch-agent.log"},
        "metrics": {
            "namespace": AGENT_NAMESPACE,
            "append_dimensions": dimensions,
            "aggregation_dimensions": aggregation,
            "metrics_collected": {
                "mem": {"measurement": ["mem_used_percent"], "metrics_collection_interval": _INTERVAL},
                "disk": {"measurement": ["used_percent"], "resources": disks, "drop_device": True,
                         "metrics_collection_interval": _INTERVAL},
            },
        },
        "logs": {
            "logs_collected": {"files": {"collect_list": files}},
            "force_flush_interval": 15,
        },
    }
    if role == "app":
        config["logs"]["metrics_collected"] = {"prometheus": _prometheus(log_groups["prometheus"], stack_label)}
    return config


def _prometheus(log_group: str, stack_label: str) -> dict[str, Any]:
    return {
        "log_group_name": log_group,
        "prometheus_config_path": PROMETHEUS_CONFIG_PATH,
        "emf_processor": {
            "metric_declaration_dedup": True,
            "metric_namespace": APP_NAMESPACE,
            "metric_unit": dict(APP_METRICS),
            "metric_declaration": [{
                "source_labels": ["job", APP_DIMENSION],
                "label_matcher": f"^{PROMETHEUS_JOB};{_regex_literal(stack_label)}$",
                # One fleet-wide series per metric: each host's per-minute deltas (counters) or
                # values (gauges) land in it, so Sum is the fleet total and Maximum the worst host.
                "dimensions": [[APP_DIMENSION]],
                "metric_selectors": [f"^{name}$" for name in APP_METRICS],
            }],
        },
    }


def _regex_literal(text: str) -> str:
    return "".join("\\" + c if c in r".^$*+?()[]{}|\\" else c for c in text)


def prometheus_scrape_config(stack_label: str) -> str:
    """The Prometheus scrape configuration (YAML) the app hosts write to :data:`PROMETHEUS_CONFIG_PATH`.

    The agent scrapes the app on the host itself, so port 9090 stays closed in the security
    groups to everything but the monitoring CIDRs.
    """
    import yaml

    document = {
        "global": {"scrape_interval": "1m", "scrape_timeout": "10s"},
        "scrape_configs": [{
            "job_name": PROMETHEUS_JOB,
            "metrics_path": "/metrics",
            "scheme": "http",
            "static_configs": [{"targets": [f"localhost:{METRICS_PORT}"], "labels": {APP_DIMENSION: stack_label}}],
        }],
    }
    return yaml.safe_dump(document, sort_keys=False)


def render(config: Mapping[str, Any]) -> str:
    """The agent configuration as the compact JSON stored in SSM."""
    return json.dumps(config, separators=(",", ":"), sort_keys=True)
