"""`python -m sarkops plan` as a process: exit status, output formats, and what must never be printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sarkops.plan.project import load_project, resolve_config
from sarkops.plan.runtime import plain, run_program
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[3]
WEBAPP = "tests/fixtures/projects/webapp"
INSECURE = "tests/fixtures/projects/insecure"
FAILING = "tests/fixtures/projects/failing"
DEMO = "tests/fixtures/packs/demo"


def plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sarkops", "plan", *args], cwd=ROOT, capture_output=True,
                          text=True, check=False, timeout=60)


def plan_webapp(*args: str) -> subprocess.CompletedProcess[str]:
    """The webapp fixture with every output known (--known-outputs: the plan as it was before
    first-preview semantics, which these report-shape tests pin down); tests/sarkops/plan/test_preview.py
    covers the default first preview."""
    return plan("--project", WEBAPP, "--stack", "test", "--policy-pack", DEMO, "--known-outputs", *args)


def assert_one_error_line(result: subprocess.CompletedProcess[str], status: int = 2) -> str:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="module")
def webapp_json() -> dict[str, Any]:
    result = plan_webapp("--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # exactly one JSON document, nothing else on stdout


@pytest.fixture(scope="module")
def webapp_text() -> subprocess.CompletedProcess[str]:
    return plan_webapp()


@pytest.fixture(scope="module")
def secrets() -> set[str]:
    """The secret values of the webapp plan, computed in-process the same deterministic way."""
    project = load_project(FIXTURES / "projects" / "webapp")
    config = resolve_config(project, "test")
    rec = run_program(project.dir, project=project.name, stack="test", config=config.values,
                      secret_keys=config.secret_keys)
    password = plain(rec.one("random:index/randomPassword:RandomPassword").outputs["result"])
    assert len(password) == 24
    return {password, "mock-secret-apiToken"}


# --- JSON ---------------------------------------------------------------------------------

def test_json_shape(webapp_json: dict[str, Any]) -> None:
    assert list(webapp_json)[:10] == ["project", "stack", "mode", "resources", "outputs", "checkFailures",
                                      "stateErrors", "violations", "notRun", "notApplicable"]
    assert (webapp_json["project"], webapp_json["stack"]) == ("webapp", "test")
    assert webapp_json["mode"] == {"firstPreview": False, "state": None}
    for resource in webapp_json["resources"]:
        custom = resource["type"] != "fixture:app:WebApp"
        assert list(resource) == ["urn", "type", "name", "parent", "dependencies", "protect", "inputs", "op",
                                  "source", *(["outputs"] if custom else [])]
        assert resource["source"]["file"] == "__main__.py"
        assert resource["source"]["line"] > 0
        assert resource["op"] == "create"
    for violation in webapp_json["violations"]:
        assert list(violation) == ["pack", "policy", "enforcementLevel", "severity", "urn", "message"]
    assert webapp_json["summary"] == {"mandatory": 0, "advisory": 2, "config": 0, "remediated": 1, "notApplicable": 0,
                                      "notRun": 1, "checkFailures": 0, "stateErrors": 0, "changes": {"create": 12},
                                      "resources": 13, "passed": True}


def test_json_resources_links_and_inputs(webapp_json: dict[str, Any]) -> None:
    by_name = {r["name"]: r for r in webapp_json["resources"]}
    db, component, password = by_name["app-db"], by_name["app"], by_name["app-db-password"]
    assert db["type"] == "aws:rds/instance:Instance"
    assert db["parent"] == component["urn"]
    assert password["urn"] in db["dependencies"]
    assert db["protect"] is True
    assert password["protect"] is False
    assert db["inputs"]["storageEncrypted"] is True
    assert db["inputs"]["backupRetentionPeriod"] == 14
    assert db["inputs"]["password"] == "[secret]"
    assert by_name["app-web"]["inputs"]["metadataOptions"] == {"httpTokens": "required"}


def test_json_violations(webapp_json: dict[str, Any]) -> None:
    levels = [(v["policy"], v["enforcementLevel"]) for v in webapp_json["violations"]]
    assert levels == [("demo-rds-password-length", "advisory"), ("demo-ssm-parameter-secure", "advisory"),
                      ("demo-bucket-managed-by-tag", "remediate")]
    unknown = webapp_json["violations"][1]
    assert "can't run policy 'demo-ssm-parameter-secure'" in unknown["message"]
    assert unknown["urn"].endswith("::app-vpc-ipv6")
    assert webapp_json["remediations"][0]["changed"]["tags"]["after"] == {"Environment": "test",
                                                                           "ManagedBy": "pulumi"}


def test_json_is_identical_between_runs(webapp_json: dict[str, Any]) -> None:
    assert json.loads(plan_webapp("--json").stdout) == webapp_json


# --- secrets ------------------------------------------------------------------------------

def test_secrets_never_printed(webapp_json: dict[str, Any], webapp_text: subprocess.CompletedProcess[str],
                               secrets: set[str]) -> None:
    text = json.dumps(webapp_json)
    for secret in secrets:
        assert secret not in text
        assert secret not in webapp_text.stdout
        assert secret not in webapp_text.stderr
    assert webapp_json["outputs"]["dbPassword"] == "[secret]"
    # The careless rule quoted the password in its message; the plan scrubbed it.
    password_rule = next(v for v in webapp_json["violations"] if v["policy"] == "demo-rds-password-length")
    assert password_rule["message"].endswith("master password '[secret]' is shorter than 32 characters.")
    assert "dbPassword: [secret]" in webapp_text.stdout


# --- text ---------------------------------------------------------------------------------

def test_text_report(webapp_text: subprocess.CompletedProcess[str]) -> None:
    assert webapp_text.returncode == 0, webapp_text.stderr
    out = webapp_text.stdout
    assert "  pulumi:pulumi:Stack webapp-test\n    fixture:app:WebApp app\n      aws:ec2/vpc:Vpc app-vpc\n" in out
    assert "  !   aws:rds/instance:Instance app-db [protected]  <- 1 advisory\n" in out
    assert "      aws:s3/bucket:Bucket app-assets  <- 1 remediated\n" in out
    # Summary, then findings, then the policies not run, then the tree.
    assert out.index("Summary:") < out.index("Findings (1):") < out.index("Policies not run") < \
        out.index("Resources (13;")
    assert ("  advisory  demo-rds-password-length [medium] on aws:rds/instance:Instance app-db  at __main__.py:32\n"
            "      master password '[secret]' is shorter than 32 characters.\n") in out
    assert "  demo-bucket-managed-by-tag [low] on aws:s3/bucket:Bucket app-assets: remediated: tags\n" in out
    summary = ("Summary: 0 mandatory, 2 advisory, 1 remediated, 0 not applicable, 1 not run; 0 check failures; "
               "13 resources; passed")
    assert out.splitlines()[2] == summary
    assert out.rstrip().endswith(summary)


# --- exit status --------------------------------------------------------------------------

def test_mandatory_violation_exits_1() -> None:
    result = plan("--project", INSECURE, "--stack", "test", "--policy-pack", DEMO)
    assert result.returncode == 1, result.stderr
    assert ("  MANDATORY demo-rds-hardening [high] on aws:rds/instance:Instance public-db  at __main__.py:6\n"
            "      RDS instance must not be publicly accessible.\n") in result.stdout
    assert "  x aws:rds/instance:Instance public-db  <- 2 mandatory, 1 advisory\n" in result.stdout
    assert "FAILED: mandatory policy violations" in result.stdout


def test_program_exception_is_one_line() -> None:
    line = assert_one_error_line(plan("--project", FAILING, "--stack", "test", "-c", "mode=raise"))
    assert line == f"error: program failed: KeyError: 'replicas' (at {FAILING}/helpers.py:7)"


def test_run_error_shows_only_its_message() -> None:
    line = assert_one_error_line(plan("--project", FAILING, "--stack", "test", "-c", "mode=runerror"))
    assert line == "error: failing:mode runerror: the value 'runerror' is not allowed here (use ok)"


@pytest.mark.parametrize("mode", ["invoke", "swallow"])
def test_unanswered_invoke_names_the_token(mode: str) -> None:
    line = assert_one_error_line(plan("--project", FAILING, "--stack", "test", "-c", f"mode={mode}"))
    assert line == ('error: no mock answer for invoke aws:ec2/getInstance:getInstance '
                    '(args {"instanceId": "i-0123456789abcdef0"}): add one to sarkops/plan/mock_aws.py')


def test_program_output_goes_to_stderr() -> None:
    result = plan("--project", FAILING, "--stack", "test", "-c", "mode=print", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outputs"] == {"bucket": "logs-7d81665"}  # Check's auto-name
    assert "hello from the program" in result.stderr


def test_debug_shows_the_traceback() -> None:
    result = subprocess.run([sys.executable, "-m", "sarkops", "plan", "--project", FAILING, "--stack", "test",
                             "-c", "mode=raise"], cwd=ROOT, capture_output=True, text=True, check=False,
                            env={"SARKOPS_DEBUG": "1", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert 'helpers.py", line 7, in explode' in result.stderr


def test_missing_stack_file() -> None:
    line = assert_one_error_line(plan("--project", WEBAPP, "--stack", "qa"))
    assert line.endswith(f"{WEBAPP}/Pulumi.qa.yaml: stack file not found (is --stack right?)")


def test_malformed_override() -> None:
    line = assert_one_error_line(plan("--project", WEBAPP, "--stack", "test", "-c", "backupRetentionDays"))
    assert line == ("error: -c 'backupRetentionDays': expected KEY=VALUE, e.g. -c instanceType=t3.large "
                    "or -c aws:region=eu-west-1")


def test_plain_text_secret_in_stack_file() -> None:
    line = assert_one_error_line(plan("--project", WEBAPP, "--stack", "plaintext"))
    assert "Pulumi.plaintext.yaml: configuration key 'webapp:apiToken' is declared `secret: true`" in line


def test_bad_policy_config_value(tmp_path: Path) -> None:
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps({"demo-rds-hardening": {"minBackupDays": 90}}))
    line = assert_one_error_line(plan_webapp("--policy-pack-config", str(config)))
    assert line == (f"error: {config}: policy pack 'demo-policies', policy 'demo-rds-hardening': invalid config: "
                    "key 'minBackupDays': 90 is greater than the maximum of 35")


# --- config reaching the program and the policies ------------------------------------------

def test_override_changes_a_stack_value() -> None:
    result = plan_webapp("--json", "-c", "backupRetentionDays=21")
    db = next(r for r in json.loads(result.stdout)["resources"] if r["name"] == "app-db")
    assert db["inputs"]["backupRetentionPeriod"] == 21


def test_project_default_applies(webapp_json: dict[str, Any]) -> None:
    db = next(r for r in webapp_json["resources"] if r["name"] == "app-db")
    assert db["inputs"]["instanceClass"] == "db.t4g.small"  # only Pulumi.yaml sets it


def test_pack_config_changes_level_and_threshold(tmp_path: Path) -> None:
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps({
        "demo-rds-hardening": {"minBackupDays": 30},
        "demo-ssm-parameter-secure": "disabled",
        "demo-rds-password-length": {"enforcementLevel": "mandatory", "minLength": 20},
    }))
    result = plan_webapp("--json", "--policy-pack-config", str(config))
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert [(v["policy"], v["enforcementLevel"]) for v in document["violations"]] == [
        ("demo-rds-hardening", "mandatory"), ("demo-bucket-managed-by-tag", "remediate")]
    assert document["violations"][0]["message"].endswith("backupRetentionPeriod must be at least 30 days, got 14.")
    policies = document["policyPacks"][0]["policies"]
    assert policies["demo-rds-password-length"] == {"enforcementLevel": "mandatory", "severity": "medium",
                                                    "config": {"minLength": 20}}


def test_not_applicable_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps({"demo-rds-hardening": {"exempt": ["public-db"]}}))
    result = plan("--project", INSECURE, "--stack", "test", "--policy-pack", DEMO, "--policy-pack-config", str(config))
    assert result.returncode == 0, result.stderr
    assert ("Not applicable (1):\n  demo-rds-hardening on aws:rds/instance:Instance public-db: "
            "public-db is listed in exempt\n") in result.stdout
    result = plan("--project", INSECURE, "--stack", "test", "--policy-pack", DEMO, "--policy-pack-config", str(config),
                  "--json")
    assert [(n["policy"], n["reason"]) for n in json.loads(result.stdout)["notApplicable"]] == [
        ("demo-rds-hardening", "public-db is listed in exempt")]


def test_more_configs_than_packs() -> None:
    line = assert_one_error_line(plan("--project", INSECURE, "--stack", "test", "--policy-pack-config", "x.json"))
    assert "1 --policy-pack-config file(s) for 0 policy pack(s)" in line
