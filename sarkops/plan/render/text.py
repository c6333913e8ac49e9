"""The human report of a plan.

Layout: what kind of preview this is; the baseline comparison (``--baseline``) first, since a
reviewer wants "what does this change do" before anything else; the resource tree with each
resource's operation; check failures and state errors (a real deployment fails on them); the
policy results, the policies that could not run, not-applicable results and exemptions;
outputs (unknowns as ``[unknown]``); warnings; the summary.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sarkops.plan.render.common import (
    OP_MARKERS,
    counts,
    one_line,
    ordered_violations,
    resource_label,
    scrubber,
    urn_type_name,
    warnings,
)

if TYPE_CHECKING:
    from sarkops.plan.planner import PlanResult


def _tree_lines(result: PlanResult) -> list[str]:
    rec = result.recording
    changes = {c.urn: c for c in result.changes}
    show_ops = result.prior is not None
    children: dict[str, list[Any]] = {}
    known = {r.urn for r in rec.resources}
    for resource in rec.resources:
        parent = resource.parent if resource.parent in known else rec.stack_urn
        children.setdefault(parent, []).append(resource)
    lines = [f"  pulumi:pulumi:Stack {rec.project}-{rec.stack}"]

    def label(resource: Any) -> str:
        change = changes.get(resource.urn)
        text = f"{resource.type} {resource.name}"
        if resource.protect:
            text += " [protected]"
        if show_ops and change is not None and change.op in ("update", "replace"):
            text += f" ({change.op}: {', '.join(change.changed_inputs)}"
            text += f"; replacement forced by {', '.join(change.replace_keys)})" if change.replace_keys else ")"
        return text

    def walk(urn: str, depth: int) -> None:
        for child in children.get(urn, []):
            change = changes.get(child.urn)
            marker = OP_MARKERS.get(change.op, " ") if show_ops and change is not None else " "
            lines.append(f"{marker:>2}{'  ' * depth}{label(child)}")
            walk(child.urn, depth + 1)

    walk(rec.stack_urn, 1)
    if show_ops:
        for change in result.changes:
            if change.op == "delete":
                type_, name = urn_type_name(change.urn)
                lines.append(f" -  {type_} {name} (delete: in the state, not in the program)")
    return lines


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
    return [*lines, ""]


def _mode_line(result: PlanResult) -> str:
    if result.prior is not None:
        return f"preview of an update against the state in {result.prior.path}"
    if result.first_preview:
        return "first preview of a new stack: computed outputs are [unknown]"
    return "--known-outputs: every output is a mock value (not what a first preview knows)"


def _problem_lines(result: PlanResult) -> list[str]:
    lines: list[str] = []
    failures = result.check_failures
    if failures:
        lines += [f"Check failures ({len(failures)}): the provider refuses these; a real preview fails"]
        lines += [f"  {resource_label(f.urn)} {f.property}: {one_line(f.message)}" for f in failures]
        lines.append("")
    if result.state_errors:
        lines += [f"Deployment errors ({len(result.state_errors)}):"]
        lines += [f"  [{e.when}] {resource_label(e.urn)}: {one_line(e.message)}" for e in result.state_errors]
        lines.append("")

    return lines


def _policy_lines(result: PlanResult) -> list[str]:
    report = result.report
    lines: list[str] = []
    if result.packs:
        packs = ", ".join(f"{p.name}@{p.version} ({len(p.policies)} policies)" for p in result.packs)
        lines.append(f"Policy packs: {packs}")
    else:
        lines.append("Policy packs: none (no ./policies and no --policy-pack)")

    ordered = ordered_violations(result)
    for level, title in (("mandatory", "Mandatory violations"), ("advisory", "Advisory violations"),
                         ("remediate", "Remediated")):
        group = [v for v in ordered if v.enforcement_level == level]
        lines.append("")
        lines.append(f"{title} ({len(group)}):" if group else f"{title}: none")
        for violation in group:
            severity = f" [{violation.severity}]" if violation.severity else ""
            lines.append(f"  {violation.policy}{severity} on {resource_label(violation.urn)}: "
                         f"{one_line(violation.detail or violation.message)}")

    if report.not_run:
        policies = sorted({n.policy for n in report.not_run})
        lines += ["", f"Policies not run during the preview ({len(policies)} policies, {len(report.not_run)} "
                      "results): these rules were NOT applied"]
        lines += [f"  {n.policy} on {resource_label(n.urn)}: {one_line(n.reason)}" for n in report.not_run]
    if report.not_applicable:
        lines += ["", f"Not applicable ({len(report.not_applicable)}):"]
        lines += [f"  {n.policy} on {resource_label(n.urn)}: {one_line(n.reason)}"
                  + (" [exemption]" if n.exemption else "") for n in report.not_applicable]
    if report.exemptions:
        lines += ["", f"Exemptions configured ({len(report.exemptions)}):"]
        for exemption in report.exemptions:
            names = ", ".join(resource_label(urn) for urn in exemption.matches) or \
                f"{exemption.resource} (names NO resource of this stack)"
            lines.append(f"  {exemption.pack}: {exemption.policy} on {names}: {one_line(exemption.reason)}")

    return lines


def _summary_line(result: PlanResult) -> str:
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
    return (f"Summary: {numbers['mandatory']} mandatory, {numbers['advisory']} advisory, "
                  f"{numbers['remediated']} remediated, {numbers['notApplicable']} not applicable, "
                  f"{numbers['notRun']} not run; {numbers['checkFailures']} check failures; "
                  f"{len(rec.resources)} resources{f' ({ops})' if ops else ''}; {verdict}")


def render_text(result: PlanResult) -> str:
    """The human report."""
    from sarkops.plan.runtime import masked

    rec = result.recording
    scrub = scrubber(result)
    custom = sum(1 for r in rec.resources if r.custom)
    lines = [
        f"Offline plan of {rec.project}/{rec.stack} (preview under mocks, no AWS calls): "
        f"{len(rec.resources)} resources ({custom} custom, {len(rec.resources) - custom} components), "
        f"{len(rec.invokes)} data-source calls",
        f"Mode: {_mode_line(result)}",
        "",
    ]
    if result.baseline is not None:
        lines += _baseline_lines(result.baseline)
    lines += ["Resources:", *_tree_lines(result), ""]

    lines += _problem_lines(result)
    lines += _policy_lines(result)

    if rec.outputs:
        lines += ["", "Outputs:"]
        for key, value in sorted(masked(rec.outputs).items()):
            shown = value if isinstance(value, str) else json.dumps(value)
            lines.append(f"  {key}: {shown}")
    found_warnings = warnings(result)
    if found_warnings:
        lines += ["", "Warnings:", *(f"  {w}" for w in found_warnings)]

    lines += ["", _summary_line(result)]
    return "\n".join(scrub.text(line) for line in lines) + "\n"
