"""Rotation and rotation audit of the SARK stack's Secrets Manager secrets (AWS Lambda, Python 3.12).

Deployed inline by ``components/secrets.py`` (``SecretRotations``); it needs nothing beyond the
Lambda runtime (boto3). Its whole configuration is the JSON in ``SARK_ROTATION_CONFIG``, which
holds no secret: which secret ARN rotates how, and where the consumers are.

**Rotation** (invoked by Secrets Manager with ``Step``/``SecretId``/``ClientRequestToken``) follows
the four-step protocol. The kind of each secret decides what ``setSecret``/``testSecret`` do:

=============  ================================================  ==========================================
kind           setSecret                                         testSecret
=============  ================================================  ==========================================
generated      nothing (the value is only read by the app)       the pending value has the right shape
rds            ``ModifyDBInstance(MasterUserPassword=...)``      waits until RDS has applied the password
(the master)
rds-app        as the master, over TLS: ``CREATE ROLE`` (first    logs in as the pending user and checks it
(alternating   time) or ``ALTER ROLE ... PASSWORD`` of the        is a member of the app's group role
users)         *other* login (``sark_app_user`` <->
               ``sark_app_user_clone``), a SCRAM verifier, never
               the password; the current login keeps working
elasticache    ``ModifyReplicationGroup(AuthToken=...,           waits until the replication group is
               AuthTokenUpdateStrategy=ROTATE)``: the old        ``available`` again
               token keeps working next to the new one
timescale      SSM Run Command on the TimescaleDB host:          SSM Run Command on the host: log in with
(alternating   ``sark-timescale-password apply AWSPENDING``      the pending password (``check``)
users)         (the host reads the value itself and sets the
               *other* login, ``sark`` <-> ``sark_clone``; no
               secret is in the command)
=============  ================================================  ==========================================

**Alternating users** (Secrets Manager's "alternating users" strategy, as in AWS's
SecretsManagerRDSPostgreSQLRotationMultiUser template, aws-samples/aws-secrets-manager-rotation-lambdas):
the database secrets hold ``{"username", "password"}``; each rotation sets a new password on the
login that is *not* current and switches the secret to it, so the login every running host
uses stays valid until the rotation after next: there is no moment when a host's credential
does not work. **bootstrap** (``{"action": "bootstrap"}``, a ``aws.lambda.Invocation`` at
deployment) creates the app's NOLOGIN group role with database-level grants and its first login.

``finishSecret`` moves ``AWSCURRENT`` to the new version and then tells the app hosts (instances
tagged ``sark:role=app``) to restart SARK so they read the new values at service start: one host
at a time for passwords (the previous login stays valid), all at once for ``SECRET_KEY`` so the
hosts disagree on the signing key for one coordinated restart at most.

**Audit** (invoked daily by an EventBridge schedule with ``{"action": "audit"}``) describes every
stack secret and publishes ``SecretsNeedingAttention`` to CloudWatch: the number of secrets whose
value is missing (an operator has not yet put the SIEM token in) or older than their
``sark:rotation-days`` tag plus a grace period (an external token due for manual rotation, or an
automatic rotation that keeps failing). An alarm on that metric is the rotation reminder.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import ssl
import string
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

PENDING = "AWSPENDING"
CURRENT = "AWSCURRENT"
KINDS = ("generated", "rds", "rds-app", "elasticache", "timescale")
JSON_KINDS = ("rds", "rds-app", "timescale")
"""Kinds whose value is ``{"username", "password"}`` rather than the bare value."""
CLONE_SUFFIX = "_clone"
CA_BUNDLE = "/etc/pki/tls/cert.pem"
"""The Lambda runtime's CA bundle, which AWS's own RDS rotation templates verify RDS against."""
ROTATION_DAYS_TAG = "sark:rotation-days"
GRACE_DAYS = 2
"""Days an automatic rotation may run late (retries) before the audit counts the secret."""

POLL_SECONDS = 10
SAFETY_MARGIN_SECONDS = 15
"""Time left for Secrets Manager to record the failure when a wait runs out."""

sleep: Callable[[float], None] = time.sleep
"""Replaced in tests."""


class RotationError(Exception):
    """The rotation cannot continue; Secrets Manager records the step as failed and retries later."""


@dataclass(frozen=True)
class Step:
    """What one rotation step works on."""

    sm: Any
    """Secrets Manager client."""
    arn: str
    token: str
    """ClientRequestToken: the id of the version being rotated in."""
    spec: Mapping[str, Any]
    """This secret's entry of the configuration."""
    cfg: Mapping[str, Any]
    deadline: float
    """``time.monotonic()`` by which the step must have returned."""

    @property
    def name(self) -> str:
        """The secret's environment variable name."""
        return str(self.spec["name"])

    def pending(self) -> str:
        """The AWSPENDING password (or key, or token)."""
        return password_of(self.spec, self.pending_text())

    def pending_text(self) -> str:
        """The AWSPENDING value as stored (JSON for the database kinds)."""
        return self.sm.get_secret_value(SecretId=self.arn, VersionId=self.token,
                                        VersionStage=PENDING)["SecretString"]

    def pending_login(self) -> dict[str, str]:
        """``{"username", "password"}`` of the AWSPENDING value of a database secret."""
        return login_of(self.spec, self.pending_text())


