"""The SARK app hosts: one Auto Scaling group per live release, and what the hosts read at start.

Creates:
- an IAM role and instance profile for the hosts that may read ONLY this stack's secrets (by
  ARN) and parameters (by path prefix), decrypt with the stack key only through Secrets
  Manager or SSM, and use SSM (Session Manager, Run Command) and the CloudWatch agent;
- non-secret SSM parameters (type String) under ``<parameter_path>/env/``: ENVIRONMENT,
  DEBUG, LOG_LEVEL, CORS_ORIGINS, ..., and the data stores' endpoints; and under
  ``<parameter_path>/secret-arns/`` the ARN (never the value) of each secret;
- per live release (``versions``, keyed by release tag): a launch template (the pinned
  Ubuntu 22.04 LTS image ``image_id``, checked to be Canonical's; IMDSv2 only with hop limit
  1, no public IP, encrypted gp3 root volume, the app security group, gzip-compressed
  cloud-init user data) and an Auto Scaling group across the app subnets, attached to that
  release's target group, with ELB health checks, instance refresh and target-tracking
  scaling (CPU and requests per target) between ``min_size`` and ``max_size``. The groups
  wait for the app subnets' route out (``route_out``: NAT gateways, routes, associations).

The image is pinned in config (``appImageId``), not looked up as "the newest": a lookup
would roll every host, without a release gate, on the first ``pulumi up`` after Canonical
publishes an image. ``scripts/newest_ami.py`` prints the newest id for a deliberate bump.

The boot chain (cloud-init ``runcmd``, in order): hostname, ufw, the CloudWatch agent
(``sark-install-agent``, retried, its failure does not stop the rest), the SARK install
(``sark-install``, retried network steps; writes the install marker ``sark-migrate`` waits
for), then ``systemctl enable`` and ``systemctl start --no-block``: the service waits for
its parameters, secrets and data stores in ``ExecStartPre`` without holding cloud-init. A
secret set out of band (the SIEM token) that has no value yet does not stop the service:
sark-render-env starts SARK with that integration off and publishes the
``missing_external_secrets`` metric, which the monitoring tier alarms on.

Why the hosts do not wait for the databases: user data holds only parameter *names*. The
hosts boot in parallel with the data tier; ``sark-render-env`` (run by the unit as
``ExecStartPre``) reads the parameters and secrets when the service starts and retries until
they exist and the data stores answer. Only the parameters depend on the data stores, so a
first ``pulumi up`` creates hosts, load balancer and databases side by side.

The checklist's commands become cloud-init (rendered with ``yaml.safe_dump``) and the
systemd unit (rendered by :func:`render_unit`); where the checklist is wrong for its tools,
the comments next to the rendered lines say what changed and why.
"""

from __future__ import annotations

import base64
import configparser
import gzip
import io
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import yaml

from components._iam import assume_role_policy, ssm_agent_policy

TEMPLATES = Path(__file__).parent / "templates" / "app"

CANONICAL_OWNER_ID = "099720109477"
UBUNTU_JAMMY_AMD64 = "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"

APP_DIR = "/opt/sark"
ENV_FILE = f"{APP_DIR}/.env.production"
VENV = f"{APP_DIR}/venv"
HOST_CONFIG = "/etc/sark/host.json"
RENDER_ENV = "/usr/local/sbin/sark-render-env"
INSTALL = "/usr/local/sbin/sark-install"
INSTALL_AGENT = "/usr/local/sbin/sark-install-agent"
MIGRATE = "/usr/local/sbin/sark-migrate"
INSTALL_MARKER = "/etc/sark/release-installed"
"""Written by sark-install when the release is installed; sark-migrate waits for it."""
INSTALL_FAILED_MARKER = "/etc/sark/release-install-failed"
UNIT_PATH = "/etc/systemd/system/sark.service"
REPORT_UNIT = "sark-env-report"
"""A timer re-publishing the missing-secret metric every 5 minutes (sark-render-env --report)."""
APT_RETRIES_PATH = "/etc/apt/apt.conf.d/80-sark-retries"
APT_RETRIES = 'Acquire::Retries "10";\n'
"""apt retries failed downloads (cloud-init's package install included) instead of failing the boot."""
METRICS_NAMESPACE = "SARK/App"
MISSING_SECRETS_METRIC = "missing_external_secrets"
SERVICE_USER = "sark"
APP_PORT = 8000
METRICS_PORT = 9090
USER_DATA_LIMIT = 16384
"""EC2 rejects user data larger than 16 KiB (before base64)."""

PACKAGES: tuple[str, ...] = (
    # Python 3.11 from jammy's own universe component (jammy-updates): no third-party PPA on a
    # production host. python3-pip is left out on purpose: it is pip for the system Python
    # 3.10; the venv brings its own pip through python3.11-venv's ensurepip.
    "python3.11", "python3.11-venv", "python3.11-dev",
    "postgresql-client", "redis-tools",
    # python3-dev (headers of the system 3.10) as the checklist asks; C extensions of the app
    # build against python3.11-dev above.
    "build-essential", "libssl-dev", "libffi-dev", "python3-dev",
    "git", "ufw",
    # sark-render-env runs with the system Python and Ubuntu's boto3, independent of the app's venv.
    "python3-boto3",
)

