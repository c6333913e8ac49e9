"""``sarkops plan``: offline preview of a stack with the policy report.

Reads the project and stack config, runs the program under the mocks
(:mod:`sarkops.plan.runtime`), evaluates the policy packs (:mod:`sarkops.plan.policy_runner`) and prints
the resource tree and violations (or ``--json``). Exit status: 0 no mandatory violation,
1 at least one, 2 a config, policy-pack or program error (one message on stderr).

Secrets never reach the output: values marked secret print as ``[secret]``, and any secret
text that turns up inside another string (a policy message, a plain input built from a secret)
is replaced by ``[secret]`` as well.

Exemptions are never silent: both reports list every exemption of the effective policy-pack
config (pack, policy, resource, reason, and the resources it matched), mark the
not-applicable results that exemptions caused, and warn about an exemption that names no
resource of the stack.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sarkops.errors import ProgramError, SarkopsError

if TYPE_CHECKING:  # imported lazily at run time: `--help` and config errors stay instant
    from sarkops.plan.policy_runner import LoadedPack, PolicyReport, Violation
    from sarkops.plan.project import Project, StackConfig
    from sarkops.plan.runtime import Recording

DEFAULT_STACK = "production"
_MIN_SCRUB_LENGTH = 4  # shorter secrets ("1", "on") would blank out unrelated text


@dataclass
class PlanResult:
    """Everything one plan produced."""

    project: Project
    stack: str
    config: StackConfig
    """The config map the program ran with."""
    recording: Recording
    report: PolicyReport
    packs: list[LoadedPack] = field(default_factory=list)
    """The policy packs, in evaluation order."""

    @property
    def failed(self) -> bool:
        """True if any mandatory violation was reported."""
        return bool(self.report.mandatory)


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------

def _program_failure(error: BaseException, project_dir: Path) -> SarkopsError:
    """The one-line error for an exception the program raised."""
    import pulumi

    if isinstance(error, SarkopsError):
        return error
    if isinstance(error, pulumi.RunError):
        # RunError is Pulumi's "expected" failure (bad config and the like): the CLI prints
        # just its message, and so do we.
        return ProgramError(str(error))
    if isinstance(error, SystemExit):
        return ProgramError(f"program failed: it called sys.exit({error.code!r})")
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if f.filename.startswith(str(project_dir) + os.sep)
              and f"{os.sep}site-packages{os.sep}" not in f.filename]
    where = f" (at {os.path.relpath(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    message = str(error).strip().replace("\n", " ")
    return ProgramError(f"program failed: {type(error).__name__}: {message}{where}")


def run_plan(
    project_dir: Path,
    stack: str = DEFAULT_STACK,
    *,
    overrides: Sequence[str] = (),
    pack_dirs: Sequence[Path] | None = None,
    pack_config_files: Sequence[Path] = (),
) -> PlanResult:
    """Plan ``stack`` of the project in ``project_dir``; raises :class:`SarkopsError` on any error.

    :param overrides: ``KEY=VALUE`` strings as given to ``-c``.
    :param pack_dirs: policy packs; None means ``<project_dir>/policies`` if it exists.
    :param pack_config_files: ``--policy-pack-config`` files, paired with ``pack_dirs`` by position.
    """
    from sarkops.errors import PolicyPackError
    from sarkops.plan.project import load_project, parse_override, resolve_config

    parsed_overrides = [parse_override(text) for text in overrides]
    project = load_project(project_dir)
    config = resolve_config(project, stack, parsed_overrides)

    if pack_dirs is None:
        default = project.dir / "policies"
        pack_dirs = [default] if default.is_dir() else []
    if len(pack_config_files) > len(pack_dirs):
        raise PolicyPackError(f"{len(pack_config_files)} --policy-pack-config file(s) for {len(pack_dirs)} policy "
                              "pack(s): each config file pairs with the --policy-pack at the same position")

    from sarkops.plan.policy_runner import check_pack_config, evaluate, load_pack, read_pack_config

    # Load and check packs and their config first: a mistake there fails fast, before the
    # program runs, and the message names the config file.
    packs = [load_pack(directory) for directory in pack_dirs]
    pack_configs = [read_pack_config(path) for path in pack_config_files]
    for pack, pack_config, path in zip(packs, pack_configs, pack_config_files, strict=False):
        check_pack_config(pack, pack_config, source=str(path))

    from sarkops.plan.runtime import run_program

    try:
        recording = run_program(project.dir, project=project.name, stack=stack, config=config.values,
                                secret_keys=config.secret_keys)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # SystemExit too: a program calling sys.exit() failed
        raise _program_failure(error, project.dir) from error
    errors = [message for level, message in recording.logs if level in ("error", "critical")]
    if errors:
        raise ProgramError(f"program logged an error: {errors[0]}")

    report = evaluate(recording, packs, pack_configs, config=config.values)
    return PlanResult(project=project, stack=stack, config=config, recording=recording, report=report, packs=packs)


# --------------------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------------------

class _Scrubber:
    """Replaces secret text inside any string, longest secrets first."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= _MIN_SCRUB_LENGTH}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, "[secret]")
        return value

    def deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value


