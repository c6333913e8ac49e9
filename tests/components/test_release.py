"""Release: per-release gates and weighted traffic; scripts/release/release_gate.py against a fake AWS CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.load_balancer import TRAFFIC_RULE_PRIORITY
from components.release import GATE_SCRIPT, Release, ReleaseArgs, snapshot_identifier, traffic_weights
from sarkops.plan.runtime import Recording
from tests.conftest import record_program

Record = Callable[..., Recording]
ROOT = Path(__file__).resolve().parents[2]
LISTENER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/sark/0123/4567"
TGS = {"v0.1.0": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/v1/01",
       "v0.2.0": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/v2/02"}
ASGS = {"v0.1.0": "sark-app-v0-1-0-asg-1a2b3c4", "v0.2.0": "sark-app-v0-2-0-asg-5d6e7f8"}


def program(**overrides: Any) -> Callable[[], None]:
    def run() -> None:
        database = aws.rds.Instance("db", engine="postgres", instance_class="db.m6i.large", allocated_storage=100,
                                    username="sark", manage_master_user_password=True, skip_final_snapshot=False)
        values: dict[str, Any] = {
            "stack": "production", "region": "us-east-1", "current_version": "v0.2.0", "previous_version": "v0.1.0",
            "new_release_weight": 10, "https_listener_arn": LISTENER, "target_group_arns": TGS,
            "autoscaling_group_names": ASGS, "db_instance_identifier": database.identifier,
            "data_tier": [database], "timescale_volume_id": "vol-0timescale", "min_healthy_targets": 2,
        }
        values.update(overrides)
        Release("release", ReleaseArgs(**values))

    return run


@pytest.fixture(scope="module")
def rec() -> Recording:
    """The component with the default args, recorded once for the tests that only read it."""
    return record_program(program())


def test_weighted_forward_between_the_live_releases(rec: Recording) -> None:
    rule = rec.one("aws:lb/listenerRule:ListenerRule").inputs
    assert rule["listenerArn"] == LISTENER
    assert rule["priority"] == TRAFFIC_RULE_PRIORITY
    assert rule["conditions"] == [{"pathPattern": {"values": ["/*"]}}]
    (action,) = rule["actions"]
    assert action["type"] == "forward"
    assert {g["arn"]: g["weight"] for g in action["forward"]["targetGroups"]} == {TGS["v0.2.0"]: 10,
                                                                                  TGS["v0.1.0"]: 90}
    assert action["forward"]["stickiness"]["enabled"] is False


@pytest.mark.parametrize(("weight", "expected"), [(50, {"v0.2.0": 50, "v0.1.0": 50}),
                                                  (100, {"v0.2.0": 100, "v0.1.0": 0}),
                                                  (0, {"v0.2.0": 0, "v0.1.0": 100})])
def test_canary_steps_and_rollback_are_one_number(record: Record, weight: int, expected: dict[str, int]) -> None:
    rule = record(program(new_release_weight=weight)).one("aws:lb/listenerRule:ListenerRule").inputs
    weights = {g["arn"]: g["weight"] for g in rule["actions"][0]["forward"]["targetGroups"]}
    assert weights == {TGS[v]: w for v, w in expected.items()}


def test_single_release_takes_everything(record: Record) -> None:
    rec = record(program(current_version="v0.1.0", previous_version=None, new_release_weight=100))
    rule = rec.one("aws:lb/listenerRule:ListenerRule").inputs
    assert rule["actions"][0]["forward"]["targetGroups"] == [{"arn": TGS["v0.1.0"], "weight": 100}]
    assert [c.name for c in rec.by_type("command:local:Command")] == ["release-v0-1-0-gate"]


def test_gate_per_release_runs_the_script_with_its_settings(rec: Recording) -> None:
    gates = {c.name: c for c in rec.by_type("command:local:Command")}
    assert set(gates) == {"release-v0-2-0-gate", "release-v0-1-0-gate"}
    gate = gates["release-v0-2-0-gate"].inputs
    assert gate["create"] == f"python3 {GATE_SCRIPT}"
    assert "not repeated" in gate["update"]  # a passed gate never migrates again
    database = rec.one("aws:rds/instance:Instance")
    assert gate["environment"] == {
        "SARK_RELEASE": "v0.2.0", "AWS_REGION": "us-east-1", "SARK_DB_INSTANCE": database.outputs["identifier"],
        "SARK_SNAPSHOT_ID": "sark-production-pre-v0-2-0", "SARK_AUTOSCALING_GROUP": ASGS["v0.2.0"],
        "SARK_TARGET_GROUP_ARN": TGS["v0.2.0"], "SARK_MIN_HEALTHY": "2", "SARK_HEALTH_TIMEOUT": "1800",
        "SARK_MIGRATION_TIMEOUT": "3600", "SARK_TIMESCALE_VOLUME": "vol-0timescale",
    }


def test_gate_gets_its_record_secrets_cache_and_timescale_readiness(record: Record) -> None:
    rec = record(program(state_parameter_path="/sark/production/releases",
                         secret_arns={"SECRET_KEY": "arn:aws:secretsmanager:us-east-1:1:secret:sk",
                                      "SPLUNK_HEC_TOKEN": "arn:aws:secretsmanager:us-east-1:1:secret:hec"},
                         cache_replication_group_id="sark-production-cache",
                         timescale_ready_parameter="/sark/production/timescale/ready",
                         timescale_instance_id="i-0timescale"))
    gate = {c.name: c for c in rec.by_type("command:local:Command")}["release-v0-2-0-gate"].inputs["environment"]
    assert gate["SARK_STATE_PARAMETER"] == "/sark/production/releases/v0-2-0/gate"
    assert json.loads(gate["SARK_SECRET_ARNS"]) == {"SECRET_KEY": "arn:aws:secretsmanager:us-east-1:1:secret:sk",
                                                    "SPLUNK_HEC_TOKEN": "arn:aws:secretsmanager:us-east-1:1:secret:hec"}
    assert gate["SARK_CACHE_GROUP"] == "sark-production-cache"
    assert (gate["SARK_TIMESCALE_READY_PARAMETER"], gate["SARK_TIMESCALE_INSTANCE"]) == (
        "/sark/production/timescale/ready", "i-0timescale")
    # The script accepts exactly what the component passes.
    settings = gate_module.Settings.from_env(ENV | gate)
    assert [name for name, _ in settings.secret_ids] == ["SECRET_KEY", "SPLUNK_HEC_TOKEN"]


def test_gates_depend_on_the_data_tier_and_traffic_on_the_gates(rec: Recording) -> None:
    database = rec.one("aws:rds/instance:Instance")
    gates = rec.by_type("command:local:Command")
    assert all(database.urn in g.dependencies for g in gates)
    rule = rec.one("aws:lb/listenerRule:ListenerRule")
    assert {g.urn for g in gates} <= set(rule.dependencies)


def test_gate_inputs_do_not_depend_on_which_release_is_current(record: Record) -> None:
    # v0.1.0's gate must stay byte-identical when v0.2.0 arrives, or Pulumi would run it again.
    alone = record(program(current_version="v0.1.0", previous_version=None, new_release_weight=100))
    later = record(program())
    assert alone.one("command:local:Command", "release-v0-1-0-gate").inputs == later.one(
        "command:local:Command", "release-v0-1-0-gate").inputs


@pytest.mark.parametrize(("current", "previous", "weight", "message"), [
    ("v1", None, 10, "Release: new_release_weight must be 100 without a previous release (got 10); nothing else "
                     "could take the rest"),
    ("v1", "v1", 10, "Release: previous release 'v1' is the current one; set previousAppVersion to the release "
                     "being replaced, or unset it"),
    ("v2", "v1", 101, "Release: new_release_weight 101 is not allowed; expected 0 to 100"),
])
def test_bad_weights_are_named(current: str, previous: str | None, weight: int, message: str) -> None:
    with pytest.raises(pulumi.RunError) as raised:
        traffic_weights(current, previous, weight)
    assert str(raised.value) == message


def test_missing_target_group_is_named(record: Record) -> None:
    with pytest.raises(pulumi.RunError) as raised:
        record(program(target_group_arns={"v0.2.0": TGS["v0.2.0"]}))
    assert str(raised.value) == "release: target_group_arns has no entry for release 'v0.1.0'; it has v0.2.0"


def test_snapshot_identifier_is_a_valid_rds_name() -> None:
    assert snapshot_identifier("production", "v0.2.0") == "sark-production-pre-v0-2-0"
    assert snapshot_identifier("prod--eu", "release/2026.11_rc1") == "sark-prod-eu-pre-release-2026-11-rc1"


# --- the gate script ------------------------------------------------------------------------------

def load_gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release_gate", ROOT / GATE_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["release_gate"] = module
    spec.loader.exec_module(module)
    return module


gate_module = load_gate()
ENV = {"SARK_RELEASE": "v0.2.0", "AWS_REGION": "us-east-1", "SARK_DB_INSTANCE": "sark-db",
       "SARK_SNAPSHOT_ID": "sark-production-pre-v0-2-0", "SARK_AUTOSCALING_GROUP": ASGS["v0.2.0"],
       "SARK_TARGET_GROUP_ARN": TGS["v0.2.0"], "SARK_MIN_HEALTHY": "2", "SARK_POLL_SECONDS": "0",
       "SARK_HEALTH_TIMEOUT": "60", "SARK_MIGRATION_TIMEOUT": "60", "SARK_HOST_TIMEOUT": "60"}


class FakeAws:
    """Answers AWS CLI calls from a table keyed by ``service operation``; a list answers in turn."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = {k: list(v) if isinstance(v, list) else [v] for k, v in answers.items()}
        self.calls: list[list[str]] = []

    def __call__(self, args: Any) -> Any:
        self.calls.append(list(args))
        key = f"{args[0]} {args[1]}"
        queue = self.answers[key]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, tuple):
            return gate_module.Result(answer[0], "", answer[1])
        return gate_module.Result(0, json.dumps(answer), "")


