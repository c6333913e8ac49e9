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
- it writes the file atomically, mode 0600, owned by the service user.

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

MIGRATION_ONLY = {"POSTGRES_MASTER": "POSTGRES"}
"""Secrets never written to SARK's environment: the RDS master login, read only by
``sark-render-env --migration-env FILE`` for the migration step (as POSTGRES_USER/POSTGRES_PASSWORD)."""

REQUIRED_SECRETS = ("SECRET_KEY", "POSTGRES_PASSWORD", "TIMESCALE_PASSWORD", "VALKEY_PASSWORD")
"""Secrets the service cannot start without (ARNs under <path>/secret-arns/)."""

SIEM_REQUIREMENTS = {
    "SPLUNK_ENABLED": ("SPLUNK_HEC_URL", "SPLUNK_INDEX", "SPLUNK_HEC_TOKEN"),
    "DATADOG_ENABLED": ("DATADOG_SITE", "DATADOG_API_KEY"),
}
"""Names needed when a SIEM is switched on (``<flag>=true``)."""

DATA_STORES = (("POSTGRES_HOST", "POSTGRES_PORT"), ("TIMESCALE_HOST", "TIMESCALE_PORT"),
               ("VALKEY_HOST", "VALKEY_PORT"))
"""Host/port pairs that must accept connections before the service starts."""

_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_NAME_VALUE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
"""A PostgreSQL user name as the stack creates them."""


class NotReadyError(Exception):
    """Something the environment needs is not there yet (retried)."""


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
        raise NotReadyError(f"secret for {name} not readable yet ({_error_code(error)})") from None
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


def collect(ssm, secrets, path: str) -> dict:
    """All settings and secrets, or :class:`NotReadyError` naming what is missing."""
    path = path.rstrip("/")
    values = _by_path(ssm, f"{path}/env")
    arns = _by_path(ssm, f"{path}/secret-arns")
    overlap = sorted(set(values) & set(arns))
    if overlap:
        raise ValueError(f"{', '.join(overlap)} defined both as setting and as secret")
    missing = [name for name in required_names(values) if name not in values and name not in arns]
    if missing:
        raise NotReadyError(f"waiting for parameters: {', '.join(missing)}")
    for name, arn in sorted(arns.items()):
        if name in MIGRATION_ONLY:
            continue
        values[name] = _secret_value(secrets, name, arn)
        user = _secret_username(secrets, name, arn)
        if user is not None and name.endswith("_PASSWORD"):
            values[name.removesuffix("_PASSWORD") + "_USER"] = user
    return values


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
    migration_file = None
    if argv[:1] == ["--migration-env"]:
        if len(argv) < 2:
            _log("usage: sark-render-env [--migration-env FILE] [CONFIG]")
            return 2
        migration_file, argv = argv[1], argv[2:]
    config_file = argv[0] if argv else CONFIG_FILE
    with open(config_file, encoding="utf-8") as handle:
        config = json.load(handle)
    if clients is None:
        import boto3

        clients = (boto3.client("ssm", region_name=config["region"]),
                   boto3.client("secretsmanager", region_name=config["region"]))
    ssm, secrets = clients
    deadline = clock() + float(config.get("waitSeconds", 900))
    delay = 5.0
    while True:
        try:
            values = collect(ssm, secrets, config["parameterPath"])
            certificates = tls_files(ssm, config["parameterPath"])
            if config.get("waitForDataStores", True):
                down = unreachable(values)
                if down:
                    raise NotReadyError(f"waiting for data stores: {', '.join(down)}")
            break
        except NotReadyError as waiting:
            if clock() >= deadline:
                _log(f"giving up: {waiting}")
                return 1
            _log(str(waiting))
            sleep(delay)
            delay = min(delay * 2, 60.0)
    write_certificates(certificates, config.get("tlsDir", TLS_DIR))
    write(config["envFile"], render(values), config["owner"])
    if migration_file is not None:
        write(migration_file, render(migration_values(ssm, secrets, config["parameterPath"])), config["owner"])
        _log(f"wrote {migration_file} (the master login, for migrations)")
    _log(f"wrote {config['envFile']} ({len(values)} variables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
