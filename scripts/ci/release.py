#!/usr/bin/env python3
"""Roll a SARK release out to a stack: the release runbook's canary, with verification and rollback.

Called by .github/workflows/release.yml on a ``v*`` tag, after the tests and the offline plan
passed and the ``production`` environment was approved. It drives the Pulumi CLI and
``python -m sarkops verify``, both found on PATH (``--pulumi``, ``--python`` to override):

1. Read what the stack runs now from its newest successful update (``pulumi stack history
   --json``: the config it was run with). Stack config written by an earlier job's
   ``pulumi up -c`` never reaches this checkout, so the history is the only reliable record.
   The release *serving* traffic is ``appVersion`` at 100 %, or ``previousAppVersion`` after a
   rollback to 0 %; anything in between is a rollout someone must finish first (exit 2).
2. Deploy the tag next to it with no traffic: ``pulumi up --policy-pack policies -c appVersion=<tag>
   -c previousAppVersion=<serving> -c newVersionTrafficPercent=0``. The release gate in the program
   snapshots the databases, migrates, and waits for the new targets to pass ``/health``. Then
   ``sarkops verify``.
3. The canary (checklist Deployment 1.2): for each step (10, 50, 100) ``pulumi up -c
   newVersionTrafficPercent=N``, then watch (an alarm check, ``sarkops verify --only
   alarms-quiet``, every ``--poll-seconds`` for ``--watch-seconds``), then a full ``sarkops
   verify``. After the last step the full verify is the final one: ``sarkops verify --json``,
   saved as the release's report (``--report``) and printed in the log.
4. Any failure after traffic started to move rolls back: ``pulumi up -c newVersionTrafficPercent=0``
   (the previous release takes all traffic again; its hosts never stopped), then ``sarkops verify``
   of the rolled-back stack (Rollback Procedures 4), and exit 1. A failure while deploying at
   0 % moves no traffic: nothing to roll back (the gate blocked the traffic rule).

The previous release keeps running at 0 % until the next release replaces it, so an app
rollback stays one config change. On the first deployment of a stack there is no canary.

Exit status: 0 released, 1 failed (rolled back if traffic had moved), 2 cannot start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STEPS = (10, 50, 100)
WATCH_SECONDS = 600
POLL_SECONDS = 60


class ReleaseError(Exception):
    """The release cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class Deployed:
    """What the stack's newest successful update ran with."""

    app_version: str
    previous_version: str
    weight: int

    @property
    def serving(self) -> str:
        """The release taking all traffic; :class:`ReleaseError` if two releases share it."""
        if self.weight == 100:
            return self.app_version
        if self.weight == 0 and self.previous_version:
            return self.previous_version
        raise ReleaseError(f"a rollout is in progress: {self.app_version} takes {self.weight}% of traffic next to "
                           f"{self.previous_version or '(none)'}; finish it (`pulumi up -c newVersionTrafficPercent="
                           "100`) or roll it back (`-c newVersionTrafficPercent=0`) before releasing again")


def _config_value(config: Mapping[str, Any], name: str) -> str | None:
    for key, entry in config.items():
        if key.split(":", 1)[-1] == name:
            value = entry.get("value") if isinstance(entry, Mapping) else entry
            return None if value is None else str(value)
    return None


def deployed_state(history: Sequence[Mapping[str, Any]]) -> Deployed | None:
    """The config of the newest succeeded ``update`` in ``pulumi stack history --json``; None if none."""
    updates = [h for h in history if h.get("kind") == "update" and h.get("result") == "succeeded"]
    if not updates:
        return None
    newest = max(updates, key=lambda h: (h.get("version") or 0, h.get("startTime") or ""))
    config = newest.get("config") or {}
    app = _config_value(config, "appVersion")
    if not app:
        raise ReleaseError("the stack's newest successful update has no appVersion in its config; set it once by "
                           "hand (`pulumi up -c appVersion=<running tag>`)")
    weight_text = _config_value(config, "newVersionTrafficPercent") or "100"
    try:
        weight = int(weight_text)
    except ValueError:
        raise ReleaseError(f"newVersionTrafficPercent of the newest update is {weight_text!r}, not a number") from None
    return Deployed(app, _config_value(config, "previousAppVersion") or "", weight)


class Failed(Exception):  # noqa: N818 (a step outcome, raised to unwind to the rollback)
    """A release step failed; ``traffic_moved`` says whether a rollback is needed."""

    def __init__(self, reason: str, *, traffic_moved: bool = True) -> None:
        super().__init__(reason)
        self.traffic_moved = traffic_moved


