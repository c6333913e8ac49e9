"""scripts/ci/offline_plan.py: the plan JSON is kept, summarised as Markdown, and its exit status passed on."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ci" / "offline_plan.py"


def run(tmp_path: Path, *args: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    summary = tmp_path / "summary.md"
    return subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "plan.json"), "--python", python,
                           *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(summary), "LANG": "C.UTF-8"})


def test_real_plan_with_mandatory_violations(tmp_path: Path) -> None:
    """Runs the real ``sarkops plan`` on the deliberately insecure fixture project."""
    result = run(tmp_path, "--stack", "test", "--", "--project", "tests/fixtures/projects/insecure",
                 "--policy-pack", "tests/fixtures/packs/demo")

    assert result.returncode == 1, result.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["summary"]["passed"] is False
    summary = (tmp_path / "summary.md").read_text().splitlines()
    assert summary[0] == "### Offline plan: insecure / test — FAILED (mandatory violations)"
    assert summary[2].startswith("1 resources; 2 mandatory and 1 advisory violations; 0 remediated.")
    rows = [line for line in summary if line.startswith("| mandatory") or line.startswith("| advisory")]
    assert rows[0] == ("| mandatory | demo-rds-hardening | public-db | RDS instances are private and keep backups. "
                       "RDS instance must not be publicly accessible. |")
    assert [row.split(" | ")[0] for row in rows] == ["| mandatory", "| mandatory", "| advisory"]


def test_plan_that_cannot_run(tmp_path: Path) -> None:
    result = run(tmp_path, "--stack", "nope", "--", "--project", "tests/fixtures/projects/insecure")

    assert result.returncode == 2
    assert (tmp_path / "summary.md").read_text() == (
        "### Offline plan: stack nope — could not run (exit 2); see the job log\n")
    assert "error:" in result.stderr


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sark_offline_plan", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("message", "cell"), [("a | b\nc", "a \\| b c"), ("  spaced   out ", "spaced out")])
def test_table_cells_are_escaped(message: str, cell: str) -> None:
    markdown = load().render_summary({"project": "p", "stack": "s", "summary": {"passed": True, "resources": 1},
                                      "violations": [{"enforcementLevel": "advisory", "policy": "x",
                                                      "urn": "urn:pulumi:s::p::t::r", "message": message}]})

    assert markdown.splitlines()[-1] == f"| advisory | x | r | {cell} |"


def test_long_reports_are_cut(tmp_path: Path) -> None:
    module = load()
    violations = [{"enforcementLevel": "advisory", "policy": f"p{i:03d}", "urn": "", "message": "m"}
                  for i in range(module.MAX_ROWS + 7)]

    lines = module.render_summary({"project": "p", "stack": "s", "summary": {"passed": True},
                                   "violations": violations}).splitlines()

    assert sum(line.startswith("| advisory") for line in lines) == module.MAX_ROWS
    assert lines[-1] == "… and 7 more in plan.json."
