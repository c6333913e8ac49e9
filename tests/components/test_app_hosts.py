"""AppHosts: launch template, Auto Scaling group, cloud-init, systemd unit, role and parameters.

Everything the hosts get is parsed the way the host parses it: the user data with base64 +
yaml.safe_load (cloud-init), the unit with configparser, host.json with json, the IAM policy
as JSON. sark-render-env itself runs against moto's SSM and Secrets Manager.
"""

from __future__ import annotations

import base64
import configparser
import gzip
import importlib.util
import json
import os
import pwd
import random
import re
import shlex
import shutil
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
from tests.conftest import record_program

Record = Callable[..., Recording]
ROOT = Path(__file__).resolve().parents[2]

SECRETS = ("SECRET_KEY", "POSTGRES_PASSWORD", "TIMESCALE_PASSWORD", "VALKEY_PASSWORD", "SPLUNK_HEC_TOKEN")
SECRET_ARNS = {name: f"arn:aws:secretsmanager:us-east-1:123456789012:secret:sark-test/{name}-AbCdEf"
               for name in SECRETS}
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
TG_V1 = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/sark-v0-1-0/0123456789abcdef"
TG_V2 = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/sark-v0-2-0/fedcba9876543210"
IMAGE_ID = "ami-0fedcba9876543210"


def args(**overrides: Any) -> AppHostsArgs:
    values: dict[str, Any] = {
        "region": "us-east-1", "stack": "test", "parameter_path": "/sark/test",
        "subnet_ids": ["subnet-0aaa", "subnet-0bbb"], "vpc_cidr": "10.40.0.0/16", "security_group_id": "sg-0app",
        "kms_key_arn": KEY_ARN, "repository_url": "https://github.com/your-org/sark.git",
        "image_id": IMAGE_ID,
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


@pytest.fixture(scope="module")
def rec() -> Recording:
    """The component with the default args, recorded once for the tests that only read it."""
    return record_program(lambda: AppHosts("app", args()), {"aws:region": "us-east-1"})


def user_data(template: RecordedResource) -> str:
    raw = base64.b64decode(template.inputs["userData"])
    assert raw[:2] == b"\x1f\x8b"  # always gzip: cloud-init decompresses it
    return gzip.decompress(raw).decode()


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


def test_image_is_the_pinned_id_checked_to_be_canonical_ubuntu_jammy(rec: Recording) -> None:
    # A pinned image: a new Canonical release must not roll the hosts on the next update.
    ((_token, call),) = [(t, a) for t, a in rec.invokes if t == "aws:ec2/getAmi:getAmi"]
    assert call["owners"] == [CANONICAL_OWNER_ID]
    assert not call.get("mostRecent")
    assert {"name": "image-id", "values": [IMAGE_ID]} in call["filters"]
    assert {"name": "name", "values": [UBUNTU_JAMMY_AMD64]} in call["filters"]
    template = rec.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["imageId"] == IMAGE_ID


def test_a_malformed_image_id_is_refused(record: Record) -> None:
    with pytest.raises(pulumi.RunError, match=r"app: image_id 'ubuntu-22.04' is not allowed; expected an AMI id"):
        record(lambda: AppHosts("app", args(image_id="ubuntu-22.04")))


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
    assert runcmd[-4:] == [["/usr/local/sbin/sark-install", "https://github.com/your-org/sark.git", "v0.1.0"],
                           ["systemctl", "daemon-reload"],
                           ["systemctl", "enable", "sark.service", "sark-env-report.timer"],
                           ["systemctl", "start", "--no-block", "sark.service", "sark-env-report.timer"]]


def test_the_service_start_never_blocks_or_fails_cloud_init(rec: Recording) -> None:
    # `systemctl enable --now` waits for ExecStartPre (up to waitSeconds for the data stores and
    # secrets); under `set -e` its failure aborted cloud-init on a first deployment.
    runcmd = cloud_config(rec.one("aws:ec2/launchTemplate:LaunchTemplate"))["runcmd"]
    starts = [c for c in runcmd if isinstance(c, list) and c[:2] == ["systemctl", "start"]]
    assert starts == [["systemctl", "start", "--no-block", "sark.service", "sark-env-report.timer"]]
    assert not [c for c in runcmd if isinstance(c, list) and "--now" in c]


def test_the_report_timer_units_parse(rec: Recording) -> None:
    config = cloud_config(rec.one("aws:ec2/launchTemplate:LaunchTemplate"))
    units = {}
    for suffix in ("service", "timer"):
        unit = configparser.RawConfigParser(interpolation=None, strict=True)
        unit.optionxform = str  # type: ignore[assignment,method-assign]
        unit.read_string(written(config, f"/etc/systemd/system/sark-env-report.{suffix}")["content"])
        units[suffix] = unit
    assert units["service"]["Service"]["Type"] == "oneshot"
    assert shlex.split(units["service"]["Service"]["ExecStart"]) == ["/usr/local/sbin/sark-render-env", "--report"]
    assert units["timer"]["Timer"]["OnUnitActiveSec"] == "5min"
    assert units["timer"]["Install"]["WantedBy"] == "timers.target"


def test_apt_retries_downloads_before_the_package_install(rec: Recording) -> None:
    config = cloud_config(rec.one("aws:ec2/launchTemplate:LaunchTemplate"))
    entry = written(config, "/etc/apt/apt.conf.d/80-sark-retries")
    assert entry["content"] == 'Acquire::Retries "10";\n'


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
                    "owner": "sark", "waitSeconds": 900, "waitForDataStores": True,
                    "statusFile": "/run/sark-env-status.json"}


