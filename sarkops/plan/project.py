"""Read a Pulumi project's ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml`` into the config map.

The result is what the Pulumi CLI hands a program: every key ``<namespace>:<name>``, every
value a string (non-strings JSON-encoded), project defaults filled in for keys the stack does
not set, ``-c`` overrides applied last. The CLI's own checks are repeated, each failing with
one :class:`~sarkops.errors.ConfigFileError` naming the file and key: a declared type the
value does not have, a required key without a value, a ``secret: true`` key stored in plain
text.

``secure:`` values cannot be decrypted offline (no secrets provider, no passphrase), so they
become the placeholder ``mock-secret-<name>`` (or ``0``/``false``/``[]`` for keys declared
integer, boolean or array) and the key is marked secret, which is all the program can observe
about them.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sarkops.errors import ConfigFileError

PROJECT_FILE = "Pulumi.yaml"
_SCHEMA_KEYS = frozenset({"type", "description", "default", "secret", "items", "value"})
_MISSING = object()
_INTEGER = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class ConfigKeySpec:
    """One key declared in the ``config:`` section of ``Pulumi.yaml``."""

    key: str
    """Full key, ``<namespace>:<name>``."""
    type: str | None = None
    description: str | None = None
    default: Any = _MISSING
    secret: bool = False

    @property
    def has_default(self) -> bool:
        """True if Pulumi.yaml gives a default (or project-wide value)."""
        return self.default is not _MISSING


@dataclass(frozen=True)
class Project:
    """The parts of ``Pulumi.yaml`` the plan needs."""

    dir: Path
    name: str
    main: Path
    """The program file to run."""
    keys: dict[str, ConfigKeySpec] = field(default_factory=dict)


@dataclass(frozen=True)
class StackConfig:
    """The config map for one stack, ready for ``pulumi.runtime.set_all_config``."""

    values: dict[str, str]
    secret_keys: list[str]
    warnings: list[str] = field(default_factory=list)
    """Things the plan cannot reproduce offline (e.g. ESC environments)."""


def _load_yaml(path: Path) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is ~10x faster
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as error:
        raise ConfigFileError(f"{path}: not valid YAML: {error}") from None
    except OSError as error:
        raise ConfigFileError(f"{path}: cannot read: {error.strerror}") from None


def main_file(project_dir: Path) -> Path:
    """The program file of a project: ``main`` from Pulumi.yaml (a file or a dir), else ``__main__.py``."""
    return load_project(project_dir).main


def load_project(project_dir: Path) -> Project:
    """Parse ``<project_dir>/Pulumi.yaml``."""
    project_dir = Path(project_dir).resolve()
    path = project_dir / PROJECT_FILE
    if not path.is_file():
        raise ConfigFileError(f"{path}: no Pulumi project file (is --project the project directory?)")
    data = _load_yaml(path) or {}
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        raise ConfigFileError(f"{path}: a project file needs a `name:`")
    name = data["name"]

    main = project_dir
    if data.get("main"):
        main = (project_dir / str(data["main"])).resolve()
    if main.is_dir():
        main = main / "__main__.py"
    if not main.is_file():
        raise ConfigFileError(f"{path}: program file {main} does not exist")

    keys: dict[str, ConfigKeySpec] = {}
    section = data.get("config") or {}
    if not isinstance(section, dict):
        raise ConfigFileError(f"{path}: `config:` must be a mapping of keys")
    for raw_key, spec in section.items():
        key = str(raw_key) if ":" in str(raw_key) else f"{name}:{raw_key}"
        if isinstance(spec, dict) and spec and set(spec) <= _SCHEMA_KEYS:
            # `value:` is a project-wide value; for the plan it acts like a default.
            default = spec["value"] if "value" in spec else spec.get("default", _MISSING)
            keys[key] = ConfigKeySpec(key=key, type=spec.get("type"), description=spec.get("description"),
                                      default=default, secret=bool(spec.get("secret", False)))
        else:
            # Short form: `key: value` is the key's default (or, namespaced, its project-wide value).
            keys[key] = ConfigKeySpec(key=key, default=spec)
    return Project(dir=project_dir, name=name, main=main, keys=keys)


def _encode(value: Any) -> str:
    """A config value as the CLI passes it: strings as-is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _has_secure(value: Any) -> bool:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return True
        return any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def _placeholder(key: str, declared_type: str | None) -> Any:
    return {"integer": 0, "boolean": False, "array": []}.get(declared_type or "", f"mock-secret-{key.split(':', 1)[1]}")


def _replace_secure(key: str, value: Any, declared_type: str | None) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return _placeholder(key, declared_type)
        return {k: _replace_secure(key, v, None) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secure(key, v, None) for v in value]
    return value


def _is_json_list(text: str) -> bool:
    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False


# Whether a value (from YAML, or a ``-c`` string) has the type Pulumi.yaml declares. As in the
# CLI, string forms count: "3" is an integer, "true" a boolean, '["a"]' an array.
_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str | int | float | bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, str) and bool(_INTEGER.match(v))),
    "boolean": lambda v: isinstance(v, bool) or v in ("true", "false"),
    "array": lambda v: isinstance(v, list) or (isinstance(v, str) and _is_json_list(v)),
}


