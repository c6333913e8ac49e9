"""Secrets Manager rules: compliant secrets, one change, the exact message."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from sark_policies import secretsmanager as sm
from tests.policies.helpers import UNKNOWN, Res, by_name, check_resource, check_stack, urn

KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-4222-a333-444455556666"
CMK = by_name(sm.POLICIES, "aws-secretsmanager-secret-configure-customer-managed-key")
WINDOW = by_name(sm.POLICIES, "aws-secretsmanager-secret-configure-recovery-window")
ROTATION = by_name(sm.POLICIES, "aws-secretsmanager-secret-enable-rotation")
VALUES = by_name(sm.POLICIES, "aws-secretsmanager-secret-version-require-generated-value")


def test_metadata() -> None:
    advisory = [p.name for p in sm.POLICIES if p.enforcement_level != EnforcementLevel.MANDATORY]
    assert advisory == ["aws-secretsmanager-secret-require-description"]
    assert "securityhub:SecretsManager.4" in ROTATION.tags
    assert all(p.remediation_steps for p in sm.POLICIES)


# --- key and recovery window ---------------------------------------------------------------------------

def test_secret_with_the_stack_key_and_a_window_passes() -> None:
    props = {"name": "sark/SECRET_KEY", "kmsKeyId": KEY, "recoveryWindowInDays": 30}
    assert check_resource(CMK, sm.SECRET, props).violations == []
    assert check_resource(WINDOW, sm.SECRET, props).violations == []


@pytest.mark.parametrize(("props", "message"), [
    ({"name": "s"}, "kmsKeyId is not set; the secret would use the AWS-managed key aws/secretsmanager, which every "
                    "principal allowed to read secrets in the account can use."),
    ({"name": "s", "kmsKeyId": "alias/aws/secretsmanager"},
     "kmsKeyId is the AWS-managed alias/aws/secretsmanager; use the stack's customer-managed key."),
])
def test_secret_without_customer_managed_key_fails(props: dict[str, Any], message: str) -> None:
    assert check_resource(CMK, sm.SECRET, props).messages == [message]


def test_key_unknown_during_first_preview_passes() -> None:
    result = check_resource(CMK, sm.SECRET, {"name": "s", "kmsKeyId": UNKNOWN})
    assert result.violations == []
    assert result.advisories == []


@pytest.mark.parametrize(("days", "message"), [
    (0, "recoveryWindowInDays is 0; deleting the secret would erase it at once, with no way back."),
    (5, "recoveryWindowInDays is 5; it must be at least 7 days."),
])
def test_short_recovery_window_fails(days: int, message: str) -> None:
    assert check_resource(WINDOW, sm.SECRET, {"kmsKeyId": KEY, "recoveryWindowInDays": days}).messages == [message]


def test_unset_window_is_the_30_day_default_and_minimum_comes_from_config() -> None:
    assert check_resource(WINDOW, sm.SECRET, {"kmsKeyId": KEY}).violations == []
    result = check_resource(WINDOW, sm.SECRET, {"kmsKeyId": KEY, "recoveryWindowInDays": 14}, config={"minDays": 30})
    assert result.messages == ["recoveryWindowInDays is 14; it must be at least 30 days."]


# --- rotation (stack rule) ------------------------------------------------------------------------------

def _secret(name: str, env_var: str, klass: str, mode: str = "automatic", days: str = "90") -> Res:
    arn = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:sark/{env_var}-AbCdEf"
    return Res(sm.SECRET, name, {"arn": arn, "id": arn, "name": f"sark/{env_var}",
                                 "tags": {"sark:env-var": env_var, "sark:rotation-class": klass,
                                          "sark:rotation": mode, "sark:rotation-days": days}})


def _rotation(secret: Res, days: int | None = 90, schedule: str | None = None, linked: bool = True) -> Res:
    rules: dict[str, Any] = {}
    if days is not None:
        rules["automaticallyAfterDays"] = days
    if schedule is not None:
        rules["scheduleExpression"] = schedule
    return Res(sm.SECRET_ROTATION, f"{secret.name}-rotation",
               {"secretId": secret.props["arn"] if linked else "arn:other", "rotationRules": rules},
               property_dependencies={"secretId": [secret.urn]} if linked else {})


def _compliant() -> list[Res]:
    key = _secret("secret-key", "SECRET_KEY", "signing-key", days="180")
    password = _secret("postgres", "POSTGRES_PASSWORD", "password")
    token = _secret("splunk", "SPLUNK_HEC_TOKEN", "api-token", mode="manual")
    alarm = Res(sm.METRIC_ALARM, "attention", {"namespace": "SARK/Secrets", "metricName": "SecretsNeedingAttention"})
    return [key, _rotation(key, 180), password, _rotation(password, 90), token, alarm]


def test_schedule_of_the_checklist_passes() -> None:
    assert check_stack(ROTATION, _compliant()).violations == []


def test_rotation_found_by_secret_arn_without_dependency() -> None:
    resources = _compliant()
    resources[1].property_dependencies = {}
    assert check_stack(ROTATION, resources).violations == []


def test_rate_schedule_expression_counts() -> None:
    resources = _compliant()
    resources[3] = _rotation(resources[2], days=None, schedule="rate(60 days)")
    assert check_stack(ROTATION, resources).violations == []


def test_password_rotating_every_120_days_fails() -> None:
    resources = _compliant()
    resources[3] = _rotation(resources[2], 120)
    assert check_stack(ROTATION, resources).violations == [
        (urn(sm.SECRET, "postgres"), "Secret 'postgres' (POSTGRES_PASSWORD) rotates every 120 days; password secrets "
                                     "must rotate at least every 90 days.")]


def test_signing_key_may_rotate_every_180_days_but_not_365() -> None:
    resources = _compliant()
    resources[1] = _rotation(resources[0], 365)
    assert check_stack(ROTATION, resources).messages == [
        "Secret 'secret-key' (SECRET_KEY) rotates every 365 days; signing-key secrets must rotate at least every "
        "180 days."]


def test_secret_without_rotation_or_manual_marker_fails() -> None:
    resources = _compliant()
    del resources[3]
    assert check_stack(ROTATION, resources).messages == [
        "Secret 'postgres' (POSTGRES_PASSWORD) has no rotation (aws.secretsmanager.SecretRotation) and is not marked "
        "for manual rotation (tag sark:rotation=manual)."]


def test_rotation_without_schedule_fails() -> None:
    resources = _compliant()
    resources[3] = _rotation(resources[2], days=None)
    assert check_stack(ROTATION, resources).messages == [
        "Secret 'postgres' (POSTGRES_PASSWORD) has a rotation without a schedule (automaticallyAfterDays or "
        "rate(N days))."]


def test_manual_token_with_a_too_long_period_fails() -> None:
    resources = _compliant()
    resources[4] = _secret("splunk", "SPLUNK_HEC_TOKEN", "api-token", mode="manual", days="120")
    assert check_stack(ROTATION, resources).messages == [
        "Secret 'splunk' (SPLUNK_HEC_TOKEN) is rotated by hand every 120 days; api-token secrets must change at "
        "least every 90 days."]


def test_manual_token_without_reminder_alarm_fails() -> None:
    resources = _compliant()[:-1]
    assert check_stack(ROTATION, resources).messages == [
        "Secret 'splunk' (SPLUNK_HEC_TOKEN) is rotated by hand, but no alarm in namespace SARK/Secrets reminds "
        "operators when it is due."]


def test_manual_token_without_period_tag_fails() -> None:
    resources = _compliant()
    resources[4] = _secret("splunk", "SPLUNK_HEC_TOKEN", "api-token", mode="manual", days="soon")
    assert check_stack(ROTATION, resources).messages == [
        "Secret 'splunk' (SPLUNK_HEC_TOKEN) is rotated by hand but has no valid sark:rotation-days tag."]


def test_periods_come_from_config() -> None:
    result = check_stack(ROTATION, _compliant(), config={"maxDays": {"api-token": 30}})
    assert result.messages == ["Secret 'splunk' (SPLUNK_HEC_TOKEN) is rotated by hand every 90 days; api-token "
                               "secrets must change at least every 30 days."]


# --- generated values only (stack rule) ---------------------------------------------------------------

def test_version_from_a_generated_value_passes() -> None:
    generator = Res(sm.RANDOM_PASSWORD, "pw", {"result": "x"})
    version = Res(sm.SECRET_VERSION, "v", {"secretString": "x"},
                  property_dependencies={"secretString": [generator.urn]})
    assert check_stack(VALUES, [generator, version]).violations == []


def test_version_with_a_literal_value_fails() -> None:
    version = Res(sm.SECRET_VERSION, "splunk-version", {"secretString": "00000000-hec-token"})
    assert check_stack(VALUES, [version]).violations == [
        (urn(sm.SECRET_VERSION, "splunk-version"),
         "Secret version 'splunk-version' stores a literal or stack-config value in secretString; generate it "
         "(random.RandomPassword) or create the secret empty and let an operator put the value in (aws "
         "secretsmanager put-secret-value).")]


DESCRIPTION = by_name(sm.POLICIES, "aws-secretsmanager-secret-require-description")


def test_described_secret_passes() -> None:
    props = {"name": "sark/SECRET_KEY", "kmsKeyId": KEY, "description": "SARK JWT signing key (SECRET_KEY)"}
    assert check_resource(DESCRIPTION, sm.SECRET, props).violations == []


def test_secret_without_description_is_advisory() -> None:
    assert check_resource(DESCRIPTION, sm.SECRET, {"name": "sark/SECRET_KEY", "kmsKeyId": KEY}).messages == [
        "description is not set; say what the secret holds and how its value gets there."]
    assert DESCRIPTION.enforcement_level == EnforcementLevel.ADVISORY
