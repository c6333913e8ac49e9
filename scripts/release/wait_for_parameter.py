#!/usr/bin/env python3
"""Wait until an SSM parameter holds an expected value (run by ``pulumi up``, where Pulumi runs).

The TimescaleDB host writes its instance id to ``<path>/timescale/ready`` as the last step of
its bootstrap (components/templates/timescale/sark-timescale-setup.sh); ``TimescaleHost.ready``
runs this so what needs a working host (the password rotation's first test) comes after it.

Environment: ``AWS_REGION``, ``SARK_PARAMETER``, ``SARK_EXPECTED``, ``SARK_TIMEOUT`` (seconds,
default 3600), ``SARK_POLL_SECONDS`` (default 15), ``SARK_WHAT`` (for messages). Uses the AWS CLI.
Exit 0 when the value matches, 1 on timeout or an AWS error other than "not found yet".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence


def aws_cli(region: str) -> Callable[[Sequence[str]], tuple[int, str, str]]:
    def run(args: Sequence[str]) -> tuple[int, str, str]:
        done = subprocess.run(["aws", *args, "--region", region, "--output", "text"], capture_output=True,
                              text=True, check=False)
        return done.returncode, done.stdout.strip(), done.stderr.strip()
    return run


def wait(env: Mapping[str, str], run: Callable[[Sequence[str]], tuple[int, str, str]], *,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
         log: Callable[[str], None] = print) -> int:
    missing = [k for k in ("AWS_REGION", "SARK_PARAMETER", "SARK_EXPECTED") if not env.get(k)]
    if missing:
        log(f"wait_for_parameter: missing environment variables: {', '.join(missing)}")
        return 1
    name, expected, what = env["SARK_PARAMETER"], env["SARK_EXPECTED"], env.get("SARK_WHAT", "the parameter")
    timeout = float(env.get("SARK_TIMEOUT") or 3600)
    deadline = clock() + timeout
    poll = float(env.get("SARK_POLL_SECONDS") or 15)
    value = None
    while True:
        code, out, err = run(["ssm", "get-parameter", "--name", name, "--query", "Parameter.Value"])
        if code == 0:
            value = out
            if value == expected:
                log(f"{what}: done ({name} = {expected})")
                return 0
        elif "ParameterNotFound" not in err:
            log(f"{what}: aws ssm get-parameter failed: {err or code}")
            return 1
        if clock() >= deadline:
            log(f"{what}: not done after {timeout:.0f} s: "
                f"{name} is {value!r}, expected {expected!r}; see the host's /var/log/cloud-init-output.log "
                "(SSM Session Manager)")
            return 1
        sleep(poll)


if __name__ == "__main__":
    sys.exit(wait(os.environ, aws_cli(os.environ.get("AWS_REGION", ""))))
