"""Read a ``pulumi stack export`` document: the prior state a preview compares the program with.

Format: deployment version 3, as ``pulumi stack export`` writes it (pulumi/pulumi
``sdk/go/common/apitype/core.go``, ``DeploymentV3`` and ``ResourceV3``)::

    {"version": 3, "deployment": {"manifest": {...}, "resources": [
        {"urn": ..., "custom": true, "id": ..., "type": ..., "inputs": {...}, "outputs": {...},
         "parent": ..., "protect": true, "dependencies": [...], "propertyDependencies": {...}}, ...]}}

Secret values appear as ``{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
"ciphertext": ...}`` (or ``"plaintext"`` with ``--show-secrets``). Ciphertext cannot be decrypted
offline, so such a value compares equal to whatever the program now sends: a changed secret is
not detected (README).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarkops.errors import SarkopsError
from sarkops.plan.files import read_json

_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 (the rpc secret signature)
ENCRYPTED = "[encrypted]"
"""What a ciphertext-only secret becomes (inside a secret wrapper): never compared."""


class StateFileError(SarkopsError):
    """The ``--state`` file is missing, not JSON, or not a version-3 deployment."""


@dataclass(frozen=True)
class StateResource:
    """One resource of the prior state."""

    urn: str
    type: str
    custom: bool
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str | None = None
    protect: bool = False
    dependencies: tuple[str, ...] = ()
    pending_delete: bool = False

    @property
    def name(self) -> str:
        """The logical name (the URN's last part)."""
        return self.urn.split("::", 3)[-1] if self.urn.count("::") >= 3 else self.urn


@dataclass(frozen=True)
class PriorState:
    """The resources of a stack export, by URN."""

    path: str
    resources: dict[str, StateResource] = field(default_factory=dict)

    def get(self, urn: str) -> StateResource | None:
        """The live (not pending-delete) resource with this URN, if any."""
        resource = self.resources.get(urn)
        return resource if resource is not None and not resource.pending_delete else None


def _decode(value: Any) -> Any:
    """State values as the recording holds them: secrets wrapped like rpc secrets."""
    from pulumi.runtime import rpc

    if isinstance(value, dict):
        if value.get(_SIG) == _SECRET_SIG:
            if "plaintext" in value:
                try:
                    return rpc.wrap_rpc_secret(_decode(json.loads(value["plaintext"])))
                except (TypeError, ValueError):
                    return rpc.wrap_rpc_secret(value["plaintext"])
            return rpc.wrap_rpc_secret(ENCRYPTED)
        return {k: _decode(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _need(condition: bool, path: Path | str, what: str) -> None:
    if not condition:
        raise StateFileError(f"{path}: not a `pulumi stack export` document (deployment version 3): {what}")


def parse_state(data: Any, path: Path | str = "<state>") -> PriorState:
    """A :class:`PriorState` from an already parsed export document."""
    _need(isinstance(data, Mapping), path, "expected a JSON object")
    version = data.get("version")
    if version != 3:
        raise StateFileError(f"{path}: deployment version {version!r} is not supported (allowed: 3, what "
                             "`pulumi stack export` writes)")
    deployment = data.get("deployment")
    _need(isinstance(deployment, Mapping), path, "no `deployment` object")
    resources = deployment.get("resources") or []
    _need(isinstance(resources, list), path, "`deployment.resources` must be a list")
    found: dict[str, StateResource] = {}
    for index, item in enumerate(resources):
        _need(isinstance(item, Mapping) and isinstance(item.get("urn"), str) and isinstance(item.get("type"), str),
              path, f"resources[{index}] needs a string `urn` and `type`")
        resource = StateResource(
            urn=item["urn"], type=item["type"], custom=bool(item.get("custom", False)), id=str(item.get("id") or ""),
            inputs=_decode(item.get("inputs") or {}), outputs=_decode(item.get("outputs") or {}),
            parent=item.get("parent") or None, protect=bool(item.get("protect", False)),
            dependencies=tuple(item.get("dependencies") or ()), pending_delete=bool(item.get("delete", False)))
        if resource.urn in found and resource.pending_delete:
            continue  # a replaced resource's old copy waiting for deletion: the live one wins
        found[resource.urn] = resource
    return PriorState(path=str(path), resources=found)


def read_state(path: Path | str) -> PriorState:
    """Parse the ``--state`` file."""
    path = Path(path)
    return parse_state(read_json(path, "the state file", StateFileError), path)
