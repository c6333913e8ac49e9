"""SNS rules: a compliant topic, one mutated property, the exact message."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, Severity

from sark_policies import sns
from tests.policies.helpers import UNKNOWN, by_name, check_resource

ENCRYPTED = by_name(sns.POLICIES, "aws-sns-topic-enable-kms-encryption")
KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-4222-a333-444455556666"


def test_metadata() -> None:
    assert ENCRYPTED.enforcement_level == EnforcementLevel.MANDATORY
    assert ENCRYPTED.severity == Severity.MEDIUM
    assert "securityhub:SNS.1" in ENCRYPTED.tags


def test_topic_encrypted_with_the_stack_key_passes() -> None:
    result = check_resource(ENCRYPTED, sns.TOPIC, {"name": "sark-alerts", "kmsMasterKeyId": KEY})
    assert result.violations == []


def test_unencrypted_topic_fails() -> None:
    result = check_resource(ENCRYPTED, sns.TOPIC, {"name": "sark-alerts"})
    assert result.messages == [
        "kmsMasterKeyId is not set; messages (alert details) are stored unencrypted. Use the stack key."]


def test_topic_with_the_aws_managed_key_fails() -> None:
    result = check_resource(ENCRYPTED, sns.TOPIC, {"name": "sark-alerts", "kmsMasterKeyId": "alias/aws/sns"})
    assert result.messages == [
        "kmsMasterKeyId is the AWS-managed alias/aws/sns, whose key policy does not let CloudWatch alarms "
        "publish. Use the stack key."]


def test_other_types_are_ignored() -> None:
    result = check_resource(ENCRYPTED, "aws:sqs/queue:Queue", {"name": "q"})
    assert result.violations == []


def test_key_unknown_during_first_preview_passes_without_advisory() -> None:
    result = check_resource(ENCRYPTED, sns.TOPIC, {"name": "sark-alerts", "kmsMasterKeyId": UNKNOWN})
    assert result.violations == []
    assert result.advisories == []
