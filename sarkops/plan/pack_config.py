"""Policy-pack configuration: each policy's effective config, validated with JSON Schema.

The order is the engine's (``ReconcilePolicyPackConfig`` in pulumi/pulumi
``pkg/resource/analyzer/config.go``): schema defaults, then the pack's ``initial_config``, then
the ``--policy-pack-config`` file (``"all"`` sets every level first); each policy's properties
(``enforcementLevel`` taken out) are then validated against its config schema with a JSON
Schema validator (the engine uses gojsonschema; here the ``jsonschema`` library, Draft 7).

One difference, on purpose: the engine wraps each schema as ``{"type": "object",
"properties": ..., "required": ...}`` (``convertSchema``), so a misspelled setting such as
``minDay`` for ``minDays`` passes there and is silently ignored, leaving the default in force.
Here the wrapper also says ``"additionalProperties": false``: the misspelling is an error that
names the file, the policy, the key and the closest setting.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sarkops.errors import PolicyPackError

if TYPE_CHECKING:
    from sarkops.plan.policy_runner import PolicyInfo

LEVELS = ("advisory", "mandatory", "remediate", "disabled")
"""Enforcement levels, as written in config files and reports."""


def level_name(level: Any) -> str:
    """An EnforcementLevel enum (or its value) as the lowercase config word."""
    return str(getattr(level, "value", level)).lower()


def check_level(pack: str, policy: str, level: Any, where: str) -> str:
    """``level`` as a word; raises naming the place when it is not an enforcement level."""
    word = level_name(level)
    if word not in LEVELS:
        raise PolicyPackError(f"{where}: policy pack {pack!r}, policy {policy!r}: enforcement level {level!r} "
                              f"is not allowed (allowed: {', '.join(LEVELS)})")
    return word


def _whole(value: Any) -> Any:
    """Schema numbers as ints where whole: they arrive as floats (protobuf Struct), and a bound
    reads better as ``35`` than ``35.0`` in a message."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


def _schema(info: PolicyInfo) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": _whole(dict(info.config_schema)),
                              "additionalProperties": False}
    if info.required:
        schema["required"] = list(info.required)
    return schema


def _path(error: Any) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path]
    return ".".join(parts).replace(".[", "[")


def schema_errors(info: PolicyInfo, properties: Mapping[str, Any]) -> list[str]:
    """Every way ``properties`` break the policy's config schema, one line each, naming the key."""
    import jsonschema

    validator = jsonschema.Draft7Validator(_schema(info))
    problems = []
    for error in sorted(validator.iter_errors(dict(properties)), key=lambda e: (list(e.absolute_path), e.message)):
        if error.validator == "additionalProperties" and not error.absolute_path:
            allowed = sorted(info.config_schema)
            for key in sorted(set(properties) - set(allowed)):
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                problems.append(f"key {key!r} is not a setting of this policy ({hint}settings: "
                                f"{', '.join(allowed) or 'none'})")
            continue
        where = _path(error)
        problems.append(f"key {where!r}: {error.message}" if where else error.message)
    return problems


def effective_config(
    pack: str,
    infos: Mapping[str, PolicyInfo],
    initial_config: Mapping[str, Any] | None,
    config: Mapping[str, Any] | None,
    *,
    source: str = "--policy-pack-config",
) -> dict[str, dict[str, Any]]:
    """Each policy's config as the engine reconciles it: schema defaults, then the pack's
    initial config, then ``config`` (``"all"`` sets every level first); then validated.

    :returns: policy name -> ``{"enforcementLevel": <word>, "properties": {...}}``.
    :raises PolicyPackError: unknown policy or level, or a value the policy's schema rejects.
    """
    result: dict[str, dict[str, Any]] = {}
    for name, info in infos.items():
        defaults = {key: spec["default"] for key, spec in info.config_schema.items()
                    if isinstance(spec, Mapping) and spec.get("default") is not None}
        result[name] = {"enforcementLevel": info.enforcement_level, "properties": defaults}

    def apply(overrides: Mapping[str, Any], where: str) -> None:
        if "all" in overrides:
            level = check_level(pack, "all", overrides["all"], where)
            for entry in result.values():
                entry["enforcementLevel"] = level
        for name, given in overrides.items():
            if name == "all":
                continue
            if name not in result:
                close = difflib.get_close_matches(name, list(result), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise PolicyPackError(f"{where}: policy pack {pack!r} has no policy {name!r} "
                                      f"({hint}policies: {', '.join(sorted(result))})")
            if isinstance(given, str) or hasattr(given, "value"):
                result[name]["enforcementLevel"] = check_level(pack, name, given, where)
                continue
            if not isinstance(given, Mapping):
                raise PolicyPackError(f"{where}: policy {name!r} of pack {pack!r}: expected an enforcement level "
                                      f"or an object, got {given!r}")
            for key, value in given.items():
                if key == "enforcementLevel":
                    if value is not None:
                        result[name]["enforcementLevel"] = check_level(pack, name, value, where)
                else:
                    result[name]["properties"][key] = value

    def validate(where: str) -> None:
        for name, entry in result.items():
            errors = schema_errors(infos[name], entry["properties"])
            if errors:
                raise PolicyPackError(f"{where}: policy pack {pack!r}, policy {name!r}: invalid config: "
                                      f"{'; '.join(errors)}")

    # The engine validates once, at the end; validating after each layer as well names the
    # layer (the pack's own initial config, or the file) that brought the bad value.
    if initial_config:
        apply(initial_config, f"policy pack {pack!r} initial_config")
        validate(f"policy pack {pack!r} initial_config")
    if config:
        apply(config, source)
    validate(source)
    return result
