"""Benchmark: the plan as a whole process, side by side with a process that only imports what the plan imports.

Usage: python scripts/bench.py [--runs N] [--max-ratio R] [--save-modules FILE] [-- `sarkops plan` arguments]

What a reviewer waits for is a whole ``python -m sarkops plan`` process. Most of it is importing
the SDKs (pulumi_aws generates thousands of classes), which this project cannot change; the
rest is the work: running the program under the mocks, the policies, the report, and leaving.
So the plan is timed beside an **import-only baseline**: a process that imports exactly the
third-party modules the plan imports (every module loaded from site-packages: pulumi, the
pulumi_aws submodules the program touches, pulumi_random, pulumi_command, pulumi_policy, grpc,
google.protobuf, yaml, jsonschema and their own dependencies) with the garbage collector off.
It is timed twice:

- ``GC off``: the issue's definition. Its process still pays the interpreter's shutdown
  collection (about 1 s over the 400,000 objects the SDKs create), which the plan no longer does;
- ``GC off, frozen``: also freezes the heap before exit, as the plan's process does: pure import
  cost, the stricter comparison.

The module list is not written down: a first plan runs with the same arguments, in a child
process, and reports what it loaded; that run is also the warm-up of the OS file cache.

Then the three processes alternate, so a change of load on a shared machine hits all of them.
Printed: each round, the minimum and median of each, the ratios (wall time, and CPU time, which
is steadier under load), and the load average before and after. The issue's goal is a median
wall ratio of at most 1.3 against the ``GC off`` baseline; ``--max-ratio`` makes the script exit
1 above a given ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DISCOVER = """
import json, sys, sysconfig
from pathlib import Path
from sarkops.__main__ import main

status = main(json.loads(sys.argv[1]))
roots = {str(Path(sysconfig.get_paths()[key]).resolve()) for key in ("purelib", "platlib")}
third_party = sorted(name for name, module in list(sys.modules.items())
                     if any(str(Path(getattr(module, "__file__", None) or "/").resolve()).startswith(root + "/")
                            for root in roots))
print(json.dumps({"status": status, "modules": third_party}), file=sys.__stderr__)
"""
"""Run one plan in this process (``main(argv)``: the collector stays on, nothing is frozen) and list
the modules loaded from site-packages (paths resolved: the venv may be a symlink)."""

BASELINE = """
import gc, importlib, json, sys
gc.disable()
for name in json.load(sys.stdin):
    importlib.import_module(name)
if sys.argv[1:] == ["--freeze"]:
    gc.freeze()
"""
"""The import-only process: the collector off, the modules imported; with ``--freeze``, the heap frozen before exit."""


def discover_modules(plan_argv: list[str]) -> list[str]:
    """The third-party modules a plan with ``plan_argv`` imports (one plan, in a child process)."""
    result = subprocess.run([sys.executable, "-c", DISCOVER, json.dumps(plan_argv)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    try:
        report = json.loads(result.stderr.strip().splitlines()[-1])
    except (IndexError, ValueError):
        sys.exit(f"bench: the plan failed before reporting its modules (exit {result.returncode}):\n"
                 f"{result.stderr.strip()}")
    if report["status"] not in (0, 1):
        sys.exit(f"bench: the plan failed with exit status {report['status']}:\n{result.stderr.strip()}")
    # Names with a leading double underscore are the interpreter's start-up hooks (.pth finders).
    return [name for name in report["modules"] if not name.startswith("__")]


def time_once(argv: list[str], stdin: bytes = b"") -> tuple[float, float]:
    """Run one process; its wall time and CPU time (user + system) in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=ROOT, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode not in (0, 1):
        sys.exit(f"bench: {' '.join(argv[1:3])} failed with exit status {result.returncode}: "
                 f"{result.stderr.decode().strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    """Time plan and baseline alternately; print both, the ratio, and the load."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed rounds after the warm-up (default 7)")
    parser.add_argument("--max-ratio", type=float, metavar="R",
                        help="exit 1 if the median wall-time ratio plan/baseline is above R (the goal: 1.3)")
    parser.add_argument("--save-modules", type=Path, metavar="FILE",
                        help="write the baseline's module list (JSON) to FILE, to see exactly what it imports")
    parser.add_argument("plan_args", nargs="*", help="arguments for `sarkops plan` (default: --stack production)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")

    plan_argv = ["plan", *(args.plan_args or ["--stack", "production"])]
    print(f"benchmark: python -m sarkops {' '.join(plan_argv)} (cwd {ROOT}); {os.cpu_count()} CPUs; "
          f"load average {load()}")
    started = time.perf_counter()
    modules = discover_modules(plan_argv)
    print(f"warm-up: one plan in a child process ({time.perf_counter() - started:.2f} s) imported "
          f"{len(modules)} third-party modules ({sum(m.startswith('pulumi_aws.') for m in modules)} of pulumi_aws)")

    module_list = json.dumps(modules).encode()
    if args.save_modules is not None:
        args.save_modules.write_bytes(module_list)
    commands = {"plan": ([sys.executable, "-m", "sarkops", *plan_argv], b""),
                "GC off": ([sys.executable, "-c", BASELINE], module_list),
                "GC off, frozen": ([sys.executable, "-c", BASELINE, "--freeze"], module_list)}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    print(f"{'round':<6}" + "".join(f"{name:>16}" for name in commands) + "   (wall s, CPU s)")
    for run in range(1, args.runs + 1):
        for name, (argv, stdin) in commands.items():
            samples[name].append(time_once(argv, stdin))
        print(f"{run:<6}" + "".join(f"{f'{s[-1][0]:.2f} ({s[-1][1]:.2f})':>16}" for s in samples.values()))

    def median(name: str, index: int = 0) -> float:
        return statistics.median(sample[index] for sample in samples[name])

    for name in commands:
        walls = [wall for wall, _ in samples[name]]
        print(f"{name + ':':<16} min {min(walls):.2f} s, median {median(name):.2f} s, "
              f"CPU median {median(name, 1):.2f} s")
    ratio = median("plan") / median("GC off")
    print(f"ratio plan / import-only, GC off: {ratio:.2f} (median wall), "
          f"{median('plan', 1) / median('GC off', 1):.2f} (median CPU); goal at most 1.3")
    print(f"ratio plan / import-only, GC off, frozen: {median('plan') / median('GC off, frozen'):.2f} (median wall), "
          f"{median('plan', 1) / median('GC off, frozen', 1):.2f} (median CPU)")
    print(f"load average after: {load()}")
    if args.max_ratio is not None and ratio > args.max_ratio:
        print(f"bench: median ratio {ratio:.2f} is above --max-ratio {args.max_ratio}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