def test_host_config_names_the_metric_dimension_when_a_stack_label_is_given(record: Record) -> None:
    rec = record(lambda: AppHosts("app", args(metrics_stack_label="sark-test")))
    host = json.loads(written(cloud_config(rec.one("aws:ec2/launchTemplate:LaunchTemplate")),
                              "/etc/sark/host.json")["content"])
    assert host["metrics"] == {"namespace": "SARK/App", "dimensions": {"Stack": "sark-test"}}


def test_user_data_fits_and_holds_no_secret_or_endpoint(rec: Recording) -> None:
    template = rec.one("aws:ec2/launchTemplate:LaunchTemplate")
    text = user_data(template)
    # Compressed, with 4 KiB of EC2's 16,384 bytes left over for what comes next.
    assert len(base64.b64decode(template.inputs["userData"])) <= 16384 - 4096
    # The hosts learn endpoints and secret ARNs from parameters at start, never from user data.
    for value in (*SECRET_ARNS.values(), "sark-db.c1.us-east-1.rds.amazonaws.com", "10.40.128.10"):
        assert value not in text


def test_shipped_shell_scripts_parse() -> None:
    for script in ("install_sark.sh", "migrate.sh", "install_agent.sh"):
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
    policy = json.loads(rec.one("aws:iam/rolePolicy:RolePolicy", "app-read-config").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert set(statements) == {"ReadThisStacksParameters", "ReadThisStacksSecrets", "PublishOwnMetrics",
                               "DecryptThroughSecretsManagerAndSsmOnly"}
    metrics = statements.pop("PublishOwnMetrics")
    assert (metrics["Action"], metrics["Resource"]) == ("cloudwatch:PutMetricData", "*")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "SARK/App"}}
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


