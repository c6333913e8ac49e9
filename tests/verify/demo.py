"""Dry run of ``sarkops verify``: moto's server, a compliant SARK account built in it, and the real CLI.

    .venv/bin/python -m tests.verify.demo                      # everything passes (HTTP items skip)
    .venv/bin/python -m tests.verify.demo --drift "retention lowered" --drift "port 22 opened to the world"
    .venv/bin/python -m tests.verify.demo --list               # the drifts it can inject
    .venv/bin/python -m tests.verify.demo -- --json            # arguments after -- go to verify

It starts moto on 127.0.0.1, builds the account the tests use (tests/verify/account.py), applies
the chosen drifts, writes the outputs file and runs ``python -m sarkops verify --outputs ...
--endpoint-url ... --skip-http`` as a separate process (moto does not serve the load balancer's
HTTP, so the HTTP items skip), then exits with verify's status. docs/verify.md's example report
comes from here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from tests.verify.account import REGION, build_account, create_shared

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    from tests.verify.test_moto_account import AWS_DRIFTS

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--drift", action="append", default=[], choices=sorted(AWS_DRIFTS), metavar="NAME",
                        help="inject this drift first (repeatable; --list shows them)")
    parser.add_argument("--list", action="store_true", help="list the drifts and the item each one fails")
    parser.add_argument("verify_args", nargs="*", help="after --: more arguments for sarkops verify")
    args = parser.parse_args(argv)
    if args.list:
        for name, (_, item) in sorted(AWS_DRIFTS.items()):
            print(f"{name!r:40} -> {item}")
        return 0

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        request = urllib.request.Request(f"{endpoint}/moto-api/config", method="POST",  # noqa: S310 (local moto)
                                         data=json.dumps({"lambda": {"use_docker": False}}).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 (local moto)
        session = boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        shared = create_shared(session, endpoint)
        account = build_account(session, endpoint, shared)
        for name in args.drift:
            inject, _ = AWS_DRIFTS[name]
            inject(account, shared) if "shared" in inject.__code__.co_varnames else inject(account)
        with tempfile.TemporaryDirectory() as scratch:
            outputs = Path(scratch) / "outputs.json"
            outputs.write_text(json.dumps(account.outputs, indent=2), encoding="utf-8")
            env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
            command = [sys.executable, "-m", "sarkops", "verify", "--stack", "production", "--outputs", str(outputs),
                       "--endpoint-url", endpoint, "--skip-http", *args.verify_args]
            return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
