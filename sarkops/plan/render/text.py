"""The human report of a plan.

Layout, most important first: what kind of preview this is and the summary line; the baseline
comparison (``--baseline``: "what does this change do"); the findings (check failures and
deployment errors, then mandatory and advisory policy results and the stack's example config
values), each with the program line that created the resource; the policies that could not run
during the preview; the resource tree, where each resource with a finding is marked (and, with
``--state`` or ``--baseline``, its operation); then the policy packs, remediations,
not-applicable results, exemptions, outputs and warnings; the summary again as the last line.

``quiet`` keeps only the findings and the summary. No line is longer than :data:`WIDTH`
characters: long names and values are shortened with ``...`` and long messages wrapped (the
``--json`` document has everything in full). ``color`` adds ANSI colours (the command line
turns it on for a terminal, never under ``NO_COLOR``, https://no-color.org).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sarkops.plan.findings import Finding, findings
from sarkops.plan.render.common import (
    OP_MARKERS,
    counts,
    one_line,
    resource_label,
    scrubber,
    warnings,
)

if TYPE_CHECKING:
    from sarkops.plan.planner import PlanResult

WIDTH = 120
"""The longest line the text report prints."""

MESSAGE_LINES = 4
"""A finding's message is wrapped to at most this many lines (in full in ``--json``)."""

TREE_MARKS = {"fail": "x", "advisory": "!", "not-run": "?"}
"""Tree marks: a finding that fails the plan, an advisory, a policy that could not run."""

_ANSI = {"red": "31;1", "yellow": "33", "green": "32", "cyan": "36", "dim": "2", "bold": "1"}


class Style:
    """ANSI colours, or none."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, color: str, text: str) -> str:
        if not self.enabled or not text:
            return text
        return f"\x1b[{_ANSI[color]}m{text}\x1b[0m"


def shorten(text: str, width: int = WIDTH) -> str:
    """``text`` cut to ``width`` characters, ending in ``...`` when it was longer.

    Callers pass scrubbed text: cutting first could leave part of a secret that scrubbing no longer recognises.
    """
    return text if len(text) <= width else text[: width - 3] + "..."


def wrap(text: str, indent: str, lines: int = MESSAGE_LINES, subsequent: str | None = None) -> list[str]:
    """``text`` wrapped to :data:`WIDTH` with ``indent``, at most ``lines`` lines (the last ends in ``...``)."""
    wrapped = textwrap.wrap(one_line(text), WIDTH, initial_indent=indent,
                            subsequent_indent=indent if subsequent is None else subsequent,
                            break_long_words=True, break_on_hyphens=False) or [indent.rstrip()]
    if len(wrapped) > lines:
        wrapped = [*wrapped[: lines - 1], shorten(wrapped[lines - 1] + " " * WIDTH, WIDTH)]
        wrapped[-1] = wrapped[-1].rstrip(". ") + "..."
    return wrapped


def _where(finding: Finding) -> str:
    return f"{finding.file}:{finding.line}" if finding.file and finding.line else finding.file


def _finding_lines(finding: Finding, style: Style) -> list[str]:
    """Two or more lines: level, rule, resource and position; then the message."""
    level = finding.level.upper() if finding.fails else finding.level
    color = "red" if finding.fails else "yellow" if finding.level == "advisory" else "dim"
    if finding.source == "check":
        what = f"check failure ({finding.rule})" if finding.rule else "check failure"
    elif finding.source == "state":
        what = f"deployment error ({finding.rule})"
    elif finding.source == "config":
        what = f"config {finding.rule}"
    else:
        what = finding.rule + (f" [{finding.severity}]" if finding.severity else "")
    subject = f" on {resource_label(finding.urn)}" if finding.urn else ""
    where = _where(finding)
    suffix = f"  at {where}" if where else ""
    head = shorten(f"  {level:<9} {what}{subject}", WIDTH - len(suffix)) if suffix else shorten(
        f"  {level:<9} {what}{subject}")
    # Colour after fitting, so escape codes never count towards the width.
    first = style(color, head[: 2 + len(level)].strip())
    head = f"  {first}{head[2 + len(level):]}" + (style("cyan", suffix) if suffix else "")
    return [head, *wrap(finding.message, "      ")]


def _findings_lines(found: list[Finding], style: Style) -> list[str]:
    listed = [f for f in found if f.source != "not-run" and f.level in ("error", "mandatory", "advisory")]
    failing = sum(f.fails for f in listed)
    if not listed:
        return ["Findings: none", ""]
    head = f"Findings ({len(listed)}): {failing} fail the plan, {len(listed) - failing} advisory"
    lines = [head]
    for finding in listed:
        lines += _finding_lines(finding, style)
    return [*lines, ""]


def _not_run_lines(result: PlanResult, found: list[Finding], quiet: bool, clean: Callable[[str], str]) -> list[str]:
    """The policies that could not decide, grouped by policy and reason, each resource with its program line."""
    report = result.report
    if not report.not_run:
        return []
    policies = sorted({n.policy for n in report.not_run})
    head = (f"Policies not run during the preview ({len(policies)} policies, {len(report.not_run)} results): "
            "these rules were NOT applied")
    if quiet:
        return [*wrap(head + "; the full report lists them", "", subsequent="  "), ""]
    where = {(f.rule, f.urn): _where(f) for f in found if f.source == "not-run"}
    groups: dict[tuple[str, str], list[str]] = {}
    for n in report.not_run:
        groups.setdefault((n.policy, one_line(clean(n.reason))), []).append(n.urn)
    lines = wrap(head, "", subsequent="  ")
    for (policy, reason), urns in groups.items():
        lines += wrap(f"{policy}: {reason}", "  ", subsequent="      ")
        for urn in urns:
            at = where.get((policy, urn), "")
            suffix = f"  at {at}" if at else ""
            lines.append(shorten(f"      {resource_label(urn)}", WIDTH - len(suffix)) + suffix)
    return [*lines, ""]


def _tree_ops(result: PlanResult) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Operation marker per URN, and the resources that go away with why: from ``--state``, else ``--baseline``."""
    if result.prior is not None:
        ops = {c.urn: OP_MARKERS.get(c.op, " ") for c in result.changes}
        gone = [(c.urn, "(delete: in the state, not in the program)") for c in result.changes if c.op == "delete"]
        return ops, gone
    if result.baseline is not None:
        ops = {urn: "+" for urn in result.baseline["added"]}
        ops |= {c["urn"]: "~" for c in result.baseline["changed"]}
        gone = [(urn, "(removed: in the baseline, not in this plan)") for urn in result.baseline["removed"]]
        return ops, gone
    return {}, []


