"""The stack's configuration: the only module that reads ``pulumi.Config``.

``load_config()`` reads every key declared in ``Pulumi.yaml``, validates it and returns a
frozen, typed :class:`StackConfig`. Components never read config; ``__main__.py`` hands them
the pieces they need.

Every bad value stops the program with one :class:`ConfigError` (a ``pulumi.RunError``, so
the Pulumi CLI prints just the message, no traceback) that names the key, the value given
and what is allowed. All problems are collected and reported together, so one run shows an
operator everything to fix.

Production (``environment: production``) is held to the checklist: the checklist's minimum
host size, 30+ days of backups, no ``*`` CORS origin, at least two app hosts, and no
switching off of deletion protection or Multi-AZ.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pulumi

PROJECT = "sark-infra"

T = TypeVar("T")


class ConfigError(pulumi.RunError):
    """One or more stack config values are invalid; the message lists each one."""


# --------------------------------------------------------------------------------------
# Instance-type catalogue
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstanceSpec:
    """vCPU and memory of an EC2 instance type."""

    vcpus: int
    memory_gib: int


_SIZES = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32, "12xlarge": 48, "16xlarge": 64}
# GiB of memory per vCPU for each x86_64 family we accept. The app AMI lookup is for amd64
# Ubuntu, so Graviton families are deliberately absent.
_FAMILIES = {
    "m5": 4, "m6i": 4, "m6a": 4, "m7i": 4, "m7a": 4,
    "c5": 2, "c6i": 2, "c6a": 2, "c7i": 2,
    "r5": 8, "r6i": 8, "r6a": 8, "r7i": 8,
}
INSTANCE_TYPES: dict[str, InstanceSpec] = {
    f"{family}.{size}": InstanceSpec(vcpus, vcpus * per_vcpu)
    for family, per_vcpu in _FAMILIES.items()
    for size, vcpus in _SIZES.items()
}
INSTANCE_TYPES.update({
    "t3.large": InstanceSpec(2, 8), "t3.xlarge": InstanceSpec(4, 16), "t3.2xlarge": InstanceSpec(8, 32),
})

# The checklist's minimum server (Pre-Deployment 1.1): 4 CPU, 16 GB RAM, 100 GB SSD.
MIN_VCPUS = 4
MIN_MEMORY_GIB = 16
MIN_ROOT_VOLUME_GB = 100

# The only retention periods CloudWatch Logs accepts; any other value fails at deploy time.
CLOUDWATCH_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                             2557, 2922, 3288, 3653)
ENVIRONMENTS = ("production", "staging", "development")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SIEM_PROVIDERS = ("splunk", "datadog", "none")
CACHE_ENGINES = ("valkey", "redis")


# --------------------------------------------------------------------------------------
# Settings, one frozen dataclass per tier
# --------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class ExistingNetwork:
    """A VPC and subnets that already exist, used instead of creating a network."""

    vpc_id: str
    public_subnet_ids: tuple[str, ...]
    app_subnet_ids: tuple[str, ...]
    data_subnet_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class NetworkSettings:
    """Network tier settings (keys ``vpcCidr``, ``availabilityZoneCount``, ...)."""

    vpc_cidr: str
    az_count: int
    single_nat_gateway: bool
    flow_log_retention_days: int
    existing: ExistingNetwork | None
    private_routes: tuple[tuple[str, str], ...] = ()
    """(destination CIDR, target id) added to every app and data route table (``privateRoutes``)."""


@dataclass(frozen=True, kw_only=True)
class AppSettings:
    """SARK app hosts and the app's own settings."""

    instance_type: str
    instance: InstanceSpec
    root_volume_gb: int
    min_size: int
    desired_capacity: int
    max_size: int
    repository_url: str
    release_tag: str
    previous_release_tag: str | None
    new_release_weight: int
    log_level: str
    cors_origins: tuple[str, ...]
    access_token_expire_minutes: int
    postgres_pool_size: int
    postgres_max_overflow: int
    admin_cidrs: tuple[str, ...]
    monitoring_cidrs: tuple[str, ...]
    image_id: str
    """Pinned Ubuntu 22.04 amd64 AMI of the app hosts (``appImageId``)."""
    scaling_cpu_percent: int
    """Average CPU target-tracking scaling holds (``appScalingCpuPercent``)."""
    scaling_requests_per_target: int
    """Requests per host per minute target-tracking scaling holds (``appScalingRequestsPerTarget``)."""

    @property
    def workers(self) -> int:
        """Uvicorn workers, the checklist's 2 x vCPU + 1."""
        return 2 * self.instance.vcpus + 1


