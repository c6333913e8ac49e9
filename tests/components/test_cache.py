"""Cache under the mocks: the ElastiCache replication group, its subnet and parameter groups."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_random as random
import pytest

from components.cache import Cache, CacheArgs, parameter_group_family
from sarkops.plan.policy_runner import evaluate, load_pack
from sarkops.plan.runtime import Recording, is_secret, plain

Record = Callable[..., Recording]
ROOT = Path(__file__).resolve().parents[2]
KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-4222-a333-444455556666"
GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
PARAMS = "aws:elasticache/parameterGroup:ParameterGroup"


def cache(**overrides: Any) -> Callable[[], None]:
    def program() -> None:
        token = random.RandomPassword("token", length=64, special=True, override_special="-")
        values: dict[str, Any] = {"subnet_ids": ["subnet-0a", "subnet-0b"], "security_group_id": "sg-0cache",
                                  "key_arn": KEY, "auth_token": token.result}
        values.update(overrides)
        made = Cache("sark-cache", CacheArgs(**values))
        pulumi.export("primary", made.primary_endpoint)
        pulumi.export("reader", made.reader_endpoint)
        pulumi.export("members", made.member_cluster_ids)
        pulumi.export("id", made.replication_group_id)
    return program


@pytest.fixture(scope="module")
def rec() -> Recording:
    from tests.conftest import record_program

    return record_program(cache())


def test_valkey_7_2_with_two_nodes_multi_az_and_failover(rec: Recording) -> None:
    group = rec.one(GROUP).inputs
    assert (group["engine"], group["engineVersion"]) == ("valkey", "7.2")
    assert group["numCacheClusters"] == 2
    assert group["automaticFailoverEnabled"] is True
    assert group["multiAzEnabled"] is True
    assert group["autoMinorVersionUpgrade"] is True


def test_tls_required_and_auth_with_the_generated_token_as_a_secret(rec: Recording) -> None:
    group = rec.one(GROUP)
    assert group.inputs["transitEncryptionEnabled"] is True
    assert group.inputs["transitEncryptionMode"] == "required"
    assert is_secret(group.inputs["authToken"])
    (source,) = group.property_dependencies["authToken"]
    assert plain(group.inputs["authToken"]) == plain(rec.get(source).outputs["result"])
    assert group.inputs["authTokenUpdateStrategy"] == "ROTATE"


def test_encrypted_at_rest_with_the_stack_key_and_snapshotted_30_days(rec: Recording) -> None:
    group = rec.one(GROUP)
    assert group.inputs["atRestEncryptionEnabled"] is True
    assert group.inputs["kmsKeyId"] == KEY
    assert group.inputs["snapshotRetentionLimit"] == 30
    assert group.inputs["snapshotWindow"] == "03:00-04:00"
    assert group.inputs["maintenanceWindow"] == "sun:05:00-sun:06:00"
    assert group.protect is True


def test_private_subnet_group_and_only_the_cache_security_group(rec: Recording) -> None:
    group = rec.one(GROUP)
    subnets = rec.one("aws:elasticache/subnetGroup:SubnetGroup")
    assert subnets.inputs["subnetIds"] == ["subnet-0a", "subnet-0b"]
    assert group.property_dependencies["subnetGroupName"] == [subnets.urn]
    assert group.inputs["securityGroupIds"] == ["sg-0cache"]


def test_parameter_group_evicts_allkeys_lru(rec: Recording) -> None:
    group = rec.one(GROUP)
    params = rec.one(PARAMS)
    assert group.property_dependencies["parameterGroupName"] == [params.urn]
    assert params.inputs["family"] == "valkey7"
    assert params.inputs["parameters"] == [{"name": "maxmemory-policy", "value": "allkeys-lru"}]


def test_outputs_endpoints_and_member_clusters(rec: Recording) -> None:
    group_id = rec.outputs["id"]
    assert rec.outputs["primary"].startswith(f"master.{group_id}.")
    assert rec.outputs["reader"].startswith(f"replica.{group_id}.")
    assert rec.outputs["members"] == [f"{group_id}-001", f"{group_id}-002"]


def test_redis_engine_by_config(record: Record) -> None:
    rec = record(cache(engine="redis", engine_version="7.1", node_count=3))
    assert rec.one(PARAMS).inputs["family"] == "redis7"
    assert rec.one(GROUP).inputs["engine"] == "redis"
    assert rec.one(GROUP).inputs["numCacheClusters"] == 3


@pytest.mark.parametrize(("engine", "version", "family"), [("valkey", "8.0", "valkey8"), ("redis", "7.0", "redis7")])
def test_parameter_group_family(engine: str, version: str, family: str) -> None:
    assert parameter_group_family(engine, version) == family


@pytest.mark.parametrize(("overrides", "message"), [
    ({"node_count": 1}, "CacheArgs: node_count: 1 is not allowed; expected 2 or more (Multi-AZ failover needs a "
                        "replica in another zone)"),
    ({"snapshot_retention_days": 40}, "CacheArgs: snapshot_retention_days: 40 is not allowed; expected 1 to 35"),
    ({"engine": "memcached"}, "CacheArgs.engine/engine_version: 'memcached' '7.2' is not allowed; expected one of "
                              "valkey, redis with a major.minor version such as 7.2"),
])
def test_bad_arguments_are_named(record: Record, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(pulumi.RunError) as raised:
        record(cache(**overrides))
    assert str(raised.value) == message


def test_policy_pack_finds_nothing(rec: Recording) -> None:
    report = evaluate(rec, [load_pack(ROOT / "policies")])
    assert [(v.policy, v.detail) for v in report.violations if v.policy.startswith("aws-elasticache-")] == []
    assert [(v.policy, v.detail) for v in report.mandatory if v.policy != "aws-cloudwatch-require-sark-alarms"] == []