def test_ssm_agent_without_account_wide_parameter_reads(rec: Recording) -> None:
    # AmazonSSMManagedInstanceCore grants ssm:GetParameter* on "*": every parameter in the account.
    attached = {a.inputs["policyArn"] for a in rec.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert attached == {"arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"}
    agent = json.loads(rec.one("aws:iam/rolePolicy:RolePolicy", "app-ssm-agent").inputs["policy"])
    actions = {a for s in agent["Statement"] for a in s["Action"]}
    # Session Manager and Run Command keep working...
    assert {"ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel", "ssmmessages:OpenDataChannel",
            "ec2messages:GetMessages", "ec2messages:SendReply"} <= actions
    # ...and no statement of the role lets the host read parameters outside this stack's path.
    for policy in rec.by_type("aws:iam/rolePolicy:RolePolicy"):
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(a.startswith("ssm:GetParameter") or a == "ssm:*" for a in listed):
                resource = statement["Resource"]
                resources = resource if isinstance(resource, list) else [resource]
                assert all(r.startswith("arn:aws:ssm:us-east-1:123456789012:parameter/sark/test") for r in resources)
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

def test_cloudwatch_agent_is_installed_before_the_app_and_cannot_stop_it(record: Record) -> None:
    from components.app_hosts import CloudWatchAgentSetup

    agent = CloudWatchAgentSetup(config_parameter="AmazonCloudWatch-sark-test-monitoring-app",
                                 files={"/etc/rsyslog.d/30-sark.conf": ':programname, isequal, "sark" /var/log/x\n'})
    rec = record(lambda: AppHosts("app", args(cloudwatch_agent=agent)))
    config = cloud_config(rec.one("aws:ec2/launchTemplate:LaunchTemplate"))
    assert written(config, "/etc/rsyslog.d/30-sark.conf")["content"] == ':programname, isequal, "sark" /var/log/x\n'
    assert written(config, "/usr/local/sbin/sark-install-agent")["content"] == (
        TEMPLATES / "install_agent.sh").read_text()
    runcmd = config["runcmd"]
    install = runcmd.index(["/usr/local/sbin/sark-install", "https://github.com/your-org/sark.git", "v0.1.0"])
    (agent_step,) = [i for i, c in enumerate(runcmd) if isinstance(c, list) and "sark-install-agent" in " ".join(c)]
    assert agent_step < install
    shell = runcmd[agent_step]
    assert shell[:2] == ["sh", "-c"]
    command, fallback = shell[2].split(" || ", 1)
    words = shlex.split(command)
    assert words[1:] == ["/usr/local/sbin/sark-install-agent", "AmazonCloudWatch-sark-test-monitoring-app", "rsyslog"]
    assert words[0].startswith("SARK_AGENT_PACKAGE_URL=https://amazoncloudwatch-agent.s3.amazonaws.com/")
    assert shlex.split(fallback)[0] == "echo"  # a failed agent setup is logged; the boot goes on


def test_user_data_is_gzipped_and_a_too_large_one_is_refused() -> None:
    from components.app_hosts import encode_user_data

    small = "#cloud-config\n" + "a: b\n"
    raw = base64.b64decode(encode_user_data(small))
    assert gzip.decompress(raw).decode() == small
    assert encode_user_data(small) == encode_user_data(small)  # no timestamp: same bytes every run
    noise = "#cloud-config\n" + base64.b64encode(random.Random(0).randbytes(16000)).decode()  # noqa: S311 (noise)
    with pytest.raises(pulumi.RunError, match=r"user data is \d+ bytes compressed; EC2 allows 16384 and the stack "
                                              r"keeps 4096 free"):
        encode_user_data(noise)


# --- the boot chain on the host: a missing out-of-band token, the install marker, migrations -----------

def _publish_without_token(rec: Recording, ssm: Any, secrets: Any) -> None:
    """As after a first `pulumi up`: the SIEM token's secret exists but nobody has put a value in."""
    arns = {name: secrets.create_secret(Name=f"sark-test/{name}", SecretString=f"value-of-{name}")["ARN"]
            for name in SECRETS if name != "SPLUNK_HEC_TOKEN"}
    arns["SPLUNK_HEC_TOKEN"] = secrets.create_secret(Name="sark-test/SPLUNK_HEC_TOKEN")["ARN"]
    for name, value in parameters(rec).items():
        key = name.rsplit("/", 1)[-1]
        ssm.put_parameter(Name=name, Type="String", Value=arns.get(key, value) if "/secret-arns/" in name else value)


def _env_file(path: Path) -> dict[str, str]:
    return dict(shlex.split(line)[0].split("=", 1) for line in path.read_text().splitlines())


def _metric_values(cloudwatch: Any) -> list[float]:
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace="SARK/App", MetricName="missing_external_secrets", Dimensions=[{"Name": "Stack", "Value": "sark-t"}],
        StartTime=now - datetime.timedelta(hours=1), EndTime=now + datetime.timedelta(minutes=5), Period=60,
        Statistics=["Maximum"])["Datapoints"]
    return sorted(p["Maximum"] for p in points)


