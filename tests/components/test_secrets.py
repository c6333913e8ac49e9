"""StackSecrets and SecretRotations under the mocks: what they register, parsed and checked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.secrets import (
    GENERATED,
    LAMBDA_SOURCE,
    MASTER,
    METRIC_NAME,
    METRIC_NAMESPACE,
    SecretRotations,
    SecretRotationsArgs,
    StackSecrets,
    StackSecretsArgs,
)
from components.timescale import PASSWORD_TOOL
from sarkops.plan.policy_runner import evaluate, load_pack
from sarkops.plan.runtime import Recording, is_secret, plain

Record = Callable[..., Recording]
ROOT = Path(__file__).resolve().parents[2]
KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-4222-a333-444455556666"
TOPIC = "arn:aws:sns:us-east-1:123456789012:sark-alerts"
DB_ARN = "arn:aws:rds:us-east-1:123456789012:db:sark-test-db"
CACHE_ARN = "arn:aws:elasticache:us-east-1:123456789012:replicationgroup:sark-test-cache"
SECRET = "aws:secretsmanager/secret:Secret"
VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"
RANDOM = "random:index/randomPassword:RandomPassword"

# Characters each consumer rejects (ElastiCache AUTH: besides letters and digits only ! & # $ ^ < > -;
# RDS: / ' " @ and space) plus what breaks a connection URL or an unquoted environment file.
URL_UNSAFE = set(":/?#[]@!$&'()*+,;=% \"<>\\^`{|}")


def secrets_args(**overrides: Any) -> StackSecretsArgs:
    values: dict[str, Any] = {"key_arn": KEY, "name_prefix": "sark-test", "siem_provider": "splunk",
                              "consul_token": True}
    values.update(overrides)
    return StackSecretsArgs(**values)


def stack(rotation: bool = True, **overrides: Any) -> Callable[[], None]:
    def program() -> None:
        secrets = StackSecrets("sec", secrets_args(**overrides))
        pulumi.export("secretArns", secrets.secret_arns)
        if rotation:
            SecretRotations("rot", SecretRotationsArgs(
                region="us-east-1", key_arn=KEY, secret_arns=secrets.arns, rotation_days=secrets.rotation_days,
                db_instance_identifier="sark-test-db", db_instance_arn=DB_ARN,
                replication_group_id="sark-test-cache", replication_group_arn=CACHE_ARN,
                timescale_instance_id="i-0123456789abcdef0", alarm_actions=[TOPIC],
                master_secret_arn=secrets.master_arn, subnet_ids=["subnet-0app1", "subnet-0app2"],
                security_group_ids=["sg-0app"]))
    return program


@pytest.fixture(scope="module")
def rec() -> Recording:
    from tests.conftest import record_program

    return record_program(stack())


def by_env(rec: Recording) -> dict[str, Any]:
    return {r.inputs["tags"]["sark:env-var"]: r for r in rec.by_type(SECRET)}


# --- StackSecrets -------------------------------------------------------------------------------------

def test_one_secret_per_env_var_encrypted_with_the_stack_key_and_protected(rec: Recording) -> None:
    secrets = by_env(rec)
    assert sorted(secrets) == ["CONSUL_TOKEN", "POSTGRES_MASTER", "POSTGRES_PASSWORD", "SECRET_KEY",
                               "SPLUNK_HEC_TOKEN", "TIMESCALE_PASSWORD", "VALKEY_PASSWORD"]
    for env_var, secret in secrets.items():
        assert secret.inputs["name"] == f"sark-test/{env_var}"
        assert secret.inputs["kmsKeyId"] == KEY
        assert secret.inputs["recoveryWindowInDays"] == 30
        assert secret.protect is True


def test_generated_values_are_long_and_use_only_safe_characters(rec: Recording) -> None:
    values = {r.name.removeprefix("sec-").removesuffix("-value"): r.inputs for r in rec.by_type(RANDOM)}
    assert values["secret-key"]["length"] >= 48  # checklist: SECRET_KEY 48+ characters
    assert values["secret-key"]["special"] is False
    for name, inputs in values.items():
        allowed_special = set(inputs.get("overrideSpecial", ""))
        assert not allowed_special & URL_UNSAFE, name
        assert inputs["minUpper"] >= 1
        assert inputs["minLower"] >= 1
        assert inputs["minNumeric"] >= 1
    assert set(values["valkey-password"]["overrideSpecial"]) <= set("!&#$^<>-")  # ElastiCache AUTH
    assert 16 <= values["valkey-password"]["length"] <= 128


def test_generated_secrets_store_the_generated_value_as_a_secret_and_protect_the_version(rec: Recording) -> None:
    versions = rec.by_type(VERSION)
    assert len(versions) == 5
    logins = {}
    for version in versions:
        assert is_secret(version.inputs["secretString"])
        (source,) = version.property_dependencies["secretString"]
        generator = rec.get(source)
        assert generator.type == RANDOM
        stored, generated = plain(version.inputs["secretString"]), plain(generator.outputs["result"])
        if stored.startswith("{"):
            login = json.loads(stored)
            assert login["password"] == generated
            logins[generator.name] = login["username"]
        else:
            assert stored == generated
        assert version.protect is True
    # Database logins are {username, password}: the master, the app's own login, the TimescaleDB owner.
    assert logins == {"sec-postgres-master-value": "sark", "sec-postgres-password-value": "sark_app_user",
                      "sec-timescale-password-value": "sark"}


def test_outside_credentials_get_an_empty_secret_and_no_value(rec: Recording) -> None:
    secrets = by_env(rec)
    versioned = {d for v in rec.by_type(VERSION) for d in v.property_dependencies["secretId"]}
    for env_var in ("SPLUNK_HEC_TOKEN", "CONSUL_TOKEN"):
        assert secrets[env_var].urn not in versioned
        assert secrets[env_var].inputs["tags"]["sark:rotation"] == "manual"
        assert secrets[env_var].inputs["tags"]["sark:rotation-days"] == "90"


def test_rotation_tags_follow_the_checklist_schedule(rec: Recording) -> None:
    tags = {env: s.inputs["tags"] for env, s in by_env(rec).items()}
    assert tags["SECRET_KEY"]["sark:rotation-class"] == "signing-key"
    assert tags["SECRET_KEY"]["sark:rotation-days"] == "180"
    for env_var in ("POSTGRES_PASSWORD", "TIMESCALE_PASSWORD", "VALKEY_PASSWORD"):
        assert tags[env_var]["sark:rotation-class"] == "password"
        assert tags[env_var]["sark:rotation-days"] == "90"
        assert tags[env_var]["sark:rotation"] == "automatic"


def test_exports_arns_by_env_var_and_no_values(rec: Recording) -> None:
    arns = rec.outputs["secretArns"]
    # Every secret the app reads, and not the master credential: it is for migrations and operators.
    assert sorted(arns) == sorted(set(by_env(rec)) - {"POSTGRES_MASTER"})
    assert all(arn.startswith("arn:aws:secretsmanager:us-east-1:") for arn in arns.values())
    assert not any(is_secret(v) for v in arns.values())


@pytest.mark.parametrize(("provider", "expected"), [("datadog", "DATADOG_API_KEY"), ("none", None)])
def test_siem_provider_picks_its_secret(record: Record, provider: str, expected: str | None) -> None:
    rec = record(stack(rotation=False, siem_provider=provider, consul_token=False))
    external = [e for e, s in by_env(rec).items() if s.inputs["tags"]["sark:rotation"] == "manual"]
    assert external == ([expected] if expected else [])


@pytest.mark.parametrize(("overrides", "message"), [
    ({"siem_provider": "elk"}, "StackSecretsArgs.siem_provider: 'elk' is not allowed; expected one of splunk, "
                               "datadog, none"),
    ({"recovery_window_days": 0}, "StackSecretsArgs.recovery_window_days: 0 is not allowed; expected 7 to 30 (0 "
                                  "would delete secrets at once, with no way back)"),
])
def test_bad_arguments_are_named(record: Record, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(pulumi.RunError) as raised:
        record(stack(rotation=False, **overrides))
    assert str(raised.value) == message


# --- SecretRotations ---------------------------------------------------------------------------------------

def test_each_generated_secret_rotates_on_its_schedule_without_rotating_at_creation(rec: Recording) -> None:
    arns = {**rec.outputs["secretArns"], "POSTGRES_MASTER": by_env(rec)["POSTGRES_MASTER"].outputs["arn"]}
    function = rec.one("aws:lambda/function:Function")
    days = {}
    for rotation in rec.by_type(ROTATION):
        env_var = next(k for k, v in arns.items() if v == rotation.inputs["secretId"])
        days[env_var] = rotation.inputs["rotationRules"]["automaticallyAfterDays"]
        assert rotation.inputs["rotationLambdaArn"] == function.outputs["arn"]
        assert rotation.inputs["rotateImmediately"] is False
    assert days == {"SECRET_KEY": 180, "POSTGRES_MASTER": 90, "POSTGRES_PASSWORD": 90, "TIMESCALE_PASSWORD": 90,
                    "VALKEY_PASSWORD": 90}


def test_lambda_runs_our_tested_code_encrypted_and_traced(rec: Recording) -> None:
    function = rec.one("aws:lambda/function:Function")
    inputs = function.inputs
    assert inputs["runtime"].startswith("python3.")
    assert inputs["handler"] == "lambda_function.handler"
    assert inputs["code"]["assets"]["lambda_function.py"]["text"] == LAMBDA_SOURCE.read_text(encoding="utf-8")
    assert inputs["kmsKeyArn"] == KEY
    assert inputs["tracingConfig"]["mode"] == "Active"
    # In the app subnets with the app security group: it reaches RDS (to manage the app's logins) the
    # way the app does, and no firewall rule is added for it.
    assert inputs["vpcConfig"] == {"subnetIds": ["subnet-0app1", "subnet-0app2"], "securityGroupIds": ["sg-0app"]}
    assert inputs["reservedConcurrentExecutions"] == 2
    log_group = rec.one("aws:cloudwatch/logGroup:LogGroup")
    assert inputs["loggingConfig"]["logGroup"] == log_group.outputs["name"]
    assert log_group.inputs["kmsKeyId"] == KEY


def test_lambda_configuration_names_targets_and_holds_no_secret(rec: Recording) -> None:
    config = json.loads(rec.one("aws:lambda/function:Function").inputs["environment"]["variables"]
                        ["SARK_ROTATION_CONFIG"])
    arns = {**rec.outputs["secretArns"], "POSTGRES_MASTER": by_env(rec)["POSTGRES_MASTER"].outputs["arn"]}
    kinds = {entry["name"]: (entry["kind"], entry.get("target")) for entry in config["secrets"].values()}
    assert kinds == {"SECRET_KEY": ("generated", None), "POSTGRES_PASSWORD": ("rds-app", "sark-test-db"),
                     "POSTGRES_MASTER": ("rds", "sark-test-db"),
                     "TIMESCALE_PASSWORD": ("timescale", "i-0123456789abcdef0"),
                     "VALKEY_PASSWORD": ("elasticache", "sark-test-cache")}
    assert set(config["secrets"]) == {arns[k] for k in kinds}
    assert sorted(config["audit"]) == sorted(arns.values())
    assert config["reload"]["tag_key"] == "sark:role"
    assert config["reload"]["tag_value"] == "app"
    specs = {s.env_var: s for s in (*GENERATED, MASTER)}
    assert config["secrets"][arns["POSTGRES_PASSWORD"]]["master"] == arns["POSTGRES_MASTER"]
    assert config["database"] == {"name": "sark", "owner": "sark", "group": "sark_app", "instance": "sark-test-db",
                                  "app_secret": arns["POSTGRES_PASSWORD"], "master_secret": arns["POSTGRES_MASTER"]}
    restarts = {entry["name"]: entry["restart"] for entry in config["secrets"].values()}
    assert restarts.pop("SECRET_KEY") == "all-at-once"
    assert set(restarts.values()) == {"rolling"}
    for entry in config["secrets"].values():
        assert entry["length"] == specs[entry["name"]].length
        assert entry["special"] == specs[entry["name"]].special
    generated = {plain(r.outputs["result"]) for r in rec.by_type(RANDOM)}
    text = json.dumps(config)
    assert not any(value in text for value in generated)


def _statements(rec: Recording) -> dict[str, dict[str, Any]]:
    policy = json.loads(rec.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


def test_lambda_role_reads_only_the_generated_secrets_values(rec: Recording) -> None:
    statements = _statements(rec)
    arns = {**rec.outputs["secretArns"], "POSTGRES_MASTER": by_env(rec)["POSTGRES_MASTER"].outputs["arn"]}
    readers = [s for s in statements.values() if "secretsmanager:GetSecretValue" in s["Action"]]
    assert len(readers) == 1
    assert sorted(readers[0]["Resource"]) == sorted(arns[k] for k in ("SECRET_KEY", "POSTGRES_MASTER",
                                                                      "POSTGRES_PASSWORD", "TIMESCALE_PASSWORD",
                                                                      "VALKEY_PASSWORD"))
    audit = statements["AuditSecretAges"]
    assert audit["Action"] == ["secretsmanager:DescribeSecret", "secretsmanager:ListSecretVersionIds"]
    assert arns["SPLUNK_HEC_TOKEN"] in audit["Resource"]


def test_lambda_role_changes_only_this_stacks_database_cache_and_hosts(rec: Recording) -> None:
    statements = _statements(rec)
    assert statements["SetDatabasePassword"]["Resource"] == DB_ARN
    assert statements["SetCacheAuthToken"]["Resource"] == CACHE_ARN
    assert statements["OnTheTimescaleHost"]["Resource"] == \
        "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
    assert statements["OnTheAppHosts"]["Condition"] == {"StringEquals": {"ssm:resourceTag/sark:role": "app"}}
    documents = {d.outputs["arn"] for d in rec.by_type("aws:ssm/document:Document")}
    assert set(statements["RunStackDocuments"]["Resource"]) == documents
    kms = statements["StackKeyThroughSecretsManager"]
    assert kms["Resource"] == KEY
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}
    wildcard = [s["Sid"] for s in statements.values() if s["Resource"] == "*" and "Condition" not in s]
    assert sorted(wildcard) == ["FollowCommands", "GenerateValues", "Tracing"]  # APIs without resource scoping


def test_ssm_documents_run_fixed_commands_with_enumerated_parameters(rec: Recording) -> None:
    documents = {d.inputs["name"]: json.loads(d.inputs["content"]) for d in rec.by_type("aws:ssm/document:Document")}
    timescale = documents["rot-timescale-password"]
    assert timescale["parameters"]["action"]["allowedValues"] == ["apply", "check"]
    assert timescale["parameters"]["stage"]["allowedValues"] == ["AWSCURRENT", "AWSPENDING"]
    (step,) = timescale["mainSteps"]
    assert step["inputs"]["runCommand"] == [f"{PASSWORD_TOOL} {{{{ action }}}} {{{{ stage }}}}"]
    (reload_step,) = documents["rot-app-reload"]["mainSteps"]
    assert reload_step["inputs"]["runCommand"] == ["systemctl try-restart sark.service"]
    assert "parameters" not in documents["rot-app-reload"]


def test_daily_audit_feeds_the_reminder_alarm(rec: Recording) -> None:
    rule = rec.one("aws:cloudwatch/eventRule:EventRule")
    assert rule.inputs["scheduleExpression"] == "rate(1 day)"
    target = rec.one("aws:cloudwatch/eventTarget:EventTarget")
    assert json.loads(target.inputs["input"]) == {"action": "audit"}
    assert target.inputs["arn"] == rec.one("aws:lambda/function:Function").outputs["arn"]
    alarm = next(a for a in rec.by_type("aws:cloudwatch/metricAlarm:MetricAlarm") if a.name == "rot-attention")
    assert (alarm.inputs["namespace"], alarm.inputs["metricName"]) == (METRIC_NAMESPACE, METRIC_NAME)
    assert alarm.inputs["dimensions"] == {"Stack": "rot"}
    assert alarm.inputs["treatMissingData"] == "breaching"
    assert alarm.inputs["alarmActions"] == [TOPIC]
    principals = sorted(p.inputs["principal"] for p in rec.by_type("aws:lambda/permission:Permission"))
    assert principals == ["events.amazonaws.com"] + ["secretsmanager.amazonaws.com"] * 5


def test_missing_secret_arn_is_named(record: Record) -> None:
    def program() -> None:
        secrets = StackSecrets("sec", secrets_args())
        SecretRotations("rot", SecretRotationsArgs(
            region="us-east-1", key_arn=KEY,
            secret_arns={k: v for k, v in secrets.arns.items() if k != "VALKEY_PASSWORD"},
            rotation_days=secrets.rotation_days, db_instance_identifier="db", db_instance_arn=DB_ARN,
            replication_group_id="c", replication_group_arn=CACHE_ARN, timescale_instance_id="i-1",
            master_secret_arn=secrets.master_arn, subnet_ids=["subnet-1"], security_group_ids=["sg-1"]))
    with pytest.raises(pulumi.RunError) as raised:
        record(program)
    assert str(raised.value) == "SecretRotationsArgs.secret_arns: missing VALKEY_PASSWORD; pass StackSecrets.arns"


def test_policy_pack_finds_nothing_mandatory(rec: Recording) -> None:
    report = evaluate(rec, [load_pack(ROOT / "policies")])
    assert [(v.policy, v.detail) for v in report.mandatory] == []
    assert [(v.policy, v.detail) for v in report.at_level("advisory")] == []



# --- item 17: ordering, reserved concurrency, a failure destination -----------------------------------------

def test_failed_async_invocations_go_to_an_encrypted_queue_with_an_alarm(rec: Recording) -> None:
    queue = rec.one("aws:sqs/queue:Queue")
    assert queue.inputs["kmsMasterKeyId"] == KEY
    (config,) = rec.by_type("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")
    assert config.inputs["destinationConfig"] == {"onFailure": {"destination": queue.outputs["arn"]}}
    assert config.inputs["functionName"] == rec.one("aws:lambda/function:Function").outputs["name"]
    alarm = next(a for a in rec.by_type("aws:cloudwatch/metricAlarm:MetricAlarm") if a.name == "rot-failed-invocations")
    assert (alarm.inputs["namespace"], alarm.inputs["metricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm.inputs["dimensions"] == {"QueueName": queue.outputs["name"]}
    assert alarm.inputs["alarmActions"] == [TOPIC]
    statements = _statements(rec)
    assert statements["FailedInvocationsToQueue"]["Resource"] == queue.outputs["arn"]
    assert statements["StackKeyThroughSqs"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "sqs.us-east-1.amazonaws.com"}}


def test_app_login_rotation_waits_for_the_bootstrap_and_timescale_for_its_host(record: Record) -> None:
    def program() -> None:
        secrets = StackSecrets("sec", secrets_args())
        ready = pulumi.CustomResource("test:index:Ready", "timescale-ready", {})
        SecretRotations("rot", SecretRotationsArgs(
            region="us-east-1", key_arn=KEY, secret_arns=secrets.arns, rotation_days=secrets.rotation_days,
            db_instance_identifier="sark-test-db", db_instance_arn=DB_ARN, replication_group_id="sark-test-cache",
            replication_group_arn=CACHE_ARN, timescale_instance_id="i-1", master_secret_arn=secrets.master_arn,
            subnet_ids=["subnet-1"], security_group_ids=["sg-1"], timescale_ready=[ready]))

    rec = record(program)
    (bootstrap,) = rec.by_type("aws:lambda/invocation:Invocation")
    assert json.loads(bootstrap.inputs["input"]) == {"action": "bootstrap"}
    rotations = {r.name: r for r in rec.by_type(ROTATION)}
    ready = next(r for r in rec.resources if r.name == "timescale-ready")
    assert bootstrap.urn in rotations["rot-postgres-password"].dependencies
    assert ready.urn in rotations["rot-timescale-password"].dependencies
    assert ready.urn not in rotations["rot-secret-key"].dependencies


@pytest.mark.parametrize("value", [0, -2])
def test_reserved_concurrency_that_stops_the_function_is_refused(record: Record, value: int) -> None:
    def program() -> None:
        secrets = StackSecrets("sec", secrets_args())
        SecretRotations("rot", SecretRotationsArgs(
            region="us-east-1", key_arn=KEY, secret_arns=secrets.arns, rotation_days=secrets.rotation_days,
            db_instance_identifier="db", db_instance_arn=DB_ARN, replication_group_id="c",
            replication_group_arn=CACHE_ARN, timescale_instance_id="i-1", master_secret_arn=secrets.master_arn,
            subnet_ids=["subnet-1"], security_group_ids=["sg-1"], reserved_concurrency=value))

    with pytest.raises(pulumi.RunError) as raised:
        record(program)
    assert str(raised.value) == (f"SecretRotationsArgs.reserved_concurrency: {value} is not allowed; expected -1 "
                                 "(none reserved) or 1 and more (0 would stop every rotation)")