@dataclass
class Release:
    """One rollout; ``run`` executes a command (argv) and returns its exit status."""

    tag: str
    stack: str
    policy_pack: str
    steps: Sequence[int]
    watch_seconds: float
    poll_seconds: float
    outputs: Path
    report: Path
    pulumi: str
    python: str
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    # -- commands ---------------------------------------------------------------------------
    def run(self, argv: Sequence[str], stdout: Path | None = None) -> int:
        print("+ " + " ".join(argv), flush=True)
        if stdout is None:
            return subprocess.run(list(argv), check=False).returncode
        with stdout.open("w", encoding="utf-8") as handle:
            return subprocess.run(list(argv), stdout=handle, check=False).returncode

    def capture(self, argv: Sequence[str]) -> str:
        print("+ " + " ".join(argv), flush=True)
        result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ReleaseError(f"`{' '.join(argv)}` failed (exit {result.returncode}): "
                               f"{(result.stderr.strip().splitlines() or ['no error output'])[-1]}")
        return result.stdout

    def history(self) -> list[dict[str, Any]]:
        text = self.capture([self.pulumi, "stack", "history", "--json", "--stack", self.stack])
        try:
            data = json.loads(text or "[]")
        except ValueError as error:
            raise ReleaseError(f"`pulumi stack history --json` printed something that is not JSON: {error}") from None
        return data if isinstance(data, list) else []

    def up(self, previous: str, weight: int) -> bool:
        message = f"release {self.tag}: {weight}% of traffic" + (f" (rest on {previous})" if previous else "")
        ok = self.run([self.pulumi, "up", "--yes", "--non-interactive", "--stack", self.stack,
                       "--policy-pack", self.policy_pack, "--message", message,
                       "-c", f"appVersion={self.tag}", "-c", f"previousAppVersion={previous}",
                       "-c", f"newVersionTrafficPercent={weight}"]) == 0
        if ok:
            self.outputs.write_text(self.capture([self.pulumi, "stack", "output", "--json", "--stack", self.stack]),
                                    encoding="utf-8")
        return ok

    def verify(self, *extra: str, stdout: Path | None = None) -> bool:
        return self.run([self.python, "-m", "sarkops", "verify", "--stack", self.stack,
                         "--outputs", str(self.outputs), *extra], stdout=stdout) == 0

    # -- the runbook ------------------------------------------------------------------------
    def watch(self, weight: int) -> None:
        """Alarm checks every poll interval for the watch window (at least one)."""
        deadline = self.clock() + self.watch_seconds
        while True:
            if not self.verify("--only", "alarms-quiet"):
                raise Failed(f"an alarm fired while {self.tag} took {weight}% of traffic")
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            self.sleep(min(self.poll_seconds, remaining))

    def canary(self, serving: str) -> None:
        # At 0 % the traffic rule stays as it was (the release gate blocks it on failure): no rollback needed.
        if not self.up(serving, 0):
            raise Failed(f"deploying {self.tag} with no traffic failed (release gate: migrations or /health)",
                         traffic_moved=False)
        if not self.verify():
            raise Failed(f"verify failed with {self.tag} deployed and no traffic on it", traffic_moved=False)
        for weight in self.steps:
            if not self.up(serving, weight):
                raise Failed(f"`pulumi up` to {weight}% failed")
            if weight == 100:
                break  # the final verification below is this step's check
            self.watch(weight)
            if not self.verify():
                raise Failed(f"verify failed with {self.tag} taking {weight}% of traffic")
        if not self.final_verify():
            raise Failed(f"final verify failed with {self.tag} taking all traffic (report: {self.report.name})")

    def rollback(self, serving: str, reason: str) -> int:
        group(f"Rollback: all traffic back to {serving}")
        if not self.up(serving, 0):
            end_group()
            annotate("error", f"ROLLBACK FAILED for {self.tag}: set newVersionTrafficPercent=0 by hand "
                              f"(`pulumi up --stack {self.stack} -c newVersionTrafficPercent=0`)")
            return 1
        healthy = self.verify()
        end_group()
        state = "healthy" if healthy else "NOT healthy, see the verify report above"
        annotate("error", f"release {self.tag} rolled back to {serving}: {reason}; {serving} is {state}")
        summary(f"Release {self.tag} **rolled back** to {serving}: {reason}. After rollback: {state}.")
        return 1

    def execute(self) -> int:
        deployed = deployed_state(self.history())
        if deployed is None or (deployed.app_version == self.tag and deployed.weight == 100):
            return self.without_canary(first=deployed is None)
        serving = deployed.serving
        if serving == self.tag:
            raise ReleaseError(f"{self.tag} already serves all traffic, as previousAppVersion after "
                               f"{deployed.app_version} was rolled back; nothing to release")
        group(f"Release {self.tag} next to {serving}: canary {' -> '.join(f'{s}%' for s in self.steps)}")
        try:
            self.canary(serving)
        except Failed as failure:
            end_group()
            if not failure.traffic_moved:
                annotate("error", f"release {self.tag} stopped before taking traffic: {failure}; {serving} still "
                                  "serves all of it")
                summary(f"Release {self.tag} **failed before taking traffic**: {failure}.")
                return 1
            return self.rollback(serving, str(failure))
        end_group()
        summary(f"Release {self.tag} takes all traffic; verify passed (report: {self.report.name}).")
        return 0

    def without_canary(self, *, first: bool) -> int:
        """First deployment of the stack (nothing to canary against), or a re-run for the serving tag."""
        group(f"Deploy {self.tag} (first deployment of {self.stack})" if first
              else f"{self.tag} already takes all traffic: verify only")
        if first and not self.up("", 100):
            end_group()
            annotate("error", f"first deployment of {self.tag} failed")
            return 1
        if not first:
            self.outputs.write_text(self.capture([self.pulumi, "stack", "output", "--json", "--stack", self.stack]),
                                    encoding="utf-8")
        ok = self.final_verify()
        end_group()
        if not ok:
            annotate("error", f"verify of {self.tag} failed; report in {self.report}")
            return 1
        summary(f"Release {self.tag} takes all traffic; verify passed (report: {self.report.name}).")
        return 0

    def final_verify(self) -> bool:
        """Full verify as JSON (kept as the release's report) and its lines in the log."""
        ok = self.verify("--json", stdout=self.report)
        print_report(self.report)
        return ok


