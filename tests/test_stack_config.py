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
    cfg = parse(existingVpcId="vpc-0123456789abcdef0",
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