MANAGED_POLICIES: Mapping[str, str] = {
    # Not AmazonSSMManagedInstanceCore: it grants ssm:GetParameter* on every parameter of the
    # account. The SSM agent's own permissions are the inline policy of _iam.ssm_agent_policy.
    "cloudwatch-agent": "CloudWatchAgentServerPolicy",
}

_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
REQUIRED_SECRETS: tuple[str, ...] = ("SECRET_KEY", "POSTGRES_PASSWORD", "TIMESCALE_PASSWORD", "VALKEY_PASSWORD")
SIEM_SECRETS: Mapping[str, str] = {"splunk": "SPLUNK_HEC_TOKEN", "datadog": "DATADOG_API_KEY"}


def version_key(version: str) -> str:
    """A release tag as it appears in resource names (``v0.2.0`` -> ``v0-2-0``)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", version).strip("-").lower() or "release"


# --------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class DataEndpoints:
    """Where the data stores are. Inputs, so literal strings work before the data tier exists."""

    postgres_host: pulumi.Input[str]
    """Address of the RDS instance (without port)."""

    timescale_host: pulumi.Input[str]
    """Private IP or DNS name of the TimescaleDB host."""

    valkey_host: pulumi.Input[str]
    """Primary endpoint address of the ElastiCache replication group."""

    postgres_port: pulumi.Input[int] = 5432
    """PostgreSQL port."""

    timescale_port: pulumi.Input[int] = 5432
    """TimescaleDB port."""

    valkey_port: pulumi.Input[int] = 6379
    """Valkey/Redis port."""

    postgres_user: str = "sark"
    """Database user of the app (checklist 1.2)."""

    postgres_db: str = "sark"
    """Database of the app (checklist 1.2)."""

    timescale_user: str = "sark"
    """TimescaleDB user of the app."""

    timescale_db: str = "sark_audit"
    """TimescaleDB database for audit events (checklist 1.2)."""

    valkey_tls: bool = True
    """Whether the cache requires TLS (ElastiCache in-transit encryption)."""


@dataclass(frozen=True, kw_only=True)
class AppSettings:
    """The app's non-secret settings (checklist 2.2), published as SSM parameters."""

    environment: str = "production"
    """ENVIRONMENT; production switches on the app's own production behaviour (HSTS, strict checks)."""

    log_level: str = "INFO"
    """LOG_LEVEL."""

    cors_origins: Sequence[str] = ()
    """CORS_ORIGINS, the trusted frontend origins; never ``*``."""

    access_token_expire_minutes: int = 15
    """ACCESS_TOKEN_EXPIRE_MINUTES."""

    postgres_pool_size: int = 20
    """POSTGRES_POOL_SIZE."""

    postgres_max_overflow: int = 0
    """POSTGRES_MAX_OVERFLOW: connections a worker's pool may open beyond the pool size (connection budget)."""

    siem_provider: str = "splunk"
    """``splunk``, ``datadog`` or ``none``."""

    splunk_hec_url: str | None = None
    """SPLUNK_HEC_URL (with siem_provider splunk)."""

    splunk_index: str = "sark_audit"
    """SPLUNK_INDEX."""

    datadog_site: str = "datadoghq.com"
    """DATADOG_SITE (with siem_provider datadog)."""


@dataclass(frozen=True, kw_only=True)
class CloudWatchAgentSetup:
    """How the hosts run the CloudWatch agent (the configuration itself is Monitoring's)."""

    config_parameter: str
    """SSM parameter holding the agent configuration; an ``AmazonCloudWatch-`` name, which the
    managed CloudWatchAgentServerPolicy already lets the hosts read."""

    files: Mapping[str, str] = field(default_factory=dict)
    """Files written before the agent starts, path -> content (rsyslog drop-in, Prometheus scrape config)."""

    restart_services: Sequence[str] = ("rsyslog",)
    """Services restarted after the files are written, so they pick them up."""

    package_url: str = ("https://amazoncloudwatch-agent.s3.amazonaws.com/ubuntu/amd64/latest/"
                        "amazon-cloudwatch-agent.deb")
    """The agent's Debian package (AWS does not publish it in an apt repository)."""


@dataclass(frozen=True, kw_only=True)
class AppScaling:
    """Target-tracking scaling of each release's Auto Scaling group, between min and max size."""

    load_balancer_arn_suffix: pulumi.Input[str]
    """``LoadBalancer.arn_suffix``: half of the request-count metric's resource label."""

    target_group_arn_suffixes: Mapping[str, pulumi.Input[str]]
    """Release tag -> ``arn_suffix`` of its target group (the other half)."""

    cpu_target_percent: float = 60.0
    """Average CPU of the group that scaling holds (in and out)."""

    requests_per_target: int = 1000
    """Requests per host per minute that scaling holds (``ALBRequestCountPerTarget``)."""


