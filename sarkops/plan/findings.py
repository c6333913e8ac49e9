"""One list of everything a reviewer must look at, whatever produced it.

Each :class:`Finding` names a resource (URN, ``""`` for the stack), a source (``policy``,
``check``, ``state``, ``not-run``), a level and a message, so reports can be laid out
findings-first, mark resources in the tree, or be written in other formats (SARIF) from one
model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sarkops.plan.planner import PlanResult

LEVELS = ("error", "mandatory", "advisory", "remediate", "disabled", "note")
"""Levels, most severe first. ``error``: the deployment itself fails (check failures, state errors)."""


@dataclass(frozen=True)
class Finding:
    """One thing the plan found."""

    source: str
    """``policy``, ``check`` (provider Check), ``state`` (replace/delete of protected), ``not-run``."""
    level: str
    urn: str
    message: str
    rule: str = ""
    """Policy name, or the property a check failure is about."""
    pack: str = ""
    severity: str = ""


def findings(result: PlanResult) -> list[Finding]:
    """Every finding of ``result``: errors first, then policy results by level."""
    found = [Finding("check", "error", f.urn, f.message, rule=f.property) for f in result.check_failures]
    found += [Finding("state", "error", e.urn, e.message, rule=e.op) for e in result.state_errors]
    not_run = {(n.pack, n.policy, n.urn) for n in result.report.not_run}
    for v in result.report.violations:
        source = "not-run" if (v.pack, v.policy, v.urn) in not_run and v.enforcement_level == "advisory" else "policy"
        found.append(Finding(source, v.enforcement_level, v.urn, v.detail or v.message, rule=v.policy, pack=v.pack,
                             severity=v.severity))
    order = {level: i for i, level in enumerate(LEVELS)}
    return sorted(found, key=lambda f: order.get(f.level, len(LEVELS)))