class _Recorder:
    """A CloudWatch client that also remembers each value published, in order."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.values: list[float] = []

    def put_metric_data(self, **kwargs: Any) -> Any:
        self.values += [d["Value"] for d in kwargs["MetricData"]]
        return self.client.put_metric_data(**kwargs)


def test_a_siem_token_without_value_starts_sark_with_siem_off_and_says_so(
        rec: Recording, tmp_path: Path, aws_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    module = load_render_env()
    sleeps: list[float] = []
    config = _host_config(tmp_path, waitSeconds=900, statusFile=str(tmp_path / "status.json"),
                          metrics={"namespace": "SARK/App", "dimensions": {"Stack": "sark-t"}})
    with mock_aws():
        ssm, secrets, cloudwatch = boto3.client("ssm"), boto3.client("secretsmanager"), boto3.client("cloudwatch")
        _publish_without_token(rec, ssm, secrets)
        code = module.main([str(config)], clients=(ssm, secrets, cloudwatch), sleep=sleeps.append)
        published = _metric_values(cloudwatch)
    assert code == 0
    assert sleeps == []  # no waiting for a value nobody is about to put in
    values = _env_file(tmp_path / ".env.production")
    assert values["SPLUNK_ENABLED"] == "false"
    assert "SPLUNK_HEC_TOKEN" not in values
    assert values["POSTGRES_PASSWORD"] == "value-of-POSTGRES_PASSWORD"
    assert json.loads((tmp_path / "status.json").read_text()) == {"missingSecrets": ["SPLUNK_HEC_TOKEN"]}
    assert published == [1.0]
    assert "SPLUNK_HEC_TOKEN has no value yet; starting with SPLUNK_ENABLED=false" in capsys.readouterr().err


def test_a_required_secret_without_value_still_stops_the_service(rec: Recording, tmp_path: Path,
                                                                 aws_env: None) -> None:
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    module = load_render_env()
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with mock_aws():
        ssm, secrets = boto3.client("ssm"), boto3.client("secretsmanager")
        _publish(rec, ssm, secrets)
        empty = secrets.create_secret(Name="sark-test/empty-key")["ARN"]
        ssm.put_parameter(Name="/sark/test/secret-arns/SECRET_KEY", Type="String", Value=empty, Overwrite=True)
        code = module.main([str(_host_config(tmp_path, waitSeconds=30))], clients=(ssm, secrets), sleep=sleep,
                           clock=lambda: now[0])
    assert code == 1
    assert not (tmp_path / ".env.production").exists()


def test_the_report_timer_publishes_until_a_restart_picks_the_token_up(
        rec: Recording, tmp_path: Path, aws_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    module = load_render_env()
    config = _host_config(tmp_path, statusFile=str(tmp_path / "status.json"),
                          metrics={"namespace": "SARK/App", "dimensions": {"Stack": "sark-t"}})
    with mock_aws():
        ssm, secrets = boto3.client("ssm"), boto3.client("secretsmanager")
        cloudwatch = _Recorder(boto3.client("cloudwatch"))
        _publish_without_token(rec, ssm, secrets)
        clients = (ssm, secrets, cloudwatch)
        assert module.main([str(config)], clients=clients) == 0
        assert module.main(["--report", str(config)], clients=clients) == 0
        capsys.readouterr()
        # The operator sets the token: the timer says a restart will use it, and still reports the
        # host as running without it until then.
        secrets.put_secret_value(SecretId="sark-test/SPLUNK_HEC_TOKEN", SecretString="hec-token")
        assert module.main(["--report", str(config)], clients=clients) == 0
        hint = capsys.readouterr().err
        assert module.main([str(config)], clients=clients) == 0  # the restart
        assert module.main(["--report", str(config)], clients=clients) == 0
        stored = _metric_values(cloudwatch.client)
    assert "SPLUNK_HEC_TOKEN has a value now; restart sark.service to use it" in hint
    # start, timer, timer (token set but not in use yet), restart, timer
    assert cloudwatch.values == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert stored == [1.0]  # what CloudWatch keeps here: the minute's maximum
    assert json.loads((tmp_path / "status.json").read_text()) == {"missingSecrets": []}
    values = _env_file(tmp_path / ".env.production")
    assert (values["SPLUNK_ENABLED"], values["SPLUNK_HEC_TOKEN"]) == ("true", "hec-token")


def _fake_bin(tmp_path: Path, scripts: dict[str, str]) -> dict[str, str]:
    """A PATH whose first directory holds the given fake commands."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for command, body in scripts.items():
        path = bin_dir / command
        path.write_text("#!/bin/bash\n" + body)
        path.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def _migrate_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    app = tmp_path / "app"
    (app / "venv" / "bin").mkdir(parents=True)
    (app / "migrations" / "timescale").mkdir(parents=True)
    (app / "migrations" / "timescale" / "001_hypertable.sql").write_text("SELECT 1;\n")
    log = tmp_path / "calls.log"
    for tool in ("alembic",):
        script = app / "venv" / "bin" / tool
        script.write_text(f'#!/bin/bash\necho "{tool} $*" >> {log}\n')
        script.chmod(0o755)
    render = tmp_path / "render-env"
    render.write_text(f'#!/bin/bash\necho render-env >> {log}\n')
    render.chmod(0o755)
    # systemd-run: drop its options, run the command (as this user), like the transient unit would.
    env = _fake_bin(tmp_path, {
        "systemd-run": 'while [[ "$1" == --* ]]; do shift; done\nexec "$@"\n',
        "psql": f'echo "psql $*" >> {log}\n',
    })
    return {**env, "SARK_APP_DIR": str(app), "SARK_INSTALL_MARKER": str(tmp_path / "installed"),
            "SARK_INSTALL_FAILED_MARKER": str(tmp_path / "failed"), "SARK_RENDER_ENV": str(render),
            "TIMESCALE_HOST": "ts", "TIMESCALE_PORT": "5432", "TIMESCALE_USER": "sark", "TIMESCALE_DB": "sark_audit",
            **extra}


