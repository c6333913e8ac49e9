"""EC2 rules: compliant instance and launch template, one mutated property, the exact message."""

from __future__ import annotations

import base64
import copy
import gzip
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from sark_policies import ec2
from tests.policies.helpers import UNKNOWN, by_name, check_resource

INSTANCE = ec2.INSTANCE
LT = ec2.LAUNCH_TEMPLATE
LC = ec2.LAUNCH_CONFIGURATION
CLOUD_CONFIG = "#cloud-config\nruncmd:\n  - [systemctl, enable, --now, sark.service]\n"


def instance() -> dict[str, Any]:
    return {
        "ami": "ami-0123", "instanceType": "m6i.xlarge",
        "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1, "httpEndpoint": "enabled"},
        "associatePublicIpAddress": False,
        "rootBlockDevice": {"encrypted": True, "volumeSize": 100, "volumeType": "gp3"},
        "ebsBlockDevices": [{"deviceName": "/dev/sdf", "encrypted": True}],
        "userData": CLOUD_CONFIG,
        "iamInstanceProfile": "timescale-profile",
        "disableApiTermination": True,
        "monitoring": True,
        "tags": {"sark:role": "timescale"},
    }


def template() -> dict[str, Any]:
    return {
        "imageId": "ami-0123", "instanceType": "m6i.2xlarge",
        "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
        "networkInterfaces": [{"deviceIndex": 0, "associatePublicIpAddress": "false", "securityGroups": ["sg-1"]}],
        "blockDeviceMappings": [{"deviceName": "/dev/sda1", "ebs": {"encrypted": "true", "volumeSize": 500}}],
        "userData": base64.b64encode(CLOUD_CONFIG.encode()).decode(),
        "iamInstanceProfile": {"arn": "arn:aws:iam::123456789012:instance-profile/app"},
        "monitoring": {"enabled": True},
    }


def configuration() -> dict[str, Any]:
    """A legacy launch configuration spelled the way an instance is (plus enableMonitoring)."""
    return {
        "imageId": "ami-0123", "instanceType": "m6i.2xlarge",
        "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
        "associatePublicIpAddress": False,
        "rootBlockDevice": {"encrypted": True, "volumeSize": 500},
        "userData": CLOUD_CONFIG,
        "iamInstanceProfile": "app-profile",
    }


def policy(kind: str, rule: str) -> Any:
    return by_name(ec2.POLICIES, f"aws-ec2-{kind}-{rule}")


KINDS = [("instance", INSTANCE, instance), ("launchtemplate", LT, template),
         ("launchconfiguration", LC, configuration)]
ALL_RESOURCE_RULES = ["require-imdsv2", "disallow-public-ip", "disallow-unencrypted-block-device",
                      "disallow-secrets-in-user-data", "require-instance-profile", "enable-detailed-monitoring"]


@pytest.mark.parametrize("rule", ALL_RESOURCE_RULES)
@pytest.mark.parametrize(("kind", "token", "props"), KINDS)
def test_compliant_resources_pass(rule: str, kind: str, token: str, props: Any) -> None:
    assert check_resource(policy(kind, rule), token, props()).violations == []


def test_rules_only_look_at_their_own_kind() -> None:
    bad = template()
    bad["metadataOptions"] = {"httpTokens": "optional"}
    assert check_resource(policy("instance", "require-imdsv2"), LT, bad).violations == []


def test_levels() -> None:
    assert policy("instance", "require-instance-profile").enforcement_level == EnforcementLevel.ADVISORY
    assert policy("launchtemplate", "disallow-secrets-in-user-data").enforcement_level == EnforcementLevel.MANDATORY
    assert "securityhub:EC2.170" in policy("launchtemplate", "require-imdsv2").tags


# --- IMDSv2 ------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "token", "props"), KINDS)
def test_imdsv1_allowed_fails(kind: str, token: str, props: Any) -> None:
    bad = props()
    bad["metadataOptions"]["httpTokens"] = "optional"
    assert check_resource(policy(kind, "require-imdsv2"), token, bad).messages == [
        "metadataOptions.httpTokens is optional; it must be 'required' (IMDSv2 only)."]


