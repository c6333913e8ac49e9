"""Compare a plan with an earlier plan's ``--json`` (e.g. the base branch's): what this change does.

``--baseline PLAN.json`` adds::

    "baseline": {"file": ..., "added": [urn...], "removed": [urn...],
                 "changed": [{"urn": ..., "inputs": [keys...]}],
                 "newViolations": [...], "fixedViolations": [...]}

Inputs are compared as both documents print them (secrets ``"[secret]"``, unknowns
``"[unknown]"``), so a secret's new value does not show as a change, and neither does a value
that is unknown in both plans. A violation is the same in both plans when its pack, policy,
resource, level and message are.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sarkops.errors import SarkopsError
from sarkops.plan.files import read_json


class BaselineError(SarkopsError):
    """The ``--baseline`` file is missing or not a ``sarkops plan --json`` document."""


def read_baseline(path: Path | str) -> dict[str, Any]:
    """Parse a ``sarkops plan --json`` document."""
    path = Path(path)
    data = read_json(path, "the baseline plan", BaselineError)
    if not isinstance(data, dict) or not isinstance(data.get("resources"), list) or "violations" not in data:
        raise BaselineError(f"{path}: not a `sarkops plan --json` document (needs `resources` and `violations`)")
    return data


def _violation_key(violation: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(violation.get(k, "")) for k in ("pack", "policy", "urn", "enforcementLevel", "message"))


def _present(resources: Any) -> dict[str, Mapping[str, Any]]:
    return {str(r.get("urn")): r for r in resources or [] if isinstance(r, Mapping) and r.get("op") != "delete"}


def compare(current: Mapping[str, Any], baseline: Mapping[str, Any], *, source: str = "") -> dict[str, Any]:
    """The ``baseline`` section for ``current`` (a plan's JSON) against ``baseline`` (an earlier one)."""
    now, before = _present(current.get("resources")), _present(baseline.get("resources"))
    changed = []
    for urn in now:
        if urn in before:
            old_inputs, new_inputs = before[urn].get("inputs") or {}, now[urn].get("inputs") or {}
            keys = sorted(k for k in set(old_inputs) | set(new_inputs) if old_inputs.get(k) != new_inputs.get(k))
            if keys:
                changed.append({"urn": urn, "inputs": keys})
    old_violations = {_violation_key(v): v for v in baseline.get("violations") or []}
    new_violations = {_violation_key(v): v for v in current.get("violations") or []}
    return {
        "file": source,
        "added": [urn for urn in now if urn not in before],
        "removed": [urn for urn in before if urn not in now],
        "changed": changed,
        "newViolations": [v for key, v in new_violations.items() if key not in old_violations],
        "fixedViolations": [v for key, v in old_violations.items() if key not in new_violations],
    }
