"""``sarkops`` as an installed command: the console script from any directory, ``--version``, and the hint
a user gets when running it with a Python that lacks the dependencies."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sarkops.__main__ import REQUIRED_MODULES, missing_dependencies_message, missing_modules

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "sarkops"
"""The console script `make venv` installs beside the venv's python ([project.scripts] in pyproject.toml)."""


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


def test_console_script_plans_a_project_from_another_directory(tmp_path: Path) -> None:
    assert SCRIPT.exists(), f"{SCRIPT} is missing: `make venv` installs the project (pip install --editable .)"
    result = run([str(SCRIPT), "plan", "--project", str(ROOT / "tests/fixtures/projects/webapp"), "--stack", "test",
                  "--policy-pack", str(ROOT / "tests/fixtures/packs/demo"), "--json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["project"], document["stack"], document["summary"]["resources"]) == ("webapp", "test", 13)


def test_version_is_the_distributions(tmp_path: Path) -> None:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    assert project["scripts"]["sarkops"] == "sarkops.__main__:main"
    result = run([str(SCRIPT), "--version"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"sarkops {project['version']} (sark-infra)\n"


def test_outside_the_venv_it_says_which_command_to_use() -> None:
    """``python -S`` has no site-packages: the same situation as a system Python without the pinned packages."""
    result = run([sys.executable, "-S", "-m", "sarkops", "plan", "--stack", "production"], cwd=ROOT)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "No module named" not in result.stderr
    first, hint = result.stderr.strip().splitlines()
    assert first.startswith(f"error: sarkops needs its dependencies, and {sys.executable} cannot import 'pulumi'")
    venv = ROOT / ".venv"
    assert hint == (f"  Run {venv}/bin/sarkops plan --stack production (or {venv}/bin/python -m sarkops), "
                    f"or `source {venv}/bin/activate` first.")


def test_help_still_works_without_the_dependencies() -> None:
    result = run([sys.executable, "-S", "-m", "sarkops", "--help"], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "plan" in result.stdout
    assert "verify" in result.stdout


def test_inside_the_venv_nothing_is_missing() -> None:
    assert missing_modules() == []
    assert set(REQUIRED_MODULES) >= {"pulumi", "pulumi_policy", "boto3"}


def test_the_hint_without_a_venv_says_how_to_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sarkops.__main__ as entry

    monkeypatch.setattr(entry, "ROOT", tmp_path)
    message = missing_dependencies_message(["pulumi", "boto3"])
    assert "cannot import 'pulumi', 'boto3'" in message
    assert f"Create it with `make venv` in {tmp_path}" in message
    assert f"then run {tmp_path}/.venv/bin/sarkops." in message