def test_missing_metadata_options_fails_twice() -> None:
    bad = template()
    del bad["metadataOptions"]
    assert check_resource(policy("launchtemplate", "require-imdsv2"), LT, bad).messages == [
        "metadataOptions.httpTokens is not set (IMDSv1 stays available); it must be 'required' (IMDSv2 only).",
        "metadataOptions.httpPutResponseHopLimit is not set (some AMIs default to 2); it must be at most 1.",
    ]


def test_hop_limit_two_fails_unless_configured() -> None:
    bad = template()
    bad["metadataOptions"]["httpPutResponseHopLimit"] = 2
    rule = policy("launchtemplate", "require-imdsv2")
    assert check_resource(rule, LT, bad).messages == [
        "metadataOptions.httpPutResponseHopLimit is 2; it must be at most 1."]
    assert check_resource(rule, LT, bad, config={"maxHopLimit": 2}).violations == []


def test_disabled_metadata_endpoint_passes() -> None:
    props = instance()
    props["metadataOptions"] = {"httpEndpoint": "disabled"}
    assert check_resource(policy("instance", "require-imdsv2"), INSTANCE, props).violations == []


# --- public IP ---------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "message"), [
    (True, "associatePublicIpAddress is true; it must be false."),
    (None, "associatePublicIpAddress is not set (the subnet's default decides); it must be false."),
])
def test_instance_public_ip_fails(value: Any, message: str) -> None:
    bad = instance()
    if value is None:
        del bad["associatePublicIpAddress"]
    else:
        bad["associatePublicIpAddress"] = value
    assert check_resource(policy("instance", "disallow-public-ip"), INSTANCE, bad).messages == [message]


def test_launch_template_public_ip_fails() -> None:
    bad = template()
    bad["networkInterfaces"][0]["associatePublicIpAddress"] = "true"
    assert check_resource(policy("launchtemplate", "disallow-public-ip"), LT, bad).messages == [
        "networkInterfaces[0].associatePublicIpAddress is true; it must be false."]


def test_launch_template_without_interfaces_fails() -> None:
    bad = template()
    del bad["networkInterfaces"]
    assert check_resource(policy("launchtemplate", "disallow-public-ip"), LT, bad).messages == [
        "networkInterfaces is not set, so associatePublicIpAddress is left to the subnet's default; declare the "
        "interface with associatePublicIpAddress false."]


# --- volumes -----------------------------------------------------------------------------

def test_unencrypted_root_volume_fails() -> None:
    bad = instance()
    bad["rootBlockDevice"]["encrypted"] = False
    assert check_resource(policy("instance", "disallow-unencrypted-block-device"), INSTANCE, bad).messages == [
        "rootBlockDevice.encrypted is not true."]


def test_missing_root_block_device_and_unencrypted_data_volume_fail() -> None:
    bad = instance()
    del bad["rootBlockDevice"]
    bad["ebsBlockDevices"][0]["encrypted"] = "false"
    assert check_resource(policy("instance", "disallow-unencrypted-block-device"), INSTANCE, bad).messages == [
        "rootBlockDevice is not set, so the root volume is encrypted only if the AMI's snapshot is; set "
        "rootBlockDevice.encrypted true.",
        "ebsBlockDevices[0] (/dev/sdf) is not encrypted.",
    ]


def test_launch_template_unencrypted_mapping_fails() -> None:
    bad = template()
    bad["blockDeviceMappings"][0]["ebs"]["encrypted"] = "false"
    assert check_resource(policy("launchtemplate", "disallow-unencrypted-block-device"), LT, bad).messages == [
        "blockDeviceMappings[0] (/dev/sda1) ebs.encrypted is not true."]


def test_launch_template_without_mappings_fails() -> None:
    bad = template()
    del bad["blockDeviceMappings"]
    assert check_resource(policy("launchtemplate", "disallow-unencrypted-block-device"), LT, bad).messages == [
        "blockDeviceMappings has no EBS volume, so the root volume is encrypted only if the AMI's snapshot is; map "
        "the root device with ebs.encrypted true."]


# --- user data ---------------------------------------------------------------------------

