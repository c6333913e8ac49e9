"""AppHosts: launch template, Auto Scaling group, cloud-init, systemd unit, role and parameters.

Everything the hosts get is parsed the way the host parses it: the user data with base64 +
yaml.safe_load (cloud-init), the unit with configparser, host.json with json, the IAM policy
as JSON. sark-render-env itself runs against moto's SSM and Secrets Manager.
"""

from __future__ import annotations

import base64
import configparser
import importlib.util
import json
import os
import pwd
import shlex
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pulumi
import pytest
import yaml

from components.app_hosts import (
    CANONICAL_OWNER_ID,
    PACKAGES,
    TEMPLATES,
    UBUNTU_JAMMY_AMD64,
    AppHosts,
    AppHostsArgs,
    AppSettings,
    DataEndpoints,
    render_unit,
)
from sarkops.plan.policy_runner import evaluate, load_pack
from sarkops.plan.runtime import RecordedResource, Recording, plain

Record = Callable[..., Recording]
ROOT = Path(__file__).resolve().parents[2]

SECRETS = ("SECRET_KEY", "POSTGRES_PASSWORD", "TIMESCALE_PASSWORD", "VALKEY_PASSWORD", "SPLUNK_HEC_TOKEN")
SECRET_ARNS = {name: f"arn:aws:secretsmanager:us-east-1:123456789012:secret:sark-test/{name}-AbCdEf"
               for name in SECRETS}
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
TG_V1 = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/sark-v0-1-0/0123456789abcdef"
TG_V2 = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/sark-v0-2-0/fedcba9876543210"


def args(**overrides: Any) -> AppHostsArgs:
    values: dict[str, Any] = {
        "region": "us-east-1", "stack": "test", "parameter_path": "/sark/test",
        "subnet_ids": ["subnet-0aaa", "subnet-0bbb"], "vpc_cidr": "10.40.0.0/16", "security_group_id": "sg-0app",
        "kms_key_arn": KEY_ARN, "repository_url": "https://github.com/your-org/sark.git",
        "versions": {"v0.1.0": TG_V1},
        "data": DataEndpoints(postgres_host="sark-db.c1.us-east-1.rds.amazonaws.com", timescale_host="10.40.128.10",
                              valkey_host="master.sark-cache.abc.use1.cache.amazonaws.com"),
        "secret_arns": SECRET_ARNS,
        "settings": AppSettings(cors_origins=("https://sark.example.com",),
                                splunk_hec_url="https://splunk.example.com:8088/services/collector"),
        "instance_type": "m6i.xlarge", "workers": 9, "root_volume_gb": 100,
        "min_size": 2, "desired_capacity": 3, "max_size": 4,
        "monitoring_cidrs": ("10.60.0.0/24",), "admin_cidrs": (),
    }
    values.update(overrides)
    return AppHostsArgs(**values)


@pytest.fixture
def rec(record: Record) -> Recording:
    return record(lambda: AppHosts("app", args()), {"aws:region": "us-east-1"})


def user_data(template: RecordedResource) -> str:
    return base64.b64decode(template.inputs["userData"]).decode()


def cloud_config(template: RecordedResource) -> dict[str, Any]:
    text = user_data(template)
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def written(config: dict[str, Any], path: str) -> dict[str, Any]:
    (entry,) = [f for f in config["write_files"] if f["path"] == path]
    return entry


def unit_of(config: dict[str, Any]) -> configparser.RawConfigParser:
    unit = configparser.RawConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(written(config, "/etc/systemd/system/sark.service")["content"])
    return unit


# --- launch template and Auto Scaling group -----------------------------------------------------

def test_launch_template_hardening(rec: Recording) -> None:
    template = rec.one("aws:ec2/launchTemplate:LaunchTemplate")
    inputs = template.inputs
    assert inputs["metadataOptions"]["httpTokens"] == "required"
    assert inputs["metadataOptions"]["httpPutResponseHopLimit"] == 1
    (interface,) = inputs["networkInterfaces"]
    assert interface["associatePublicIpAddress"] == "false"
    assert interface["securityGroups"] == ["sg-0app"]
    (root,) = inputs["blockDeviceMappings"]
    assert root["deviceName"] == "/dev/sda1"  # Ubuntu's root device, from the AMI lookup
    assert root["ebs"] == {"volumeSize": 100, "volumeType": "gp3", "encrypted": "true", "deleteOnTermination": "true"}
    assert inputs["instanceType"] == "m6i.xlarge"
    assert inputs["iamInstanceProfile"]["arn"] == rec.one("aws:iam/instanceProfile:InstanceProfile").outputs["arn"]
    assert inputs["monitoring"] == {"enabled": True}


