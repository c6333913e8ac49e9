"""EBS volumes and their backups (anchors sections A3 and A8; checklist 1.2 and Post-Deployment 4).

Standalone volumes (the TimescaleDB data volume) are encrypted with the stack's key and are
covered by a backup: an AWS Backup selection or a Data Lifecycle Manager policy. The backups
themselves are checked for the checklist's value, not mere presence: at least daily and kept
at least 30 days. Instance root and block devices are checked by the EC2 rules (ec2.py).

EBS encryption by default (Security Hub EC2.7) is a setting of the whole account and region,
so it belongs to the account's baseline stack, not to each application stack: two stacks
managing it would fight over it, and deleting either would switch it off. The pack therefore
does not require an application stack to declare it; it requires that a stack which does
declare ``aws.ebs.EncryptionByDefault`` turns it on. Every volume this stack creates is
encrypted explicitly either way (the volume and EC2 rules).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import PolicyResource, ReportViolation, ResourceValidationArgs, Severity, StackValidationArgs

from ._base import Anchors, policies_of, resource_rule, settings, stack_rule
from ._props import UNKNOWN, as_bool, as_int, as_list, as_map, first, known, known_items

VOLUME = "aws:ebs/volume:Volume"
ENCRYPTION_BY_DEFAULT = "aws:ebs/encryptionByDefault:EncryptionByDefault"
BACKUP_PLAN = "aws:backup/plan:Plan"
BACKUP_SELECTION = "aws:backup/selection:Selection"
BACKUP_VAULT = "aws:backup/vault:Vault"
DLM_POLICY = "aws:dlm/lifecyclePolicy:LifecyclePolicy"

AWS_MANAGED_KEY = "alias/aws/ebs"
_DAYS = {"DAYS": 1, "WEEKS": 7, "MONTHS": 30, "YEARS": 365}
_RATE = re.compile(r"^rate\((\d+) (minutes?|hours?|days?)\)$")



def runs_daily(schedule: str) -> bool:
    """Whether an AWS Backup / EventBridge schedule fires at least once a day."""
    rate = _RATE.match(schedule)
    if rate:
        amount, unit = int(rate.group(1)), rate.group(2)
        return unit.startswith(("minute", "hour")) or amount <= 1
    cron = re.match(r"^cron\((.+)\)$", schedule)
    if not cron:
        return False
    fields = cron.group(1).split()
    if len(fields) != 6:
        return False
    day_of_month, month, day_of_week = fields[2], fields[3], fields[4]
    return day_of_month in ("*", "?") and month in ("*", "?") and day_of_week in ("*", "?")


# --------------------------------------------------------------------------------------
# Resource rules
# --------------------------------------------------------------------------------------

def enable_default_encryption(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    """Remediation: turn encryption by default on (it only affects volumes created afterwards)."""
    if as_bool(args.props.get("enabled")) is not False:
        return None
    args.props["enabled"] = True
    return args.props

_RETENTION = {"minDays": {"type": "integer", "minimum": 1, "default": 30,
                          "description": "Fewest days snapshots / recovery points may be kept."}}


@resource_rule(
    "aws-ebs-volume-disallow-unencrypted-volume", [VOLUME], Severity.HIGH,
    "EBS volumes are encrypted.",
    fix="Set encrypted=True with kms_key_id=<stack key ARN>; an unencrypted volume must be "
        "copied through an encrypted snapshot.",
    anchors=Anchors(compliance=["aws-ebs-volume-disallow-unencrypted-volume"], checkov=["CKV_AWS_3"],
                    trivy=["AVD-AWS-0026"], securityhub=["EC2.3"]),
)
def volume_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Volumes are encrypted."""
    if as_bool(args.props.get("encrypted")) is not True:
        report_violation("encrypted is not true; the volume and its snapshots would be stored unencrypted (unless "
                         "the account's EBS default encryption happens to be on).", None)


