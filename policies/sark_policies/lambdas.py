"""Lambda rules: the secret-rotation function cannot be starved or fail silently (Checkov
CKV_AWS_115, CKV_AWS_116).

Both advisory: neither opens anything, but a rotation that cannot get a concurrent execution
when the account's other functions use them all, or that fails with nobody told, leaves a
secret unrotated past its period.

- Reserved concurrency (CKV_AWS_115) is the function's own input
  (``reservedConcurrentExecutions``; -1, the default, means none reserved; 0 stops the
  function): a resource rule.
- A failure destination (CKV_AWS_116 asks for a dead-letter queue; Secrets Manager invokes
  rotation functions asynchronously, so an ``aws.lambda.FunctionEventInvokeConfig`` with
  ``destinationConfig.onFailure`` serves the same purpose and records the failed event): the
  invoke config is another resource, found through the property dependency of its
  ``functionName``, so a stack rule. A ``deadLetterConfig.targetArn`` on the function itself
  counts as well.
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, Severity, StackValidationArgs

from ._base import Anchors, policies_of, resource_rule, stack_rule
from ._graph import refers, undecided
from ._props import as_int, as_map, known

FUNCTION = "aws:lambda/function:Function"
EVENT_INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"


@resource_rule(
    "aws-lambda-function-configure-reserved-concurrency", [FUNCTION], Severity.LOW,
    "Lambda functions reserve concurrency, so other functions cannot starve them.",
    fix="Set reserved_concurrent_executions to a small positive number (the rotation function needs 1 or 2).",
    anchors=Anchors(checkov=["CKV_AWS_115"], checklist=["Pre-Deployment 2.1 (rotation schedule)"]),
    level=EnforcementLevel.ADVISORY,
)
def reserved_concurrency(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """``reservedConcurrentExecutions`` is 1 or more (-1 reserves nothing, 0 stops the function)."""
    value = as_int(args.props.get("reservedConcurrentExecutions"))
    if value is None or value < 0:
        report_violation("reservedConcurrentExecutions is not set; the function competes with every other function "
                         "of the account for concurrency.", None)
    elif value == 0:
        report_violation("reservedConcurrentExecutions is 0; the function can never run.", None)


@stack_rule(
    "aws-lambda-function-configure-failure-destination", Severity.LOW,
    "Lambda functions send failed asynchronous invocations to a destination (or a dead-letter queue).",
    fix="Add an aws.lambda.FunctionEventInvokeConfig with function_name=<function>.name and "
        "destination_config.on_failure.destination=<SNS topic or SQS queue ARN> (or set dead_letter_config).",
    needs="the event invoke configs whose functionName came from the function (property dependency)",
    anchors=Anchors(checkov=["CKV_AWS_116"], checklist=["Pre-Deployment 2.1 (rotation schedule)"]),
    level=EnforcementLevel.ADVISORY,
)
def failure_destination(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Each function has a dead-letter target or an invoke config with an on-failure destination."""
    configs = [r for r in args.resources if r.resource_type == EVENT_INVOKE_CONFIG]
    if any(undecided(c, "functionName") for c in configs):
        return
    for function in (r for r in args.resources if r.resource_type == FUNCTION):
        if known(as_map(known(function.props, "deadLetterConfig")), "targetArn"):
            continue
        own = [c for c in configs if refers(c, "functionName", function, ("name", "arn", "id"))]
        if any(known(as_map(known(as_map(known(c.props, "destinationConfig")), "onFailure")), "destination")
               for c in own):
            continue
        report_violation(f"Lambda function '{function.name}' has no on-failure destination (FunctionEventInvokeConfig "
                         "destinationConfig.onFailure) and no dead-letter queue; a failed run would go unnoticed.",
                         function.urn)


POLICIES = policies_of(__name__)
