"""The rotation Lambda's PostgreSQL client and the app role's SQL, against a real PostgreSQL server.

A throw-away cluster (the machine's PostgreSQL, run as the ``postgres`` account) with TLS from a CA
made here and SCRAM-SHA-256 only: the Lambda's own client logs in over verified TLS, runs the
bootstrap statements as the owner, and the app login then proves what it can and cannot do. The
test needs ``initdb``/``pg_ctl`` and root (to run the server as ``postgres``); where those are
missing it says so and skips.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.components.test_secret_rotation_lambda import load_function

BIN = Path("/usr/local/bin")
MASTER_PASSWORD = "Master-Pass_0123456789abcdefghijklmnopq"
APP_PASSWORD = "App-Pass_0123456789abcdefghijklmnopqrstu"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0 or not (BIN / "initdb").exists() or shutil.which("openssl") is None:
        pytest.skip("needs root, openssl and PostgreSQL's initdb in /usr/local/bin to run a throw-away server")
    try:
        postgres = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("needs a postgres account to run the server as")
    root = Path(tempfile.mkdtemp(prefix="sark-pg-"))
    os.chown(root, postgres.pw_uid, postgres.pw_gid)
    data, tls = root / "data", root / "tls"
    tls.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tls)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
            "-out", "server.csr")
    (tls / "ext").write_text("subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "ext", "-out", "server.crt")
    for path in (tls, *tls.iterdir()):
        os.chown(path, postgres.pw_uid, postgres.pw_gid)
    (tls / "server.key").chmod(0o600)
    pwfile = root / "pw"
    pwfile.write_text(MASTER_PASSWORD)
    os.chown(pwfile, postgres.pw_uid, postgres.pw_gid)

    def as_postgres(*argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=60)

    as_postgres(str(BIN / "initdb"), "-D", str(data), "-U", "sark", "--auth-local=trust",
                "--auth-host=scram-sha-256", f"--pwfile={pwfile}")
    port = _free_port()
    (data / "postgresql.conf").write_text(
        (data / "postgresql.conf").read_text() + f"\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
        f"unix_socket_directories = '{root}'\nssl = on\nssl_cert_file = '{tls}/server.crt'\n"
        f"ssl_key_file = '{tls}/server.key'\npassword_encryption = 'scram-sha-256'\n")
    (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
                                      "host all all 0.0.0.0/0 reject\n")
    as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "start")
    try:
        context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
        yield {"port": port, "context": context, "root": root}
    finally:
        as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_bootstrap_sql_gives_the_app_rows_and_nothing_else(server: dict[str, Any]) -> None:
    fn = load_function()

    def connect(user: str, password: str, dbname: str) -> Any:
        return fn.PgConnection("localhost", server["port"], user, password, dbname, ssl_context=server["context"])

    with connect("sark", MASTER_PASSWORD, "postgres") as db:
        assert db.query("SELECT current_user") == [["sark"]]
        db.execute("CREATE DATABASE sark OWNER sark")
    with connect("sark", MASTER_PASSWORD, "sark") as db:
        statements = fn.group_sql(db, "sark_app") + fn.app_role_sql("sark", "sark", "sark_app")
        statements += fn.login_sql(db, "sark_app_user", "sark_app", fn.scram_verifier(APP_PASSWORD))
        for statement in statements:
            db.execute(statement)
        # A migration (as the owner) after the grants: default privileges must cover it.
        db.execute("CREATE TABLE audit_events (id bigserial PRIMARY KEY, body text NOT NULL)")
        # Idempotent: the second run only alters the login.
        again = fn.group_sql(db, "sark_app") + fn.login_sql(db, "sark_app_user", "sark_app",
                                                            fn.scram_verifier(APP_PASSWORD))
        assert [s.split()[:2] for s in again] == [["ALTER", "ROLE"], ["GRANT", '"sark_app"']]
        for statement in again:
            db.execute(statement)
        flags = db.query("SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin "
                         "FROM pg_roles WHERE rolname = 'sark_app_user'")
        assert flags == [["f", "f", "f", "f", "f", "t"]]

    with connect("sark_app_user", APP_PASSWORD, "sark") as app:
        assert app.query("SELECT pg_has_role(current_user, 'sark_app', 'USAGE')") == [["t"]]
        app.query("INSERT INTO audit_events (body) VALUES ('login')")
        assert app.query("SELECT body FROM audit_events") == [["login"]]
        app.query("UPDATE audit_events SET body = 'logout'")
        app.query("DELETE FROM audit_events")
        for forbidden, error in (("CREATE TABLE t (x int)", "permission denied for schema public"),
                                 ("DROP TABLE audit_events", "must be owner of table audit_events"),
                                 ("CREATE ROLE intruder", "permission denied to create role"),
                                 ("ALTER TABLE audit_events ADD COLUMN x int", "must be owner of table")):
            with pytest.raises(fn.DatabaseError, match=error):
                app.query(forbidden)
    with pytest.raises(fn.DatabaseError, match="password authentication failed"):
        connect("sark_app_user", "wrong-password", "sark")


def test_the_client_refuses_a_server_it_cannot_verify(server: dict[str, Any]) -> None:
    fn = load_function()
    with pytest.raises(ssl.SSLCertVerificationError):
        fn.PgConnection("localhost", server["port"], "sark", MASTER_PASSWORD, "postgres",
                        ssl_context=ssl.create_default_context())  # the system CAs do not know this server
    wrong_name = ssl.create_default_context(cafile=str(server["root"] / "tls" / "ca.crt"))
    with pytest.raises(ssl.SSLCertVerificationError):
        fn.PgConnection("127.0.0.1", server["port"], "sark", MASTER_PASSWORD, "postgres", ssl_context=wrong_name)


def test_timescale_clone_login_acts_as_the_owner(server: dict[str, Any]) -> None:
    """The TimescaleDB host tool's SQL (run by psql as the host does): the clone logs in and what it
    creates belongs to the owner, so migrations work whichever login the secret names."""
    from tests.components.test_timescale import load_tool

    tool = load_tool()
    fn = load_function()
    owner_password, clone_password = "Owner-Pass_0123456789abcdefghijklmnopqr", "Clone-Pass_0123456789abcdefghijklmnopq"

    def psql(sql: str) -> None:
        subprocess.run(["psql", "--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(server["root"]), "-p",
                        str(server["port"]), "-U", "sark", "-d", "postgres"], input=sql, text=True, check=True,
                       capture_output=True)

    psql("CREATE ROLE ts_owner LOGIN; CREATE DATABASE ts_audit OWNER ts_owner;")
    psql(tool.login_sql("ts_owner", "ts_owner", tool.scram_verifier(owner_password)))
    clone_sql = tool.login_sql("ts_owner", "ts_owner_clone", tool.scram_verifier(clone_password))
    psql(clone_sql)
    psql(clone_sql)  # idempotent: a later rotation back to the clone only changes its password
    with fn.PgConnection("localhost", server["port"], "ts_owner_clone", clone_password, "ts_audit",
                         ssl_context=server["context"]) as clone:
        assert clone.query("SELECT current_user, session_user") == [["ts_owner", "ts_owner_clone"]]
        clone.query("CREATE TABLE events (at timestamptz)")
        assert clone.query("SELECT tableowner FROM pg_tables WHERE tablename = 'events'") == [["ts_owner"]]
    with fn.PgConnection("localhost", server["port"], "ts_owner", owner_password, "ts_audit",
                         ssl_context=server["context"]) as owner:
        owner.query("ALTER TABLE events ADD COLUMN body text")  # the owner can migrate what the clone made


def test_timescale_tool_refuses_a_login_it_does_not_manage() -> None:
    from tests.components.test_timescale import load_tool

    tool = load_tool()
    settings = {"SARK_DB_USER": "sark"}
    assert tool.login(settings, '{"username": "sark_clone", "password": "p"}') == ("sark_clone", "p")
    with pytest.raises(SystemExit, match="names user 'postgres'; expected sark or sark_clone"):
        tool.login(settings, '{"username": "postgres", "password": "p"}')
    with pytest.raises(SystemExit, match="not JSON with a username and a password"):
        tool.login(settings, "a-bare-password")
