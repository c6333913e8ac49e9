"""TimescaleHost under the mocks, its cloud-init document parsed, and the host's password tool run."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pulumi
import pytest
import yaml

from components.timescale import (
    CANONICAL,
    PASSWORD_TOOL,
    SETUP_TOOL,
    TEMPLATES,
    UBUNTU_JAMMY,
    USER_DATA_LIMIT,
    TimescaleHost,
    TimescaleHostArgs,
)
from sarkops.plan.policy_runner import evaluate, load_pack
from sarkops.plan.runtime import Recording, contains_secret

Record = Callable[..., Recording]
ROOT = Path(__file__).resolve().parents[2]
KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-4222-a333-444455556666"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sark-test/TIMESCALE_PASSWORD-AbCdEf"
APP_CIDRS = ["10.40.64.0/20", "10.40.80.0/20", "10.40.96.0/20"]
INSTANCE = "aws:ec2/instance:Instance"
VOLUME = "aws:ebs/volume:Volume"


def host(**overrides: Any) -> Callable[[], None]:
    def program() -> None:
        values: dict[str, Any] = {
            "region": "us-east-1", "subnet_id": "subnet-0data1", "security_group_id": "sg-0timescale",
            "key_arn": KEY, "password_secret_arn": SECRET_ARN, "password_secret_name": "sark-test/TIMESCALE_PASSWORD",
            "app_subnet_cidrs": APP_CIDRS, "cloudwatch_agent_parameter": "AmazonCloudWatch-sark-test-timescale",
        }
        values.update(overrides)
        made = TimescaleHost("ts", TimescaleHostArgs(**values))
        pulumi.export("instanceId", made.instance_id)
        pulumi.export("privateIp", made.private_ip)
        pulumi.export("dataVolumeId", made.data_volume_id)
        pulumi.export("dataVolumeArn", made.data_volume_arn)
    return program


@pytest.fixture(scope="module")
def rec() -> Recording:
    from tests.conftest import record_program

    return record_program(host())


def cloud_config(rec: Recording) -> dict[str, Any]:
    text = rec.one(INSTANCE).inputs["userData"]
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def files(rec: Recording) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in cloud_config(rec)["write_files"]}


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sark_timescale_password", TEMPLATES / "sark_timescale_password.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --- the instance -------------------------------------------------------------------------------------

def test_ubuntu_jammy_from_canonical(rec: Recording) -> None:
    (args,) = [a for token, a in rec.invokes if token == "aws:ec2/getAmi:getAmi"]
    assert args["owners"] == [CANONICAL]
    assert {"name": "name", "values": [UBUNTU_JAMMY]} in args["filters"]
    assert args["mostRecent"] is True
    instance = rec.one(INSTANCE)
    assert instance.inputs["ami"].startswith("ami-0")
    assert instance.ignore_changes == ["ami"]  # a newer image must not replace the database host


def test_instance_is_private_imdsv2_only_and_termination_protected(rec: Recording) -> None:
    instance = rec.one(INSTANCE).inputs
    assert instance["metadataOptions"]["httpTokens"] == "required"
    assert instance["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert instance["associatePublicIpAddress"] is False
    assert instance["disableApiTermination"] is True
    assert instance["subnetId"] == "subnet-0data1"
    assert instance["vpcSecurityGroupIds"] == ["sg-0timescale"]
    assert instance["tags"]["sark:role"] == "timescale"
    assert instance["maintenanceOptions"]["autoRecovery"] == "default"


def test_root_volume_encrypted_gp3_with_the_stack_key(rec: Recording) -> None:
    root = rec.one(INSTANCE).inputs["rootBlockDevice"]
    assert root["encrypted"] is True
    assert root["kmsKeyId"] == KEY
    assert root["volumeType"] == "gp3"


def test_data_volume_is_encrypted_protected_and_survives_the_instance(rec: Recording) -> None:
    volume = rec.one(VOLUME)
    assert volume.inputs["encrypted"] is True
    assert volume.inputs["kmsKeyId"] == KEY
    assert volume.inputs["type"] == "gp3"
    assert volume.inputs["size"] == 200
    assert volume.inputs["finalSnapshot"] is True
    assert volume.protect is True
    assert volume.retain_on_delete is True
    (subnet_args,) = [a for token, a in rec.invokes if token == "aws:ec2/getSubnet:getSubnet"]
    assert subnet_args["id"] == "subnet-0data1"  # same zone as the instance's subnet
    attachment = rec.one("aws:ec2/volumeAttachment:VolumeAttachment")
    assert attachment.inputs["deviceName"] == "/dev/sdf"
    assert attachment.property_dependencies["volumeId"] == [volume.urn]
    assert attachment.property_dependencies["instanceId"] == [rec.one(INSTANCE).urn]


def test_instance_role_reads_only_its_password_secret(rec: Recording) -> None:
    policy = json.loads(rec.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["ReadTimescalePassword"]["Resource"] == SECRET_ARN
    assert statements["ReadTimescalePassword"]["Action"] == ["secretsmanager:GetSecretValue",
                                                             "secretsmanager:DescribeSecret"]
    assert statements["DecryptThroughSecretsManager"]["Resource"] == KEY
    assert statements["DecryptThroughSecretsManager"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}
    attached = sorted(a.inputs["policyArn"] for a in rec.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                      if "Backup" not in a.inputs["policyArn"])
    assert attached == ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
                        "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"]


# --- cloud-init ---------------------------------------------------------------------------------------

def test_user_data_is_plain_cloud_config_under_the_ec2_limit(rec: Recording) -> None:
    user_data = rec.one(INSTANCE).inputs["userData"]
    assert not contains_secret(user_data)  # nothing secret went in, so nothing needed masking
    assert len(user_data.encode()) < USER_DATA_LIMIT
    document = cloud_config(rec)
    assert document["runcmd"] == [[SETUP_TOOL]]
    assert "python3-boto3" in document["packages"]


def test_settings_file_names_the_secret_volume_and_versions(rec: Recording, tmp_path: Path) -> None:
    content = files(rec)["/etc/sark/timescale.env"]["content"]
    settings = {}
    for line in content.splitlines():
        key, _, value = line.partition("=")
        settings[key] = shlex.split(value)[0] if value else ""
    volume_id = rec.one(VOLUME).outputs["id"]
    assert settings["SARK_SECRET_ID"] == "sark-test/TIMESCALE_PASSWORD"
    assert settings["SARK_DATA_VOLUME_ID"] == volume_id
    assert settings["SARK_PG_MAJOR"] == "15"
    assert settings["SARK_TIMESCALEDB_VERSION"] == "2.14"
    assert (settings["SARK_DB_NAME"], settings["SARK_DB_USER"]) == ("sark_audit", "sark")
    assert settings["SARK_DATA_MOUNT"] == "/var/lib/postgresql"
    assert settings["SARK_CLOUDWATCH_AGENT_PARAMETER"] == "AmazonCloudWatch-sark-test-timescale"
    # The tool's own parser reads the same values.
    tool = load_tool()
    path = tmp_path / "timescale.env"
    path.write_text(content, encoding="utf-8")
    assert tool.read_env(str(path)) == settings


def test_pg_hba_lets_only_the_app_subnets_in_over_tls_with_scram(rec: Recording) -> None:
    content = files(rec)["/etc/sark/pg_hba.conf"]["content"]
    rows = [line.split() for line in content.splitlines() if line.strip() and not line.startswith("#")]
    accepting = [r for r in rows if r[-1] != "reject"]
    assert ["local", "all", "postgres", "peer"] in accepting
    assert ["local", "sark_audit", "sark", "scram-sha-256"] in accepting
    network = [r for r in accepting if r[0] != "local"]
    assert network == [["hostssl", "sark_audit", "sark", cidr, "scram-sha-256"] for cidr in APP_CIDRS]
    rejecting = [r for r in rows if r[-1] == "reject"]
    assert {(r[0], r[3]) for r in rejecting} == {("hostnossl", "0.0.0.0/0"), ("hostnossl", "::/0"),
                                                 ("host", "0.0.0.0/0"), ("host", "::/0")}
    assert not any(r[-1] in ("trust", "md5", "password") for r in rows)


def test_postgresql_conf_listens_on_the_private_address_with_tls_only(rec: Recording) -> None:
    content = files(rec)["/etc/sark/postgresql-sark.conf"]["content"]
    settings = {}
    for line in content.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip().strip("'")
    assert settings["listen_addresses"] == "@PRIVATE_IP@"  # filled from IMDS on the host
    assert settings["ssl"] == "on"
    assert settings["ssl_min_protocol_version"] == "TLSv1.2"
    assert settings["password_encryption"] == "scram-sha-256"
    assert settings["shared_preload_libraries"] == "timescaledb"
    assert settings["port"] == "5432"


def test_setup_script_is_valid_bash_and_the_tools_are_installed(rec: Recording) -> None:
    written = files(rec)
    setup = written[SETUP_TOOL]
    assert setup["content"] == (TEMPLATES / "sark-timescale-setup.sh").read_text(encoding="utf-8")
    assert setup["permissions"] == "0750"
    bash = shutil.which("bash")
    assert bash is not None
    checked = subprocess.run([bash, "-n"], input=setup["content"], text=True, capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr
    tool = written[PASSWORD_TOOL]
    assert tool["content"] == (TEMPLATES / "sark_timescale_password.py").read_text(encoding="utf-8")
    compile(tool["content"], PASSWORD_TOOL, "exec")


def test_user_data_passes_the_user_data_secret_scan(rec: Recording) -> None:
    report = evaluate(rec, [load_pack(ROOT / "policies")])
    found = [(v.policy, v.detail) for v in report.violations if "user-data" in v.policy]
    assert found == []


# --- backups and recovery -----------------------------------------------------------------------------

def test_daily_backups_of_the_data_volume_kept_30_days(rec: Recording) -> None:
    plan = rec.one("aws:backup/plan:Plan")
    (rule,) = plan.inputs["rules"]
    assert rule["schedule"] == "cron(0 3 * * ? *)"
    assert rule["lifecycle"]["deleteAfter"] == 30
    vault = rec.one("aws:backup/vault:Vault")
    assert vault.inputs["kmsKeyArn"] == KEY
    assert vault.protect is True
    selection = rec.one("aws:backup/selection:Selection")
    volume = rec.one(VOLUME)
    assert selection.inputs["resources"] == [volume.outputs["arn"]]
    assert selection.property_dependencies["resources"] == [volume.urn]
    role = rec.get(selection.property_dependencies["iamRoleArn"][0])
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "backup.amazonaws.com"}


def test_failed_system_status_check_recovers_the_instance(rec: Recording) -> None:
    alarm = rec.one("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert alarm.inputs["namespace"] == "AWS/EC2"
    assert alarm.inputs["metricName"] == "StatusCheckFailed_System"
    assert alarm.inputs["dimensions"] == {"InstanceId": rec.one(INSTANCE).outputs["id"]}
    assert alarm.inputs["alarmActions"] == ["arn:aws:automate:us-east-1:ec2:recover"]


def test_outputs(rec: Recording) -> None:
    assert rec.outputs["instanceId"].startswith("i-0")
    assert rec.outputs["dataVolumeId"].startswith("vol-0")
    assert rec.outputs["dataVolumeArn"] == f"arn:aws:ec2:us-east-1:123456789012:volume/{rec.outputs['dataVolumeId']}"
    assert rec.outputs["privateIp"].startswith("10.")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"timescaledb_version": "2.10"}, "TimescaleHostArgs: timescaledb_version: '2.10' is not allowed; expected "
                                      "major.minor 2.11 or newer, e.g. '2.14'"),
    ({"postgres_major": 13}, "TimescaleHostArgs: postgres_major: 13 is not allowed; expected 14 or newer"),
    ({"database_name": "Sark-Audit"}, "TimescaleHostArgs: database_name: 'Sark-Audit' is not allowed; expected a "
                                      "lowercase PostgreSQL identifier"),
])
def test_bad_arguments_are_named(record: Record, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(pulumi.RunError) as raised:
        record(host(**overrides))
    assert str(raised.value) == message


def test_policy_pack_finds_nothing_mandatory(rec: Recording) -> None:
    report = evaluate(rec, [load_pack(ROOT / "policies")])
    # The host's alarms beyond auto-recovery belong to Monitoring; the whole-stack plan checks them.
    assert [(v.policy, v.detail) for v in report.mandatory if v.policy != "aws-cloudwatch-require-sark-alarms"] == []


# --- the password tool (runs on the host) ---------------------------------------------------------------

def test_scram_verifier_matches_rfc_7677() -> None:
    tool = load_tool()
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = tool.scram_verifier("pencil", salt, 4096)
    mechanism, iterations_and_salt, keys = verifier.split("$")
    assert (mechanism, iterations_and_salt) == ("SCRAM-SHA-256", "4096:W22ZaJ0SNY7soEsUEjb6gQ==")
    stored_b64, server_b64 = keys.split(":")
    stored, server = base64.b64decode(stored_b64), base64.b64decode(server_b64)
    # RFC 7677's exchange for user "user", password "pencil": the server signature and the client
    # proof it lists must verify against our StoredKey and ServerKey.
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}".encode()
    server_signature = hmac.new(server, auth, "sha256").digest()
    assert base64.b64encode(server_signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_key = bytes(a ^ b for a, b in zip(proof, hmac.new(stored, auth, "sha256").digest(), strict=True))
    assert hashlib.sha256(client_key).digest() == stored


def test_verifier_uses_a_fresh_salt_and_sql_carries_no_plaintext() -> None:
    tool = load_tool()
    first, second = tool.scram_verifier("Abc-123_x" * 4), tool.scram_verifier("Abc-123_x" * 4)
    assert first != second
    sql = tool.alter_role_sql("sark", first)
    assert sql == f"ALTER ROLE \"sark\" WITH LOGIN PASSWORD '{first}';\n"
    assert "Abc-123_x" not in sql


def test_passfile_line_escapes_separators() -> None:
    tool = load_tool()
    assert tool.passfile_line("sark", "a:b\\c") == "*:*:*:sark:a\\:b\\\\c\n"


def test_region_comes_from_imdsv2_with_a_session_first() -> None:
    tool = load_tool()
    requests: list[Any] = []

    class Response:
        def __init__(self, body: str) -> None:
            self.body = body.encode()

        def __enter__(self) -> Response:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def read(self) -> bytes:
            return self.body

    def opener(request: Any, timeout: float) -> Response:
        requests.append(request)
        return Response("session-abc" if request.get_method() == "PUT" else "eu-west-1\n")

    assert tool.imds_region(opener) == "eu-west-1"
    put, get = requests
    assert (put.get_method(), put.full_url) == ("PUT", "http://169.254.169.254/latest/api/token")
    assert get.full_url == "http://169.254.169.254/latest/meta-data/placement/region"
    assert get.get_header("X-aws-ec2-metadata-token") == "session-abc"


def test_tool_refuses_unknown_actions_and_stages(capsys: pytest.CaptureFixture[str]) -> None:
    tool = load_tool()
    assert tool.main(["sark-timescale-password", "drop", "AWSCURRENT"]) == 2
    assert tool.main(["sark-timescale-password", "apply", "AWSPREVIOUS"]) == 2
    assert "usage:" in capsys.readouterr().err
