"""``python -m sarkops verify``: check a deployed stack against the production checklist.

Reads the stack's outputs (``--outputs FILE``, what ``pulumi stack output --json`` writes; without
it, verify runs that command itself), looks every resource up with boto3 and probes the service
over HTTP, and prints one line per checklist item: PASS, FAIL (with what to fix) or SKIP (with
why). ``--json`` prints one document instead. Exit status: 0 when nothing failed (skips are
allowed and listed), 1 when an item failed, 2 when verify cannot run at all (outputs file
missing or invalid, no credentials, endpoint unreachable, AWS refusing the credentials): one
``error:`` line, no traceback.

The items live in :mod:`sarkops.verify.items`; ``--endpoint-url`` points every client at an
emulator such as moto's server for a dry run (docs/verify.md). boto3 is imported only when
the command runs, so other commands stay fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sarkops.verify.core import (
    FAIL,
    PASS,
    SKIP,
    Context,
    HttpGet,
    HttpProbeError,
    HttpProbeSkipped,
    HttpResponse,
    MissingOutput,
    Outcome,
    Outputs,
    VerifyError,
    arn_region,
    load_outputs_file,
    parse_outputs,
    skipped,
)
from sarkops.verify.items import ITEM_IDS, ITEMS, Item, describe_client_error, no_answer_fix

DEFAULT_STACK = "production"
USER_AGENT = "sarkops-verify"


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemResult:
    """One checked item."""

    id: str
    title: str
    checklist: str
    status: str
    evidence: str
    fix: str | None


@dataclass(frozen=True)
class Report:
    """Everything one verify run found."""

    stack: str
    account_id: str
    region: str
    endpoint_url: str | None
    checked_at: datetime
    outputs_source: str
    items: list[ItemResult]

    def count(self, status: str) -> int:
        """How many items have ``status``."""
        return sum(1 for item in self.items if item.status == status)

    @property
    def failed(self) -> bool:
        """True if any item failed."""
        return self.count(FAIL) > 0


# ---------------------------------------------------------------------------------------------
# Running the items
# ---------------------------------------------------------------------------------------------
def run_item(item: Item, ctx: Context) -> ItemResult:
    """Run one check; turn missing outputs into SKIP and AWS/HTTP errors into FAIL with a fix."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        outcome = skipped(ctx.http_skip_reason) if item.http and ctx.http_get is None else item.check(ctx)
    except MissingOutput as missing:
        names = " and ".join(missing.keys)
        masked = [k for k in missing.keys if k in ctx.outputs.secret]
        why = "is a secret output (masked)" if masked else "not exported by the stack"
        outcome = skipped(f"output {names} {why} in {ctx.outputs.source}")
    except HttpProbeSkipped as skip:
        outcome = skipped(str(skip))
    except HttpProbeError as error:
        outcome = Outcome(FAIL, str(error), no_answer_fix(error.url))
    except ClientError as error:
        evidence, fix = describe_client_error(error)
        outcome = Outcome(FAIL, evidence, fix)
    except BotoCoreError as error:
        outcome = Outcome(FAIL, f"AWS call failed: {error}", "check the network path to AWS and rerun verify")
    except Exception as error:  # one broken check must not hide the others
        if os.environ.get("SARKOPS_DEBUG") == "1":
            traceback.print_exception(error)
        outcome = Outcome(FAIL, f"internal error in the check: {type(error).__name__}: {error}",
                          "this is a bug in sarkops verify; rerun with SARKOPS_DEBUG=1 and report the traceback")
    return ItemResult(item.id, item.title, item.checklist, outcome.status, outcome.evidence, outcome.fix)


def run_items(ctx: Context, only: Sequence[str] = ()) -> list[ItemResult]:
    """Run every item (or those in ``only``) in checklist order."""
    chosen = [item for item in ITEMS if not only or item.id in only]
    return [run_item(item, ctx) for item in chosen]


