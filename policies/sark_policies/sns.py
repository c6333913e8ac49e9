"""SNS rules: topics are encrypted at rest with a customer-managed key."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity
from pulumi_policy.proxy import UnknownValueError

from ._base import Anchors, policies_of, resource_rule

TOPIC = "aws:sns/topic:Topic"

# The AWS-managed SNS key's policy cannot be changed, so CloudWatch alarms cannot publish to a
# topic encrypted with it; a customer-managed key is both the safe and the working choice.
AWS_MANAGED_KEY = "alias/aws/sns"


@resource_rule(
    "aws-sns-topic-enable-kms-encryption", [TOPIC], Severity.MEDIUM,
    "SNS topics are encrypted with a customer-managed KMS key.",
    fix="Set kms_master_key_id to the stack key's ARN (its key policy lets CloudWatch alarms "
        "use it to publish).",
    anchors=Anchors(checkov=["CKV_AWS_26"], trivy=["AVD-AWS-0095", "AVD-AWS-0136"], securityhub=["SNS.1"]),
)
def topic_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Topics are encrypted with a customer-managed KMS key."""
    try:
        key = args.props.get("kmsMasterKeyId")
    except UnknownValueError:
        # A first preview does not know the stack key's ARN yet; a value is being set.
        return
    if not key:
        report_violation("kmsMasterKeyId is not set; messages (alert details) are stored unencrypted. Use the "
                         "stack key.", None)
    elif key == AWS_MANAGED_KEY:
        report_violation("kmsMasterKeyId is the AWS-managed alias/aws/sns, whose key policy does not let "
                         "CloudWatch alarms publish. Use the stack key.", None)


POLICIES = policies_of(__name__)
