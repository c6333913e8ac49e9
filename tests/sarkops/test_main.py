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


FROZEN_RUN = """
import gc, json, sys
from sarkops.__main__ import main
sys.argv = ["sarkops", *json.loads(sys.argv[1])]
status = main()
print(json.dumps({"status": status, "frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects()),
                  "enabled": gc.isenabled()}), file=sys.stderr)
"""


@pytest.mark.parametrize(("project", "status"), [("webapp", 0), ("insecure", 1)])
def test_the_process_freezes_its_heap_before_exit_and_keeps_status_and_output(project: str, status: int) -> None:
    """Teardown's full collection has nothing left to walk; the report and the exit status are intact."""
    argv = ["plan", "--project", f"tests/fixtures/projects/{project}", "--stack", "test", "--policy-pack",
            "tests/fixtures/packs/demo", "--json"]
    result = run([sys.executable, "-c", FROZEN_RUN, json.dumps(argv)], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    after = json.loads(result.stderr.strip().splitlines()[-1])
    assert after["status"] == status
    assert not after["enabled"]
    # Everything the plan left alive is frozen: a few objects created since, against the whole heap.
    assert after["frozen"] > 100_000
    assert after["tracked"] < 1_000
    document = json.loads(result.stdout)  # flushed, whole
    assert document["summary"]["passed"] is (status == 0)


def test_a_caller_passing_argv_keeps_its_collector(capsys: pytest.CaptureFixture[str]) -> None:
    """Only the whole process (the script, ``python -m sarkops``) freezes; ``main(argv)`` in a program does not."""
    import gc

    from sarkops.__main__ import main

    with pytest.raises(SystemExit):
        main(["--version"])
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()
    assert "sarkops" in capsys.readouterr().out