# ---------------------------------------------------------------------------------------------
# AWS session and the first call
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AwsSettings:
    """The usual AWS settings of a command line tool."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3


class Clients:
    """boto3 clients for one session, created on first use and shared by all items."""

    def __init__(self, session: Any, settings: AwsSettings, region: str) -> None:
        from botocore.config import Config

        self._session = session
        self._settings = settings
        self._region = region
        self._config = Config(connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
                              retries={"max_attempts": settings.max_attempts, "mode": "standard"},
                              user_agent_extra=USER_AGENT)
        self._clients: dict[str, Any] = {}

    @property
    def region(self) -> str:
        """The region every client calls."""
        return self._region

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, region_name=self._region,
                                                          endpoint_url=self._settings.endpoint_url,
                                                          config=self._config)
        return self._clients[service]

    def preflight(self) -> str:
        """Call STS once (never retried); returns the account id or raises :class:`VerifyError`."""
        from botocore.config import Config
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        where = self._settings.endpoint_url or f"AWS in {self._region}"
        config = Config(connect_timeout=self._settings.connect_timeout, read_timeout=self._settings.read_timeout,
                        retries={"max_attempts": 1, "mode": "standard"}, user_agent_extra=USER_AGENT)
        try:
            sts = self._session.client("sts", region_name=self._region, endpoint_url=self._settings.endpoint_url,
                                       config=config)
            return str(sts.get_caller_identity()["Account"])
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise VerifyError(f"no usable AWS credentials ({error}); set AWS_PROFILE or pass --profile, or "
                              "export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (CI: assume the role by OIDC)") from None
        except (EndpointConnectionError, ConnectTimeoutError) as error:
            raise VerifyError(f"cannot reach {where}: {error}; check --endpoint-url / --region and the "
                              "network") from None
        except ClientError as error:
            info = error.response.get("Error", {})
            raise VerifyError(f"{where} refused the credentials: {info.get('Code')}: {info.get('Message')}; "
                              "check that they are valid and not expired") from None
        except BotoCoreError as error:
            raise VerifyError(f"cannot call {where}: {error}") from None


def make_session(settings: AwsSettings) -> Any:
    """A boto3 session for ``--profile``; :class:`VerifyError` if the profile does not exist."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(profile_name=settings.profile)
    except ProfileNotFound:
        raise VerifyError(f"--profile {settings.profile!r}: no such AWS profile in ~/.aws/config or "
                          "~/.aws/credentials") from None


def choose_region(settings: AwsSettings, outputs: Outputs, session: Any) -> str:
    """``--region``, else the region in the stack's ARNs, else the session's default region."""
    if settings.region:
        return settings.region
    for key in ("stackKeyArn", "loadBalancerArn", "alertTopicArn", "httpsListenerArn"):
        if outputs.has(key):
            region = arn_region(outputs.get(key))
            if region:
                return region
    if session.region_name:
        return str(session.region_name)
    raise VerifyError("no AWS region: pass --region, set AWS_REGION, or use an outputs file whose ARNs name one")


# ---------------------------------------------------------------------------------------------
# HTTP probe (the default; tests inject their own)
# ---------------------------------------------------------------------------------------------
def urllib_getter(timeout: float = 10.0) -> HttpGet:
    """An :data:`HttpGet` over urllib that verifies TLS certificates and never follows redirects."""
    import ssl
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # report the 301 itself: https-redirect checks it

    opener = urllib.request.build_opener(NoRedirect(), urllib.request.HTTPSHandler(
        context=ssl.create_default_context()))

    def get(url: str) -> HttpResponse:
        if not url.startswith(("https://", "http://")):
            raise HttpProbeError(url, "only http and https URLs can be probed")
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})  # noqa: S310 (scheme checked)
        try:
            with opener.open(request, timeout=timeout) as response:
                return HttpResponse(response.status, {k.lower(): v for k, v in response.headers.items()},
                                    response.read(65536))
        except urllib.error.HTTPError as error:
            return HttpResponse(error.code, {k.lower(): v for k, v in (error.headers or {}).items()},
                                error.read(65536) if error.fp else b"")
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise HttpProbeError(url, str(reason)) from None

    return get