def config() -> dict[str, Any]:
    """The function's configuration from ``SARK_ROTATION_CONFIG``."""
    return json.loads(os.environ["SARK_ROTATION_CONFIG"])


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any] | None:
    """Lambda entry point: a rotation step from Secrets Manager, the scheduled audit, or the bootstrap."""
    cfg = config()
    if event.get("action") == "audit":
        return audit(cfg, now=datetime.now(UTC))
    if event.get("action") == "bootstrap":
        return bootstrap(cfg)
    rotate(event, context, cfg)
    return None


# --------------------------------------------------------------------------------------
# Values: bare strings, or {"username", "password"} for the database logins
# --------------------------------------------------------------------------------------

def login_of(spec: Mapping[str, Any], text: str) -> dict[str, str]:
    """The ``{"username", "password"}`` of a database secret's value; RotationError if it is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not isinstance(value.get("username"), str) \
            or not isinstance(value.get("password"), str):
        raise RotationError(f"the value of {spec['name']} is not JSON with a username and a password")
    allowed = logins(spec)
    if value["username"] not in allowed:
        raise RotationError(f"{spec['name']} names user {value['username']!r}; expected one of "
                            f"{', '.join(allowed)}")
    return {"username": value["username"], "password": value["password"]}


def password_of(spec: Mapping[str, Any], text: str) -> str:
    """The secret part of a value: the password of a login, or the bare value."""
    return login_of(spec, text)["password"] if spec.get("kind") in JSON_KINDS else text


def logins(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The users a database secret may hold: its base user, and for alternating kinds the clone."""
    base = str(spec["username"])
    return (base,) if spec.get("kind") == "rds" else (base, base + CLONE_SUFFIX)


def other_login(spec: Mapping[str, Any], current: str) -> str:
    """The login a rotation sets: the one that is not current (the same one for the single-user master)."""
    base, *clone = logins(spec)
    if not clone:
        return base
    return clone[0] if current == base else base


# --------------------------------------------------------------------------------------
# Rotation
# --------------------------------------------------------------------------------------

def rotate(event: Mapping[str, Any], context: Any, cfg: Mapping[str, Any]) -> None:
    """Run one step of the Secrets Manager rotation protocol."""
    step = event["Step"]
    token = event["ClientRequestToken"]
    sm = boto3.client("secretsmanager")
    meta = sm.describe_secret(SecretId=event["SecretId"])
    arn = meta["ARN"]
    spec = cfg["secrets"].get(arn)
    if spec is None:
        raise RotationError(f"secret {arn} is not configured for rotation by this function")
    if spec.get("kind") not in KINDS:
        raise RotationError(f"secret {arn} has unknown rotation kind {spec.get('kind')!r}")
    if not meta.get("RotationEnabled"):
        raise RotationError(f"secret {arn} does not have rotation enabled")
    versions = meta.get("VersionIdsToStages", {})
    if token not in versions:
        raise RotationError(f"secret version {token} has no stage for rotation of secret {arn}")
    if CURRENT in versions[token]:
        LOG.info("version %s of %s is already AWSCURRENT; nothing to do", token, spec["name"])
        return
    if PENDING not in versions[token]:
        raise RotationError(f"secret version {token} of {arn} is not AWSPENDING")

    deadline = time.monotonic() + _remaining_seconds(context) - SAFETY_MARGIN_SECONDS
    steps: dict[str, Callable[[Step], None]] = {
        "createSecret": create_secret, "setSecret": set_secret, "testSecret": test_secret,
        "finishSecret": finish_secret,
    }
    if step not in steps:
        raise RotationError(f"unknown rotation step {step!r}")
    LOG.info("%s for %s (%s)", step, spec["name"], spec["kind"])
    steps[step](Step(sm=sm, arn=arn, token=token, spec=spec, cfg=cfg, deadline=deadline))


