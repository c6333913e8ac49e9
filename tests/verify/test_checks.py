"""Checks whose FAIL paths moto cannot produce, tested with botocore's Stubber, plus the pure parts.

moto reports every load balancer target as healthy and RDS ``LatestRestorableTime`` as "now",
and has no AWS Backup recovery points; a Stubber-backed client answers exactly what real AWS
would in those cases (botocore validates the requests against the service model).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from sarkops.verify.cli import run_item
from sarkops.verify.core import (
    FAIL,
    PASS,
    SKIP,
    Context,
    MissingOutput,
    VerifyError,
    ago,
    arn_name,
    kms_key_id_from_arn,
    parse_outputs,
)
from sarkops.verify.items import (
    ITEMS,
    _hsts_max_age,
    _rotation_problem,
    _schedule_days,
    check_rds_restorable,
    check_targets_healthy,
    check_timescale_snapshots,
    items_by_id,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/sark-v1-3-0/0123456789abcdef"


class Stubs:
    """A client factory whose clients are stubbed; ``stub(service)`` to queue responses."""

    def __init__(self) -> None:
        self._session = boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
        self.clients: dict[str, Any] = {}
        self.stubbers: dict[str, Stubber] = {}

    def __call__(self, service: str) -> Any:
        self.stub(service)
        return self.clients[service]

    def stub(self, service: str) -> Stubber:
        if service not in self.stubbers:
            self.clients[service] = self._session.client(service)
            self.stubbers[service] = Stubber(self.clients[service])
            self.stubbers[service].activate()
        return self.stubbers[service]


@pytest.fixture
def stubs() -> Iterator[Stubs]:
    factory = Stubs()
    yield factory
    for stubber in factory.stubbers.values():
        stubber.assert_no_pending_responses()


def context(stubs: Stubs, **outputs: Any) -> Context:
    return Context(outputs=parse_outputs(outputs, "outputs.json"), client=stubs, now=NOW, region="us-east-1",
                   account_id="123456789012")


def target(ident: str, state: str, reason: str | None = None, description: str | None = None) -> dict[str, Any]:
    health: dict[str, Any] = {"State": state}
    if reason:
        health["Reason"] = reason
    if description:
        health["Description"] = description
    return {"Target": {"Id": ident, "Port": 8000}, "TargetHealth": health}


# ---------------------------------------------------------------------------------------------
# targets-healthy: moto marks every target healthy
# ---------------------------------------------------------------------------------------------
def test_unhealthy_target_fails_with_the_reason(stubs: Stubs) -> None:
    stubs.stub("elbv2").add_response("describe_target_health", {"TargetHealthDescriptions": [
        target("i-0aaa", "healthy"),
        target("i-0bbb", "unhealthy", "Target.ResponseCodeMismatch", "Health checks failed with these codes: [502]"),
    ]}, {"TargetGroupArn": TG})

    outcome = check_targets_healthy(context(stubs, targetGroupArns=[TG]))

    assert outcome.status == FAIL
    assert outcome.evidence == "sark-v1-3-0: i-0bbb is unhealthy (Health checks failed with these codes: [502])"
    assert outcome.fix is not None
    assert "newVersionTrafficPercent=0" in outcome.fix


def test_target_group_without_targets_fails(stubs: Stubs) -> None:
    stubs.stub("elbv2").add_response("describe_target_health", {"TargetHealthDescriptions": []}, {"TargetGroupArn": TG})

    outcome = check_targets_healthy(context(stubs, targetGroupArns=[TG]))

    assert (outcome.status, outcome.evidence) == (FAIL, "sark-v1-3-0: no targets registered")


def test_all_targets_healthy_passes(stubs: Stubs) -> None:
    stubs.stub("elbv2").add_response("describe_target_health", {"TargetHealthDescriptions": [
        target("i-0aaa", "healthy"), target("i-0bbb", "healthy")]}, {"TargetGroupArn": TG})

    outcome = check_targets_healthy(context(stubs, targetGroupArns=[TG]))

    assert (outcome.status, outcome.evidence) == (PASS, "sark-v1-3-0 2/2 healthy")


# ---------------------------------------------------------------------------------------------
# rds-restorable: moto's LatestRestorableTime is always now
# ---------------------------------------------------------------------------------------------
def stub_rds(stubs: Stubs, restorable: datetime | None, snapshot: datetime | None) -> None:
    instance: dict[str, Any] = {"DBInstanceIdentifier": "sark-production-db", "BackupRetentionPeriod": 30}
    if restorable is not None:
        instance["LatestRestorableTime"] = restorable
    rds = stubs.stub("rds")
    rds.add_response("describe_db_instances", {"DBInstances": [instance]},
                     {"DBInstanceIdentifier": "sark-production-db"})
    snapshots = [] if snapshot is None else [{"DBSnapshotIdentifier": "rds:sark-production-db-2026-11-23-03-10",
                                              "SnapshotCreateTime": snapshot, "Status": "available"}]
    rds.add_response("describe_db_snapshots", {"DBSnapshots": snapshots},
                     {"DBInstanceIdentifier": "sark-production-db", "SnapshotType": "automated"})


def test_restore_point_too_old_fails(stubs: Stubs) -> None:
    stub_rds(stubs, restorable=NOW - timedelta(hours=30), snapshot=NOW - timedelta(days=3))

    outcome = check_rds_restorable(context(stubs, dbInstanceIdentifier="sark-production-db"))

    assert outcome.status == FAIL
    assert outcome.evidence == ("sark-production-db: latest automated snapshot rds:sark-production-db-2026-11-23-03-10 "
                                "2026-11-23T12:00Z (3 days ago); latest restorable time 2026-11-25T06:00Z (30 h ago)")
    assert outcome.fix is not None
    assert "aws rds create-db-snapshot" in outcome.fix


def test_no_backups_at_all_fails(stubs: Stubs) -> None:
    stub_rds(stubs, restorable=None, snapshot=None)

    outcome = check_rds_restorable(context(stubs, dbInstanceIdentifier="sark-production-db"))

    assert (outcome.status, outcome.evidence) == (
        FAIL, "sark-production-db: no automated snapshot; no point-in-time restore")


@pytest.mark.parametrize(("restorable", "snapshot"), [
    (NOW - timedelta(minutes=5), NOW - timedelta(days=3)),   # point-in-time restore works
    (NOW - timedelta(hours=5), NOW - timedelta(hours=20)),   # last night's snapshot
])
def test_either_restore_point_is_enough(stubs: Stubs, restorable: datetime, snapshot: datetime) -> None:
    stub_rds(stubs, restorable=restorable, snapshot=snapshot)

    assert check_rds_restorable(context(stubs, dbInstanceIdentifier="sark-production-db")).status == PASS


# ---------------------------------------------------------------------------------------------
# timescale-snapshots: the AWS Backup fallback (moto has no recovery points)
# ---------------------------------------------------------------------------------------------
def stub_volume(stubs: Stubs, snapshot_time: datetime) -> None:
    ec2 = stubs.stub("ec2")
    ec2.add_response("describe_volumes", {"Volumes": [{"VolumeId": "vol-0abc"}]}, {"VolumeIds": ["vol-0abc"]})
    ec2.add_response("describe_snapshots", {"Snapshots": [
        {"SnapshotId": "snap-0old", "VolumeId": "vol-0abc", "State": "completed", "StartTime": snapshot_time}]},
        {"OwnerIds": ["self"], "Filters": [{"Name": "volume-id", "Values": ["vol-0abc"]}]})


def test_recent_aws_backup_recovery_point_passes(stubs: Stubs) -> None:
    stub_volume(stubs, NOW - timedelta(days=4))
    stubs.stub("backup").add_response("list_recovery_points_by_resource", {"RecoveryPoints": [
        {"RecoveryPointArn": "arn:aws:ec2:us-east-1::snapshot/snap-0new", "Status": "COMPLETED",
         "CreationDate": NOW - timedelta(hours=7)}]},
        {"ResourceArn": "arn:aws:ec2:us-east-1:123456789012:volume/vol-0abc"})

    outcome = check_timescale_snapshots(context(stubs, timescaleDataVolumeId="vol-0abc"))

    assert (outcome.status, outcome.evidence) == (
        PASS, "vol-0abc: latest AWS Backup recovery point 2026-11-26T05:00Z (7 h ago)")


def test_aws_backup_not_usable_falls_back_to_the_ebs_verdict(stubs: Stubs) -> None:
    stub_volume(stubs, NOW - timedelta(days=4))
    stubs.stub("backup").add_client_error("list_recovery_points_by_resource", "AccessDeniedException",
                                          expected_params={"ResourceArn": ANY})

    outcome = check_timescale_snapshots(context(stubs, timescaleDataVolumeId="vol-0abc"))

    assert outcome.status == FAIL
    assert outcome.evidence.startswith("vol-0abc: latest snapshot snap-0old 2026-11-22T12:00Z (4 days ago)")


# ---------------------------------------------------------------------------------------------
# The runner: AWS errors become FAILs that say what to do; a crash in one check hides nothing
# ---------------------------------------------------------------------------------------------
def test_access_denied_fails_with_a_permissions_fix(stubs: Stubs) -> None:
    stubs.stub("elbv2").add_client_error("describe_target_health", "AccessDenied", "not authorized",
                                         expected_params={"TargetGroupArn": TG})

    result = run_item(items_by_id(["targets-healthy"])[0], context(stubs, targetGroupArns=[TG]))

    assert (result.status, result.evidence) == (FAIL, "DescribeTargetHealth: AccessDenied: not authorized")
    assert result.fix == ("give the verifying role read access for DescribeTargetHealth "
                          "(docs/verify.md lists the permissions)")


def test_a_crashing_check_fails_alone(stubs: Stubs, monkeypatch: pytest.MonkeyPatch) -> None:
    item = items_by_id(["dashboard"])[0]
    broken = type(item)(item.id, item.title, item.checklist, lambda ctx: 1 / 0)

    result = run_item(broken, context(stubs, dashboardName="sark"))

    assert result.status == FAIL
    assert result.evidence == "internal error in the check: ZeroDivisionError: division by zero"
    assert result.fix is not None
    assert "SARKOPS_DEBUG=1" in result.fix


def test_missing_output_skips_and_names_it(stubs: Stubs) -> None:
    result = run_item(items_by_id(["rds-multi-az"])[0], context(stubs, dashboardName="sark"))

    assert (result.status, result.evidence) == (SKIP, "output dbInstanceIdentifier not exported by the stack in "
                                                      "outputs.json")


def test_http_items_skip_when_probes_are_off(stubs: Stubs) -> None:
    ctx = context(stubs, serviceUrl="https://sark.example.com")
    ctx.http_skip_reason = "HTTP probes are off (--skip-http)"

    results = [run_item(item, ctx) for item in ITEMS if item.http]

    assert {(r.id, r.status, r.evidence) for r in results} == {
        (i, SKIP, "HTTP probes are off (--skip-http)") for i in ("health-endpoint", "security-headers",
                                                                 "metrics-not-public")}


def test_every_item_has_a_unique_id_and_a_checklist_reference() -> None:
    ids = [item.id for item in ITEMS]
    assert len(ids) == len(set(ids))
    assert all(item.checklist and item.title for item in ITEMS)


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------
def secret(**fields: Any) -> dict[str, Any]:
    return {"Name": "x", "CreatedDate": NOW - timedelta(days=400), **fields}


@pytest.mark.parametrize(("name", "described", "problem"), [
    ("SPLUNK_HEC_TOKEN", secret(LastChangedDate=NOW - timedelta(days=100)),
     "SPLUNK_HEC_TOKEN (rotated by hand) last changed 100 days ago, expected within 90 days"),
    ("SPLUNK_HEC_TOKEN", secret(LastChangedDate=NOW - timedelta(days=20)), None),
    ("SECRET_KEY", secret(RotationEnabled=True, RotationRules={"AutomaticallyAfterDays": 200}),
     "SECRET_KEY rotates every 200 days, expected at most 180 (checklist)"),
    ("POSTGRES_PASSWORD", secret(RotationEnabled=True, RotationRules={"AutomaticallyAfterDays": 90},
                                 Tags=[{"Key": "sark:rotation-days", "Value": "60"}]),
     "POSTGRES_PASSWORD rotates every 90 days, expected at most 60 (sark:rotation-days tag)"),
    ("POSTGRES_PASSWORD", secret(RotationEnabled=True, RotationRules={"ScheduleExpression": "rate(30 days)"}), None),
    ("VALKEY_PASSWORD", secret(RotationEnabled=True, RotationRules={"ScheduleExpression": "cron(0 4 1 * ? *)"},
                               LastRotatedDate=NOW - timedelta(days=120)),
     "VALKEY_PASSWORD last rotated 120 days ago, expected every 90 days (checklist)"),
    ("VALKEY_PASSWORD", secret(), "VALKEY_PASSWORD has rotation off, expected every 90 days (checklist)"),
    ("SOMETHING_NEW", secret(LastChangedDate=NOW - timedelta(days=91)),
     "SOMETHING_NEW (rotated by hand) last changed 91 days ago, expected within 90 days"),
])
def test_rotation_rules(stubs: Stubs, name: str, described: dict[str, Any], problem: str | None) -> None:
    assert _rotation_problem(context(stubs, dashboardName="d"), name, described)[0] == problem


@pytest.mark.parametrize(("rules", "days"), [
    ({"AutomaticallyAfterDays": 30}, 30), ({"ScheduleExpression": "rate(10 days)"}, 10),
    ({"ScheduleExpression": "rate(48 hours)"}, 2), ({"ScheduleExpression": "cron(0 4 ? * SUN *)"}, None), ({}, None),
])
def test_schedule_days(rules: dict[str, Any], days: int | None) -> None:
    assert _schedule_days(rules) == days


@pytest.mark.parametrize(("header", "age"), [
    ("max-age=31536000; includeSubDomains", 31536000), ('max-age="63072000"', 63072000),
    ("includeSubDomains; max-age=300", 300), ("includeSubDomains", None), ("max-age=forever", None),
])
def test_hsts_max_age(header: str, age: int | None) -> None:
    assert _hsts_max_age(header) == age


def test_kms_references() -> None:
    assert kms_key_id_from_arn("arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab") == "1234abcd-12ab"
    assert kms_key_id_from_arn("1234abcd-12ab") == "1234abcd-12ab"
    assert kms_key_id_from_arn("alias/aws/secretsmanager") is None
    assert kms_key_id_from_arn("arn:aws:kms:us-east-1:123456789012:alias/sark") is None


def test_small_formatters() -> None:
    assert arn_name(TG) == "sark-v1-3-0"
    assert arn_name("arn:aws:sns:us-east-1:123456789012:sark-alerts") == "sark-alerts"
    assert arn_name("arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/sark-prod/50dc6c495c0c9188"
                    ) == "sark-prod"
    assert [ago(timedelta(seconds=s)) for s in (5, 600, 7200 * 3, 86400 * 3, -1)] == [
        "5 s ago", "10 min ago", "6 h ago", "3 days ago", "in the future"]


# ---------------------------------------------------------------------------------------------
# The outputs contract
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "message"), [
    ([], "outputs.json: expected a JSON object of stack outputs (from `pulumi stack output --json`), got list"),
    ({"vpcId": "vpc-1"}, "outputs.json: none of the stack outputs verify uses is there"),
    ({"serviceUrl": 42}, "outputs.json: output 'serviceUrl' is 42; expected a non-empty string"),
    ({"alarmNames": "sark-cpu"},
     "outputs.json: output 'alarmNames' is \"sark-cpu\"; expected a list of non-empty strings"),
    ({"secretArns": ["arn:1"]}, "outputs.json: output 'secretArns' is [\"arn:1\"]; expected an object mapping secret "
                                "names (SECRET_KEY, POSTGRES_PASSWORD, ...) to ARNs"),
])
def test_bad_outputs_are_rejected_with_the_key_and_value(data: Any, message: str) -> None:
    with pytest.raises(VerifyError) as error:
        parse_outputs(data, "outputs.json")
    assert str(error.value).startswith(message)


def test_outputs_keep_known_keys_and_note_masked_ones() -> None:
    outputs = parse_outputs({"serviceUrl": "https://sark.example.com", "dbEndpoint": "[secret]", "vpcId": "vpc-1",
                             "dashboardName": None}, "outputs.json")

    assert dict(outputs.values) == {"serviceUrl": "https://sark.example.com"}
    assert outputs.secret == {"dbEndpoint"}
    with pytest.raises(MissingOutput):
        outputs.get("dashboardName")
