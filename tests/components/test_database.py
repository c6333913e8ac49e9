"""Database under the mocks: the RDS instance, its parameter group, log groups and monitoring role."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_random as random
import pytest

from components.database import Database, DatabaseArgs
from sarkops.plan.policy_runner import evaluate, load_pack
from sarkops.plan.runtime import Recording, is_secret, plain

Record = Callable[..., Recording]
ROOT = Path(__file__).resolve().parents[2]
KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-4222-a333-444455556666"
INSTANCE = "aws:rds/instance:Instance"
PARAMS = "aws:rds/parameterGroup:ParameterGroup"


def database(**overrides: Any) -> Callable[[], None]:
    def program() -> None:
        password = random.RandomPassword("pw", length=40, special=True, override_special="-_")
        values: dict[str, Any] = {"subnet_ids": ["subnet-0a", "subnet-0b", "subnet-0c"],
                                  "security_group_id": "sg-0database", "key_arn": KEY, "password": password.result}
        values.update(overrides)
        db = Database("sark-db", DatabaseArgs(**values))
        pulumi.export("endpoint", db.endpoint)
        pulumi.export("identifier", db.instance_identifier)
        pulumi.export("port", db.port)
    return program


@pytest.fixture(scope="module")
def rec() -> Recording:
    from tests.conftest import record_program

    return record_program(database())


def test_instance_is_postgres_15_with_database_and_user_sark(rec: Recording) -> None:
    db = rec.one(INSTANCE).inputs
    assert (db["engine"], db["engineVersion"], db["dbName"], db["username"]) == ("postgres", "15", "sark", "sark")
    assert db["identifier"] == "sark-db"
    assert db["port"] == 5432


def test_password_is_the_generated_value_and_stays_secret(rec: Recording) -> None:
    db = rec.one(INSTANCE)
    assert is_secret(db.inputs["password"])
    (source,) = db.property_dependencies["password"]
    assert rec.get(source).type == "random:index/randomPassword:RandomPassword"
    assert plain(db.inputs["password"]) == plain(rec.get(source).outputs["result"])
    assert "manageMasterUserPassword" not in db.inputs


def test_only_inside_the_vpc_behind_the_database_security_group(rec: Recording) -> None:
    db = rec.one(INSTANCE)
    assert db.inputs["publiclyAccessible"] is False
    assert db.inputs["vpcSecurityGroupIds"] == ["sg-0database"]
    group = rec.one("aws:rds/subnetGroup:SubnetGroup")
    assert group.inputs["subnetIds"] == ["subnet-0a", "subnet-0b", "subnet-0c"]
    assert db.property_dependencies["dbSubnetGroupName"] == [group.urn]


def test_storage_encrypted_with_the_stack_key_on_gp3(rec: Recording) -> None:
    db = rec.one(INSTANCE).inputs
    assert db["storageEncrypted"] is True
    assert db["kmsKeyId"] == KEY
    assert db["storageType"] == "gp3"
    assert db["allocatedStorage"] == 100
    assert db["maxAllocatedStorage"] == 500


def test_backups_30_days_multi_az_and_nothing_is_lost_on_delete(rec: Recording) -> None:
    db = rec.one(INSTANCE)
    assert db.inputs["backupRetentionPeriod"] == 30
    assert db.inputs["multiAz"] is True
    assert db.inputs["deletionProtection"] is True
    assert db.inputs["skipFinalSnapshot"] is False
    assert db.inputs["finalSnapshotIdentifier"] == "sark-db-final"
    assert db.inputs["deleteAutomatedBackups"] is False
    assert db.inputs["copyTagsToSnapshot"] is True
    assert db.protect is True


def test_observability_and_hardening_settings(rec: Recording) -> None:
    db = rec.one(INSTANCE)
    inputs = db.inputs
    assert inputs["enabledCloudwatchLogsExports"] == ["postgresql", "upgrade"]
    assert inputs["performanceInsightsEnabled"] is True
    assert inputs["performanceInsightsKmsKeyId"] == KEY
    assert inputs["monitoringInterval"] == 60
    role = rec.one("aws:iam/role:Role")
    assert db.property_dependencies["monitoringRoleArn"] == [role.urn]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "monitoring.rds.amazonaws.com"}
    attachment = rec.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
    assert inputs["iamDatabaseAuthenticationEnabled"] is True
    assert inputs["autoMinorVersionUpgrade"] is True
    assert inputs["allowMajorVersionUpgrade"] is False
    assert inputs["caCertIdentifier"] == "rds-ca-rsa2048-g1"


def test_parameter_group_forces_tls_and_sizes_connections(rec: Recording) -> None:
    db = rec.one(INSTANCE)
    group = rec.one(PARAMS)
    assert db.property_dependencies["parameterGroupName"] == [group.urn]
    assert group.inputs["family"] == "postgres15"
    params = {p["name"]: (p["value"], p["applyMethod"]) for p in group.inputs["parameters"]}
    assert params["rds.force_ssl"] == ("1", "immediate")
    assert params["ssl_min_protocol_version"] == ("TLSv1.2", "immediate")
    assert params["password_encryption"] == ("scram-sha-256", "immediate")
    assert params["max_connections"] == ("720", "pending-reboot")  # static parameter; the connection budget's default
    assert params["log_min_duration_statement"] == ("1000", "immediate")


def test_log_groups_exist_before_the_instance_with_retention_and_the_stack_key(rec: Recording) -> None:
    db = rec.one(INSTANCE)
    groups = rec.by_type("aws:cloudwatch/logGroup:LogGroup")
    assert sorted(g.inputs["name"] for g in groups) == ["/aws/rds/instance/sark-db/postgresql",
                                                         "/aws/rds/instance/sark-db/upgrade"]
    for group in groups:
        assert group.inputs["retentionInDays"] == 90
        assert group.inputs["kmsKeyId"] == KEY
        assert group.urn in db.dependencies


def test_outputs(rec: Recording) -> None:
    assert rec.outputs["identifier"] == "sark-db"
    assert rec.outputs["endpoint"].endswith(".us-east-1.rds.amazonaws.com:5432")
    assert rec.outputs["port"] == 5432


def test_engine_14_minor_version_gets_the_postgres14_family(record: Record) -> None:
    rec = record(database(engine_version="14.9", max_connections=250, backup_retention_days=35))
    assert rec.one(PARAMS).inputs["family"] == "postgres14"
    assert rec.one(INSTANCE).inputs["engineVersion"] == "14.9"
    assert rec.one(INSTANCE).inputs["backupRetentionPeriod"] == 35
    params = {p["name"]: p["value"] for p in rec.one(PARAMS).inputs["parameters"]}
    assert params["max_connections"] == "250"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"engine_version": "13"}, "DatabaseArgs.engine_version: '13' is not allowed; expected PostgreSQL 14 or newer"),
    ({"engine_version": "latest"}, "DatabaseArgs.engine_version: 'latest' is not allowed; expected e.g. '15' or "
                                   "'15.7'"),
    ({"backup_retention_days": 0}, "DatabaseArgs.backup_retention_days: 0 is not allowed; expected 1 to 35"),
])
def test_bad_arguments_are_named(record: Record, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(pulumi.RunError) as raised:
        record(database(**overrides))
    assert str(raised.value) == message


def test_policy_pack_finds_nothing_mandatory_or_advisory(rec: Recording) -> None:
    report = evaluate(rec, [load_pack(ROOT / "policies")])
    rds = [(v.policy, v.detail) for v in report.violations if v.policy.startswith("aws-rds-")]
    assert rds == []
    # The instance's alarms belong to the Monitoring component; the whole-stack plan checks them.
    assert [(v.policy, v.detail) for v in report.mandatory if v.policy != "aws-cloudwatch-require-sark-alarms"] == []
