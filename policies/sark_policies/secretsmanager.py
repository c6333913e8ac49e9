"""Secrets Manager rules (anchors section F; checklist 2.1).

Every secret is encrypted with the stack's customer-managed key, can be restored for at least
7 days after a delete, and changes on the checklist's schedule: ``SECRET_KEY`` every 180 days,
passwords every 90, API tokens every 30-90. A secret's schedule class comes from its
``sark:rotation-class`` tag (``signing-key``, ``password``, ``api-token``). Generated secrets
need an ``aws.secretsmanager.SecretRotation`` within their period; tokens issued outside the
stack cannot be rotated by it, so they carry ``sark:rotation=manual`` with their period in
``sark:rotation-days``, and the stack must have the age audit alarm that reminds operators.

A secret's *value* may only come from a generated value: a ``SecretVersion`` whose string is a
literal (or read from stack config) is exactly the plain-text secret the checklist forbids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    Severity,
    StackValidationArgs,
)

from ._base import Anchors, policies_of, raise_to_min_days, resource_rule, settings, stack_rule
from ._graph import linked_from, undecided
from ._props import as_int, as_map, known

SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 (a type token)
SECRET_ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"  # noqa: S105 (a type token)
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"  # noqa: S105 (a type token)
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"  # noqa: S105 (a type token)

AWS_MANAGED_KEY = "alias/aws/secretsmanager"
CLASS_TAG = "sark:rotation-class"
MODE_TAG = "sark:rotation"
DAYS_TAG = "sark:rotation-days"
ENV_VAR_TAG = "sark:env-var"
DEFAULT_MAX_DAYS = {"signing-key": 180, "password": 90, "api-token": 90}
_RATE = re.compile(r"^rate\((\d+) days?\)$")



def lengthen_recovery_window(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    """Remediation: raise a too-short recovery window (or 0, force delete) to ``minDays``."""
    return raise_to_min_days(args, "recoveryWindowInDays")


@resource_rule(
    "aws-secretsmanager-secret-configure-customer-managed-key", [SECRET], Severity.MEDIUM,
    "Secrets are encrypted with the stack's customer-managed KMS key.",
    fix="Set kms_key_id=<stack key ARN>; only principals the key allows can then read the value.",
    anchors=Anchors(compliance=["aws-secretsmanager-secret-configure-customer-managed-key"],
                    checkov=["CKV_AWS_149"], trivy=["AVD-AWS-0098"], checklist=["Pre-Deployment 2.1"]),
)
def customer_managed_key(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Encrypted with the stack key, not the account-wide AWS-managed key."""
    key = known(args.props, "kmsKeyId")
    if not key:
        report_violation("kmsKeyId is not set; the secret would use the AWS-managed key aws/secretsmanager, which "
                         "every principal allowed to read secrets in the account can use.", None)
    elif key == AWS_MANAGED_KEY:
        report_violation("kmsKeyId is the AWS-managed alias/aws/secretsmanager; use the stack's customer-managed "
                         "key.", None)


