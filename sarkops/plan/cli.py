"""``sarkops plan``: offline preview of a stack with the policy report.

Reads the project and stack config, runs the program under the mocks with the provider
emulation (:mod:`sarkops.plan.planner`), evaluates the policy packs and prints the report
(:mod:`sarkops.plan.render.text`, or ``--json``: :mod:`sarkops.plan.render.jsondoc`).

By default the plan models ``pulumi preview`` of a stack that does not exist yet: outputs the
provider computes are ``[unknown]``. ``--known-outputs`` gives every output a mock value instead
(the after-deploy view); ``--state FILE`` previews an update against a ``pulumi stack export``;
``--baseline PLAN.json`` compares with an earlier plan. ``--quiet`` prints only the findings and the
summary; colour only on a terminal and never under ``NO_COLOR``; ``--sarif FILE`` also writes the
findings as SARIF 2.1.0 (:mod:`sarkops.plan.render.sarif`). ``--watch`` stays running and plans
again whenever a file of the project or a pack changes (:mod:`sarkops.plan.watch`).

Exit status: 0 nothing a real deployment would refuse; 1 mandatory violations, check failures
(names AWS refuses) or deployment errors (replacing or deleting a protected resource); 2 a
config, state, baseline, policy-pack or program error (one message on stderr).

Secrets never reach the output: values marked secret print as ``[secret]``, and any secret
text that turns up inside another string is replaced by ``[secret]`` as well.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from sarkops.errors import SarkopsError
from sarkops.plan.planner import DEFAULT_STACK


def add_parser(subparsers: Any) -> None:
    """Register ``plan`` on the ``sarkops`` argument parser."""
    parser = subparsers.add_parser(
        "plan", help="offline preview of a stack under mocks, with the policy report",
        description="Run the Pulumi program under Pulumi's mock runtime with a stack's config, emulate the AWS "
                    "provider's checks, evaluate the CrossGuard policy packs over what it registers, and print the "
                    "report. Exit status: 0 passed, 1 mandatory violations, check failures or deployment errors, "
                    "2 config/state/program/policy-pack error.")
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
    parser.add_argument("--known-outputs", action="store_true",
                        help="give every output a mock value instead of a first preview's [unknown] "
                             "(the after-deploy view; what tests assert on)")
    parser.add_argument("--state", type=Path, metavar="FILE",
                        help="`pulumi stack export` of the stack: preview an update (create/update/replace/same/"
                             "delete) instead of a first deployment")
    parser.add_argument("--baseline", type=Path, metavar="PLAN.json",
                        help="an earlier `sarkops plan --json` (e.g. of the base branch) to compare with")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the text report")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="text report: only the findings and the summary (no tree, outputs or details)")
    parser.add_argument("--sarif", type=Path, metavar="FILE",
                        help="also write the findings as SARIF 2.1.0 (for GitHub code scanning) to FILE")
    parser.add_argument("--watch", action="store_true",
                        help="stay running: plan again whenever a file of the project or a policy pack changes, "
                             "printing each plan's time; Ctrl-C stops (exit status 130)")
    parser.set_defaults(handler=main)


def use_color(stream: Any) -> bool:
    """Colour for a terminal only, and never when ``NO_COLOR`` is set to anything (https://no-color.org)
    or the terminal is ``dumb``."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def main(args: argparse.Namespace) -> int:
    """Run ``plan`` for parsed arguments; returns the exit status."""
    if getattr(args, "watch", False):
        from sarkops.plan.watch import watch

        return watch(args, main)
    from sarkops.plan.planner import run_plan

    debug = os.environ.get("SARKOPS_DEBUG") == "1"
    try:
        # What the program or a policy prints goes to stderr, as the Pulumi CLI shows it among
        # the diagnostics: stdout carries only the report (exactly one document with --json).
        with contextlib.redirect_stdout(sys.stderr):
            result = run_plan(args.project, args.stack, overrides=args.overrides, pack_dirs=args.policy_packs,
                              pack_config_files=args.policy_pack_configs, known_outputs=args.known_outputs,
                              state_file=args.state, baseline_file=args.baseline)
        if args.json:
            from sarkops.plan.render.jsondoc import to_json

            output = json.dumps(to_json(result), indent=2) + "\n"
        else:
            from sarkops.plan.render.text import render_text

            output = render_text(result, quiet=args.quiet, color=use_color(sys.stdout))
        if args.sarif is not None:
            from sarkops.plan.render.sarif import write_sarif

            write_sarif(result, args.sarif)
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
