#!/usr/bin/env python3
"""Set or check a TimescaleDB login's password from Secrets Manager, on the host.

The secret holds ``{"username", "password"}``; the username alternates between the owner
``sark`` and ``sark_clone`` on every rotation (Secrets Manager's alternating-users strategy), so
the login the app hosts use keeps working while the other one changes. ``sark_clone`` is a
member of ``sark`` and acts as it (``ALTER ROLE ... SET role``), so what it creates belongs to
``sark`` whichever login ran the migration.

    sark-timescale-password apply AWSCURRENT   # at boot (sark-timescale-setup)
    sark-timescale-password apply AWSPENDING   # rotation, setSecret (SSM Run Command)
    sark-timescale-password check AWSPENDING   # rotation, testSecret (SSM Run Command)

The value is read here, with the instance role, from the secret named in
/etc/sark/timescale.env; it never appears in user data, a command line, the SSM command or
the server log: ``apply`` sends PostgreSQL a SCRAM-SHA-256 verifier computed here (what
psql's \\password does), never the password itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import urllib.request

ENV_FILE = "/etc/sark/timescale.env"
IMDS = "http://169.254.169.254/latest"
IMDS_SESSION_HEADER = "X-aws-ec2-metadata-token"
STAGES = ("AWSCURRENT", "AWSPENDING")
ACTIONS = ("apply", "check")
SCRAM_ITERATIONS = 4096


def read_env(path: str = ENV_FILE) -> dict[str, str]:
    """KEY=value lines (shell quoting allowed) of the host's settings file."""
    settings: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            parts = shlex.split(value)
            settings[key.strip()] = parts[0] if parts else ""
    return settings


def imds_region(opener=urllib.request.urlopen) -> str:
    """This instance's region, through IMDSv2 (a session token first; IMDSv1 is disabled)."""
    # A fixed http:// URL of the instance metadata service, nothing user-supplied.
    session_request = urllib.request.Request(f"{IMDS}/api/token", method="PUT",  # noqa: S310
                                             headers={f"{IMDS_SESSION_HEADER}-ttl-seconds": "60"})
    with opener(session_request, timeout=5) as response:
        session = response.read().decode()
    region_request = urllib.request.Request(f"{IMDS}/meta-data/placement/region",  # noqa: S310
                                            headers={IMDS_SESSION_HEADER: session})
    with opener(region_request, timeout=5) as response:
        return response.read().decode().strip()


def fetch_value(secret_id: str, stage: str, region: str) -> str:
    """The secret's value at ``stage`` (boto3 from python3-boto3; credentials from the instance role)."""
    import boto3

    client = boto3.client("secretsmanager", region_name=region)
    return client.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"]


def scram_verifier(plaintext: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``plaintext`` (RFC 5802 / RFC 7677)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", plaintext.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
            f"${b64(stored_key).decode()}:{b64(server_key).decode()}")


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def alter_role_sql(user: str, verifier: str) -> str:
    """SQL that sets ``user``'s password to a precomputed verifier (no plaintext leaves this host's memory)."""
    if "'" in verifier:
        raise ValueError("unexpected quote in SCRAM verifier")
    return f"ALTER ROLE {quote_ident(user)} WITH LOGIN PASSWORD '{verifier}';\n"


CLONE_SUFFIX = "_clone"


def login(settings: dict[str, str], value: str) -> tuple[str, str]:
    """(user, password) of the secret's value; the user must be the owner or its clone."""
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("username"), str) \
            or not isinstance(document.get("password"), str):
        raise SystemExit("the secret is not JSON with a username and a password")
    owner = settings["SARK_DB_USER"]
    if document["username"] not in (owner, owner + CLONE_SUFFIX):
        raise SystemExit(f"the secret names user {document['username']!r}; expected {owner} or {owner}{CLONE_SUFFIX}")
    return document["username"], document["password"]


def login_sql(owner: str, user: str, verifier: str) -> str:
    """SQL that gives ``user`` this verifier: the owner's password, or the clone (created on first use)."""
    if user == owner:
        return alter_role_sql(user, verifier)
    if "'" in verifier:
        raise ValueError("unexpected quote in SCRAM verifier")
    clone, group = quote_ident(user), quote_ident(owner)
    # Names come from the host's settings file and the checked secret; all are quoted.
    return (f"SELECT format('CREATE ROLE %I IN ROLE %I', {quote_literal(user)}, {quote_literal(owner)}) "  # noqa: S608
            f"WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {quote_literal(user)})\\gexec\n"
            f"ALTER ROLE {clone} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT "
            f"PASSWORD '{verifier}';\n"
            f"GRANT {group} TO {clone};\n"
            f"ALTER ROLE {clone} SET role = {quote_literal(owner)};\n")