def _scrubber(result: PlanResult) -> _Scrubber:
    """Everything secret in this plan: recorded values, secret config, remediated values."""
    from sarkops.plan.runtime import secret_strings

    secrets = set(result.recording.secret_strings())
    secrets |= {result.config.values[k] for k in result.config.secret_keys if k in result.config.values}
    for remediation in result.report.remediations:
        for before, after in remediation.changed.values():
            secrets |= secret_strings(before) | secret_strings(after)
    return _Scrubber(secrets)


def _sorted(value: Any) -> Any:
    """Dicts with sorted keys, recursively, so the JSON is byte-for-byte stable between runs."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def urn_type_name(urn: str) -> tuple[str, str]:
    """``(type, name)`` from a URN (``("", "")`` for the stack-level ``""``)."""
    if not urn:
        return "", ""
    parts = urn.split("::")
    if len(parts) < 4:
        return "", urn
    return parts[2].rsplit("$", 1)[-1], "::".join(parts[3:])


_LEVEL_ORDER = {"mandatory": 0, "advisory": 1, "remediate": 2, "disabled": 3}
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "": 4}


def _ordered_violations(result: PlanResult) -> list[Violation]:
    """Mandatory first, then by severity, pack, policy and the resource's place in the program."""
    position = {r.urn: i for i, r in enumerate(result.recording.resources)}
    return sorted(result.report.violations, key=lambda v: (
        _LEVEL_ORDER.get(v.enforcement_level, 9), _SEVERITY_ORDER.get(v.severity, 9), v.pack, v.policy,
        position.get(v.urn, -1), v.message))


# --------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------

def to_json(result: PlanResult) -> dict[str, Any]:
    """The ``--json`` document (secrets masked and scrubbed)."""
    from sarkops.plan.runtime import masked

    rec, report = result.recording, result.report
    scrub = _scrubber(result)
    summary = _counts(result)
    document = {
        "project": rec.project,
        "stack": rec.stack,
        "resources": [{
            "urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent,
            "dependencies": list(r.dependencies), "protect": r.protect, "inputs": _sorted(masked(r.inputs)),
        } for r in rec.resources],
        "outputs": _sorted(masked(rec.outputs)),
        "violations": [{
            "pack": v.pack, "policy": v.policy, "enforcementLevel": v.enforcement_level, "severity": v.severity,
            "urn": v.urn, "message": v.message,
        } for v in _ordered_violations(result)],
        "notApplicable": [{"pack": n.pack, "policy": n.policy, "urn": n.urn, "reason": n.reason,
                           "exemption": n.exemption} for n in report.not_applicable],
        "remediations": [{
            "pack": m.pack, "policy": m.policy, "urn": m.urn,
            "changed": {k: {"before": masked(b), "after": masked(a)} for k, (b, a) in m.changed.items()},
        } for m in report.remediations],
        "exemptions": [{"pack": e.pack, "policy": e.policy, "resource": e.resource, "reason": e.reason,
                        "matches": list(e.matches)} for e in report.exemptions],
        "policyPacks": [{
            "name": pack.name, "version": pack.version, "dir": str(pack.dir),
            "policies": {name: {"enforcementLevel": entry["enforcementLevel"],
                                "severity": report.policies[pack.name][name].severity,
                                "config": _sorted(masked(entry["properties"]))}
                         for name, entry in sorted(report.config[pack.name].items())},
        } for pack in result.packs],
        "warnings": [scrub.text(w) for w in _warnings(result)],
        "summary": {**summary, "resources": len(rec.resources), "passed": not result.failed},
    }
    return scrub.deep(document)


