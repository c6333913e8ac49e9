"""stack_config: every bad value is refused with a message naming key, value and what is allowed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

import stack_config
from stack_config import ConfigError, StackConfig, parse_config

ROOT = Path(__file__).resolve().parent.parent

# The smallest valid production config: everything else takes the Pulumi.yaml defaults.
BASE = {
    "corsOrigins": '["https://sark.example.com"]',
    "domainName": "sark.example.com",
    "hostedZoneId": "Z0123456789ABCDEFGHIJ",
    "splunkHecUrl": "https://splunk.example.com:8088/services/collector",
    "appImageId": "ami-0fedcba9876543210",
    "timescaleImageId": "ami-0fedcba9876543210",
}


def parse(region: str | None = "us-east-1", **overrides: Any) -> StackConfig:
    raw = {**BASE, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in overrides.items()}}
    return parse_config(raw.get, project="sark-infra", stack="production", region=region)


def error_of(**overrides: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse(**overrides)
    return str(info.value)


def test_defaults_are_the_checklist_production_values() -> None:
    cfg = parse()
    assert cfg.is_production
    assert cfg.app.instance_type == "m6i.2xlarge"
    assert (cfg.app.instance.vcpus, cfg.app.instance.memory_gib) == (8, 32)
    assert cfg.app.workers == 17
    assert cfg.app.root_volume_gb == 500
    assert cfg.app.min_size == 2
    assert cfg.database.engine_version == "15"
    assert cfg.database.backup_retention_days == 30
    assert cfg.database.multi_az
    assert cfg.database.deletion_protection
    assert cfg.cache.engine == "valkey"
    assert cfg.network.az_count == 3
    assert cfg.app.admin_cidrs == ()


def test_config_is_frozen() -> None:
    cfg = parse()
    with pytest.raises(AttributeError):
        cfg.environment = "development"  # type: ignore[misc]


def test_workers_follow_the_checklist_formula_for_four_vcpus() -> None:
    assert parse(appInstanceType="m6i.xlarge").app.workers == 9


@pytest.mark.parametrize(("overrides", "message"), [
    ({"appInstanceType": "m6i.mega"},
     'sark-infra:appInstanceType: "m6i.mega" is not allowed; expected a known x86_64 instance type such as '
     "m6i.2xlarge (see stack_config.INSTANCE_TYPES)"),
    ({"appInstanceType": "m6i.large"},
     'sark-infra:appInstanceType: "m6i.large" is not allowed; expected at least 4 vCPU and 16 GiB (the checklist '
     "minimum); m6i.large has 2 vCPU and 8 GiB"),
    ({"timescaleInstanceType": "c6i.xlarge"},
     'sark-infra:timescaleInstanceType: "c6i.xlarge" is not allowed; expected at least 4 vCPU and 16 GiB (the '
     "checklist minimum); c6i.xlarge has 4 vCPU and 8 GiB"),
    ({"appRootVolumeGb": 50},
     "sark-infra:appRootVolumeGb: 50 is not allowed; expected a whole number from 100 to 16384"),
    ({"vpcCidr": "10.40.0.0/33"},
     'sark-infra:vpcCidr: "10.40.0.0/33" is not allowed; expected an IPv4 CIDR block such as 10.40.0.0/16 '
     "(host bits zero)"),
    ({"vpcCidr": "10.40.0.1/16"},
     'sark-infra:vpcCidr: "10.40.0.1/16" is not allowed; expected an IPv4 CIDR block such as 10.40.0.0/16 '
     "(host bits zero)"),
    ({"vpcCidr": "8.8.0.0/16"},
     'sark-infra:vpcCidr: "8.8.0.0/16" is not allowed; expected a private (RFC 1918) IPv4 block from /16 to /22'),
    ({"adminCidrs": ["203.0.113.0/33"]},
     'sark-infra:adminCidrs: "203.0.113.0/33" is not allowed; expected IPv4 or IPv6 CIDR blocks such as '
     "10.0.0.0/16 (host bits zero)"),
    ({"availabilityZoneCount": 1},
     "sark-infra:availabilityZoneCount: 1 is not allowed; expected a whole number from 2 to 4"),
    ({"corsOrigins": ["https://sark.example.com", "*"]},
     'sark-infra:corsOrigins: ["https://sark.example.com", "*"] is not allowed; expected explicit https origins '
     'in production, never "*" (checklist 3.1)'),
    ({"availabilityZoneCount": "three"},
     'sark-infra:availabilityZoneCount: "three" is not allowed; expected a whole number from 2 to 4'),
    ({"dbMultiAz": "yes"},
     'sark-infra:dbMultiAz: "yes" is not allowed; expected true or false'),
    ({"alarmCpuPercent": "high"},
     'sark-infra:alarmCpuPercent: "high" is not allowed; expected a number from 1 to 100'),
    ({"monitoringCidrs": "10.0.0.0/8"},
     'sark-infra:monitoringCidrs: "10.0.0.0/8" is not allowed; expected a list of strings, e.g. ["a", "b"]'),
    ({"dbBackupRetentionDays": 7},
     "sark-infra:dbBackupRetentionDays: 7 is not allowed; expected a whole number from 30 to 35"),
    ({"dbEngineVersion": "13"},
     'sark-infra:dbEngineVersion: "13" is not allowed; expected PostgreSQL 14 or newer, e.g. 15 or 15.7 '
     "(checklist 1.2)"),
    ({"dbDeletionProtection": False},
     "sark-infra:dbDeletionProtection: false is not allowed; expected true in production"),
    ({"cacheEngineVersion": "7.0"},
     'sark-infra:cacheEngineVersion: "7.0" is not allowed; expected valkey 7.2 or newer, as major.minor'),
    ({"timescaledbVersion": "2.9"},
     'sark-infra:timescaledbVersion: "2.9" is not allowed; expected TimescaleDB 2.11 or newer, e.g. 2.14 '
     "(checklist 1.2)"),
    ({"appMinSize": 1},
     "sark-infra:appMinSize: 1 is not allowed; expected a whole number from 2 to 20"),
    ({"logLevel": "DEBUG"},
     'sark-infra:logLevel: "DEBUG" is not allowed; expected one of INFO, WARNING'),
    ({"certificateArn": "arn:aws:iam::123456789012:server-certificate/x"},
     'sark-infra:certificateArn: "arn:aws:iam::123456789012:server-certificate/x" is not allowed; expected an '
     "ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)"),
    ({"flowLogRetentionDays": 45},
     "sark-infra:flowLogRetentionDays: 45 is not allowed; expected a CloudWatch Logs retention period: 30, 60, 90, "
     "120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653"),
    ({"environment": "prod"},
     'sark-infra:environment: "prod" is not allowed; expected one of production, staging, development'),
])
def test_bad_value_names_key_value_and_allowed(overrides: dict[str, Any], message: str) -> None:
    assert error_of(**overrides) == f"invalid stack configuration (1 value):\n  {message}"


def test_all_problems_are_reported_together() -> None:
    text = error_of(availabilityZoneCount=1, appRootVolumeGb=10)
    assert text.startswith("invalid stack configuration (2 values):")
    assert "sark-infra:availabilityZoneCount: 1" in text
    assert "sark-infra:appRootVolumeGb: 10" in text


def test_missing_region_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"aws:region: not set"):
        parse(region=None)


def test_non_production_may_relax_checklist_minimums() -> None:
    cfg = parse(environment="development", appMinSize=1, dbBackupRetentionDays=7, corsOrigins=["*"],
                logLevel="DEBUG", dbMultiAz=False)
    assert cfg.app.min_size == 1
    assert cfg.database.backup_retention_days == 7
    assert not cfg.database.multi_az


def test_existing_vpc_needs_two_subnets_per_tier() -> None:
    text = error_of(existingVpcId="vpc-0123456789abcdef0", existingPublicSubnetIds=["subnet-0123456789abcdef0"],
                    existingAppSubnetIds=["subnet-0123456789abcdef1", "subnet-0123456789abcdef2"],
                    existingDataSubnetIds=["subnet-0123456789abcdef3", "subnet-0123456789abcdef4"])
    assert 'sark-infra:existingPublicSubnetIds: ["subnet-0123456789abcdef0"] is not allowed' in text


def test_existing_vpc_is_accepted() -> None:
    cfg = parse(existingVpcId="vpc-0123456789abcdef0", canaryCidrs=["198.51.100.0/24"],
                existingPublicSubnetIds=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                existingAppSubnetIds=["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"],
                existingDataSubnetIds=["subnet-0123456789abcdef4", "subnet-0123456789abcdef5"])
    assert cfg.network.existing is not None
    assert cfg.network.existing.vpc_id == "vpc-0123456789abcdef0"


def test_config_error_is_a_clean_pulumi_run_error() -> None:
    # RunError makes the Pulumi CLI print only the message, without a stack trace.
    assert issubclass(ConfigError, pulumi.RunError)


def test_pulumi_yaml_declares_every_key_with_its_default() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    read = stack_config.declared_defaults()
    assert set(declared) == set(read)
    for key, default in read.items():
        entry = declared[key]
        assert entry["description"], key
        expected = "" if default is None else default
        assert entry["default"] == expected, key
        kind = {bool: "boolean", int: "integer", float: "integer", list: "array", str: "string"}[type(expected)]
        assert entry["type"] == kind, key


def test_production_stack_file_is_valid_and_has_no_secrets() -> None:
    stack = yaml.safe_load((ROOT / "Pulumi.production.yaml").read_text())["config"]
    raw = {k.split(":", 1)[1]: v if isinstance(v, str) else json.dumps(v)
           for k, v in stack.items() if k.startswith("sark-infra:")}
    cfg = parse_config(raw.get, project="sark-infra", stack="production", region=stack["aws:region"])
    assert cfg.is_production
    assert "aws:defaultTags" in stack
    assert not any(isinstance(v, dict) and "secure" in v for v in stack.values())


# --- placeholders: fine for a preview, refused for an update ------------------------------------

REAL = {"corsOrigins": '["https://sark.acme-corp.io"]', "domainName": "sark.acme-corp.io",
        "hostedZoneId": "Z04417632ZX9TQJ5JH1RV", "splunkHecUrl": "https://splunk.acme-corp.io:8088/services/collector",
        "sarkRepositoryUrl": "https://github.com/acme-corp/sark.git"}


def test_the_production_stack_file_lists_each_example_value() -> None:
    stack = yaml.safe_load((ROOT / "Pulumi.production.yaml").read_text())["config"]
    raw = {k.split(":", 1)[1]: v if isinstance(v, str) else json.dumps(v)
           for k, v in stack.items() if k.startswith("sark-infra:")}
    cfg = parse_config(raw.get, project="sark-infra", stack="production", region=stack["aws:region"])
    assert sorted((p.key.split(":", 1)[1], p.value) for p in cfg.placeholders) == sorted([
        ("hostedZoneId", "Z0123456789ABCDEFGHIJ"),
        ("domainName", "sark.example.com"),
        ("corsOrigins", "https://sark.example.com"),
        ("sarkRepositoryUrl", "https://github.com/your-org/sark.git"),
        ("splunkHecUrl", "https://splunk.example.com:8088/services/collector"),
        ("alertEmails", "sark-oncall@example.com"),
        ("appImageId", "ami-0123456789abcdef0"),
        ("timescaleImageId", "ami-0123456789abcdef0"),
    ])


def test_real_values_are_no_placeholders() -> None:
    assert parse(**REAL).placeholders == ()


def test_a_preview_warns_and_an_update_refuses_with_every_placeholder_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warnings.append(message))
    cfg = parse(**{**REAL, "domainName": "sark.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"})
    stack_config.check_placeholders(cfg, dry_run=True)  # a preview goes on
    assert warnings == [
        'sark-infra:hostedZoneId: "Z0123456789ABCDEFGHIJ" is the repository\'s example hosted zone id; set before '
        "`pulumi up`",
        'sark-infra:domainName: "sark.example.com" is a domain reserved for examples (RFC 2606); set before '
        "`pulumi up`"]
    listed = list(warnings)
    with pytest.raises(stack_config.PlaceholderError) as refused:
        stack_config.check_placeholders(cfg, dry_run=False)
    assert str(refused.value) == (
        "refusing to update: 2 config values are examples; set each one (`pulumi config set <key> <value>`) and run "
        "again:\n  " + "\n  ".join(listed))
    assert isinstance(refused.value, pulumi.RunError)  # the CLI prints the message, no traceback
    stack_config.check_placeholders(parse(**REAL), dry_run=False)  # nothing to refuse


def test_the_program_refuses_a_real_update_before_creating_anything() -> None:
    from sarkops.plan.project import load_project, resolve_config
    from sarkops.plan.runtime import run_program

    project = load_project(ROOT)
    config = resolve_config(project, "production", [])
    with pytest.raises(Exception, match=r"refusing to update: 8 config values are examples") as refused:
        run_program(ROOT, project=project.name, stack="production", config=config.values,
                    secret_keys=config.secret_keys, preview=False)
    assert "sark-infra:sarkRepositoryUrl" in str(refused.value)


# --- pinned images, routes, canary sources, scaling -----------------------------------------------

def test_image_ids_are_required_and_checked() -> None:
    raw = {k: v for k, v in BASE.items() if k != "appImageId"}
    with pytest.raises(ConfigError) as missing:
        parse_config(raw.get, project="sark-infra", stack="production", region="us-east-1")
    assert ("sark-infra:appImageId: not set; expected the pinned Ubuntu 22.04 amd64 AMI id of the region, e.g. "
            "`pulumi config set appImageId $(python scripts/newest_ami.py --region <region>)`") in str(missing.value)
    assert error_of(timescaleImageId="ubuntu-jammy") == (
        'invalid stack configuration (1 value):\n  sark-infra:timescaleImageId: "ubuntu-jammy" is not allowed; '
        "expected an AMI id such as ami-0123456789abcdef0 (ami- and 8 or 17 hex digits)")
    assert parse().app.image_id == "ami-0fedcba9876543210"


def test_private_routes_are_parsed() -> None:
    cfg = parse(privateRoutes=["10.60.0.0/24 via pcx-0123456789abcdef0", "172.16.0.0/12 via tgw-0123456789abcdef0"])
    assert cfg.network.private_routes == (("10.60.0.0/24", "pcx-0123456789abcdef0"),
                                          ("172.16.0.0/12", "tgw-0123456789abcdef0"))


@pytest.mark.parametrize("entry", ["10.60.0.0/24 pcx-0123456789abcdef0", "10.60.0.0/24 via igw-0123456789abcdef0",
                                   "10.40.1.0/24 via pcx-0123456789abcdef0", "0.0.0.0/0 via pcx-0123456789abcdef0",
                                   "10.60.0.1/24 via pcx-0123456789abcdef0", "10.60.0.0/24 via pcx-xyz"])
def test_bad_private_routes_are_named(entry: str) -> None:
    text = error_of(privateRoutes=[entry])
    assert text.startswith(f"invalid stack configuration (1 value):\n  sark-infra:privateRoutes: {json.dumps(entry)} "
                           'is not allowed; expected entries like "10.60.0.0/16 via pcx-0123456789abcdef0"')


def test_canary_cidrs_at_most_four_and_required_with_an_existing_vpc() -> None:
    assert parse(canaryCidrs=["198.51.100.0/24"]).load_balancer.canary_cidrs == ("198.51.100.0/24",)
    assert "sark-infra:canaryCidrs: " in error_of(canaryCidrs=[f"198.51.100.{i}/32" for i in range(5)])
    text = error_of(existingVpcId="vpc-0123456789abcdef0",
                    existingPublicSubnetIds=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                    existingAppSubnetIds=["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"],
                    existingDataSubnetIds=["subnet-0123456789abcdef4", "subnet-0123456789abcdef5"])
    assert "sark-infra:canaryCidrs: [] is not allowed; expected at least one CIDR with existingVpcId" in text


def test_scaling_targets_have_safe_defaults_and_bounds() -> None:
    cfg = parse()
    assert (cfg.app.scaling_cpu_percent, cfg.app.scaling_requests_per_target) == (60, 1000)
    assert "sark-infra:appScalingCpuPercent: 95 is not allowed" in error_of(appScalingCpuPercent=95)
    assert parse().load_balancer.waf_rate_limit == 2000
    assert "sark-infra:wafRateLimitPerIp: 50 is not allowed" in error_of(wafRateLimitPerIp=50)
