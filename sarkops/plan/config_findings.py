"""Findings about the stack's config itself (source ``config``): example values to replace before ``pulumi up``.

The program decides what is an example (``stack_config.Placeholder``, ``_find_placeholders``) and
exports the list as the non-secret stack output ``placeholders``; a preview with them is fine,
an update refuses to run. The plan turns each entry into one ADVISORY finding worded "set before
`pulumi up`", located at the line of ``Pulumi.<stack>.yaml`` that sets the key (the list item
for a list value), or at its declaration in ``Pulumi.yaml`` when the value is the project's
default. They never fail the plan: a preview with example values is what the repository ships.

An entry is either the program's string, ``<key>: <JSON value> is <why>; set before `pulumi up```
(what ``str(Placeholder)`` gives), or an object ``{"key": ..., "value": ..., "why": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sarkops.errors import ProgramError

if TYPE_CHECKING:
    from sarkops.plan.findings import Finding
    from sarkops.plan.planner import PlanResult

PLACEHOLDERS_OUTPUT = "placeholders"
RULE = "config-placeholder"
ADVICE = "set before `pulumi up`"


@dataclass(frozen=True)
class Placeholder:
    """One example value the program reported."""

    key: str
    value: Any
    message: str


def _parse(entry: Any) -> Placeholder:
    if isinstance(entry, Mapping) and isinstance(entry.get("key"), str) and "value" in entry:
        why = entry.get("why") or "an example value"
        return Placeholder(entry["key"], entry["value"],
                           f"{entry['key']}: {json.dumps(entry['value'])} is {why}; {ADVICE}")
    if isinstance(entry, str) and ": " in entry:
        key, rest = entry.split(": ", 1)
        try:
            value, _ = json.JSONDecoder().raw_decode(rest)
        except ValueError:
            value = None
        message = entry if ADVICE in entry else f"{entry}; {ADVICE}"
        return Placeholder(key, value, message)
    raise ProgramError(f"stack output `{PLACEHOLDERS_OUTPUT}`: entry {json.dumps(entry)[:80]} is not allowed; expected "
                       "`<key>: <value> is <why>` or an object with `key`, `value` and `why`")


def placeholders(outputs: Mapping[str, Any]) -> list[Placeholder]:
    """The example values in a plan's stack outputs (none if the program exports no ``placeholders``)."""
    from sarkops.plan.runtime import contains_secret, is_unknown

    raw = outputs.get(PLACEHOLDERS_OUTPUT)
    if raw is None:
        return []
    if contains_secret(raw) or is_unknown(raw):
        # A secret list would have to be printed to be useful; an unknown one cannot be read.
        raise ProgramError(f"stack output `{PLACEHOLDERS_OUTPUT}` must be a plain (non-secret, known) list")
    if not isinstance(raw, list):
        raise ProgramError(f"stack output `{PLACEHOLDERS_OUTPUT}`: {json.dumps(raw)[:80]} is not allowed; "
                           "expected a list")
    return [_parse(entry) for entry in raw]


@cache
def _config_nodes(path: Path, mtime: float) -> dict[str, Any]:
    """Key -> YAML value node of the ``config`` section of ``path`` (with line numbers)."""
    import yaml

    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(root, yaml.MappingNode):
        return {}
    for key_node, value_node in root.value:
        if key_node.value == "config" and isinstance(value_node, yaml.MappingNode):
            return {k.value: (k, v) for k, v in value_node.value}
    return {}


def key_line(path: Path, key: str, value: Any = None) -> int:
    """1-based line of ``path``'s ``config`` section that sets ``key`` (to ``value``, for a list item); 0 if none."""
    import yaml

    if not path.is_file():
        return 0
    nodes = _config_nodes(path, path.stat().st_mtime)
    short = key.split(":", 1)[1] if ":" in key else key
    found = nodes.get(key) or nodes.get(short)
    if found is None:
        return 0
    key_node, value_node = found
    if isinstance(value_node, yaml.SequenceNode):
        for item in value_node.value:
            if isinstance(item, yaml.ScalarNode) and item.value == value:
                return item.start_mark.line + 1
    return key_node.start_mark.line + 1


def config_findings(result: PlanResult) -> list[Finding]:
    """One advisory finding per example value, at the config line that sets it."""
    from sarkops.plan.findings import Finding
    from sarkops.plan.project import stack_file

    project = result.project
    files = [stack_file(project, result.stack), project.dir / "Pulumi.yaml"]
    found = []
    for placeholder in placeholders(result.recording.outputs):
        file, line = "", 0
        for path in files:
            line = key_line(path, placeholder.key, placeholder.value)
            if line:
                file = path.relative_to(project.dir).as_posix()
                break
        found.append(Finding("config", "advisory", "", placeholder.message, rule=placeholder.key,
                             file=file, line=line))
    return found
