"""ElastiCache (Valkey / Redis) rules (anchors section E; checklist 1.3 and 3.2).

Neither AWSGuard nor the Pulumi compliance policies cover ElastiCache; the anchors are Checkov,
Trivy and Security Hub. The values are the checklist's: Valkey or Redis 7 or newer, a password
(AUTH) with TLS required, ``maxmemory-policy allkeys-lru``, and snapshots kept 30 days.

As for RDS passwords, a policy cannot see whether ``authToken`` was a Pulumi secret; the stack
rule accepts an AUTH token only when it comes from a ``random.RandomPassword``.

The same settings on the other two ways to run a cache:

- ``aws.elasticache.Cluster`` that is not a member of a replication group (a member takes its
  settings from the group, whose rules apply). A standalone Redis/Valkey cluster can neither
  encrypt at rest nor require AUTH, so it is reported as such; snapshot retention, minor
  upgrades, subnet group, TLS and engine version are checked as for groups.
- ``aws.elasticache.ServerlessCache``: always encrypted in transit and at rest, so its rules
  are the customer-managed key, snapshot retention and the engine's major version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, Severity, StackValidationArgs

from ._base import Anchors, ResourceRule, policies_of, resource_rule, settings, stack_rule
from ._graph import linked, undecided
from ._props import as_bool, as_int, as_list, as_map, known

REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
CLUSTER = "aws:elasticache/cluster:Cluster"
SERVERLESS_CACHE = "aws:elasticache/serverlessCache:ServerlessCache"
PARAMETER_GROUP = "aws:elasticache/parameterGroup:ParameterGroup"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"  # noqa: S105 (a type token)
ENGINES = ("valkey", "redis")



def enable_auto_minor_upgrade(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    """Remediation: turn automatic minor version upgrades on (applied in the maintenance window)."""
    if as_bool(args.props.get("autoMinorVersionUpgrade")) is not False:
        return None
    args.props["autoMinorVersionUpgrade"] = True
    return args.props

_CHECKLIST = ["Pre-Deployment 1.3"]

_ENGINE_CONFIG = {
    "minMajorVersion": {"type": "integer", "minimum": 6, "default": 7, "description": "Oldest engine major version "
                                                                                      "allowed."},
    "allowedEngines": {"type": "array", "items": {"type": "string"}, "default": list(ENGINES),
                       "description": "Engines allowed (the checklist's Redis 7+, or its fork Valkey)."},
}

_SNAPSHOT_CONFIG = {"minDays": {"type": "integer", "minimum": 1, "maximum": 35, "default": 30,
                                "description": "Fewest days snapshots may be kept."}}


@resource_rule(
    "aws-elasticache-replication-group-enable-at-rest-encryption", [REPLICATION_GROUP], Severity.HIGH,
    "ElastiCache replication groups are encrypted at rest with the stack's customer-managed key.",
    fix="Set at_rest_encryption_enabled=True and kms_key_id=<stack key ARN> (only possible at "
        "creation: migrate through a snapshot).",
    anchors=Anchors(checkov=["CKV_AWS_29", "CKV_AWS_191"], trivy=["AVD-AWS-0045"], securityhub=["ElastiCache.4"],
                    checklist=_CHECKLIST),
)
def at_rest_encryption(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Encrypted at rest with the stack's customer-managed key."""
    if as_bool(args.props.get("atRestEncryptionEnabled")) is not True:
        report_violation("atRestEncryptionEnabled is not true; cached data and snapshots would be stored "
                         "unencrypted.", None)
    elif not known(args.props, "kmsKeyId"):
        report_violation("kmsKeyId is not set; data at rest would use the AWS-managed key, not the stack's "
                         "customer-managed key.", None)