def _counts(result: PlanResult) -> dict[str, int]:
    report = result.report
    return {"mandatory": len(report.at_level("mandatory")), "advisory": len(report.at_level("advisory")),
            "remediated": len(report.remediations), "notApplicable": len(report.not_applicable)}


def _warnings(result: PlanResult) -> list[str]:
    logged = [f"program {level}: {message}" for level, message in result.recording.logs]
    return [*result.config.warnings, *logged, *result.report.warnings]


# --------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------

def _tree_lines(result: PlanResult) -> list[str]:
    rec = result.recording
    children: dict[str, list[Any]] = {}
    known = {r.urn for r in rec.resources}
    for resource in rec.resources:
        parent = resource.parent if resource.parent in known else rec.stack_urn
        children.setdefault(parent, []).append(resource)
    lines = [f"  pulumi:pulumi:Stack {rec.project}-{rec.stack}"]

    def walk(urn: str, depth: int) -> None:
        for child in children.get(urn, []):
            marker = " [protected]" if child.protect else ""
            lines.append(f"{'  ' * (depth + 1)}{child.type} {child.name}{marker}")
            walk(child.urn, depth + 1)

    walk(rec.stack_urn, 1)
    return lines


def _resource_label(urn: str) -> str:
    type_, name = urn_type_name(urn)
    return f"{type_} {name}" if type_ else "the stack"


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def render_text(result: PlanResult) -> str:
    """The human report: resource tree, violations by level, not-applicable, outputs, summary."""
    from sarkops.plan.runtime import masked

    rec, report = result.recording, result.report
    scrub = _scrubber(result)
    custom = sum(1 for r in rec.resources if r.custom)
    lines = [
        f"Offline plan of {rec.project}/{rec.stack} (preview under mocks, no AWS calls): "
        f"{len(rec.resources)} resources ({custom} custom, {len(rec.resources) - custom} components), "
        f"{len(rec.invokes)} data-source calls",
        "",
        "Resources:",
        *_tree_lines(result),
        "",
    ]
    if result.packs:
        packs = ", ".join(f"{p.name}@{p.version} ({len(p.policies)} policies)" for p in result.packs)
        lines.append(f"Policy packs: {packs}")
    else:
        lines.append("Policy packs: none (no ./policies and no --policy-pack)")

    ordered = _ordered_violations(result)
    for level, title in (("mandatory", "Mandatory violations"), ("advisory", "Advisory violations"),
                         ("remediate", "Remediated")):
        group = [v for v in ordered if v.enforcement_level == level]
        lines.append("")
        lines.append(f"{title} ({len(group)}):" if group else f"{title}: none")
        for violation in group:
            severity = f" [{violation.severity}]" if violation.severity else ""
            lines.append(f"  {violation.policy}{severity} on {_resource_label(violation.urn)}: "
                         f"{_one_line(violation.detail or violation.message)}")

    if report.not_applicable:
        lines += ["", f"Not applicable ({len(report.not_applicable)}):"]
        lines += [f"  {n.policy} on {_resource_label(n.urn)}: {_one_line(n.reason)}"
                  + (" [exemption]" if n.exemption else "") for n in report.not_applicable]
    if report.exemptions:
        lines += ["", f"Exemptions configured ({len(report.exemptions)}):"]
        for exemption in report.exemptions:
            names = ", ".join(_resource_label(urn) for urn in exemption.matches) or \
                f"{exemption.resource} (names NO resource of this stack)"
            lines.append(f"  {exemption.pack}: {exemption.policy} on {names}: {_one_line(exemption.reason)}")

    if rec.outputs:
        lines += ["", "Outputs:"]
        for key, value in sorted(masked(rec.outputs).items()):
            shown = value if isinstance(value, str) else json.dumps(value)
            lines.append(f"  {key}: {shown}")
    warnings = _warnings(result)
    if warnings:
        lines += ["", "Warnings:", *(f"  {w}" for w in warnings)]

    counts = _counts(result)
    verdict = "FAILED: mandatory policy violations" if result.failed else "passed"
    lines += ["", f"Summary: {counts['mandatory']} mandatory, {counts['advisory']} advisory, "
                  f"{counts['remediated']} remediated, {counts['notApplicable']} not applicable; "
                  f"{len(rec.resources)} resources; {verdict}"]
    return "\n".join(scrub.text(line) for line in lines) + "\n"


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------

