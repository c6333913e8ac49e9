"""Lambda rules: the rotation function reserves concurrency and reports failed runs."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel

from sark_policies import lambdas
from tests.policies.helpers import UNKNOWN, Res, by_name, check_resource, check_stack, urn

CONCURRENCY = by_name(lambdas.POLICIES, "aws-lambda-function-configure-reserved-concurrency")
FAILURES = by_name(lambdas.POLICIES, "aws-lambda-function-configure-failure-destination")


def test_both_are_advisory() -> None:
    assert {p.enforcement_level for p in lambdas.POLICIES} == {EnforcementLevel.ADVISORY}


def test_reserved_concurrency() -> None:
    assert check_resource(CONCURRENCY, lambdas.FUNCTION, {"reservedConcurrentExecutions": 2}).violations == []
    assert check_resource(CONCURRENCY, lambdas.FUNCTION, {"reservedConcurrentExecutions": -1}).messages == [
        "reservedConcurrentExecutions is not set; the function competes with every other function of the account "
        "for concurrency."]
    assert check_resource(CONCURRENCY, lambdas.FUNCTION, {"reservedConcurrentExecutions": 0}).messages == [
        "reservedConcurrentExecutions is 0; the function can never run."]


def _stack(destination: object = UNKNOWN) -> list[Res]:
    function = Res(lambdas.FUNCTION, "rotation", {"name": "sark-rotation", "arn": UNKNOWN})
    config = Res(lambdas.EVENT_INVOKE_CONFIG, "rotation-failures", {
        "functionName": UNKNOWN, "destinationConfig": {"onFailure": {"destination": destination}}},
        property_dependencies={"functionName": [function.urn]})
    return [function, config]


def test_failure_destination_found_by_dependency_in_a_first_preview() -> None:
    result = check_stack(FAILURES, _stack())
    assert (result.violations, result.advisories) == ([], [])


def test_function_without_failure_destination_fails() -> None:
    assert check_stack(FAILURES, _stack()[:1]).violations == [(urn(lambdas.FUNCTION, "rotation"), (
        "Lambda function 'rotation' has no on-failure destination (FunctionEventInvokeConfig "
        "destinationConfig.onFailure) and no dead-letter queue; a failed run would go unnoticed."))]
    assert len(check_stack(FAILURES, _stack(destination=None)).messages) == 1


def test_dead_letter_queue_counts() -> None:
    function = Res(lambdas.FUNCTION, "rotation", {"deadLetterConfig": {"targetArn": UNKNOWN}})
    assert check_stack(FAILURES, [function]).violations == []
