"""The Markdown summary the PR pipeline posts (``scripts/ci/offline_plan.py``), from a plan's JSON.

It works on the ``--json`` document (not on a live result), so the pipeline can render a plan
file produced by another job. Sections: verdict; what changes against the baseline (when the
plan was made with ``--baseline``); check failures and deployment errors; violations by level;
the example config values to set before ``pulumi up`` (``findings`` of source ``config``, with
their line in the stack file); the policies that could not run; warnings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_ROWS = 50


def _cell(text: Any) -> str:
    """Text safe inside one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _name(urn: Any) -> str:
    return str(urn or "").rsplit("::", 1)[-1] or "(stack)"


def _table(header: str, rows: list[list[Any]], more_in: str = "plan.json") -> list[str]:
    if not rows:
        return []
    columns = header.count("|") - 1
    lines = [header, "|" + "---|" * columns]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(f"\n… and {len(rows) - MAX_ROWS} more in {more_in}.")
    return [*lines, ""]


def _baseline(baseline: Mapping[str, Any]) -> list[str]:
    lines = [f"**Against the baseline**: {len(baseline.get('added') or [])} added, "
             f"{len(baseline.get('removed') or [])} removed, {len(baseline.get('changed') or [])} changed; "
             f"{len(baseline.get('newViolations') or [])} new and {len(baseline.get('fixedViolations') or [])} "
             "fixed violations.", ""]
    rows = [["added", _name(u), ""] for u in baseline.get("added") or []]
    rows += [["removed", _name(u), ""] for u in baseline.get("removed") or []]
    rows += [["changed", _name(c.get("urn")), ", ".join(c.get("inputs") or [])] for c in baseline.get("changed") or []]
    rows += [["new violation", _name(v.get("urn")), f"{v.get('policy')} ({v.get('enforcementLevel')})"]
             for v in baseline.get("newViolations") or []]
    rows += [["fixed violation", _name(v.get("urn")), f"{v.get('policy')} ({v.get('enforcementLevel')})"]
             for v in baseline.get("fixedViolations") or []]
    return lines + _table("| change | resource | detail |", rows)


def render_summary(plan: Mapping[str, Any]) -> str:
    """Markdown for a ``sarkops plan --json`` document."""
    summary = plan.get("summary") or {}
    reasons = [words for key, words in (("checkFailures", "check failures"), ("stateErrors", "deployment errors"),
                                        ("mandatory", "mandatory violations")) if summary.get(key)]
    verdict = "passed" if summary.get("passed") else f"FAILED ({', '.join(reasons) or 'see plan.json'})"
    mode = plan.get("mode") or {}
    kind = "update against the recorded state" if mode.get("state") else \
        "first preview (computed outputs unknown)" if mode.get("firstPreview", True) else "known outputs"
    lines = [f"### Offline plan: {plan.get('project')} / {plan.get('stack')} — {verdict}", "",
             f"{summary.get('resources', len(plan.get('resources') or []))} resources; "
             f"{summary.get('mandatory', 0)} mandatory and {summary.get('advisory', 0)} advisory violations"
             + (f" ({summary['config']} of them example config values)" if summary.get("config") else "") + "; "
             f"{summary.get('remediated', 0)} remediated. {summary.get('checkFailures', 0)} check failures; "
             f"{summary.get('notRun', 0)} policy results not run during the preview ({kind}). Mock runtime: provider "
             "defaults and the live account are not known here — the `pulumi preview` job shows the real diff.", ""]
    if plan.get("baseline"):
        lines += _baseline(plan["baseline"])
    lines += _table("| check failure | resource | property | message |",
                    [["error", _name(f.get("urn")), f.get("property", ""), f.get("message", "")]
                     for f in plan.get("checkFailures") or []])
    lines += _table("| deployment error | resource | op | message |",
                    [[e.get("when", ""), _name(e.get("urn")), e.get("op", ""), e.get("message", "")]
                     for e in plan.get("stateErrors") or []])
    order = {"mandatory": 0, "advisory": 1}
    # A policy that could not run is listed once, in its own table below.
    not_run = {(n.get("pack"), n.get("policy"), n.get("urn")) for n in plan.get("notRun") or []}
    decided = [v for v in plan.get("violations") or []
               if not (v.get("enforcementLevel") == "advisory" and (v.get("pack"), v.get("policy"), v.get("urn"))
                       in not_run)]
    violations = sorted(decided,
                        key=lambda v: (order.get(str(v.get("enforcementLevel")), 2), v.get("policy", "")))
    lines += _table("| level | policy | resource | message |",
                    [[v.get("enforcementLevel", ""), v.get("policy", ""), _name(v.get("urn")), v.get("message", "")]
                     for v in violations])
    config = [f for f in plan.get("findings") or [] if f.get("source") == "config"]
    lines += _table("| set before `pulumi up` | where |",
                    [[f.get("message", ""), f"{f.get('file')}:{f.get('line')}" if f.get("line") else f.get("file", "")]
                     for f in config])
    lines += _table("| not run | resource | why |",
                    [[n.get("policy", ""), _name(n.get("urn")), n.get("reason", "")] for n in plan.get("notRun") or []])
    for warning in plan.get("warnings") or []:
        lines.append(f"> warning: {_cell(warning)}")
    return "\n".join(lines).rstrip("\n") + "\n"