@resource_rule(
    "aws-secretsmanager-secret-configure-recovery-window", [SECRET], Severity.MEDIUM,
    "Deleted secrets stay restorable for at least 7 days.",
    fix="Set recovery_window_in_days between 7 and 30 (config secretRecoveryWindowDays); never 0.",
    anchors=Anchors(checklist=["Pre-Deployment 2.1"]),
    config={"minDays": {"type": "integer", "minimum": 7, "maximum": 30, "default": 7,
                        "description": "Shortest recovery window allowed."}},
    remediate=lengthen_recovery_window,
)
def recovery_window(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A deleted secret stays restorable for at least ``minDays``."""
    minimum = settings(args).int("minDays")
    days = as_int(args.props.get("recoveryWindowInDays"))
    if days is None:
        return  # Secrets Manager's default is 30 days.
    if days == 0:
        report_violation("recoveryWindowInDays is 0; deleting the secret would erase it at once, with no way back.",
                         None)
    elif days < minimum:
        report_violation(f"recoveryWindowInDays is {days}; it must be at least {minimum} days.", None)



@resource_rule(
    "aws-secretsmanager-secret-require-description", [SECRET], Severity.LOW,
    "Secrets have a description of what they hold.",
    fix="Set description to what the secret holds and whether the stack or an operator sets it.",
    anchors=Anchors(compliance=["aws-secretsmanager-secret-missing-description"],
                    checklist=["Pre-Deployment 2.1 (store secrets)"]),
    level=EnforcementLevel.ADVISORY,
)
def has_description(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The secret says what it holds and who puts it in, so operators rotate and revoke the right one."""
    if not args.props.get("description"):
        report_violation("description is not set; say what the secret holds and how its value gets there.", None)


def _label(secret: PolicyResource) -> str:
    env_var = as_map(secret.props.get("tags")).get(ENV_VAR_TAG)
    return f"Secret '{secret.name}'" + (f" ({env_var})" if env_var else "")


def _rotation_days(rotation: PolicyResource) -> int | None:
    rules = as_map(rotation.props.get("rotationRules"))
    days = as_int(rules.get("automaticallyAfterDays"))
    if days is not None:
        return days
    match = _RATE.match(str(rules.get("scheduleExpression") or ""))
    return int(match.group(1)) if match else None


def _rotation_of(secret: PolicyResource, rotations: list[PolicyResource]) -> PolicyResource | None:
    """The rotation whose secretId came from (or names) the secret; the ARN is unknown in a first preview."""
    return linked_from(rotations, "secretId", secret, ("arn", "id"))


@stack_rule(
    "aws-secretsmanager-secret-enable-rotation", Severity.MEDIUM,
    "Every secret rotates on the checklist's schedule: automatically, or by hand with a reminder.",
    fix="Add an aws.secretsmanager.SecretRotation with rotation_rules.automatically_after_days "
        "within the class's period (SECRET_KEY 180, passwords 90); for tokens issued elsewhere "
        "tag the secret sark:rotation=manual and sark:rotation-days=<= 90 and keep the "
        "SARK/Secrets age audit alarm (SecretRotations).",
    anchors=Anchors(checkov=["CKV2_AWS_57", "CKV_AWS_304"], securityhub=["SecretsManager.1", "SecretsManager.4"],
                    checklist=["Pre-Deployment 2.1 (rotation schedule)"]),
    config={
        "maxDays": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1},
                    "default": DEFAULT_MAX_DAYS,
                    "description": "Longest rotation period per sark:rotation-class."},
        "defaultMaxDays": {"type": "integer", "minimum": 1, "default": 90,
                           "description": "Longest rotation period of secrets without a known class."},
        "reminderNamespace": {"type": "string", "default": "SARK/Secrets",
                              "description": "CloudWatch namespace of the age audit alarm."},
    },
    needs="the rotation whose secretId came from the secret (property dependency), and the reminder alarm",
)
def rotation_configured(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every secret rotates within its class's period, automatically or (external tokens) with a reminder."""
    config = settings(args)
    limits = {**DEFAULT_MAX_DAYS, **{k: int(v) for k, v in config.map("maxDays").items()}}
    default_limit, namespace = config.int("defaultMaxDays"), config.text("reminderNamespace")
    rotations = [r for r in args.resources if r.resource_type == SECRET_ROTATION]
    has_reminder = any(r.resource_type == METRIC_ALARM and r.props.get("namespace") == namespace
                       for r in args.resources)
    if any(undecided(r, "secretId") for r in rotations):
        return
    for secret in (r for r in args.resources if r.resource_type == SECRET):
        tags = as_map(secret.props.get("tags"))
        klass = str(tags.get(CLASS_TAG) or "")
        limit = limits.get(klass, default_limit)
        what = f"{klass} secrets" if klass in limits else "secrets"
        rotation = _rotation_of(secret, rotations)
        if rotation is not None:
            days = _rotation_days(rotation)
            if days is None:
                report_violation(f"{_label(secret)} has a rotation without a schedule (automaticallyAfterDays or "
                                 "rate(N days)).", secret.urn)
            elif days > limit:
                report_violation(f"{_label(secret)} rotates every {days} days; {what} must rotate at least every "
                                 f"{limit} days.", secret.urn)
            continue
        if tags.get(MODE_TAG) != "manual":
            report_violation(f"{_label(secret)} has no rotation (aws.secretsmanager.SecretRotation) and is not "
                             f"marked for manual rotation (tag {MODE_TAG}=manual).", secret.urn)
            continue
        days = as_int(tags.get(DAYS_TAG))
        if days is None:
            report_violation(f"{_label(secret)} is rotated by hand but has no valid {DAYS_TAG} tag.", secret.urn)
        elif days > limit:
            report_violation(f"{_label(secret)} is rotated by hand every {days} days; {what} must change at least "
                             f"every {limit} days.", secret.urn)
        if not has_reminder:
            report_violation(f"{_label(secret)} is rotated by hand, but no alarm in namespace {namespace} reminds "
                             "operators when it is due.", secret.urn)


@stack_rule(
    "aws-secretsmanager-secret-version-require-generated-value", Severity.HIGH,
    "Secret values come from generated values, never from literals or stack config.",
    fix="Generate the value with random.RandomPassword; for credentials issued elsewhere create "
        "the secret without a version and put the value in with aws secretsmanager "
        "put-secret-value (docs/data-tier.md).",
    anchors=Anchors(checklist=["Pre-Deployment 2.1 (store secrets in a secrets manager)"]),
    needs="where the value came from (the property dependency of secretString on a random.RandomPassword)",
)
def generated_values(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Secret versions hold generated values only; outside credentials are put in by operators."""
    for version in (r for r in args.resources if r.resource_type == SECRET_VERSION):
        for key in ("secretString", "secretBinary"):
            if known(version.props, key) is None:  # a generated value is unknown in a first preview
                continue
            sources = [d.resource_type for d in version.property_dependencies.get(key, [])]
            if RANDOM_PASSWORD not in sources:
                report_violation(f"Secret version '{version.name}' stores a literal or stack-config value in {key}; "
                                 "generate it (random.RandomPassword) or create the secret empty and let an operator "
                                 "put the value in (aws secretsmanager put-secret-value).", version.urn)


POLICIES = policies_of(__name__)
