"""S3 rules for the stack's buckets (anchors section I: the load balancer's access-log bucket).

pulumi-aws 7 configures a bucket through side resources (public access block, encryption,
lifecycle, versioning, policy), each pointing at the bucket by name. The rules are therefore
stack rules: for every bucket they look for the side resource whose ``bucket`` input came
from it (property dependency) or names it.

SSE-S3 is accepted, and is what the access-log bucket uses: ALB log delivery does not support
SSE-KMS (AWS ELB user guide, bucket requirements; aws/aws-cdk#21947), so compliance-policies'
``...-configure-server-side-encryption-kms`` / Security Hub S3.17 are not ported.

``aws.s3.Bucket`` in pulumi-aws 7 (``aws:s3/bucket:Bucket``, with ``aws:s3/bucketV2:BucketV2``
as its alias) still accepts the deprecated inline settings (``acl``, ``grants``, ``policy``,
``versioning``, ``lifecycleRules``, ``logging``, ``serverSideEncryptionConfiguration``); every
rule reads those as well as the side resources, so a stack written either way is checked.

Access logging (Security Hub S3.9) is not required of a bucket that is itself a log
destination (of a load balancer, or of another bucket's server access logging): logging a log
bucket only moves the question to the next bucket (pulumi/pulumi-policy#438 is exactly this
case).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyResource, ReportViolation, Severity, StackValidationArgs

from ._base import Anchors, policies_of, stack_rule
from ._props import as_bool, as_int, as_list, as_map

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",)
ENCRYPTION = ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
              "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
LIFECYCLE = ("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
             "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2")
VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2")
POLICY = ("aws:s3/bucketPolicy:BucketPolicy",)
ACL = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
LOGGING = ("aws:s3/bucketLogging:BucketLogging", "aws:s3/bucketLoggingV2:BucketLoggingV2")
PUBLIC_CANNED_ACLS = ("public-read", "public-read-write", "authenticated-read")
PUBLIC_GRANTEES = ("http://acs.amazonaws.com/groups/global/AllUsers",
                   "http://acs.amazonaws.com/groups/global/AuthenticatedUsers")
LOAD_BALANCERS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")

PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _buckets(args: StackValidationArgs) -> list[PolicyResource]:
    return [r for r in args.resources if r.resource_type in BUCKETS]


def _refers(resource: PolicyResource, bucket: PolicyResource, key: str = "bucket") -> bool:
    if bucket in resource.property_dependencies.get(key, []):
        return True
    value = resource.props.get(key)
    return value is not None and value in (bucket.props.get("bucket"), bucket.props.get("id"))


def _side(args: StackValidationArgs, bucket: PolicyResource, types: Sequence[str]) -> list[PolicyResource]:
    return [r for r in args.resources if r.resource_type in types and _refers(r, bucket)]


@stack_rule(
    "aws-s3-bucket-disallow-public-access", Severity.HIGH,
    "Every bucket blocks public ACLs and policies (all four public access block settings).",
    fix="Add an aws.s3.BucketPublicAccessBlock for the bucket with block_public_acls, "
        "block_public_policy, ignore_public_acls and restrict_public_buckets all True.",
    anchors=Anchors(compliance=["aws-s3-bucket-disallow-public-read"],
                    checkov=["CKV_AWS_53", "CKV_AWS_54", "CKV_AWS_55", "CKV_AWS_56", "CKV2_AWS_6"],
                    trivy=["AVD-AWS-0086", "AVD-AWS-0087", "AVD-AWS-0091", "AVD-AWS-0093", "AVD-AWS-0094"],
                    securityhub=["S3.1", "S3.8"]),
    needs="TODO",
)
def public_access_blocked(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every bucket has a public access block with all four settings on."""
    for bucket in _buckets(args):
        blocks = _side(args, bucket, PUBLIC_ACCESS_BLOCK)
        if not blocks:
            report_violation(f"Bucket '{bucket.name}' has no public access block.", bucket.urn)
            continue
        off = [flag for flag in PUBLIC_ACCESS_FLAGS if not any(as_bool(b.props.get(flag)) is True for b in blocks)]
        if off:
            report_violation(f"Bucket '{bucket.name}' public access block leaves {', '.join(off)} off; all four "
                             "must be true.", blocks[0].urn)