# ---------------------------------------------------------------------------------------------
# Outputs from the pulumi CLI when no file is given
# ---------------------------------------------------------------------------------------------
def outputs_from_pulumi(stack: str) -> Outputs:
    """Run ``pulumi stack output --json --stack <stack>`` (secrets stay masked)."""
    import shutil
    import subprocess

    pulumi = shutil.which("pulumi")
    source = f"`pulumi stack output --json --stack {stack}`"
    if pulumi is None:
        raise VerifyError(f"no --outputs FILE and no pulumi CLI on PATH to read the outputs of stack {stack!r}; "
                          f"run `pulumi stack output --json --stack {stack} > outputs.json` where the CLI is, "
                          "then pass --outputs outputs.json")
    result = subprocess.run([pulumi, "stack", "output", "--json", "--stack", stack], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no error output"])[-1]
        raise VerifyError(f"{source} failed (exit {result.returncode}): {detail}")
    try:
        return parse_outputs(json.loads(result.stdout), source)
    except ValueError as error:
        raise VerifyError(f"{source} printed something that is not JSON: {error}") from None


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------
def verify(outputs: Outputs, *, stack: str, settings: AwsSettings, session: Any | None = None,
           http_get: HttpGet | None = None, http_skip_reason: str = "HTTP probes are off (--skip-http)",
           now: datetime | None = None, only: Sequence[str] = (), clients: Clients | None = None) -> Report:
    """Check a deployed stack. Raises :class:`VerifyError` if AWS cannot be used at all.

    ``clients`` lets a caller that verifies many stacks in one process (the tests) reuse boto3
    clients, which take ~10-25 ms each to create; it must be for the same session and region.
    """
    if clients is None:
        session = session if session is not None else make_session(settings)
        clients = Clients(session, settings, choose_region(settings, outputs, session))
    region = clients.region
    account_id = clients.preflight()
    moment = now or datetime.now(UTC)
    ctx = Context(outputs=outputs, client=clients, now=moment, http_get=http_get, http_skip_reason=http_skip_reason,
                  stack=stack, region=region, account_id=account_id)
    return Report(stack=stack, account_id=account_id, region=region, endpoint_url=settings.endpoint_url,
                  checked_at=moment, outputs_source=outputs.source, items=run_items(ctx, only))


def render_text(report: Report) -> str:
    """The checklist as text: one line per item, and a ``fix:`` line under every FAIL."""
    where = f", endpoint {report.endpoint_url}" if report.endpoint_url else ""
    lines = [f"sarkops verify: stack {report.stack}, account {report.account_id}, region {report.region}{where}",
             f"outputs: {report.outputs_source}; checked {report.checked_at.strftime('%Y-%m-%dT%H:%M:%SZ')}", ""]
    width = max((len(item.id) for item in report.items), default=0)
    for item in report.items:
        lines.append(f"{item.status}  {item.id.ljust(width)}  {item.title}: {item.evidence}")
        if item.status == FAIL and item.fix:
            lines.append(f"{' ' * (len(item.status) + 2 + width + 2)}fix: {item.fix}")
    verdict = FAIL if report.failed else PASS
    lines += ["", f"result: {verdict} ({report.count(PASS)} pass, {report.count(FAIL)} fail, "
                  f"{report.count(SKIP)} skip)"]
    return "\n".join(lines) + "\n"


def to_json(report: Report) -> dict[str, Any]:
    """The report as one JSON document."""
    return {
        "stack": report.stack,
        "account": report.account_id,
        "region": report.region,
        "endpointUrl": report.endpoint_url,
        "checkedAt": report.checked_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "outputs": report.outputs_source,
        "status": FAIL if report.failed else PASS,
        "summary": {"pass": report.count(PASS), "fail": report.count(FAIL), "skip": report.count(SKIP)},
        "items": [{"id": i.id, "title": i.title, "checklist": i.checklist, "status": i.status,
                   "evidence": i.evidence, "fix": i.fix} for i in report.items],
    }


def add_parser(subparsers: Any) -> None:
    """Register ``verify`` on the ``sarkops`` argument parser."""
    parser = subparsers.add_parser(
        "verify", help="check a deployed stack against the production checklist (boto3 + HTTP)",
        description="Look up a deployed stack's resources from its outputs and check each checklist item: "
                    "PASS, FAIL (with what to fix) or SKIP. Exit status: 0 nothing failed, 1 an item failed, "
                    "2 verify cannot run (outputs, credentials, endpoint).")
    parser.add_argument("--stack", default=DEFAULT_STACK, metavar="NAME",
                        help=f"stack to verify (default: {DEFAULT_STACK})")
    parser.add_argument("--outputs", type=Path, metavar="FILE",
                        help="JSON from `pulumi stack output --json` ('-' for stdin); default: run that command")
    parser.add_argument("--region", help="AWS region (default: the region in the stack's ARNs, then AWS_REGION)")
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE or the default credentials chain)")
    parser.add_argument("--endpoint-url", metavar="URL",
                        help="send every AWS call here instead, e.g. moto's server for a dry run")
    parser.add_argument("--connect-timeout", type=float, default=5.0, metavar="SECONDS",
                        help="AWS connect timeout (default: 5)")
    parser.add_argument("--http-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="timeout of each HTTP probe of serviceUrl (default: 10)")
    parser.add_argument("--skip-http", action="store_true",
                        help="do not probe serviceUrl over HTTP (its items SKIP), e.g. against an emulator")
    parser.add_argument("--only", action="append", choices=ITEM_IDS, default=[], metavar="ITEM",
                        help=f"check only this item; repeatable. Items: {', '.join(ITEM_IDS)}")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the text report")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run ``verify`` for parsed arguments; returns the exit status."""
    settings = AwsSettings(region=args.region, profile=args.profile, endpoint_url=args.endpoint_url,
                           connect_timeout=args.connect_timeout)
    try:
        outputs = load_outputs_file(args.outputs) if args.outputs else outputs_from_pulumi(args.stack)
        http_get = None if args.skip_http else urllib_getter(args.http_timeout)
        report = verify(outputs, stack=args.stack, settings=settings, http_get=http_get, only=args.only)
    except VerifyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(to_json(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(report))
    return 1 if report.failed else 0