def test_ami_is_canonical_ubuntu_jammy(rec: Recording) -> None:
    ((_token, call),) = [(t, a) for t, a in rec.invokes if t == "aws:ec2/getAmi:getAmi"]
    assert call["owners"] == [CANONICAL_OWNER_ID]
    assert call["mostRecent"] is True
    assert {"name": "name", "values": [UBUNTU_JAMMY_AMD64]} in call["filters"]
    template = rec.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["imageId"].startswith("ami-0")


def test_auto_scaling_group(rec: Recording) -> None:
    group = rec.one("aws:autoscaling/group:Group")
    inputs = group.inputs
    assert (inputs["minSize"], inputs["desiredCapacity"], inputs["maxSize"]) == (2, 3, 4)
    assert inputs["vpcZoneIdentifiers"] == ["subnet-0aaa", "subnet-0bbb"]
    assert inputs["targetGroupArns"] == [TG_V1]
    assert inputs["healthCheckType"] == "ELB"
    assert inputs["instanceRefresh"]["strategy"] == "Rolling"
    assert inputs["instanceRefresh"]["preferences"]["minHealthyPercentage"] == 100
    template = rec.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert inputs["launchTemplate"] == {"id": template.outputs["id"], "version": "1"}
    assert {"key": "sark:role", "value": "app", "propagateAtLaunch": True} in inputs["tags"]


def test_one_group_per_live_release_keyed_by_tag(record: Record) -> None:
    rec = record(lambda: AppHosts("app", args(versions={"v0.2.0": TG_V2, "v0.1.0": TG_V1})))
    groups = {g.name: g for g in rec.by_type("aws:autoscaling/group:Group")}
    assert set(groups) == {"app-v0-1-0-asg", "app-v0-2-0-asg"}
    assert groups["app-v0-2-0-asg"].inputs["targetGroupArns"] == [TG_V2]
    releases = {t.name: cloud_config(t)["runcmd"] for t in rec.by_type("aws:ec2/launchTemplate:LaunchTemplate")}
    assert ["/usr/local/sbin/sark-install", "https://github.com/your-org/sark.git", "v0.2.0"] in releases[
        "app-v0-2-0-lt"]
    assert ["/usr/local/sbin/sark-install", "https://github.com/your-org/sark.git", "v0.1.0"] in releases[
        "app-v0-1-0-lt"]


def test_children_are_parented_and_named_from_the_component(rec: Recording) -> None:
    component = rec.one("sark:app:AppHosts")
    children = [r for r in rec.resources if r.urn != component.urn]
    assert all(r.parent == component.urn for r in children)
    assert all(r.name.startswith("app-") for r in children)


# --- cloud-init ----------------------------------------------------------------------------------

def test_cloud_config_system_setup(rec: Recording) -> None:
    config = cloud_config(rec.one("aws:ec2/launchTemplate:LaunchTemplate"))
    assert config["package_update"] is True
    assert config["package_upgrade"] is True
    assert config["timezone"] == "UTC"
    assert config["packages"] == list(PACKAGES)
    for package in ("python3.11", "python3.11-venv", "postgresql-client", "redis-tools", "build-essential",
                    "libssl-dev", "libffi-dev", "python3-dev"):
        assert package in config["packages"]
    (sark,) = [u for u in config["users"] if isinstance(u, dict)]
    assert sark == {"name": "sark", "system": True, "homedir": "/opt/sark", "no_create_home": True,
                    "shell": "/usr/sbin/nologin", "lock_passwd": True}