@dataclass(frozen=True, kw_only=True)
class AppHostsArgs:
    """Arguments of :class:`AppHosts`."""

    region: str
    """AWS region; scopes the parameter ARNs and the KMS via-service condition."""

    stack: str
    """Stack name; part of host names and tags."""

    parameter_path: str
    """SSM path that is this stack's alone, e.g. ``/sark/production``; the hosts may read nothing else."""

    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Private app subnets the Auto Scaling groups spread over."""

    vpc_cidr: pulumi.Input[str]
    """VPC block; ufw on the hosts accepts the app port only from inside it (the load balancer)."""

    security_group_id: pulumi.Input[str]
    """The app security group (``SecurityGroups.app_id``)."""

    kms_key_arn: pulumi.Input[str]
    """The stack key the secrets are encrypted with."""

    image_id: str
    """The pinned Ubuntu 22.04 amd64 image (``appImageId``); a change rolls the hosts through
    instance refresh. Checked at preview to be Canonical's jammy image."""

    repository_url: str
    """Git repository of SARK."""

    versions: Mapping[str, pulumi.Input[str]]
    """Live releases: release tag -> ARN of that release's target group. One Auto Scaling group each."""

    data: DataEndpoints
    """Data-store endpoints (published as parameters; the hosts do not wait on them at creation)."""

    secret_arns: Mapping[str, pulumi.Input[str]]
    """Environment variable name -> Secrets Manager ARN (SECRET_KEY, POSTGRES_PASSWORD, ...)."""

    settings: AppSettings = field(default_factory=AppSettings)
    """The app's non-secret settings."""

    instance_type: str = "m6i.2xlarge"
    """EC2 type (validated by stack_config: at least 4 vCPU / 16 GiB)."""

    workers: int = 17
    """uvicorn ``--workers``: 2 x vCPU + 1 (17 on the default 8 vCPU)."""

    root_volume_gb: int = 500
    """Root volume size; the checklist asks for at least 100 GB (500 recommended)."""

    min_size: int = 2
    """Fewest hosts per release."""

    desired_capacity: int = 2
    """Hosts per release normally."""

    max_size: int = 4
    """Most hosts per release."""

    monitoring_cidrs: Sequence[str] = ()
    """Prometheus servers allowed to :9090 (mirrors the security group in ufw)."""

    admin_cidrs: Sequence[str] = ()
    """SSH sources (mirrors the security group in ufw); empty keeps 22 closed."""

    health_check_grace_period_seconds: int = 900
    """Seconds after launch before ELB health counts: cloud-init installs packages and the app,
    and on a first deployment the service waits for the databases to exist."""

    env_wait_seconds: int = 900
    """How long one start of the service waits for parameters, secrets and data stores before
    failing (systemd then restarts it)."""

    extra_read_parameter_arns: Sequence[pulumi.Input[str]] = ()
    """Further SSM parameters the hosts may read."""

    cloudwatch_agent: CloudWatchAgentSetup | None = None
    """Install and configure the CloudWatch agent (None: no agent)."""

    route_out: Sequence[pulumi.Resource] = ()
    """What gives the app subnets their route to the internet (``Network.app_route_out``): the
    Auto Scaling groups are created after it, so no host boots without a way to its packages."""

    scaling: AppScaling | None = None
    """Target-tracking scaling (None: the groups stay at ``desired_capacity``)."""

    metrics_stack_label: str | None = None
    """Value of the ``Stack`` dimension of the hosts' own metrics (``missing_external_secrets``);
    None: the hosts publish none."""


# --------------------------------------------------------------------------------------
# Pure renderers (tested directly)
# --------------------------------------------------------------------------------------