def happy_answers(**changes: Any) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "rds describe-db-instances": {"DBInstances": [{"DBInstanceStatus": "available"}]},
        "elasticache describe-replication-groups": [{"ReplicationGroups": [{"Status": "creating"}]},
                                                    {"ReplicationGroups": [{"Status": "available"}]}],
        "secretsmanager describe-secret": {"Name": "sark-production/SECRET_KEY",
                                           "VersionIdsToStages": {"v1": ["AWSCURRENT"]}},
        "rds describe-db-snapshots": [(254, "An error occurred (DBSnapshotNotFound)"),
                                      {"DBSnapshots": [{"Status": "creating"}]},
                                      {"DBSnapshots": [{"Status": "available"}]}],
        "rds create-db-snapshot": {"DBSnapshot": {"Status": "creating"}},
        "ec2 describe-snapshots": {"Snapshots": []},
        "ec2 create-snapshot": {"SnapshotId": "snap-0123"},
        "autoscaling describe-auto-scaling-groups": [
            {"AutoScalingGroups": [{"Instances": [{"InstanceId": "i-0b", "LifecycleState": "Pending"}]}]},
            {"AutoScalingGroups": [{"Instances": [{"InstanceId": "i-0b", "LifecycleState": "InService"},
                                                  {"InstanceId": "i-0a", "LifecycleState": "InService"}]}]}],
        "ssm describe-instance-information": {"InstanceInformationList": [
            {"InstanceId": "i-0a", "PingStatus": "Online"}, {"InstanceId": "i-0b", "PingStatus": "Online"}]},
        "ssm send-command": {"Command": {"CommandId": "cmd-1"}},
        "ssm get-command-invocation": [(254, "An error occurred (InvocationDoesNotExist)"),
                                       {"Status": "InProgress"},
                                       {"Status": "Success", "StandardOutputContent": "migrations complete"}],
        "elbv2 describe-target-health": [
            {"TargetHealthDescriptions": [{"Target": {"Id": "i-0a"}, "TargetHealth": {"State": "initial"}}]},
            {"TargetHealthDescriptions": [{"Target": {"Id": "i-0a"}, "TargetHealth": {"State": "healthy"}},
                                          {"Target": {"Id": "i-0b"}, "TargetHealth": {"State": "healthy"}}]}],
    }
    answers.update(changes)
    return answers


