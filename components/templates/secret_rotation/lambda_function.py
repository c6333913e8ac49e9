"""Rotation and rotation audit of the SARK stack's Secrets Manager secrets (AWS Lambda, Python 3.12).

Deployed inline by ``components/secrets.py`` (``SecretRotations``); it needs nothing beyond the
Lambda runtime (boto3). Its whole configuration is the JSON in ``SARK_ROTATION_CONFIG``, which
holds no secret: which secret ARN rotates how, and where the consumers are.

**Rotation** (invoked by Secrets Manager with ``Step``/``SecretId``/``ClientRequestToken``) follows
the four-step protocol. The kind of each secret decides what ``setSecret``/``testSecret`` do:

=============  ================================================  ==========================================
kind           setSecret                                         testSecret
=============  ================================================  ==========================================
generated      nothing (the value is only read by the app)       the pending value has the right shape
rds            ``ModifyDBInstance(MasterUserPassword=...)``      waits until RDS has applied the password
elasticache    ``ModifyReplicationGroup(AuthToken=...,           waits until the replication group is
               AuthTokenUpdateStrategy=ROTATE)``: the old        ``available`` again
               token keeps working next to the new one
timescale      SSM Run Command on the TimescaleDB host:          SSM Run Command on the host: log in with
               ``sark-timescale-password apply AWSPENDING``      the pending password (``check``)
               (the host reads the value itself; no secret
               is in the command)
=============  ================================================  ==========================================

``finishSecret`` moves ``AWSCURRENT`` to the new version and then tells the app hosts (instances
tagged ``sark:role=app``) to restart SARK one host at a time, so they read the new values at
service start.

**Audit** (invoked daily by an EventBridge schedule with ``{"action": "audit"}``) describes every
stack secret and publishes ``SecretsNeedingAttention`` to CloudWatch: the number of secrets whose
value is missing (an operator has not yet put the SIEM token in) or older than their
``sark:rotation-days`` tag plus a grace period (an external token due for manual rotation, or an
automatic rotation that keeps failing). An alarm on that metric is the rotation reminder.
"""

from __future__ import annotations

import json
import logging
import os
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

PENDING = "AWSPENDING"
CURRENT = "AWSCURRENT"
KINDS = ("generated", "rds", "elasticache", "timescale")
ROTATION_DAYS_TAG = "sark:rotation-days"
GRACE_DAYS = 2
"""Days an automatic rotation may run late (retries) before the audit counts the secret."""

POLL_SECONDS = 10
SAFETY_MARGIN_SECONDS = 15
"""Time left for Secrets Manager to record the failure when a wait runs out."""

sleep: Callable[[float], None] = time.sleep
"""Replaced in tests."""


class RotationError(Exception):
    """The rotation cannot continue; Secrets Manager records the step as failed and retries later."""


@dataclass(frozen=True)
class Step:
    """What one rotation step works on."""

    sm: Any
    """Secrets Manager client."""
    arn: str
    token: str
    """ClientRequestToken: the id of the version being rotated in."""
    spec: Mapping[str, Any]
    """This secret's entry of the configuration."""
    cfg: Mapping[str, Any]
    deadline: float
    """``time.monotonic()`` by which the step must have returned."""

    @property
    def name(self) -> str:
        """The secret's environment variable name."""
        return str(self.spec["name"])

    def pending(self) -> str:
        """The AWSPENDING value."""
        return self.sm.get_secret_value(SecretId=self.arn, VersionId=self.token,
                                        VersionStage=PENDING)["SecretString"]


def config() -> dict[str, Any]:
    """The function's configuration from ``SARK_ROTATION_CONFIG``."""
    return json.loads(os.environ["SARK_ROTATION_CONFIG"])


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any] | None:
    """Lambda entry point: a rotation step from Secrets Manager, or the scheduled audit."""
    cfg = config()
    if event.get("action") == "audit":
        return audit(cfg, now=datetime.now(UTC))
    rotate(event, context, cfg)
    return None


# --------------------------------------------------------------------------------------
# Rotation
# --------------------------------------------------------------------------------------

