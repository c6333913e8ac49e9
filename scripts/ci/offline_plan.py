#!/usr/bin/env python3
"""The offline plan in CI: ``python -m sarkops plan --json`` into ``plan.json``, the SARIF, and the PR comment.

Runs the plan (mock runtime + provider emulation + the policy pack; no cloud access) for a
stack and keeps its JSON as the file the workflow uploads. Then writes the Markdown summary
(:mod:`sarkops.plan.render.markdown`: verdict, what changes against the baseline, check
failures, deployment errors, violations, example config values, the policies that could not
run) to ``$GITHUB_STEP_SUMMARY`` (stdout outside GitHub Actions) and, with ``--comment FILE``, to
the file the pull-request workflow posts as the PR comment.

``--base-ref REF`` (the pull request's base commit) plans that commit too, with its own code:
``git worktree add --detach`` of REF into a temporary directory, ``sarkops plan --json`` there
(into ``--base-out``, default ``base-plan.json`` beside ``--out``), then the head's plan with
``--baseline`` of it, so the summary says what this change adds, removes and changes, and which
violations it introduces or fixes. A base that cannot be planned (exit 2, or no ``sarkops`` at
that commit) leaves the head's plan without a baseline and the summary says why.
``--baseline FILE`` (an existing plan.json) is passed to the plan instead; ``--state FILE`` too.
``--sarif FILE`` writes the findings as SARIF 2.1.0 for code scanning.

Exits with the head plan's own status: 0 passed, 1 mandatory violations, check failures or
deployment errors, 2 the plan could not run. Arguments after ``--`` go to ``sarkops plan``
unchanged (for both plans).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: sarkops lives at the repository root
    sys.path.insert(0, str(ROOT))

from sarkops.plan.render.markdown import MAX_ROWS  # noqa: E402
from sarkops.plan.render.markdown import render_summary as _render_summary  # noqa: E402

__all__ = ["MAX_ROWS", "main", "plan_base", "render_summary"]


def render_summary(plan: Mapping[str, Any]) -> str:
    """Markdown for a ``sarkops plan --json`` document."""
    return _render_summary(plan)


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plan_base(ref: str, command: Sequence[str], out: Path) -> str | None:
    """Plan commit ``ref`` of the repository around the current directory into ``out``.

    ``command`` is the ``sarkops plan --json`` command line; it runs in the base checkout at the
    same place relative to the repository root as the current directory, so ``python -m sarkops``
    runs the base commit's own ``sarkops`` and program. Returns None on success, else why not.
    """
    here = Path.cwd()
    top = _git("rev-parse", "--show-toplevel", cwd=here)
    if top.returncode != 0:
        return f"not in a git repository ({top.stderr.strip()})"
    root = Path(top.stdout.strip())
    if _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=root).returncode != 0:
        # A shallow checkout (actions/checkout's default depth 1) lacks the base commit.
        _log(f"+ git fetch --no-tags --depth=1 origin {ref}")
        fetched = _git("fetch", "--no-tags", "--depth=1", "origin", ref, cwd=root)
        if fetched.returncode != 0:
            return f"base commit {ref} is not available ({fetched.stderr.strip().splitlines()[-1:]})"
    scratch = Path(tempfile.mkdtemp(prefix="sarkops-base-"))
    checkout = scratch / "base"
    _log(f"+ git worktree add --detach {checkout} {ref}")
    added = _git("worktree", "add", "--detach", str(checkout), ref, cwd=root)
    if added.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        return f"cannot check out {ref}: {added.stderr.strip()}"
    try:
        cwd = checkout / here.resolve().relative_to(root.resolve())
        _log("+ (in the base checkout) " + " ".join(command))
        with out.open("w", encoding="utf-8") as handle:
            status = subprocess.run(list(command), cwd=cwd, stdout=handle, check=False).returncode
        try:
            json.loads(out.read_text(encoding="utf-8"))
        except ValueError:
            out.unlink(missing_ok=True)
            return f"the base commit's plan could not run (exit {status}); see the job log"
        return None
    finally:
        _git("worktree", "remove", "--force", str(checkout), cwd=root)
        _git("worktree", "prune", cwd=root)
        shutil.rmtree(scratch, ignore_errors=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Run the offline plan, keep its JSON and summarise it.")
    parser.add_argument("--stack", default="production")
    parser.add_argument("--out", type=Path, default=Path("plan.json"), help="where the plan JSON goes")
    parser.add_argument("--python", default=sys.executable, help="interpreter with sarkops installed")
    parser.add_argument("--base-ref", metavar="REF",
                        help="plan this commit (the PR's base) too, and compare the head's plan with it")
    parser.add_argument("--base-out", type=Path, help="where the base plan's JSON goes (default: base-plan.json "
                                                      "beside --out)")
    parser.add_argument("--baseline", type=Path, help="an earlier plan.json (e.g. the base branch's) to compare with")
    parser.add_argument("--state", type=Path, help="`pulumi stack export` of the stack, for an update preview")
    parser.add_argument("--sarif", type=Path, help="also write the findings as SARIF 2.1.0 (code scanning)")
    parser.add_argument("--comment", type=Path, help="also write the Markdown summary here (the PR comment)")
    parser.add_argument("extra", nargs="*", help="after --: more arguments for `sarkops plan`")
    return parser


def _publish(markdown: str, comment: Path | None) -> None:
    """The summary to the job summary (stdout outside GitHub Actions) and to the comment file."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(markdown)
    else:
        sys.stdout.write(markdown)
    if comment is not None:
        comment.write_text(markdown, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.base_ref and args.baseline:
        parser.error("--base-ref and --baseline both give the baseline; use one")

    # Absolute (not resolved: a venv's python is a symlink that must stay one): the base plan runs elsewhere.
    python = os.path.abspath(args.python) if os.sep in args.python else args.python
    plan_command = [python, "-m", "sarkops", "plan", "--stack", args.stack, "--json"]
    baseline, base_note = args.baseline, ""
    if args.base_ref:
        base_out = (args.base_out or args.out.with_name("base-plan.json")).resolve()
        why_not = plan_base(args.base_ref, [*plan_command, *args.extra], base_out)
        if why_not is None:
            baseline = base_out
        else:
            _log(f"warning: no baseline: {why_not}")
            base_note = f"> No comparison with the base branch ({args.base_ref}): {why_not}.\n\n"

    command = list(plan_command)
    if baseline is not None:
        command += ["--baseline", str(baseline)]
    if args.state is not None:
        command += ["--state", str(args.state)]
    if args.sarif is not None:
        command += ["--sarif", str(args.sarif)]
    command += args.extra
    _log("+ " + " ".join(command))
    with args.out.open("w", encoding="utf-8") as handle:
        status = subprocess.run(command, stdout=handle, check=False).returncode
    try:
        plan = json.loads(args.out.read_text(encoding="utf-8"))
    except ValueError:
        markdown = f"### Offline plan: stack {args.stack} — could not run (exit {status}); see the job log\n"
    else:
        markdown = render_summary(plan)
        if base_note:
            head, _, rest = markdown.partition("\n\n")
            markdown = f"{head}\n\n{base_note}{rest}"
    _publish(markdown, args.comment)
    return status


if __name__ == "__main__":
    sys.exit(main())