@dataclass(frozen=True, kw_only=True)
class LoadBalancerSettings:
    """The public HTTPS load balancer."""

    ingress_cidrs: tuple[str, ...]
    certificate_arn: str | None
    domain_name: str | None
    hosted_zone_id: str | None
    tls_policy: str
    hsts_max_age_seconds: int
    access_log_retention_days: int
    waf_enabled: bool
    deletion_protection: bool
    canary_cidrs: tuple[str, ...]
    """Sources allowed to reach a release by its header before it takes traffic (``canaryCidrs``);
    empty: only the stack's own NAT addresses (hosts in the VPC)."""
    waf_rate_limit: int
    """Requests per 5 minutes one client IP may send before the WAF blocks it (``wafRateLimitPerIp``)."""


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    """RDS PostgreSQL."""

    engine_version: str
    instance_class: str
    allocated_storage_gb: int
    max_allocated_storage_gb: int
    backup_retention_days: int
    multi_az: bool
    deletion_protection: bool
    max_connections: int
    connection_reserve: int


@dataclass(frozen=True, kw_only=True)
class TimescaleSettings:
    """The self-managed TimescaleDB host (RDS cannot load the timescaledb extension)."""

    instance_type: str
    instance: InstanceSpec
    data_volume_gb: int
    timescaledb_version: str
    snapshot_retention_days: int
    image_id: str
    """Pinned Ubuntu 22.04 amd64 AMI the TimescaleDB host is created from (``timescaleImageId``)."""
    max_connections: int


@dataclass(frozen=True, kw_only=True)
class CacheSettings:
    """ElastiCache (Valkey or Redis)."""

    engine: str
    engine_version: str
    node_type: str
    node_count: int
    snapshot_retention_days: int


@dataclass(frozen=True, kw_only=True)
class SecretsSettings:
    """Secrets Manager secrets and their rotation schedule (checklist 2.1)."""

    siem_provider: str
    splunk_hec_url: str | None
    splunk_index: str
    datadog_site: str
    consul_token: bool
    vault_token: bool
    recovery_window_days: int
    secret_key_rotation_days: int
    database_password_rotation_days: int
    api_token_rotation_days: int
    rotation_reserved_concurrency: int

    @property
    def siem_port(self) -> int | None:
        """TCP port the app sends audit events to, when it is not plain HTTPS (Splunk HEC: 8088)."""
        if self.siem_provider != "splunk" or self.splunk_hec_url is None:
            return None
        return urlsplit(self.splunk_hec_url).port or 443


@dataclass(frozen=True, kw_only=True)
class ObservabilitySettings:
    """Alerting, dashboards and logs (checklist 3.3 and Post-Deployment 1)."""

    alert_emails: tuple[str, ...]
    alert_https_endpoints: tuple[str, ...]
    log_retention_days: int
    error_rate_percent: float
    cpu_percent: float
    memory_percent: float
    p95_latency_ms: float


@dataclass(frozen=True, kw_only=True)
class Placeholder:
    """A config value that is the repository's example, not the operator's."""

    key: str
    """The full key, e.g. ``sark-infra:hostedZoneId``."""

    value: str
    """The example value."""

    why: str
    """What it is an example of, and what to set instead."""

    def __str__(self) -> str:
        return f"{self.key}: {_show(self.value)} is {self.why}; set before `pulumi up`"


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """Everything the program needs, validated."""

    project: str
    stack: str
    environment: str
    region: str
    name_prefix: str
    network: NetworkSettings
    app: AppSettings
    load_balancer: LoadBalancerSettings
    database: DatabaseSettings
    timescale: TimescaleSettings
    cache: CacheSettings
    secrets: SecretsSettings
    observability: ObservabilitySettings
    placeholders: tuple[Placeholder, ...] = ()
    """Example values still in the stack's config: fine for a preview, refused for an update."""

    @property
    def is_production(self) -> bool:
        """Whether the checklist's production rules apply."""
        return self.environment == "production"


# --------------------------------------------------------------------------------------
# Reading and validating
# --------------------------------------------------------------------------------------

