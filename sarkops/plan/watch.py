"""``sarkops plan --watch``: stay resident and plan again whenever a file of the project or a policy pack changes.

Most of a plan's time as a process is importing the SDKs (see README, Performance). A resident
process pays that once: the first plan imports everything, and each later plan re-runs only the
work. The project's own modules (``__main__.py``, ``stack_config``, ``components``) and the pack's
(``sark_policies``) are imported afresh by every plan, because the planner drops the modules it
imported from the project and pack directories when a run ends
(:func:`sarkops.plan.runtime._project_context`, :func:`sarkops.plan.policy_runner._pack_context`),
so an edit is always seen. The ``sarkops`` package itself is not reloaded: after changing it,
start the watch again.

Watched: every file under the project directory and the policy pack directories, except hidden
directories (``.git``, ``.venv``), ``__pycache__``, ``node_modules`` and virtualenvs, plus the
``--policy-pack-config``, ``--state`` and ``--baseline`` files. Changes are found by polling
modification times and sizes (no new dependency, works on every file system), and a plan starts
once the files have stopped changing for one poll, so an editor's save is planned once.

Each plan prints its report as ``sarkops plan`` does (``--json``: one document per plan), then
one line on stderr with the measured time of that plan and its exit status. An error (bad
config, a program that raises) is printed and the watch goes on.

Ctrl-C stops the watch with exit status 130 (128 + SIGINT, as shells report an interrupted
command), without a traceback.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

INTERRUPTED = 130
"""Exit status after Ctrl-C."""

POLL_SECONDS = 0.3

_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})

Snapshot = dict[str, tuple[int, int]]
"""Path -> (modification time in ns, size)."""


def _files_under(root: Path) -> Iterator[str]:
    """Every regular file under ``root``, skipping hidden directories, caches and virtualenvs."""
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        if any(entry.name == "pyvenv.cfg" for entry in entries) and directory != str(root):
            continue  # a virtualenv inside the project: libraries, not the project
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if not entry.name.startswith(".") and entry.name not in _SKIPPED_DIRS:
                    stack.append(entry.path)
            elif entry.is_file():
                yield entry.path


def snapshot(roots: Iterable[Path], files: Iterable[Path] = ()) -> Snapshot:
    """Modification time and size of every watched file."""
    found: Snapshot = {}
    paths = [path for root in roots if root.is_dir() for path in _files_under(root)]
    paths += [str(path) for path in files]
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            continue  # removed meanwhile, or a dangling symlink
        found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


def changed_files(before: Snapshot, after: Snapshot) -> list[str]:
    """Paths added, removed or modified between two snapshots, sorted."""
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def watched(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """(directories, single files) a plan with ``args`` depends on."""
    project = args.project.resolve()
    packs = [path.resolve() for path in (args.policy_packs or [project / "policies"])]
    files = [path.resolve() for path in [*args.policy_pack_configs, args.state, args.baseline] if path is not None]
    # A pack inside the project is already under it.
    roots = [project, *(pack for pack in packs if not pack.is_relative_to(project))]
    return roots, files


def _describe(paths: list[str], base: Path) -> str:
    names = [os.path.relpath(path, base) for path in paths]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"a change to {shown}"


def watch(args: argparse.Namespace, plan_once: Callable[[argparse.Namespace], int], *,
          poll: float = POLL_SECONDS) -> int:
    """Plan with ``args`` now and after every change, until Ctrl-C.

    :param plan_once: prints one plan's report and returns its exit status (``sarkops plan`` without
        ``--watch``).
    :returns: :data:`INTERRUPTED`.
    """
    once = copy.copy(args)
    once.watch = False
    roots, files = watched(args)
    base = args.project.resolve()
    collector_was_on = gc.isenabled()
    gc.disable()  # collections run between plans, while nothing is waiting for them
    plans = 0
    reason = "start"
    try:
        with _ctrl_c_noted() as interrupted:
            while True:
                current = snapshot(roots, files)
                started = time.perf_counter()
                status = plan_once(once)
                elapsed = time.perf_counter() - started
                sys.stdout.flush()
                interrupted.check()
                plans += 1
                verb = "planned" if plans == 1 else "re-planned"
                print(f"watch: {verb} in {elapsed:.2f} s ({reason}); exit status {status}; watching {len(current)} "
                      "files; Ctrl-C stops", file=sys.stderr, flush=True)
                with interrupted.between_plans():
                    _collect(first=plans == 1)
                    changes = _wait_for_change(current, roots, files, poll, interrupted)
                reason = _describe(changes, base)
    except KeyboardInterrupt:
        print("\nwatch: stopped", file=sys.stderr, flush=True)
        return INTERRUPTED
    finally:
        if collector_was_on:
            gc.enable()


class _Interrupted:
    """Whether Ctrl-C was pressed, whatever became of the KeyboardInterrupt it raised."""

    def __init__(self) -> None:
        self.pressed = False
        self.waiting = False
        """True between plans: Ctrl-C is only noted, and the poll loop stops at its next check."""

    def check(self) -> None:
        if self.pressed:
            raise KeyboardInterrupt

    @contextmanager
    def between_plans(self) -> Iterator[None]:
        """Collecting garbage and polling: Ctrl-C is noted, not raised (see :func:`_ctrl_c_noted`)."""
        self.waiting = True
        try:
            yield
        finally:
            self.waiting = False
        self.check()


@contextmanager
def _ctrl_c_noted() -> Iterator[_Interrupted]:
    """Note every Ctrl-C, and still raise KeyboardInterrupt where it lands.

    Python raises KeyboardInterrupt in whatever code runs at that moment, and when that is a
    finalizer or a weakref callback (freeing a plan's objects does run some), the exception is
    printed as "Exception ignored" and lost: the watch would go on. So between plans Ctrl-C is
    only noted, and the poll loop stops at its next check (within one poll); during a plan it
    raises as usual, and the note catches one that got lost. A SIGINT the parent set to be
    ignored stays ignored.
    """
    interrupted = _Interrupted()
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield interrupted
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        interrupted.pressed = True
        if not interrupted.waiting:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _collect(*, first: bool) -> None:
    """Free what the last plan left behind, while waiting.

    After the first plan, everything still alive (the imported SDKs, mostly) is frozen: later
    collections then only look at what each new plan creates, not at 500,000 objects that
    will live as long as the process.
    """
    gc.collect()
    if first:
        gc.freeze()


def _wait_for_change(current: Snapshot, roots: list[Path], files: list[Path], poll: float,
                     interrupted: _Interrupted) -> list[str]:
    """Block until a watched file changes and then holds still for a moment; the changed paths."""
    while True:
        time.sleep(poll)
        interrupted.check()
        after = snapshot(roots, files)
        if after == current:
            continue
        # Wait for the writes to settle (an editor may write, rename and touch a file).
        while True:
            time.sleep(poll / 3)
            interrupted.check()
            settled = snapshot(roots, files)
            if settled == after:
                return changed_files(current, after)
            after = settled
