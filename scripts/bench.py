"""Benchmark: wall time of `python -m sarkops plan` as a whole process (what a reviewer waits for).

Usage: python scripts/bench.py [--runs N] [-- extra plan args]
Prints each run, then min and median. The first run is a warm-up for the OS file cache and
is reported separately.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_once(argv: list[str]) -> float:
    """Run one plan process and return its wall time in seconds."""
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode not in (0, 1):
        sys.exit(f"plan failed with exit status {result.returncode}: {result.stderr.decode().strip()}")
    return elapsed


def main() -> None:
    """Time the plan several times and print min and median."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed runs after the warm-up (default 7)")
    parser.add_argument("plan_args", nargs="*", help="extra arguments for `sarkops plan`")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")

    argv = [sys.executable, "-m", "sarkops", "plan", "--stack", "production", *args.plan_args]
    print(f"benchmark: {' '.join(argv[1:])} (cwd {ROOT})")
    print(f"warm-up  {time_once(argv):6.2f} s")
    times = []
    for run in range(1, args.runs + 1):
        times.append(time_once(argv))
        print(f"run {run:<4} {times[-1]:6.2f} s")
    print(f"min {min(times):.2f} s, median {statistics.median(times):.2f} s over {len(times)} runs")


if __name__ == "__main__":
    main()