def render_unit(*, workers: int, app_port: int = APP_PORT) -> str:
    """The systemd unit of the checklist (Deployment 1.1), corrected where it is wrong for its tools."""
    unit = configparser.RawConfigParser(delimiters=("=",), interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit["Unit"] = {
        "Description": "SARK - Security Audit and Resource Kontroler",
        # The checklist's After/Wants=postgresql.service redis.service name services that do
        # not run on this host (RDS, ElastiCache, the TimescaleDB host); ordering on them is
        # meaningless. The network must be up for the data stores to be reachable.
        "After": "network-online.target",
        "Wants": "network-online.target",
        # Restart for ever: on a first deployment the databases may take longer than systemd's
        # default start limit (5 starts in 10 s) to appear.
        "StartLimitIntervalSec": "0",
    }
    unit["Service"] = {
        # The checklist's Type=notify would kill the service: uvicorn never sends sd_notify
        # READY=1, so systemd times the start out. Type=exec reports failure to exec too.
        "Type": "exec",
        "User": SERVICE_USER,
        "Group": SERVICE_USER,
        "WorkingDirectory": APP_DIR,
        # The checklist's PATH=/opt/sark/venv/bin alone hides /usr/bin (psql, git, sh) from the
        # app and its subprocesses; keep the system directories after the venv.
        "Environment": f"PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        # '-': systemd also loads this file for ExecStartPre, before sark-render-env has written
        # it on first start; without the dash that start would fail. ExecStart only runs if the
        # render succeeded, so the app never starts without it.
        "EnvironmentFile": f"-{ENV_FILE}",
        # '+': runs as root (it must write a root-directory file and chown it to sark), and is
        # root-owned outside /opt/sark, so the service user cannot alter what runs as root.
        "ExecStartPre": f"+{RENDER_ENV}",
        # One line (no '\' continuations, which configparser cannot read back). The checklist's
        # `--log-config logging.yaml` is dropped: the file is not part of this deployment and
        # uvicorn exits if it is missing; output goes to the journal. --proxy-headers makes the
        # app see the client's scheme and address from the ALB; trusting any sender is safe
        # because the security group admits port 8000 only from the load balancer.
        "ExecStart": (f"{VENV}/bin/uvicorn sark.main:app --host 0.0.0.0 --port {app_port} --workers {workers} "
                      "--proxy-headers --forwarded-allow-ips *"),
        "ExecReload": "/bin/kill -s HUP $MAINPID",
        "Restart": "always",
        "RestartSec": "5",
        "TimeoutStartSec": "infinity",
        "KillMode": "mixed",
        "KillSignal": "SIGTERM",
        "TimeoutStopSec": "30",
        "StandardOutput": "journal",
        "StandardError": "journal",
        "SyslogIdentifier": "sark",
        # Hardening that costs the app nothing: it cannot gain privileges, write /usr, /boot or
        # /etc, see home directories or other processes' /tmp.
        "NoNewPrivileges": "yes",
        "ProtectSystem": "full",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "StateDirectory": "sark",
        "RuntimeDirectory": "sark",
    }
    unit["Install"] = {"WantedBy": "multi-user.target"}
    buffer = io.StringIO()
    unit.write(buffer, space_around_delimiters=False)
    return buffer.getvalue()


def host_config(*, region: str, parameter_path: str, wait_seconds: int,
                metrics_stack_label: str | None = None) -> dict[str, Any]:
    """``/etc/sark/host.json``: what sark-render-env needs (names only, never values)."""
    config: dict[str, Any] = {
        "region": region,
        "parameterPath": parameter_path,
        "envFile": ENV_FILE,
        "owner": SERVICE_USER,
        "waitSeconds": wait_seconds,
        "waitForDataStores": True,
        "statusFile": "/run/sark-env-status.json",
    }
    if metrics_stack_label:
        config["metrics"] = {"namespace": METRICS_NAMESPACE, "dimensions": {"Stack": metrics_stack_label}}
    return config


def render_report_units() -> dict[str, str]:
    """``sark-env-report.service`` and ``.timer``: the missing-secret metric, every 5 minutes."""
    units: dict[str, str] = {}
    for suffix, sections in (
        ("service", {"Unit": {"Description": "SARK: report out-of-band secrets the service runs without"},
                     "Service": {"Type": "oneshot", "ExecStart": f"{RENDER_ENV} --report"}}),
        ("timer", {"Unit": {"Description": "SARK: report out-of-band secrets every 5 minutes"},
                   "Timer": {"OnBootSec": "5min", "OnUnitActiveSec": "5min", "RandomizedDelaySec": "30s"},
                   "Install": {"WantedBy": "timers.target"}}),
    ):
        unit = configparser.RawConfigParser(delimiters=("=",), interpolation=None)
        unit.optionxform = str  # type: ignore[assignment,method-assign]
        unit.read_dict(sections)
        buffer = io.StringIO()
        unit.write(buffer, space_around_delimiters=False)
        units[f"/etc/systemd/system/{REPORT_UNIT}.{suffix}"] = buffer.getvalue()
    return units


def ufw_commands(*, vpc_cidr: str, monitoring_cidrs: Sequence[str], admin_cidrs: Sequence[str]) -> list[list[str]]:
    """ufw rules mirroring the app security group (a second layer if a group rule is ever widened).

    The checklist opens 22 and 8000 to everyone; here 8000 is open to the VPC (the load
    balancer's subnets), 9090 to the monitoring CIDRs, and 22 only if admin CIDRs are set
    (SSM Session Manager needs no inbound port).
    """
    commands = [["ufw", "default", "deny", "incoming"], ["ufw", "default", "allow", "outgoing"],
                ["ufw", "allow", "from", vpc_cidr, "to", "any", "port", str(APP_PORT), "proto", "tcp"]]
    commands += [["ufw", "allow", "from", cidr, "to", "any", "port", str(METRICS_PORT), "proto", "tcp"]
                 for cidr in monitoring_cidrs]
    commands += [["ufw", "allow", "from", cidr, "to", "any", "port", "22", "proto", "tcp"] for cidr in admin_cidrs]
    commands.append(["ufw", "--force", "enable"])
    return commands


def render_cloud_config(*, stack: str, environment: str, region: str, parameter_path: str, repository_url: str,
                        release: str, workers: int, vpc_cidr: str, monitoring_cidrs: Sequence[str],
                        admin_cidrs: Sequence[str], wait_seconds: int = 900,
                        cloudwatch_agent: CloudWatchAgentSetup | None = None,
                        metrics_stack_label: str | None = None) -> str:
    """The ``#cloud-config`` document of one release's hosts (checklist Pre-Deployment 1.1, 4; Deployment 1.1)."""
    hostname = (f'name="sark-{environment}-$(cloud-init query v1.instance_id)"; hostnamectl set-hostname "$name"; '
                'echo "127.0.1.1 $name" >> /etc/hosts')
    document: dict[str, Any] = {
        "package_update": True,
        # `apt upgrade` of the checklist: every host starts fully patched.
        "package_upgrade": True,
        "packages": list(PACKAGES),
        "timezone": "UTC",
        # Hosts of an Auto Scaling group share one user data, so the checklist's fixed
        # `sark-production-01` would repeat; each host is named after its instance id (runcmd),
        # and cloud-init must not reset that name on reboot.
        "preserve_hostname": True,
        "users": ["default", {
            "name": SERVICE_USER,
            "system": True,
            "homedir": APP_DIR,
            "no_create_home": True,
            "shell": "/usr/sbin/nologin",
            "lock_passwd": True,
        }],
        "write_files": [
            {"path": HOST_CONFIG, "owner": "root:root", "permissions": "0644",
             "content": json.dumps(host_config(region=region, parameter_path=parameter_path,
                                               wait_seconds=wait_seconds, metrics_stack_label=metrics_stack_label),
                                   indent=2) + "\n"},
            # write_files runs in cloud-init's first stage, before the package install.
            {"path": APT_RETRIES_PATH, "owner": "root:root", "permissions": "0644", "content": APT_RETRIES},
            {"path": RENDER_ENV, "owner": "root:root", "permissions": "0755",
             "content": (TEMPLATES / "render_env.py").read_text()},
            {"path": INSTALL, "owner": "root:root", "permissions": "0755",
             "content": (TEMPLATES / "install_sark.sh").read_text()},
            {"path": MIGRATE, "owner": "root:root", "permissions": "0755",
             "content": (TEMPLATES / "migrate.sh").read_text()},
            *([{"path": INSTALL_AGENT, "owner": "root:root", "permissions": "0755",
                "content": (TEMPLATES / "install_agent.sh").read_text()}] if cloudwatch_agent else []),
            {"path": UNIT_PATH, "owner": "root:root", "permissions": "0644", "content": render_unit(workers=workers)},
            *({"path": path, "owner": "root:root", "permissions": "0644", "content": content}
              for path, content in sorted(render_report_units().items())),
            *({"path": path, "owner": "root:root", "permissions": "0644", "content": content}
              for path, content in sorted((cloudwatch_agent.files if cloudwatch_agent else {}).items())),
        ],
        "runcmd": [
            # runcmd becomes one shell script; stop at the first failure so a failed install
            # never enables a half-installed service (sark-install leaves a failure marker that
            # sark-migrate, and so the release gate, reports).
            "set -e",
            ["sh", "-c", hostname],
            *ufw_commands(vpc_cidr=vpc_cidr, monitoring_cidrs=monitoring_cidrs, admin_cidrs=admin_cidrs),
            # Before the app, so the install's output already reaches CloudWatch Logs.
            *([_agent_command(cloudwatch_agent)] if cloudwatch_agent else []),
            [INSTALL, repository_url, release],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "sark.service", f"{REPORT_UNIT}.timer"],
            # --no-block: the start job (ExecStartPre waits for parameters, secrets and data
            # stores, up to waitSeconds and then again after each restart) must not hold
            # cloud-init, nor fail it under `set -e` on a first deployment.
            ["systemctl", "start", "--no-block", "sark.service", f"{REPORT_UNIT}.timer"],
        ],
        "final_message": f"SARK {release} ({stack}) host ready after $UPTIME seconds",
    }
    return "#cloud-config\n" + yaml.dump(document, Dumper=_CloudConfigDumper, sort_keys=False, width=1000)


