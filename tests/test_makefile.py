"""The Makefile as a user meets it: exit statuses through make, one JSON document, ARGS, set-up noise, preview.

Most cases run make against a stand-in virtualenv (``VENV=<tmp>``) whose ``python`` only echoes its
arguments and exits with ``FAKE_STATUS``, so they test make's own behaviour in milliseconds. One
case runs the real plan through make, because only it shows the whole path: set-up, overrides,
a mandatory violation's exit status 1 and a JSON document that parses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")

FAKE_PYTHON = """#!/bin/sh
echo "python-args: $*"
echo "python-stderr" >&2
exit ${FAKE_STATUS:-0}
"""
NOISY_PIP = """#!/bin/sh
echo "Collecting pulumi (set-up noise on stdout)"
echo "$*" >> "$(dirname "$0")/../pip-calls"
"""


def make(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run make in the repository with a clean make environment (no MAKEFLAGS from an outer make)."""
    assert MAKE is not None, "GNU make is not installed"
    base = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}}
    return subprocess.run([MAKE, *args], cwd=ROOT, env={**base, **(env or {})}, capture_output=True, text=True,
                          check=False, timeout=timeout)


def stand_in_venv(directory: Path, python: str = FAKE_PYTHON) -> Path:
    """A directory that looks like a finished .venv to the Makefile: bin/python and a pip that prints noise."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True)
    for name, script in (("python", python), ("pip", NOISY_PIP)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    return directory


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    return stand_in_venv(tmp_path / "venv")


@pytest.mark.parametrize("status", [0, 1, 2])
@pytest.mark.parametrize("target", ["plan", "plan-json"])
def test_make_exits_with_the_plan_status(venv: Path, target: str, status: int) -> None:
    result = make(target, f"VENV={venv}", env={"FAKE_STATUS": str(status)})
    assert result.returncode == status, result.stderr
    assert "python-stderr" in result.stderr
    # make's own report of a failed recipe only for a real error; a violation (1) is the plan's to report.
    assert ("Error 2" in result.stderr) == (status == 2)


def test_plan_json_prints_only_what_the_command_prints(venv: Path) -> None:
    result = make("plan-json", f"VENV={venv}")
    # No echoed command line, no "Entering directory", no pip output: only the command's stdout.
    assert result.stdout == "python-args: -m sarkops plan --stack production --json\n"


def test_set_up_output_goes_to_stderr_and_runs_once(venv: Path) -> None:
    first = make("plan-json", f"VENV={venv}")
    assert first.returncode == 0, first.stderr
    assert "Collecting" not in first.stdout
    assert "Collecting" in first.stderr
    calls = (venv / "pip-calls").read_text().splitlines()
    assert calls == ["install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt",
                     "install --quiet --disable-pip-version-check --no-deps --editable ."]
    stamps = list(venv.glob(".installed-*"))
    assert len(stamps) == 1

    again = make("plan-json", f"VENV={venv}")
    assert again.returncode == 0, again.stderr
    assert "Collecting" not in again.stdout + again.stderr
    assert len((venv / "pip-calls").read_text().splitlines()) == 2


COMPILE_ARGS = "python-args: -m compileall -q sarkops components policies stack_config.py __main__.py"


def test_set_up_byte_compiles_the_project_once(venv: Path) -> None:
    first = make("plan-json", f"VENV={venv}")
    assert first.returncode == 0, first.stderr
    assert COMPILE_ARGS in first.stderr.splitlines()
    assert "compileall" not in first.stdout
    again = make("plan-json", f"VENV={venv}")
    assert "compileall" not in again.stderr


def test_a_module_that_does_not_compile_does_not_stop_the_set_up(tmp_path: Path) -> None:
    """compileall prints the syntax error; the plan then reports it itself, with its exit status 2."""
    python = ('#!/bin/sh\nif [ "$2" = compileall ]; then echo "*** SyntaxError in components/x.py"; exit 1; fi\n'
              'echo "python-args: $*"\nexit 0\n')
    venv = stand_in_venv(tmp_path / "venv", python=python)
    result = make("plan", f"VENV={venv}")
    assert result.returncode == 0, result.stderr
    assert "SyntaxError in components/x.py" in result.stderr
    assert result.stdout == "python-args: -m sarkops plan --stack production\n"
    assert list(venv.glob(".installed-*"))


def test_args_and_stack_reach_the_command(venv: Path) -> None:
    result = make("plan", f"VENV={venv}", "STACK=staging", "ARGS=-c sark-infra:appMinSize=3 --quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "python-args: -m sarkops plan --stack staging -c sark-infra:appMinSize=3 --quiet\n"


def test_dry_run_prints_the_command_without_running_it(venv: Path) -> None:
    result = make("-n", "plan", f"VENV={venv}", env={"FAKE_STATUS": "1"})
    assert result.returncode == 0, result.stderr
    assert f"{venv}/bin/python -m sarkops plan --stack production" in result.stdout
    assert "python-args" not in result.stdout


def test_other_goals_keep_makes_usual_status(venv: Path) -> None:
    """Only plan goals run in question mode: a failing lint beside a plan is still make's error 2."""
    result = make("lint", "plan", f"VENV={venv}")
    assert result.returncode == 2
    assert "python-args" not in result.stdout  # make stopped at the failed lint (no ruff in the stand-in)


def test_preview_without_the_pulumi_cli_says_what_to_install(tmp_path: Path) -> None:
    path = f"{tmp_path}:/usr/bin:/bin"
    assert shutil.which("pulumi", path=path) is None, "this test needs a PATH without the Pulumi CLI"
    for target in ("preview", "up"):
        result = make(target, env={"PATH": path})
        assert result.returncode == 2
        assert result.stdout == ""
        assert f"make {target} needs the Pulumi CLI" in result.stderr
        assert "https://www.pulumi.com/docs/install/" in result.stderr
        assert "`make plan` runs the offline plan" in result.stderr


def test_real_plan_through_make_exits_1_on_a_mandatory_violation_with_one_json_document(tmp_path: Path) -> None:
    """The real plan, through make: an override that breaks a mandatory rule, as ``make plan-json ARGS=...``."""
    python = f'#!/bin/sh\nexec "{sys.executable}" "$@"\n'
    venv = stand_in_venv(tmp_path / "venv", python=python)
    result = make("plan-json", f"VENV={venv}", "ARGS=-c sark-infra:environment=development", timeout=120)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert document["summary"]["passed"] is False
    assert document["summary"]["mandatory"] >= 1
    mandatory = {v["policy"] for v in document["violations"] if v["enforcementLevel"] == "mandatory"}
    assert "aws-ssm-parameter-configure-app-security-settings" in mandatory
    assert "make: ***" not in result.stderr  # a violation is the plan's to report, not a make error