def _remaining_seconds(context: Any) -> float:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return getter() / 1000 if getter is not None else 300.0


def allowed_characters(spec: Mapping[str, Any]) -> set[str]:
    """Characters a value of this secret may contain."""
    return set(string.ascii_letters + string.digits + spec.get("special", ""))


def new_value(sm: Any, spec: Mapping[str, Any]) -> str:
    """A fresh random value with the secret's length and character set."""
    special = spec.get("special", "")
    excluded = "".join(c for c in string.punctuation if c not in special)
    response = sm.get_random_password(
        PasswordLength=int(spec["length"]),
        ExcludeCharacters=excluded,
        ExcludePunctuation=not special,
        IncludeSpace=False,
        RequireEachIncludedType=True,
    )
    value = response["RandomPassword"]
    problem = value_problem(value, spec)
    if problem:
        raise RotationError(f"generated value for {spec['name']} is unusable: {problem}")
    return value


def value_problem(value: str, spec: Mapping[str, Any]) -> str | None:
    """Why ``value`` cannot be used for this secret, or None."""
    if len(value) != int(spec["length"]):
        return f"length {len(value)}, expected {spec['length']}"
    stray = sorted(set(value) - allowed_characters(spec))
    if stray:
        return f"{len(stray)} character(s) outside the allowed set"
    return None


def create_secret(step: Step) -> None:
    """Store a new random value as AWSPENDING (once: a retried step keeps the first value).

    A database login's new value names the other login, so the current one stays untouched.
    """
    current = step.sm.get_secret_value(SecretId=step.arn, VersionStage=CURRENT)["SecretString"]
    try:
        step.sm.get_secret_value(SecretId=step.arn, VersionId=step.token, VersionStage=PENDING)
        LOG.info("pending value of %s already exists", step.name)
        return
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    value = new_value(step.sm, step.spec)
    if step.spec["kind"] in JSON_KINDS:
        user = other_login(step.spec, login_of(step.spec, current)["username"])
        value = json.dumps({"username": user, "password": value})
    step.sm.put_secret_value(SecretId=step.arn, ClientRequestToken=step.token, SecretString=value,
                             VersionStages=[PENDING])


def set_secret(step: Step) -> None:
    """Make the service that checks the credential accept the pending value."""
    kind, target = step.spec["kind"], step.spec.get("target")
    if kind == "rds":
        boto3.client("rds").modify_db_instance(
            DBInstanceIdentifier=target, MasterUserPassword=step.pending(), ApplyImmediately=True)
    elif kind == "elasticache":
        # ROTATE keeps the current token valid next to the new one, so app hosts that have not
        # restarted yet keep working; the next rotation drops the older token.
        boto3.client("elasticache").modify_replication_group(
            ReplicationGroupId=target, AuthToken=step.pending(), AuthTokenUpdateStrategy="ROTATE",
            ApplyImmediately=True)
    elif kind == "rds-app":
        login = step.pending_login()
        with master_connection(step.sm, step.cfg) as db:
            for statement in login_sql(db, login["username"], step.cfg["database"]["group"],
                                       scram_verifier(login["password"])):
                db.execute(statement)
    elif kind == "timescale":
        run_on_host(step.cfg["timescale"]["document"], target, {"action": ["apply"], "stage": [PENDING]},
                    step.deadline)


