"""KMS rules: the stack key's settings, one change, the exact message."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, Severity

from sark_policies import kms
from tests.policies.helpers import by_name, check_resource

ROTATION = by_name(kms.POLICIES, "aws-kms-key-enable-key-rotation")
LOCKOUT = by_name(kms.POLICIES, "aws-kms-key-disallow-bypass-policy-lockout-safety-check")
WINDOW = by_name(kms.POLICIES, "aws-kms-key-configure-deletion-window")
COMPLIANT: dict[str, Any] = {"description": "SARK stack data key", "enableKeyRotation": True,
                             "deletionWindowInDays": 30, "policy": "{}"}


def test_metadata() -> None:
    advisory = [p.name for p in kms.POLICIES if p.enforcement_level != EnforcementLevel.MANDATORY]
    assert advisory == ["aws-kms-key-require-description"]
    assert LOCKOUT.severity == Severity.CRITICAL
    assert "securityhub:KMS.4" in ROTATION.tags


@pytest.mark.parametrize("policy", kms.POLICIES, ids=lambda p: p.name)
def test_stack_key_settings_pass(policy: Any) -> None:
    assert check_resource(policy, kms.KEY, COMPLIANT).violations == []


@pytest.mark.parametrize(("policy", "changes", "message"), [
    (ROTATION, {"enableKeyRotation": False}, "enableKeyRotation is not true; the key material would never change."),
    (ROTATION, {"rotationPeriodInDays": 730}, "rotationPeriodInDays is 730; it must be at most 365."),
    (LOCKOUT, {"bypassPolicyLockoutSafetyCheck": True},
     "bypassPolicyLockoutSafetyCheck is true; a key policy that locks everyone out could be applied, making the key "
     "(and all data it encrypts) unusable."),
    (WINDOW, {"deletionWindowInDays": 7},
     "deletionWindowInDays is 7; it must be at least 30 days, so a mistaken deletion can be cancelled before every "
     "secret, volume and snapshot it encrypts is lost."),
])
def test_one_change_one_exact_message(policy: Any, changes: dict[str, Any], message: str) -> None:
    assert check_resource(policy, kms.KEY, {**COMPLIANT, **changes}).messages == [message]


def test_asymmetric_keys_need_no_rotation() -> None:
    props = {**COMPLIANT, "enableKeyRotation": False, "customerMasterKeySpec": "RSA_2048"}
    assert check_resource(ROTATION, kms.KEY, props).violations == []


def test_deletion_window_minimum_from_config_and_default_window() -> None:
    assert check_resource(WINDOW, kms.KEY, {**COMPLIANT, "deletionWindowInDays": 7},
                          config={"minDays": 7}).violations == []
    unset = {k: v for k, v in COMPLIANT.items() if k != "deletionWindowInDays"}
    assert check_resource(WINDOW, kms.KEY, unset).violations == []  # KMS's default is 30 days


DESCRIPTION = by_name(kms.POLICIES, "aws-kms-key-require-description")


def test_key_without_description_is_advisory() -> None:
    props = {k: v for k, v in COMPLIANT.items() if k != "description"}
    assert check_resource(DESCRIPTION, kms.KEY, props).messages == [
        "description is not set; say what the key encrypts (an unexplained key is the one someone schedules for "
        "deletion)."]
    assert DESCRIPTION.enforcement_level == EnforcementLevel.ADVISORY
