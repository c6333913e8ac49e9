"""S3 rules on the access-log bucket: compliant side resources, one mutation, the exact message."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from sark_policies import s3
from tests.policies.helpers import UNKNOWN, Res, by_name, check_each, check_resource, check_stack, urn

BUCKET = "aws:s3/bucket:Bucket"
PUBLIC = by_name(s3.POLICIES, "aws-s3-bucket-disallow-public-access")
HAS_PUBLIC = by_name(s3.POLICIES, "aws-s3-bucket-require-public-access-block")
HAS_ENCRYPTION = by_name(s3.POLICIES, "aws-s3-bucket-require-encryption-configuration")
HAS_POLICY = by_name(s3.POLICIES, "aws-s3-bucket-require-bucket-policy")
ENCRYPTION = by_name(s3.POLICIES, "aws-s3-bucket-enable-server-side-encryption")
RETENTION = by_name(s3.POLICIES, "aws-s3-bucket-configure-log-retention")
TLS = by_name(s3.POLICIES, "aws-s3-bucket-require-tls-only-policy")
VERSIONING = by_name(s3.POLICIES, "aws-s3-bucket-enable-versioning")

ARN = "arn:aws:s3:::sark-logs"


def tls_policy(effect: str = "Deny", secure: str = "false", resources: list[str] | None = None) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "DenyInsecureTransport", "Effect": effect, "Principal": "*", "Action": "s3:*",
         "Resource": resources if resources is not None else [ARN, f"{ARN}/*"],
         "Condition": {"Bool": {"aws:SecureTransport": secure}}},
        {"Effect": "Allow", "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": f"{ARN}/alb/AWSLogs/123456789012/*"},
    ]})


def stack(**changes: Callable[[dict[str, Any]], None]) -> list[Res]:
    """The access-log bucket with its side resources; ``changes`` mutate one side resource's props."""
    bucket = Res(BUCKET, "logs", {"bucket": "sark-logs", "id": "sark-logs", "arn": ARN})
    props = {
        "public": {"bucket": "sark-logs", "blockPublicAcls": True, "blockPublicPolicy": True,
                   "ignorePublicAcls": True, "restrictPublicBuckets": True},
        "encryption": {"bucket": "sark-logs", "rules": [
            {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
        "lifecycle": {"bucket": "sark-logs", "rules": [
            {"id": "expire", "status": "Enabled", "expiration": {"days": 90}}]},
        "versioning": {"bucket": "sark-logs", "versioningConfiguration": {"status": "Enabled"}},
        "policy": {"bucket": "sark-logs", "policy": tls_policy()},
        "lb": {"loadBalancerType": "application", "accessLogs": {"bucket": "sark-logs", "enabled": True}},
    }
    for key, change in changes.items():
        change(props[key])
    deps = {"bucket": [bucket.urn]}
    return [
        bucket,
        Res(s3.PUBLIC_ACCESS_BLOCK[0], "logs-public", props["public"], property_dependencies=deps),
        Res(s3.ENCRYPTION[0], "logs-encryption", props["encryption"], property_dependencies=deps),
        Res(s3.LIFECYCLE[0], "logs-lifecycle", props["lifecycle"], property_dependencies=deps),
        Res(s3.VERSIONING[0], "logs-versioning", props["versioning"], property_dependencies=deps),
        Res(s3.POLICY[0], "logs-policy", props["policy"], property_dependencies=deps),
        Res("aws:lb/loadBalancer:LoadBalancer", "alb", props["lb"]),
    ]


@pytest.mark.parametrize("policy", s3.POLICIES, ids=lambda p: p.name)
def test_compliant_log_bucket_passes(policy: Any) -> None:
    result = check_each(policy, stack())
    assert (result.violations, result.advisories) == ([], [])


def test_side_resources_found_by_bucket_name_without_dependencies() -> None:
    resources = stack()
    for resource in resources[1:]:
        resource.property_dependencies = {}
    for policy in s3.POLICIES:
        assert check_each(policy, resources).violations == [], policy.name


def _first_preview(resources: list[Res]) -> list[Res]:
    """As a first preview sends them: the bucket's id and ARN, and every side resource's bucket, unknown."""
    resources[0].props = {**resources[0].props, "id": UNKNOWN, "arn": UNKNOWN}
    for resource in resources[1:6]:
        resource.props = {**resource.props, "bucket": UNKNOWN}
    return resources


@pytest.mark.parametrize("policy", [p for p in s3.POLICIES if p.name != TLS.name], ids=lambda p: p.name)
def test_first_preview_decides_from_dependencies(policy: Any) -> None:
    result = check_each(policy, _first_preview(stack()))
    assert (result.violations, result.advisories) == ([], [])


def test_public_access_flag_off_fails_before_create() -> None:
    block = stack(public=lambda p: p.update(restrictPublicBuckets=False, bucket=UNKNOWN))[1]
    result = check_resource(PUBLIC, block.type, block.props, name=block.name)
    assert result.violations == [(block.urn, "The public access block leaves restrictPublicBuckets off; all four "
                                             "must be true.")]


def test_block_and_ignore_public_acls_off_fails() -> None:
    block = stack(public=lambda p: p.update(blockPublicAcls=False, ignorePublicAcls="false"))[1]
    assert check_resource(PUBLIC, block.type, block.props).messages == [
        "The public access block leaves blockPublicAcls, ignorePublicAcls off; all four must be true."]


def test_missing_public_access_block_fails() -> None:
    resources = _first_preview(stack())
    resources = [r for r in resources if r.name != "logs-public"]
    assert check_stack(HAS_PUBLIC, resources).violations == [
        (resources[0].urn, "Bucket 'logs' has no public access block.")]


def test_side_resource_whose_bucket_is_unknown_without_dependency_waits() -> None:
    resources = stack()
    resources[1].props = {**resources[1].props, "bucket": UNKNOWN}
    resources[1].property_dependencies = {}
    result = check_stack(HAS_PUBLIC, resources)
    assert result.violations == []
    assert [a.split("during preview: ")[1] for a in result.advisories] == [
        "it waits for logs-public.bucket (unknown until the resource that computes it exists); everything else was "
        "checked"]


def test_missing_encryption_fails() -> None:
    resources = [r for r in stack() if r.name != "logs-encryption"]
    assert check_stack(HAS_ENCRYPTION, resources).messages == [
        "Bucket 'logs' declares no server-side encryption configuration."]


def test_encryption_configuration_without_rules_fails() -> None:
    config = stack(encryption=lambda p: p.update(rules=[]))[2]
    assert check_resource(ENCRYPTION, config.type, config.props).messages == [
        "The encryption configuration sets no default sseAlgorithm."]


def test_disallowed_algorithm_fails() -> None:
    config = stack(encryption=lambda p: p["rules"][0]["applyServerSideEncryptionByDefault"].update(
        sseAlgorithm="aws:kms"))[2]
    result = check_resource(ENCRYPTION, config.type, config.props, config={"allowedAlgorithms": ["AES256"]})
    assert result.messages == ["sseAlgorithm is aws:kms; allowed: AES256."]


def test_short_log_retention_fails() -> None:
    result = check_stack(RETENTION, stack(lifecycle=lambda p: p["rules"][0].update(expiration={"days": 7})))
    assert result.messages == ["Log bucket 'logs' expires objects after 7 days; it must keep them at least 30 days."]


def test_retention_minimum_from_config() -> None:
    assert check_stack(RETENTION, stack(), config={"minRetentionDays": 365}).messages == [
        "Log bucket 'logs' expires objects after 90 days; it must keep them at least 365 days."]


def test_disabled_lifecycle_rule_fails() -> None:
    result = check_stack(RETENTION, stack(lifecycle=lambda p: p["rules"][0].update(status="Disabled")))
    assert result.messages == ["Log bucket 'logs' has no enabled lifecycle rule expiring objects; logs must be kept "
                               "30+ days and then expire."]


def test_retention_applies_only_to_log_buckets() -> None:
    resources = [r for r in stack() if r.name not in ("logs-lifecycle", "alb")]
    assert check_stack(RETENTION, resources).violations == []


@pytest.mark.parametrize("change", [
    lambda p: p.update(policy=tls_policy(effect="Allow")),
    lambda p: p.update(policy=tls_policy(secure="true")),
    lambda p: p.update(policy=tls_policy(resources=[ARN])),
])
def test_policy_without_tls_deny_fails(change: Callable[[dict[str, Any]], None]) -> None:
    policy = stack(policy=change)[5]
    assert check_resource(TLS, policy.type, policy.props).messages == [
        "The policy has no statement denying s3:* to everyone when aws:SecureTransport is false on "
        "arn:aws:s3:::sark-logs and arn:aws:s3:::sark-logs/*."]


def test_tls_statement_on_another_bucket_fails() -> None:
    policy = stack(policy=lambda p: p.update(bucket="sark-other"))[5]
    assert len(check_resource(TLS, policy.type, policy.props).messages) == 1


def test_policy_document_unknown_in_a_first_preview_waits_then_decides() -> None:
    """A document computed from the bucket's ARN is unknown in a first preview: the rule waits for
    it, and in ``pulumi up`` runs before the policy is created, with the document known."""
    waiting = check_resource(TLS, s3.POLICY[0], {"bucket": UNKNOWN, "policy": UNKNOWN})
    assert (waiting.violations, len(waiting.advisories)) == ([], 1)
    assert "can't run policy 'aws-s3-bucket-require-tls-only-policy'" in waiting.advisories[0]
    known_then = stack(policy=lambda p: p.update(policy=tls_policy(effect="Allow")))[5]
    assert len(check_resource(TLS, known_then.type, known_then.props).messages) == 1


def test_bucket_without_policy_fails() -> None:
    resources = [r for r in stack() if r.name != "logs-policy"]
    assert check_stack(HAS_POLICY, resources).messages == [
        "Bucket 'logs' has no bucket policy, so nothing denies requests without TLS."]


def test_versioning_suspended_is_advisory() -> None:
    result = check_stack(VERSIONING, stack(versioning=lambda p: p.update(versioningConfiguration={
        "status": "Suspended"})))
    assert result.messages == ["Bucket 'logs' does not have versioning enabled."]
    assert VERSIONING.enforcement_level == EnforcementLevel.ADVISORY


# --- public ACLs -------------------------------------------------------------------------------

ACL = by_name(s3.POLICIES, "aws-s3-bucket-disallow-public-acl")
LOGGING = by_name(s3.POLICIES, "aws-s3-bucket-enable-access-logging")
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def test_canned_public_acl_on_the_bucket_fails() -> None:
    result = check_resource(ACL, BUCKET, {"bucket": "sark-logs", "acl": "public-read"}, name="logs")
    assert result.violations == [
        (urn(BUCKET, "logs"), "The canned ACL is public-read; objects would be readable outside the account.")]


def test_public_grant_in_a_bucket_acl_resource_fails() -> None:
    props = {"bucket": UNKNOWN, "accessControlPolicy": {
        "owner": {"id": "owner"}, "grants": [{"permission": "READ", "grantee": {"type": "Group", "uri": ALL_USERS}}]}}
    result = check_resource(ACL, s3.ACL[1], props, name="logs-acl")
    assert result.violations == [(urn(s3.ACL[1], "logs-acl"), "The ACL grants access to AllUsers.")]


def test_legacy_inline_grant_fails() -> None:
    props = {"bucket": "sark-logs", "grants": [{"type": "Group", "uri": ALL_USERS, "permissions": ["READ"]}]}
    assert check_resource(ACL, BUCKET, props).messages == ["The ACL grants access to AllUsers."]


def test_log_delivery_acl_is_not_public() -> None:
    assert check_resource(ACL, BUCKET, {"bucket": "sark-logs", "acl": "log-delivery-write"}).violations == []


# --- access logging ----------------------------------------------------------------------------

def _data_bucket(**props: Any) -> Res:
    return Res(BUCKET, "data", {"bucket": "sark-data", "id": "sark-data", "arn": "arn:aws:s3:::sark-data", **props})


def test_bucket_without_access_logging_is_reported() -> None:
    data = _data_bucket()
    assert check_stack(LOGGING, [*stack(), data]).violations == [
        (data.urn, "Bucket 'data' does not log requests (no aws.s3.BucketLogging); access to its objects could not be "
                   "audited.")]
    assert LOGGING.enforcement_level == EnforcementLevel.ADVISORY


def test_bucket_logging_side_resource_passes_and_marks_the_target() -> None:
    data = _data_bucket()
    logging = Res(s3.LOGGING[0], "data-logging", {"bucket": "sark-data", "targetBucket": "sark-audit-logs"},
                  property_dependencies={"bucket": [data.urn]})
    target = Res(BUCKET, "audit-logs", {"bucket": "sark-audit-logs", "id": "sark-audit-logs"})
    assert check_stack(LOGGING, [data, logging, target]).violations == []


def test_legacy_inline_logging_passes() -> None:
    data = _data_bucket(logging={"targetBucket": "sark-logs", "targetPrefix": "s3/"})
    assert check_stack(LOGGING, [*stack(), data]).violations == []


# --- legacy inline settings --------------------------------------------------------------------

def test_legacy_inline_versioning_and_lifecycle_count() -> None:
    resources = [r for r in stack() if r.name not in ("logs-lifecycle", "logs-versioning")]
    resources[0].props = {**resources[0].props, "versioning": {"enabled": True},
                          "lifecycleRules": [{"enabled": True, "expiration": {"days": 90}}]}
    assert check_stack(VERSIONING, resources).violations == []
    assert check_stack(RETENTION, resources).violations == []


def test_legacy_inline_lifecycle_too_short_fails() -> None:
    resources = [r for r in stack() if r.name != "logs-lifecycle"]
    resources[0].props = {**resources[0].props, "lifecycleRules": [{"enabled": True, "expiration": {"days": 14}}]}
    assert check_stack(RETENTION, resources).messages == [
        "Log bucket 'logs' expires objects after 14 days; it must keep them at least 30 days."]