def test_secret(step: Step) -> None:
    """Check that the pending value works (or, where we cannot log in, that it was applied)."""
    kind, target = step.spec["kind"], step.spec.get("target")
    problem = value_problem(step.pending(), step.spec)
    if problem:
        raise RotationError(f"pending value of {step.name} is unusable: {problem}")
    if kind == "rds":
        _wait(lambda: _rds_applied(target), step.deadline, f"RDS instance {target} to apply the password")
    elif kind == "elasticache":
        _wait(lambda: _cache_available(target), step.deadline,
              f"replication group {target} to apply the AUTH token")
    elif kind == "rds-app":
        login = step.pending_login()
        database = step.cfg["database"]
        host, port = rds_endpoint(database["instance"])
        with connect(host, port, login["username"], login["password"], database["name"]) as db:
            member = db.query(f"SELECT pg_has_role(current_user, {quote_literal(database['group'])}, 'USAGE')")
        if member != [["t"]]:
            raise RotationError(f"{login['username']} logs in but is not a member of {database['group']}")
    elif kind == "timescale":
        run_on_host(step.cfg["timescale"]["document"], target, {"action": ["check"], "stage": [PENDING]},
                    step.deadline)


def finish_secret(step: Step) -> None:
    """Make the new version AWSCURRENT, then restart the app hosts so they read it."""
    meta = step.sm.describe_secret(SecretId=step.arn)
    current = next((version for version, stages in meta["VersionIdsToStages"].items() if CURRENT in stages), None)
    if current != step.token:
        step.sm.update_secret_version_stage(SecretId=step.arn, VersionStage=CURRENT, MoveToVersionId=step.token,
                                            RemoveFromVersionId=current)
    LOG.info("version %s of %s is now AWSCURRENT", step.token, step.name)
    if step.spec.get("reload_app", True):
        reload_app(step.cfg["reload"], all_at_once=step.spec.get("restart") == "all-at-once")


def _rds_applied(identifier: str) -> bool:
    instance = boto3.client("rds").describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    return "MasterUserPassword" not in instance.get("PendingModifiedValues", {}) \
        and instance.get("DBInstanceStatus") == "available"


def _cache_available(group_id: str) -> bool:
    group = boto3.client("elasticache").describe_replication_groups(
        ReplicationGroupId=group_id)["ReplicationGroups"][0]
    return group.get("Status") == "available"


def _wait(ready: Callable[[], bool], deadline: float, what: str) -> None:
    while not ready():
        if time.monotonic() + POLL_SECONDS > deadline:
            raise RotationError(f"timed out waiting for {what}")
        sleep(POLL_SECONDS)


def run_on_host(document: str, instance_id: str, parameters: Mapping[str, list[str]], deadline: float) -> None:
    """Run one of the stack's SSM documents on one instance and wait for it to succeed."""
    ssm = boto3.client("ssm")
    command = ssm.send_command(InstanceIds=[instance_id], DocumentName=document, Parameters=dict(parameters),
                               TimeoutSeconds=max(30, int(deadline - time.monotonic())),
                               Comment="SARK secret rotation")["Command"]
    status = "Pending"
    while True:
        try:
            invocation = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=instance_id)
            status = invocation["Status"]
        except ClientError as error:
            # The invocation can take a moment to appear after SendCommand.
            if error.response["Error"]["Code"] != "InvocationDoesNotExist":
                raise
        if status == "Success":
            return
        if status in ("Cancelled", "TimedOut", "Failed", "Cancelling", "Undeliverable", "Terminated"):
            raise RotationError(f"{document} {dict(parameters)} on {instance_id} ended {status}")
        if time.monotonic() + POLL_SECONDS > deadline:
            raise RotationError(f"timed out waiting for {document} on {instance_id} (last status {status})")
        sleep(POLL_SECONDS)