@resource_rule(
    "aws-ebs-volume-configure-customer-managed-key", [VOLUME], Severity.MEDIUM,
    "Encrypted EBS volumes use the stack's customer-managed KMS key.",
    fix="Set kms_key_id=<stack key ARN>.",
    anchors=Anchors(compliance=["aws-ebs-volume-configure-customer-managed-key"], checkov=["CKV_AWS_189"],
                    trivy=["AVD-AWS-0027"]),
)
def volume_customer_key(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Encrypted volumes use the stack's customer-managed key."""
    if as_bool(args.props.get("encrypted")) is not True:
        return
    key = known(args.props, "kmsKeyId")
    if not key:
        report_violation("kmsKeyId is not set; the volume would use the AWS-managed aws/ebs key, not the stack's "
                         "customer-managed key.", None)
    elif key == AWS_MANAGED_KEY:
        report_violation("kmsKeyId is the AWS-managed alias/aws/ebs; use the stack's customer-managed key.", None)


@resource_rule(
    "aws-ebs-encryption-by-default-require-enabled", [ENCRYPTION_BY_DEFAULT], Severity.HIGH,
    "EBS encryption by default, where a stack manages it, is enabled.",
    fix="Set enabled=True (the provider's default) on aws.ebs.EncryptionByDefault, ideally in the "
        "account's baseline stack with aws.ebs.DefaultKmsKey.",
    anchors=Anchors(checkov=["CKV_AWS_106"], securityhub=["EC2.7"]),
    remediate=enable_default_encryption,
)
def default_encryption_enabled(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Account-wide EBS encryption by default, where a stack manages it, is on."""
    if as_bool(args.props.get("enabled")) is False:
        report_violation("enabled is false; every new volume and snapshot copy in this account and region without an "
                         "explicit encrypted flag would be stored unencrypted.", None)



@resource_rule(
    "aws-backup-plan-configure-retention", [BACKUP_PLAN], Severity.HIGH,
    "AWS Backup plans run at least daily and keep recovery points at least 30 days.",
    fix="Give every rule a daily schedule (e.g. cron(0 3 * * ? *)) and lifecycle.delete_after of "
        "at least 30 (config timescaleSnapshotRetentionDays).",
    anchors=Anchors(checkov=["CKV2_AWS_9"], securityhub=["EC2.28"],
                    checklist=["Pre-Deployment 1.2 (daily backups, 30 days)", "Post-Deployment 4"]),
    config=_RETENTION,
)
def backup_plan_retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Every rule runs at least daily and keeps recovery points at least ``minDays``."""
    minimum = settings(args).int("minDays")
    rules = as_list(args.props.get("rules"))
    if not rules:
        report_violation("The backup plan has no rules; nothing would be backed up.", None)
    for rule in (as_map(r) for r in rules):
        name = rule.get("ruleName") or "unnamed"
        schedule = str(rule.get("schedule") or "")
        if not runs_daily(schedule):
            report_violation(f"Backup rule '{name}' runs on {schedule or 'no schedule'}, not at least daily.", None)
        lifecycle = first(rule.get("lifecycle"))
        days = as_int(lifecycle.get("deleteAfter"))
        if days is not None and days < minimum:
            report_violation(f"Backup rule '{name}' deletes recovery points after {days} days; they must be kept at "
                             f"least {minimum} days.", None)


@resource_rule(
    "aws-backup-vault-configure-customer-managed-key", [BACKUP_VAULT], Severity.MEDIUM,
    "AWS Backup vaults are encrypted with the stack's customer-managed KMS key.",
    fix="Set kms_key_arn=<stack key ARN> (only at creation).",
    anchors=Anchors(checkov=["CKV_AWS_166"]),
)
def backup_vault_key(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Backup vaults are encrypted with the stack's customer-managed key."""
    if not known(args.props, "kmsKeyArn"):
        report_violation("kmsKeyArn is not set; recovery points would be encrypted with the AWS-managed backup "
                         "key, not the stack's customer-managed key.", None)


def _dlm_retention_days(schedule: Mapping[str, Any]) -> float | None:
    retain = first(schedule.get("retainRule"))
    interval, unit = as_int(retain.get("interval")), retain.get("intervalUnit")
    if interval is not None and unit in _DAYS:
        return float(interval * _DAYS[str(unit)])
    count = as_int(retain.get("count"))
    if count is None:
        return None
    create = first(schedule.get("createRule"))
    every = as_int(create.get("interval"))
    hours = every if every is not None and create.get("intervalUnit", "HOURS") == "HOURS" else 24
    return count * hours / 24


@resource_rule(
    "aws-dlm-lifecycle-policy-configure-retention", [DLM_POLICY], Severity.HIGH,
    "Data Lifecycle Manager policies keep snapshots at least 30 days.",
    fix="Set each schedule's retain_rule to interval=30, interval_unit=DAYS (or a count that "
        "covers 30 days at the schedule's frequency).",
    anchors=Anchors(checklist=["Pre-Deployment 1.2 (daily backups, 30 days)"]),
    config=_RETENTION,
)
def dlm_retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Every schedule keeps snapshots at least ``minDays``."""
    minimum = settings(args).int("minDays")
    details = first(args.props.get("policyDetails"))
    for schedule in (as_map(s) for s in as_list(details.get("schedules"))):
        name = schedule.get("name") or "unnamed"
        days = _dlm_retention_days(schedule)
        if days is None:
            report_violation(f"DLM schedule '{name}' has no retainRule; snapshots would pile up or vanish "
                             "unpredictably.", None)
        elif days < minimum:
            report_violation(f"DLM schedule '{name}' keeps snapshots {days:g} days; they must be kept at least "
                             f"{minimum} days.", None)


# --------------------------------------------------------------------------------------
# Stack rule
# --------------------------------------------------------------------------------------

def _selected(volume: PolicyResource, selection: PolicyResource) -> bool:
    if volume in selection.property_dependencies.get("resources", []):
        return True
    arn = known(volume.props, "arn")
    for resource in known_items(known(selection.props, "resources")):
        # An ARN computed from another resource (unknown in a first preview) is not this volume's:
        # this volume's would be in the property dependencies above.
        if resource is not UNKNOWN and (resource == arn or resource in ("*", "arn:aws:ec2:*:*:volume/*")):
            return True
    tags = as_map(volume.props.get("tags"))
    return any(as_map(t).get("type") == "STRINGEQUALS" and tags.get(as_map(t).get("key")) == as_map(t).get("value")
               for t in as_list(selection.props.get("selectionTags")))


def _targeted(volume: PolicyResource, policy: PolicyResource) -> bool:
    details = first(policy.props.get("policyDetails"))
    if "VOLUME" not in [str(t) for t in as_list(details.get("resourceTypes"))]:
        return False
    tags = as_map(volume.props.get("tags"))
    targets = as_map(details.get("targetTags"))
    return bool(targets) and all(tags.get(k) == v for k, v in targets.items())


@stack_rule(
    "aws-ebs-volume-require-backup", Severity.HIGH,
    "Every standalone EBS volume is covered by AWS Backup or a DLM policy.",
    fix="Add the volume's ARN to an aws.backup.Selection of a daily plan (as TimescaleHost does), "
        "or tag it for an enabled DLM policy.",
    anchors=Anchors(checkov=["CKV2_AWS_9"], securityhub=["EC2.28"],
                    checklist=["Pre-Deployment 1.2 (automated daily backups)", "Post-Deployment 4"]),
    needs="the backup selections whose resources came from the volume (property dependency) or DLM target tags",
    covered_by=["aws-backup-plan-configure-retention", "aws-dlm-lifecycle-policy-configure-retention"],
)
def volumes_backed_up(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every standalone EBS volume is in an AWS Backup selection or a DLM policy."""
    selections = [r for r in args.resources if r.resource_type == BACKUP_SELECTION]
    policies = [r for r in args.resources if r.resource_type == DLM_POLICY
                and first(r.props.get("policyDetails")) and r.props.get("state", "ENABLED") == "ENABLED"]
    for volume in (r for r in args.resources if r.resource_type == VOLUME):
        if any(_selected(volume, s) for s in selections) or any(_targeted(volume, p) for p in policies):
            continue
        report_violation(f"EBS volume '{volume.name}' is in no AWS Backup selection and no enabled DLM policy; "
                         "it has no scheduled snapshots.", volume.urn)



POLICIES = policies_of(__name__)