def print_report(path: Path) -> None:
    """The final report's items as lines in the log (the JSON file is kept as an artifact)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        items = document["items"]
    except (OSError, ValueError, KeyError, TypeError):
        print(f"(no readable verify report in {path})")
        return
    for item in items:
        print(f"{item.get('status')}  {item.get('id')}: {item.get('evidence')}")
        if item.get("status") == "FAIL":
            print(f"      fix: {item.get('fix')}")


# -- GitHub Actions log helpers (plain lines elsewhere) ---------------------------------------
def group(title: str) -> None:
    print(f"::group::{title}" if os.environ.get("GITHUB_ACTIONS") else f"== {title}", flush=True)


def end_group() -> None:
    if os.environ.get("GITHUB_ACTIONS"):
        print("::endgroup::", flush=True)


def annotate(level: str, message: str) -> None:
    print(f"::{level}::{message}" if os.environ.get("GITHUB_ACTIONS") else f"{level}: {message}", flush=True)


def summary(markdown: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")


def _tag(text: str) -> str:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$", text):
        raise argparse.ArgumentTypeError(f"--tag {text!r}: expected a git tag such as v1.3.0 "
                                         "(letters, digits, . _ / -)")
    return text


def _steps(text: str) -> list[int]:
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--steps {text!r}: expected percentages like 10,50,100") from None
    if not steps or steps[-1] != 100 or any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
        raise argparse.ArgumentTypeError(f"--steps {text!r}: expected rising percentages ending at 100, e.g. 10,50,100")
    return steps


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Roll a SARK release out with the runbook's canary.")
    parser.add_argument("--tag", required=True, type=_tag, help="release tag to deploy (appVersion), e.g. v1.3.0")
    parser.add_argument("--stack", default="production")
    parser.add_argument("--policy-pack", default="policies")
    parser.add_argument("--steps", type=_steps, default=list(STEPS), help="traffic percentages (default 10,50,100)")
    parser.add_argument("--watch-seconds", type=float, default=WATCH_SECONDS,
                        help=f"watch time after each step but the last (default {WATCH_SECONDS})")
    parser.add_argument("--poll-seconds", type=float, default=POLL_SECONDS,
                        help=f"alarm check interval while watching (default {POLL_SECONDS})")
    parser.add_argument("--outputs", type=Path, default=Path("outputs.json"), help="where stack outputs are written")
    parser.add_argument("--report", type=Path, default=Path("verify-report.json"), help="final verify --json report")
    parser.add_argument("--pulumi", default="pulumi", help="Pulumi CLI (default: pulumi on PATH)")
    parser.add_argument("--python", default="python", help="interpreter with sarkops installed (default: python)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    release = Release(tag=args.tag, stack=args.stack, policy_pack=args.policy_pack, steps=args.steps,
                      watch_seconds=args.watch_seconds, poll_seconds=args.poll_seconds, outputs=args.outputs,
                      report=args.report, pulumi=args.pulumi, python=args.python)
    try:
        return release.execute()
    except ReleaseError as error:
        annotate("error", str(error))
        return 2


if __name__ == "__main__":
    sys.exit(main())
