"""What a preview would do to each resource, given the prior state: create, update, replace, same, delete.

The operation follows the engine's step generator (pulumi/pulumi
``pkg/resource/deploy/step_generator.go``): a URN the state lacks is a create; one whose
inputs are unchanged is a same; one whose inputs changed is an update, or a replace when a
changed property forces one (:mod:`sarkops.plan.provider.replacements`); a URN in the state
that the program no longer registers is a delete (default providers excepted: the engine
creates those itself).

Two outcomes fail a real deployment and are reported as errors:

- replacing a resource that is ``protect``-ed in both the state and the program fails the
  preview itself, with the engine's message (``unable to replace resource ... as it is
  currently marked for protection``);
- deleting a ``protect``-ed resource fails ``pulumi up`` (``deleteProtectedError`` in
  ``pkg/resource/deploy/step.go``: ``resource ... cannot be deleted because it is protected``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sarkops.plan.provider.replacements import replacement_keys
from sarkops.plan.state import ENCRYPTED, PriorState, StateResource

OPS = ("create", "replace", "update", "delete", "same")
"""Operations, most consequential first."""


@dataclass(frozen=True)
class Change:
    """The operation a preview plans for one resource."""

    urn: str
    type: str
    op: str
    changed_inputs: tuple[str, ...] = ()
    """Input keys whose value differs from the state (updates and replacements)."""
    replace_keys: tuple[str, ...] = ()
    """The changed properties that force the replacement."""


@dataclass(frozen=True)
class StateError:
    """A planned operation a real deployment refuses."""

    urn: str
    op: str
    message: str
    when: str
    """``preview`` (the preview itself fails) or ``update`` (``pulumi up`` fails)."""


def _normalize(value: Any) -> Any:
    from pulumi.runtime import rpc

    if rpc.is_rpc_secret(value):
        inner = value["value"]
        return _ANY if inner == ENCRYPTED else _normalize(inner)
    if isinstance(value, Mapping):
        return {k: _normalize(v) for k, v in value.items() if v is not None and not str(k).startswith("__")}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


class _Anything:
    """An encrypted state secret: offline it cannot be compared, so it equals anything."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0


_ANY = _Anything()


def _equal(old: Any, new: Any) -> bool:
    return bool(new == old) if isinstance(old, _Anything) else bool(old == new)


def changed_keys(old_inputs: Mapping[str, Any], new_inputs: Mapping[str, Any]) -> list[str]:
    """Input keys whose values differ (unknown new values count as changes, as in the engine's diff)."""
    old, new = _normalize(old_inputs), _normalize(new_inputs)
    return sorted(key for key in set(old) | set(new) if not _equal(old.get(key), new.get(key)))


def classify(urn: str, type_: str, inputs: Mapping[str, Any], old: StateResource | None,
             replace_on_changes: Sequence[str] = ()) -> Change:
    """The operation for a resource the program registers."""
    if old is None:
        return Change(urn, type_, "create")
    changed = changed_keys(old.inputs, inputs)
    if not changed:
        return Change(urn, type_, "same")
    forced = replacement_keys(type_, old.inputs, inputs, old_outputs=old.outputs, changed=changed,
                              replace_on_changes=replace_on_changes)
    return Change(urn, type_, "replace" if forced else "update", tuple(changed), tuple(forced))


def _engine_owned(resource: StateResource) -> bool:
    """The root stack and default providers are the engine's, never the program's to delete."""
    if resource.type == "pulumi:pulumi:Stack":
        return True
    return resource.type.startswith("pulumi:providers:") and resource.name.startswith("default")


def deletions(prior: PriorState, registered: Iterable[str]) -> list[Change]:
    """State resources the program no longer registers, in state order."""
    seen = set(registered)
    return [Change(r.urn, r.type, "delete") for r in prior.resources.values()
            if r.urn not in seen and not r.pending_delete and not _engine_owned(r)]


def protection_errors(changes: Iterable[Change], prior: PriorState, protected: Mapping[str, bool]) -> list[StateError]:
    """The engine's errors for replacing or deleting ``protect``-ed resources."""
    errors = []
    for change in changes:
        old = prior.get(change.urn)
        if old is None or not old.protect:
            continue
        if change.op == "replace" and protected.get(change.urn, False):
            errors.append(StateError(change.urn, change.op, (
                f'unable to replace resource "{change.urn}"\nas it is currently marked for protection. To unprotect '
                "the resource, remove the `protect` flag from the resource in your Pulumi program and run "
                f"`pulumi up` (replacement forced by: {', '.join(change.replace_keys)})"), "preview"))
        elif change.op == "delete":
            errors.append(StateError(change.urn, change.op, (
                f'resource "{change.urn}" cannot be deleted\nbecause it is protected. To unprotect the resource, '
                "either remove the `protect` flag from the resource in your Pulumi program and run `pulumi up`, "
                f"or use the command:\n`pulumi state unprotect '{change.urn}'`"), "update"))
    return errors
