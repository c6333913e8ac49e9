"""Which resource a reference points at, decided the way a first preview allows.

A side resource names the resource it belongs to by a value computed from that resource's
outputs (``bucket=bucket.id``, ``secret_id=secret.arn``). In a first preview that value is
unknown, but the engine still sends the property dependency: ``property_dependencies[key]``
lists the resources the value was computed from (pulumi/pulumi ``step_generator.go``,
``AnalyzeResources``: ``PropertyDependencies`` of each resource's goal). So the dependency
decides first; only a value with no dependency (a literal, or an existing resource's name) is
compared with the target's names, and a value that is unknown without a dependency is waited
for by name (:func:`~._base.wait_for`).
"""

from __future__ import annotations

from collections.abc import Sequence

from pulumi_policy import PolicyResource

from ._base import wait_for
from ._props import UNKNOWN, known


def refers(resource: PolicyResource, key: str, target: PolicyResource, match: Sequence[str] = ("id",)) -> bool:
    """Whether ``resource.props[key]`` came from ``target`` (dependency) or names it (one of ``match``)."""
    dependencies = resource.property_dependencies.get(key)
    if dependencies:
        return target in dependencies
    value = known(resource.props, key)
    if value is UNKNOWN:
        wait_for(f"{resource.name}.{key}")
        return False
    if value is None:
        return False
    names = [known(target.props, m) for m in match]
    return any(n is not UNKNOWN and n is not None and n == value for n in names)


def linked(resource: PolicyResource, key: str, candidates: Sequence[PolicyResource],
           match: Sequence[str] = ("id",)) -> PolicyResource | None:
    """The first of ``candidates`` that ``resource.props[key]`` refers to (see :func:`refers`)."""
    return next((c for c in candidates if refers(resource, key, c, match)), None)


def undecided(resource: PolicyResource, key: str) -> bool:
    """Whether ``resource.props[key]`` cannot be resolved yet: unknown, with no dependency to say
    where it came from. A rule that would report a missing link then waits instead."""
    if resource.property_dependencies.get(key):
        return False
    if known(resource.props, key) is UNKNOWN:
        wait_for(f"{resource.name}.{key}")
        return True
    return False


def linked_from(resources: Sequence[PolicyResource], key: str, target: PolicyResource,
                match: Sequence[str] = ("id",)) -> PolicyResource | None:
    """The first of ``resources`` whose ``key`` refers to ``target`` (see :func:`refers`)."""
    return next((r for r in resources if refers(r, key, target, match)), None)
