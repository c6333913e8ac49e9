"""Provider Check, diff and preview outputs, applied in the engine's order to each registration."""


from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sarkops.plan.diff import Change, classify
from sarkops.plan.provider import names, unknowns
from sarkops.plan.provider.names import CheckFailure, NameCheck
from sarkops.plan.state import PriorState

__all__ = ["CheckFailure", "NameCheck", "ProviderEmulator"]


class ProviderEmulator:
    """Provider Check, diff and preview outputs for one program run.

    :param first_preview: outputs the provider computes are unknown for resources being
        created (the default of ``sarkops plan``); False keeps the mocks' concrete values
        everywhere (``--known-outputs``).
    :param prior: the stack's prior state (``--state``); None means the stack does not exist.
    """

    def __init__(self, *, first_preview: bool = True, prior: PriorState | None = None) -> None:
        self.first_preview = first_preview
        self.prior = prior
        self.check_failures: list[CheckFailure] = []
        self.changes: dict[str, Change] = {}
        self._lock = threading.Lock()  # registrations arrive on executor threads

    def check(self, urn: str, type_: str, name: str, inputs: Mapping[str, Any]) -> NameCheck:
        """The provider's Check: names filled in (known from here on) and the failures a preview shows."""
        from sarkops.plan.runtime import plain  # runtime imports this module

        old = self.prior.get(urn) if self.prior is not None else None
        result = names.check(type_, name, urn, plain(dict(inputs)), old.inputs if old else None,
                             is_unknown=lambda value: value == unknowns.UNKNOWN)
        with self._lock:
            self.check_failures.extend(result.failures)
        return result

    def diff(self, urn: str, type_: str, inputs: Mapping[str, Any], replace_on_changes: Sequence[str]) -> Change:
        """The operation on this resource (``create`` when there is no prior state)."""
        old = self.prior.get(urn) if self.prior is not None else None
        change = classify(urn, type_, inputs, old, replace_on_changes)
        with self._lock:
            self.changes[urn] = change
        return change

    def outputs(self, urn: str, mock_id: str | None, state: Mapping[str, Any], *, inputs: Collection[str],
                filled: Collection[str], change: Change) -> tuple[str, dict[str, Any]]:
        """``(id, outputs)`` the engine returns for this resource in the preview."""
        old = self.prior.get(urn) if self.prior is not None else None
        if old is not None and change.op in ("same", "update"):
            return unknowns.existing(old.id, old.outputs, state, inputs)
        if self.first_preview:
            return unknowns.created(state, inputs, filled)
        return str(mock_id or ""), dict(state)