def rotate(event: Mapping[str, Any], context: Any, cfg: Mapping[str, Any]) -> None:
    """Run one step of the Secrets Manager rotation protocol."""
    step = event["Step"]
    token = event["ClientRequestToken"]
    sm = boto3.client("secretsmanager")
    meta = sm.describe_secret(SecretId=event["SecretId"])
    arn = meta["ARN"]
    spec = cfg["secrets"].get(arn)
    if spec is None:
        raise RotationError(f"secret {arn} is not configured for rotation by this function")
    if spec.get("kind") not in KINDS:
        raise RotationError(f"secret {arn} has unknown rotation kind {spec.get('kind')!r}")
    if not meta.get("RotationEnabled"):
        raise RotationError(f"secret {arn} does not have rotation enabled")
    versions = meta.get("VersionIdsToStages", {})
    if token not in versions:
        raise RotationError(f"secret version {token} has no stage for rotation of secret {arn}")
    if CURRENT in versions[token]:
        LOG.info("version %s of %s is already AWSCURRENT; nothing to do", token, spec["name"])
        return
    if PENDING not in versions[token]:
        raise RotationError(f"secret version {token} of {arn} is not AWSPENDING")

    deadline = time.monotonic() + _remaining_seconds(context) - SAFETY_MARGIN_SECONDS
    steps: dict[str, Callable[[Step], None]] = {
        "createSecret": create_secret, "setSecret": set_secret, "testSecret": test_secret,
        "finishSecret": finish_secret,
    }
    if step not in steps:
        raise RotationError(f"unknown rotation step {step!r}")
    LOG.info("%s for %s (%s)", step, spec["name"], spec["kind"])
    steps[step](Step(sm=sm, arn=arn, token=token, spec=spec, cfg=cfg, deadline=deadline))


def _remaining_seconds(context: Any) -> float:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return getter() / 1000 if getter is not None else 300.0


def allowed_characters(spec: Mapping[str, Any]) -> set[str]:
    """Characters a value of this secret may contain."""
    return set(string.ascii_letters + string.digits + spec.get("special", ""))


def new_value(sm: Any, spec: Mapping[str, Any]) -> str:
    """A fresh random value with the secret's length and character set."""
    special = spec.get("special", "")
    excluded = "".join(c for c in string.punctuation if c not in special)
    response = sm.get_random_password(
        PasswordLength=int(spec["length"]),
        ExcludeCharacters=excluded,
        ExcludePunctuation=not special,
        IncludeSpace=False,
        RequireEachIncludedType=True,
    )
    value = response["RandomPassword"]
    problem = value_problem(value, spec)
    if problem:
        raise RotationError(f"generated value for {spec['name']} is unusable: {problem}")
    return value


def value_problem(value: str, spec: Mapping[str, Any]) -> str | None:
    """Why ``value`` cannot be used for this secret, or None."""
    if len(value) != int(spec["length"]):
        return f"length {len(value)}, expected {spec['length']}"
    stray = sorted(set(value) - allowed_characters(spec))
    if stray:
        return f"{len(stray)} character(s) outside the allowed set"
    return None


def create_secret(step: Step) -> None:
    """Store a new random value as AWSPENDING (once: a retried step keeps the first value)."""
    step.sm.get_secret_value(SecretId=step.arn, VersionStage=CURRENT)
    try:
        step.sm.get_secret_value(SecretId=step.arn, VersionId=step.token, VersionStage=PENDING)
        LOG.info("pending value of %s already exists", step.name)
        return
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    step.sm.put_secret_value(SecretId=step.arn, ClientRequestToken=step.token,
                             SecretString=new_value(step.sm, step.spec), VersionStages=[PENDING])


def set_secret(step: Step) -> None:
    """Make the service that checks the credential accept the pending value."""
    kind, target = step.spec["kind"], step.spec.get("target")
    if kind == "rds":
        boto3.client("rds").modify_db_instance(
            DBInstanceIdentifier=target, MasterUserPassword=step.pending(), ApplyImmediately=True)
    elif kind == "elasticache":
        # ROTATE keeps the current token valid next to the new one, so app hosts that have not
        # restarted yet keep working; the next rotation drops the older token.
        boto3.client("elasticache").modify_replication_group(
            ReplicationGroupId=target, AuthToken=step.pending(), AuthTokenUpdateStrategy="ROTATE",
            ApplyImmediately=True)
    elif kind == "timescale":
        run_on_host(step.cfg["timescale"]["document"], target, {"action": ["apply"], "stage": [PENDING]},
                    step.deadline)


def test_secret(step: Step) -> None:
    """Check that the pending value works (or, where we cannot log in, that it was applied)."""
    kind, target = step.spec["kind"], step.spec.get("target")
    problem = value_problem(step.pending(), step.spec)
    if problem:
        raise RotationError(f"pending value of {step.name} is unusable: {problem}")
    if kind == "rds":
        _wait(lambda: _rds_applied(target), step.deadline, f"RDS instance {target} to apply the password")
    elif kind == "elasticache":
        _wait(lambda: _cache_available(target), step.deadline,
              f"replication group {target} to apply the AUTH token")
    elif kind == "timescale":
        run_on_host(step.cfg["timescale"]["document"], target, {"action": ["check"], "stage": [PENDING]},
                    step.deadline)


