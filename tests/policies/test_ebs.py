"""EBS volume and backup rules: compliant resources, one change, the exact message."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from sark_policies import ebs
from tests.policies.helpers import UNKNOWN, Res, by_name, check_resource, check_stack, urn

KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-4222-a333-444455556666"
ENCRYPTED = by_name(ebs.POLICIES, "aws-ebs-volume-disallow-unencrypted-volume")
CMK = by_name(ebs.POLICIES, "aws-ebs-volume-configure-customer-managed-key")
PLAN = by_name(ebs.POLICIES, "aws-backup-plan-configure-retention")
VAULT = by_name(ebs.POLICIES, "aws-backup-vault-configure-customer-managed-key")
DLM = by_name(ebs.POLICIES, "aws-dlm-lifecycle-policy-configure-retention")
COVERED = by_name(ebs.POLICIES, "aws-ebs-volume-require-backup")

VOLUME: dict[str, Any] = {"availabilityZone": "us-east-1a", "size": 200, "type": "gp3", "encrypted": True,
                          "kmsKeyId": KEY}


def test_metadata() -> None:
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in ebs.POLICIES)
    assert "checkov:CKV2_AWS_9" in COVERED.tags
    assert all(p.remediation_steps for p in ebs.POLICIES)


# --- volumes ---------------------------------------------------------------------------------------------

def test_encrypted_volume_with_the_stack_key_passes() -> None:
    assert check_resource(ENCRYPTED, ebs.VOLUME, VOLUME).violations == []
    assert check_resource(CMK, ebs.VOLUME, VOLUME).violations == []


def test_unencrypted_volume_fails_once() -> None:
    props = {**VOLUME, "encrypted": False}
    assert check_resource(ENCRYPTED, ebs.VOLUME, props).messages == [
        "encrypted is not true; the volume and its snapshots would be stored unencrypted (unless the account's EBS "
        "default encryption happens to be on)."]
    assert check_resource(CMK, ebs.VOLUME, props).violations == []  # one problem, one message


@pytest.mark.parametrize(("key", "message"), [
    (None, "kmsKeyId is not set; the volume would use the AWS-managed aws/ebs key, not the stack's customer-managed "
           "key."),
    ("alias/aws/ebs", "kmsKeyId is the AWS-managed alias/aws/ebs; use the stack's customer-managed key."),
])
def test_volume_without_customer_managed_key_fails(key: str | None, message: str) -> None:
    props = {k: v for k, v in {**VOLUME, "kmsKeyId": key}.items() if v is not None}
    assert check_resource(CMK, ebs.VOLUME, props).messages == [message]


def test_key_unknown_during_first_preview_passes() -> None:
    result = check_resource(CMK, ebs.VOLUME, {**VOLUME, "kmsKeyId": UNKNOWN})
    assert result.violations == []
    assert result.advisories == []


# --- AWS Backup ------------------------------------------------------------------------------------------

def _plan(schedule: str = "cron(0 3 * * ? *)", delete_after: int | None = 30) -> dict[str, Any]:
    rule: dict[str, Any] = {"ruleName": "daily", "targetVaultName": "v", "schedule": schedule}
    if delete_after is not None:
        rule["lifecycle"] = {"deleteAfter": delete_after}
    return {"name": "sark-backups", "rules": [rule]}


def test_daily_plan_kept_30_days_passes() -> None:
    assert check_resource(PLAN, ebs.BACKUP_PLAN, _plan()).violations == []
    assert check_resource(PLAN, ebs.BACKUP_PLAN, _plan(schedule="rate(12 hours)")).violations == []
    assert check_resource(PLAN, ebs.BACKUP_PLAN, _plan(delete_after=None)).violations == []  # kept forever


@pytest.mark.parametrize(("props", "message"), [
    (_plan(delete_after=7), "Backup rule 'daily' deletes recovery points after 7 days; they must be kept at least 30 "
                            "days."),
    (_plan(schedule="cron(0 3 ? * SUN *)"), "Backup rule 'daily' runs on cron(0 3 ? * SUN *), not at least daily."),
    (_plan(schedule="rate(7 days)"), "Backup rule 'daily' runs on rate(7 days), not at least daily."),
    ({"name": "empty", "rules": []}, "The backup plan has no rules; nothing would be backed up."),
])
def test_weak_backup_plans_fail(props: dict[str, Any], message: str) -> None:
    assert check_resource(PLAN, ebs.BACKUP_PLAN, props).messages == [message]


def test_backup_retention_minimum_from_config() -> None:
    assert check_resource(PLAN, ebs.BACKUP_PLAN, _plan(delete_after=30), config={"minDays": 35}).messages == [
        "Backup rule 'daily' deletes recovery points after 30 days; they must be kept at least 35 days."]


def test_backup_vault_needs_the_stack_key() -> None:
    assert check_resource(VAULT, ebs.BACKUP_VAULT, {"name": "v", "kmsKeyArn": KEY}).violations == []
    assert check_resource(VAULT, ebs.BACKUP_VAULT, {"name": "v"}).messages == [
        "kmsKeyArn is not set; recovery points would be encrypted with the AWS-managed backup key, not the stack's "
        "customer-managed key."]


# --- Data Lifecycle Manager ------------------------------------------------------------------------------

def _dlm(retain: dict[str, Any] | None, create: dict[str, Any] | None = None) -> dict[str, Any]:
    schedule: dict[str, Any] = {"name": "daily", "createRule": create or {"interval": 24, "intervalUnit": "HOURS"}}
    if retain is not None:
        schedule["retainRule"] = retain
    return {"state": "ENABLED", "policyDetails": {"resourceTypes": ["VOLUME"], "targetTags": {"sark:role": "x"},
                                                  "schedules": [schedule]}}


@pytest.mark.parametrize("retain", [{"count": 30}, {"interval": 30, "intervalUnit": "DAYS"},
                                    {"interval": 5, "intervalUnit": "WEEKS"}])
def test_dlm_keeping_30_days_passes(retain: dict[str, Any]) -> None:
    assert check_resource(DLM, ebs.DLM_POLICY, _dlm(retain)).violations == []


@pytest.mark.parametrize(("props", "message"), [
    (_dlm({"count": 7}), "DLM schedule 'daily' keeps snapshots 7 days; they must be kept at least 30 days."),
    (_dlm({"count": 30}, {"interval": 12, "intervalUnit": "HOURS"}),
     "DLM schedule 'daily' keeps snapshots 15 days; they must be kept at least 30 days."),
    (_dlm(None), "DLM schedule 'daily' has no retainRule; snapshots would pile up or vanish unpredictably."),
])
def test_short_dlm_retention_fails(props: dict[str, Any], message: str) -> None:
    assert check_resource(DLM, ebs.DLM_POLICY, props).messages == [message]


# --- every volume is backed up (stack rule) -----------------------------------------------------------

def _volume() -> Res:
    return Res(ebs.VOLUME, "ts-data", {"arn": "arn:aws:ec2:us-east-1:123456789012:volume/vol-0abc", **VOLUME,
                                       "tags": {"sark:role": "timescale-data"}})


def test_volume_in_a_backup_selection_passes() -> None:
    volume = _volume()
    selection = Res(ebs.BACKUP_SELECTION, "sel", {"resources": [volume.props["arn"]]},
                    property_dependencies={"resources": [volume.urn]})
    assert check_stack(COVERED, [volume, selection]).violations == []


def test_volume_matched_by_arn_or_selection_tag_passes() -> None:
    volume = _volume()
    by_arn = Res(ebs.BACKUP_SELECTION, "sel", {"resources": [volume.props["arn"]]})
    assert check_stack(COVERED, [volume, by_arn]).violations == []
    by_tag = Res(ebs.BACKUP_SELECTION, "sel", {"selectionTags": [
        {"type": "STRINGEQUALS", "key": "sark:role", "value": "timescale-data"}]})
    assert check_stack(COVERED, [volume, by_tag]).violations == []


def test_volume_targeted_by_an_enabled_dlm_policy_passes_and_disabled_does_not() -> None:
    volume = _volume()
    policy = _dlm({"count": 30})
    policy["policyDetails"]["targetTags"] = {"sark:role": "timescale-data"}
    assert check_stack(COVERED, [volume, Res(ebs.DLM_POLICY, "dlm", policy)]).violations == []
    disabled = {**policy, "state": "DISABLED"}
    assert len(check_stack(COVERED, [volume, Res(ebs.DLM_POLICY, "dlm", disabled)]).violations) == 1


def test_volume_without_backup_fails() -> None:
    volume = _volume()
    other = Res(ebs.BACKUP_SELECTION, "sel", {"resources": ["arn:aws:ec2:us-east-1:123456789012:volume/vol-0other"]})
    assert check_stack(COVERED, [volume, other]).violations == [
        (urn(ebs.VOLUME, "ts-data"), "EBS volume 'ts-data' is in no AWS Backup selection and no enabled DLM policy; "
                                     "it has no scheduled snapshots.")]


@pytest.mark.parametrize(("schedule", "daily"), [
    ("cron(0 3 * * ? *)", True), ("cron(0 */6 ? * * *)", True), ("rate(1 day)", True), ("rate(30 minutes)", True),
    ("cron(0 3 1 * ? *)", False), ("cron(0 3 ? * MON-FRI *)", False), ("rate(2 days)", False), ("daily", False),
])
def test_runs_daily(schedule: str, daily: bool) -> None:
    assert ebs.runs_daily(schedule) is daily


# --- EBS encryption by default ----------------------------------------------------------------------------

DEFAULT_ENCRYPTION = by_name(ebs.POLICIES, "aws-ebs-encryption-by-default-require-enabled")


@pytest.mark.parametrize("props", [{"enabled": True}, {}])
def test_default_encryption_on_passes(props: dict[str, Any]) -> None:
    assert check_resource(DEFAULT_ENCRYPTION, ebs.ENCRYPTION_BY_DEFAULT, props).violations == []


@pytest.mark.parametrize("value", [False, "false"])
def test_default_encryption_off_fails(value: Any) -> None:
    assert check_resource(DEFAULT_ENCRYPTION, ebs.ENCRYPTION_BY_DEFAULT, {"enabled": value}).messages == [
        "enabled is false; every new volume and snapshot copy in this account and region without an explicit "
        "encrypted flag would be stored unencrypted."]
    assert "securityhub:EC2.7" in DEFAULT_ENCRYPTION.tags