def _agent_command(agent: CloudWatchAgentSetup) -> list[str]:
    """``sark-install-agent`` (retried network steps) whose failure is logged but does not stop the
    boot: a host without its agent still serves, a host without SARK does not."""
    command = shlex.join([INSTALL_AGENT, agent.config_parameter, *agent.restart_services])
    return ["sh", "-c", f"SARK_AGENT_PACKAGE_URL={shlex.quote(agent.package_url)} {command} || "
                        "echo 'sark: CloudWatch agent setup failed; continuing without it' >&2"]


class _CloudConfigDumper(yaml.SafeDumper):
    """Multi-line strings (the shipped scripts, the unit) as literal blocks: readable in the
    console and scanned by the policy pack as the text the host will see."""


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_CloudConfigDumper.add_representer(str, _represent_text)


USER_DATA_HEADROOM = 4096
"""Bytes the compressed user data must leave free under EC2's limit, so the next script added
does not break the hosts' launch."""


def encode_user_data(text: str) -> str:
    """Gzip, then base64, for a launch template.

    Always compressed (cloud-init recognises gzip user data by its magic bytes): the plain
    document is close to EC2's 16,384-byte limit, compressed it is a third of that.
    ``mtime=0`` keeps the bytes, and so the launch template, identical from run to run.
    """
    raw = gzip.compress(text.encode(), compresslevel=9, mtime=0)
    if len(raw) > USER_DATA_LIMIT - USER_DATA_HEADROOM:
        raise pulumi.RunError(f"user data is {len(raw)} bytes compressed; EC2 allows {USER_DATA_LIMIT} and the "
                              f"stack keeps {USER_DATA_HEADROOM} free")
    return base64.b64encode(raw).decode()