def test_runcmd_order_hostname_firewall_install_start(rec: Recording) -> None:
    runcmd = cloud_config(rec.one("aws:ec2/launchTemplate:LaunchTemplate"))["runcmd"]
    assert runcmd[0] == "set -e"
    assert runcmd[1][:2] == ["sh", "-c"]
    assert "hostnamectl set-hostname" in runcmd[1][2]
    assert "cloud-init query v1.instance_id" in runcmd[1][2]
    assert runcmd[-3:] == [["/usr/local/sbin/sark-install", "https://github.com/your-org/sark.git", "v0.1.0"],
                           ["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "sark.service"]]


def _ufw(runcmd: list[Any]) -> list[list[str]]:
    return [c for c in runcmd if isinstance(c, list) and c[0] == "ufw"]


def test_ufw_mirrors_the_security_group(rec: Recording) -> None:
    rules = _ufw(cloud_config(rec.one("aws:ec2/launchTemplate:LaunchTemplate"))["runcmd"])
    assert rules == [
        ["ufw", "default", "deny", "incoming"], ["ufw", "default", "allow", "outgoing"],
        ["ufw", "allow", "from", "10.40.0.0/16", "to", "any", "port", "8000", "proto", "tcp"],
        ["ufw", "allow", "from", "10.60.0.0/24", "to", "any", "port", "9090", "proto", "tcp"],
        ["ufw", "--force", "enable"],
    ]  # no port 22 without admin CIDRs


def test_ufw_opens_ssh_only_to_admin_cidrs(record: Record) -> None:
    rec = record(lambda: AppHosts("app", args(admin_cidrs=("192.0.2.0/28",), monitoring_cidrs=())))
    rules = _ufw(cloud_config(rec.one("aws:ec2/launchTemplate:LaunchTemplate"))["runcmd"])
    assert [r for r in rules if "22" in r] == [["ufw", "allow", "from", "192.0.2.0/28", "to", "any", "port", "22",
                                                "proto", "tcp"]]
    assert not [r for r in rules if "9090" in r]


def test_helpers_are_root_owned_outside_the_app_directory(rec: Recording) -> None:
    config = cloud_config(rec.one("aws:ec2/launchTemplate:LaunchTemplate"))
    for path in ("/usr/local/sbin/sark-render-env", "/usr/local/sbin/sark-install", "/usr/local/sbin/sark-migrate"):
        entry = written(config, path)
        assert (entry["owner"], entry["permissions"]) == ("root:root", "0755")
    assert written(config, "/usr/local/sbin/sark-render-env")["content"] == (TEMPLATES / "render_env.py").read_text()
    host = json.loads(written(config, "/etc/sark/host.json")["content"])
    assert host == {"region": "us-east-1", "parameterPath": "/sark/test", "envFile": "/opt/sark/.env.production",
                    "owner": "sark", "waitSeconds": 900, "waitForDataStores": True}


def test_user_data_fits_and_holds_no_secret_or_endpoint(rec: Recording) -> None:
    template = rec.one("aws:ec2/launchTemplate:LaunchTemplate")
    text = user_data(template)
    assert len(base64.b64decode(template.inputs["userData"])) <= 16384
    # The hosts learn endpoints and secret ARNs from parameters at start, never from user data.
    for value in (*SECRET_ARNS.values(), "sark-db.c1.us-east-1.rds.amazonaws.com", "10.40.128.10"):
        assert value not in text


def test_shipped_shell_scripts_parse() -> None:
    for script in ("install_sark.sh", "migrate.sh"):
        result = subprocess.run(["bash", "-n", str(TEMPLATES / script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr


# --- systemd unit ------------------------------------------------------------------------------

def test_unit_follows_the_checklist(rec: Recording) -> None:
    unit = unit_of(cloud_config(rec.one("aws:ec2/launchTemplate:LaunchTemplate")))
    service = unit["Service"]
    assert (service["User"], service["Group"], service["WorkingDirectory"]) == ("sark", "sark", "/opt/sark")
    assert (service["Restart"], service["RestartSec"]) == ("always", "5")
    assert (service["StandardOutput"], service["StandardError"]) == ("journal", "journal")
    assert service["EnvironmentFile"] == "-/opt/sark/.env.production"
    assert service["ExecStartPre"] == "+/usr/local/sbin/sark-render-env"
    argv = shlex.split(service["ExecStart"])
    assert argv[:2] == ["/opt/sark/venv/bin/uvicorn", "sark.main:app"]
    options = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert options["--host"] == "0.0.0.0"  # noqa: S104 (the checklist binds all interfaces; SG and ufw restrict)
    assert options["--port"] == "8000"
    assert options["--workers"] == "9"  # 2 x 4 vCPU + 1
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_unit_fixes_what_the_checklist_gets_wrong() -> None:
    unit = configparser.RawConfigParser(interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(render_unit(workers=17))
    assert unit["Service"]["Type"] == "exec"  # uvicorn never sends sd_notify READY=1
    path = unit["Service"]["Environment"].removeprefix("PATH=").split(":")
    assert path[0] == "/opt/sark/venv/bin"
    assert "/usr/bin" in path
    assert "postgresql.service" not in unit["Unit"].get("After", "")
    assert "redis.service" not in unit["Unit"].get("Wants", "")
    assert "--log-config" not in unit["Service"]["ExecStart"]
    assert "--workers 17" in unit["Service"]["ExecStart"]


# --- parameters and the render-env variable list ------------------------------------------------------

def load_render_env() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sark_render_env", TEMPLATES / "render_env.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parameters(rec: Recording) -> dict[str, str]:
    return {p.inputs["name"]: plain(p.inputs["insecureValue"]) for p in rec.by_type("aws:ssm/parameter:Parameter")}


def test_parameters_are_plain_settings_and_secret_arns(rec: Recording) -> None:
    params = parameters(rec)
    assert all(p.inputs["type"] == "String" for p in rec.by_type("aws:ssm/parameter:Parameter"))
    assert params["/sark/test/env/ENVIRONMENT"] == "production"
    assert params["/sark/test/env/DEBUG"] == "false"
    assert params["/sark/test/env/VERIFY_SSL"] == "true"
    assert params["/sark/test/env/CORS_ORIGINS"] == "https://sark.example.com"
    assert params["/sark/test/env/POSTGRES_HOST"] == "sark-db.c1.us-east-1.rds.amazonaws.com"
    assert params["/sark/test/env/POSTGRES_PORT"] == "5432"
    assert params["/sark/test/env/TIMESCALE_DB"] == "sark_audit"
    assert params["/sark/test/env/VALKEY_TLS"] == "true"
    assert params["/sark/test/env/SPLUNK_ENABLED"] == "true"
    assert params["/sark/test/env/DATADOG_ENABLED"] == "false"
    secret_params = {k.rsplit("/", 1)[-1]: v for k, v in params.items() if "/secret-arns/" in k}
    assert secret_params == SECRET_ARNS


def test_render_env_requires_exactly_what_the_stack_publishes(rec: Recording) -> None:
    module = load_render_env()
    published = {name.rsplit("/", 1)[-1] for name in parameters(rec) if "/env/" in name}
    secrets = {name.rsplit("/", 1)[-1] for name in parameters(rec) if "/secret-arns/" in name}
    assert set(module.REQUIRED_SETTINGS) <= published
    assert set(module.REQUIRED_SECRETS) <= secrets
    settings = {name.rsplit("/", 1)[-1]: value for name, value in parameters(rec).items() if "/env/" in name}
    assert set(module.required_names(settings)) <= published | secrets
    assert "SPLUNK_HEC_TOKEN" in module.required_names(settings)


# --- IAM ----------------------------------------------------------------------------------------------

def test_instance_policy_reads_only_this_stacks_secrets_and_parameters(rec: Recording) -> None:
    policy = json.loads(rec.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert set(statements) == {"ReadThisStacksParameters", "ReadThisStacksSecrets",
                               "DecryptThroughSecretsManagerAndSsmOnly"}
    assert all(s["Effect"] == "Allow" for s in statements.values())
    assert sorted(statements["ReadThisStacksSecrets"]["Resource"]) == sorted(SECRET_ARNS.values())
    assert statements["ReadThisStacksSecrets"]["Action"] == ["secretsmanager:GetSecretValue",
                                                              "secretsmanager:DescribeSecret"]
    assert statements["ReadThisStacksParameters"]["Resource"] == [
        "arn:aws:ssm:us-east-1:123456789012:parameter/sark/test",
        "arn:aws:ssm:us-east-1:123456789012:parameter/sark/test/*"]
    kms = statements["DecryptThroughSecretsManagerAndSsmOnly"]
    assert (kms["Action"], kms["Resource"]) == ("kms:Decrypt", KEY_ARN)
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": ["secretsmanager.us-east-1.amazonaws.com",
                                                                    "ssm.us-east-1.amazonaws.com"]}}
    assert not any("*" in r for s in statements.values()
                   for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
                   if not r.endswith("/sark/test/*"))


def test_managed_policies_for_ssm_and_the_cloudwatch_agent(rec: Recording) -> None:
    attached = {a.inputs["policyArn"] for a in rec.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert attached == {"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
                        "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"}
    role = rec.one("aws:iam/role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}


# --- the policy pack on the recording -------------------------------------------------------------------

def test_policy_pack_finds_nothing_mandatory(rec: Recording) -> None:
    report = evaluate(rec, [load_pack(ROOT / "policies")])
    # The Auto Scaling group's alarms are the Monitoring component's; the whole-stack plan checks them.
    found = [(v.policy, v.detail) for v in report.mandatory if v.policy != "aws-cloudwatch-require-sark-alarms"]
    assert found == []


# --- bad arguments ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "message"), [
    ({"secret_arns": {k: v for k, v in SECRET_ARNS.items() if k != "VALKEY_PASSWORD"}},
     "AppHosts: secret_arns lacks VALKEY_PASSWORD; the app needs SECRET_KEY, POSTGRES_PASSWORD, TIMESCALE_PASSWORD, "
     "VALKEY_PASSWORD, SPLUNK_HEC_TOKEN (checklist 2.1)"),
    ({"settings": AppSettings(cors_origins=("*",), splunk_hec_url="https://s:8088")},
     'AppHosts: cors_origins contains "*"; expected explicit trusted origins (checklist 3.1)'),
    ({"parameter_path": "/sark"},
     "app: parameter_path '/sark' is not allowed; expected a stack-specific path such as /sark/production"),
    ({"versions": {}}, "app: versions is empty; at least the current release needs hosts"),
])
def test_bad_arguments_are_named(record: Record, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(pulumi.RunError) as raised:
        record(lambda: AppHosts("app", args(**overrides)))
    assert str(raised.value) == message


# --- sark-render-env on the host (moto) --------------------------------------------------------------------

@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _host_config(tmp_path: Path, **overrides: Any) -> Path:
    config = {"region": "us-east-1", "parameterPath": "/sark/test", "envFile": str(tmp_path / ".env.production"),
              "owner": pwd.getpwuid(os.getuid()).pw_name, "waitSeconds": 0, "waitForDataStores": False, **overrides}
    path = tmp_path / "host.json"
    path.write_text(json.dumps(config))
    return path


def _publish(rec: Recording, ssm: Any, secrets: Any) -> None:
    arns = {}
    for name in SECRETS:
        value = f'value-of-{name}"with\\quote' if name == "SECRET_KEY" else f"value-of-{name}"
        arns[name] = secrets.create_secret(Name=f"sark-test/{name}", SecretString=value)["ARN"]
    for name, value in parameters(rec).items():
        key = name.rsplit("/", 1)[-1]
        ssm.put_parameter(Name=name, Type="String", Value=arns.get(key, value) if "/secret-arns/" in name else value)


def test_render_env_writes_the_service_environment(rec: Recording, tmp_path: Path, aws_env: None) -> None:
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    module = load_render_env()
    with mock_aws():
        ssm, secrets = boto3.client("ssm"), boto3.client("secretsmanager")
        _publish(rec, ssm, secrets)
        assert module.main([str(_host_config(tmp_path))], clients=(ssm, secrets)) == 0
    env_file = tmp_path / ".env.production"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dict(shlex.split(line)[0].split("=", 1) for line in env_file.read_text().splitlines())
    assert values["ENVIRONMENT"] == "production"
    assert values["DEBUG"] == "false"
    assert values["POSTGRES_HOST"] == "sark-db.c1.us-east-1.rds.amazonaws.com"
    assert values["POSTGRES_PASSWORD"] == "value-of-POSTGRES_PASSWORD"
    assert values["SECRET_KEY"] == 'value-of-SECRET_KEY"with\\quote'  # escaped and read back intact
    assert set(values) >= set(module.REQUIRED_SETTINGS) | set(module.REQUIRED_SECRETS)


def test_render_env_waits_then_gives_up_naming_what_is_missing(
        rec: Recording, tmp_path: Path, aws_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    module = load_render_env()
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    with mock_aws():
        ssm, secrets = boto3.client("ssm"), boto3.client("secretsmanager")
        _publish(rec, ssm, secrets)
        ssm.delete_parameter(Name="/sark/test/env/POSTGRES_HOST")
        code = module.main([str(_host_config(tmp_path, waitSeconds=100))], clients=(ssm, secrets), sleep=sleep,
                           clock=lambda: now[0])
    assert code == 1
    assert sleeps == [5.0, 10.0, 20.0, 40.0, 60.0]
    assert "giving up: waiting for parameters: POSTGRES_HOST" in capsys.readouterr().err
    assert not (tmp_path / ".env.production").exists()


def test_render_env_reports_unreachable_data_stores() -> None:
    module = load_render_env()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            dead = closed.getsockname()[1]
        values = {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(port), "TIMESCALE_HOST": "127.0.0.1",
                  "TIMESCALE_PORT": str(dead), "VALKEY_HOST": "127.0.0.1", "VALKEY_PORT": str(port)}
        assert module.unreachable(values, timeout=1) == [f"TIMESCALE_HOST=127.0.0.1:{dead}"]


def test_render_env_refuses_line_breaks() -> None:
    module = load_render_env()
    with pytest.raises(ValueError, match="value of SECRET_KEY contains a line break"):
        module.render({"SECRET_KEY": "a\nEVIL=1"})


def test_render_env_runs_on_the_hosts_python() -> None:
    # Ubuntu 22.04's system Python is 3.10: the helper must not need anything newer.
    result = subprocess.run([sys.executable, "-m", "py_compile", str(TEMPLATES / "render_env.py")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0
    source = (TEMPLATES / "render_env.py").read_text()
    assert "tomllib" not in source
    assert "ExceptionGroup" not in source


# --- CloudWatch agent, user data size ------------------------------------------------------------------

def test_cloudwatch_agent_is_configured_after_the_service_starts(record: Record) -> None:
    from components.app_hosts import CloudWatchAgentSetup

    agent = CloudWatchAgentSetup(config_parameter="AmazonCloudWatch-sark-test-monitoring-app",
                                 files={"/etc/rsyslog.d/30-sark.conf": ':programname, isequal, "sark" /var/log/x\n'})
    rec = record(lambda: AppHosts("app", args(cloudwatch_agent=agent)))
    config = cloud_config(rec.one("aws:ec2/launchTemplate:LaunchTemplate"))
    assert written(config, "/etc/rsyslog.d/30-sark.conf")["content"] == ':programname, isequal, "sark" /var/log/x\n'
    runcmd = config["runcmd"]
    start = runcmd.index(["systemctl", "enable", "--now", "sark.service"])
    assert runcmd[start + 1][0] == "curl"
    assert runcmd[start + 3] == ["systemctl", "restart", "rsyslog"]
    assert runcmd[-1] == ["/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl", "-a", "fetch-config",
                          "-m", "ec2", "-s", "-c", "ssm:AmazonCloudWatch-sark-test-monitoring-app"]


def test_user_data_over_the_limit_is_gzipped_and_still_readable() -> None:
    import gzip

    from components.app_hosts import encode_user_data

    small = "#cloud-config\n" + "a: b\n"
    assert base64.b64decode(encode_user_data(small)).decode() == small
    large = "#cloud-config\n" + "".join(f"k{i}: value-{i}\n" for i in range(2000))
    raw = base64.b64decode(encode_user_data(large))
    assert raw[:2] == b"\x1f\x8b"
    assert len(raw) <= 16384
    assert gzip.decompress(raw).decode() == large