def add_parser(subparsers: Any) -> None:
    """Register ``plan`` on the ``sarkops`` argument parser."""
    parser = subparsers.add_parser(
        "plan", help="offline preview of a stack under mocks, with the policy report",
        description="Run the Pulumi program under Pulumi's mock runtime with a stack's config, evaluate the "
                    "CrossGuard policy packs over what it registers, and print the report. Exit status: 0 no "
                    "mandatory violation, 1 mandatory violations, 2 config/program/policy-pack error.")
    parser.add_argument("--project", type=Path, default=Path("."), metavar="DIR",
                        help="Pulumi project directory (default: the current directory)")
    parser.add_argument("--stack", default=DEFAULT_STACK, metavar="NAME",
                        help=f"stack whose Pulumi.<NAME>.yaml to use (default: {DEFAULT_STACK})")
    parser.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one config key, like `pulumi preview -c`; repeatable")
    parser.add_argument("--policy-pack", action="append", type=Path, metavar="DIR", dest="policy_packs",
                        help="policy pack directory; repeatable (default: <project>/policies if it exists)")
    parser.add_argument("--policy-pack-config", action="append", type=Path, default=[], metavar="FILE",
                        dest="policy_pack_configs",
                        help="JSON config for the --policy-pack at the same position; repeatable")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the text report")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run ``plan`` for parsed arguments; returns the exit status."""
    debug = os.environ.get("SARKOPS_DEBUG") == "1"
    try:
        # What the program or a policy prints goes to stderr, as the Pulumi CLI shows it among
        # the diagnostics: stdout carries only the report (exactly one document with --json).
        with contextlib.redirect_stdout(sys.stderr):
            result = run_plan(args.project, args.stack, overrides=args.overrides, pack_dirs=args.policy_packs,
                              pack_config_files=args.policy_pack_configs)
        output = json.dumps(to_json(result), indent=2) + "\n" if args.json else render_text(result)
    except SarkopsError as error:
        if debug:
            traceback.print_exception(error)
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        # A bug in sarkops itself must not look like a policy failure (exit 1) or a traceback.
        if debug:
            traceback.print_exception(error)
        hint = "" if debug else " (SARKOPS_DEBUG=1 shows the traceback)"
        print(f"error: sarkops failed: {type(error).__name__}: {error}{hint}", file=sys.stderr)
        return 2
    if not args.json:
        for warning in result.config.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(output)
    return 1 if result.failed else 0