class _Reader:
    """Typed access to raw config strings that records every problem instead of raising."""

    def __init__(self, raw: Callable[[str], str | None], namespace: str) -> None:
        self._raw = raw
        self._ns = namespace
        self.errors: list[str] = []
        self.placeholders: list[Placeholder] = []
        self.defaults: dict[str, object] = {}
        """Every key read, with the default used when it is unset (checked against Pulumi.yaml)."""

    def key(self, name: str) -> str:
        return f"{self._ns}:{name}"

    def fail(self, name: str, value: object, allowed: str) -> None:
        self.errors.append(f"{self.key(name)}: {_show(value)} is not allowed; expected {allowed}")

    def placeholder(self, name: str, value: str, why: str) -> None:
        self.placeholders.append(Placeholder(key=self.key(name), value=value, why=why))

    def text(self, name: str, default: str | None = None) -> str | None:
        self.defaults.setdefault(name, default)
        value = self._raw(name)
        return default if value is None or value == "" else value

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        value = self.text(name, default) or default
        if value not in choices:
            self.fail(name, value, "one of " + ", ".join(choices))
            return default
        return value

    def integer(self, name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        self.defaults.setdefault(name, default)
        raw = self._raw(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            self.fail(name, raw, f"a whole number{_range(minimum, maximum)}")
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.fail(name, value, f"a whole number{_range(minimum, maximum)}")
            return default
        return value

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        self.defaults.setdefault(name, default)
        raw = self._raw(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            self.fail(name, raw, f"a number{_range(minimum, maximum)}")
            return default
        if not minimum <= value <= maximum:
            self.fail(name, value, f"a number{_range(minimum, maximum)}")
            return default
        return value

    def boolean(self, name: str, default: bool) -> bool:
        self.defaults.setdefault(name, default)
        raw = self._raw(name)
        if raw is None or raw == "":
            return default
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        self.fail(name, raw, "true or false")
        return default

    def retention(self, name: str, default: int, minimum: int, maximum: int) -> int:
        """Days of CloudWatch Logs retention: only AWS's fixed periods deploy."""
        value = self.integer(name, default, minimum, maximum)
        allowed = [d for d in CLOUDWATCH_RETENTION_DAYS if minimum <= d <= maximum]
        if value not in allowed:
            self.fail(name, value, "a CloudWatch Logs retention period: " + ", ".join(map(str, allowed)))
            return default
        return value

    def strings(self, name: str, default: Sequence[str] = ()) -> tuple[str, ...]:
        self.defaults.setdefault(name, list(default))
        raw = self._raw(name)
        if raw is None or raw == "":
            return tuple(default)
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            self.fail(name, raw, 'a list of strings, e.g. ["a", "b"]')
            return tuple(default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(name, value, 'a list of strings, e.g. ["a", "b"]')
            return tuple(default)
        return tuple(value)

    def cidrs(self, name: str, default: Sequence[str] = ()) -> tuple[str, ...]:
        values = self.strings(name, default)
        for value in values:
            if not _is_cidr(value):
                self.fail(name, value, "IPv4 or IPv6 CIDR blocks such as 10.0.0.0/16 (host bits zero)")
                return tuple(default)
        return values

    def instance_type(self, name: str, default: str) -> tuple[str, InstanceSpec]:
        value = self.text(name, default) or default
        spec = INSTANCE_TYPES.get(value)
        if spec is None:
            self.fail(name, value, "a known x86_64 instance type such as m6i.2xlarge (see stack_config.INSTANCE_TYPES)")
            return default, INSTANCE_TYPES[default]
        if spec.vcpus < MIN_VCPUS or spec.memory_gib < MIN_MEMORY_GIB:
            self.fail(
                name, value,
                f"at least {MIN_VCPUS} vCPU and {MIN_MEMORY_GIB} GiB (the checklist minimum); "
                f"{value} has {spec.vcpus} vCPU and {spec.memory_gib} GiB",
            )
            return default, INSTANCE_TYPES[default]
        return value, spec


def _show(value: object) -> str:
    return json.dumps(value) if isinstance(value, str | list | dict | bool) else str(value)


def _range(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f" of at least {minimum:g}"
    if maximum is not None:
        return f" of at most {maximum:g}"
    return ""


def _is_cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return "/" in value


_URL = re.compile(r"^https://[^\s/$.?#][^\s]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$")
_GIT_URL = re.compile(r"^(https://|git@)[^\s]+$")
_RELEASE_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_PREFIX = re.compile(r"^[a-z][a-z0-9-]{1,19}$")


def _network(r: _Reader) -> NetworkSettings:
    vpc_cidr = r.text("vpcCidr", "10.40.0.0/16") or "10.40.0.0/16"
    if not _is_cidr(vpc_cidr) or ":" in vpc_cidr:
        r.fail("vpcCidr", vpc_cidr, "an IPv4 CIDR block such as 10.40.0.0/16 (host bits zero)")
        vpc_cidr = "10.40.0.0/16"
    else:
        net = ipaddress.IPv4Network(vpc_cidr)
        if not 16 <= net.prefixlen <= 22 or not net.is_private:
            r.fail("vpcCidr", vpc_cidr, "a private (RFC 1918) IPv4 block from /16 to /22")
            vpc_cidr = "10.40.0.0/16"
    az_count = r.integer("availabilityZoneCount", 3, 2, 4)

    existing = None
    vpc_id = r.text("existingVpcId")
    public = r.strings("existingPublicSubnetIds")
    app = r.strings("existingAppSubnetIds")
    data = r.strings("existingDataSubnetIds")
    if vpc_id:
        if not re.fullmatch(r"vpc-[0-9a-f]{8,17}", vpc_id):
            r.fail("existingVpcId", vpc_id, "a VPC id such as vpc-0123456789abcdef0")
        for key, ids in (("existingPublicSubnetIds", public), ("existingAppSubnetIds", app),
                         ("existingDataSubnetIds", data)):
            if len(ids) < 2 or not all(re.fullmatch(r"subnet-[0-9a-f]{8,17}", i) for i in ids):
                r.fail(key, list(ids), "at least 2 subnet ids (subnet-...) in different availability zones "
                       "when existingVpcId is set")
        existing = ExistingNetwork(vpc_id=vpc_id, public_subnet_ids=public, app_subnet_ids=app,
                                   data_subnet_ids=data)
    elif public or app or data:
        r.fail("existingVpcId", None, "a VPC id when existing subnet ids are given")

    routes = _private_routes(r, vpc_cidr)
    if routes and existing is not None:
        r.fail("privateRoutes", [f"{c} via {t}" for c, t in routes], "no routes with existingVpcId (the VPC's "
               "owner manages its route tables)")
    return NetworkSettings(
        vpc_cidr=vpc_cidr,
        az_count=az_count,
        single_nat_gateway=r.boolean("singleNatGateway", False),
        flow_log_retention_days=r.retention("flowLogRetentionDays", 90, 30, 3653),
        existing=existing,
        private_routes=routes,
    )


def _private_routes(r: _Reader, vpc_cidr: str) -> tuple[tuple[str, str], ...]:
    """``privateRoutes``: ``"<cidr> via <target id>"`` entries, e.g. the peering route to the monitoring VPC."""
    from components.network import ROUTE_TARGET_PROPERTIES, route_target_property

    allowed = (f'entries like "10.60.0.0/16 via pcx-0123456789abcdef0": an IPv4 block outside vpcCidr ({vpc_cidr}), '
               f"not 0.0.0.0/0, via an id starting {', '.join(ROUTE_TARGET_PROPERTIES)}")
    routes: list[tuple[str, str]] = []
    for entry in r.strings("privateRoutes"):
        parts = entry.split()
        if len(parts) != 3 or parts[1] != "via" or not _is_cidr(parts[0]) or ":" in parts[0] \
                or route_target_property(parts[2]) is None \
                or not re.fullmatch(r"[a-z]+-[0-9a-f]{8,17}", parts[2]):
            r.fail("privateRoutes", entry, allowed)
            continue
        destination = ipaddress.IPv4Network(parts[0])
        if destination.prefixlen == 0 or destination.overlaps(ipaddress.IPv4Network(vpc_cidr)):
            r.fail("privateRoutes", entry, allowed)
            continue
        if any(parts[0] == known for known, _ in routes):
            r.fail("privateRoutes", entry, "one route per destination")
            continue
        routes.append((parts[0], parts[2]))
    return tuple(routes)


_IMAGE_ID = re.compile(r"ami-[0-9a-f]{8,17}")


def _image_id(r: _Reader, key: str) -> str:
    """A pinned AMI id: required, so no ``pulumi up`` silently picks a newer image."""
    value = r.text(key)
    if value is None:
        r.errors.append(f"{r.key(key)}: not set; expected the pinned Ubuntu 22.04 amd64 AMI id of the region, e.g. "
                        f"`pulumi config set {key} $(python scripts/newest_ami.py --region <region>)`")
        return "ami-00000000"
    if not _IMAGE_ID.fullmatch(value):
        r.fail(key, value, "an AMI id such as ami-0123456789abcdef0 (ami- and 8 or 17 hex digits)")
    return value


def _app(r: _Reader, production: bool) -> AppSettings:
    instance_type, spec = r.instance_type("appInstanceType", "m6i.2xlarge")
    min_size = r.integer("appMinSize", 2, 1 if not production else 2, 20)
    max_size = r.integer("appMaxSize", 4, 1, 40)
    desired = r.integer("appDesiredCapacity", min_size, 1, 40)
    if not min_size <= desired <= max_size:
        r.fail("appDesiredCapacity", desired, f"a number from appMinSize ({min_size}) to appMaxSize ({max_size})")
        desired = min_size

    repository_url = r.text("sarkRepositoryUrl", "https://github.com/your-org/sark.git") or ""
    if not _GIT_URL.match(repository_url):
        r.fail("sarkRepositoryUrl", repository_url, "an https:// or git@ repository URL")
    release_tag = r.text("appVersion", "v0.1.0") or "v0.1.0"
    if not _RELEASE_TAG.match(release_tag):
        r.fail("appVersion", release_tag, "a git tag or branch name (letters, digits, . _ / -)")
    previous = r.text("previousAppVersion")
    if previous is not None and not _RELEASE_TAG.match(previous):
        r.fail("previousAppVersion", previous, "a git tag or branch name (letters, digits, . _ / -)")
    weight = r.integer("newVersionTrafficPercent", 100, 0, 100)
    if previous is None and weight != 100:
        r.fail("newVersionTrafficPercent", weight, "100 unless previousAppVersion is set (nothing else to send "
               "the remaining traffic to)")
        weight = 100

    cors = r.strings("corsOrigins", ())
    for origin in cors:
        if origin == "*":
            if production:
                r.fail("corsOrigins", list(cors), 'explicit https origins in production, never "*" (checklist 3.1)')
                break
        elif not _URL.match(origin) and not origin.startswith("http://localhost"):
            r.fail("corsOrigins", origin, "origins such as https://app.example.com")
            break
    if production and not cors:
        r.fail("corsOrigins", [], "at least one trusted https origin in production (checklist 2.2)")

    log_level = r.choice("logLevel", "INFO", ("INFO", "WARNING") if production else LOG_LEVELS)
    root_gb = r.integer("appRootVolumeGb", 500, MIN_ROOT_VOLUME_GB, 16384)
    image_id = _image_id(r, "appImageId")
    return AppSettings(
        instance_type=instance_type,
        instance=spec,
        root_volume_gb=root_gb,
        min_size=min_size,
        desired_capacity=desired,
        max_size=max_size,
        repository_url=repository_url,
        release_tag=release_tag,
        previous_release_tag=previous,
        new_release_weight=weight,
        log_level=log_level,
        cors_origins=cors,
        access_token_expire_minutes=r.integer("accessTokenExpireMinutes", 15, 1, 1440),
        postgres_pool_size=r.integer("postgresPoolSize", 4, 1, 200),
        postgres_max_overflow=r.integer("postgresMaxOverflow", 1, 0, 200),
        admin_cidrs=r.cidrs("adminCidrs"),
        monitoring_cidrs=r.cidrs("monitoringCidrs"),
        image_id=image_id,
        scaling_cpu_percent=r.integer("appScalingCpuPercent", 60, 10, 90),
        scaling_requests_per_target=r.integer("appScalingRequestsPerTarget", 1000, 10, 100000),
    )


def _load_balancer(r: _Reader, production: bool) -> LoadBalancerSettings:
    certificate_arn = r.text("certificateArn")
    if certificate_arn is not None and not _ACM_ARN.match(certificate_arn):
        r.fail("certificateArn", certificate_arn,
               "an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)")
    domain_name = r.text("domainName")
    hosted_zone_id = r.text("hostedZoneId")
    if certificate_arn is None and (domain_name is None or hosted_zone_id is None):
        r.fail("certificateArn", None, "an ACM certificate ARN, or domainName and hostedZoneId so the stack can "
               "create and DNS-validate one")
    deletion_protection = r.boolean("loadBalancerDeletionProtection", True)
    if production and not deletion_protection:
        r.fail("loadBalancerDeletionProtection", False, "true in production")
    canary_cidrs = r.cidrs("canaryCidrs")
    # The header rule takes one ALB condition value; a rule allows five in all.
    if len(canary_cidrs) > 4:
        r.fail("canaryCidrs", list(canary_cidrs), "at most 4 CIDR blocks (an ALB rule allows 5 condition values, "
               "one is the release header)")
        canary_cidrs = canary_cidrs[:4]
    return LoadBalancerSettings(
        ingress_cidrs=r.cidrs("ingressCidrs", ("0.0.0.0/0", "::/0")),
        certificate_arn=certificate_arn,
        domain_name=domain_name,
        hosted_zone_id=hosted_zone_id,
        tls_policy=r.choice("tlsPolicy", "ELBSecurityPolicy-TLS13-1-2-2021-06",
                            ("ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-TLS13-1-3-2021-06")),
        hsts_max_age_seconds=r.integer("hstsMaxAgeSeconds", 31536000, 31536000, 63072000),
        access_log_retention_days=r.integer("accessLogRetentionDays", 90, 30, 3653),
        waf_enabled=r.boolean("wafEnabled", True),
        deletion_protection=deletion_protection,
        canary_cidrs=canary_cidrs,
        waf_rate_limit=r.integer("wafRateLimitPerIp", 2000, 100, 2000000000),
    )


def _database(r: _Reader, production: bool) -> DatabaseSettings:
    version = r.text("dbEngineVersion", "15") or "15"
    major = re.fullmatch(r"(\d+)(\.\d+)?", version)
    if major is None or int(major.group(1)) < 14:
        r.fail("dbEngineVersion", version, "PostgreSQL 14 or newer, e.g. 15 or 15.7 (checklist 1.2)")
        version = "15"
    retention = r.integer("dbBackupRetentionDays", 30, 30 if production else 1, 35)
    multi_az = r.boolean("dbMultiAz", True)
    deletion_protection = r.boolean("dbDeletionProtection", True)
    if production and not multi_az:
        r.fail("dbMultiAz", False, "true in production")
    if production and not deletion_protection:
        r.fail("dbDeletionProtection", False, "true in production")
    storage = r.integer("dbAllocatedStorageGb", 100, 20, 65536)
    max_storage = r.integer("dbMaxAllocatedStorageGb", 500, 20, 65536)
    if max_storage < storage:
        r.fail("dbMaxAllocatedStorageGb", max_storage, f"at least dbAllocatedStorageGb ({storage})")
        max_storage = storage
    instance_class = r.text("dbInstanceClass", "db.m6i.large") or "db.m6i.large"
    if not re.fullmatch(r"db\.[a-z0-9]+\.[a-z0-9]+", instance_class):
        r.fail("dbInstanceClass", instance_class, "an RDS instance class such as db.m6i.large")
    return DatabaseSettings(
        engine_version=version,
        instance_class=instance_class,
        allocated_storage_gb=storage,
        max_allocated_storage_gb=max_storage,
        backup_retention_days=retention,
        multi_az=multi_az,
        deletion_protection=deletion_protection,
        max_connections=r.integer("dbMaxConnections", 720, 50, 5000),
        connection_reserve=r.integer("dbConnectionReserve", 30, 10, 1000),
    )


def _timescale(r: _Reader, production: bool) -> TimescaleSettings:
    instance_type, spec = r.instance_type("timescaleInstanceType", "m6i.xlarge")
    version = r.text("timescaledbVersion", "2.14") or "2.14"
    parsed = re.fullmatch(r"(\d+)\.(\d+)(\.\d+)?", version)
    if parsed is None or (int(parsed.group(1)), int(parsed.group(2))) < (2, 11):
        r.fail("timescaledbVersion", version, "TimescaleDB 2.11 or newer, e.g. 2.14 (checklist 1.2)")
        version = "2.14"
    return TimescaleSettings(
        instance_type=instance_type,
        instance=spec,
        data_volume_gb=r.integer("timescaleDataVolumeGb", 200, 20, 16384),
        timescaledb_version=version,
        snapshot_retention_days=r.integer("timescaleSnapshotRetentionDays", 30, 30 if production else 1, 365),
        image_id=_image_id(r, "timescaleImageId"),
        max_connections=r.integer("timescaleMaxConnections", 720, 50, 5000),
    )


def _cache(r: _Reader, production: bool) -> CacheSettings:
    engine = r.choice("cacheEngine", "valkey", CACHE_ENGINES)
    default_version = "7.2" if engine == "valkey" else "7.1"
    version = r.text("cacheEngineVersion", default_version) or default_version
    parsed = re.fullmatch(r"(\d+)\.(\d+)", version)
    minimum = (7, 2) if engine == "valkey" else (7, 0)
    if parsed is None or (int(parsed.group(1)), int(parsed.group(2))) < minimum:
        r.fail("cacheEngineVersion", version, f"{engine} {minimum[0]}.{minimum[1]} or newer, as major.minor")
        version = default_version
    node_type = r.text("cacheNodeType", "cache.m6g.large") or "cache.m6g.large"
    if not re.fullmatch(r"cache\.[a-z0-9]+\.[a-z0-9]+", node_type):
        r.fail("cacheNodeType", node_type, "an ElastiCache node type such as cache.m6g.large")
    return CacheSettings(
        engine=engine,
        engine_version=version,
        node_type=node_type,
        node_count=r.integer("cacheNodeCount", 2, 2, 6),
        snapshot_retention_days=r.integer("cacheSnapshotRetentionDays", 30, 30 if production else 1, 35),
    )


def _secrets(r: _Reader) -> SecretsSettings:
    provider = r.choice("siemProvider", "splunk", SIEM_PROVIDERS)
    hec_url = r.text("splunkHecUrl")
    if hec_url is not None and not _URL.match(hec_url):
        r.fail("splunkHecUrl", hec_url, "an https:// URL of the Splunk HTTP Event Collector")
    if provider == "splunk" and hec_url is None:
        r.fail("splunkHecUrl", None, "the Splunk HEC URL when siemProvider is splunk")
    return SecretsSettings(
        siem_provider=provider,
        splunk_hec_url=hec_url,
        splunk_index=r.text("splunkIndex", "sark_audit") or "sark_audit",
        datadog_site=r.text("datadogSite", "datadoghq.com") or "datadoghq.com",
        consul_token=r.boolean("consulTokenEnabled", False),
        vault_token=r.boolean("vaultTokenEnabled", False),
        recovery_window_days=r.integer("secretRecoveryWindowDays", 30, 7, 30),
        secret_key_rotation_days=r.integer("secretKeyRotationDays", 180, 1, 180),
        database_password_rotation_days=r.integer("databasePasswordRotationDays", 90, 1, 90),
        api_token_rotation_days=r.integer("apiTokenRotationDays", 90, 30, 90),
        rotation_reserved_concurrency=_reserved_concurrency(r),
    )


def _reserved_concurrency(r: _Reader) -> int:
    value = r.integer("rotationReservedConcurrency", 2, -1, 20)
    if value == 0:
        r.fail("rotationReservedConcurrency", 0, "-1 (none reserved) or 1 to 20; 0 would stop every rotation")
        return 2
    return value


def _observability(r: _Reader) -> ObservabilitySettings:
    emails = r.strings("alertEmails")
    for email in emails:
        if not _EMAIL.match(email):
            r.fail("alertEmails", email, "email addresses such as oncall@example.com")
            break
    endpoints = r.strings("alertHttpsEndpoints")
    for endpoint in endpoints:
        if not _URL.match(endpoint):
            r.fail("alertHttpsEndpoints", endpoint, "https:// URLs (e.g. a PagerDuty or Slack integration URL)")
            break
    return ObservabilitySettings(
        alert_emails=emails,
        alert_https_endpoints=endpoints,
        log_retention_days=r.retention("logRetentionDays", 90, 30, 90),
        error_rate_percent=r.number("alarmErrorRatePercent", 5.0, 0.1, 100.0),
        cpu_percent=r.number("alarmCpuPercent", 90.0, 1.0, 100.0),
        memory_percent=r.number("alarmMemoryPercent", 80.0, 1.0, 100.0),
        p95_latency_ms=r.number("alarmP95LatencyMs", 500.0, 1.0, 60000.0),
    )


# --------------------------------------------------------------------------------------
# Connection budget (issue #11, item 5)
# --------------------------------------------------------------------------------------

CANARY_RELEASES = 2
"""Releases with their own Auto Scaling group while a canary runs (the new one and the previous one)."""

RDS_MEMORY_PER_CONNECTION = 9531392
"""Bytes per connection in RDS for PostgreSQL's default ``max_connections``:
LEAST({DBInstanceClassMemory/9531392}, 5000) (AWS, "Maximum number of database connections")."""


@dataclass(frozen=True, kw_only=True)
class ConnectionBudget:
    """The worst case of connections the app can open to one database, and the arithmetic behind it."""

    hosts: int
    """appMaxSize x releases during a canary."""
    workers: int
    """Uvicorn workers per host (2 x vCPU + 1)."""
    per_worker: int
    """postgresPoolSize + postgresMaxOverflow: each worker process has its own pool."""
    reserve: int
    """Connections kept for migrations, the rotation Lambda, operators and RDS's reserved superuser slots."""

    @property
    def app_connections(self) -> int:
        """Connections the app fleet may hold at once."""
        return self.hosts * self.workers * self.per_worker

    @property
    def needed(self) -> int:
        """``max_connections`` the database needs."""
        return self.app_connections + self.reserve


def connection_budget(app: AppSettings, reserve: int) -> ConnectionBudget:
    """The worst case of :class:`AppSettings` against one database: every host of both releases of a canary
    at the Auto Scaling maximum, every worker with its pool and overflow full."""
    return ConnectionBudget(hosts=app.max_size * CANARY_RELEASES, workers=app.workers,
                            per_worker=app.postgres_pool_size + app.postgres_max_overflow, reserve=reserve)


def rds_default_max_connections(instance_class: str) -> int | None:
    """RDS's own ``max_connections`` for an instance class whose memory we know (None otherwise)."""
    spec = INSTANCE_TYPES.get(instance_class.removeprefix("db."))
    if spec is None:
        return None
    return min(spec.memory_gib * 1024**3 // RDS_MEMORY_PER_CONNECTION, 5000)


def _connection_budget(r: _Reader, config: StackConfig) -> None:
    """Reject settings whose worst case exceeds a database's ``max_connections`` minus the reserve.

    Both databases get the same budget: SARK opens one pool per worker to PostgreSQL and one to
    TimescaleDB, sized by the same ``POSTGRES_POOL_SIZE``/``POSTGRES_MAX_OVERFLOW``.
    """
    app, db = config.app, config.database
    budget = connection_budget(app, db.connection_reserve)
    arithmetic = (f"appMaxSize {app.max_size} hosts x {CANARY_RELEASES} releases during a canary x "
                  f"{budget.workers} workers ({app.instance_type}: 2 x {app.instance.vcpus} vCPU + 1) x "
                  f"(postgresPoolSize {app.postgres_pool_size} + postgresMaxOverflow {app.postgres_max_overflow}) = "
                  f"{budget.app_connections} connections + dbConnectionReserve {budget.reserve} = {budget.needed}")
    advice = "lower postgresPoolSize, postgresMaxOverflow or appMaxSize, or raise"
    if budget.needed > db.max_connections:
        r.errors.append(f"{r.key('dbMaxConnections')}: {db.max_connections} is too small for the app's worst case: "
                        f"{arithmetic} > {db.max_connections}; {advice} dbMaxConnections (and dbInstanceClass)")
    if budget.needed > config.timescale.max_connections:
        r.errors.append(f"{r.key('timescaleMaxConnections')}: {config.timescale.max_connections} is too small for "
                        f"the app's worst case: {arithmetic} > {config.timescale.max_connections}; {advice} "
                        "timescaleMaxConnections (and timescaleInstanceType)")
    ceiling = rds_default_max_connections(db.instance_class)
    if ceiling is not None and db.max_connections > ceiling:
        r.fail("dbMaxConnections", db.max_connections,
               f"at most {ceiling}, RDS's own limit for {db.instance_class} (memory / 9531392 bytes per "
               "connection); choose a larger dbInstanceClass for more")


def parse_config(raw: Callable[[str], str | None], *, project: str, stack: str, region: str | None) -> StackConfig:
    """Validate raw config strings (``raw(key)`` for keys of the project namespace).

    Split from :func:`load_config` so tests can feed plain dictionaries.
    """
    r = _Reader(raw, project)
    config = _read_all(r, region=region, project=project, stack=stack)
    if r.errors:
        noun = "value" if len(r.errors) == 1 else "values"
        raise ConfigError(f"invalid stack configuration ({len(r.errors)} {noun}):\n  " + "\n  ".join(r.errors))
    return config


def _read_all(r: _Reader, *, region: str | None, project: str = PROJECT, stack: str = "") -> StackConfig:
    environment = r.choice("environment", "production", ENVIRONMENTS)
    production = environment == "production"
    prefix = r.text("namePrefix", "sark") or "sark"
    if not _PREFIX.match(prefix):
        r.fail("namePrefix", prefix, "2-20 lowercase letters, digits or hyphens, starting with a letter")
        prefix = "sark"
    if not region:
        r.errors.append("aws:region: not set; expected the AWS region to deploy to, e.g. "
                        "`pulumi config set aws:region eu-west-1`")

    network = _network(r)
    load_balancer = _load_balancer(r, production)
    if network.existing is not None and not load_balancer.canary_cidrs:
        r.fail("canaryCidrs", [], "at least one CIDR with existingVpcId (without NAT gateways of its own the stack "
               "has no address to allow the release header from)")
    config = StackConfig(
        project=project,
        stack=stack,
        environment=environment,
        region=region or "",
        name_prefix=prefix,
        network=network,
        app=_app(r, production),
        load_balancer=load_balancer,
        database=_database(r, production),
        timescale=_timescale(r, production),
        cache=_cache(r, production),
        secrets=_secrets(r),
        observability=_observability(r),
    )
    _connection_budget(r, config)
    _find_placeholders(r, config)
    return dataclasses.replace(config, placeholders=tuple(r.placeholders))


# Names reserved for documentation (RFC 2606, RFC 6761): never a real service.
_EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")
_EXAMPLE_TLDS = (".example", ".test", ".invalid", ".localhost")
EXAMPLE_VALUES: dict[str, str] = {
    "Z0123456789ABCDEFGHIJ": "the repository's example hosted zone id",
    "ami-0123456789abcdef0": "the repository's example AMI id (scripts/newest_ami.py prints a real one)",
}
"""Exact example values the repository ships, and what they stand for."""


def _example_domain(host: str | None) -> bool:
    host = (host or "").lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in _EXAMPLE_DOMAINS) or host.endswith(_EXAMPLE_TLDS)


def _find_placeholders(r: _Reader, config: StackConfig) -> None:
    """Record every value that is an example rather than the operator's (see :class:`Placeholder`)."""
    lb, app, sec, obs = config.load_balancer, config.app, config.secrets, config.observability
    for key, value in (("hostedZoneId", lb.hosted_zone_id), ("appImageId", app.image_id),
                       ("timescaleImageId", config.timescale.image_id)):
        if value in EXAMPLE_VALUES:
            r.placeholder(key, value, EXAMPLE_VALUES[value])
    domain_why = "a domain reserved for examples (RFC 2606)"
    if _example_domain(lb.domain_name):
        r.placeholder("domainName", lb.domain_name or "", domain_why)
    for origin in app.cors_origins:
        if _example_domain(urlsplit(origin).hostname):
            r.placeholder("corsOrigins", origin, domain_why)
    if sec.splunk_hec_url and _example_domain(urlsplit(sec.splunk_hec_url).hostname):
        r.placeholder("splunkHecUrl", sec.splunk_hec_url, domain_why)
    for email in obs.alert_emails:
        if _example_domain(email.rsplit("@", 1)[-1]):
            r.placeholder("alertEmails", email, domain_why)
    for endpoint in obs.alert_https_endpoints:
        if _example_domain(urlsplit(endpoint).hostname):
            r.placeholder("alertHttpsEndpoints", endpoint.split("?", 1)[0], domain_why)
    if re.search(r"[/:]your-org/", app.repository_url):
        r.placeholder("sarkRepositoryUrl", app.repository_url, "the repository's example (your-org); every host's "
                      "`git fetch` would fail")
    if lb.certificate_arn and ":123456789012:" in lb.certificate_arn:
        r.placeholder("certificateArn", lb.certificate_arn, "in AWS's documentation example account 123456789012")


class PlaceholderError(ConfigError):
    """``pulumi up`` with example values in the config; the message lists each one."""


def check_placeholders(config: StackConfig, *, dry_run: bool) -> None:
    """Warn about every example value; refuse a real update (not a preview) while any is left.

    A preview with example values is useful (it shows the whole plan); an update would create
    a certificate nobody can validate and hosts that cannot fetch the code.
    """
    for placeholder in config.placeholders:
        pulumi.log.warn(str(placeholder))
    if config.placeholders and not dry_run:
        noun = "value is an example" if len(config.placeholders) == 1 else "values are examples"
        raise PlaceholderError(f"refusing to update: {len(config.placeholders)} config {noun}; set each one "
                               "(`pulumi config set <key> <value>`) and run again:\n  "
                               + "\n  ".join(str(p) for p in config.placeholders))


def declared_defaults() -> dict[str, object]:
    """Every project config key the program reads, with its default (``None``: no default).

    Pulumi.yaml must declare exactly these keys with these defaults; a test holds them together.
    """
    reader = _Reader(lambda _key: None, PROJECT)
    _read_all(reader, region="us-east-1")
    return reader.defaults


def load_config() -> StackConfig:
    """Read and validate this stack's config. Raises :class:`ConfigError` on any bad value."""
    config = pulumi.Config()
    aws = pulumi.Config("aws")
    return parse_config(config.get, project=pulumi.get_project(), stack=pulumi.get_stack(), region=aws.get("region"))