@resource_rule(
    "aws-elasticache-replication-group-require-transit-encryption", [REPLICATION_GROUP], Severity.HIGH,
    "ElastiCache replication groups require TLS from every client.",
    fix="Set transit_encryption_enabled=True and transit_encryption_mode='required'.",
    anchors=Anchors(checkov=["CKV_AWS_30"], trivy=["AVD-AWS-0051"], securityhub=["ElastiCache.5"],
                    checklist=["Pre-Deployment 3.2 (TLS)"]),
)
def transit_encryption(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """TLS on, and required (not merely preferred) for every client."""
    if as_bool(args.props.get("transitEncryptionEnabled")) is not True:
        report_violation("transitEncryptionEnabled is not true; clients and replication would talk in plain "
                         "text.", None)
        return
    mode = args.props.get("transitEncryptionMode")
    if mode is not None and mode != "required":
        report_violation(f"transitEncryptionMode is {mode}; it must be required so no client can connect "
                         "without TLS.", None)


@resource_rule(
    "aws-elasticache-replication-group-require-auth", [REPLICATION_GROUP], Severity.HIGH,
    "ElastiCache replication groups require a password (AUTH) or RBAC users.",
    fix="Set auth_token to the generated VALKEY_PASSWORD (with TLS required), or user_group_ids.",
    anchors=Anchors(checkov=["CKV_AWS_31"], securityhub=["ElastiCache.6"],
                    checklist=["Pre-Deployment 1.3 (requirepass)", "Pre-Deployment 3.1"]),
)
def authentication(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Clients must authenticate (AUTH token or RBAC user groups)."""
    token = known(args.props, "authToken")
    groups = known(args.props, "userGroupIds")
    if not token and not (groups is True or as_list(groups)):
        report_violation("Neither authToken nor userGroupIds is set; any host that can reach port 6379 could "
                         "read and write the cache.", None)


@resource_rule(
    "aws-elasticache-replication-group-configure-snapshot-retention", [REPLICATION_GROUP], Severity.HIGH,
    "ElastiCache replication groups keep daily snapshots at least 30 days.",
    fix="Set snapshot_retention_limit to 30 (up to 35; config cacheSnapshotRetentionDays) and a "
        "snapshot_window.",
    anchors=Anchors(checkov=["CKV_AWS_134"], trivy=["AVD-AWS-0050"], securityhub=["ElastiCache.1"],
                    checklist=["Pre-Deployment 1.3 (persistence)", "Post-Deployment 4"]),
    config=_SNAPSHOT_CONFIG,
)
def snapshot_retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Daily snapshots kept at least ``minDays`` (checklist: 30), in a chosen window."""
    retention_days(args, report_violation)
    if not args.props.get("snapshotWindow"):
        report_violation("snapshotWindow is not set; choose a daily window outside the maintenance window.", None)


@resource_rule(
    "aws-elasticache-replication-group-enable-automatic-failover", [REPLICATION_GROUP], Severity.MEDIUM,
    "ElastiCache replication groups fail over automatically to a replica in another zone.",
    fix="Set num_cache_clusters>=2, automatic_failover_enabled=True and multi_az_enabled=True.",
    anchors=Anchors(checkov=["CKV2_AWS_50"], securityhub=["ElastiCache.3"], checklist=_CHECKLIST),
    config={"minNodes": {"type": "integer", "minimum": 2, "maximum": 6, "default": 2,
                         "description": "Fewest nodes (primary plus replicas) in a group."}},
)
def failover(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A replica in another zone takes over automatically."""
    props = args.props
    if as_bool(props.get("automaticFailoverEnabled")) is not True:
        report_violation("automaticFailoverEnabled is not true; losing the primary would stop the cache.", None)
    if as_bool(props.get("multiAzEnabled")) is not True:
        report_violation("multiAzEnabled is not true; primary and replicas may share one availability zone.", None)
    minimum = settings(args).int("minNodes")
    nodes = as_int(props.get("numCacheClusters"))
    replicas = as_int(props.get("replicasPerNodeGroup"))
    if nodes is not None and nodes < minimum:
        report_violation(f"numCacheClusters is {nodes}; failover needs at least {minimum} nodes.", None)
    elif nodes is None and (replicas is None or replicas < minimum - 1):
        report_violation(f"numCacheClusters is not set (and replicasPerNodeGroup is below {minimum - 1}); failover "
                         f"needs at least {minimum} nodes.", None)


@resource_rule(
    "aws-elasticache-replication-group-disallow-default-subnet-group", [REPLICATION_GROUP], Severity.MEDIUM,
    "ElastiCache replication groups use the stack's data subnets, not the default subnet group.",
    fix="Create an aws.elasticache.SubnetGroup over the data subnets and pass its name.",
    anchors=Anchors(checkov=["CKV_AWS_323"], securityhub=["ElastiCache.7"],
                    checklist=["Pre-Deployment 3.2 (Redis: private only)"]),
)
def custom_subnet_group(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Placed in the stack's data subnets, not the default subnet group."""
    group = known(args.props, "subnetGroupName")
    if not group:
        report_violation("subnetGroupName is not set; the cache would land in the default subnet group of the "
                         "default VPC.", None)
    elif group == "default":
        report_violation("subnetGroupName is default; use a subnet group over the stack's data subnets.", None)


@resource_rule(
    "aws-elasticache-replication-group-configure-engine-version", [REPLICATION_GROUP], Severity.MEDIUM,
    "ElastiCache runs Valkey or Redis 7 or newer.",
    fix="Set engine='valkey' with engine_version='7.2' (or engine='redis' with 7.x); config "
        "cacheEngine / cacheEngineVersion.",
    anchors=Anchors(checklist=["Pre-Deployment 1.3 (Redis 7.0+, recommended 7.2)"]),
    config=_ENGINE_CONFIG,
)
@resource_rule(
    "aws-elasticache-serverless-cache-configure-engine-version", [SERVERLESS_CACHE], Severity.MEDIUM,
    "ElastiCache serverless caches run Valkey or Redis 7 or newer.",
    fix="Set engine='valkey' and major_engine_version='7' (or newer).",
    anchors=Anchors(checklist=["Pre-Deployment 1.3 (Redis 7.0+, recommended 7.2)"]),
    config=_ENGINE_CONFIG,
)
def engine_version(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """An allowed engine (Valkey or Redis), ``minMajorVersion`` (7) or newer."""
    config = settings(args)
    minimum, engines = config.int("minMajorVersion"), config.strings("allowedEngines")
    # A replication group's engine defaults to redis; a cluster or serverless cache must name one.
    engine = args.props.get("engine") or ("redis" if args.resource_type == REPLICATION_GROUP else None)
    if engine not in engines:
        report_violation(f"engine is {engine or 'not set'}; it must be one of {', '.join(engines)}.", None)
        return
    key = "majorEngineVersion" if args.resource_type == SERVERLESS_CACHE else "engineVersion"
    version = args.props.get(key)
    match = re.match(r"^(\d+)", str(version)) if version is not None else None
    if version is None:
        report_violation(f"{key} is not set; pin {engine} {minimum} or newer.", None)
    elif match is None:
        report_violation(f"{key} {version} is not a version such as 7.2.", None)
    elif int(match.group(1)) < minimum:
        report_violation(f"{key} {version} is {engine} {match.group(1)}; it must be {minimum} or newer.", None)


@resource_rule(
    "aws-elasticache-replication-group-enable-auto-minor-version-upgrade", [REPLICATION_GROUP], Severity.HIGH,
    "ElastiCache applies minor version upgrades automatically.",
    fix="Set auto_minor_version_upgrade=True.",
    anchors=Anchors(checkov=["CKV_AWS_322"], securityhub=["ElastiCache.2"]),
    remediate=enable_auto_minor_upgrade,
)
def auto_minor_upgrade(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Minor versions (security fixes) applied automatically."""
    if as_bool(args.props.get("autoMinorVersionUpgrade")) is False:
        report_violation("autoMinorVersionUpgrade is false; engine security fixes would not be applied.", None)



def _standalone(validate: ResourceRule) -> ResourceRule:
    """``validate`` for clusters that are not members of a replication group (members follow the group)."""

    def run(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.props.get("replicationGroupId"):
            return
        validate(args, report_violation)

    run.__doc__ = validate.__doc__
    return run


def _persistent(validate: ResourceRule) -> ResourceRule:
    """``validate`` for engines that keep data (not memcached, which has no snapshots)."""

    def run(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.props.get("engine") in ENGINES:
            validate(args, report_violation)

    run.__doc__ = validate.__doc__
    return run


def no_standalone_redis(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Redis/Valkey runs as a replication group, the only shape with encryption at rest and AUTH."""
    engine = args.props.get("engine")
    if engine in ENGINES:
        report_violation(f"A standalone {engine} cluster cannot encrypt data at rest or require AUTH; create an "
                         "aws.elasticache.ReplicationGroup (one node is enough) instead.", None)


@resource_rule(
    "aws-elasticache-serverless-cache-configure-customer-managed-key", [SERVERLESS_CACHE], Severity.HIGH,
    "ElastiCache serverless caches are encrypted with the stack's customer-managed key.",
    fix="Set kms_key_id=<stack key ARN> (only at creation).",
    anchors=Anchors(checkov=["CKV_AWS_191"], securityhub=["ElastiCache.4"], checklist=_CHECKLIST),
)
def serverless_customer_key(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Encrypted with the stack's customer-managed key rather than an AWS-owned one."""
    if not known(args.props, "kmsKeyId"):
        report_violation("kmsKeyId is not set; data at rest would use an AWS-owned key, not the stack's "
                         "customer-managed key.", None)


def retention_days(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Daily snapshots kept at least ``minDays`` (checklist: 30); shared by groups and serverless caches."""
    minimum = settings(args).int("minDays")
    days = as_int(args.props.get("snapshotRetentionLimit"))
    if not days:
        report_violation(f"snapshotRetentionLimit is 0 or not set (no automatic snapshots); it must be at least "
                         f"{minimum} days.", None)
    elif days < minimum:
        report_violation(f"snapshotRetentionLimit is {days} days; it must be at least {minimum} days.", None)


def _parameters(props: Any) -> dict[str, str]:
    return {str(as_map(p).get("name")): str(as_map(p).get("value")) for p in as_list(props.get("parameters"))}


@resource_rule(
    "aws-elasticache-parameter-group-configure-maxmemory-policy", [PARAMETER_GROUP], Severity.MEDIUM,
    "Valkey/Redis parameter groups evict with maxmemory-policy allkeys-lru.",
    fix="Set the parameter maxmemory-policy=allkeys-lru (noeviction makes writes fail once memory is full; the "
        "default volatile-lru evicts nothing without TTLs).",
    anchors=Anchors(checklist=["Pre-Deployment 1.3 (maxmemory-policy allkeys-lru)"]),
    level=EnforcementLevel.ADVISORY,
    config={"maxmemoryPolicy": {"type": "string", "default": "allkeys-lru",
                                "description": "Eviction policy the parameter group must set."}},
)
def maxmemory_policy(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A ``valkey*``/``redis*`` parameter group sets the configured eviction policy."""
    if not str(args.props.get("family") or "").startswith(ENGINES):
        return
    wanted = settings(args).text("maxmemoryPolicy")
    value = _parameters(args.props).get("maxmemory-policy")
    if value != wanted:
        report_violation(f"maxmemory-policy is {value or 'not set (default volatile-lru)'}; it must be {wanted}.",
                         None)


@stack_rule(
    "aws-elasticache-replication-group-configure-maxmemory-policy", Severity.MEDIUM,
    "ElastiCache replication groups use a parameter group of this stack (which sets maxmemory-policy).",
    fix="Create an aws.elasticache.ParameterGroup (family valkey7 or redis7) with maxmemory-policy=allkeys-lru and "
        "pass its name as parameter_group_name.",
    needs="the parameter group a replication group uses (parameterGroupName, by property dependency)",
    covered_by=["aws-elasticache-parameter-group-configure-maxmemory-policy"],
    anchors=Anchors(checklist=["Pre-Deployment 1.3 (maxmemory-policy allkeys-lru)"]),
    level=EnforcementLevel.ADVISORY,
)
def uses_stack_parameter_group(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every replication group uses a parameter group the stack defines (default eviction is volatile-lru)."""
    groups = [r for r in args.resources if r.resource_type == PARAMETER_GROUP]
    for cache in (r for r in args.resources if r.resource_type == REPLICATION_GROUP):
        if undecided(cache, "parameterGroupName") or linked(cache, "parameterGroupName", groups, ("name",)):
            continue
        name = known(cache.props, "parameterGroupName")
        report_violation(f"Replication group '{cache.name}' uses {name or 'the default parameter group'}, which this "
                         "stack does not define (default eviction is volatile-lru).", cache.urn)


@stack_rule(
    "aws-elasticache-replication-group-disallow-literal-auth-token", Severity.HIGH,
    "ElastiCache AUTH tokens are generated by the stack, never literals or config values.",
    fix="Generate the token with random.RandomPassword (letters, digits and '-' only; 16-128 characters) and pass "
        "its result, as StackSecrets does.",
    needs="where the token came from (the property dependency of authToken on a random.RandomPassword)",
    anchors=Anchors(checklist=["Pre-Deployment 2.1", "Pre-Deployment 3.1 (VALKEY_PASSWORD not empty)"]),
)
def generated_auth_token(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """An AUTH token is generated by the stack, never a literal or a config value (only its source is read)."""
    for cache in (r for r in args.resources if r.resource_type == REPLICATION_GROUP):
        if known(cache.props, "authToken") is None:
            continue
        sources = [d.resource_type for d in cache.property_dependencies.get("authToken", [])]
        if RANDOM_PASSWORD not in sources:
            report_violation(f"Replication group '{cache.name}' gets its AUTH token from a literal or from stack "
                             "config, not from a generated value (random.RandomPassword).", cache.urn)


resource_rule(
    "aws-elasticache-cluster-disallow-standalone-redis", [CLUSTER], Severity.HIGH,
    "Redis and Valkey run as replication groups, not standalone cache clusters.",
    fix="Replace the aws.elasticache.Cluster with an aws.elasticache.ReplicationGroup "
        "(num_cache_clusters=2 for failover) with at-rest and transit encryption and an AUTH token.",
    anchors=Anchors(checkov=["CKV_AWS_29", "CKV_AWS_31"], trivy=["AVD-AWS-0045"],
                    securityhub=["ElastiCache.4", "ElastiCache.6"], checklist=_CHECKLIST),
)(_standalone(no_standalone_redis))

resource_rule(
    "aws-elasticache-cluster-require-transit-encryption", [CLUSTER], Severity.HIGH,
    "Standalone ElastiCache clusters require TLS.",
    fix="Set transit_encryption_enabled=True (Memcached 1.6.12 or newer).",
    anchors=Anchors(checkov=["CKV_AWS_30"], trivy=["AVD-AWS-0051"], securityhub=["ElastiCache.5"],
                    checklist=["Pre-Deployment 3.2 (TLS)"]),
)(_standalone(transit_encryption))

resource_rule(
    "aws-elasticache-cluster-configure-snapshot-retention", [CLUSTER], Severity.HIGH,
    "Standalone Redis/Valkey clusters keep daily snapshots at least 30 days.",
    fix="Set snapshot_retention_limit to 30 (up to 35) and a snapshot_window.",
    anchors=Anchors(checkov=["CKV_AWS_134"], trivy=["AVD-AWS-0050"], securityhub=["ElastiCache.1"],
                    checklist=["Pre-Deployment 1.3 (persistence)", "Post-Deployment 4"]),
    config=_SNAPSHOT_CONFIG,
)(_standalone(_persistent(snapshot_retention)))

resource_rule(
    "aws-elasticache-cluster-enable-auto-minor-version-upgrade", [CLUSTER], Severity.HIGH,
    "Standalone ElastiCache clusters apply minor version upgrades automatically.",
    fix="Set auto_minor_version_upgrade=True.",
    anchors=Anchors(checkov=["CKV_AWS_322"], securityhub=["ElastiCache.2"]),
    remediate=enable_auto_minor_upgrade,
)(_standalone(auto_minor_upgrade))

resource_rule(
    "aws-elasticache-cluster-disallow-default-subnet-group", [CLUSTER], Severity.MEDIUM,
    "Standalone ElastiCache clusters use the stack's data subnets, not the default subnet group.",
    fix="Create an aws.elasticache.SubnetGroup over the data subnets and pass its name.",
    anchors=Anchors(checkov=["CKV_AWS_323"], securityhub=["ElastiCache.7"],
                    checklist=["Pre-Deployment 3.2 (Redis: private only)"]),
)(_standalone(custom_subnet_group))

resource_rule(
    "aws-elasticache-cluster-configure-engine-version", [CLUSTER], Severity.MEDIUM,
    "Standalone ElastiCache clusters run Valkey or Redis 7 or newer.",
    fix="Set engine='valkey' with engine_version='7.2' (in a replication group; see "
        "aws-elasticache-cluster-disallow-standalone-redis).",
    anchors=Anchors(checklist=["Pre-Deployment 1.3 (Redis 7.0+, recommended 7.2)"]),
    config=_ENGINE_CONFIG,
)(_standalone(engine_version))

resource_rule(
    "aws-elasticache-serverless-cache-configure-snapshot-retention", [SERVERLESS_CACHE], Severity.HIGH,
    "ElastiCache serverless Redis/Valkey caches keep daily snapshots at least 30 days.",
    fix="Set snapshot_retention_limit to 30 (up to 35) and a daily_snapshot_time.",
    anchors=Anchors(securityhub=["ElastiCache.1"],
                    checklist=["Pre-Deployment 1.3 (persistence)", "Post-Deployment 4"]),
    config=_SNAPSHOT_CONFIG,
)(_persistent(retention_days))

POLICIES = policies_of(__name__)
