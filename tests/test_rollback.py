"""scripts/rollback.py (`make rollback`): traffic first, the database only when confirmed; RDS and SSM in moto."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
DB = "sark-production-db"
SNAPSHOT = "sark-production-pre-v0-2-0"
RECORD = "/sark/production/releases/v0-2-0/gate"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rollback", ROOT / "scripts" / "rollback.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rollback"] = module
    spec.loader.exec_module(module)
    return module


rollback = load()


class FakePulumi:
    def __init__(self, *, previous: str | None = "v0.1.0", up_code: int = 0) -> None:
        self.calls: list[list[str]] = []
        config = {"aws:region": {"value": REGION}, "sark-infra:appVersion": {"value": "v0.2.0"},
                  "sark-infra:namePrefix": {"value": "sark"}}
        if previous:
            config["sark-infra:previousAppVersion"] = {"value": previous}
        self.config = config
        self.up_code = up_code

    def __call__(self, argv: Sequence[str]) -> Any:
        self.calls.append(list(argv))
        if argv[1] == "config":
            return rollback.Completed(0, json.dumps(self.config))
        if argv[1:3] == ["stack", "output"]:
            return rollback.Completed(0, json.dumps({"dbInstanceIdentifier": DB,
                                                     "timescaleDataVolumeId": "vol-0ts"}))
        if argv[1] == "up":
            return rollback.Completed(self.up_code)
        raise AssertionError(argv)


@pytest.fixture
def aws() -> Iterator[Any]:
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        rds = session.client("rds")
        rds.create_db_instance(DBInstanceIdentifier=DB, Engine="postgres", DBInstanceClass="db.m6i.large",
                               AllocatedStorage=100, MasterUsername="sark", MasterUserPassword="x" * 40,
                               MultiAZ=True, DeletionProtection=True, EnableIAMDatabaseAuthentication=True)
        rds.create_db_snapshot(DBInstanceIdentifier=DB, DBSnapshotIdentifier=SNAPSHOT)
        session.client("ssm").put_parameter(Name=RECORD, Type="String", Value=json.dumps(
            {"release": "v0.2.0", "steps": {"migrate": "2026-01-01T00:00:00Z"}}))
        yield session


def run(session: Any, pulumi: FakePulumi, *argv: str, answer: str = "") -> tuple[int, list[str], list[str]]:
    log: list[str] = []
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return answer

    code = rollback.main(["--stack", "production", *argv], run=pulumi, session=session, ask=ask, log=log.append)
    return code, log, asked


def instances(session: Any) -> dict[str, dict[str, Any]]:
    return {i["DBInstanceIdentifier"]: i for i in session.client("rds").describe_db_instances()["DBInstances"]}


def test_traffic_only_by_default(aws: Any) -> None:
    pulumi = FakePulumi()
    code, _log, asked = run(aws, pulumi)
    assert code == 0
    (up,) = [c for c in pulumi.calls if c[1] == "up"]
    assert up[up.index("--stack") + 1] == "production"
    assert "--yes" in up
    configs = [up[i + 1] for i, arg in enumerate(up) if arg == "-c"]
    assert configs == ["appVersion=v0.1.0", "previousAppVersion=", "newVersionTrafficPercent=100"]
    assert not asked
    assert set(instances(aws)) == {DB}  # the database was not touched
    assert aws.client("ssm").get_parameter(Name=RECORD)  # nor the gate record


def test_restore_needs_the_identifier_typed(aws: Any) -> None:
    code, _log, asked = run(aws, FakePulumi(), "--restore-database", answer="yes")
    assert code == 1
    assert asked
    assert DB in asked[0]
    assert SNAPSHOT in asked[0]
    assert set(instances(aws)) == {DB}


def test_confirmed_restore_swaps_in_the_pre_migration_snapshot(aws: Any) -> None:
    code, log, _ = run(aws, FakePulumi(), "--restore-database", answer=DB)
    assert code == 0, log
    found = instances(aws)
    assert set(found) == {DB, f"{DB}-replaced-v0-2-0"}
    restored = found[DB]
    tags = {t["Key"]: t["Value"] for t in aws.client("rds").list_tags_for_resource(
        ResourceName=restored["DBInstanceArn"])["TagList"]}
    assert tags["sark:restored-from"] == SNAPSHOT
    assert restored["MultiAZ"]
    assert restored["DeletionProtection"]
    assert restored["IAMDatabaseAuthenticationEnabled"]
    assert not restored.get("PubliclyAccessible")
    assert found[f"{DB}-replaced-v0-2-0"]["DeletionProtection"]  # kept for inspection, not deleted
    with pytest.raises(aws.client("ssm").exceptions.ParameterNotFound):
        aws.client("ssm").get_parameter(Name=RECORD)  # a redeploy of the tag migrates again
    assert any("pulumi refresh --stack production" in line for line in log)


def test_failed_traffic_revert_restores_nothing(aws: Any) -> None:
    code, _, asked = run(aws, FakePulumi(up_code=255), "--restore-database", "--yes")
    assert code == 1
    assert not asked
    assert set(instances(aws)) == {DB}


def test_first_deployment_has_nothing_to_roll_back_to(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(aws, FakePulumi(previous=None))
    assert code == 2
    assert "no previous release to send traffic to (previousAppVersion is unset)" in capsys.readouterr().err


def test_missing_snapshot_is_named(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(aws, FakePulumi(), "--restore-database", "--yes", "--release", "v0.3.0")
    assert code == 1
    assert "pre-migration snapshot sark-production-pre-v0-3-0 not found" in capsys.readouterr().err
