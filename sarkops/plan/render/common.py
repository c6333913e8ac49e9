"""What every report shares: secret scrubbing, stable ordering, resource labels."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sarkops.plan.planner import PlanResult
    from sarkops.plan.policy_runner import Violation

_MIN_SCRUB_LENGTH = 4  # shorter secrets ("1", "on") would blank out unrelated text

OP_MARKERS = {"create": "+", "update": "~", "replace": "+-", "delete": "-", "same": " "}
"""The CLI's step markers."""

LEVEL_ORDER = {"mandatory": 0, "advisory": 1, "remediate": 2, "disabled": 3}
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "": 4}


class Scrubber:
    """Replaces secret text inside any string, longest secrets first."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= _MIN_SCRUB_LENGTH}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, "[secret]")
        return value

    def deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value


def scrubber(result: PlanResult) -> Scrubber:
    """Everything secret in this plan: recorded values, secret config, remediated values, prior state."""
    from sarkops.plan.runtime import secret_strings

    secrets = set(result.recording.secret_strings())
    secrets |= {result.config.values[k] for k in result.config.secret_keys if k in result.config.values}
    for remediation in result.report.remediations:
        for before, after in remediation.changed.values():
            secrets |= secret_strings(before) | secret_strings(after)
    if result.prior is not None:
        for resource in result.prior.resources.values():
            secrets |= secret_strings(resource.inputs) | secret_strings(resource.outputs)
    return Scrubber(secrets)


def stable(value: Any) -> Any:
    """Dicts with sorted keys, recursively, so the JSON is byte-for-byte stable between runs."""
    if isinstance(value, dict):
        return {k: stable(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def urn_type_name(urn: str) -> tuple[str, str]:
    """``(type, name)`` from a URN (``("", "")`` for the stack-level ``""``)."""
    if not urn:
        return "", ""
    parts = urn.split("::")
    if len(parts) < 4:
        return "", urn
    return parts[2].rsplit("$", 1)[-1], "::".join(parts[3:])


def resource_label(urn: str) -> str:
    """``<type> <name>``, or ``the stack``."""
    type_, name = urn_type_name(urn)
    return f"{type_} {name}" if type_ else "the stack"


def one_line(text: str) -> str:
    """Multi-line text on one line."""
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def ordered_violations(result: PlanResult) -> list[Violation]:
    """Mandatory first, then by severity, pack, policy and the resource's place in the program."""
    position = {r.urn: i for i, r in enumerate(result.recording.resources)}
    return sorted(result.report.violations, key=lambda v: (
        LEVEL_ORDER.get(v.enforcement_level, 9), SEVERITY_ORDER.get(v.severity, 9), v.pack, v.policy,
        position.get(v.urn, -1), v.message))


def counts(result: PlanResult) -> dict[str, Any]:
    """The summary numbers both reports print."""
    from sarkops.plan.config_findings import placeholders

    report = result.report
    ops: dict[str, int] = {}
    for change in result.changes:
        ops[change.op] = ops.get(change.op, 0) + 1
    config = len(placeholders(result.recording.outputs))
    # Example values are advisories too (they do not fail a preview); `config` says how many of them.
    return {"mandatory": len(report.at_level("mandatory")), "advisory": len(report.at_level("advisory")) + config,
            "config": config,
            "remediated": len(report.remediations), "notApplicable": len(report.not_applicable),
            "notRun": len(report.not_run), "checkFailures": len(result.recording.check_failures),
            "stateErrors": len(result.state_errors), "changes": dict(sorted(ops.items()))}


def warnings(result: PlanResult) -> list[str]:
    """Config, program and pack warnings (not the program's warnings about example values: those are findings)."""
    from sarkops.plan.config_findings import placeholders

    reported = {p.message for p in placeholders(result.recording.outputs)}
    logged = [f"program {level}: {message}" for level, message in result.recording.logs
              if not (level == "warning" and message in reported)]
    return [*result.config.warnings, *logged, *result.report.warnings]
