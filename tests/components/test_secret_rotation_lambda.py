"""The rotation Lambda's own code, run against moto in-process.

Secrets Manager's side of the protocol is moto's ``rotate_secret``: it stages AWSPENDING and
invokes the function for createSecret, setSecret, testSecret and finishSecret. moto cannot
run a Lambda without docker, so its Lambda backend is patched to call our handler in-process;
everything the handler calls (Secrets Manager, RDS, ElastiCache, SSM, CloudWatch) is moto.
Every AWS call the handler makes is recorded, so the tests see what it asked AWS to do.
"""

from __future__ import annotations

import importlib.util
import json
import string
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaBackend

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "components" / "templates" / "secret_rotation" / "lambda_function.py"
REGION = "us-east-1"
DB_ID = "sark-test-db"
CACHE_ID = "sark-test-cache"
INSTANCE_ID = "i-0123456789abcdef0"
TIMESCALE_DOC = "sark-test-timescale-password"
RELOAD_DOC = "sark-test-app-reload"
SPECS: dict[str, dict[str, Any]] = {
    "SECRET_KEY": {"kind": "generated", "length": 64, "special": "", "restart": "all-at-once"},
    "POSTGRES_MASTER": {"kind": "rds", "length": 40, "special": "-_", "target": DB_ID, "username": "sark",
                        "restart": "rolling"},
    "POSTGRES_PASSWORD": {"kind": "rds-app", "length": 40, "special": "-_", "target": DB_ID,
                          "username": "sark_app_user", "restart": "rolling"},
    "TIMESCALE_PASSWORD": {"kind": "timescale", "length": 40, "special": "-_", "target": INSTANCE_ID,
                           "username": "sark", "restart": "rolling"},
    "VALKEY_PASSWORD": {"kind": "elasticache", "length": 64, "special": "-", "target": CACHE_ID,
                        "restart": "rolling"},
}
FIRST_PASSWORD = "A1" + "x" * 38


class FakeDb:
    """PostgreSQL as the Lambda sees it: roles with a password verifier and group membership.

    Every connection and statement is recorded; ``CREATE ROLE``/``ALTER ROLE``/``GRANT`` are parsed
    (not matched as substrings) to keep the roles, so the tests can ask who may log in with what.
    """

    def __init__(self) -> None:
        self.roles: dict[str, dict[str, Any]] = {"sark": {"verifier": None, "in": set(), "login": True}}
        self.statements: list[str] = []
        self.connections: list[tuple[str, int, str, str]] = []

    def connect(self, host: str, port: int, user: str, password: str, dbname: str) -> FakeDb.Session:
        self.connections.append((host, port, user, dbname))
        role = self.roles.get(user)
        if user != "sark" and (role is None or not verifies(role["verifier"], password)):
            raise RuntimeError(f"password authentication failed for user {user}")
        return FakeDb.Session(self, user)

    class Session:
        def __init__(self, db: FakeDb, user: str) -> None:
            self.db, self.user = db, user

        def __enter__(self) -> FakeDb.Session:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def query(self, sql: str) -> list[list[str]]:
            import re

            exists = re.fullmatch(r"SELECT 1 FROM pg_roles WHERE rolname = '([a-z_]+)'", sql)
            if exists:
                return [["1"]] if exists.group(1) in self.db.roles else []
            member = re.fullmatch(r"SELECT pg_has_role\(current_user, '([a-z_]+)', 'USAGE'\)", sql)
            if member:
                return [["t" if member.group(1) in self.db.roles[self.user]["in"] else "f"]]
            raise AssertionError(f"unexpected query {sql}")

        def execute(self, sql: str) -> None:
            assert self.user == "sark", "only the master changes roles"
            self.db.statements.append(sql)
            words = sql.split()
            if words[:2] in (["CREATE", "ROLE"], ["ALTER", "ROLE"]):
                name = words[2].strip('"')
                role = self.db.roles.setdefault(name, {"verifier": None, "in": set(), "login": False})
                if "PASSWORD" in words:
                    role["verifier"] = words[words.index("PASSWORD") + 1].strip("'")
                if "IN" in words and words[words.index("IN") + 1] == "ROLE":
                    role["in"].add(words[words.index("IN") + 2].strip('"'))
                role["login"] = "LOGIN" in words or role["login"]
            elif words[0] == "GRANT" and len(words) == 4 and words[2] == "TO":
                self.db.roles[words[3].strip('"')]["in"].add(words[1].strip('"'))


