"""Stack policies over one shared, read-only resource list (sarkops.plan.stack_policies).

Two things must hold for the shared list to be a faithful stand-in for the SDK's
``AnalyzeStack``, which builds a fresh list for each stack policy:

- the response is the SDK's, message for message (levels, unknowns, not-applicable, order);
- no stack policy of the pack changes what the next one sees. Proved two ways: the read-only
  objects record no attempt, and a deep fingerprint of the whole list (reached through
  ``props["__target"]`` and every attribute, so also through paths the guards do not cover)
  is identical before and after every policy.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel, StackValidationArgs, StackValidationPolicy
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError

from sarkops.plan import PlanResult
from sarkops.plan.policy_runner import LoadedPack, _Evaluation, _servicer, load_pack
from sarkops.plan.runtime import UNKNOWN, Recording
from sarkops.plan.stack_policies import SharedResourceMutationError, analyze_stack, build_stack_resources, sealed
from tests.policies.test_evaluators import insecure

ROOT = Path(__file__).resolve().parents[3]


def _unknown_outputs(recording: Recording) -> Recording:
    """Every output of the listeners and the bucket versionings unknown, as if still being created."""
    resources = []
    for resource in recording.resources:
        if resource.type in UNKNOWN_TYPES:
            outputs = {k: v if k == "id" else UNKNOWN for k, v in resource.outputs.items()}
            resources.append(dataclasses.replace(resource, outputs=outputs))
        else:
            resources.append(resource)
    return dataclasses.replace(recording, resources=resources)


UNKNOWN_TYPES = ("aws:lb/listener:Listener", "aws:s3/bucketVersioning:BucketVersioning")
VARIANTS: dict[str, Callable[[Recording], Recording]] = {
    "production": lambda recording: recording, "insecure": insecure, "unknown outputs": _unknown_outputs}
CASES = {
    # case: (plan fixture, recording variant, pack config)
    "first preview": ("production_preview", "production", None),
    "insecure variant": ("production_plan", "insecure", None),
    "unknowns in the stack": ("production_preview", "unknown outputs", None),
    "levels changed": ("production_plan", "insecure", {
        "aws-ec2-security-group-require-app-source-for-data-ports": {"enforcementLevel": "disabled"},
        "aws-autoscaling-group-require-imdsv2": {"enforcementLevel": "remediate"},
        "aws-ec2-security-group-disallow-unrestricted-egress": "mandatory"}),
}


def _stack_case(request: pytest.FixtureRequest, case: str) -> tuple[Any, Any]:
    """(the SARK pack's servicer, configured, and the AnalyzeStackRequest) of one of :data:`CASES`."""
    fixture, variant, given = CASES[case]
    plan: PlanResult = request.getfixturevalue(fixture)
    evaluation = _Evaluation(VARIANTS[variant](plan.recording), plan.config.values)
    evaluation.configure(load_pack(ROOT / "policies"), given)
    evaluation.remediate()
    return evaluation.servicers[0][1], evaluation.stack_request()


@pytest.mark.parametrize("case", list(CASES))
def test_shared_resources_give_the_sdks_response(request: pytest.FixtureRequest, case: str) -> None:
    servicer, stack_request = _stack_case(request, case)

    expected = servicer.AnalyzeStack(stack_request, None)
    fallbacks: list[tuple[str, list[str]]] = []
    got = analyze_stack(servicer, stack_request, fallbacks=fallbacks)

    assert list(got.diagnostics) == list(expected.diagnostics)
    assert list(got.not_applicable) == list(expected.not_applicable)
    assert fallbacks == []
    levels = {d.policyName: proto.EnforcementLevel.Name(d.enforcementLevel) for d in got.diagnostics}
    if CASES[case][1] == "production":
        assert levels == {}  # the production stack passes every stack policy
    elif case == "unknowns in the stack":
        assert {"aws-lb-listener-disallow-metrics-path", "aws-s3-bucket-enable-versioning"} <= set(levels)
        assert all("during preview" in d.message for d in got.diagnostics if d.policyName in levels)
    elif case == "levels changed":
        # disabled: not run; remediate: mandatory for a stack policy; advisory raised to mandatory.
        assert levels == {"aws-autoscaling-group-require-imdsv2": "MANDATORY",
                          "aws-ec2-security-group-disallow-unrestricted-egress": "MANDATORY"}
    else:
        assert levels == {"aws-autoscaling-group-require-imdsv2": "MANDATORY",
                          "aws-ec2-security-group-disallow-unrestricted-egress": "ADVISORY",
                          "aws-ec2-security-group-require-app-source-for-data-ports": "MANDATORY"}


def _fingerprint(value: Any, seen: dict[int, int] | None = None) -> Any:  # noqa: PLR0911
    """Everything a stack policy can see, as plain data; shared objects appear by their position."""
    from pulumi_policy.proxy import _DictProxy, _ListProxy

    seen = {} if seen is None else seen
    if isinstance(value, _DictProxy | _ListProxy):
        return ("proxy", _fingerprint(value["__target"], seen))
    if isinstance(value, dict):
        return ("dict", type(value).__name__, [(k, _fingerprint(v, seen)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return ("list", type(value).__name__, [_fingerprint(v, seen) for v in value])
    if hasattr(value, "__dict__"):
        if id(value) in seen:
            return ("ref", seen[id(value)])
        seen[id(value)] = len(seen)
        return ("object", type(value).__name__, sorted((k, _fingerprint(v, seen)) for k, v in vars(value).items()))
    if hasattr(value, "__iter__") and not isinstance(value, str | bytes):  # protobuf repeated fields
        return ("repeated", [_fingerprint(v, seen) for v in value])
    return value


@pytest.mark.parametrize("case", ["first preview", "insecure variant", "unknowns in the stack"])
def test_no_stack_policy_of_the_pack_changes_the_shared_resources(request: pytest.FixtureRequest, case: str) -> None:
    servicer, stack_request = _stack_case(request, case)
    shared = build_stack_resources(servicer, stack_request, shared=True)
    before = _fingerprint(shared)
    pack_policies = [p for p in servicer._PolicyAnalyzerServicer__policies if isinstance(p, StackValidationPolicy)]
    assert len(pack_policies) >= 20

    from sarkops.plan import stack_policies

    attempts = {}
    for policy in pack_policies:
        stack_policies._attempts.clear()
        args = StackValidationArgs(shared, servicer._get_policy_config(policy.name))
        # A policy may end the way it ends under the SDK: on an unknown, or not applicable.
        with sealed(shared), contextlib.suppress(UnknownValueError, _NotApplicableError):
            policy.validate(args, lambda message, urn=None: None)
        attempts[policy.name] = list(stack_policies._attempts)
    assert {name: tried for name, tried in attempts.items() if tried} == {}
    # Also through paths the read-only objects cannot guard (``props["__target"]``'s contents, any attribute).
    assert _fingerprint(shared) == before


# --------------------------------------------------------------------------------------
# A pack whose stack policies do mutate
# --------------------------------------------------------------------------------------

def _small_request() -> Any:
    request = proto.AnalyzeStackRequest()
    stack = "urn:pulumi:s::p::pulumi:pulumi:Stack::p-s"
    bucket = "urn:pulumi:s::p::aws:s3/bucketV2:BucketV2::logs"
    request.resources.add(type="pulumi:pulumi:Stack", urn=stack, name="p-s")
    entry = request.resources.add(type="aws:s3/bucketV2:BucketV2", urn=bucket, name="logs", parent=stack)
    entry.properties.update({"bucket": "logs", "tags": {"role": "logs"}, "rules": [{"days": 30.0}]})
    entry = request.resources.add(type="aws:s3/bucketPolicy:BucketPolicy", urn=bucket.replace("bucketV2:BucketV2",
                                  "bucketPolicy:BucketPolicy"), name="logs-policy", parent=stack,
                                  dependencies=[bucket])
    entry.propertyDependencies["bucket"].urns.extend([bucket])
    entry.properties.update({"bucket": "logs"})
    return request


def _seen(args: StackValidationArgs) -> str:
    bucket = next(r for r in args.resources if r.resource_type == "aws:s3/bucketV2:BucketV2")
    policy = next(r for r in args.resources if r.resource_type == "aws:s3/bucketPolicy:BucketPolicy")
    return (f"{len(args.resources)} resources; tags={dict(bucket.props['tags'])}; "
            f"days={bucket.props['rules'][0]['days']}; name={bucket.name}; "
            f"deps={[d.name for d in policy.dependencies]}")


def _policy(name: str, change: Callable[[StackValidationArgs], None]) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: Callable[..., None]) -> None:
        change(args)
        report(_seen(args))

    return StackValidationPolicy(name=name, description=name, validate=validate,
                                 enforcement_level=EnforcementLevel.MANDATORY)


def _swallowed(args: StackValidationArgs) -> None:
    with contextlib.suppress(TypeError):
        args.resources[2].dependencies.clear()


def _set(target: Any, key: str, value: Any) -> None:
    target[key] = value


MUTATORS: dict[str, Callable[[StackValidationArgs], None]] = {
    "reader-first": lambda args: None,
    "sets-a-property": lambda args: _set(args.resources[1].props["tags"], "role", "changed"),
    "through-target": lambda args: _set(args.resources[1].props["rules"][0]["__target"], "days", 1.0),
    "renames": lambda args: setattr(args.resources[1], "name", "renamed"),
    "drops-a-resource": lambda args: args.resources.pop(0),
    "swallows-the-error": _swallowed,
    "reader-last": lambda args: None,
}


def test_a_policy_that_mutates_gets_a_private_copy_and_the_sdks_result() -> None:
    pack = LoadedPack(dir=ROOT, name="mutating", version="1.0.0",
                      policies=[_policy(name, change) for name, change in MUTATORS.items()],
                      enforcement_level=EnforcementLevel.ADVISORY)
    servicer = _servicer(pack)
    request = _small_request()

    expected = servicer.AnalyzeStack(request, None)
    fallbacks: list[tuple[str, list[str]]] = []
    got = analyze_stack(servicer, request, fallbacks=fallbacks)

    assert list(got.diagnostics) == list(expected.diagnostics)
    assert [name for name, _ in fallbacks] == [name for name in MUTATORS if not name.startswith("reader")]
    messages = {d.policyName: d.message.split("\n", 1)[1] for d in got.diagnostics}
    pristine = "3 resources; tags={'role': 'logs'}; days=30.0; name=logs; deps=['logs']"
    assert messages["reader-first"] == messages["reader-last"] == pristine
    # Each mutator saw its own change, as under the SDK.
    assert "tags={'role': 'changed'}" in messages["sets-a-property"]
    assert "days=1.0" in messages["through-target"]
    assert "name=renamed" in messages["renames"]
    assert messages["drops-a-resource"].startswith("2 resources")
    assert messages["swallows-the-error"].endswith("deps=[]")


def test_shared_resources_refuse_changes_and_copy_to_plain_values() -> None:
    servicer = _servicer(LoadedPack(dir=ROOT, name="p", version="1", policies=[_policy("r", lambda a: None)],
                                    enforcement_level=EnforcementLevel.ADVISORY))
    shared = build_stack_resources(servicer, _small_request(), shared=True)
    bucket = shared[1]
    with sealed(shared):
        with pytest.raises(SharedResourceMutationError, match="cannot change a mapping"):
            bucket.props["bucket"] = "other"
        with pytest.raises(SharedResourceMutationError, match=r"cannot set PolicyResource\.parent"):
            bucket.parent = None
        with pytest.raises(SharedResourceMutationError, match=r"cannot set PolicyResourceOptions\.protect"):
            bucket.opts.protect = True
        with pytest.raises(SharedResourceMutationError, match="cannot change a list"):
            shared[2].property_dependencies["bucket"].append(bucket)
        tags = copy.deepcopy(bucket.props["tags"]["__target"])
        tags["role"] = "mine"  # a deep copy is the policy's own
        assert type(tags) is dict
        assert shared[2].dependencies + [bucket] == [bucket, bucket]  # noqa: RUF005 (+ on the read-only list)
    assert bucket.props["tags"]["role"] == "logs"
    assert shared[2].parent is shared[0]
    assert shared[2].dependencies[0] is bucket
    bucket.name = "unsealed"  # outside an evaluation the objects are ordinary again
    assert bucket.name == "unsealed"
