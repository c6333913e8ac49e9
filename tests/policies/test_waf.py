"""WAF logging: the web ACL of the load balancer, its logging configuration, its log group."""

from __future__ import annotations

from typing import Any

from sark_policies import waf
from tests.policies.helpers import UNKNOWN, Res, by_name, check_stack, urn

LOGGING = by_name(waf.POLICIES, "aws-wafv2-web-acl-enable-logging")
KEY = "arn:aws:kms:us-east-1:123456789012:key/1"


def stack(group: dict[str, Any] | None = None, linked: bool = True, first_preview: bool = False) -> list[Res]:
    """A web ACL logged to an aws-waf-logs-* log group, as the load balancer component should build it."""
    unknown = UNKNOWN if first_preview else None
    acl = Res(waf.WEB_ACL, "lb-waf", {"arn": unknown or "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/x/1"})
    logs = Res(waf.LOG_GROUP, "lb-waf-logs", {"name": "aws-waf-logs-sark-production", "kmsKeyId": unknown or KEY,
                                              "retentionInDays": 90, "arn": unknown or "arn:aws:logs:::log-group:x",
                                              **(group or {})})
    config = Res(waf.LOGGING_CONFIGURATION, "lb-waf-logging", {
        "resourceArn": unknown or acl.props["arn"],
        "logDestinationConfigs": [unknown or "arn:aws:logs:us-east-1:123456789012:log-group:aws-waf-logs-sark"]},
        property_dependencies={"resourceArn": [acl.urn], "logDestinationConfigs": [logs.urn]} if linked else {})
    return [acl, logs, config]


def test_logged_web_acl_passes_also_in_a_first_preview() -> None:
    assert check_stack(LOGGING, stack()).violations == []
    result = check_stack(LOGGING, stack(first_preview=True))
    assert (result.violations, result.advisories) == ([], [])


def test_web_acl_without_logging_fails() -> None:
    assert check_stack(LOGGING, stack()[:2]).violations == [
        (urn(waf.WEB_ACL, "lb-waf"), "Web ACL 'lb-waf' has no logging configuration "
                                     "(aws.wafv2.WebAclLoggingConfiguration); its blocks and allows leave no record.")]


def test_log_group_with_the_wrong_name_unencrypted_and_kept_forever_fails() -> None:
    result = check_stack(LOGGING, stack({"name": "/sark/waf", "kmsKeyId": None, "retentionInDays": None},
                                        first_preview=True))
    assert result.messages == [
        "Web ACL 'lb-waf' logs through 'lb-waf-logging', but its log group 'lb-waf-logs' is named /sark/waf, not "
        "aws-waf-logs-* (WAF cannot deliver to it).",
        "Web ACL 'lb-waf' logs through 'lb-waf-logging', but its log group 'lb-waf-logs' is not encrypted with the "
        "stack key (kmsKeyId).",
        "Web ACL 'lb-waf' logs through 'lb-waf-logging', but its log group 'lb-waf-logs' keeps the logs forever (no "
        "retentionInDays)."]


def test_destination_named_by_arn_without_dependency() -> None:
    resources = stack(linked=False)
    assert check_stack(LOGGING, resources).violations == []
    resources[2].props = {**resources[2].props, "logDestinationConfigs": ["arn:aws:s3:::sark-waf"]}
    assert check_stack(LOGGING, resources).messages == [
        "Web ACL 'lb-waf' logs through 'lb-waf-logging', but its destination arn:aws:s3:::sark-waf is not a log "
        "group, bucket or stream named aws-waf-logs-*."]
