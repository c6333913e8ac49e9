"""Exemptions in the offline plan: listed, matched to resources, marked, and checked for typos.

The fixture program has one publicly accessible database without backups; the SARK pack finds
plenty wrong with it, which is what makes exempting it observable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sarkops.__main__ import main as sarkops_main
from sarkops.errors import PolicyPackError
from sarkops.plan import render_text, run_plan, to_json
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[3]
PACK = ROOT / "policies"
INSECURE = FIXTURES / "projects" / "insecure"
DB_URN = "urn:pulumi:test::insecure::aws:rds/instance:Instance::public-db"
REASON = "reporting replica reached over a peering link until the VPN lands (NET-77)"


def plan_with(tmp_path: Path, config: dict[str, Any]) -> Any:
    path = tmp_path / "policy-config.json"
    path.write_text(json.dumps(config))
    return run_plan(INSECURE, "test", pack_dirs=[PACK], pack_config_files=[path])


def policies(result: Any, level: str = "mandatory") -> set[str]:
    return {v.policy for v in result.report.violations if v.enforcement_level == level}


def test_resource_exemption_turns_a_violation_into_a_marked_not_applicable(tmp_path: Path) -> None:
    before = plan_with(tmp_path, {})
    assert "aws-rds-instance-disallow-public-access" in policies(before)
    assert before.report.exemptions == []

    result = plan_with(tmp_path, {"aws-rds-instance-disallow-public-access": {
        "exemptions": [{"resource": "public-db", "reason": REASON}]}})
    assert "aws-rds-instance-disallow-public-access" not in policies(result)
    assert policies(before) - policies(result) == {"aws-rds-instance-disallow-public-access"}
    [exempted] = result.report.exempted
    assert (exempted.policy, exempted.urn, exempted.reason) == (
        "aws-rds-instance-disallow-public-access", DB_URN, f"exempted: {REASON}")

    document = to_json(result)
    assert document["exemptions"] == [{"pack": "sark-policies", "policy": "aws-rds-instance-disallow-public-access",
                                       "resource": "public-db", "reason": REASON, "matches": [DB_URN]}]
    assert [n for n in document["notApplicable"] if n["exemption"]] == [{
        "pack": "sark-policies", "policy": "aws-rds-instance-disallow-public-access", "urn": DB_URN,
        "reason": f"exempted: {REASON}", "exemption": True}]
    text = render_text(result)
    # Too long for one line: the reason goes beneath the policy and resource.
    assert ("  aws-rds-instance-disallow-public-access on aws:rds/instance:Instance public-db:\n"
            f"      exempted: {REASON} [exemption]\n") in text
    assert ("Exemptions configured (1):\n  sark-policies: aws-rds-instance-disallow-public-access on "
            f"aws:rds/instance:Instance public-db:\n      {REASON}\n") in text


def test_stack_rule_exemption_by_urn_drops_that_resource_and_is_listed(tmp_path: Path) -> None:
    assert "aws-rds-instance-require-tls" in policies(plan_with(tmp_path, {}))
    result = plan_with(tmp_path, {"aws-rds-instance-require-tls": {"exemptions": [
        {"resource": DB_URN, "reason": REASON}]}})
    assert "aws-rds-instance-require-tls" not in policies(result)
    assert [(e.policy, e.matches) for e in result.report.exemptions] == [("aws-rds-instance-require-tls", (DB_URN,))]
    assert result.report.warnings == []


def test_exemption_naming_no_resource_is_a_warning(tmp_path: Path) -> None:
    result = plan_with(tmp_path, {"aws-rds-instance-disallow-public-access": {
        "exemptions": [{"resource": "public-dbb", "reason": REASON}]}})
    assert "aws-rds-instance-disallow-public-access" in policies(result)
    expected = ("policy pack 'sark-policies': the exemption of 'public-dbb' from "
                "'aws-rds-instance-disallow-public-access' names no resource of this stack (by logical name or "
                "URN), so it exempts nothing; fix the name or remove the entry")
    assert result.report.warnings == [expected]
    assert to_json(result)["warnings"] == [expected]
    text = render_text(result)
    assert (f"  sark-policies: aws-rds-instance-disallow-public-access on public-dbb (names NO resource of this "
            f"stack):\n      {REASON}\n") in text
    warnings = text[text.index("Warnings:\n"):].splitlines()[1:]
    assert " ".join(line.strip() for line in warnings[: warnings.index("")]) == expected


def test_exemption_without_a_real_reason_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyPackError, match=r"policy-config\.json: policy pack 'sark-policies', policy "
                                              r"'aws-rds-instance-disallow-public-access': invalid config: "
                                              r"key 'exemptions\[0\]\.reason': 'ok' is too short"):
        plan_with(tmp_path, {"aws-rds-instance-disallow-public-access": {
            "exemptions": [{"resource": "public-db", "reason": "ok"}]}})


def test_exemption_without_a_reason_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyPackError, match=r"key 'exemptions\[0\]': 'reason' is a required property"):
        plan_with(tmp_path, {"aws-rds-instance-disallow-public-access": {"exemptions": [{"resource": "public-db"}]}})


def test_example_config_on_the_production_stack(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """policies/policy-config.example.json, through the command line as the README shows it."""
    monkeypatch.chdir(ROOT)
    status = sarkops_main(["plan", "--policy-pack", "policies", "--policy-pack-config",
                           "policies/policy-config.example.json", "--json", "--known-outputs"])
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["checkFailures"] == []
    assert status == 0, err
    assert document["summary"]["mandatory"] == 0
    # The only advisories are the stack file's example values (issue #11), reported as config findings.
    assert document["summary"]["advisory"] == document["summary"]["config"] == 8
    assert document["warnings"] == []
    exemptions = {(e["policy"], e["resource"]): e["matches"] for e in document["exemptions"]}
    assert exemptions == {
        ("aws-rds-instance-enable-performance-insights", "sark-production-db-instance"):
            ["urn:pulumi:production::sark-infra::sark:database:Database$aws:rds/instance:Instance::"
             "sark-production-db-instance"],
        ("aws-s3-bucket-enable-versioning", "sark-production-lb-access-logs"):
            ["urn:pulumi:production::sark-infra::sark:loadbalancer:LoadBalancer$aws:s3/bucket:Bucket::"
             "sark-production-lb-access-logs"],
    }
    assert [(n["policy"], n["exemption"]) for n in document["notApplicable"]] == [
        ("aws-rds-instance-enable-performance-insights", True)]
    config = document["policyPacks"][0]["policies"]
    assert config["aws-lb-loadbalancer-enable-waf"]["enforcementLevel"] == "mandatory"
    assert config["aws-kms-key-enable-key-rotation"]["enforcementLevel"] == "remediate"
    assert config["aws-s3-bucket-configure-log-retention"]["config"]["minRetentionDays"] == 90