def _tree_lines(result: PlanResult, found: list[Finding], style: Style) -> list[str]:
    rec = result.recording
    changes = {c.urn: c for c in result.changes}
    ops, gone = _tree_ops(result)
    per_resource: dict[str, list[Finding]] = {}
    for finding in found:
        if finding.urn:
            per_resource.setdefault(finding.urn, []).append(finding)
    children: dict[str, list[Any]] = {}
    known = {r.urn for r in rec.resources}
    for resource in rec.resources:
        parent = resource.parent if resource.parent in known else rec.stack_urn
        children.setdefault(parent, []).append(resource)
    legend = "x fails the plan, ! advisory, ? a policy could not run"
    if ops:
        legend += "; + create, ~ update, +- replace, - delete" if result.prior is not None else \
            "; + added, ~ changed, - removed against the baseline"
    lines = [f"Resources ({len(rec.resources)}; {legend}):", f"  pulumi:pulumi:Stack {rec.project}-{rec.stack}"]

    def label(resource: Any) -> str:
        change = changes.get(resource.urn)
        text = f"{resource.type} {resource.name}"
        if resource.protect:
            text += " [protected]"
        if result.prior is not None and change is not None and change.op in ("update", "replace"):
            text += f" ({change.op}: {', '.join(change.changed_inputs)}"
            text += f"; replacement forced by {', '.join(change.replace_keys)})" if change.replace_keys else ")"
        return text

    def mark(urn: str) -> tuple[str, str]:
        mine = per_resource.get(urn, [])
        if not mine:
            return " ", ""
        kinds: dict[str, int] = {}
        for finding in mine:
            kind = "not run" if finding.source == "not-run" else \
                "remediated" if finding.level == "remediate" else finding.level
            kinds[kind] = kinds.get(kind, 0) + 1
        note = "  <- " + ", ".join(f"{n} {kind}" for kind, n in kinds.items())
        if any(f.fails for f in mine):
            return TREE_MARKS["fail"], note
        if any(f.level == "advisory" and f.source != "not-run" for f in mine):
            return TREE_MARKS["advisory"], note
        if any(f.source == "not-run" for f in mine):
            return TREE_MARKS["not-run"], note
        return " ", note

    def line(op: str, marked: tuple[str, str], depth: int, text: str) -> str:
        flag, note = marked
        # Same columns as `pulumi preview`: the operation, then the tree; the mark takes the first indent column.
        prefix = f"{op:>2}{flag}{' ' * (2 * depth - 1)}"
        out = shorten(prefix + text, WIDTH - len(note)) + note if note else shorten(prefix + text)
        if flag.strip():
            color = "red" if flag == TREE_MARKS["fail"] else "yellow" if flag == TREE_MARKS["advisory"] else "dim"
            out = out[:2] + style(color, flag) + out[3:]
        return out

    def walk(urn: str, depth: int) -> None:
        for child in children.get(urn, []):
            lines.append(line(ops.get(child.urn, " "), mark(child.urn), depth, label(child)))
            walk(child.urn, depth + 1)

    walk(rec.stack_urn, 1)
    for urn, why in gone:
        lines.append(line("-", mark(urn), 1, f"{resource_label(urn)} {why}"))
    return [*lines, ""]