def run_gate(fake: FakeAws, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    log: list[str] = []
    settings = gate_module.Settings.from_env(env or ENV | {"SARK_TIMESCALE_VOLUME": "vol-0ts"})
    gate = gate_module.Gate(settings, fake, sleep=lambda _s: None, log=log.append)
    try:
        gate.run_all()
    except gate_module.GateError as error:
        log.append(f"FAILED: {error}")
        return 1, log
    return 0, log


def test_gate_snapshots_migrates_on_one_host_and_waits_for_health() -> None:
    fake = FakeAws(happy_answers())
    code, log = run_gate(fake)
    assert code == 0
    operations = [" ".join(c[:2]) for c in fake.calls]
    assert operations.index("rds create-db-snapshot") < operations.index("ssm send-command")
    assert operations.index("ec2 create-snapshot") < operations.index("ssm send-command")
    assert operations.index("ssm send-command") < operations.index("elbv2 describe-target-health")
    (create,) = [c for c in fake.calls if c[:2] == ["rds", "create-db-snapshot"]]
    assert create[create.index("--db-snapshot-identifier") + 1] == "sark-production-pre-v0-2-0"
    assert create[create.index("--db-instance-identifier") + 1] == "sark-db"
    (send,) = [c for c in fake.calls if c[:2] == ["ssm", "send-command"]]
    assert send[send.index("--instance-ids") + 1] == "i-0a"  # in service and online, first by id
    assert json.loads(send[send.index("--parameters") + 1]) == {"commands": ["/usr/local/sbin/sark-migrate v0.2.0"],
                                                                "executionTimeout": ["60"]}
    assert log[-1] == "gate passed; the release may take traffic"


def test_existing_snapshot_is_reused() -> None:
    fake = FakeAws(happy_answers(**{"rds describe-db-snapshots": {"DBSnapshots": [{"Status": "available"}]},
                                    "ec2 describe-snapshots": {"Snapshots": [{"SnapshotId": "snap-0old"}]}}))
    code, _ = run_gate(fake)
    assert code == 0
    assert not [c for c in fake.calls if c[1] in ("create-db-snapshot", "create-snapshot")]


def test_failed_migration_fails_the_gate_with_its_output() -> None:
    fake = FakeAws(happy_answers(**{"ssm get-command-invocation": {
        "Status": "Failed", "StandardErrorContent": "alembic: Can't locate revision abc123"}}))
    code, log = run_gate(fake)
    assert code == 1
    assert log[-1] == ("FAILED: migrations Failed on i-0a (SSM command cmd-1):\n"
                       "alembic: Can't locate revision abc123")
    assert not [c for c in fake.calls if c[0] == "elbv2"]  # never waits for health after a failure


def test_unhealthy_targets_time_out() -> None:
    now = [0.0]
    fake = FakeAws(happy_answers(**{"elbv2 describe-target-health": {"TargetHealthDescriptions": [
        {"Target": {"Id": "i-0a"}, "TargetHealth": {"State": "unhealthy"}},
        {"Target": {"Id": "i-0b"}, "TargetHealth": {"State": "healthy"}}]}}))
    settings = gate_module.Settings.from_env(ENV)

    def sleep(_seconds: float) -> None:
        now[0] += 15

    gate = gate_module.Gate(settings, fake, sleep=sleep, clock=lambda: now[0], log=lambda _m: None)
    with pytest.raises(gate_module.GateError) as raised:
        gate.wait_healthy()
    assert str(raised.value) == "only 1 of 2 required targets healthy after 60 s (i-0a=unhealthy, i-0b=healthy)"


def test_snapshot_lookup_error_is_not_mistaken_for_absence() -> None:
    fake = FakeAws(happy_answers(**{"rds describe-db-snapshots": (255, "An error occurred (AccessDenied)")}))
    code, log = run_gate(fake)
    assert code == 1
    assert log[-1] == "FAILED: aws rds describe-db-snapshots failed: An error occurred (AccessDenied)"


def test_missing_settings_are_named() -> None:
    with pytest.raises(gate_module.GateError) as raised:
        gate_module.Settings.from_env({"SARK_RELEASE": "v1", "SARK_MIN_HEALTHY": "two"})
    assert str(raised.value) == ("missing environment variables: AWS_REGION, SARK_DB_INSTANCE, SARK_SNAPSHOT_ID, "
                                 "SARK_AUTOSCALING_GROUP, SARK_TARGET_GROUP_ARN")
    with pytest.raises(gate_module.GateError) as raised:
        gate_module.Settings.from_env(ENV | {"SARK_MIN_HEALTHY": "two"})
    assert str(raised.value) == "SARK_MIN_HEALTHY='two' is not a number"


FAKE_AWS_CLI = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    args = sys.argv[1:]
    with open(os.environ["FAKE_AWS_LOG"], "a") as log:
        log.write(json.dumps(args) + "\\n")
    key = " ".join(args[:2])
    state_file = os.environ["FAKE_AWS_STATE"]
    state = json.load(open(state_file)) if os.path.exists(state_file) else {{}}
    count = state.get(key, 0)
    state[key] = count + 1
    json.dump(state, open(state_file, "w"))
    answers = json.load(open(os.environ["FAKE_AWS_ANSWERS"]))[key]
    answer = answers[min(count, len(answers) - 1)]
    if isinstance(answer, list):
        sys.stderr.write(answer[1])
        sys.exit(answer[0])
    print(json.dumps(answer))
    """)


def test_script_runs_as_pulumi_runs_it_against_a_fake_aws_cli(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cli = bin_dir / "aws"
    cli.write_text(FAKE_AWS_CLI.format(python=sys.executable))
    cli.chmod(0o755)
    answers = {k: [list(a) if isinstance(a, tuple) else a for a in (v if isinstance(v, list) else [v])]
               for k, v in happy_answers().items()}
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    env = {**ENV, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_AWS_LOG": str(tmp_path / "calls"),
           "FAKE_AWS_STATE": str(tmp_path / "state.json"), "FAKE_AWS_ANSWERS": str(tmp_path / "answers.json")}
    result = subprocess.run([sys.executable, GATE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "[release v0.2.0] gate passed; the release may take traffic" in result.stdout
    calls = [json.loads(line) for line in (tmp_path / "calls").read_text().splitlines()]
    assert all(c[-4:] == ["--region", "us-east-1", "--output", "json"] for c in calls)
    assert ["ssm", "send-command"] in [c[:2] for c in calls]


def test_script_exits_non_zero_on_a_failed_migration(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cli = bin_dir / "aws"
    cli.write_text(FAKE_AWS_CLI.format(python=sys.executable))
    cli.chmod(0o755)
    answers = {k: [list(a) if isinstance(a, tuple) else a for a in (v if isinstance(v, list) else [v])]
               for k, v in happy_answers(**{"ssm get-command-invocation": {"Status": "TimedOut"}}).items()}
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    env = {**ENV, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_AWS_LOG": str(tmp_path / "calls"),
           "FAKE_AWS_STATE": str(tmp_path / "state.json"), "FAKE_AWS_ANSWERS": str(tmp_path / "answers.json")}
    result = subprocess.run([sys.executable, GATE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 1
    assert "release gate failed: migrations TimedOut on i-0a (SSM command cmd-1)" in result.stderr


# --- item 3 (gate part): secrets first, and the cache too --------------------------------------------

def test_a_secret_without_a_value_fails_fast_naming_it_and_the_command() -> None:
    fake = FakeAws(happy_answers(**{"secretsmanager describe-secret": [
        {"Name": "sark-production/SECRET_KEY", "VersionIdsToStages": {"v1": ["AWSCURRENT"]}},
        {"Name": "sark-production/SPLUNK_HEC_TOKEN", "VersionIdsToStages": {}}]}))
    env = ENV | {"SARK_SECRET_ARNS": json.dumps({"SECRET_KEY": "arn:sk", "SPLUNK_HEC_TOKEN": "arn:hec"})}
    code, log = run_gate(fake, env)
    assert code == 1
    assert log[-1] == (
        "FAILED: secrets without a current value:\n"
        "  SPLUNK_HEC_TOKEN (sark-production/SPLUNK_HEC_TOKEN) has no value: `aws secretsmanager put-secret-value "
        "--secret-id sark-production/SPLUNK_HEC_TOKEN --secret-string file://<file>` (docs/data-tier.md, "
        "\"Put in the SIEM token\")")
    # Nothing else was touched: no snapshot, no migration, no wait.
    assert {c[0] for c in fake.calls} == {"secretsmanager"}


def test_gate_waits_for_the_cache_and_the_timescale_bootstrap_before_snapshotting() -> None:
    fake = FakeAws(happy_answers(**{"ssm get-parameter": [
        (254, "An error occurred (ParameterNotFound)"),
        {"Parameter": {"Value": "i-0timescale"}}]}))
    env = ENV | {"SARK_CACHE_GROUP": "sark-cache", "SARK_TIMESCALE_READY_PARAMETER": "/sark/production/ts/ready",
                 "SARK_TIMESCALE_INSTANCE": "i-0timescale"}
    code, log = run_gate(fake, env)
    assert code == 0, log
    operations = [" ".join(c[:2]) for c in fake.calls]
    assert operations.count("elasticache describe-replication-groups") == 2  # creating, then available
    last_wait = max(i for i, op in enumerate(operations) if op in ("elasticache describe-replication-groups",
                                                                      "ssm get-parameter"))
    assert last_wait < operations.index("rds create-db-snapshot")


def test_cache_that_never_comes_up_fails_the_gate_naming_it() -> None:
    now = [0.0]
    fake = FakeAws(happy_answers(**{"elasticache describe-replication-groups": {
        "ReplicationGroups": [{"Status": "modifying"}]}}))
    settings = gate_module.Settings.from_env(ENV | {"SARK_CACHE_GROUP": "sark-cache"})

    def sleep(_seconds: float) -> None:
        now[0] += 15

    gate = gate_module.Gate(settings, fake, sleep=sleep, clock=lambda: now[0], log=lambda _m: None)
    with pytest.raises(gate_module.GateError) as raised:
        gate.run_all()
    assert str(raised.value) == "data stores not ready after 60 s: cache sark-cache is modifying"


# --- item 6: a failed gate resumes where it stopped (the record lives in SSM; moto) -----------------

class MotoSsmCli:
    """``aws ssm get-parameter`` / ``put-parameter`` answered by boto3 against moto, as the CLI would."""

    def __init__(self, ssm: Any, fallback: FakeAws) -> None:
        self.ssm = ssm
        self.fallback = fallback

    def __call__(self, args: Any) -> Any:
        from botocore.exceptions import ClientError

        args = list(args)
        if args[0] != "ssm" or args[1] not in ("get-parameter", "put-parameter"):
            return self.fallback(args)
        options = {args[i][2:]: (args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else True)
                   for i in range(2, len(args)) if args[i].startswith("--")}
        try:
            if args[1] == "get-parameter":
                answer = self.ssm.get_parameter(Name=options["name"])
                answer["Parameter"].pop("LastModifiedDate", None)
            else:
                answer = self.ssm.put_parameter(Name=options["name"], Value=options["value"], Type=options["type"],
                                                Overwrite=bool(options.get("overwrite")),
                                                Description=options.get("description", ""))
        except ClientError as error:
            return gate_module.Result(254, "", f"An error occurred ({error.response['Error']['Code']})")
        return gate_module.Result(0, json.dumps(answer), "")


def test_a_failed_gate_resumes_after_its_completed_steps() -> None:
    import boto3
    from moto import mock_aws

    state = "/sark/production/releases/v0-2-0/gate"
    env = ENV | {"SARK_TIMESCALE_VOLUME": "vol-0ts", "SARK_STATE_PARAMETER": state}
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        # First pulumi up: snapshots taken, migration fails.
        first = FakeAws(happy_answers(**{"ssm get-command-invocation": {"Status": "Failed",
                                                                        "StandardErrorContent": "boom"}}))
        code, _ = run_gate(MotoSsmCli(ssm, first), env)  # type: ignore[arg-type]
        assert code == 1
        record = json.loads(ssm.get_parameter(Name=state)["Parameter"]["Value"])
        assert record["release"] == "v0.2.0"
        assert sorted(record["steps"]) == ["snapshot-database", "snapshot-timescale"]

        # Second pulumi up: no snapshot again, the migration runs and succeeds, health fails.
        now = [0.0]
        second = FakeAws(happy_answers(**{"elbv2 describe-target-health": {"TargetHealthDescriptions": []}}))
        settings = gate_module.Settings.from_env(env)

        def sleep(_seconds: float) -> None:
            now[0] += 15

        gate = gate_module.Gate(settings, MotoSsmCli(ssm, second), sleep=sleep, clock=lambda: now[0],
                                log=lambda _m: None)
        with pytest.raises(gate_module.GateError):
            gate.run_all()
        operations = [" ".join(c[:2]) for c in second.calls]
        assert "rds create-db-snapshot" not in operations
        assert "rds describe-db-snapshots" not in operations
        assert "ec2 create-snapshot" not in operations
        assert operations.count("ssm send-command") == 1
        record = json.loads(ssm.get_parameter(Name=state)["Parameter"]["Value"])
        assert sorted(record["steps"]) == ["migrate", "snapshot-database", "snapshot-timescale"]

        # Third pulumi up: only the checks and the health wait run; the database is not migrated twice.
        third = FakeAws(happy_answers())
        code, log = run_gate(MotoSsmCli(ssm, third), env)  # type: ignore[arg-type]
        assert code == 0
        operations = [" ".join(c[:2]) for c in third.calls]
        assert "ssm send-command" not in operations
        assert "elbv2 describe-target-health" in operations
        assert any(line.startswith("resuming: already done migrate") or "migrate (" in line for line in log)


def test_a_record_of_another_release_is_refused() -> None:
    fake = FakeAws(happy_answers(**{"ssm get-parameter": {"Parameter": {"Value": json.dumps(
        {"release": "v0.1.0", "steps": {"migrate": "2026-01-01T00:00:00Z"}})}}}))
    code, log = run_gate(fake, ENV | {"SARK_STATE_PARAMETER": "/sark/production/releases/v0-2-0/gate"})
    assert code == 1
    assert log[-1] == ("FAILED: /sark/production/releases/v0-2-0/gate records release 'v0.1.0', not 'v0.2.0'; "
                       "delete it to run every step again")
