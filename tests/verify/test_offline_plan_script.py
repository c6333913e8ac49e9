"""scripts/ci/offline_plan.py: the plan JSON is kept, summarised as Markdown, and its exit status passed on."""

from __future__ import annotations

import importlib.util
import json
import shutil
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


# --- the pull request's base commit ----------------------------------------------------------

BASE_PROGRAM = "import pulumi_aws as aws\n\naws.s3.Bucket('assets', tags={'team': 'a'})\n"
HEAD_PROGRAM = ("import pulumi_aws as aws\n\naws.s3.Bucket('assets', tags={'team': 'b'})\n"
                "aws.rds.Instance('db', engine='postgres', instance_class='db.t4g.micro', allocated_storage=20,\n"
                "                 username='app', manage_master_user_password=True, publicly_accessible=True,\n"
                "                 backup_retention_period=0, skip_final_snapshot=True)\n")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo,
                          capture_output=True, text=True, check=True)
    return done.stdout


def repository(tmp_path: Path, base_program: str) -> Path:
    """A git repository with a small project and the demo pack: the base commit, then the head commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "Pulumi.yaml").write_text("name: small\nruntime: python\n")
    (repo / ".gitignore").write_text("__pycache__/\n")
    (repo / "Pulumi.dev.yaml").write_text("config:\n  aws:region: us-east-1\n")
    shutil.copytree(ROOT / "tests" / "fixtures" / "packs" / "demo", repo / "policies")
    (repo / "__main__.py").write_text(base_program)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    (repo / "__main__.py").write_text(HEAD_PROGRAM)
    git(repo, "commit", "-qam", "head")
    return repo


def run_in(repo: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The script in ``repo``, with this checkout's sarkops importable (the repository has none)."""
    return subprocess.run([sys.executable, str(SCRIPT), "--stack", "dev", "--out", str(tmp_path / "plan.json"),
                           *args], cwd=repo, capture_output=True, text=True, check=False, timeout=240,
                          env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT)})


def test_base_ref_plans_the_base_commit_and_the_comment_shows_the_comparison(tmp_path: Path) -> None:
    repo = repository(tmp_path, BASE_PROGRAM)
    result = run_in(repo, tmp_path, "--base-ref", "HEAD~1", "--sarif", str(tmp_path / "plan.sarif"),
                    "--comment", str(tmp_path / "comment.md"))

    assert result.returncode == 1, result.stderr  # the head adds a public database: mandatory violations
    base = json.loads((tmp_path / "base-plan.json").read_text())
    assert [r["name"] for r in base["resources"]] == ["assets"]  # the base commit's own program
    plan = json.loads((tmp_path / "plan.json").read_text())
    urn = "urn:pulumi:dev::small::{}"
    assert plan["baseline"]["added"] == [urn.format("aws:rds/instance:Instance::db")]
    assert plan["baseline"]["changed"] == [{"urn": urn.format("aws:s3/bucket:Bucket::assets"), "inputs": ["tags"]}]
    assert {v["policy"] for v in plan["baseline"]["newViolations"]} >= {"demo-rds-hardening"}
    comment = (tmp_path / "comment.md").read_text()
    assert comment == result.stdout  # the PR comment is the summary (stdout outside GitHub Actions)
    assert "**Against the baseline**: 1 added, 0 removed, 1 changed;" in comment
    assert "| added | db |  |" in comment
    assert "| changed | assets | tags |" in comment
    sarif = json.loads((tmp_path / "plan.sarif").read_text())
    locations = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                 for r in sarif["runs"][0]["results"]}
    assert locations == {"__main__.py"}
    # The base checkout is gone again.
    assert git(repo, "worktree", "list").count("\n") == 1
    assert git(repo, "status", "--porcelain") == ""


def test_a_base_that_cannot_be_planned_leaves_no_baseline_and_says_why(tmp_path: Path) -> None:
    repo = repository(tmp_path, "raise RuntimeError('broken at the base')\n")
    result = run_in(repo, tmp_path, "--base-ref", "HEAD~1")

    assert result.returncode == 1, result.stderr  # the head's own status
    assert "baseline" not in json.loads((tmp_path / "plan.json").read_text())
    lines = result.stdout.splitlines()
    assert lines[0].startswith("### Offline plan: small / dev — FAILED")
    assert lines[2] == ("> No comparison with the base branch (HEAD~1): the base commit's plan could not run "
                        "(exit 2); see the job log.")
    assert "warning: no baseline:" in result.stderr
    assert git(repo, "worktree", "list").count("\n") == 1


def test_base_ref_and_baseline_exclude_each_other(tmp_path: Path) -> None:
    result = run(tmp_path, "--base-ref", "HEAD", "--baseline", "plan.json")
    assert result.returncode == 2
    assert "--base-ref and --baseline both give the baseline; use one" in result.stderr


def test_example_config_values_and_policies_not_run_are_listed_once() -> None:
    plan = {"project": "p", "stack": "s", "summary": {"passed": True, "resources": 1, "advisory": 2, "config": 1},
            "violations": [{"pack": "k", "policy": "x", "enforcementLevel": "advisory", "urn": "urn:a::r",
                            "message": "can't run policy 'x'"}],
            "notRun": [{"pack": "k", "policy": "x", "urn": "urn:a::r", "reason": "unknown .y"}],
            "findings": [{"source": "config", "level": "advisory", "rule": "p:domain", "message":
                          'p:domain: "a.example.com" is an example; set before `pulumi up`',
                          "file": "Pulumi.s.yaml", "line": 7}]}
    lines = load().render_summary(plan).splitlines()
    assert lines[2].startswith("1 resources; 0 mandatory and 2 advisory violations (1 of them example config values);")
    assert '| p:domain: "a.example.com" is an example; set before `pulumi up` | Pulumi.s.yaml:7 |' in lines
    assert "| x | r | unknown .y |" in lines
    assert not any(line.startswith("| advisory |") for line in lines)  # not run: not also a violation row
