"""KMS rules (anchors section H): the stack key rotates, cannot lock the account out, a
scheduled deletion can be cancelled for a month, and the key says what it protects.

Rotation and the deletion window can be fixed in place without touching data (rotation keeps
old key material for decryption; the window only matters once a deletion is scheduled), so
both rules offer a remediation, applied when their enforcement level is ``remediate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, Severity

from ._base import Anchors, policies_of, raise_to_min_days, resource_rule, settings
from ._props import as_bool, as_int

KEY = "aws:kms/key:Key"
SYMMETRIC = "SYMMETRIC_DEFAULT"


def enable_rotation(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    """Remediation: rotation on, at most every ``maxRotationDays``, for symmetric keys."""
    props = args.props
    if (props.get("customerMasterKeySpec") or props.get("keySpec") or SYMMETRIC) != SYMMETRIC:
        return None
    maximum = settings(args).int("maxRotationDays")
    period = as_int(props.get("rotationPeriodInDays"))
    if as_bool(props.get("enableKeyRotation")) is True and (period is None or period <= maximum):
        return None
    props["enableKeyRotation"] = True
    if period is not None and period > maximum:
        props["rotationPeriodInDays"] = maximum
    return props

def lengthen_deletion_window(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    """Remediation: raise a too-short deletion window to ``minDays``."""
    return raise_to_min_days(args, "deletionWindowInDays")


@resource_rule(
    "aws-kms-key-enable-key-rotation", [KEY], Severity.MEDIUM,
    "Customer-managed KMS keys rotate their key material at least yearly.",
    fix="Set enable_key_rotation=True (rotation_period_in_days at most 365).",
    anchors=Anchors(awsguard=["cmk-backing-key-rotation-enabled"], compliance=["aws-kms-key-enable-key-rotation"],
                    checkov=["CKV_AWS_7"], trivy=["AVD-AWS-0065"], securityhub=["KMS.4"]),
    config={"maxRotationDays": {"type": "integer", "minimum": 90, "maximum": 2560, "default": 365,
                                "description": "Longest rotation period allowed."}},
    remediate=enable_rotation,
)
def key_rotation(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Symmetric keys rotate at least every ``maxRotationDays``."""
    spec = args.props.get("customerMasterKeySpec") or args.props.get("keySpec") or SYMMETRIC
    if spec != SYMMETRIC:
        return  # KMS rotates only symmetric encryption keys.
    if as_bool(args.props.get("enableKeyRotation")) is not True:
        report_violation("enableKeyRotation is not true; the key material would never change.", None)
        return
    maximum = settings(args).int("maxRotationDays")
    period = as_int(args.props.get("rotationPeriodInDays"))
    if period is not None and period > maximum:
        report_violation(f"rotationPeriodInDays is {period}; it must be at most {maximum}.", None)



@resource_rule(
    "aws-kms-key-disallow-bypass-policy-lockout-safety-check", [KEY], Severity.CRITICAL,
    "KMS keys keep the policy lockout safety check.",
    fix="Remove bypass_policy_lockout_safety_check (or set it to False).",
    anchors=Anchors(compliance=["aws-kms-key-disallow-bypass-policy-lockout-safety-check"],
                    checkov=["CKV2_AWS_64"]),
)
def no_lockout_bypass(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The policy lockout safety check stays on."""
    if as_bool(args.props.get("bypassPolicyLockoutSafetyCheck")):
        report_violation("bypassPolicyLockoutSafetyCheck is true; a key policy that locks everyone out could be "
                         "applied, making the key (and all data it encrypts) unusable.", None)


@resource_rule(
    "aws-kms-key-configure-deletion-window", [KEY], Severity.HIGH,
    "A scheduled KMS key deletion can be cancelled for at least 30 days.",
    fix="Set deletion_window_in_days to 30 (the longest KMS allows), and protect the key in "
        "Pulumi (protect=True).",
    anchors=Anchors(securityhub=["KMS.3"]),
    config={"minDays": {"type": "integer", "minimum": 7, "maximum": 30, "default": 30,
                        "description": "Shortest deletion window allowed."}},
    remediate=lengthen_deletion_window,
)
def deletion_window(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A scheduled deletion can be cancelled for at least ``minDays``."""
    minimum = settings(args).int("minDays")
    days = as_int(args.props.get("deletionWindowInDays"))
    if days is not None and days < minimum:
        report_violation(f"deletionWindowInDays is {days}; it must be at least {minimum} days, so a mistaken "
                         "deletion can be cancelled before every secret, volume and snapshot it encrypts is lost.",
                         None)



@resource_rule(
    "aws-kms-key-require-description", [KEY], Severity.LOW,
    "KMS keys have a description of what they encrypt.",
    fix="Set description to what the key protects (e.g. 'SARK stack data key').",
    anchors=Anchors(compliance=["aws-kms-key-missing-description"]),
    level=EnforcementLevel.ADVISORY,
)
def has_description(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The key says what it protects, so nobody disables or deletes it as unused."""
    if not args.props.get("description"):
        report_violation("description is not set; say what the key encrypts (an unexplained key is the one someone "
                         "schedules for deletion).", None)


POLICIES = policies_of(__name__)
