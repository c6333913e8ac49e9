"""The whole production program: no generated secret value ever appears outside a secret.

The production stack (``__main__.py`` with ``Pulumi.production.yaml``) is planned under the
mocks, whose RandomPassword / RandomString results are the generated secret values. Every
recorded resource's inputs and outputs (user data, tags, SSM parameter values, Lambda
environments and IAM policies included), every component's registered outputs, the stack
outputs, the program's log, and the text and JSON of ``sarkops plan`` are walked: a
generated value may only appear inside a value marked secret.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sarkops.plan import PlanResult, render_text, to_json
from sarkops.plan.runtime import Recording, is_secret, plain

GENERATORS = ("random:index/randomPassword:RandomPassword", "random:index/randomString:RandomString")


@pytest.fixture(scope="module")
def plan(production_plan: PlanResult) -> PlanResult:
    """The session's production plan (tests/conftest.py), shared with the other suites that read it."""
    return production_plan


@pytest.fixture(scope="module")
def generated(plan: PlanResult) -> dict[str, str]:
    """Generated secret value -> the generator that made it."""
    values: dict[str, str] = {}
    for resource in plan.recording.resources:
        if resource.type in GENERATORS:
            for key in ("result", "bcryptHash"):
                if key in resource.outputs:
                    values[str(plain(resource.outputs[key]))] = f"{resource.name}.{key}"
    return values


def plaintext_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, text) of every string outside any secret wrapper, dictionary keys included."""
    if is_secret(value):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", str(key)
            yield from plaintext_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from plaintext_strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


def leaks(value: Any, where: str, generated: dict[str, str]) -> list[str]:
    found = []
    for path, text in plaintext_strings(value, where):
        for secret_value, source in generated.items():
            if secret_value in text:
                found.append(f"{source} in {path}")
    return found


def test_the_stack_generates_its_secrets(generated: dict[str, str]) -> None:
    names = sorted(source.split(".")[0] for source in generated.values())
    assert names == [
        "sark-production-secrets-postgres-master-value", "sark-production-secrets-postgres-master-value",
        "sark-production-secrets-postgres-password-value", "sark-production-secrets-postgres-password-value",
        "sark-production-secrets-secret-key-value", "sark-production-secrets-secret-key-value",
        "sark-production-secrets-timescale-password-value", "sark-production-secrets-timescale-password-value",
        "sark-production-secrets-valkey-password-value", "sark-production-secrets-valkey-password-value"]


def test_generated_values_do_reach_their_consumers_inside_secrets(plan: PlanResult,
                                                                  generated: dict[str, str]) -> None:
    # Proves the walk below looks where the values really are: each one is present, wrapped.
    rec: Recording = plan.recording
    carried = {"aws:secretsmanager/secretVersion:SecretVersion": "secretString",
               "aws:rds/instance:Instance": "password",
               "aws:elasticache/replicationGroup:ReplicationGroup": "authToken"}
    seen: set[str] = set()
    for token, key in carried.items():
        for resource in rec.by_type(token):
            assert is_secret(resource.inputs[key]), resource.name
            assert is_secret(resource.outputs[key]), resource.name
            value = plain(resource.inputs[key])
            seen.add(value)
            if value.startswith("{"):  # a database login: {"username", "password"}
                seen.add(json.loads(value)["password"])
    results = {v for v, source in generated.items() if source.endswith(".result")}
    assert len(results) == 5
    assert results <= seen


def test_no_generated_value_outside_a_secret_in_any_resource(plan: PlanResult, generated: dict[str, str]) -> None:
    found: list[str] = []
    for resource in plan.recording.resources:
        found += leaks(resource.inputs, f"{resource.name}.inputs", generated)
        found += leaks(resource.outputs, f"{resource.name}.outputs", generated)
    assert found == []


def test_no_generated_value_in_the_stack_outputs(plan: PlanResult, generated: dict[str, str]) -> None:
    outputs = plan.recording.outputs
    assert leaks(outputs, "stack", generated) == []
    assert not any(is_secret(v) for v in outputs.values())  # nothing secret is exported at all
    arns = outputs["secretArns"]
    assert sorted(arns) == ["POSTGRES_PASSWORD", "SECRET_KEY", "SPLUNK_HEC_TOKEN", "TIMESCALE_PASSWORD",
                            "VALKEY_PASSWORD"]


def test_user_data_tags_and_parameters_hold_no_secret(plan: PlanResult, generated: dict[str, str]) -> None:
    # The places the checklist names, looked at one by one (the walk above covers them too).
    rec = plan.recording
    places = []
    for resource in rec.resources:
        for key in ("userData", "userDataBase64", "tags", "tagsAll", "value", "insecureValue", "environment"):
            if key in resource.inputs:
                places.append((f"{resource.name}.{key}", resource.inputs[key]))
    assert any(path.endswith(".userData") for path, _ in places)
    assert any(path.endswith(".insecureValue") or path.endswith(".value") for path, _ in places)
    for path, value in places:
        assert leaks(value, path, generated) == [], path


def test_no_generated_value_in_the_log_or_the_plan_report(plan: PlanResult, generated: dict[str, str]) -> None:
    from sarkops.plan.render.sarif import to_sarif

    text = (render_text(plan) + render_text(plan, quiet=True) + json.dumps(to_json(plan)) + json.dumps(to_sarif(plan))
            + json.dumps(plan.recording.logs))
    assert [source for value, source in generated.items() if value in text] == []


def test_the_walk_finds_a_value_outside_a_secret_and_ignores_it_inside() -> None:
    from pulumi.runtime import rpc

    generated = {"s3cr3t-value-0123456789": "pw.result"}
    value = {"tags": {"Note": "pw is s3cr3t-value-0123456789"}, "password": rpc.wrap_rpc_secret(
        "s3cr3t-value-0123456789"), "list": [{"s3cr3t-value-0123456789": "as a key"}]}
    assert leaks(value, "r", generated) == ["pw.result in r.tags.Note",
                                            "pw.result in r.list[0].s3cr3t-value-0123456789"]
