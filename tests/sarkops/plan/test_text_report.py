"""The human report: findings first, marked tree, shortened values, --quiet, colour only on a terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sarkops.plan import PlanResult, render_text, run_plan, to_json
from sarkops.plan.render.text import WIDTH
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[3]
WEBAPP = FIXTURES / "projects" / "webapp"
DEMO = FIXTURES / "packs" / "demo"
INSECURE = ["--project", "tests/fixtures/projects/insecure", "--stack", "test", "--policy-pack",
            "tests/fixtures/packs/demo"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def sarkops(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sarkops", "plan", *args], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=120, env={**os.environ, **(env or {})})


def on_a_terminal(*args: str, env: dict[str, str]) -> str:
    """stdout of `sarkops plan ARGS` when stdout is a terminal (a pseudo-terminal)."""
    controller, terminal = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    process = subprocess.Popen([sys.executable, "-m", "sarkops", "plan", *args], cwd=ROOT, stdout=terminal,
                               stderr=subprocess.DEVNULL, env={**clean, "TERM": "xterm", **env})
    os.close(terminal)
    chunks = []
    while True:
        ready, _, _ = select.select([controller], [], [], 120)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert process.wait(timeout=60) == 1
    return b"".join(chunks).decode()


def test_no_line_is_longer_than_the_width_and_long_values_stay_whole_in_json(
        production_preview: PlanResult) -> None:
    text = render_text(production_preview)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    alarms = next(line for line in lines if line.startswith("  alarmNames: "))
    assert alarms.endswith("...")
    assert len(alarms) == WIDTH
    document = to_json(production_preview)
    assert len(json.dumps(document["outputs"]["alarmNames"])) > WIDTH
    assert all(not name.endswith("...") for name in document["outputs"]["alarmNames"])
    assert max(len(line) for line in render_text(production_preview, quiet=True).splitlines()) <= WIDTH


def test_long_messages_are_wrapped_not_lost(tmp_path: Path) -> None:
    """A long finding is wrapped under its heading, up to four lines, and ends in `...` only beyond that."""
    from sarkops.plan.findings import Finding
    from sarkops.plan.render.text import Style, _finding_lines

    words = " ".join(f"word{i}" for i in range(30))
    lines = _finding_lines(Finding("policy", "mandatory", "", words, rule="r"), Style(enabled=False))
    assert lines[0] == "  MANDATORY r"
    assert " ".join(line.strip() for line in lines[1:]) == words
    very_long = " ".join(f"word{i}" for i in range(200))
    lines = _finding_lines(Finding("policy", "advisory", "", very_long, rule="r"), Style(enabled=False))
    assert len(lines) == 1 + 4
    assert lines[-1].endswith("...")
    assert max(len(line) for line in lines) <= WIDTH


def test_findings_and_summary_come_before_the_tree(production_preview: PlanResult) -> None:
    text = render_text(production_preview)
    lines = text.splitlines()
    assert lines[2].startswith("Summary: 0 mandatory, 28 advisory (8 config),")
    assert text.index("Findings (8): 0 fail the plan, 8 advisory") < text.index("Resources (255;")
    assert text.index("  advisory  config sark-infra:hostedZoneId  at Pulumi.production.yaml:") < \
        text.index("Resources (255;")
    # Nothing about example values is left among the warnings.
    assert "Warnings:" not in text


def test_tree_marks_the_resources_with_findings(production_preview: PlanResult) -> None:
    text = render_text(production_preview)
    not_run = {n.urn.rsplit("::", 1)[-1] for n in production_preview.report.not_run}
    marked = {line.split()[2]: line for line in text.splitlines() if line[:3] == "  ?"}
    assert set(marked) == not_run
    assert marked["sark-production-timescale-instance"].endswith("  <- 2 not run")


def test_tree_marks_a_failing_resource_and_the_operation_against_the_baseline(tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    before = run_plan(WEBAPP, "test", pack_dirs=[DEMO])
    base.write_text(json.dumps(to_json(before)))
    after = run_plan(WEBAPP, "test", pack_dirs=[DEMO], overrides=["publiclyAccessible=true"], baseline_file=base)
    text = render_text(after)
    assert "; + added, ~ changed, - removed against the baseline):" in text
    line = next(line for line in text.splitlines() if "Instance app-db [protected]" in line)
    assert line == " ~x   aws:rds/instance:Instance app-db [protected]  <- 1 mandatory, 1 not run"
    unchanged = next(line for line in text.splitlines() if "aws:ec2/vpc:Vpc app-vpc" in line)
    assert unchanged.startswith("      aws:ec2/vpc:Vpc")


def test_quiet_prints_findings_and_summary_only() -> None:
    result = sarkops(*INSECURE, "--quiet")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert out.startswith("Findings (3): 2 fail the plan, 1 advisory\n")
    assert out.rstrip().endswith("; 1 resources;\n  FAILED: mandatory policy violations")
    for absent in ("Resources (", "Outputs", "Policy packs:", "Offline plan of"):
        assert absent not in out


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_quiet_passes_through_make(tmp_path: Path) -> None:
    from tests.test_makefile import make, stand_in_venv

    venv = stand_in_venv(tmp_path / "venv", python=f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    result = make("plan", f"VENV={venv}", "ARGS=--quiet", timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Findings (8): 0 fail the plan, 8 advisory\n")
    assert "Resources (" not in result.stdout


def test_colour_on_a_terminal_only_and_never_under_no_color() -> None:
    coloured = on_a_terminal(*INSECURE, env={})
    assert "\x1b[31;1mMANDATORY\x1b[0m demo-rds-hardening" in coloured
    assert "\x1b[31;1mFAILED\x1b[0m" in coloured
    assert "\x1b[31;1mx\x1b[0m aws:rds/instance:Instance public-db" in coloured
    # The same report once the colours are taken out: colour adds nothing else and no width.
    piped = sarkops(*INSECURE)
    assert ANSI.sub("", coloured).replace("\r\n", "\n") == piped.stdout
    assert "\x1b[" not in piped.stdout
    assert "\x1b[" not in on_a_terminal(*INSECURE, env={"NO_COLOR": "1"})
