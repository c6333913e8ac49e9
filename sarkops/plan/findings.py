"""One list of everything a reviewer must look at, whatever produced it.

Each :class:`Finding` names a resource (URN, ``""`` for the stack), a source (``check``,
``state``, ``policy``, ``config``, ``not-run``), a level, a message and, where one is known, the
program line that created the resource (``file``/``line``, relative to the project dir; for
``config`` findings the line of the stack's config file). The text report lays it out
findings-first and marks resources in the tree; :mod:`sarkops.plan.render.sarif` writes it as
SARIF; ``--json`` carries it as ``findings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sarkops.plan.planner import PlanResult

LEVELS = ("error", "mandatory", "advisory", "remediate", "disabled", "note")
"""Levels, most severe first. ``error``: the deployment itself fails (check failures, state errors)."""

SOURCES = ("check", "state", "policy", "config", "not-run")
"""Sources, in the order findings of one level are listed."""


@dataclass(frozen=True)
class Finding:
    """One thing the plan found."""

    source: str
    """``policy``, ``check`` (provider Check), ``state`` (replace/delete of protected), ``config``
    (an example value in the stack's config), ``not-run`` (a policy that could not decide)."""
    level: str
    urn: str
    message: str
    rule: str = ""
    """Policy name, the property a check failure is about, the operation of a state error, or the config key."""
    pack: str = ""
    severity: str = ""
    file: str = ""
    """Where: the program file that created the resource (relative to the project dir), ``""`` if unknown."""
    line: int = 0
    """1-based line in ``file``; 0 if unknown."""

    @property
    def fails(self) -> bool:
        """True if this finding alone fails the plan (exit 1)."""
        return self.level in ("error", "mandatory")


def findings(result: PlanResult) -> list[Finding]:
    """Every finding of ``result``: errors first, then policy results by level, with source positions."""
    from sarkops.plan.config_findings import config_findings

    positions = {r.urn: (r.source.relative_to(result.project.dir), r.source.line)
                 for r in result.recording.resources if r.source is not None}
    found: list[Finding] = []
    for f in result.check_failures:
        file, line = positions.get(f.urn, ("", 0))
        found.append(Finding("check", "error", f.urn, f.message, rule=f.property, file=file, line=line))
    for e in result.state_errors:
        file, line = positions.get(e.urn, ("", 0))
        found.append(Finding("state", "error", e.urn, e.message, rule=e.op, file=file, line=line))
    not_run = {(n.pack, n.policy, n.urn) for n in result.report.not_run}
    for v in result.report.violations:
        source = "not-run" if (v.pack, v.policy, v.urn) in not_run and v.enforcement_level == "advisory" else "policy"
        file, line = positions.get(v.urn, ("", 0))
        found.append(Finding(source, v.enforcement_level, v.urn, v.detail or v.message, rule=v.policy, pack=v.pack,
                             severity=v.severity, file=file, line=line))
    found += config_findings(result)
    level_order = {level: i for i, level in enumerate(LEVELS)}
    source_order = {source: i for i, source in enumerate(SOURCES)}
    return sorted(found, key=lambda f: (level_order.get(f.level, len(LEVELS)), source_order.get(f.source, 9)))