def _baseline_lines(baseline: dict[str, Any]) -> list[str]:
    lines = [f"Compared with {baseline.get('file') or 'the baseline plan'}: {len(baseline['added'])} added, "
             f"{len(baseline['removed'])} removed, {len(baseline['changed'])} changed; "
             f"{len(baseline['newViolations'])} new and {len(baseline['fixedViolations'])} fixed violations"]
    lines += [f"  + {resource_label(urn)}" for urn in baseline["added"]]
    lines += [f"  - {resource_label(urn)}" for urn in baseline["removed"]]
    lines += [f"  ~ {resource_label(c['urn'])}: {', '.join(c['inputs'])}" for c in baseline["changed"]]
    lines += [f"  new: {v['policy']} on {resource_label(v['urn'])} [{v['enforcementLevel']}]"
              for v in baseline["newViolations"]]
    lines += [f"  fixed: {v['policy']} on {resource_label(v['urn'])} [{v['enforcementLevel']}]"
              for v in baseline["fixedViolations"]]
    return [*(shorten(line) for line in lines), ""]


def _mode_line(result: PlanResult) -> str:
    if result.prior is not None:
        return f"preview of an update against the state in {result.prior.path}"
    if result.first_preview:
        return "first preview of a new stack: computed outputs are [unknown]"
    return "--known-outputs: every output is a mock value (not what a first preview knows)"


def entry(head: str, detail: str) -> list[str]:
    """``head: detail`` on one line when it fits, else ``head:`` and the detail wrapped beneath it."""
    line = f"{head}: {detail}"
    if len(line) <= WIDTH:
        return [line]
    return [shorten(head + ":"), *wrap(detail, "      ")]


def _detail_lines(result: PlanResult, clean: Callable[[str], str]) -> list[str]:
    """Policy packs, remediations, not-applicable results and exemptions."""
    report = result.report
    lines: list[str] = []
    if result.packs:
        packs = ", ".join(f"{p.name}@{p.version} ({len(p.policies)} policies)" for p in result.packs)
        lines += wrap(f"Policy packs: {packs}", "", subsequent="  ")
    else:
        lines.append("Policy packs: none (no ./policies and no --policy-pack)")
    remediated = [v for v in report.violations if v.enforcement_level == "remediate"]
    if remediated:
        lines += ["", f"Remediated ({len(remediated)}): the pack changed these inputs before validating"]
        for violation in remediated:
            severity = f" [{violation.severity}]" if violation.severity else ""
            lines += entry(f"  {violation.policy}{severity} on {resource_label(violation.urn)}",
                           one_line(clean(violation.detail or violation.message)))
    if report.not_applicable:
        lines += ["", f"Not applicable ({len(report.not_applicable)}):"]
        for n in report.not_applicable:
            lines += entry(f"  {n.policy} on {resource_label(n.urn)}",
                           one_line(clean(n.reason)) + (" [exemption]" if n.exemption else ""))
    if report.exemptions:
        lines += ["", f"Exemptions configured ({len(report.exemptions)}):"]
        for exemption in report.exemptions:
            names = ", ".join(resource_label(urn) for urn in exemption.matches) or \
                f"{exemption.resource} (names NO resource of this stack)"
            lines += entry(f"  {exemption.pack}: {exemption.policy} on {names}", one_line(clean(exemption.reason)))
    return [*lines, ""]


