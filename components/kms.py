"""The stack's customer-managed KMS key.

Creates:
- a symmetric KMS key with yearly automatic rotation, a 30-day deletion window and a key
  policy that lets the account's IAM policies govern use, and lets CloudWatch Logs (log
  group encryption) and CloudWatch alarms (publishing to the encrypted SNS topic) use it;
- an alias ``alias/<name>``.

Every encrypted resource of the stack (secrets, RDS storage and Performance Insights,
ElastiCache, the TimescaleDB volumes, log groups, the alert topic) uses this one key, so
access to the stack's data at rest is governed in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True, kw_only=True)
class StackKeyArgs:
    """Arguments of :class:`StackKey`."""

    region: str
    """AWS region of the stack; scopes the CloudWatch Logs grant to this region's log groups."""

    description: str = "SARK stack data key"
    """Shown in the KMS console."""

    deletion_window_days: int = 30
    """Days a scheduled deletion can still be cancelled (7-30); the longest window is the safe default."""


class StackKey(pulumi.ComponentResource):
    """A customer-managed KMS key with rotation on, protected from deletion."""

    key_arn: pulumi.Output[str]
    """ARN of the key; pass it as ``kms_key_id`` wherever a resource encrypts data."""

    key_id: pulumi.Output[str]
    """Key id (UUID)."""

    alias_name: pulumi.Output[str]
    """The key's alias, ``alias/<name>``."""

    def __init__(self, name: str, args: StackKeyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:kms:StackKey", name, None, opts)

        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        policy = account_id.apply(lambda account: _key_policy(account, args.region))

        key = aws.kms.Key(
            f"{name}-key",
            description=args.description,
            enable_key_rotation=True,
            deletion_window_in_days=args.deletion_window_days,
            policy=policy,
            # A lost key makes every secret, snapshot and volume it encrypts unreadable.
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        alias = aws.kms.Alias(
            f"{name}-alias",
            name=f"alias/{name}",
            target_key_id=key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.key_arn = key.arn
        self.key_id = key.key_id
        self.alias_name = alias.name
        self.register_outputs({"keyArn": self.key_arn, "keyId": self.key_id, "aliasName": self.alias_name})


def _key_policy(account_id: str, region: str) -> str:
    root = f"arn:aws:iam::{account_id}:root"
    statements = [
        {
            # Without this statement only the key policy could grant access, and a mistake in
            # it could lock the account out of its own key.
            "Sid": "AccountIamPoliciesGovernUse",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "CloudWatchLogsEncryptsThisAccountsLogGroups",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            "Resource": "*",
            "Condition": {
                "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account_id}:*"},
            },
        },
        {
            # CloudWatch alarms publish to the KMS-encrypted alert topic.
            "Sid": "CloudWatchAlarmsPublishToEncryptedTopic",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})