@stack_rule(
    "aws-s3-bucket-enable-server-side-encryption", Severity.HIGH,
    "Every bucket encrypts objects at rest by default.",
    fix="Add an aws.s3.BucketServerSideEncryptionConfiguration (AES256 for ALB access-log "
        "buckets, which cannot use SSE-KMS; aws:kms elsewhere).",
    anchors=Anchors(compliance=["aws-s3-bucket-enable-server-side-encryption"], checkov=["CKV_AWS_19"],
                    trivy=["AVD-AWS-0088"]),
    config={"allowedAlgorithms": {"type": "array", "items": {"type": "string"},
                                  "default": ["AES256", "aws:kms", "aws:kms:dsse"],
                                  "description": "Accepted default encryption algorithms."}},
    needs="TODO",
)
def encrypted(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every bucket declares default server-side encryption."""
    allowed = [str(a) for a in as_list(args.get_config().get("allowedAlgorithms"))]
    for bucket in _buckets(args):
        algorithms = [
            as_map(as_map(rule).get("applyServerSideEncryptionByDefault")).get("sseAlgorithm")
            for config in _side(args, bucket, ENCRYPTION) for rule in as_list(config.props.get("rules"))
        ]
        legacy = as_map(as_map(bucket.props.get("serverSideEncryptionConfiguration")).get("rule"))
        if legacy:
            algorithms.append(as_map(legacy.get("applyServerSideEncryptionByDefault")).get("sseAlgorithm"))
        if not algorithms:
            report_violation(f"Bucket '{bucket.name}' declares no server-side encryption configuration.", bucket.urn)
        elif not all(a in allowed for a in algorithms):
            shown = ", ".join(str(a) for a in algorithms)
            report_violation(f"Bucket '{bucket.name}' uses sseAlgorithm {shown}; allowed: {', '.join(allowed)}.",
                             bucket.urn)


def _is_log_bucket(args: StackValidationArgs, bucket: PolicyResource) -> bool:
    for lb in (r for r in args.resources if r.resource_type in LOAD_BALANCERS):
        logs = as_map(lb.props.get("accessLogs"))
        if bucket in lb.property_dependencies.get("accessLogs", []) or (
                logs.get("bucket") is not None and logs.get("bucket") in (bucket.props.get("bucket"),
                                                                           bucket.props.get("id"))):
            return True
    return as_map(bucket.props.get("tags")).get("sark:purpose") == "access-logs"


def _expiration_days(rules: Sequence[Mapping[str, Any]]) -> list[int]:
    days = []
    for rule in rules:
        # Side resources say status "Enabled"; the legacy inline lifecycleRules say enabled true.
        if rule.get("status") != "Enabled" and as_bool(rule.get("enabled")) is not True:
            continue
        value = as_int(as_map(rule.get("expiration")).get("days"))
        if value is not None and value > 0:
            days.append(value)
    return days


@stack_rule(
    "aws-s3-bucket-configure-log-retention", Severity.MEDIUM,
    "Access-log buckets keep logs for the retention period, then expire them.",
    fix="Add an aws.s3.BucketLifecycleConfiguration rule with status 'Enabled' and "
        "expiration.days at least the retention period (config accessLogRetentionDays).",
    anchors=Anchors(checkov=["CKV2_AWS_61"], securityhub=["S3.13"],
                    checklist=["Pre-Deployment 3.3 (log retention 30-90 days)"]),
    config={"minRetentionDays": {"type": "integer", "default": 30,
                                 "description": "Fewest days access logs must be kept."}},
    needs="TODO",
)
def log_retention(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Access-log buckets keep logs at least ``minRetentionDays`` and then expire them."""
    minimum = as_int(args.get_config().get("minRetentionDays")) or 30
    for bucket in (b for b in _buckets(args) if _is_log_bucket(args, b)):
        rules = [as_map(rule) for config in _side(args, bucket, LIFECYCLE)
                 for rule in as_list(config.props.get("rules"))]
        rules += [as_map(rule) for rule in as_list(bucket.props.get("lifecycleRules"))]
        days = _expiration_days(rules)
        if not days:
            report_violation(f"Log bucket '{bucket.name}' has no enabled lifecycle rule expiring objects; logs "
                             f"must be kept {minimum}+ days and then expire.", bucket.urn)
        elif min(days) < minimum:
            report_violation(f"Log bucket '{bucket.name}' expires objects after {min(days)} days; it must keep them "
                             f"at least {minimum} days.", bucket.urn)


def _statements(policy: Any) -> list[Mapping[str, Any]]:
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            return []
    return [as_map(s) for s in as_list(as_map(policy).get("Statement"))]


def _denies_plain_http(statement: Mapping[str, Any], bucket_arn: str | None) -> bool:
    if statement.get("Effect") != "Deny" or statement.get("Principal") not in ("*", {"AWS": "*"}):
        return False
    actions = as_list(statement.get("Action")) or [statement.get("Action")]
    if not any(a in ("s3:*", "*") for a in actions):
        return False
    condition = as_map(as_map(statement.get("Condition")).get("Bool"))
    if str(condition.get("aws:SecureTransport")).lower() != "false":
        return False
    resources = as_list(statement.get("Resource")) or [statement.get("Resource")]
    if bucket_arn is None:
        return True
    return bucket_arn in resources and (f"{bucket_arn}/*" in resources or "*" in resources)


@stack_rule(
    "aws-s3-bucket-require-tls-only-policy", Severity.MEDIUM,
    "Every bucket's policy denies requests that do not use TLS.",
    fix="Add a bucket policy statement: Effect Deny, Principal *, Action s3:*, Resource the bucket "
        "and bucket/*, Condition Bool aws:SecureTransport 'false'.",
    anchors=Anchors(securityhub=["S3.5"]),
    needs="TODO",
)
def tls_only(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every bucket's policy denies requests not made over TLS (aws:SecureTransport false)."""
    for bucket in _buckets(args):
        arn = bucket.props.get("arn") if isinstance(bucket.props.get("arn"), str) else None
        statements = [s for p in _side(args, bucket, POLICY) for s in _statements(p.props.get("policy"))]
        statements += _statements(bucket.props.get("policy"))
        if not any(_denies_plain_http(s, arn) for s in statements):
            report_violation(f"Bucket '{bucket.name}' has no policy statement denying s3:* to everyone when "
                             "aws:SecureTransport is false (on the bucket and its objects).", bucket.urn)


@stack_rule(
    "aws-s3-bucket-enable-versioning", Severity.LOW,
    "Buckets keep object versions.",
    fix="Add an aws.s3.BucketVersioning with versioning_configuration status 'Enabled'.",
    anchors=Anchors(checkov=["CKV_AWS_21"], trivy=["AVD-AWS-0090"], securityhub=["S3.14"]),
    level=EnforcementLevel.ADVISORY,
    needs="TODO",
)
def versioned(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Buckets keep object versions, so an overwrite or delete can be undone."""
    for bucket in _buckets(args):
        states = [as_map(v.props.get("versioningConfiguration")).get("status")
                  for v in _side(args, bucket, VERSIONING)]
        if as_bool(as_map(bucket.props.get("versioning")).get("enabled")) is True:
            states.append("Enabled")
        if "Enabled" not in states:
            report_violation(f"Bucket '{bucket.name}' does not have versioning enabled.", bucket.urn)


def _public_grants(grants: Sequence[Any]) -> list[str]:
    found = []
    for grant in (as_map(g) for g in grants):
        uri = grant.get("uri") or as_map(grant.get("grantee")).get("uri")
        if uri in PUBLIC_GRANTEES:
            found.append(str(uri).rsplit("/", 1)[-1])
    return found


@stack_rule(
    "aws-s3-bucket-disallow-public-acl", Severity.CRITICAL,
    "No bucket grants public access through a canned ACL or ACL grants.",
    fix="Remove the public-read / public-read-write / authenticated-read ACL and AllUsers / "
        "AuthenticatedUsers grants; set aws.s3.BucketOwnershipControls to BucketOwnerEnforced "
        "(ACLs off).",
    anchors=Anchors(compliance=["aws-s3-bucket-disallow-public-read"], securityhub=["S3.1", "S3.8"]),
    needs="TODO",
)
def no_public_acl(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """No bucket grants access to everyone through a canned ACL or an ACL grant."""
    for bucket in _buckets(args):
        acls = [(bucket, bucket.props.get("acl"), as_list(bucket.props.get("grants")))]
        acls += [(acl, acl.props.get("acl"), as_list(as_map(acl.props.get("accessControlPolicy")).get("grants")))
                 for acl in _side(args, bucket, ACL)]
        for declared_by, canned, grants in acls:
            if canned in PUBLIC_CANNED_ACLS:
                report_violation(f"Bucket '{bucket.name}' has the canned ACL {canned}; objects would be readable "
                                 "outside the account.", declared_by.urn)
            public = _public_grants(grants)
            if public:
                report_violation(f"Bucket '{bucket.name}' grants access to {', '.join(sorted(set(public)))} in its "
                                 "ACL.", declared_by.urn)


def _log_targets(args: StackValidationArgs) -> list[Any]:
    """What other buckets' server access logging points at (names, and the resources themselves)."""
    targets: list[Any] = []
    for bucket in _buckets(args):
        targets.append(as_map(bucket.props.get("logging")).get("targetBucket"))
    for logging in (r for r in args.resources if r.resource_type in LOGGING):
        targets.append(logging.props.get("targetBucket"))
        targets.extend(logging.property_dependencies.get("targetBucket", []))
    return [t for t in targets if t is not None]


@stack_rule(
    "aws-s3-bucket-enable-access-logging", Severity.LOW,
    "Buckets log requests to a log bucket (log destinations themselves excepted).",
    fix="Add an aws.s3.BucketLogging with target_bucket=<the log bucket>.",
    anchors=Anchors(awsguard=["s3-bucket-logging-enabled"], checkov=["CKV_AWS_18"], trivy=["AVD-AWS-0089"],
                    securityhub=["S3.9"]),
    level=EnforcementLevel.ADVISORY,
    needs="TODO",
)
def access_logging(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Buckets log requests to a log bucket, except the buckets that are log destinations themselves."""
    targets = _log_targets(args)
    for bucket in _buckets(args):
        destination = _is_log_bucket(args, bucket) or bucket in targets or any(
            t is not None and t in (bucket.props.get("bucket"), bucket.props.get("id")) for t in targets)
        if destination:
            continue
        if as_map(bucket.props.get("logging")).get("targetBucket") or _side(args, bucket, LOGGING):
            continue
        report_violation(f"Bucket '{bucket.name}' does not log requests (no aws.s3.BucketLogging); access to its "
                         "objects could not be audited.", bucket.urn)


POLICIES = policies_of(__name__)
