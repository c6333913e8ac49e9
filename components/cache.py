"""SARK's cache: an ElastiCache replication group running Valkey (or Redis) 7 (checklist 1.3).

Creates:
- a cache subnet group over the isolated data subnets (never the default group);
- a parameter group (family ``valkey7`` / ``redis7``) with ``maxmemory-policy allkeys-lru``;
- the replication group: ``node_count`` nodes (a primary and replicas in different zones)
  with Multi-AZ and automatic failover, AUTH with the generated ``VALKEY_PASSWORD`` (rotated
  by components/secrets.py with the ROTATE strategy, so old and new token both work during
  a rotation), TLS required in transit, encryption at rest with the stack key, only the
  cache security group (6379 from the app hosts), daily snapshots kept
  ``snapshot_retention_days`` and automatic minor upgrades. Protected in Pulumi as well.

Persistence: the checklist asks for RDB + AOF. ElastiCache offers no AOF for Valkey or
Redis 7 (AWS recommends Multi-AZ replicas instead); durability here comes from (asynchronous)
replication to replicas in other zones with automatic failover, plus daily RDB snapshots
kept 30 days. docs/data-tier.md explains what SARK keeps in the cache and why that is enough.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components._names import bounded_name

PORT = 6379
ENGINES = ("valkey", "redis")



class CacheArgsError(pulumi.RunError, ValueError):
    """An argument of Cache is invalid; the message names it, its value and what is allowed.

    A ``pulumi.RunError``, so the Pulumi CLI prints the message without a traceback.
    """

@dataclass(frozen=True, kw_only=True)
class CacheArgs:
    """Arguments of :class:`Cache`."""

    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """The isolated data subnets (one per zone)."""

    security_group_id: pulumi.Input[str]
    """``SecurityGroups.cache_id``: 6379 from the app hosts only."""

    key_arn: pulumi.Input[str]
    """The stack key: encryption at rest."""

    auth_token: pulumi.Input[str]
    """First AUTH token (``StackSecrets.valkey_password``, a secret); rotated afterwards."""

    engine: str = "valkey"
    """``valkey`` or ``redis``."""

    engine_version: str = "7.2"
    """major.minor; 7.2 or newer for Valkey, 7.0 or newer for Redis."""

    node_type: str = "cache.m6g.large"
    """ElastiCache node type."""

    node_count: int = 2
    """Nodes in the group (a primary and replicas); at least 2 for Multi-AZ failover."""

    snapshot_retention_days: int = 30
    """Days daily snapshots are kept (ElastiCache allows up to 35)."""

    snapshot_window: str = "03:00-04:00"
    """Daily snapshot window (UTC)."""

    maintenance_window: str = "sun:05:00-sun:06:00"
    """Weekly maintenance window (UTC), apart from the snapshot window."""

    maxmemory_policy: str = "allkeys-lru"
    """Eviction policy when memory is full (checklist: allkeys-lru)."""

    extra_tags: Mapping[str, str] = field(default_factory=dict)
    """Tags added to every resource."""


def parameter_group_family(engine: str, version: str) -> str:
    """``valkey7``, ``redis7``, ...: the family ElastiCache expects for an engine version."""
    match = re.fullmatch(r"(\d+)\.(\d+)", version)
    if engine not in ENGINES or match is None:
        raise CacheArgsError(f"CacheArgs.engine/engine_version: {engine!r} {version!r} is not allowed; expected "
                         f"one of {', '.join(ENGINES)} with a major.minor version such as 7.2")
    return f"{engine}{match.group(1)}"


class Cache(pulumi.ComponentResource):
    """Valkey/Redis 7 replication group: TLS + AUTH, encrypted, Multi-AZ, snapshotted daily."""

    replication_group_id: pulumi.Output[str]
    """Replication group id."""

    primary_endpoint: pulumi.Output[str]
    """Primary endpoint host name: ``VALKEY_HOST`` for the app."""

    reader_endpoint: pulumi.Output[str]
    """Reader endpoint host name (replicas)."""

    port: int
    """TCP port (TLS)."""

    arn: pulumi.Output[str]
    """ARN of the replication group."""

    member_cluster_ids: pulumi.Output[list[str]]
    """Member cluster ids (the ``CacheClusterId`` metric dimension), ``<id>-001`` ..."""

    node_count: int
    """Number of nodes."""

    def __init__(self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:cache:Cache", name, None, opts)
        family = parameter_group_family(args.engine, args.engine_version)
        problems = []
        if args.node_count < 2:
            problems.append(f"node_count: {args.node_count} is not allowed; expected 2 or more (Multi-AZ failover "
                            "needs a replica in another zone)")
        if not 1 <= args.snapshot_retention_days <= 35:
            problems.append(f"snapshot_retention_days: {args.snapshot_retention_days} is not allowed; expected 1 to 35")
        if problems:
            raise CacheArgsError("CacheArgs: " + "; ".join(problems))
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.extra_tags)

        subnet_group = aws.elasticache.SubnetGroup(
            f"{name}-subnets",
            description=f"SARK cache ({name}) in the data subnets",
            subnet_ids=args.subnet_ids,
            tags=tags,
            opts=child,
        )
        parameters = aws.elasticache.ParameterGroup(
            f"{name}-params",
            family=family,
            description=f"SARK {args.engine} {args.engine_version}: {args.maxmemory_policy} eviction",
            parameters=[aws.elasticache.ParameterGroupParameterArgs(name="maxmemory-policy",
                                                                    value=args.maxmemory_policy)],
            tags=tags,
            opts=child,
        )
        group = aws.elasticache.ReplicationGroup(
            f"{name}-group",
            # ElastiCache allows 40 characters; the auto-name (logical name + 8) passes that
            # for longer stack names (components/_names.py).
            replication_group_id=bounded_name(name, 40, name, "replication-group"),
            description=f"SARK {args.engine} cache",
            engine=args.engine,
            engine_version=args.engine_version,
            node_type=args.node_type,
            num_cache_clusters=args.node_count,
            port=PORT,
            parameter_group_name=parameters.name,
            subnet_group_name=subnet_group.name,
            security_group_ids=[args.security_group_id],
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=pulumi.Output.secret(args.auth_token),
            # Only used when the token changes: both tokens stay valid until the next change.
            auth_token_update_strategy="ROTATE",  # noqa: S106 (a strategy name, not a token)
            at_rest_encryption_enabled=True,
            kms_key_id=args.key_arn,
            snapshot_retention_limit=args.snapshot_retention_days,
            snapshot_window=args.snapshot_window,
            maintenance_window=args.maintenance_window,
            auto_minor_version_upgrade=True,
            apply_immediately=False,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )

        self.replication_group_id = group.id
        self.primary_endpoint = group.primary_endpoint_address
        self.reader_endpoint = group.reader_endpoint_address
        self.port = PORT
        self.arn = group.arn
        self.member_cluster_ids = group.member_clusters
        self.node_count = args.node_count
        self.register_outputs({
            "replicationGroupId": self.replication_group_id, "primaryEndpoint": self.primary_endpoint,
            "readerEndpoint": self.reader_endpoint, "port": self.port, "memberClusterIds": self.member_cluster_ids,
        })