def reload_app(reload: Mapping[str, Any], *, all_at_once: bool = False) -> None:
    """Restart SARK on every app host so each reads the new secret values.

    One host at a time keeps the service up; all at once (SECRET_KEY) keeps the hosts from
    disagreeing on the signing key for longer than one restart, at the price of that restart.
    """
    boto3.client("ssm").send_command(
        DocumentName=reload["document"],
        Targets=[{"Key": f"tag:{reload['tag_key']}", "Values": [reload["tag_value"]]}],
        MaxConcurrency="100%" if all_at_once else "1",
        MaxErrors="0",
        Comment="SARK secret rotated: restart to read the new value",
    )


# --------------------------------------------------------------------------------------
# The app's PostgreSQL role (RDS): SQL, and a minimal client to run it
# --------------------------------------------------------------------------------------

def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings is on in every supported version)."""
    return "'" + text.replace("'", "''") + "'"


def scram_verifier(plaintext: str, salt: bytes | None = None, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802 / RFC 7677), so no password reaches the server
    (or its statement log) in clear; the same function as the TimescaleDB host's sark-timescale-password."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", plaintext.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
            f"${b64(stored_key).decode()}:{b64(server_key).decode()}")


APP_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
APP_SEQUENCE_PRIVILEGES = "USAGE, SELECT, UPDATE"


def app_role_sql(database: str, owner: str, group: str, schema: str = "public") -> list[str]:
    """Grants of the app's group role: database-level only. The app reads and writes rows; it cannot
    create, alter or drop objects (migrations run as the owner, the master user), create roles or
    databases, or read another database. Default privileges extend the grants to what migrations create."""
    d, o, g, n = quote_ident(database), quote_ident(owner), quote_ident(group), quote_ident(schema)
    return [
        f"GRANT CONNECT ON DATABASE {d} TO {g}",
        f"GRANT USAGE ON SCHEMA {n} TO {g}",
        f"GRANT {APP_TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA {n} TO {g}",
        f"GRANT {APP_SEQUENCE_PRIVILEGES} ON ALL SEQUENCES IN SCHEMA {n} TO {g}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {n} GRANT {APP_TABLE_PRIVILEGES} ON TABLES TO {g}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {n} GRANT {APP_SEQUENCE_PRIVILEGES} ON SEQUENCES TO {g}",
    ]


LOGIN_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"


def role_exists(db: Any, role: str) -> bool:
    # The role name is quoted as a literal; no value from outside the stack's configuration reaches it.
    return db.query(f"SELECT 1 FROM pg_roles WHERE rolname = {quote_literal(role)}") == [["1"]]  # noqa: S608


def group_sql(db: Any, group: str) -> list[str]:
    """Create the app's NOLOGIN group role if it is missing."""
    if role_exists(db, group):
        return []
    return [f"CREATE ROLE {quote_ident(group)} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"]


def login_sql(db: Any, user: str, group: str, verifier: str) -> list[str]:
    """Create ``user`` as a member of ``group`` with this password verifier, or set its password."""
    if "'" in verifier or not verifier.startswith("SCRAM-SHA-256$"):
        raise RotationError("refusing a password that is not a SCRAM-SHA-256 verifier")
    if role_exists(db, user):
        return [f"ALTER ROLE {quote_ident(user)} WITH {LOGIN_ATTRIBUTES} PASSWORD '{verifier}'",
                f"GRANT {quote_ident(group)} TO {quote_ident(user)}"]
    return [f"CREATE ROLE {quote_ident(user)} WITH {LOGIN_ATTRIBUTES} PASSWORD '{verifier}' "
            f"IN ROLE {quote_ident(group)}"]


def rds_endpoint(instance: str) -> tuple[str, int]:
    """Host and port of the RDS instance."""
    described = boto3.client("rds").describe_db_instances(DBInstanceIdentifier=instance)["DBInstances"][0]
    endpoint = described.get("Endpoint") or {}
    if not endpoint.get("Address"):
        raise RotationError(f"RDS instance {instance} has no endpoint yet ({described.get('DBInstanceStatus')})")
    return endpoint["Address"], int(endpoint.get("Port", 5432))


def master_connection(sm: Any, cfg: Mapping[str, Any]) -> Any:
    """A connection to the app database as the master user (its credential from the master secret)."""
    database = cfg["database"]
    master = json.loads(sm.get_secret_value(SecretId=database["master_secret"], VersionStage=CURRENT)["SecretString"])
    host, port = rds_endpoint(database["instance"])
    return connect(host, port, master["username"], master["password"], database["name"])