def verifies(verifier: str | None, password: str) -> bool:
    """Whether ``password`` matches a SCRAM-SHA-256 verifier (what the server checks at login)."""
    import base64
    import hashlib
    import hmac

    if verifier is None:
        return False
    _, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$", 1)
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key


def load_function() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sark_rotation_lambda", SOURCE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


class Context:
    """The bit of the Lambda context the handler uses."""

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


class World:
    """moto with the stack's secrets, data stores and the function's configuration."""

    def __init__(self, fn: ModuleType) -> None:
        self.fn = fn
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.sm = boto3.client("secretsmanager", region_name=REGION)
        self.arns: dict[str, str] = {}
        for name, spec in SPECS.items():
            initial = "A1" + "x" * (spec["length"] - 2)
            if "username" in spec:
                initial = json.dumps({"username": spec["username"], "password": initial})
            self.arns[name] = self.sm.create_secret(
                Name=f"sark-test/{name}", SecretString=initial,
                Tags=[{"Key": "sark:rotation-days", "Value": "180" if name == "SECRET_KEY" else "90"}])["ARN"]
        self.arns["SPLUNK_HEC_TOKEN"] = self.sm.create_secret(
            Name="sark-test/SPLUNK_HEC_TOKEN", Tags=[{"Key": "sark:rotation-days", "Value": "90"}])["ARN"]
        boto3.client("rds", region_name=REGION).create_db_instance(
            DBInstanceIdentifier=DB_ID, Engine="postgres", DBInstanceClass="db.m6i.large", MasterUsername="sark",
            MasterUserPassword="A1" + "x" * 38, AllocatedStorage=100)
        boto3.client("elasticache", region_name=REGION).create_replication_group(
            ReplicationGroupId=CACHE_ID, ReplicationGroupDescription="sark", Engine="valkey", NumCacheClusters=2,
            TransitEncryptionEnabled=True, AuthToken="A1" + "x" * 62, AtRestEncryptionEnabled=True)
        self.config = {
            "stack": "sark-test",
            "namespace": "SARK/Secrets",
            "secrets": {self.arns[name]: {"name": name, **spec} for name, spec in SPECS.items()},
            "audit": sorted(self.arns.values()),
            "timescale": {"document": TIMESCALE_DOC},
            "reload": {"document": RELOAD_DOC, "tag_key": "sark:role", "tag_value": "app"},
            "database": {"name": "sark", "owner": "sark", "group": "sark_app", "instance": DB_ID,
                         "app_secret": self.arns["POSTGRES_PASSWORD"], "master_secret": self.arns["POSTGRES_MASTER"]},
        }
        self.config["secrets"][self.arns["POSTGRES_PASSWORD"]]["master"] = self.arns["POSTGRES_MASTER"]
        self.db = FakeDb()
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="rotation", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        self.function_arn = boto3.client("lambda", region_name=REGION).create_function(
            FunctionName="rotation", Runtime="python3.12", Role=role, Handler="lambda_function.handler",
            Code={"ZipFile": b"not run by moto"})["FunctionArn"]

    def record(self, service: str) -> Callable[..., None]:
        """A botocore ``provide-client-params`` handler that records the call."""

        def handler(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.calls.append((service, model.name, dict(params)))
        return handler

    def called(self, service: str, operation: str) -> list[dict[str, Any]]:
        return [params for s, op, params in self.calls if s == service and op == operation]

    def current(self, name: str) -> str:
        return self.sm.get_secret_value(SecretId=self.arns[name])["SecretString"]

    def rotate(self, name: str) -> None:
        self.sm.rotate_secret(SecretId=self.arns[name], RotationLambdaARN=self.function_arn,
                              RotationRules={"AutomaticallyAfterDays": 90}, RotateImmediately=True)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        fn = load_function()
        state = World(fn)
        monkeypatch.setenv("SARK_ROTATION_CONFIG", json.dumps(state.config))
        monkeypatch.setattr(fn, "sleep", lambda _seconds: None)
        monkeypatch.setattr(fn, "connect", state.db.connect)
        real_client = boto3.client

        def client(service: str, *args: Any, **kwargs: Any) -> Any:
            made = real_client(service, *args, **kwargs)
            made.meta.events.register("provide-client-params.*.*", state.record(service))
            return made

        monkeypatch.setattr(fn.boto3, "client", client)

        def invoke(_backend: LambdaBackend, _name: str, qualifier: Any = None, body: str = "{}",
                   **_: Any) -> bytes:
            fn.handler(json.loads(body), Context())
            return b"null"

        monkeypatch.setattr(LambdaBackend, "invoke", invoke)
        yield state


def _shape_ok(value: str, spec: dict[str, Any]) -> bool:
    return len(value) == spec["length"] and set(value) <= set(string.ascii_letters + string.digits + spec["special"])


# --- full rotations, driven by Secrets Manager (moto) -------------------------------------------------------

def test_secret_key_rotation_generates_a_new_value_and_restarts_the_app(world: World) -> None:
    before = world.current("SECRET_KEY")
    world.rotate("SECRET_KEY")
    after = world.current("SECRET_KEY")
    assert after != before
    assert _shape_ok(after, SPECS["SECRET_KEY"])
    assert not set(after) & set(string.punctuation)
    (reload,) = world.called("ssm", "SendCommand")
    assert reload["DocumentName"] == RELOAD_DOC
    assert reload["Targets"] == [{"Key": "tag:sark:role", "Values": ["app"]}]
    # All hosts at once: they disagree on the signing key for one coordinated restart at most.
    assert reload["MaxConcurrency"] == "100%"
    assert "Parameters" not in reload  # nothing about the value goes to the hosts


def test_master_rotation_sets_the_rds_master_password_to_the_new_value(world: World) -> None:
    world.rotate("POSTGRES_MASTER")
    new = json.loads(world.current("POSTGRES_MASTER"))
    assert new["username"] == "sark"  # single user: the master stays the master
    assert _shape_ok(new["password"], SPECS["POSTGRES_MASTER"])
    (modify,) = world.called("rds", "ModifyDBInstance")
    assert modify == {"DBInstanceIdentifier": DB_ID, "MasterUserPassword": new["password"], "ApplyImmediately": True}
    assert world.called("rds", "DescribeDBInstances")  # testSecret waited for RDS to apply it
    versions = world.sm.list_secret_version_ids(SecretId=world.arns["POSTGRES_MASTER"])["Versions"]
    # Secrets Manager's valid end state: AWSPENDING, if still present, sits on the AWSCURRENT version.
    stages = sorted(sorted(set(v["VersionStages"]) - {"AWSPENDING"}) for v in versions)
    assert stages == [["AWSCURRENT"], ["AWSPREVIOUS"]]


def test_valkey_rotation_adds_the_new_token_with_rotate_so_the_old_one_keeps_working(world: World) -> None:
    world.rotate("VALKEY_PASSWORD")
    new = world.current("VALKEY_PASSWORD")
    assert _shape_ok(new, SPECS["VALKEY_PASSWORD"])
    # ElastiCache allows only ! & # $ ^ < > - besides letters and digits; we use '-' only.
    assert set(new) - set(string.ascii_letters + string.digits) <= {"-"}
    (modify,) = world.called("elasticache", "ModifyReplicationGroup")
    assert modify == {"ReplicationGroupId": CACHE_ID, "AuthToken": new, "AuthTokenUpdateStrategy": "ROTATE",
                      "ApplyImmediately": True}


def test_timescale_rotation_runs_the_host_document_with_stage_names_only(world: World) -> None:
    world.rotate("TIMESCALE_PASSWORD")
    value = json.loads(world.current("TIMESCALE_PASSWORD"))
    assert value["username"] == "sark_clone"  # alternating users: the other login was set
    new = value["password"]
    assert [c["MaxConcurrency"] for c in world.called("ssm", "SendCommand") if c["DocumentName"] == RELOAD_DOC] \
        == ["1"]
    commands = world.called("ssm", "SendCommand")
    host = [c for c in commands if c["DocumentName"] == TIMESCALE_DOC]
    assert [c["Parameters"] for c in host] == [{"action": ["apply"], "stage": ["AWSPENDING"]},
                                               {"action": ["check"], "stage": ["AWSPENDING"]}]
    assert all(c["InstanceIds"] == [INSTANCE_ID] for c in host)
    assert all(new not in json.dumps(c) for c in commands)
    assert [c["DocumentName"] for c in commands][-1] == RELOAD_DOC


def test_a_retried_create_step_keeps_the_first_pending_value(world: World) -> None:
    fn = world.fn
    arn = world.arns["SECRET_KEY"]
    world.sm.rotate_secret(SecretId=arn, RotationRules={"AutomaticallyAfterDays": 180}, RotateImmediately=False)
    token = "11111111-2222-4333-8444-555555555555"
    world.sm.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString="B2" + "y" * 62,
                              VersionStages=["AWSPENDING"])
    fn.handler({"Step": "createSecret", "SecretId": arn, "ClientRequestToken": token}, Context())
    pending = world.sm.get_secret_value(SecretId=arn, VersionStage="AWSPENDING")["SecretString"]
    assert pending == "B2" + "y" * 62
    assert world.called("secretsmanager", "PutSecretValue") == []


