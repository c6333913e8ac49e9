"""Building blocks of ``sarkops verify``: the outputs contract, item outcomes and the check context.

Kept free of boto3 imports so ``python -m sarkops plan`` (which imports every command module
to build its parser) stays fast; AWS clients come in through :class:`Context`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sarkops.errors import SarkopsError

PASS = "PASS"  # noqa: S105 (a status word, not a password)
FAIL = "FAIL"
SKIP = "SKIP"


class VerifyError(SarkopsError):
    """verify cannot run at all (bad outputs file, no credentials, unreachable endpoint): exit status 2."""


class MissingOutput(Exception):  # noqa: N818 (a control-flow signal, not an error: the item is skipped)
    """An item needs a stack output the outputs file does not have; the item is skipped."""

    def __init__(self, *keys: str) -> None:
        super().__init__(*keys)
        self.keys = keys


class HttpProbeError(Exception):
    """An HTTP request did not get any answer (DNS, TCP, TLS or timeout); the message says which."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"no answer from {url}: {reason}")
        self.url = url


# ---------------------------------------------------------------------------------------------
# The outputs contract (COMMON.md): name -> kind. Anything else in the file is ignored.
# ---------------------------------------------------------------------------------------------
STRING_OUTPUTS: tuple[str, ...] = (
    "serviceUrl", "loadBalancerArn", "loadBalancerDnsName", "httpsListenerArn", "httpListenerArn",
    "appAutoScalingGroupName", "appSecurityGroupId", "loadBalancerSecurityGroupId", "dbInstanceIdentifier",
    "dbEndpoint", "timescaleInstanceId", "timescaleDataVolumeId", "timescalePrivateIp",
    "cacheReplicationGroupId", "cachePrimaryEndpoint", "stackKeyArn", "alertTopicArn", "dashboardName",
    "accessLogBucket",
)
LIST_OUTPUTS: tuple[str, ...] = ("targetGroupArns", "alarmNames", "logGroupNames")
MAP_OUTPUTS: tuple[str, ...] = ("secretArns",)
KNOWN_OUTPUTS: frozenset[str] = frozenset(STRING_OUTPUTS + LIST_OUTPUTS + MAP_OUTPUTS)

# What `pulumi stack output --json` prints for a secret output without --show-secrets.
SECRET_PLACEHOLDER = "[secret]"  # noqa: S105 (the CLI's mask, not a secret)


@dataclass(frozen=True)
class Outputs:
    """The stack outputs verify uses, validated; ``secret`` lists outputs that came masked."""

    values: Mapping[str, Any]
    source: str
    """Where they came from (a file path, ``-`` or the pulumi command), for messages."""
    secret: frozenset[str] = frozenset()

    def get(self, key: str) -> Any:
        """The output's value; raises :class:`MissingOutput` if the stack does not export it."""
        if key not in self.values:
            raise MissingOutput(key)
        return self.values[key]

    def has(self, key: str) -> bool:
        """True if the output is there (and not masked)."""
        return key in self.values