def bootstrap(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Create (or bring up to date) the app's group role, its grants and its current login. Idempotent."""
    sm = boto3.client("secretsmanager")
    database = cfg["database"]
    spec = cfg["secrets"][database["app_secret"]]
    login = login_of(spec, sm.get_secret_value(SecretId=database["app_secret"],
                                               VersionStage=CURRENT)["SecretString"])
    with master_connection(sm, cfg) as db:
        statements = group_sql(db, database["group"])
        statements += app_role_sql(database["name"], database["owner"], database["group"])
        statements += login_sql(db, login["username"], database["group"], scram_verifier(login["password"]))
        for statement in statements:
            db.execute(statement)
    LOG.info("app role %s and login %s ready in %s", database["group"], login["username"], database["name"])
    return {"group": database["group"], "login": login["username"], "statements": len(statements)}


class DatabaseError(RotationError):
    """The server refused a statement or the login; the message is the server's (never a password)."""


class PgConnection:
    """Just enough of PostgreSQL's protocol v3 for the statements above: TLS (verified against the
    runtime's CA bundle and the host name), SCRAM-SHA-256 login, simple queries. The Lambda stays one
    file with no dependency beyond the runtime (AWS's templates bundle PyGreSQL for the same job)."""

    def __init__(self, host: str, port: int, user: str, password: str, dbname: str, *,
                 ssl_context: ssl.SSLContext | None = None, timeout: float = 10.0) -> None:
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            raw.sendall(struct.pack("!II", 8, 80877103))  # SSLRequest
            if raw.recv(1) != b"S":
                raise DatabaseError(f"{host}:{port} does not offer TLS")
            context = ssl_context or ssl.create_default_context(cafile=CA_BUNDLE)
            self.sock = context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        self._login(user, password, dbname)

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"X" + struct.pack("!I", 4))
        self.sock.close()

    def _send(self, kind: bytes, payload: bytes) -> None:
        self.sock.sendall(kind + struct.pack("!I", len(payload) + 4) + payload)

    def _read(self) -> tuple[bytes, bytes]:
        header = self._exactly(5)
        length = struct.unpack("!I", header[1:])[0]
        return header[:1], self._exactly(length - 4)

    def _exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise DatabaseError("the server closed the connection")
            data += chunk
        return data

    @staticmethod
    def _error(payload: bytes) -> DatabaseError:
        fields = {part[:1]: part[1:].decode("utf-8", "replace") for part in payload.split(b"\0") if part}
        return DatabaseError(f"{fields.get(b'S', 'ERROR')} {fields.get(b'C', '')}: {fields.get(b'M', 'unknown')}")

    def _login(self, user: str, password: str, dbname: str) -> None:
        params = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in
                          (("user", user), ("database", dbname), ("application_name", "sark-secret-rotation")))
        body = struct.pack("!I", 196608) + params + b"\0"
        self.sock.sendall(struct.pack("!I", len(body) + 4) + body)
        nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        first_bare = f"n=,r={nonce}"
        server_signature = b""
        while True:
            kind, payload = self._read()
            if kind == b"E":
                raise self._error(payload)
            if kind == b"Z":
                return
            if kind != b"R":
                continue  # ParameterStatus, BackendKeyData, notices
            code = struct.unpack("!I", payload[:4])[0]
            if code == 0:
                continue
            if code == 10:  # AuthenticationSASL
                if b"SCRAM-SHA-256" not in payload[4:].split(b"\0"):
                    raise DatabaseError("the server does not offer SCRAM-SHA-256")
                first = ("n,," + first_bare).encode()
                self._send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first)
            elif code == 11:  # AuthenticationSASLContinue
                attrs = dict(item.split("=", 1) for item in payload[4:].decode().split(","))
                if not attrs["r"].startswith(nonce):
                    raise DatabaseError("SCRAM: the server's nonce does not extend ours")
                salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]),
                                             int(attrs["i"]))
                client_key = hmac.new(salted, b"Client Key", "sha256").digest()
                without_proof = f"c=biws,r={attrs['r']}"
                message = f"{first_bare},{payload[4:].decode()},{without_proof}".encode()
                signature = hmac.new(hashlib.sha256(client_key).digest(), message, "sha256").digest()
                proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True))).decode()
                server_key = hmac.new(salted, b"Server Key", "sha256").digest()
                server_signature = hmac.new(server_key, message, "sha256").digest()
                self._send(b"p", f"{without_proof},p={proof}".encode())
            elif code == 12:  # AuthenticationSASLFinal
                attrs = dict(item.split("=", 1) for item in payload[4:].decode().split(","))
                if not hmac.compare_digest(base64.b64decode(attrs.get("v", "")), server_signature):
                    raise DatabaseError("SCRAM: the server's signature is wrong")
            else:
                raise DatabaseError(f"authentication method {code} is not supported (expected SCRAM-SHA-256)")

    def query(self, sql: str) -> list[list[str | None]]:
        """Run one statement; the rows as text."""
        self._send(b"Q", sql.encode() + b"\0")
        rows: list[list[str | None]] = []
        error: DatabaseError | None = None
        while True:
            kind, payload = self._read()
            if kind == b"D":
                count = struct.unpack("!H", payload[:2])[0]
                offset, row = 2, []
                for _ in range(count):
                    size = struct.unpack("!i", payload[offset:offset + 4])[0]
                    offset += 4
                    if size < 0:
                        row.append(None)
                    else:
                        row.append(payload[offset:offset + size].decode())
                        offset += size
                rows.append(row)
            elif kind == b"E":
                error = self._error(payload)
            elif kind == b"Z":
                if error is not None:
                    raise error
                return rows

    def execute(self, sql: str) -> None:
        """Run one statement for its effect (logged without its literals: a verifier is not a password,
        but the log needs only the shape)."""
        LOG.info("SQL: %s", sql.split(" PASSWORD ", 1)[0])
        self.query(sql)