def quote_literal(text: str) -> str:
    """A PostgreSQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def apply(settings: dict[str, str], value: str) -> None:
    """Set the login's password (as a verifier) through the local superuser."""
    user, plaintext = login(settings, value)
    sql = login_sql(settings["SARK_DB_USER"], user, scram_verifier(plaintext))
    subprocess.run(["runuser", "-u", "postgres", "--", "psql", "--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1",
                    "-d", "postgres"], input=sql, text=True, check=True)


def passfile_line(user: str, value: str) -> str:
    """A libpq password-file line for ``user`` on any host, port and database."""
    escaped = value.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:{user}:{escaped}\n"


def check(settings: dict[str, str], value: str) -> None:
    """Log in as the secret's user over the local socket (pg_hba: ``local <db> <owner>,<clone> scram-sha-256``).

    The value goes through a private password file, not the environment or the command line.
    """
    user, plaintext = login(settings, value)
    with tempfile.NamedTemporaryFile("w", prefix="sark-pgpass-", encoding="utf-8") as passfile:
        os.chmod(passfile.name, 0o600)
        passfile.write(passfile_line(user, plaintext))
        passfile.flush()
        env = {**os.environ, "PGPASSFILE": passfile.name, "PGCONNECT_TIMEOUT": "10"}
        subprocess.run(["psql", "--no-psqlrc", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-h", "/var/run/postgresql",
                        "-U", user, "-d", settings["SARK_DB_NAME"], "-c", "SELECT 1"],
                       env=env, check=True, stdout=subprocess.DEVNULL)


def imds_instance_id(opener=urllib.request.urlopen) -> str:
    """This instance's id, through IMDSv2."""
    session_request = urllib.request.Request(f"{IMDS}/api/token", method="PUT",  # noqa: S310
                                             headers={f"{IMDS_SESSION_HEADER}-ttl-seconds": "60"})
    with opener(session_request, timeout=5) as response:
        session = response.read().decode()
    request = urllib.request.Request(f"{IMDS}/meta-data/instance-id",  # noqa: S310
                                     headers={IMDS_SESSION_HEADER: session})
    with opener(request, timeout=5) as response:
        return response.read().decode().strip()


def publish(settings: dict[str, str], ca_file: str, ssm: object, instance_id: str) -> None:
    """Publish the server's CA certificate, then mark this instance ready (the bootstrap's last step).

    The stack waits on the ready parameter before it tests the password rotation, and the release
    gate before it migrates; the app hosts wait on the CA parameter to verify the server.
    """
    with open(ca_file, encoding="utf-8") as handle:
        certificate = handle.read()
    if not certificate.startswith("-----BEGIN CERTIFICATE-----"):
        raise SystemExit(f"{ca_file} is not a PEM certificate")
    ssm.put_parameter(Name=settings["SARK_CA_PARAMETER"], Value=certificate, Type="String", Overwrite=True)
    ssm.put_parameter(Name=settings["SARK_READY_PARAMETER"], Value=instance_id, Type="String", Overwrite=True)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "publish":
        import boto3

        settings = read_env()
        if not settings.get("SARK_CA_PARAMETER") or not settings.get("SARK_READY_PARAMETER"):
            print("publish: SARK_CA_PARAMETER / SARK_READY_PARAMETER not set; nothing to publish", file=sys.stderr)
            return 0
        publish(settings, argv[2], boto3.client("ssm", region_name=imds_region()), imds_instance_id())
        print(json.dumps({"action": "publish", "result": "ok"}))
        return 0
    if len(argv) != 3 or argv[1] not in ACTIONS or argv[2] not in STAGES:
        print(f"usage: {argv[0]} {{{'|'.join(ACTIONS)}}} {{{'|'.join(STAGES)}}}", file=sys.stderr)
        return 2
    settings = read_env()
    value = fetch_value(settings["SARK_SECRET_ID"], argv[2], imds_region())
    (apply if argv[1] == "apply" else check)(settings, value)
    print(json.dumps({"action": argv[1], "stage": argv[2], "result": "ok"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