def _run_migrate(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(TEMPLATES / "migrate.sh"), *argv], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_migrate_waits_for_the_install_marker_not_for_cloud_init(tmp_path: Path) -> None:
    env = _migrate_env(tmp_path, SARK_INSTALL_WAIT_SECONDS="15")
    # A fake sleep that only logs: the test sees the polling without waiting 15 s for it.
    slept = tmp_path / "slept.log"
    _fake_bin(tmp_path, {"sleep": f'echo "$*" >> {slept}\n'})  # beside the fakes already on env's PATH
    code = [line for line in (TEMPLATES / "migrate.sh").read_text().splitlines() if not line.lstrip().startswith("#")]
    assert [line for line in code if "cloud-init status" in line] == []
    missing = _run_migrate(env)
    assert missing.returncode == 1
    assert "no install marker" in missing.stderr
    assert "after 15s" in missing.stderr
    assert slept.read_text().splitlines() == ["5", "5", "5"]  # polled every 5 s until the limit
    assert not (tmp_path / "calls.log").exists()  # nothing migrated

    (tmp_path / "installed").write_text("release=v0.1.0\ncommit=abc123\n")
    done = _run_migrate(env, "v0.1.0")
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls[:3] == ["render-env", "alembic upgrade head", "alembic current"]
    assert calls[3].startswith("psql -X -q -v ON_ERROR_STOP=1 -h ts -p 5432 -U sark -d sark_audit -f ")
    assert "migrations complete" in done.stdout


def test_migrate_stops_at_once_on_a_failed_install_or_another_release(tmp_path: Path) -> None:
    env = _migrate_env(tmp_path, SARK_INSTALL_WAIT_SECONDS="600")
    (tmp_path / "failed").write_text("release=v0.1.0\nstatus=128\ncommand=git fetch\n")
    failed = _run_migrate(env)
    assert failed.returncode == 1
    assert "the SARK install failed on this host" in failed.stderr
    assert "command=git fetch" in failed.stderr
    (tmp_path / "failed").unlink()
    (tmp_path / "installed").write_text("release=v0.1.0\ncommit=abc123\n")
    other = _run_migrate(env, "v0.2.0")
    assert other.returncode == 1
    assert "this host runs release v0.1.0, not v0.2.0" in other.stderr


def _install_env(tmp_path: Path, *, git_failures: int) -> dict[str, str]:
    # A real git repository to fetch from; a fake python that makes a venv with a fake pip.
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "pyproject.toml").write_text("[project]\nname = 'sark'\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q",
                    "-m", "release"], check=True)
    subprocess.run(["git", "-C", str(repo), "tag", "v0.1.0"], check=True)
    counter = tmp_path / "git-failures"
    counter.write_text(str(git_failures))
    real_git = shutil.which("git")
    env = _fake_bin(tmp_path, {
        # git fetch fails the first N times, as it does while the NAT route is not there yet.
        "git": f'if [ "$3" = fetch ] && [ "$(cat {counter})" -gt 0 ]; then\n'
               f'  echo $(( $(cat {counter}) - 1 )) > {counter}; echo "fatal: unable to access" >&2; exit 128\n'
               f'fi\nexec {real_git} "$@"\n',
        "fake-python": 'mkdir -p "$3/bin"\nfor tool in pip python; do\n'
                       '  printf "#!/bin/bash\\nexit 0\\n" > "$3/bin/$tool"; chmod +x "$3/bin/$tool"\ndone\n',
        "id": "exit 0\n", "chown": "exit 0\n", "sleep": "exit 0\n",
        "install": 'mkdir -p "${@: -1}"\n',
    })
    return {**env, "SARK_APP_DIR": str(tmp_path / "opt-sark"), "SARK_PYTHON": "fake-python",
            "SARK_INSTALL_MARKER": str(tmp_path / "marker" / "installed"),
            "SARK_INSTALL_FAILED_MARKER": str(tmp_path / "marker" / "failed"), "SARK_RETRY_ATTEMPTS": "3"}