def instance_policy(*, partition: str, region: str, account_id: str, parameter_path: str,
                    secret_arns: Sequence[str], kms_key_arn: str, extra_parameter_arns: Sequence[str] = ()) -> str:
    """IAM policy JSON of the hosts: this stack's secrets and parameters, nothing else."""
    path = parameter_path.rstrip("/")
    parameter_base = f"arn:{partition}:ssm:{region}:{account_id}:parameter{path}"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadThisStacksParameters",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
            # GetParametersByPath is authorised against the path itself, the others against
            # each parameter below it.
            "Resource": sorted({parameter_base, f"{parameter_base}/*", *extra_parameter_arns}),
        },
        {
            "Sid": "ReadThisStacksSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": sorted(set(secret_arns)),
        },
        {
            "Sid": "PublishOwnMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            # PutMetricData has no resource-level permissions; the namespace condition is the scope.
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
        },
        {
            "Sid": "DecryptThroughSecretsManagerAndSsmOnly",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": kms_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": [f"secretsmanager.{region}.amazonaws.com",
                                                              f"ssm.{region}.amazonaws.com"]}},
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=2)


def env_settings(settings: AppSettings) -> dict[str, str]:
    """The non-secret settings as environment variables (the data-store endpoints are added separately)."""
    if settings.siem_provider not in ("splunk", "datadog", "none"):
        raise pulumi.RunError(f"AppHosts: siem_provider {settings.siem_provider!r} is not allowed; "
                              "expected splunk, datadog or none")
    if "*" in settings.cors_origins:
        raise pulumi.RunError('AppHosts: cors_origins contains "*"; expected explicit trusted origins '
                              "(checklist 3.1)")
    values = {
        "ENVIRONMENT": settings.environment,
        "DEBUG": "false",
        "LOG_LEVEL": settings.log_level,
        "CORS_ORIGINS": ",".join(settings.cors_origins),
        "ACCESS_TOKEN_EXPIRE_MINUTES": str(settings.access_token_expire_minutes),
        "POSTGRES_POOL_SIZE": str(settings.postgres_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.postgres_max_overflow),
        "VERIFY_SSL": "true",
        "SPLUNK_ENABLED": "true" if settings.siem_provider == "splunk" else "false",
        "DATADOG_ENABLED": "true" if settings.siem_provider == "datadog" else "false",
    }
    if settings.siem_provider == "splunk":
        if not settings.splunk_hec_url:
            raise pulumi.RunError("AppHosts: splunk_hec_url is not set; expected the HEC URL with siem_provider splunk")
        values |= {"SPLUNK_HEC_URL": settings.splunk_hec_url, "SPLUNK_INDEX": settings.splunk_index}
    elif settings.siem_provider == "datadog":
        values["DATADOG_SITE"] = settings.datadog_site
    return values


def _check_secrets(names: Sequence[str], siem_provider: str) -> None:
    bad = [n for n in names if not _ENV_NAME.match(n)]
    if bad:
        raise pulumi.RunError(f"AppHosts: secret_arns keys {', '.join(bad)} are not environment variable names "
                              "(upper case letters, digits, _)")
    needed = [*REQUIRED_SECRETS]
    if siem_provider in SIEM_SECRETS:
        needed.append(SIEM_SECRETS[siem_provider])
    missing = [n for n in needed if n not in names]
    if missing:
        raise pulumi.RunError(f"AppHosts: secret_arns lacks {', '.join(missing)}; the app needs "
                              f"{', '.join(needed)} (checklist 2.1)")


# --------------------------------------------------------------------------------------
# The component
# --------------------------------------------------------------------------------------