# --- refusals --------------------------------------------------------------------------------------------

TOKEN = "11111111-2222-4333-8444-555555555555"


def _step(world: World, name: str, step: str, token: str = TOKEN) -> None:
    world.fn.handler({"Step": step, "SecretId": world.arns[name], "ClientRequestToken": token}, Context())


def test_refuses_a_secret_it_is_not_configured_for(world: World) -> None:
    with pytest.raises(world.fn.RotationError, match="is not configured for rotation by this function"):
        _step(world, "SPLUNK_HEC_TOKEN", "createSecret")


def test_refuses_a_secret_without_rotation_enabled(world: World) -> None:
    with pytest.raises(world.fn.RotationError, match="does not have rotation enabled"):
        _step(world, "SECRET_KEY", "createSecret")


def test_refuses_a_token_that_is_not_pending(world: World) -> None:
    arn = world.arns["SECRET_KEY"]
    world.sm.rotate_secret(SecretId=arn, RotationRules={"AutomaticallyAfterDays": 180}, RotateImmediately=False)
    with pytest.raises(world.fn.RotationError, match="has no stage for rotation"):
        _step(world, "SECRET_KEY", "createSecret", token="99999999-2222-4333-8444-555555555555")


def test_test_step_rejects_a_pending_value_of_the_wrong_shape(world: World) -> None:
    arn = world.arns["VALKEY_PASSWORD"]
    world.sm.rotate_secret(SecretId=arn, RotationRules={"AutomaticallyAfterDays": 90}, RotateImmediately=False)
    token = "11111111-2222-4333-8444-555555555555"
    world.sm.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString="has@at" + "x" * 58,
                              VersionStages=["AWSPENDING"])
    with pytest.raises(world.fn.RotationError,
                       match="pending value of VALKEY_PASSWORD is unusable: 1 character"):
        _step(world, "VALKEY_PASSWORD", "testSecret", token)


