#!/usr/bin/env python3
"""The offline plan in CI: ``python -m sarkops plan --json`` into ``plan.json``, plus a Markdown summary.

Runs the plan (mock runtime + provider emulation + the policy pack; no cloud access) for a
stack, keeps its JSON as the file the workflow uploads, and appends the summary
(:mod:`sarkops.plan.render.markdown`: verdict, what changes against ``--baseline``, check
failures, deployment errors, violations, the policies that could not run) to
``$GITHUB_STEP_SUMMARY`` (stdout outside GitHub Actions). ``--baseline FILE`` (e.g. the base
branch's plan.json) is passed to the plan; ``--state FILE`` too. Exits with the plan's own
status: 0 passed, 1 mandatory violations, check failures or deployment errors, 2 the plan
could not run. Arguments after ``--`` go to ``sarkops plan`` unchanged.
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

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: sarkops lives at the repository root
    sys.path.insert(0, str(ROOT))

from sarkops.plan.render.markdown import MAX_ROWS  # noqa: E402
from sarkops.plan.render.markdown import render_summary as _render_summary  # noqa: E402

__all__ = ["MAX_ROWS", "main", "render_summary"]


def render_summary(plan: Mapping[str, Any]) -> str:
    """Markdown for a ``sarkops plan --json`` document."""
    return _render_summary(plan)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the offline plan, keep its JSON and summarise it.")
    parser.add_argument("--stack", default="production")
    parser.add_argument("--out", type=Path, default=Path("plan.json"), help="where the plan JSON goes")
    parser.add_argument("--python", default=sys.executable, help="interpreter with sarkops installed")
    parser.add_argument("--baseline", type=Path, help="an earlier plan.json (e.g. the base branch's) to compare with")
    parser.add_argument("--state", type=Path, help="`pulumi stack export` of the stack, for an update preview")
    parser.add_argument("extra", nargs="*", help="after --: more arguments for `sarkops plan`")
    args = parser.parse_args(argv)

    command = [args.python, "-m", "sarkops", "plan", "--stack", args.stack, "--json"]
    if args.baseline is not None:
        command += ["--baseline", str(args.baseline)]
    if args.state is not None:
        command += ["--state", str(args.state)]
    command += args.extra
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
