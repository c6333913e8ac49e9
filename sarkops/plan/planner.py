"""Plan a stack: config, policy packs, prior state, the program under the mocks, the policy report.

:func:`run_plan` is what ``sarkops plan`` runs, in the engine's order: load the project and the
stack config (strictly: an undeclared project key is an error), load the policy packs and
validate their config, read the prior state (``--state``), run the program under the mocks
with the provider emulation (first-preview semantics unless ``known_outputs``), evaluate the
packs, work out the operations (deletes included) and the errors a real deployment would hit,
and compare with a baseline plan (``--baseline``). Every failure is a :class:`SarkopsError`
whose message names the file, key or token involved.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sarkops.errors import ProgramError, SarkopsError

if TYPE_CHECKING:  # imported lazily at run time: `--help` and config errors stay instant
    from sarkops.plan.diff import Change, StateError
    from sarkops.plan.policy_runner import LoadedPack, PolicyReport
    from sarkops.plan.project import Project, StackConfig
    from sarkops.plan.provider.names import CheckFailure
    from sarkops.plan.runtime import Recording
    from sarkops.plan.state import PriorState

DEFAULT_STACK = "production"


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
    first_preview: bool = True
    """Outputs the provider computes were unknown for resources being created."""
    prior: PriorState | None = None
    """The ``--state`` the plan compared with (None: a stack that does not exist yet)."""
    changes: list[Change] = field(default_factory=list)
    """Operation per resource: the program's custom resources in construction order, then deletes."""
    state_errors: list[StateError] = field(default_factory=list)
    """Replacements and deletions of protected resources (a real deployment fails)."""
    baseline: dict[str, Any] | None = None
    """The comparison with ``--baseline`` (see :mod:`sarkops.plan.baseline`)."""

    @property
    def check_failures(self) -> list[CheckFailure]:
        """What the provider's Check refuses, in the program's order."""
        position = {r.urn: i for i, r in enumerate(self.recording.resources)}
        return sorted(self.recording.check_failures, key=lambda f: (position.get(f.urn, -1), f.property, f.message))

    @property
    def failed(self) -> bool:
        """True if a real preview or update would fail: mandatory violations, check failures, state errors."""
        return bool(self.report.mandatory or self.recording.check_failures or self.state_errors)


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
    known_outputs: bool = False,
    state_file: Path | None = None,
    baseline_file: Path | None = None,
) -> PlanResult:
    """Plan ``stack`` of the project in ``project_dir``; raises :class:`SarkopsError` on any error.

    :param overrides: ``KEY=VALUE`` strings as given to ``-c``.
    :param pack_dirs: policy packs; None means ``<project_dir>/policies`` if it exists.
    :param pack_config_files: ``--policy-pack-config`` files, paired with ``pack_dirs`` by position.
    :param known_outputs: keep the mocks' concrete values for every output (``--known-outputs``)
        instead of a first preview's unknowns.
    :param state_file: a ``pulumi stack export`` of the stack (``--state``).
    :param baseline_file: an earlier plan's ``--json`` to compare with (``--baseline``).
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

    # Load and check packs, their config, the state and the baseline first: a mistake there
    # fails fast, before the program runs, and the message names the file.
    packs = [load_pack(directory) for directory in pack_dirs]
    pack_configs = [read_pack_config(path) for path in pack_config_files]
    for pack, pack_config, path in zip(packs, pack_configs, pack_config_files, strict=False):
        check_pack_config(pack, pack_config, source=str(path))
    prior = None
    if state_file is not None:
        from sarkops.plan.state import read_state

        prior = read_state(state_file)
    baseline_doc = None
    if baseline_file is not None:
        from sarkops.plan.baseline import read_baseline

        baseline_doc = read_baseline(baseline_file)

    from sarkops.plan.runtime import run_program

    try:
        recording = run_program(project.dir, project=project.name, stack=stack, config=config.values,
                                secret_keys=config.secret_keys, first_preview=not known_outputs, prior=prior)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # SystemExit too: a program calling sys.exit() failed
        raise _program_failure(error, project.dir) from error
    errors = [message for level, message in recording.logs if level in ("error", "critical")]
    if errors:
        raise ProgramError(f"program logged an error: {errors[0]}")

    report = evaluate(recording, packs, pack_configs, config=config.values)
    result = PlanResult(project=project, stack=stack, config=config, recording=recording, report=report,
                        packs=packs, first_preview=not known_outputs, prior=prior)
    _plan_changes(result)
    if baseline_doc is not None:
        from sarkops.plan.baseline import compare
        from sarkops.plan.render.jsondoc import to_json

        result.baseline = compare(to_json(result), baseline_doc, source=str(baseline_file))
    return result


def _plan_changes(result: PlanResult) -> None:
    """Operations in program order, deletes from the state, and the protection errors."""
    from sarkops.plan.diff import Change, deletions, protection_errors

    rec = result.recording
    changes = [rec.changes.get(r.urn) or Change(r.urn, r.type, "create") for r in rec.resources if r.custom]
    if result.prior is not None:
        changes += deletions(result.prior, [r.urn for r in rec.resources])
        result.state_errors = protection_errors(changes, result.prior, {r.urn: r.protect for r in rec.resources})
    result.changes = changes