def summary_line(result: PlanResult) -> str:
    """``Summary: ...; passed`` or ``...; FAILED: <why>`` (one line, uncoloured)."""
    rec = result.recording
    numbers = counts(result)
    if result.failed:
        reasons = [name for name, n in (("check failures", numbers["checkFailures"]),
                                        ("deployment errors", numbers["stateErrors"]),
                                        ("mandatory policy violations", numbers["mandatory"])) if n]
        verdict = "FAILED: " + ", ".join(reasons)
    else:
        verdict = "passed"
    ops = ", ".join(f"{n} {op}" for op, n in numbers["changes"].items()) if result.prior is not None else ""
    config = f" ({numbers['config']} config)" if numbers["config"] else ""
    return (f"Summary: {numbers['mandatory']} mandatory, {numbers['advisory']} advisory{config}, "
            f"{numbers['remediated']} remediated, {numbers['notApplicable']} not applicable, "
            f"{numbers['notRun']} not run; {numbers['checkFailures']} check failures; "
            f"{len(rec.resources)} resources{f' ({ops})' if ops else ''}; {verdict}")


def _summary_lines(result: PlanResult, style: Style) -> list[str]:
    """The summary line, wrapped to the width, with the verdict coloured."""
    # Broken only between its "; " parts, so the verdict stays whole on the last line.
    lines = [""]
    for part in summary_line(result).split("; "):
        if lines[-1] and len(lines[-1]) + 2 + len(part) > WIDTH:
            lines[-1] += ";"
            lines.append("  " + part)
        else:
            lines[-1] += ("; " if lines[-1] else "") + part
    word, color = ("FAILED", "red") if result.failed else ("passed", "green")
    return [line[: line.rindex(word)] + style(color, word) + line[line.rindex(word) + len(word):]
            if word in line else line for line in lines]


def _output_lines(result: PlanResult, clean: Callable[[str], str]) -> list[str]:
    from sarkops.plan.runtime import masked

    if not result.recording.outputs:
        return []
    lines = ["Outputs (long values shortened; --json has them in full):"]
    for key, value in sorted(masked(result.recording.outputs).items()):
        shown = value if isinstance(value, str) else json.dumps(value)
        lines.append(shorten(clean(f"  {key}: {one_line(shown)}")))
    return [*lines, ""]


def render_text(result: PlanResult, *, quiet: bool = False, color: bool = False) -> str:
    """The human report; ``quiet``: findings and summary only; ``color``: ANSI colours."""
    style = Style(color)
    scrub = scrubber(result)
    rec = result.recording
    found = findings(result)
    # Scrub before fitting and colouring: a secret cut short would no longer be recognised.
    found = [Finding(f.source, f.level, f.urn, scrub.text(f.message), rule=f.rule, pack=f.pack,
                     severity=f.severity, file=f.file, line=f.line) for f in found]
    summary = _summary_lines(result, style)
    if quiet:
        lines = [*_findings_lines(found, style), *_not_run_lines(result, found, quiet=True, clean=scrub.text),
                 *summary]
        return _finish(lines, scrub.text)
    custom = sum(1 for r in rec.resources if r.custom)
    lines = [
        shorten(f"Offline plan of {rec.project}/{rec.stack} (mocks, no AWS calls): {len(rec.resources)} resources "
                f"({custom} custom, {len(rec.resources) - custom} components), {len(rec.invokes)} data-source calls"),
        shorten(f"Mode: {_mode_line(result)}"),
        *summary,
        "",
    ]
    if result.baseline is not None:
        lines += _baseline_lines(result.baseline)
    lines += _findings_lines(found, style)
    lines += _not_run_lines(result, found, quiet=False, clean=scrub.text)
    lines += _tree_lines(result, found, style)
    lines += _detail_lines(result, scrub.text)
    lines += _output_lines(result, scrub.text)
    found_warnings = warnings(result)
    if found_warnings:
        lines += ["Warnings:"]
        for warning in found_warnings:
            lines += wrap(scrub.text(warning), "  ", lines=MESSAGE_LINES)
        lines.append("")
    lines += summary
    return _finish(lines, scrub.text)


def _finish(lines: list[str], scrub: Callable[[str], str]) -> str:
    return "\n".join(scrub(line) for line in lines) + "\n"
