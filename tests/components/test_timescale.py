"""TimescaleHost under the mocks, its cloud-init document parsed, and the host's password tool run."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import importlib.util
import json
import os
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
IMAGE_ID = "ami-0fedcba9876543210"


def host(**overrides: Any) -> Callable[[], None]:
    def program() -> None:
        values: dict[str, Any] = {
            "region": "us-east-1", "subnet_id": "subnet-0data1", "security_group_id": "sg-0timescale",
            "key_arn": KEY, "password_secret_arn": SECRET_ARN, "password_secret_name": "sark-test/TIMESCALE_PASSWORD",
            "app_subnet_cidrs": APP_CIDRS, "cloudwatch_agent_parameter": "AmazonCloudWatch-sark-test-timescale",
            "image_id": IMAGE_ID,
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


def user_data_text(rec: Recording) -> str:
    # gzip + base64 (user_data_base64); cloud-init recognises the gzip magic bytes.
    raw = base64.b64decode(rec.one(INSTANCE).inputs["userDataBase64"])
    assert raw[:2] == b"\x1f\x8b"
    return gzip.decompress(raw).decode()


def cloud_config(rec: Recording) -> dict[str, Any]:
    text = user_data_text(rec)
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

def test_pinned_ubuntu_jammy_from_canonical(rec: Recording) -> None:
    (args,) = [a for token, a in rec.invokes if token == "aws:ec2/getAmi:getAmi"]
    assert args["owners"] == [CANONICAL]
    assert {"name": "image-id", "values": [IMAGE_ID]} in args["filters"]
    assert {"name": "name", "values": [UBUNTU_JAMMY]} in args["filters"]
    assert not args.get("mostRecent")  # no "newest image" that changes under the stack
    instance = rec.one(INSTANCE)
    assert instance.inputs["ami"] == IMAGE_ID
    assert instance.ignore_changes == ["ami"]  # a new pinned image must not replace the database host


def test_instance_waits_for_the_route_out(record: Record) -> None:
    import pulumi_aws as aws

    def program() -> None:
        route = aws.ec2.Route("nat-route", route_table_id="rtb-0123", destination_cidr_block="0.0.0.0/0",
                              nat_gateway_id="nat-0123")
        host(route_out=[route])()

    rec = record(program)
    assert rec.one("aws:ec2/route:Route").urn in rec.one(INSTANCE).dependencies


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
    policy = json.loads(rec.one("aws:iam/rolePolicy:RolePolicy", "ts-read-password").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["ReadTimescalePassword"]["Resource"] == SECRET_ARN
    assert statements["ReadTimescalePassword"]["Action"] == ["secretsmanager:GetSecretValue",
                                                             "secretsmanager:DescribeSecret"]
    assert statements["DecryptThroughSecretsManager"]["Resource"] == KEY
    assert statements["DecryptThroughSecretsManager"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}
    attached = sorted(a.inputs["policyArn"] for a in rec.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                      if "Backup" not in a.inputs["policyArn"])
    # Not AmazonSSMManagedInstanceCore (ssm:GetParameter* on every parameter of the account).
    assert attached == ["arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"]
    agent = json.loads(rec.one("aws:iam/rolePolicy:RolePolicy", "ts-ssm-agent").inputs["policy"])
    actions = [a for statement in agent["Statement"] for a in statement["Action"]]
    assert "ssm:UpdateInstanceInformation" in actions
    assert "ssmmessages:OpenDataChannel" in actions
    assert "ec2messages:GetMessages" in actions
    assert not [a for a in actions if a.startswith("ssm:GetParameter")]


# --- cloud-init ---------------------------------------------------------------------------------------

def test_user_data_is_compressed_cloud_config_with_headroom(rec: Recording) -> None:
    encoded = rec.one(INSTANCE).inputs["userDataBase64"]
    assert not contains_secret(encoded)  # nothing secret went in, so nothing needed masking
    assert "userData" not in rec.one(INSTANCE).inputs
    # EC2 counts the bytes before base64: the compressed document leaves 4 KiB free.
    assert len(base64.b64decode(encoded)) <= USER_DATA_LIMIT - 4096
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
    # The owner and its clone: the logins the TIMESCALE_PASSWORD secret alternates between.
    assert ["local", "sark_audit", "sark,sark_clone", "scram-sha-256"] in accepting
    network = [r for r in accepting if r[0] != "local"]
    assert network == [["hostssl", "sark_audit", "sark,sark_clone", cidr, "scram-sha-256"] for cidr in APP_CIDRS]
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
    # The connection budget's value (stack_config), also handed to timescaledb-tune.
    assert settings["max_connections"] == "720"
    env = files(rec)["/etc/sark/timescale.env"]["content"]
    assert "SARK_MAX_CONNECTIONS=720\n" in env.splitlines(keepends=True)


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


# --- item 16: TLS the clients verify; item 17: readiness the stack waits for -------------------------------

@pytest.fixture(scope="module")
def published() -> Recording:
    from tests.conftest import record_program

    return record_program(host(parameter_path="/sark/production"))


def test_host_publishes_its_ca_and_readiness_to_parameters_it_alone_may_write(published: Recording) -> None:
    parameters = {p.inputs["name"]: p for p in published.by_type("aws:ssm/parameter:Parameter")}
    assert parameters["/sark/production/env/TIMESCALE_SSLMODE"].inputs["insecureValue"] == "verify-full"
    assert parameters["/sark/production/env/TIMESCALE_SSLROOTCERT"].inputs["insecureValue"] == \
        "/etc/sark/tls/timescale-ca.pem"
    for name in ("/sark/production/tls/timescale-ca.pem", "/sark/production/timescale/ready"):
        assert parameters[name].inputs["insecureValue"] == "not published yet"
        assert set(parameters[name].ignore_changes) >= {"insecureValue", "value"}  # the host owns the value
    policy = next(p for p in published.by_type("aws:iam/rolePolicy:RolePolicy") if p.name == "ts-publish")
    (statement,) = json.loads(policy.inputs["policy"])["Statement"]
    assert statement["Action"] == "ssm:PutParameter"
    assert sorted(statement["Resource"]) == sorted(
        parameters[n].outputs["arn"] for n in ("/sark/production/tls/timescale-ca.pem",
                                              "/sark/production/timescale/ready"))
    settings = files(published)["/etc/sark/timescale.env"]["content"]
    assert "SARK_CA_PARAMETER=/sark/production/tls/timescale-ca.pem\n" in settings
    assert "SARK_READY_PARAMETER=/sark/production/timescale/ready\n" in settings


def test_ready_waits_for_the_instance_id_and_reruns_for_a_new_instance(published: Recording) -> None:
    (ready,) = published.by_type("command:local:Command")
    instance = published.one(INSTANCE)
    assert ready.inputs["create"] == "python3 scripts/release/wait_for_parameter.py"
    assert ready.inputs["environment"]["SARK_PARAMETER"] == "/sark/production/timescale/ready"
    assert ready.inputs["environment"]["SARK_EXPECTED"] == instance.outputs["id"]
    assert ready.inputs["triggers"] == [instance.outputs["id"]]
    assert instance.urn in ready.dependencies


def test_setup_publishes_last_after_the_password_and_tls(published: Recording) -> None:
    setup = files(published)[SETUP_TOOL]["content"]
    lines = [line for line in setup.splitlines() if line.startswith("/usr/local/sbin/")]
    assert lines == ["/usr/local/sbin/sark-timescale-tls \"${tls_dir}\" \"${private_ip}\"",
                     "/usr/local/sbin/sark-timescale-password apply AWSCURRENT",
                     "/usr/local/sbin/sark-timescale-password publish \"${tls_dir}/ca.crt\""]
    assert setup.rstrip().splitlines()[-2].startswith("/usr/local/sbin/sark-timescale-password publish")


def test_tls_tool_signs_a_server_certificate_for_the_address_with_a_ca_it_keeps(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    script = TEMPLATES / "sark-timescale-tls.sh"
    env = {**os.environ, "PATH": os.environ["PATH"]}

    def run(ip: str) -> None:
        # chown to postgres is the host's business; here it may fail only on that last line.
        subprocess.run(["bash", str(script), str(tmp_path), ip], env=env, check=False, capture_output=True)

    run("10.40.128.10")
    ca = (tmp_path / "ca.crt").read_text()
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / "server.crt")],
                              capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stderr
    text = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "server.crt"), "-noout", "-ext",
                           "subjectAltName,extendedKeyUsage,basicConstraints"], capture_output=True, text=True,
                          check=True).stdout
    assert "IP Address:10.40.128.10" in text
    assert "TLS Web Server Authentication" in text
    assert "CA:FALSE" in text
    assert oct((tmp_path / "ca.key").stat().st_mode & 0o777) == "0o600"
    # A replacement host (new address) keeps the CA the clients already trust.
    run("10.40.128.77")
    assert (tmp_path / "ca.crt").read_text() == ca
    text = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "server.crt"), "-noout", "-ext",
                           "subjectAltName"], capture_output=True, text=True, check=True).stdout
    assert "IP Address:10.40.128.77" in text


def test_publish_writes_the_ca_then_the_ready_marker(tmp_path: Path) -> None:
    tool = load_tool()
    calls: list[dict[str, Any]] = []

    class Ssm:
        def put_parameter(self, **kwargs: Any) -> None:
            calls.append(kwargs)

    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    settings = {"SARK_CA_PARAMETER": "/s/tls/timescale-ca.pem", "SARK_READY_PARAMETER": "/s/timescale/ready"}
    tool.publish(settings, str(ca), Ssm(), "i-0abc")
    assert [(c["Name"], c["Value"][:27]) for c in calls] == [("/s/tls/timescale-ca.pem", "-----BEGIN CERTIFICATE-----"),
                                                             ("/s/timescale/ready", "i-0abc")]
    assert all(c["Overwrite"] and c["Type"] == "String" for c in calls)
    ca.write_text("-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(SystemExit, match="is not a PEM certificate"):
        tool.publish(settings, str(ca), Ssm(), "i-0abc")


def load_wait() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wait_for_parameter", ROOT / "scripts/release/wait_for_parameter.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wait_for_parameter_until_the_instance_id_appears() -> None:
    wait = load_wait()
    answers = iter([(254, "", "An error occurred (ParameterNotFound)"), (0, "not published yet", ""),
                    (0, "i-0old", ""), (0, "i-0new", "")])
    log: list[str] = []
    env = {"AWS_REGION": "us-east-1", "SARK_PARAMETER": "/s/timescale/ready", "SARK_EXPECTED": "i-0new"}
    assert wait.wait(env, lambda _args: next(answers), sleep=lambda _s: None, log=log.append) == 0
    assert log == ["the parameter: done (/s/timescale/ready = i-0new)"]


def test_wait_for_parameter_times_out_naming_what_it_saw() -> None:
    wait = load_wait()
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    log: list[str] = []
    env = {"AWS_REGION": "us-east-1", "SARK_PARAMETER": "/s/timescale/ready", "SARK_EXPECTED": "i-0new",
           "SARK_TIMEOUT": "60", "SARK_WHAT": "the TimescaleDB host's bootstrap"}
    code = wait.wait(env, lambda _args: (0, "i-0old", ""), sleep=sleep, clock=lambda: now[0], log=log.append)
    assert code == 1
    assert log[-1].startswith("the TimescaleDB host's bootstrap: not done after 60 s: /s/timescale/ready is "
                              "'i-0old', expected 'i-0new'")