def test_waiting_for_rds_gives_up_at_the_deadline(world: World) -> None:
    with pytest.raises(world.fn.RotationError, match="timed out waiting for RDS instance x"):
        world.fn._wait(lambda: False, 0.0, "RDS instance x to apply the password")


def test_a_failed_host_command_fails_the_step(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    class FailingSsm:
        def send_command(self, **_: Any) -> dict[str, Any]:
            return {"Command": {"CommandId": "c-1"}}

        def get_command_invocation(self, **_: Any) -> dict[str, Any]:
            return {"Status": "Failed"}

    monkeypatch.setattr(world.fn.boto3, "client", lambda service, *a, **k: FailingSsm())
    with pytest.raises(world.fn.RotationError, match=r"ended Failed"):
        world.fn.run_on_host(TIMESCALE_DOC, INSTANCE_ID, {"action": ["apply"], "stage": ["AWSPENDING"]}, 1e12)


# --- audit (the rotation reminder) ---------------------------------------------------------------------

def test_audit_counts_a_missing_external_value_and_publishes_the_metric(world: World) -> None:
    result = world.fn.handler({"action": "audit"}, Context())
    assert [f["name"] for f in result["secretsNeedingAttention"]] == ["sark-test/SPLUNK_HEC_TOKEN"]
    assert "no value yet" in result["secretsNeedingAttention"][0]["problem"]
    (put,) = world.called("cloudwatch", "PutMetricData")
    assert put["Namespace"] == "SARK/Secrets"
    assert put["MetricData"][0]["MetricName"] == "SecretsNeedingAttention"
    assert put["MetricData"][0]["Value"] == 1.0
    assert put["MetricData"][0]["Dimensions"] == [{"Name": "Stack", "Value": "sark-test"}]


def test_audit_counts_values_older_than_their_rotation_period(world: World) -> None:
    world.sm.put_secret_value(SecretId=world.arns["SPLUNK_HEC_TOKEN"], SecretString="operator-token")
    now = datetime.now(UTC)
    assert world.fn.audit(world.config, now=now)["secretsNeedingAttention"] == []
    later = world.fn.audit(world.config, now=now + timedelta(days=100))["secretsNeedingAttention"]
    # The 90-day secrets are overdue after 100 days (plus 2 days' grace); SECRET_KEY (180) is not.
    assert sorted(f["name"] for f in later) == ["sark-test/POSTGRES_MASTER", "sark-test/POSTGRES_PASSWORD",
                                                 "sark-test/SPLUNK_HEC_TOKEN",
                                                 "sark-test/TIMESCALE_PASSWORD", "sark-test/VALKEY_PASSWORD"]
    assert all("must change every 90 days" in f["problem"] for f in later)


# --- the app's own login: alternating users with no window, least privilege (items 7 and 12) ----------

FORBIDDEN = ("SUPERUSER", "RDS_SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS",
             "ALL PRIVILEGES", "RDS_IAM")


def privileges_granted(statement: str) -> set[str]:
    """Words of a statement that would give a role power beyond reading and writing rows."""
    words = {w.strip('",;').upper() for w in statement.split()}
    granted = {w for w in words if w in FORBIDDEN}  # NOSUPERUSER etc. are separate words and do not match
    granting = statement.split(" ON ", maxsplit=1)[0]
    if statement.startswith("GRANT") and " ON SCHEMA " in statement and "CREATE" in granting:
        granted.add("CREATE ON SCHEMA")
    return granted


def test_bootstrap_creates_the_group_with_database_level_grants_and_the_first_login(world: World) -> None:
    result = world.fn.handler({"action": "bootstrap"}, Context())
    assert result == {"group": "sark_app", "login": "sark_app_user", "statements": 8}
    statements = world.db.statements
    assert statements[0] == ("CREATE ROLE \"sark_app\" NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                             "NOBYPASSRLS")
    assert statements[1:7] == [
        'GRANT CONNECT ON DATABASE "sark" TO "sark_app"',
        'GRANT USAGE ON SCHEMA "public" TO "sark_app"',
        'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "public" TO "sark_app"',
        'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "public" TO "sark_app"',
        'ALTER DEFAULT PRIVILEGES FOR ROLE "sark" IN SCHEMA "public" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES '
        'TO "sark_app"',
        'ALTER DEFAULT PRIVILEGES FOR ROLE "sark" IN SCHEMA "public" GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO '
        '"sark_app"',
    ]
    assert all(privileges_granted(statement) == set() for statement in statements)
    # The login: a member of the group, with a SCRAM verifier of the secret's password, never the password.
    role = world.db.roles["sark_app_user"]
    assert role["in"] == {"sark_app"}
    assert role["login"]
    assert verifies(role["verifier"], FIRST_PASSWORD)
    assert not any(FIRST_PASSWORD in statement for statement in statements)
    # Connected as the master, to the RDS endpoint moto reports.
    host, port, user, dbname = world.db.connections[0]
    assert (user, dbname, port) == ("sark", "sark", 5432)
    assert host.startswith(DB_ID)


def test_bootstrap_is_idempotent(world: World) -> None:
    world.fn.handler({"action": "bootstrap"}, Context())
    first = list(world.db.statements)
    world.fn.handler({"action": "bootstrap"}, Context())
    again = world.db.statements[len(first):]
    assert not any(s.startswith("CREATE ROLE") for s in again)
    assert again[-2].startswith('ALTER ROLE "sark_app_user" WITH LOGIN NOSUPERUSER')
    assert again[-1] == 'GRANT "sark_app" TO "sark_app_user"'


def test_app_login_rotation_alternates_users_so_the_current_login_never_stops_working(world: World) -> None:
    world.fn.handler({"action": "bootstrap"}, Context())
    original = world.db.roles["sark_app_user"]["verifier"]
    windows: list[str] = []
    real_execute = FakeDb.Session.execute

    def execute(session: FakeDb.Session, sql: str) -> None:
        real_execute(session, sql)
        # After every statement the login the hosts use now (AWSCURRENT) must still work.
        current = json.loads(world.current("POSTGRES_PASSWORD"))
        if not verifies(world.db.roles[current["username"]]["verifier"], current["password"]):
            windows.append(sql)

    FakeDb.Session.execute = execute  # type: ignore[method-assign]
    try:
        world.rotate("POSTGRES_PASSWORD")
        first = json.loads(world.current("POSTGRES_PASSWORD"))
        # Secrets Manager drops AWSPENDING once a rotation finished; moto keeps it (and would refuse
        # the next rotation as "still in progress"), so drop it as Secrets Manager does.
        arn = world.arns["POSTGRES_PASSWORD"]
        pending = [v for v, stages in world.sm.describe_secret(SecretId=arn)["VersionIdsToStages"].items()
                   if "AWSPENDING" in stages]
        for version in pending:
            world.sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING",
                                                 RemoveFromVersionId=version)
        world.rotate("POSTGRES_PASSWORD")
        second = json.loads(world.current("POSTGRES_PASSWORD"))
    finally:
        FakeDb.Session.execute = real_execute  # type: ignore[method-assign]

    assert windows == []
    assert first["username"] == "sark_app_user_clone"
    assert second["username"] == "sark_app_user"
    # The first rotation created the clone in the group and left the original login alone...
    create = [s for s in world.db.statements if s.startswith('CREATE ROLE "sark_app_user_clone"')]
    assert len(create) == 1
    assert create[0].endswith('IN ROLE "sark_app"')
    assert privileges_granted(create[0]) == set()
    # ...so the original's password changed only in the second rotation, to the second new value.
    assert original != world.db.roles["sark_app_user"]["verifier"]
    assert verifies(world.db.roles["sark_app_user"]["verifier"], second["password"])
    assert verifies(world.db.roles["sark_app_user_clone"]["verifier"], first["password"])
    # testSecret logged in as the pending login each time.
    users = [c[2] for c in world.db.connections]
    assert "sark_app_user_clone" in users
    assert not world.called("rds", "ModifyDBInstance")  # the master password is not touched
    assert all(first["password"] not in s and second["password"] not in s for s in world.db.statements)


def test_app_login_rotation_fails_when_the_pending_login_is_not_in_the_group(world: World) -> None:
    world.fn.handler({"action": "bootstrap"}, Context())
    world.db.roles["sark_app_user"]["in"].clear()
    arn = world.arns["POSTGRES_PASSWORD"]
    world.sm.rotate_secret(SecretId=arn, RotationRules={"AutomaticallyAfterDays": 90}, RotateImmediately=False)
    world.sm.put_secret_value(SecretId=arn, ClientRequestToken=TOKEN, VersionStages=["AWSPENDING"],
                              SecretString=json.dumps({"username": "sark_app_user", "password": FIRST_PASSWORD}))
    with pytest.raises(world.fn.RotationError, match="sark_app_user logs in but is not a member of sark_app"):
        _step(world, "POSTGRES_PASSWORD", "testSecret")


def test_a_secret_naming_another_user_is_refused(world: World) -> None:
    arn = world.arns["POSTGRES_PASSWORD"]
    world.sm.rotate_secret(SecretId=arn, RotationRules={"AutomaticallyAfterDays": 90}, RotateImmediately=False)
    world.sm.put_secret_value(SecretId=arn, ClientRequestToken=TOKEN, VersionStages=["AWSPENDING"],
                              SecretString=json.dumps({"username": "sark", "password": FIRST_PASSWORD}))
    with pytest.raises(world.fn.RotationError, match="names user 'sark'; expected one of sark_app_user"):
        _step(world, "POSTGRES_PASSWORD", "setSecret")