def _with_user_data(text: str, *, gzipped: bool = False) -> dict[str, Any]:
    props = template()
    raw = gzip.compress(text.encode()) if gzipped else text.encode()
    props["userData"] = base64.b64encode(raw).decode()
    return props


@pytest.mark.parametrize(("text", "message"), [
    ("export POSTGRES_PASSWORD=hunter2-but-longer\n",
     "userData contains literal values for POSTGRES_PASSWORD; hosts must read secrets from Secrets Manager at start."),
    ("write_files:\n  - content: 'SPLUNK_HEC_TOKEN: \"abc-123\"'\n",
     "userData contains literal values for SPLUNK_HEC_TOKEN; hosts must read secrets from Secrets Manager at start."),
    ("aws configure set aws_access_key_id AKIAABCDEFGHIJKLMNOP\n",
     "userData contains an AWS access key id; hosts must read secrets from Secrets Manager at start."),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n",
     "userData contains a private key; hosts must read secrets from Secrets Manager at start."),
])
def test_secrets_in_launch_template_user_data_fail(text: str, message: str) -> None:
    result = check_resource(policy("launchtemplate", "disallow-secrets-in-user-data"), LT, _with_user_data(text))
    assert result.messages == [message]


def test_gzipped_user_data_is_decoded() -> None:
    props = _with_user_data("VALKEY_PASSWORD=s3cr3t-value\n", gzipped=True)
    assert check_resource(policy("launchtemplate", "disallow-secrets-in-user-data"), LT, props).messages == [
        "userData contains literal values for VALKEY_PASSWORD; hosts must read secrets from Secrets Manager at start."]


def test_message_never_repeats_the_secret() -> None:
    props = _with_user_data("SECRET_KEY=do-not-print-me\n")
    messages = check_resource(policy("launchtemplate", "disallow-secrets-in-user-data"), LT, props).messages
    assert messages
    assert all("do-not-print-me" not in m for m in messages)


@pytest.mark.parametrize("text", [
    'PGPASSWORD="$TIMESCALE_PASSWORD" psql\n',
    "POSTGRES_PASSWORD=${POSTGRES_PASSWORD}\n",
    "SECRET_KEY=arn:aws:secretsmanager:us-east-1:123456789012:secret:sark/SECRET_KEY-abc\n",
    "lock_passwd: true\n",
    'REQUIRED_SECRETS = ("SECRET_KEY", "POSTGRES_PASSWORD")\n',
])
def test_references_and_names_are_not_secrets(text: str) -> None:
    assert check_resource(policy("launchtemplate", "disallow-secrets-in-user-data"), LT,
                          _with_user_data(text)).violations == []


def test_instance_plain_user_data_is_checked() -> None:
    bad = instance()
    bad["userData"] = "TIMESCALE_PASSWORD='abc'\n"
    assert check_resource(policy("instance", "disallow-secrets-in-user-data"), INSTANCE, bad).messages == [
        "userData contains literal values for TIMESCALE_PASSWORD; hosts must read secrets from Secrets Manager at "
        "start."]


def test_instance_base64_user_data_is_checked() -> None:
    bad = instance()
    del bad["userData"]
    bad["userDataBase64"] = base64.b64encode(b"DATADOG_API_KEY=0123456789abcdef\n").decode()
    assert check_resource(policy("instance", "disallow-secrets-in-user-data"), INSTANCE, bad).messages == [
        "userData contains literal values for DATADOG_API_KEY; hosts must read secrets from Secrets Manager at start."]


# --- instance profile, termination protection ---------------------------------------------

def test_missing_instance_profile_is_reported() -> None:
    bad = template()
    bad["iamInstanceProfile"] = {}
    assert check_resource(policy("launchtemplate", "require-instance-profile"), LT, bad).messages == [
        "iamInstanceProfile is not set; the host cannot be managed through SSM or read its configuration."]


TERMINATION = by_name(ec2.POLICIES, "aws-ec2-instance-enable-termination-protection")


def test_timescale_host_with_termination_protection_passes() -> None:
    assert check_resource(TERMINATION, INSTANCE, instance()).violations == []