def finish_secret(step: Step) -> None:
    """Make the new version AWSCURRENT, then restart the app hosts so they read it."""
    meta = step.sm.describe_secret(SecretId=step.arn)
    current = next((version for version, stages in meta["VersionIdsToStages"].items() if CURRENT in stages), None)
    if current != step.token:
        step.sm.update_secret_version_stage(SecretId=step.arn, VersionStage=CURRENT, MoveToVersionId=step.token,
                                            RemoveFromVersionId=current)
    LOG.info("version %s of %s is now AWSCURRENT", step.token, step.name)
    if step.spec.get("reload_app", True):
        reload_app(step.cfg["reload"])


def _rds_applied(identifier: str) -> bool:
    instance = boto3.client("rds").describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    return "MasterUserPassword" not in instance.get("PendingModifiedValues", {}) \
        and instance.get("DBInstanceStatus") == "available"


def _cache_available(group_id: str) -> bool:
    group = boto3.client("elasticache").describe_replication_groups(
        ReplicationGroupId=group_id)["ReplicationGroups"][0]
    return group.get("Status") == "available"


def _wait(ready: Callable[[], bool], deadline: float, what: str) -> None:
    while not ready():
        if time.monotonic() + POLL_SECONDS > deadline:
            raise RotationError(f"timed out waiting for {what}")
        sleep(POLL_SECONDS)


def run_on_host(document: str, instance_id: str, parameters: Mapping[str, list[str]], deadline: float) -> None:
    """Run one of the stack's SSM documents on one instance and wait for it to succeed."""
    ssm = boto3.client("ssm")
    command = ssm.send_command(InstanceIds=[instance_id], DocumentName=document, Parameters=dict(parameters),
                               TimeoutSeconds=max(30, int(deadline - time.monotonic())),
                               Comment="SARK secret rotation")["Command"]
    status = "Pending"
    while True:
        try:
            invocation = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=instance_id)
            status = invocation["Status"]
        except ClientError as error:
            # The invocation can take a moment to appear after SendCommand.
            if error.response["Error"]["Code"] != "InvocationDoesNotExist":
                raise
        if status == "Success":
            return
        if status in ("Cancelled", "TimedOut", "Failed", "Cancelling", "Undeliverable", "Terminated"):
            raise RotationError(f"{document} {dict(parameters)} on {instance_id} ended {status}")
        if time.monotonic() + POLL_SECONDS > deadline:
            raise RotationError(f"timed out waiting for {document} on {instance_id} (last status {status})")
        sleep(POLL_SECONDS)


def reload_app(reload: Mapping[str, Any]) -> None:
    """Restart SARK on every app host, one at a time, so each reads the new secret values."""
    boto3.client("ssm").send_command(
        DocumentName=reload["document"],
        Targets=[{"Key": f"tag:{reload['tag_key']}", "Values": [reload["tag_value"]]}],
        MaxConcurrency="1",
        MaxErrors="0",
        Comment="SARK secret rotated: restart to read the new value",
    )


# --------------------------------------------------------------------------------------
# Audit
# --------------------------------------------------------------------------------------

def audit(cfg: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """Count the secrets that need an operator, publish the count, and return the details."""
    sm = boto3.client("secretsmanager")
    findings: list[dict[str, Any]] = []
    for arn in cfg["audit"]:
        finding = audit_secret(sm, arn, now)
        if finding is not None:
            findings.append(finding)
            LOG.warning("%s: %s", finding["name"], finding["problem"])
    boto3.client("cloudwatch").put_metric_data(
        Namespace=cfg["namespace"],
        MetricData=[{"MetricName": "SecretsNeedingAttention", "Dimensions": [{"Name": "Stack", "Value": cfg["stack"]}],
                     "Value": float(len(findings)), "Unit": "Count"}],
    )
    return {"secretsNeedingAttention": findings}


def audit_secret(sm: Any, arn: str, now: datetime) -> dict[str, Any] | None:
    """A finding if the secret has no value, or its value is older than its rotation period (plus grace).

    The age is that of the AWSCURRENT version (created by each rotation or ``put-secret-value``),
    not the secret's ``LastChangedDate``, which any tag or description update resets.
    """
    meta = sm.describe_secret(SecretId=arn)
    name = meta.get("Name", arn)
    tags = {t["Key"]: t["Value"] for t in meta.get("Tags", [])}
    versions = sm.list_secret_version_ids(SecretId=arn).get("Versions", [])
    current = next((v for v in versions if CURRENT in v.get("VersionStages", [])), None)
    if current is None:
        return {"name": name, "arn": arn, "problem": "no value yet; put one with `aws secretsmanager put-secret-value`"}
    try:
        days = int(tags[ROTATION_DAYS_TAG])
    except (KeyError, ValueError):
        return {"name": name, "arn": arn, "problem": f"no valid {ROTATION_DAYS_TAG} tag"}
    age_days = (now - current["CreatedDate"]).total_seconds() / 86400
    if age_days > days + GRACE_DAYS:
        return {"name": name, "arn": arn,
                "problem": f"value is {int(age_days)} days old; it must change every {days} days"}
    return None
