"""Every remediation the pack offers, run through the servicer's ``Remediate`` at level remediate.

For each: a violating resource is rewritten to exactly the expected inputs (numbers as floats,
as the engine receives them), the rule's own check passes on the result, a compliant resource
is left alone, and an exempted one is never touched.
"""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import ResourceValidationPolicy

from sark_policies import POLICIES
from tests.policies.helpers import UNKNOWN, by_name, check_resource, remediate_resource

INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
LAUNCH_CONFIGURATION = "aws:ec2/launchConfiguration:LaunchConfiguration"
KMS_KEY = "aws:kms/key:Key"
RDS = "aws:rds/instance:Instance"
ALB = "aws:alb/loadBalancer:LoadBalancer"
CACHE_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
CACHE_CLUSTER = "aws:elasticache/cluster:Cluster"

# policy, resource type, violating inputs, the inputs after remediation
CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("aws-ec2-instance-require-imdsv2", INSTANCE,
     {"ami": "ami-1", "metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 2}},
     {"ami": "ami-1", "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1.0}}),
    ("aws-ec2-launchtemplate-require-imdsv2", LAUNCH_TEMPLATE,
     {"imageId": "ami-1", "metadataOptions": {"instanceMetadataTags": "disabled"}},
     {"imageId": "ami-1", "metadataOptions": {"instanceMetadataTags": "disabled", "httpTokens": "required",
                                              "httpPutResponseHopLimit": 1.0}}),
    ("aws-ec2-launchconfiguration-require-imdsv2", LAUNCH_CONFIGURATION,
     {"imageId": "ami-1"},
     {"imageId": "ami-1", "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1.0}}),
    ("aws-ec2-subnet-disallow-public-ip-on-launch", "aws:ec2/subnet:Subnet",
     {"cidrBlock": "10.0.0.0/24", "mapPublicIpOnLaunch": True},
     {"cidrBlock": "10.0.0.0/24", "mapPublicIpOnLaunch": False}),
    ("aws-ebs-encryption-by-default-require-enabled", "aws:ebs/encryptionByDefault:EncryptionByDefault",
     {"enabled": False}, {"enabled": True}),
    ("aws-kms-key-enable-key-rotation", KMS_KEY,
     {"description": "k", "enableKeyRotation": False}, {"description": "k", "enableKeyRotation": True}),
    ("aws-kms-key-enable-key-rotation", KMS_KEY,
     {"enableKeyRotation": True, "rotationPeriodInDays": 730},
     {"enableKeyRotation": True, "rotationPeriodInDays": 365.0}),
    ("aws-kms-key-configure-deletion-window", KMS_KEY,
     {"deletionWindowInDays": 7}, {"deletionWindowInDays": 30.0}),
    ("aws-secretsmanager-secret-configure-recovery-window", "aws:secretsmanager/secret:Secret",
     {"name": "sark/SECRET_KEY", "recoveryWindowInDays": 0},
     {"name": "sark/SECRET_KEY", "recoveryWindowInDays": 7.0}),
    ("aws-lb-loadbalancer-enable-drop-invalid-header-fields", ALB,
     {"loadBalancerType": "application", "dropInvalidHeaderFields": False},
     {"loadBalancerType": "application", "dropInvalidHeaderFields": True}),
    ("aws-lb-loadbalancer-enable-deletion-protection", ALB,
     {"loadBalancerType": "application"}, {"loadBalancerType": "application", "enableDeletionProtection": True}),
    ("aws-rds-instance-disallow-public-access", RDS,
     {"engine": "postgres", "publiclyAccessible": True}, {"engine": "postgres", "publiclyAccessible": False}),
    ("aws-rds-instance-enable-auto-minor-version-upgrade", RDS,
     {"engine": "postgres", "autoMinorVersionUpgrade": False}, {"engine": "postgres", "autoMinorVersionUpgrade": True}),
    ("aws-rds-instance-enable-copy-tags-to-snapshot", RDS,
     {"engine": "postgres"}, {"engine": "postgres", "copyTagsToSnapshot": True}),
    ("aws-elasticache-replication-group-enable-auto-minor-version-upgrade", CACHE_GROUP,
     {"engine": "valkey", "autoMinorVersionUpgrade": "false"}, {"engine": "valkey", "autoMinorVersionUpgrade": True}),
    ("aws-elasticache-cluster-enable-auto-minor-version-upgrade", CACHE_CLUSTER,
     {"engine": "memcached", "autoMinorVersionUpgrade": False},
     {"engine": "memcached", "autoMinorVersionUpgrade": True}),
]
IDS = [f"{case[0]}-{index}" for index, case in enumerate(CASES)]


def test_every_remediation_of_the_pack_is_tested_here() -> None:
    offered = {p.name for p in POLICIES if isinstance(p, ResourceValidationPolicy) and p.has_remediation()}
    assert offered == {case[0] for case in CASES}


@pytest.mark.parametrize(("name", "token", "before", "after"), CASES, ids=IDS)
def test_violating_inputs_are_rewritten_and_then_pass(name: str, token: str, before: dict[str, Any],
                                                       after: dict[str, Any]) -> None:
    policy = by_name(POLICIES, name)
    assert check_resource(policy, token, before).violations != []
    result = remediate_resource(policy, token, before)
    assert result.diagnostics == []
    assert result.properties == after
    assert check_resource(policy, token, after).violations == []


@pytest.mark.parametrize(("name", "token", "before", "after"), CASES, ids=IDS)
def test_remediated_inputs_are_left_alone(name: str, token: str, before: dict[str, Any],
                                          after: dict[str, Any]) -> None:
    assert before != after
    assert remediate_resource(by_name(POLICIES, name), token, after).properties is None


@pytest.mark.parametrize(("name", "token", "before", "after"), CASES, ids=IDS)
def test_exempted_resource_is_not_remediated(name: str, token: str, before: dict[str, Any],
                                             after: dict[str, Any]) -> None:
    assert before != after
    config = {"exemptions": [{"resource": "legacy", "reason": "migrated next quarter, ticket OPS-42"}]}
    result = remediate_resource(by_name(POLICIES, name), token, before, name="legacy", config=config)
    assert result.properties is None


def test_other_resource_types_are_not_touched() -> None:
    policy = by_name(POLICIES, "aws-kms-key-enable-key-rotation")
    assert remediate_resource(policy, "aws:sns/topic:Topic", {"enableKeyRotation": False}).properties is None


def test_values_unknown_in_preview_flow_through_unchanged() -> None:
    policy = by_name(POLICIES, "aws-ec2-launchtemplate-require-imdsv2")
    before = {"imageId": UNKNOWN, "metadataOptions": {"httpTokens": "optional", "instanceMetadataTags": UNKNOWN}}
    result = remediate_resource(policy, LAUNCH_TEMPLATE, before)
    assert result.properties == {"imageId": UNKNOWN, "metadataOptions": {
        "httpTokens": "required", "httpPutResponseHopLimit": 1.0, "instanceMetadataTags": UNKNOWN}}


def test_hop_limit_from_config() -> None:
    policy = by_name(POLICIES, "aws-ec2-instance-require-imdsv2")
    result = remediate_resource(policy, INSTANCE, {"metadataOptions": {"httpTokens": "optional",
                                                                       "httpPutResponseHopLimit": 3}},
                                config={"maxHopLimit": 2})
    assert result.properties == {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2.0}}


def test_asymmetric_keys_are_not_given_rotation() -> None:
    policy = by_name(POLICIES, "aws-kms-key-enable-key-rotation")
    before = {"customerMasterKeySpec": "RSA_2048", "enableKeyRotation": False}
    assert remediate_resource(policy, KMS_KEY, before).properties is None
