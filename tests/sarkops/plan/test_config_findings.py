"""Example config values (the program's `placeholders` output) are advisory findings of source `config`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sarkops.errors import ProgramError
from sarkops.plan import PlanResult, render_text, run_plan, to_json
from sarkops.plan.findings import findings

ROOT = Path(__file__).resolve().parents[3]

PROGRAM = """\
import pulumi
import pulumi_aws as aws

config = pulumi.Config()
aws.s3.Bucket("assets")
pulumi.export("placeholders", [
    f"small:domain: {json.dumps(config.require('domain'))} is a domain reserved for examples; set before `pulumi up`",
    {"key": "small:emails", "value": "ops@example.org", "why": "an example address"},
])
"""


def project_with_placeholders(tmp_path: Path, output: str = "") -> Path:
    (tmp_path / "Pulumi.yaml").write_text(
        "name: small\nruntime: python\nconfig:\n  domain:\n    type: string\n    default: app.example.com\n"
        "  emails:\n    type: array\n")
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  aws:region: us-east-1\n  small:emails:\n    - real@sark.dev\n    - ops@example.org\n")
    program = PROGRAM if not output else f"import pulumi\npulumi.export('placeholders', {output})\n"
    (tmp_path / "__main__.py").write_text("import json\n" + program)
    return tmp_path


def test_each_example_value_is_one_advisory_at_its_config_line(production_preview: PlanResult) -> None:
    config = [f for f in findings(production_preview) if f.source == "config"]
    stack_lines = (ROOT / "Pulumi.production.yaml").read_text(encoding="utf-8").splitlines()
    assert len(config) == len(production_preview.recording.outputs["placeholders"]) == 8
    for finding in config:
        assert finding.level == "advisory"
        assert finding.urn == ""
        key = finding.rule
        assert finding.message.startswith(f"{key}: \"")
        assert finding.message.endswith("set before `pulumi up`")
        value = json.JSONDecoder().raw_decode(finding.message[len(key) + 2:])[0]
        assert finding.file == "Pulumi.production.yaml"
        line = stack_lines[finding.line - 1]
        # The key's own line, or for a list the item that holds the example value.
        assert line.strip() in (f"{key}: {value}", f"- {value}"), (finding, line)
    keys = {f.rule for f in config}
    assert {"sark-infra:hostedZoneId", "sark-infra:domainName", "sark-infra:sarkRepositoryUrl"} <= keys
    assert not production_preview.failed


def test_counted_as_advisory_in_json_and_no_longer_a_warning(production_preview: PlanResult) -> None:
    document = to_json(production_preview)
    policy_advisories = len(production_preview.report.at_level("advisory"))
    assert document["summary"]["config"] == 8
    assert document["summary"]["advisory"] == policy_advisories + 8
    assert document["summary"]["passed"] is True
    in_json = [f for f in document["findings"] if f["source"] == "config"]
    assert [f["level"] for f in in_json] == ["advisory"] * 8
    assert not any("set before `pulumi up`" in w for w in document["warnings"])
    # The program still logs them (a real `pulumi preview` shows them as warnings).
    assert sum("set before `pulumi up`" in message for _, message in production_preview.recording.logs) == 8


def test_string_and_object_entries_with_default_and_list_positions(tmp_path: Path) -> None:
    result = run_plan(project_with_placeholders(tmp_path), "dev")
    config = [f for f in findings(result) if f.source == "config"]
    assert [(f.rule, f.file, f.line) for f in config] == [
        ("small:domain", "Pulumi.yaml", 4),          # the project default: its declaration
        ("small:emails", "Pulumi.dev.yaml", 5),      # the list item holding the example
    ]
    assert config[0].message == ('small:domain: "app.example.com" is a domain reserved for examples; '
                                 "set before `pulumi up`")
    assert config[1].message == 'small:emails: "ops@example.org" is an example address; set before `pulumi up`'
    assert yaml.safe_load((tmp_path / "Pulumi.dev.yaml").read_text())["config"]["small:emails"][1] == "ops@example.org"
    text = render_text(result)
    assert "set before `pulumi up`" in text


@pytest.mark.parametrize("output", ["'not a list'", "[42]", "pulumi.Output.secret(['x: 1 is y'])"])
def test_a_malformed_output_is_a_clear_error(tmp_path: Path, output: str) -> None:
    result = run_plan(project_with_placeholders(tmp_path, output), "dev")
    with pytest.raises(ProgramError, match=r"stack output `placeholders`"):
        findings(result)


def test_the_plan_still_passes_with_exit_0(tmp_path: Path) -> None:
    project = project_with_placeholders(tmp_path)
    done = subprocess.run([sys.executable, "-m", "sarkops", "plan", "--project", str(project), "--stack", "dev",
                           "--json"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["summary"]["advisory"], document["summary"]["config"]) == (2, 2)
