"""ElastiCache rules: a compliant replication group, one mutated property, the exact message."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, Severity

from sark_policies import elasticache
from tests.policies.helpers import UNKNOWN, Res, by_name, check_resource, check_stack, urn

KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-4222-a333-444455556666"
COMPLIANT: dict[str, Any] = {
    "engine": "valkey", "engineVersion": "7.2", "atRestEncryptionEnabled": True, "kmsKeyId": KEY,
    "transitEncryptionEnabled": True, "transitEncryptionMode": "required", "authToken": "generated-elsewhere",
    "snapshotRetentionLimit": 30, "snapshotWindow": "03:00-04:00", "automaticFailoverEnabled": True,
    "multiAzEnabled": True, "numCacheClusters": 2, "subnetGroupName": "sark-cache-subnets",
    "autoMinorVersionUpgrade": True, "parameterGroupName": "sark-cache-params",
}


def check(name: str, changes: dict[str, Any] | None = None, drop: tuple[str, ...] = (),
          config: dict[str, Any] | None = None) -> list[str]:
    props = {k: v for k, v in {**COMPLIANT, **(changes or {})}.items() if k not in drop}
    return check_resource(by_name(elasticache.POLICIES, name), elasticache.REPLICATION_GROUP, props,
                          config=config).messages


def test_metadata() -> None:
    levels = {p.name: p.enforcement_level for p in elasticache.POLICIES}
    assert sorted(n for n, level in levels.items() if level != EnforcementLevel.MANDATORY) == [
        "aws-elasticache-parameter-group-configure-maxmemory-policy",
        "aws-elasticache-replication-group-configure-maxmemory-policy"]
    for policy in elasticache.POLICIES:
        assert policy.remediation_steps
        assert policy.tags, policy.name
    transit = by_name(elasticache.POLICIES, "aws-elasticache-replication-group-require-transit-encryption")
    assert transit.severity == Severity.HIGH
    assert "securityhub:ElastiCache.5" in transit.tags


@pytest.mark.parametrize("policy", [p.name for p in elasticache.POLICIES if isinstance(p, ResourceValidationPolicy)])
def test_compliant_group_passes_every_resource_rule(policy: str) -> None:
    assert check(policy) == []


@pytest.mark.parametrize(("policy", "changes", "drop", "message"), [
    ("aws-elasticache-replication-group-enable-at-rest-encryption", {"atRestEncryptionEnabled": False}, (),
     "atRestEncryptionEnabled is not true; cached data and snapshots would be stored unencrypted."),
    ("aws-elasticache-replication-group-enable-at-rest-encryption", {"atRestEncryptionEnabled": "true"},
     ("kmsKeyId",),
     "kmsKeyId is not set; data at rest would use the AWS-managed key, not the stack's customer-managed key."),
    ("aws-elasticache-replication-group-require-transit-encryption", {"transitEncryptionEnabled": False}, (),
     "transitEncryptionEnabled is not true; clients and replication would talk in plain text."),
    ("aws-elasticache-replication-group-require-transit-encryption", {"transitEncryptionMode": "preferred"}, (),
     "transitEncryptionMode is preferred; it must be required so no client can connect without TLS."),
    ("aws-elasticache-replication-group-require-auth", {}, ("authToken",),
     "Neither authToken nor userGroupIds is set; any host that can reach port 6379 could read and write the cache."),
    ("aws-elasticache-replication-group-configure-snapshot-retention", {"snapshotRetentionLimit": 7}, (),
     "snapshotRetentionLimit is 7 days; it must be at least 30 days."),
    ("aws-elasticache-replication-group-configure-snapshot-retention", {"snapshotRetentionLimit": 0}, (),
     "snapshotRetentionLimit is 0 or not set (no automatic snapshots); it must be at least 30 days."),
    ("aws-elasticache-replication-group-configure-snapshot-retention", {}, ("snapshotWindow",),
     "snapshotWindow is not set; choose a daily window outside the maintenance window."),
    ("aws-elasticache-replication-group-enable-automatic-failover", {"automaticFailoverEnabled": False}, (),
     "automaticFailoverEnabled is not true; losing the primary would stop the cache."),
    ("aws-elasticache-replication-group-enable-automatic-failover", {"multiAzEnabled": False}, (),
     "multiAzEnabled is not true; primary and replicas may share one availability zone."),
    ("aws-elasticache-replication-group-enable-automatic-failover", {"numCacheClusters": 1}, (),
     "numCacheClusters is 1; failover needs at least 2 nodes."),
    ("aws-elasticache-replication-group-disallow-default-subnet-group", {"subnetGroupName": "default"}, (),
     "subnetGroupName is default; use a subnet group over the stack's data subnets."),
    ("aws-elasticache-replication-group-disallow-default-subnet-group", {}, ("subnetGroupName",),
     "subnetGroupName is not set; the cache would land in the default subnet group of the default VPC."),
    ("aws-elasticache-replication-group-configure-engine-version", {"engineVersion": "6.2"}, (),
     "engineVersion 6.2 is valkey 6; it must be 7 or newer."),
    ("aws-elasticache-replication-group-configure-engine-version", {"engine": "memcached"}, (),
     "engine is memcached; it must be one of valkey, redis."),
    ("aws-elasticache-replication-group-configure-engine-version", {}, ("engineVersion",),
     "engineVersion is not set; pin valkey 7 or newer."),
    ("aws-elasticache-replication-group-enable-auto-minor-version-upgrade", {"autoMinorVersionUpgrade": "false"}, (),
     "autoMinorVersionUpgrade is false; engine security fixes would not be applied."),
])
def test_one_mutation_one_exact_message(policy: str, changes: dict[str, Any], drop: tuple[str, ...],
                                        message: str) -> None:
    assert check(policy, changes, drop) == [message]


def test_rbac_user_groups_count_as_authentication() -> None:
    assert check("aws-elasticache-replication-group-require-auth", {"userGroupIds": ["sark-users"]},
                 ("authToken",)) == []


def test_engine_defaults_to_redis_and_thresholds_come_from_config() -> None:
    assert check("aws-elasticache-replication-group-configure-engine-version", {"engineVersion": "7.1"},
                 ("engine",), config={"minMajorVersion": 8}) == ["engineVersion 7.1 is redis 7; it must be 8 or newer."]
    assert check("aws-elasticache-replication-group-configure-snapshot-retention", config={"minDays": 35}) == [
        "snapshotRetentionLimit is 30 days; it must be at least 35 days."]


def test_token_unknown_during_preview_counts_as_set() -> None:
    policy = by_name(elasticache.POLICIES, "aws-elasticache-replication-group-require-auth")
    result = check_resource(policy, elasticache.REPLICATION_GROUP, {**COMPLIANT, "authToken": UNKNOWN})
    assert result.violations == []
    assert result.advisories == []


# --- maxmemory-policy through the parameter group (stack rule) ------------------------------------------

MAXMEMORY = by_name(elasticache.POLICIES, "aws-elasticache-replication-group-configure-maxmemory-policy")
PARAMS_MAXMEMORY = by_name(elasticache.POLICIES, "aws-elasticache-parameter-group-configure-maxmemory-policy")


def _memory_stack(value: str | None = "allkeys-lru", linked: bool = True) -> list[Res]:
    params = Res(elasticache.PARAMETER_GROUP, "sark-cache-params", {
        "name": "sark-cache-params-1a2b", "family": "valkey7",
        "parameters": [{"name": "maxmemory-policy", "value": value}] if value else []})
    group = Res(elasticache.REPLICATION_GROUP, "sark-cache",
                {"parameterGroupName": "sark-cache-params-1a2b" if linked else "default.valkey7"},
                property_dependencies={"parameterGroupName": [params.urn]} if linked else {})
    return [params, group]


def test_allkeys_lru_passes() -> None:
    assert check_stack(MAXMEMORY, _memory_stack()).violations == []


def test_noeviction_fails_on_the_parameter_group_itself() -> None:
    params = _memory_stack("noeviction")[0]
    result = check_resource(PARAMS_MAXMEMORY, elasticache.PARAMETER_GROUP, params.props, name=params.name)
    assert result.violations == [(urn(elasticache.PARAMETER_GROUP, "sark-cache-params"),
                                  "maxmemory-policy is noeviction; it must be allkeys-lru.")]
    assert check_stack(MAXMEMORY, _memory_stack("noeviction")).violations == []


def test_parameter_group_without_the_setting_fails() -> None:
    params = _memory_stack(None)[0]
    assert check_resource(PARAMS_MAXMEMORY, elasticache.PARAMETER_GROUP, params.props).messages == [
        "maxmemory-policy is not set (default volatile-lru); it must be allkeys-lru."]


def test_parameter_group_of_another_engine_is_not_checked() -> None:
    props = {"family": "memcached1.6", "parameters": []}
    assert check_resource(PARAMS_MAXMEMORY, elasticache.PARAMETER_GROUP, props).violations == []


def test_default_parameter_group_fails() -> None:
    assert check_stack(MAXMEMORY, _memory_stack(linked=False)).messages == [
        "Replication group 'sark-cache' uses default.valkey7, which this stack does not define (default eviction "
        "is volatile-lru)."]


def test_parameter_group_name_unknown_is_followed_by_dependency() -> None:
    resources = _memory_stack()
    resources[1].props = {"parameterGroupName": UNKNOWN}
    result = check_stack(MAXMEMORY, resources)
    assert (result.violations, result.advisories) == ([], [])


# --- where the AUTH token comes from (stack rule) -------------------------------------------------------

TOKEN = by_name(elasticache.POLICIES, "aws-elasticache-replication-group-disallow-literal-auth-token")


def test_generated_token_passes_and_literal_fails() -> None:
    generator = Res(elasticache.RANDOM_PASSWORD, "token", {"result": "generated"})
    group = Res(elasticache.REPLICATION_GROUP, "sark-cache", {"authToken": "generated"},
                property_dependencies={"authToken": [generator.urn]})
    assert check_stack(TOKEN, [generator, group]).violations == []
    literal = Res(elasticache.REPLICATION_GROUP, "sark-cache", {"authToken": "typed-in-token-1234"})
    assert check_stack(TOKEN, [literal]).messages == [
        "Replication group 'sark-cache' gets its AUTH token from a literal or from stack config, not from a "
        "generated value (random.RandomPassword)."]


def test_group_without_token_is_left_to_the_auth_rule() -> None:
    assert check_stack(TOKEN, [Res(elasticache.REPLICATION_GROUP, "c", {"userGroupIds": ["u"]})]).violations == []


# --- standalone clusters and serverless caches --------------------------------------------------------

CLUSTER = elasticache.CLUSTER
SERVERLESS = elasticache.SERVERLESS_CACHE
MEMCACHED: dict[str, Any] = {"engine": "memcached", "engineVersion": "1.6.22", "nodeType": "cache.t4g.small",
                             "numCacheNodes": 2, "transitEncryptionEnabled": True, "autoMinorVersionUpgrade": True,
                             "subnetGroupName": "sark-cache-subnets"}
SERVERLESS_VALKEY: dict[str, Any] = {"engine": "valkey", "majorEngineVersion": "7", "kmsKeyId": KEY,
                                     "snapshotRetentionLimit": 30, "dailySnapshotTime": "03:00",
                                     "subnetIds": ["subnet-1", "subnet-2"]}
CLUSTER_RULES = [p for p in elasticache.POLICIES if p.name.startswith("aws-elasticache-cluster-")]
SERVERLESS_RULES = [p for p in elasticache.POLICIES if p.name.startswith("aws-elasticache-serverless-cache-")]


@pytest.mark.parametrize("policy", [p for p in CLUSTER_RULES if not p.name.endswith("engine-version")],
                         ids=lambda p: p.name)
def test_tls_memcached_cluster_passes(policy: Any) -> None:
    assert check_resource(policy, CLUSTER, MEMCACHED).violations == []


def test_cluster_engine_version_passes_for_valkey_7() -> None:
    policy = by_name(elasticache.POLICIES, "aws-elasticache-cluster-configure-engine-version")
    assert check_resource(policy, CLUSTER, {**MEMCACHED, "engine": "valkey", "engineVersion": "7.2"}).violations == []


@pytest.mark.parametrize("policy", CLUSTER_RULES, ids=lambda p: p.name)
def test_replication_group_member_follows_its_group(policy: Any) -> None:
    member = {"replicationGroupId": "sark-cache", "engine": "valkey", "autoMinorVersionUpgrade": False}
    assert check_resource(policy, CLUSTER, member).violations == []


@pytest.mark.parametrize(("name", "props", "message"), [
    ("aws-elasticache-cluster-disallow-standalone-redis", {"engine": "redis"},
     "A standalone redis cluster cannot encrypt data at rest or require AUTH; create an "
     "aws.elasticache.ReplicationGroup (one node is enough) instead."),
    ("aws-elasticache-cluster-require-transit-encryption", {"transitEncryptionEnabled": False},
     "transitEncryptionEnabled is not true; clients and replication would talk in plain text."),
    ("aws-elasticache-cluster-configure-snapshot-retention",
     {"engine": "valkey", "snapshotRetentionLimit": 5, "snapshotWindow": "03:00-04:00"},
     "snapshotRetentionLimit is 5 days; it must be at least 30 days."),
    ("aws-elasticache-cluster-enable-auto-minor-version-upgrade", {"autoMinorVersionUpgrade": False},
     "autoMinorVersionUpgrade is false; engine security fixes would not be applied."),
    ("aws-elasticache-cluster-disallow-default-subnet-group", {"subnetGroupName": "default"},
     "subnetGroupName is default; use a subnet group over the stack's data subnets."),
    ("aws-elasticache-cluster-configure-engine-version", {},
     "engine is memcached; it must be one of valkey, redis."),
])
def test_cluster_one_change_one_message(name: str, props: dict[str, Any], message: str) -> None:
    assert check_resource(by_name(elasticache.POLICIES, name), CLUSTER, {**MEMCACHED, **props}).messages == [message]


def test_memcached_has_no_snapshots_to_keep() -> None:
    policy = by_name(elasticache.POLICIES, "aws-elasticache-cluster-configure-snapshot-retention")
    assert check_resource(policy, CLUSTER, MEMCACHED).violations == []


@pytest.mark.parametrize("policy", SERVERLESS_RULES, ids=lambda p: p.name)
def test_serverless_valkey_passes(policy: Any) -> None:
    assert check_resource(policy, SERVERLESS, SERVERLESS_VALKEY).violations == []


@pytest.mark.parametrize(("name", "changes", "drop", "message"), [
    ("aws-elasticache-serverless-cache-configure-customer-managed-key", {}, ("kmsKeyId",),
     "kmsKeyId is not set; data at rest would use an AWS-owned key, not the stack's customer-managed key."),
    ("aws-elasticache-serverless-cache-configure-snapshot-retention", {}, ("snapshotRetentionLimit",),
     "snapshotRetentionLimit is 0 or not set (no automatic snapshots); it must be at least 30 days."),
    ("aws-elasticache-serverless-cache-configure-snapshot-retention", {"snapshotRetentionLimit": 14}, (),
     "snapshotRetentionLimit is 14 days; it must be at least 30 days."),
    ("aws-elasticache-serverless-cache-configure-engine-version", {"majorEngineVersion": "6"}, (),
     "majorEngineVersion 6 is valkey 6; it must be 7 or newer."),
])
def test_serverless_one_change_one_message(name: str, changes: dict[str, Any], drop: tuple[str, ...],
                                           message: str) -> None:
    props = {k: v for k, v in {**SERVERLESS_VALKEY, **changes}.items() if k not in drop}
    assert check_resource(by_name(elasticache.POLICIES, name), SERVERLESS, props).messages == [message]


def test_failover_node_count_comes_from_config() -> None:
    name = "aws-elasticache-replication-group-enable-automatic-failover"
    assert check(name, config={"minNodes": 3}) == ["numCacheClusters is 2; failover needs at least 3 nodes."]
    assert check(name, {"replicasPerNodeGroup": 1}, ("numCacheClusters",)) == []
    assert check(name, {}, ("numCacheClusters",)) == [
        "numCacheClusters is not set (and replicasPerNodeGroup is below 1); failover needs at least 2 nodes."]