def test_timescale_host_without_termination_protection_fails() -> None:
    bad = copy.deepcopy(instance())
    bad["disableApiTermination"] = False
    assert check_resource(TERMINATION, INSTANCE, bad).messages == [
        "Instance tagged sark:role=timescale has disableApiTermination unset or false; it must be true."]


def test_other_roles_need_no_termination_protection() -> None:
    props = instance()
    props["tags"] = {"sark:role": "bastion"}
    del props["disableApiTermination"]
    assert check_resource(TERMINATION, INSTANCE, props).violations == []


def test_unknown_user_data_during_preview_is_advisory() -> None:
    props = template()
    props["userData"] = UNKNOWN
    result = check_resource(policy("launchtemplate", "disallow-secrets-in-user-data"), LT, props)
    assert result.violations == []
    assert len(result.advisories) == 1


# --- launch configurations --------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "change", "message"), [
    ("require-imdsv2", {"metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 1}},
     "metadataOptions.httpTokens is optional; it must be 'required' (IMDSv2 only)."),
    ("disallow-public-ip", {"associatePublicIpAddress": True}, "associatePublicIpAddress is true; it must be false."),
    ("disallow-unencrypted-block-device", {"rootBlockDevice": {"encrypted": False}},
     "rootBlockDevice.encrypted is not true."),
    ("disallow-secrets-in-user-data", {"userData": "export VALKEY_PASSWORD=hunter22\n"},
     "userData contains literal values for VALKEY_PASSWORD; hosts must read secrets from Secrets Manager at start."),
    ("require-instance-profile", {"iamInstanceProfile": ""},
     "iamInstanceProfile is not set; the host cannot be managed through SSM or read its configuration."),
    ("enable-detailed-monitoring", {"enableMonitoring": False},
     "enableMonitoring is false; instances would report metrics every 5 minutes only."),
])
def test_launch_configuration_one_change_one_message(rule: str, change: dict[str, Any], message: str) -> None:
    assert check_resource(policy("launchconfiguration", rule), LC, {**configuration(), **change}).messages == [message]


def test_launch_configuration_rules_carry_their_anchors() -> None:
    assert "trivy:AVD-AWS-0130" in policy("launchconfiguration", "require-imdsv2").tags
    assert "trivy:AVD-AWS-0009" in policy("launchconfiguration", "disallow-public-ip").tags


# --- detailed monitoring ----------------------------------------------------------------------

def test_instance_without_detailed_monitoring_is_advisory() -> None:
    bad = instance()
    del bad["monitoring"]
    rule = policy("instance", "enable-detailed-monitoring")
    assert check_resource(rule, INSTANCE, bad).messages == [
        "monitoring is not true; the instance would report metrics every 5 minutes only."]
    assert rule.enforcement_level == EnforcementLevel.ADVISORY


def test_launch_template_without_detailed_monitoring_fails() -> None:
    bad = template()
    bad["monitoring"] = {"enabled": "false"}
    assert check_resource(policy("launchtemplate", "enable-detailed-monitoring"), LT, bad).messages == [
        "monitoring.enabled is not true; instances would report metrics every 5 minutes only."]


# --- account-wide metadata defaults -----------------------------------------------------------

DEFAULTS = by_name(ec2.POLICIES, "aws-ec2-instance-metadata-defaults-require-imdsv2")


def test_metadata_defaults_requiring_tokens_pass() -> None:
    props = {"httpTokens": "required", "httpPutResponseHopLimit": -1, "httpEndpoint": "enabled"}
    assert check_resource(DEFAULTS, ec2.METADATA_DEFAULTS, props).violations == []


@pytest.mark.parametrize(("props", "messages"), [
    ({"httpTokens": "optional"}, ["httpTokens is optional; account defaults must be 'required' (IMDSv2 only)."]),
    ({}, ["httpTokens is not set (no-preference: each AMI decides); account defaults must be 'required' (IMDSv2 "
          "only)."]),
    ({"httpTokens": "required", "httpPutResponseHopLimit": 3},
     ["httpPutResponseHopLimit is 3; it must be at most 1."]),
])
def test_metadata_defaults_undercutting_imdsv2_fail(props: dict[str, Any], messages: list[str]) -> None:
    assert check_resource(DEFAULTS, ec2.METADATA_DEFAULTS, props).messages == messages