def test_install_retries_network_steps_then_writes_the_marker(tmp_path: Path) -> None:
    env = _install_env(tmp_path, git_failures=2)
    result = subprocess.run(["bash", str(TEMPLATES / "install_sark.sh"), str(tmp_path / "repo"), "v0.1.0"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("attempt") == 2
    marker = dict(line.split("=", 1) for line in (tmp_path / "marker" / "installed").read_text().splitlines())
    assert marker["release"] == "v0.1.0"
    assert re.fullmatch(r"[0-9a-f]{40}", marker["commit"])
    assert not (tmp_path / "marker" / "failed").exists()


def test_install_that_keeps_failing_leaves_the_failure_marker(tmp_path: Path) -> None:
    env = _install_env(tmp_path, git_failures=5)
    result = subprocess.run(["bash", str(TEMPLATES / "install_sark.sh"), str(tmp_path / "repo"), "v0.1.0"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "giving up after 3 attempts" in result.stderr
    failed = (tmp_path / "marker" / "failed").read_text()
    assert "release=v0.1.0" in failed
    assert "fetch" in failed
    assert not (tmp_path / "marker" / "installed").exists()


# --- scaling and the route out ------------------------------------------------------------------------

def test_target_tracking_scaling_on_cpu_and_requests_per_target(record: Record) -> None:
    from components.app_hosts import AppScaling

    scaling = AppScaling(load_balancer_arn_suffix="app/sark-lb/0123",
                         target_group_arn_suffixes={"v0.1.0": "targetgroup/sark-v0-1-0/4567"},
                         cpu_target_percent=55, requests_per_target=800)
    rec = record(lambda: AppHosts("app", args(scaling=scaling)))
    group = rec.one("aws:autoscaling/group:Group")
    assert (group.inputs["minSize"], group.inputs["maxSize"]) == (2, 4)
    assert group.ignore_changes == ["desiredCapacity"]  # the policies own the size between min and max
    policies = {p.name: p.inputs for p in rec.by_type("aws:autoscaling/policy:Policy")}
    assert set(policies) == {"app-v0-1-0-cpu-scaling", "app-v0-1-0-requests-scaling"}
    for policy in policies.values():
        assert policy["autoscalingGroupName"] == group.outputs["name"]
        assert policy["policyType"] == "TargetTrackingScaling"
    cpu = policies["app-v0-1-0-cpu-scaling"]["targetTrackingConfiguration"]
    assert cpu == {"predefinedMetricSpecification": {"predefinedMetricType": "ASGAverageCPUUtilization"},
                   "targetValue": 55}
    requests = policies["app-v0-1-0-requests-scaling"]["targetTrackingConfiguration"]
    assert requests["predefinedMetricSpecification"] == {
        "predefinedMetricType": "ALBRequestCountPerTarget",
        "resourceLabel": "app/sark-lb/0123/targetgroup/sark-v0-1-0/4567"}
    assert requests["targetValue"] == 800


def test_without_scaling_the_size_stays_under_pulumis_control(rec: Recording) -> None:
    assert rec.by_type("aws:autoscaling/policy:Policy") == []
    assert not rec.one("aws:autoscaling/group:Group").ignore_changes


def test_groups_wait_for_the_route_out(record: Record) -> None:
    import pulumi_aws as aws

    def program() -> None:
        route = aws.ec2.Route("nat-route", route_table_id="rtb-0123", destination_cidr_block="0.0.0.0/0",
                              nat_gateway_id="nat-0123")
        AppHosts("app", args(route_out=[route]))

    rec = record(program)
    route = rec.one("aws:ec2/route:Route")
    assert route.urn in rec.one("aws:autoscaling/group:Group").dependencies
