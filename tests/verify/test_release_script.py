"""scripts/ci/release.py, run as the workflow runs it, with fake ``pulumi`` and ``python`` on PATH.

The fakes append their argv to a log and behave as a scenario says: the stack history to report,
the traffic step at which ``pulumi up`` or ``sarkops verify`` fails, the step at which an alarm
fires. Each test asserts the exact command sequence, rollback included.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ci" / "release.py"

FAKE = r'''
import json, os, sys
from pathlib import Path

state = Path(os.environ["FAKE_DIR"])
scenario = json.loads((state / "scenario.json").read_text())
tool = Path(sys.argv[0]).name
args = sys.argv[1:]
with (state / "calls.jsonl").open("a") as log:
    log.write(json.dumps([tool, *args]) + "\n")
weight_file = state / "weight"

def config(name):
    for i, a in enumerate(args):
        if a == "-c" and args[i + 1].startswith(name + "="):
            return args[i + 1].split("=", 1)[1]

if tool == "pulumi":
    if args[:2] == ["stack", "history"]:
        print(json.dumps(scenario.get("history", [])))
    elif args[:2] == ["stack", "output"]:
        weight = weight_file.read_text() if weight_file.exists() else "100"
        print(json.dumps({"serviceUrl": "https://sark.example.com", "weight": weight}))
    elif args[0] == "up":
        weight = config("newVersionTrafficPercent")
        if weight in scenario.get("up_fails_at", []):
            sys.stderr.write("error: update failed\n")
            sys.exit(255)
        weight_file.write_text(weight)
    sys.exit(0)

# python -m sarkops verify ...
weight = weight_file.read_text() if weight_file.exists() else "?"
if "--only" in args:
    failing = weight in scenario.get("alarm_at", [])
else:
    failing = weight in scenario.get("verify_fails_at", [])
if "--json" in args:
    status = "FAIL" if failing else "PASS"
    item = {"id": "alarms-quiet", "status": status, "evidence": "at " + weight, "fix": "roll back" if failing else None}
    print(json.dumps({"status": status, "items": [item]}))
sys.exit(1 if failing else 0)
'''


def history(app: str, weight: int = 100, previous: str = "", result: str = "succeeded") -> list[dict[str, Any]]:
    """A stack history whose newest successful update ran with this config (plus older noise)."""
    def entry(version: int, kind: str, result: str, app: str, *, weight: int, previous: str) -> dict[str, Any]:
        return {"version": version, "kind": kind, "result": result, "startTime": f"2026-11-{version:02d}T10:00:00Z",
                "message": "", "environment": {},
                "config": {"sark-infra:appVersion": {"value": app, "secret": False},
                           "sark-infra:previousAppVersion": {"value": previous, "secret": False},
                           "sark-infra:newVersionTrafficPercent": {"value": str(weight), "secret": False},
                           "sark-infra:dbPassword": {"secret": True}}}
    return [entry(12, "preview", "succeeded", "v9.9.9", weight=10, previous=app),  # previews do not count
            entry(11, "update", "failed", "v9.9.9", weight=50, previous=app),      # nor failed updates
            entry(10, "update", result, app, weight=weight, previous=previous),
            entry(9, "update", "succeeded", "v0.0.1", weight=100, previous="")]


class Fakes:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "fake"
        self.bin = self.dir / "bin"
        self.bin.mkdir(parents=True)
        for tool in ("pulumi", "python"):
            path = self.bin / tool
            path.write_text(f"#!{sys.executable}\n{FAKE}", encoding="utf-8")
            path.chmod(0o755)
        self.work = tmp_path / "work"
        self.work.mkdir()

    def run(self, scenario: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
        (self.dir / "scenario.json").write_text(json.dumps(scenario), encoding="utf-8")
        env = {"PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}", "FAKE_DIR": str(self.dir),
               "LANG": "C.UTF-8"}
        return subprocess.run([sys.executable, str(SCRIPT), "--watch-seconds", "0", *args], cwd=self.work,
                              capture_output=True, text=True, check=False, timeout=60, env=env)

    def calls(self) -> list[list[str]]:
        log = self.dir / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    return Fakes(tmp_path)


HISTORY = ["pulumi", "stack", "history", "--json", "--stack", "production"]
OUTPUT = ["pulumi", "stack", "output", "--json", "--stack", "production"]
VERIFY = ["python", "-m", "sarkops", "verify", "--stack", "production", "--outputs", "outputs.json"]
ALARMS = [*VERIFY, "--only", "alarms-quiet"]
FINAL = [*VERIFY, "--json"]


def up(weight: int, previous: str = "v1.2.0", tag: str = "v1.3.0") -> list[str]:
    rest = f" (rest on {previous})" if previous else ""
    return ["pulumi", "up", "--yes", "--non-interactive", "--stack", "production", "--policy-pack", "policies",
            "--message", f"release {tag}: {weight}% of traffic{rest}", "-c", f"appVersion={tag}",
            "-c", f"previousAppVersion={previous}", "-c", f"newVersionTrafficPercent={weight}"]


def step(weight: int, *, watch: bool = True) -> list[list[str]]:
    return [up(weight), OUTPUT, *([ALARMS] if watch else []), VERIFY]


def test_canary_release(fakes: Fakes) -> None:
    result = fakes.run({"history": history("v1.2.0")}, "--tag", "v1.3.0")

    assert result.returncode == 0, result.stdout + result.stderr
    assert fakes.calls() == [HISTORY,
                             up(0), OUTPUT, VERIFY,
                             *step(10), *step(50),
                             up(100), OUTPUT, FINAL]
    report = json.loads((fakes.work / "verify-report.json").read_text())
    assert report["items"][0]["evidence"] == "at 100"  # the final report is taken at 100 %
    assert json.loads((fakes.work / "outputs.json").read_text())["weight"] == "100"
    assert "PASS  alarms-quiet: at 100" in result.stdout


def test_verify_failure_at_50_rolls_back(fakes: Fakes) -> None:
    result = fakes.run({"history": history("v1.2.0"), "verify_fails_at": ["50"]}, "--tag", "v1.3.0")

    assert result.returncode == 1
    assert fakes.calls() == [HISTORY, up(0), OUTPUT, VERIFY, *step(10), *step(50),
                             up(0), OUTPUT, VERIFY]   # rollback, then verify the rolled-back stack
    assert ("error: release v1.3.0 rolled back to v1.2.0: verify failed with v1.3.0 taking 50% of traffic; "
            "v1.2.0 is healthy") in result.stdout


def test_alarm_while_watching_10_percent_rolls_back(fakes: Fakes) -> None:
    result = fakes.run({"history": history("v1.2.0"), "alarm_at": ["10"]}, "--tag", "v1.3.0")

    assert result.returncode == 1
    assert fakes.calls() == [HISTORY, up(0), OUTPUT, VERIFY, up(10), OUTPUT, ALARMS, up(0), OUTPUT, VERIFY]
    assert "an alarm fired while v1.3.0 took 10% of traffic" in result.stdout


def test_final_verify_failure_rolls_back(fakes: Fakes) -> None:
    result = fakes.run({"history": history("v1.2.0"), "verify_fails_at": ["100"]}, "--tag", "v1.3.0")

    assert result.returncode == 1
    assert fakes.calls() == [HISTORY, up(0), OUTPUT, VERIFY, *step(10), *step(50), up(100), OUTPUT, FINAL,
                             up(0), OUTPUT, VERIFY]


def test_failed_up_mid_canary_rolls_back(fakes: Fakes) -> None:
    result = fakes.run({"history": history("v1.2.0"), "up_fails_at": ["50"]}, "--tag", "v1.3.0")

    assert result.returncode == 1
    assert fakes.calls() == [HISTORY, up(0), OUTPUT, VERIFY, *step(10), up(50), up(0), OUTPUT, VERIFY]


def test_rollback_that_fails_says_to_do_it_by_hand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    release = load_release_module()
    calls: list[str] = []

    class Scripted(release.Release):  # type: ignore[name-defined,misc]
        def up(self, previous: str, weight: int) -> bool:
            calls.append(f"up {weight}")
            return weight != 0 or len(calls) == 1  # the first 0 % deployment works, the rollback does not

        def verify(self, *extra: str, stdout: Path | None = None) -> bool:
            calls.append("verify " + " ".join(extra))
            return "alarms-quiet" not in extra

    outcome = make(release, Scripted, tmp_path).canary_and_rollback()

    assert outcome == 1
    assert calls == ["up 0", "verify ", "up 10", "verify --only alarms-quiet", "up 0"]
    assert capsys.readouterr().out.splitlines()[-1] == (
        "error: ROLLBACK FAILED for v1.3.0: set newVersionTrafficPercent=0 by hand "
        "(`pulumi up --stack production -c newVersionTrafficPercent=0`)")


def test_gate_failure_moves_no_traffic(fakes: Fakes) -> None:
    result = fakes.run({"history": history("v1.2.0"), "up_fails_at": ["0"]}, "--tag", "v1.3.0")

    assert result.returncode == 1
    # The 0 % deployment failed (release gate): the traffic rule never changed, nothing to roll back.
    assert fakes.calls() == [HISTORY, up(0)]
    assert ("error: release v1.3.0 stopped before taking traffic: deploying v1.3.0 with no traffic failed "
            "(release gate: migrations or /health); v1.2.0 still serves all of it") in result.stdout


def test_first_deployment_has_no_canary(fakes: Fakes) -> None:
    result = fakes.run({"history": []}, "--tag", "v1.0.0")

    assert result.returncode == 0, result.stdout + result.stderr
    assert fakes.calls() == [HISTORY, up(100, previous="", tag="v1.0.0"), OUTPUT, FINAL]


def test_release_after_a_rollback_starts_from_the_serving_release(fakes: Fakes) -> None:
    rolled_back = history("v1.3.0", weight=0, previous="v1.2.0")

    result = fakes.run({"history": rolled_back}, "--tag", "v1.3.1")

    assert result.returncode == 0, result.stdout + result.stderr
    assert fakes.calls()[1] == up(0, previous="v1.2.0", tag="v1.3.1")


def test_rerun_of_a_rolled_back_tag_runs_the_canary_again(fakes: Fakes) -> None:
    result = fakes.run({"history": history("v1.3.0", weight=0, previous="v1.2.0")}, "--tag", "v1.3.0")

    assert result.returncode == 0, result.stdout + result.stderr
    assert fakes.calls() == [HISTORY, up(0), OUTPUT, VERIFY, *step(10), *step(50), up(100), OUTPUT, FINAL]


def test_rerun_for_the_serving_tag_only_verifies(fakes: Fakes) -> None:
    result = fakes.run({"history": history("v1.3.0", previous="v1.2.0")}, "--tag", "v1.3.0")

    assert result.returncode == 0
    assert fakes.calls() == [HISTORY, OUTPUT, FINAL]


@pytest.mark.parametrize(("scenario_history", "message"), [
    (history("v1.3.0", weight=50, previous="v1.2.0"),
     "error: a rollout is in progress: v1.3.0 takes 50% of traffic next to v1.2.0; finish it "
     "(`pulumi up -c newVersionTrafficPercent=100`) or roll it back (`-c newVersionTrafficPercent=0`) before "
     "releasing again"),
    (history("v1.4.0", weight=0, previous="v1.3.0"),
     "error: v1.3.0 already serves all traffic, as previousAppVersion after v1.4.0 was rolled back; nothing to "
     "release"),
])
def test_cannot_start(fakes: Fakes, scenario_history: list[dict[str, Any]], message: str) -> None:
    result = fakes.run({"history": scenario_history}, "--tag", "v1.3.0")

    assert result.returncode == 2
    assert fakes.calls() == [HISTORY]
    assert result.stdout.strip().splitlines()[-1] == message


@pytest.mark.parametrize(("args", "message"), [
    (["--tag", "v1.3.0; rm -rf /"], "--tag 'v1.3.0; rm -rf /': expected a git tag such as v1.3.0"),
    (["--tag", "v1.3.0", "--steps", "50,10,100"], "--steps '50,10,100': expected rising percentages ending at 100"),
    (["--tag", "v1.3.0", "--steps", "10,50"], "--steps '10,50': expected rising percentages ending at 100"),
])
def test_bad_arguments(fakes: Fakes, args: list[str], message: str) -> None:
    result = fakes.run({"history": history("v1.2.0")}, *args)

    assert result.returncode == 2
    assert message in result.stderr
    assert fakes.calls() == []


# ---------------------------------------------------------------------------------------------
# The watch loop, in-process with a fake clock (a real 10-minute watch is what the workflow runs)
# ---------------------------------------------------------------------------------------------
def load_release_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sark_release_script", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make(release: ModuleType, cls: type, tmp_path: Path, **overrides: Any) -> Any:
    settings = {"tag": "v1.3.0", "stack": "production", "policy_pack": "policies", "steps": [10, 100],
                "watch_seconds": 600, "poll_seconds": 60, "outputs": tmp_path / "outputs.json",
                "report": tmp_path / "report.json", "pulumi": "pulumi", "python": "python", **overrides}
    instance = cls(**settings)
    instance.canary_and_rollback = lambda: _canary_and_rollback(release, instance)
    return instance


def _canary_and_rollback(release: ModuleType, instance: Any) -> int:
    try:
        instance.canary("v1.2.0")
    except release.Failed as failure:
        return int(instance.rollback("v1.2.0", str(failure)))
    return 0


def test_watch_polls_alarms_for_the_whole_window(tmp_path: Path) -> None:
    release = load_release_module()
    now = [0.0]
    checks: list[float] = []

    class Clocked(release.Release):  # type: ignore[name-defined,misc]
        def verify(self, *extra: str, stdout: Path | None = None) -> bool:
            checks.append(now[0])
            return True

    instance = make(release, Clocked, tmp_path, clock=lambda: now[0],
                    sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    instance.watch(10)

    # One check at the start, then every 60 s until 600 s have passed.
    assert checks == [float(t) for t in range(0, 601, 60)]


def test_watch_stops_at_the_first_alarm(tmp_path: Path) -> None:
    release = load_release_module()
    now = [0.0]

    class Alarming(release.Release):  # type: ignore[name-defined,misc]
        def verify(self, *extra: str, stdout: Path | None = None) -> bool:
            return now[0] < 180

    instance = make(release, Alarming, tmp_path, clock=lambda: now[0],
                    sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    with pytest.raises(release.Failed, match=re.escape("an alarm fired while v1.3.0 took 10% of traffic")):
        instance.watch(10)
    assert now[0] == 180


def test_deployed_state_reads_the_newest_successful_update() -> None:
    release = load_release_module()

    state = release.deployed_state(history("v1.2.0", weight=0, previous="v1.1.0"))

    assert (state.app_version, state.previous_version, state.weight, state.serving) == ("v1.2.0", "v1.1.0", 0,
                                                                                         "v1.1.0")
    assert release.deployed_state([]) is None