def _describe(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_outputs(data: Any, source: str) -> Outputs:
    """Validate the document ``pulumi stack output --json`` prints.

    Raises :class:`VerifyError` naming the source, key, value and the expected shape.
    """
    if not isinstance(data, dict):
        raise VerifyError(f"{source}: expected a JSON object of stack outputs (from `pulumi stack output --json`), "
                          f"got {type(data).__name__}")
    values: dict[str, Any] = {}
    secret: set[str] = set()
    for key in sorted(KNOWN_OUTPUTS & set(data)):
        value = data[key]
        if value == SECRET_PLACEHOLDER:
            secret.add(key)
            continue
        if value is None:
            continue
        if key in STRING_OUTPUTS:
            if not isinstance(value, str) or not value.strip():
                raise VerifyError(f"{source}: output {key!r} is {_describe(value)}; expected a non-empty string")
        elif key in LIST_OUTPUTS:
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise VerifyError(f"{source}: output {key!r} is {_describe(value)}; expected a list of "
                                  "non-empty strings")
        elif not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
            raise VerifyError(f"{source}: output {key!r} is {_describe(value)}; expected an object mapping "
                              "secret names (SECRET_KEY, POSTGRES_PASSWORD, ...) to ARNs")
        values[key] = value
    if not values and not secret:
        raise VerifyError(f"{source}: none of the stack outputs verify uses is there (expected some of "
                          f"{', '.join(sorted(KNOWN_OUTPUTS))}); is this the output of "
                          "`pulumi stack output --json` for the SARK stack?")
    return Outputs(values=values, source=source, secret=frozenset(secret))


def load_outputs_file(path: Path) -> Outputs:
    """Read and validate an outputs file; ``-`` reads standard input."""
    source = str(path)
    try:
        text = sys.stdin.read() if source == "-" else path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VerifyError(f"{source}: outputs file not found; write it with "
                          f"`pulumi stack output --json --stack <stack> > {source}`") from None
    except OSError as error:
        raise VerifyError(f"{source}: cannot read the outputs file: {error.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise VerifyError(f"{source}: not valid JSON ({error}); expected the output of "
                          "`pulumi stack output --json`") from None
    return parse_outputs(data, source)


# ---------------------------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What one check found: a status, the evidence, and for a FAIL what the operator should fix."""

    status: str
    evidence: str
    fix: str | None = None


def passed(evidence: str) -> Outcome:
    """A PASS with its evidence."""
    return Outcome(PASS, evidence)


def failed(evidence: str, fix: str) -> Outcome:
    """A FAIL: the evidence (what is wrong) and the fix (what to do about it)."""
    return Outcome(FAIL, evidence, fix)


def skipped(reason: str) -> Outcome:
    """A SKIP and why."""
    return Outcome(SKIP, reason)


def verdict(problems: Sequence[str], good: str, fix: str) -> Outcome:
    """FAIL listing ``problems`` if there are any, else PASS with ``good``."""
    if problems:
        return failed("; ".join(problems), fix)
    return passed(good)


# ---------------------------------------------------------------------------------------------
# HTTP probe
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HttpResponse:
    """An HTTP answer; header names are lower-case. Redirects are never followed."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """A header's value, or None."""
        return self.headers.get(name.lower())


HttpGet = Callable[[str], HttpResponse]
"""GET a URL without following redirects; raises :class:`HttpProbeError` when nothing answers."""


# ---------------------------------------------------------------------------------------------
# Context handed to every check
# ---------------------------------------------------------------------------------------------
ClientFactory = Callable[[str], Any]


@dataclass
class Context:
    """Everything a check may use: the outputs, AWS clients, the HTTP probe and the clock."""

    outputs: Outputs
    client: ClientFactory
    """``client("rds")`` returns a boto3 client (cached by the factory)."""
    now: datetime
    """Timezone-aware current time (injected so tests can age things)."""
    http_get: HttpGet | None = None
    http_skip_reason: str = "HTTP probes are off"
    """Why HTTP items skip when ``http_get`` is None."""
    stack: str = "production"
    """Stack name, for the commands the fixes suggest."""
    region: str = ""
    account_id: str = ""
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def cached(self, kind: str, key: str, load: Callable[[], Any]) -> Any:
        """Memoise one lookup per run (several items read the same RDS instance or listener)."""
        slot = (kind, key)
        if slot not in self._cache:
            self._cache[slot] = load()
        return self._cache[slot]

    def http(self, url: str) -> HttpResponse:
        """GET ``url`` once per run; a probe error is remembered and raised again for every item that asks."""
        if self.http_get is None:
            raise HttpProbeSkipped(self.http_skip_reason)
        getter = self.http_get
        outcome = self.cached("http", url, lambda: _capture(getter, url))
        if isinstance(outcome, HttpProbeError):
            raise outcome
        return outcome

    def age(self, moment: datetime) -> timedelta:
        """How long ago ``moment`` was."""
        return self.now - moment


class HttpProbeSkipped(Exception):  # noqa: N818 (a control-flow signal: the item is skipped)
    """HTTP probes are disabled for this run (``--skip-http``)."""


def _capture(getter: HttpGet, url: str) -> HttpResponse | HttpProbeError:
    try:
        return getter(url)
    except HttpProbeError as error:
        return error


# ---------------------------------------------------------------------------------------------
# Small formatting and parsing helpers shared by the checks
# ---------------------------------------------------------------------------------------------
def ago(delta: timedelta) -> str:
    """``3 h ago``, ``2 days ago``: coarse, for evidence lines."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in the future"
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def plural(count: int, noun: str) -> str:
    """``1 target``, ``2 targets``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def stamp(moment: datetime) -> str:
    """An ISO-8601 UTC timestamp to the minute."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[^:]*:[^:]*:key/(?P<id>[^/]+)$")


def kms_key_id_from_arn(ref: str) -> str | None:
    """The key id of a KMS key ARN or bare key id; None for aliases (they need a lookup)."""
    match = _KEY_ARN.match(ref)
    if match:
        return match.group("id")
    if ref.startswith("alias/") or ":alias/" in ref:
        return None
    return ref


def arn_region(arn: str) -> str | None:
    """The region field of an ARN (``arn:aws:kms:us-east-1:...``), if it has one."""
    parts = arn.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and parts[3]:
        return parts[3]
    return None


def arn_name(arn: str) -> str:
    """A readable name from an ARN: ``targetgroup/sark-v1/abc`` -> ``sark-v1``."""
    resource = arn.split(":", 5)[-1]
    parts = resource.split("/")
    if len(parts) >= 3 and parts[1] in ("app", "net", "gwy"):  # loadbalancer/app/<name>/<id>
        return parts[2]
    if len(parts) >= 2:
        return parts[1]
    return resource.split(":")[-1]


def aws_error(error: Exception) -> tuple[str, str]:
    """(code, message) of a botocore ClientError, or the exception's class name and text."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        info = response.get("Error") or {}
        return str(info.get("Code") or "Unknown"), str(info.get("Message") or error)
    return type(error).__name__, str(error)


def is_not_found(error: Exception) -> bool:
    """True for the "no such resource" ClientErrors of every service verify calls."""
    code, _ = aws_error(error)
    return "NotFound" in code or code in {"ResourceNotFoundException", "NoSuchEntity", "NoSuchBucket", "404"}