connect: Callable[..., Any] = PgConnection
"""Replaced in tests by a fake that records the SQL."""


# --------------------------------------------------------------------------------------
# Audit
# --------------------------------------------------------------------------------------

def audit(cfg: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """Count the secrets that need an operator, publish the count, and return the details."""
    sm = boto3.client("secretsmanager")
    findings: list[dict[str, Any]] = []
    for arn in cfg["audit"]:
        finding = audit_secret(sm, arn, now)
        if finding is not None:
            findings.append(finding)
            LOG.warning("%s: %s", finding["name"], finding["problem"])
    boto3.client("cloudwatch").put_metric_data(
        Namespace=cfg["namespace"],
        MetricData=[{"MetricName": "SecretsNeedingAttention", "Dimensions": [{"Name": "Stack", "Value": cfg["stack"]}],
                     "Value": float(len(findings)), "Unit": "Count"}],
    )
    return {"secretsNeedingAttention": findings}


def audit_secret(sm: Any, arn: str, now: datetime) -> dict[str, Any] | None:
    """A finding if the secret has no value, or its value is older than its rotation period (plus grace).

    The age is that of the AWSCURRENT version (created by each rotation or ``put-secret-value``),
    not the secret's ``LastChangedDate``, which any tag or description update resets.
    """
    meta = sm.describe_secret(SecretId=arn)
    name = meta.get("Name", arn)
    tags = {t["Key"]: t["Value"] for t in meta.get("Tags", [])}
    versions = sm.list_secret_version_ids(SecretId=arn).get("Versions", [])
    current = next((v for v in versions if CURRENT in v.get("VersionStages", [])), None)
    if current is None:
        return {"name": name, "arn": arn, "problem": "no value yet; put one with `aws secretsmanager put-secret-value`"}
    try:
        days = int(tags[ROTATION_DAYS_TAG])
    except (KeyError, ValueError):
        return {"name": name, "arn": arn, "problem": f"no valid {ROTATION_DAYS_TAG} tag"}
    age_days = (now - current["CreatedDate"]).total_seconds() / 86400
    if age_days > days + GRACE_DAYS:
        return {"name": name, "arn": arn,
                "problem": f"value is {int(age_days)} days old; it must change every {days} days"}
    return None