def parse_override(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` from ``-c``; raises ConfigFileError if there is no ``=`` or no key."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigFileError(f"-c {text!r}: expected KEY=VALUE, e.g. -c instanceType=t3.large "
                              "or -c aws:region=eu-west-1")
    return key.strip(), value


def stack_file(project: Project, stack: str) -> Path:
    """Path of ``Pulumi.<stack>.yaml``."""
    return project.dir / f"Pulumi.{stack}.yaml"


def _read_stack_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The ``config:`` section of a stack file, and warnings about what cannot be reproduced."""
    if not path.is_file():
        raise ConfigFileError(f"{path}: stack file not found (is --stack right?)")
    data = _load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: expected a mapping with a `config:` section")
    section = data.get("config") or {}
    if not isinstance(section, dict):
        raise ConfigFileError(f"{path}: `config:` must be a mapping of keys")
    warnings = []
    if data.get("environment"):
        warnings.append(f"{path.name}: `environment:` (Pulumi ESC) is not resolved offline; "
                        "values it would provide are missing")
    return section, warnings


@dataclass
class _Layers:
    """Config values as they are layered, with where each came from (for error messages)."""

    values: dict[str, Any] = field(default_factory=dict)
    secret: set[str] = field(default_factory=set)
    where: dict[str, str] = field(default_factory=dict)

    def set(self, key: str, value: Any, where: str, *, secret: bool = False) -> None:
        self.values[key] = value
        self.where[key] = where
        if secret:
            self.secret.add(key)


def undeclared_key_error(project: Project, key: str, where: str) -> ConfigFileError | None:
    """The error for a key of the project's namespace that ``Pulumi.yaml`` does not declare (else None)."""
    namespace, _, name = key.partition(":")
    if namespace != project.name or key in project.keys:
        return None
    declared = [k.split(":", 1)[1] for k in project.keys if k.startswith(f"{project.name}:")]
    close = difflib.get_close_matches(name, declared, n=1, cutoff=0.6) or \
        difflib.get_close_matches(name.lower(), [d.lower() for d in declared], n=1, cutoff=0.6)
    if close and close[0] not in declared:  # matched case-insensitively: report the declared spelling
        close = [d for d in declared if d.lower() == close[0]]
    hint = f"did you mean '{project.name}:{close[0]}'?" if close else \
        f"declared keys: {', '.join(sorted(declared)) or 'none'}"
    return ConfigFileError(f"{where}: configuration key {key!r} is not declared in {PROJECT_FILE} ({hint}); "
                           "declare it there or fix the spelling")


def _apply_stack_file(project: Project, path: Path, section: Mapping[str, Any], layers: _Layers) -> None:
    for raw_key, value in section.items():
        key = str(raw_key)
        if ":" not in key:
            raise ConfigFileError(f"{path}: configuration key {key!r} must be of the form <namespace>:<name> "
                                  f"(e.g. {project.name}:{key})")
        error = undeclared_key_error(project, key, str(path))
        if error is not None:
            raise error
        spec = project.keys.get(key)
        if _has_secure(value):
            layers.set(key, _replace_secure(key, value, spec.type if spec else None), str(path), secret=True)
        elif spec is not None and spec.secret:
            raise ConfigFileError(f"{path}: configuration key {key!r} is declared `secret: true` in {PROJECT_FILE} "
                                  f"but is stored in plain text; set it with `pulumi config set --secret {key}`")
        else:
            layers.set(key, value, str(path))


def resolve_config(project: Project, stack: str, overrides: Sequence[tuple[str, str]] = ()) -> StackConfig:
    """The config map for ``stack``: project values/defaults, then the stack file, then overrides."""
    path = stack_file(project, stack)
    section, warnings = _read_stack_file(path)
    layers = _Layers()
    for key, spec in project.keys.items():
        if spec.has_default:
            layers.set(key, spec.default, f"{PROJECT_FILE} (default)", secret=spec.secret)
    _apply_stack_file(project, path, section, layers)
    for raw_key, value in overrides:
        key = raw_key if ":" in raw_key else f"{project.name}:{raw_key}"
        error = undeclared_key_error(project, key, f"-c {raw_key}")
        if error is not None:
            raise error
        spec = project.keys.get(key)
        # An ad-hoc override of a secret key stays secret in the plan.
        layers.set(key, value, f"-c {raw_key}", secret=spec is not None and spec.secret)

    for key, spec in project.keys.items():
        if key not in layers.values:
            raise ConfigFileError(f"{path}: stack {stack!r} is missing configuration value {key!r} "
                                  f"(declared in {PROJECT_FILE} without a default)")
        check = _TYPE_CHECKS.get(spec.type or "")
        if check is not None and key not in layers.secret and not check(layers.values[key]):
            raise ConfigFileError(f"{layers.where[key]}: configuration key {key!r} must be of type {spec.type!r} "
                                  f"(declared in {PROJECT_FILE}), got {layers.values[key]!r}")

    return StackConfig(values={k: _encode(v) for k, v in layers.values.items()}, secret_keys=sorted(layers.secret),
                       warnings=warnings)


def config_summary(config: Mapping[str, str], secret_keys: Sequence[str]) -> dict[str, str]:
    """The config map safe to print (secret values masked)."""
    hidden = set(secret_keys)
    return {k: ("[secret]" if k in hidden else v) for k, v in sorted(config.items())}