class AppHosts(pulumi.ComponentResource):
    """Launch templates and Auto Scaling groups of the SARK hosts, their role and their parameters."""

    autoscaling_group_names: dict[str, pulumi.Output[str]]
    """Auto Scaling group name per live release tag."""

    launch_template_ids: dict[str, pulumi.Output[str]]
    """Launch template id per live release tag."""

    role_arn: pulumi.Output[str]
    """ARN of the hosts' IAM role."""

    instance_profile_arn: pulumi.Output[str]
    """ARN of the hosts' instance profile."""

    parameter_names: dict[str, pulumi.Output[str]]
    """SSM parameter name per environment variable (settings and secret ARNs)."""

    image_id: str
    """The Ubuntu 22.04 AMI the launch templates use."""

    def __init__(self, name: str, args: AppHostsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:app:AppHosts", name, None, opts)
        if not args.versions:
            raise pulumi.RunError(f"{name}: versions is empty; at least the current release needs hosts")
        if args.scaling is not None:
            lacking = sorted(set(args.versions) - set(args.scaling.target_group_arn_suffixes))
            if lacking:
                raise pulumi.RunError(f"{name}: scaling.target_group_arn_suffixes lacks {', '.join(lacking)}; "
                                      "request-count scaling needs each release's target group")
            if not 1 <= args.scaling.cpu_target_percent <= 100:
                raise pulumi.RunError(f"{name}: scaling.cpu_target_percent {args.scaling.cpu_target_percent:g} is "
                                      "not allowed; expected 1 to 100")
        if not args.parameter_path.startswith("/") or args.parameter_path.rstrip("/").count("/") < 2:
            raise pulumi.RunError(f"{name}: parameter_path {args.parameter_path!r} is not allowed; expected a "
                                  "stack-specific path such as /sark/production")
        _check_secrets(list(args.secret_arns), args.settings.siem_provider)
        path = args.parameter_path.rstrip("/")
        child = pulumi.ResourceOptions(parent=self)

        self.parameter_names = {}
        for key, value in self._env_values(args).items():
            self.parameter_names[key] = self._parameter(name, f"env-{key}", f"{path}/env/{key}", value,
                                                        f"SARK {key} (non-secret setting)")
        for key, arn in sorted(args.secret_arns.items()):
            self.parameter_names[key] = self._parameter(name, f"secret-arn-{key}", f"{path}/secret-arns/{key}", arn,
                                                        f"ARN of the secret holding SARK {key}")

        role = aws.iam.Role(
            f"{name}-role",
            description="SARK app hosts",
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            opts=child,
        )
        for key, policy in MANAGED_POLICIES.items():
            aws.iam.RolePolicyAttachment(f"{name}-{key}", role=role.name,
                                         policy_arn=f"arn:aws:iam::aws:policy/{policy}", opts=child)
        aws.iam.RolePolicy(f"{name}-ssm-agent", role=role.id, policy=ssm_agent_policy(), opts=child)
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        secret_arns = pulumi.Output.all(*args.secret_arns.values())
        extra = pulumi.Output.all(*args.extra_read_parameter_arns)
        # The policy is attached to the role, not referenced by the launch templates, so hosts
        # are created without waiting for secrets whose ARNs come from the data tier; until it
        # exists, sark-render-env retries.
        aws.iam.RolePolicy(
            f"{name}-read-config",
            role=role.id,
            policy=pulumi.Output.all(partition.partition, identity.account_id, secret_arns, args.kms_key_arn,
                                     extra).apply(
                lambda v: instance_policy(partition=v[0], region=args.region, account_id=v[1], parameter_path=path,
                                          secret_arns=v[2], kms_key_arn=v[3], extra_parameter_arns=v[4])),
            opts=child,
        )
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, opts=child)

        if not re.fullmatch(r"ami-[0-9a-f]{8,17}", args.image_id):
            raise pulumi.RunError(f"{name}: image_id {args.image_id!r} is not allowed; expected an AMI id such as "
                                  "ami-0123456789abcdef0 (scripts/newest_ami.py prints the newest Ubuntu 22.04)")
        # The pinned image, looked up only to check it is Canonical's Ubuntu 22.04 amd64 (a
        # preview fails with "no matching EC2 AMI" otherwise) and to learn its root device.
        ami = aws.ec2.get_ami_output(
            owners=[CANONICAL_OWNER_ID],
            filters=[
                aws.ec2.GetAmiFilterArgs(name="image-id", values=[args.image_id]),
                aws.ec2.GetAmiFilterArgs(name="name", values=[UBUNTU_JAMMY_AMD64]),
                aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"]),
                aws.ec2.GetAmiFilterArgs(name="architecture", values=["x86_64"]),
            ],
            opts=pulumi.InvokeOutputOptions(parent=self),
        )

        self.autoscaling_group_names = {}
        self.launch_template_ids = {}
        for version, target_group_arn in args.versions.items():
            key = version_key(version)
            user_data = pulumi.Output.from_input(args.vpc_cidr).apply(lambda cidr, v=version: encode_user_data(
                render_cloud_config(stack=args.stack, environment=args.settings.environment, region=args.region,
                                    parameter_path=path, repository_url=args.repository_url, release=v,
                                    workers=args.workers, vpc_cidr=cidr, monitoring_cidrs=args.monitoring_cidrs,
                                    admin_cidrs=args.admin_cidrs, wait_seconds=args.env_wait_seconds,
                                    cloudwatch_agent=args.cloudwatch_agent,
                                    metrics_stack_label=args.metrics_stack_label)))
            tags = {"Name": f"sark-{args.stack}-{key}", "sark:role": "app", "sark:release": version}
            template = aws.ec2.LaunchTemplate(
                f"{name}-{key}-lt",
                description=f"SARK {version} hosts",
                image_id=args.image_id,
                instance_type=args.instance_type,
                iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
                metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                    http_endpoint="enabled",
                    http_tokens="required",
                    # 1: a process in a container on the host cannot reach the instance role.
                    http_put_response_hop_limit=1,
                    instance_metadata_tags="disabled",
                ),
                network_interfaces=[aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                    device_index=0,
                    associate_public_ip_address="false",
                    delete_on_termination="true",
                    security_groups=[args.security_group_id],
                )],
                block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=ami.root_device_name,
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=args.root_volume_gb,
                        volume_type="gp3",
                        encrypted="true",
                        delete_on_termination="true",
                        # No kms_key_id: the AWS-managed EBS key. A customer key on volumes the
                        # Auto Scaling service launches needs a key-policy grant to the
                        # AWSServiceRoleForAutoScaling role, or launches fail; the root volume
                        # holds only code and the regenerated env file, so the managed key's
                        # encryption at rest is the simpler safe choice.
                    ),
                )],
                monitoring=aws.ec2.LaunchTemplateMonitoringArgs(enabled=True),
                ebs_optimized="true",
                user_data=user_data,
                update_default_version=True,
                tag_specifications=[
                    aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="instance", tags=tags),
                    aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="volume", tags=tags),
                ],
                tags=tags,
                opts=child,
            )
            group = aws.autoscaling.Group(
                f"{name}-{key}-asg",
                vpc_zone_identifiers=args.subnet_ids,
                min_size=args.min_size,
                desired_capacity=args.desired_capacity,
                max_size=args.max_size,
                launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                    id=template.id, version=template.latest_version.apply(str)),
                target_group_arns=[target_group_arn],
                health_check_type="ELB",
                health_check_grace_period=args.health_check_grace_period_seconds,
                # A new AMI or user data of the same release rolls through the hosts one batch
                # at a time, launching replacements before terminating (never below capacity).
                instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                    strategy="Rolling",
                    preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                        min_healthy_percentage=100,
                        max_healthy_percentage=200,
                        instance_warmup=str(args.health_check_grace_period_seconds),
                    ),
                ),
                enabled_metrics=["GroupInServiceInstances", "GroupDesiredCapacity", "GroupTotalInstances"],
                tags=[aws.autoscaling.GroupTagArgs(key=k, value=v, propagate_at_launch=True) for k, v in tags.items()],
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # No host before its subnet's NAT route and association exist.
                    depends_on=list(args.route_out),
                    # With scaling on, the group's size is the scaling policies' to set; an
                    # update must not reset it to desired_capacity.
                    ignore_changes=["desiredCapacity"] if args.scaling else None,
                ),
            )
            if args.scaling is not None:
                self._scaling(name, version, group, scaling=args.scaling,
                              warmup_seconds=args.health_check_grace_period_seconds)
            self.autoscaling_group_names[version] = group.name
            self.launch_template_ids[version] = template.id

        self.role_arn = role.arn
        self.instance_profile_arn = profile.arn
        self.image_id = args.image_id
        self.register_outputs({
            "autoscalingGroupNames": self.autoscaling_group_names,
            "launchTemplateIds": self.launch_template_ids,
            "roleArn": self.role_arn,
            "instanceProfileArn": self.instance_profile_arn,
            "parameterNames": self.parameter_names,
            "imageId": self.image_id,
        })

    def _scaling(self, name: str, version: str, group: aws.autoscaling.Group, *, scaling: AppScaling,
                 warmup_seconds: int) -> None:
        key = version_key(version)
        child = pulumi.ResourceOptions(parent=self)
        target = aws.autoscaling.PolicyTargetTrackingConfigurationArgs
        metric = aws.autoscaling.PolicyTargetTrackingConfigurationPredefinedMetricSpecificationArgs
        aws.autoscaling.Policy(
            f"{name}-{key}-cpu-scaling",
            autoscaling_group_name=group.name,
            policy_type="TargetTrackingScaling",
            estimated_instance_warmup=warmup_seconds,
            target_tracking_configuration=target(
                predefined_metric_specification=metric(predefined_metric_type="ASGAverageCPUUtilization"),
                target_value=scaling.cpu_target_percent),
            opts=child,
        )
        aws.autoscaling.Policy(
            f"{name}-{key}-requests-scaling",
            autoscaling_group_name=group.name,
            policy_type="TargetTrackingScaling",
            estimated_instance_warmup=warmup_seconds,
            target_tracking_configuration=target(
                predefined_metric_specification=metric(
                    predefined_metric_type="ALBRequestCountPerTarget",
                    # app/<lb-name>/<id>/targetgroup/<tg-name>/<id>
                    resource_label=pulumi.Output.concat(scaling.load_balancer_arn_suffix, "/",
                                                        scaling.target_group_arn_suffixes[version])),
                target_value=scaling.requests_per_target),
            opts=child,
        )

    @staticmethod
    def _env_values(args: AppHostsArgs) -> dict[str, pulumi.Input[str]]:
        data = args.data
        values: dict[str, pulumi.Input[str]] = dict(env_settings(args.settings))
        values |= {
            "POSTGRES_HOST": data.postgres_host,
            "POSTGRES_PORT": pulumi.Output.from_input(data.postgres_port).apply(lambda p: str(int(p))),
            "POSTGRES_USER": data.postgres_user,
            "POSTGRES_DB": data.postgres_db,
            "TIMESCALE_HOST": data.timescale_host,
            "TIMESCALE_PORT": pulumi.Output.from_input(data.timescale_port).apply(lambda p: str(int(p))),
            "TIMESCALE_USER": data.timescale_user,
            "TIMESCALE_DB": data.timescale_db,
            "VALKEY_HOST": data.valkey_host,
            "VALKEY_PORT": pulumi.Output.from_input(data.valkey_port).apply(lambda p: str(int(p))),
            "VALKEY_TLS": "true" if data.valkey_tls else "false",
        }
        clash = sorted(set(values) & set(args.secret_arns))
        if clash:
            raise pulumi.RunError(f"AppHosts: {', '.join(clash)} given both as a setting and as a secret")
        return values

    def _parameter(self, name: str, label: str, parameter: str, value: pulumi.Input[str],
                   description: str) -> pulumi.Output[str]:
        resource = aws.ssm.Parameter(
            f"{name}-{label.lower().replace('_', '-')}",
            name=parameter,
            type="String",
            # insecure_value: these are settings and ARNs, not secrets; diffs show them.
            insecure_value=value,
            description=description,
            tags={"sark:role": "app"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        return resource.name


def shell_words(command: str | Sequence[str]) -> list[str]:
    """A runcmd entry as argv (lists as they are, strings split like a shell)."""
    return list(command) if not isinstance(command, str) else shlex.split(command)
