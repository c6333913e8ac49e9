#!/usr/bin/env python3
"""The offline plan in CI: ``python -m sarkops plan --json`` into ``plan.json``, plus a Markdown summary.

Runs the plan (mock runtime + the policy pack; no cloud access) for a stack, keeps its JSON as
the file the workflow uploads, and appends a short report (resource count, violations by
enforcement level, the first lines of every violation) to ``$GITHUB_STEP_SUMMARY`` (stdout
outside GitHub Actions). Exits with the plan's own status: 0 no mandatory violation, 1 some,
2 the plan could not run. Arguments after ``--`` go to ``sarkops plan`` unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MAX_ROWS = 50


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def render_summary(plan: Mapping[str, Any]) -> str:
    """Markdown for a ``sarkops plan --json`` document."""
    summary = plan.get("summary") or {}
    violations: list[Mapping[str, Any]] = list(plan.get("violations") or [])
    verdict = "passed" if summary.get("passed") else "FAILED (mandatory violations)"
    lines = [f"### Offline plan: {plan.get('project')} / {plan.get('stack')} — {verdict}", "",
             f"{summary.get('resources', len(plan.get('resources') or []))} resources; "
             f"{summary.get('mandatory', 0)} mandatory and {summary.get('advisory', 0)} advisory violations; "
             f"{summary.get('remediated', 0)} remediated. Mock runtime: provider defaults and live state are not "
             "known here — the `pulumi preview` job shows the real diff.", ""]
    if violations:
        order = {"mandatory": 0, "advisory": 1}
        ranked = sorted(violations, key=lambda v: (order.get(str(v.get("enforcementLevel")), 2), v.get("policy", "")))
        lines += ["| level | policy | resource | message |", "|---|---|---|---|"]
        for violation in ranked[:MAX_ROWS]:
            resource = str(violation.get("urn") or "").rsplit("::", 1)[-1] or "(stack)"
            lines.append(f"| {_cell(violation.get('enforcementLevel', ''))} | {_cell(violation.get('policy', ''))} "
                         f"| {_cell(resource)} | {_cell(violation.get('message', ''))} |")
        if len(ranked) > MAX_ROWS:
            lines.append(f"\n… and {len(ranked) - MAX_ROWS} more in plan.json.")
    for warning in plan.get("warnings") or []:
        lines.append(f"> warning: {_cell(warning)}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the offline plan, keep its JSON and summarise it.")
    parser.add_argument("--stack", default="production")
    parser.add_argument("--out", type=Path, default=Path("plan.json"), help="where the plan JSON goes")
    parser.add_argument("--python", default=sys.executable, help="interpreter with sarkops installed")
    parser.add_argument("extra", nargs="*", help="after --: more arguments for `sarkops plan`")
    args = parser.parse_args(argv)

    command = [args.python, "-m", "sarkops", "plan", "--stack", args.stack, "--json", *args.extra]
    print("+ " + " ".join(command), file=sys.stderr, flush=True)
    with args.out.open("w", encoding="utf-8") as handle:
        status = subprocess.run(command, stdout=handle, check=False).returncode
    try:
        plan = json.loads(args.out.read_text(encoding="utf-8"))
    except ValueError:
        markdown = f"### Offline plan: stack {args.stack} — could not run (exit {status}); see the job log\n"
    else:
        markdown = render_summary(plan)
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(markdown)
    else:
        sys.stdout.write(markdown)
    return status


if __name__ == "__main__":
    sys.exit(main())
