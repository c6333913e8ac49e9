"""Plan the production program under the mocks, with config overrides, for the app-tier whole-stack tests."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path

from sarkops.plan.project import load_project, resolve_config
from sarkops.plan.runtime import Recording, run_program

ROOT = Path(__file__).resolve().parents[1]


@cache
def plan(*overrides: tuple[str, str]) -> Recording:
    """The production stack planned with ``-c key=value`` overrides (cached: the runs are pure)."""
    project = load_project(ROOT)
    config = resolve_config(project, "production", overrides)
    return run_program(ROOT, project=project.name, stack="production", config=config.values,
                       secret_keys=config.secret_keys)


def descendants(rec: Recording, urn: str) -> set[str]:
    """URNs of every resource below ``urn`` in the parent tree."""
    children: dict[str, list[str]] = {}
    for resource in rec.resources:
        if resource.parent:
            children.setdefault(resource.parent, []).append(resource.urn)
    found: set[str] = set()
    stack = [urn]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def upstream(rec: Recording, urns: Iterable[str]) -> set[str]:
    """Every resource that must exist before ``urns`` can be created, transitively.

    Edges are what the engine orders creation by: explicit dependencies and the resources
    each input came from (property dependencies). A dependency on a component stands for
    everything inside it, as the engine treats it.
    """
    by_urn = {r.urn: r for r in rec.resources}
    seen: set[str] = set()
    stack = list(urns)
    while stack:
        resource = by_urn.get(stack.pop())
        if resource is None:
            continue
        direct = set(resource.dependencies)
        for sources in resource.property_dependencies.values():
            direct.update(sources)
        for urn in list(direct):
            dependency = by_urn.get(urn)
            if dependency is not None and not dependency.custom:
                direct |= descendants(rec, urn)
        for urn in direct - seen:
            seen.add(urn)
            stack.append(urn)
    return seen
