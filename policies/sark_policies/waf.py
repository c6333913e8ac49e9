"""WAF rules (anchors: Checkov CKV2_AWS_31, WAF logging).

A web ACL that is not logged blocks and allows requests with no record of which rule did what;
AWS WAF logs only through an ``aws.wafv2.WebAclLoggingConfiguration`` whose destinations (a
CloudWatch Logs log group, an S3 bucket or a Firehose stream) are named ``aws-waf-logs-*``
(pulumi-aws ``wafv2/webAclLoggingConfiguration``: "data firehose, log group, or bucket name
**must** be prefixed with ``aws-waf-logs-``"). A log group destination is held to what every
log group is (encrypted with the stack key, a retention period); its own rules
(``aws-cloudwatch-log-group-*``) check that before it is created, this rule checks that the
destination of the web ACL's logging is such a log group.

Cross-resource by nature (a web ACL, its logging configuration, the destination), so a stack
rule, decided from property dependencies: ``resourceArn`` came from the web ACL and
``logDestinationConfigs`` from the log group, both known in a first preview although every
ARN involved is not.
"""

from __future__ import annotations

import re

from pulumi_policy import PolicyResource, ReportViolation, Severity, StackValidationArgs

from ._base import Anchors, policies_of, settings, stack_rule
from ._graph import refers, undecided
from ._props import UNKNOWN, as_int, known, known_items

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
LOGGING_CONFIGURATION = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
_ARN_NAME = re.compile(r"^arn:aws[a-z-]*:(?:logs:[^:]*:[^:]*:log-group:|s3:::|firehose:[^:]*:[^:]*:deliverystream/)"
                       r"(?P<name>[^:/*]+)")


def _destination_problems(config: PolicyResource, prefix: str) -> list[str]:
    """What is wrong with a logging configuration's destinations (empty if nothing)."""
    problems: list[str] = []
    dependencies = [d for d in config.property_dependencies.get("logDestinationConfigs", [])
                    if d.resource_type == LOG_GROUP]
    for group in dependencies:
        name = known(group.props, "name")
        if isinstance(name, str) and not name.startswith(prefix):
            problems.append(f"log group '{group.name}' is named {name}, not {prefix}* (WAF cannot deliver to it)")
        if not known(group.props, "kmsKeyId"):
            problems.append(f"log group '{group.name}' is not encrypted with the stack key (kmsKeyId)")
        if not as_int(known(group.props, "retentionInDays")):
            problems.append(f"log group '{group.name}' keeps the logs forever (no retentionInDays)")
    if dependencies:
        return problems
    for arn in known_items(known(config.props, "logDestinationConfigs")):
        if arn is UNKNOWN:
            continue  # computed from a resource of another kind: its name shows once it is known
        match = _ARN_NAME.match(str(arn))
        if match is None or not match.group("name").startswith(prefix):
            problems.append(f"destination {arn} is not a log group, bucket or stream named {prefix}*")
    return problems


@stack_rule(
    "aws-wafv2-web-acl-enable-logging", Severity.MEDIUM,
    "Every WAF web ACL logs its requests to an encrypted aws-waf-logs-* log group with a retention period.",
    fix="Add an aws.wafv2.WebAclLoggingConfiguration with resource_arn=<web ACL>.arn and log_destination_configs="
        "[<log group>.arn], the log group named aws-waf-logs-<stack>, with kms_key_id=<stack key ARN> and "
        "retention_in_days set.",
    needs="the logging configuration whose resourceArn came from the web ACL and its destination log group "
          "(property dependencies)",
    covered_by=["aws-cloudwatch-log-group-enable-kms-encryption", "aws-cloudwatch-log-group-configure-retention"],
    anchors=Anchors(checkov=["CKV2_AWS_31"], securityhub=["WAF.11"],
                    checklist=["Pre-Deployment 3.3 (log aggregation)"]),
    config={"logGroupPrefix": {"type": "string", "default": "aws-waf-logs-",
                               "description": "Name prefix AWS WAF requires of its log destinations."}},
)
def web_acl_logged(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Each web ACL has a logging configuration whose destination is a fitting log group."""
    prefix = settings(args).text("logGroupPrefix")
    configs = [r for r in args.resources if r.resource_type == LOGGING_CONFIGURATION]
    if any(undecided(c, "resourceArn") for c in configs):
        return
    for acl in (r for r in args.resources if r.resource_type == WEB_ACL):
        own = [c for c in configs if refers(c, "resourceArn", acl, ("arn",))]
        if not own:
            report_violation(f"Web ACL '{acl.name}' has no logging configuration "
                             "(aws.wafv2.WebAclLoggingConfiguration); its blocks and allows leave no record.", acl.urn)
        for config in own:
            for problem in _destination_problems(config, prefix):
                report_violation(f"Web ACL '{acl.name}' logs through '{config.name}', but its {problem}.", acl.urn)


POLICIES = policies_of(__name__)
