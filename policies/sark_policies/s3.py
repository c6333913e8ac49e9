"""S3 rules for the stack's buckets (anchors section I: the load balancer's access-log bucket).

pulumi-aws 7 configures a bucket through side resources (public access block, encryption,
lifecycle, versioning, policy, ACL), each pointing at the bucket by name. What a side resource
says is checked on that resource itself, before it is created (resource rules): every public
access block flag, public canned ACLs and grants, the default encryption algorithm, the
TLS-only statement of a bucket policy (its ``Resource`` must be the bucket named by the
policy's own ``bucket`` input). That a bucket *has* each side resource needs the other
resources: stack rules find, for every bucket, the side resource whose ``bucket`` input came
from it (property dependency, known in a first preview) or names it.

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
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    Severity,
    StackValidationArgs,
)

from ._base import Anchors, policies_of, resource_rule, settings, stack_rule
from ._graph import refers, undecided
from ._props import as_bool, as_int, as_list, as_map, known

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


_PUBLIC_ANCHORS = Anchors(compliance=["aws-s3-bucket-disallow-public-read"],
                          checkov=["CKV_AWS_53", "CKV_AWS_54", "CKV_AWS_55", "CKV_AWS_56", "CKV2_AWS_6"],
                          trivy=["AVD-AWS-0086", "AVD-AWS-0087", "AVD-AWS-0091", "AVD-AWS-0093", "AVD-AWS-0094"],
                          securityhub=["S3.1", "S3.8"])
_ENCRYPTION_ANCHORS = Anchors(compliance=["aws-s3-bucket-enable-server-side-encryption"], checkov=["CKV_AWS_19"],
                              trivy=["AVD-AWS-0088"])


def _buckets(args: StackValidationArgs) -> list[PolicyResource]:
    return [r for r in args.resources if r.resource_type in BUCKETS]


def _refers(resource: PolicyResource, bucket: PolicyResource, key: str = "bucket") -> bool:
    return refers(resource, key, bucket, ("bucket", "id"))


def _side(args: StackValidationArgs, bucket: PolicyResource, types: Sequence[str]) -> list[PolicyResource]:
    return [r for r in args.resources if r.resource_type in types and _refers(r, bucket)]


def _waiting(args: StackValidationArgs, types: Sequence[str]) -> bool:
    """Whether a side resource of ``types`` cannot be matched to its bucket yet (then a bucket
    without one is waited for, not reported)."""
    return any(undecided(r, "bucket") for r in args.resources if r.resource_type in types)


def _missing(args: StackValidationArgs, types: Sequence[str], inline: str | None = None) -> list[PolicyResource]:
    """The buckets with no side resource of ``types`` (nor the legacy ``inline`` setting)."""
    if _waiting(args, types):
        return []
    return [b for b in _buckets(args) if not _side(args, b, types) and not (inline and known(b.props, inline))]


# --------------------------------------------------------------------------------------
# Resource rules: what each side resource (or the bucket's legacy inline setting) says
# --------------------------------------------------------------------------------------

@resource_rule(
    "aws-s3-bucket-disallow-public-access", PUBLIC_ACCESS_BLOCK, Severity.HIGH,
    "Every bucket blocks public ACLs and policies (all four public access block settings).",
    fix="Set block_public_acls, block_public_policy, ignore_public_acls and restrict_public_buckets all True on "
        "the aws.s3.BucketPublicAccessBlock.",
    anchors=_PUBLIC_ANCHORS,
)
def public_access_blocked(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Each of the four public access block flags is true."""
    off = [flag for flag in PUBLIC_ACCESS_FLAGS if as_bool(args.props.get(flag)) is not True]
    if off:
        report_violation(f"The public access block leaves {', '.join(off)} off; all four must be true.", None)


def _public_grants(grants: Sequence[Any]) -> list[str]:
    found = []
    for grant in (as_map(g) for g in grants):
        uri = grant.get("uri") or as_map(grant.get("grantee")).get("uri")
        if uri in PUBLIC_GRANTEES:
            found.append(str(uri).rsplit("/", 1)[-1])
    return found


@resource_rule(
    "aws-s3-bucket-disallow-public-acl", (*BUCKETS, *ACL), Severity.CRITICAL,
    "No bucket grants public access through a canned ACL or ACL grants.",
    fix="Remove the public-read / public-read-write / authenticated-read ACL and AllUsers / AuthenticatedUsers "
        "grants; set aws.s3.BucketOwnershipControls to BucketOwnerEnforced (ACLs off).",
    anchors=Anchors(compliance=["aws-s3-bucket-disallow-public-read"], securityhub=["S3.1", "S3.8"]),
)
def no_public_acl(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Neither the bucket's legacy ``acl``/``grants`` nor an ACL resource grants access to everyone."""
    props = args.props
    if args.resource_type in BUCKETS:
        canned, grants = props.get("acl"), as_list(props.get("grants"))
    else:
        canned, grants = props.get("acl"), as_list(as_map(props.get("accessControlPolicy")).get("grants"))
    if canned in PUBLIC_CANNED_ACLS:
        report_violation(f"The canned ACL is {canned}; objects would be readable outside the account.", None)
    public = _public_grants(grants)
    if public:
        report_violation(f"The ACL grants access to {', '.join(sorted(set(public)))}.", None)


def _algorithms(resource_type: str, props: Any) -> list[Any] | None:
    """The default encryption algorithms a resource declares; None for a bucket without the inline setting."""
    if resource_type in BUCKETS:
        legacy = as_map(as_map(props.get("serverSideEncryptionConfiguration")).get("rule"))
        return [as_map(legacy.get("applyServerSideEncryptionByDefault")).get("sseAlgorithm")] if legacy else None
    return [as_map(as_map(rule).get("applyServerSideEncryptionByDefault")).get("sseAlgorithm")
            for rule in as_list(props.get("rules"))]


@resource_rule(
    "aws-s3-bucket-enable-server-side-encryption", (*ENCRYPTION, *BUCKETS), Severity.HIGH,
    "Every bucket encrypts objects at rest by default.",
    fix="Give the aws.s3.BucketServerSideEncryptionConfiguration a rule with an allowed sse_algorithm (AES256 "
        "for ALB access-log buckets, which cannot use SSE-KMS; aws:kms elsewhere).",
    anchors=_ENCRYPTION_ANCHORS,
    config={"allowedAlgorithms": {"type": "array", "items": {"type": "string"},
                                  "default": ["AES256", "aws:kms", "aws:kms:dsse"],
                                  "description": "Accepted default encryption algorithms."}},
)
def encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The encryption configuration (or a bucket's legacy inline one) uses an allowed algorithm."""
    allowed = settings(args).strings("allowedAlgorithms")
    algorithms = _algorithms(args.resource_type, args.props)
    if algorithms is None:
        return  # a bucket configured through a side resource (aws-s3-bucket-require-encryption-configuration)
    if not algorithms or not all(a for a in algorithms):
        report_violation("The encryption configuration sets no default sseAlgorithm.", None)
    elif not all(a in allowed for a in algorithms):
        report_violation(f"sseAlgorithm is {', '.join(str(a) for a in algorithms)}; allowed: "
                         f"{', '.join(allowed)}.", None)


def _statements(policy: Any) -> list[Mapping[str, Any]]:
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            return []
    return [as_map(s) for s in as_list(as_map(policy).get("Statement"))]


def _covers_bucket(resources: Sequence[Any], bucket: str | None) -> bool:
    if "*" in resources:
        return True
    if not bucket:
        return False
    arn = re.compile(rf"^arn:aws[a-z-]*:s3:::{re.escape(bucket)}$")
    objects = re.compile(rf"^arn:aws[a-z-]*:s3:::{re.escape(bucket)}/\*$")
    return any(arn.match(str(r)) for r in resources) and any(objects.match(str(r)) for r in resources)


def _denies_plain_http(statement: Mapping[str, Any], bucket: str | None) -> bool:
    if statement.get("Effect") != "Deny" or statement.get("Principal") not in ("*", {"AWS": "*"}):
        return False
    actions = as_list(statement.get("Action")) or [statement.get("Action")]
    if not any(a in ("s3:*", "*") for a in actions):
        return False
    condition = as_map(as_map(statement.get("Condition")).get("Bool"))
    if str(condition.get("aws:SecureTransport")).lower() != "false":
        return False
    return _covers_bucket(as_list(statement.get("Resource")) or [statement.get("Resource")], bucket)


@resource_rule(
    "aws-s3-bucket-require-tls-only-policy", (*POLICY, *BUCKETS), Severity.MEDIUM,
    "Every bucket's policy denies requests that do not use TLS.",
    fix="Add a bucket policy statement: Effect Deny, Principal *, Action s3:*, Resource the bucket and bucket/*, "
        "Condition Bool aws:SecureTransport 'false'.",
    anchors=Anchors(securityhub=["S3.5"]),
)
def tls_only(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The bucket policy (or a bucket's legacy inline ``policy``) denies s3:* without TLS on the bucket it names."""
    document = args.props.get("policy")
    if args.resource_type in BUCKETS and document is None:
        return  # a bucket with a policy resource (aws-s3-bucket-require-bucket-policy)
    bucket = args.props.get("bucket")
    if not any(_denies_plain_http(s, bucket if isinstance(bucket, str) else None) for s in _statements(document)):
        report_violation(f"The policy has no statement denying s3:* to everyone when aws:SecureTransport is false on "
                         f"arn:aws:s3:::{bucket} and arn:aws:s3:::{bucket}/*.", None)


# --------------------------------------------------------------------------------------
# Stack rules: every bucket has its side resources
# --------------------------------------------------------------------------------------

@stack_rule(
    "aws-s3-bucket-require-public-access-block", Severity.HIGH,
    "Every bucket has a public access block.",
    fix="Add an aws.s3.BucketPublicAccessBlock with bucket=<bucket>.id and all four settings True.",
    needs="the public access blocks whose bucket came from the bucket (property dependency)",
    covered_by=["aws-s3-bucket-disallow-public-access"],
    anchors=_PUBLIC_ANCHORS,
)
def has_public_access_block(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Each bucket of the stack has a BucketPublicAccessBlock."""
    for bucket in _missing(args, PUBLIC_ACCESS_BLOCK):
        report_violation(f"Bucket '{bucket.name}' has no public access block.", bucket.urn)


@stack_rule(
    "aws-s3-bucket-require-encryption-configuration", Severity.HIGH,
    "Every bucket declares default server-side encryption.",
    fix="Add an aws.s3.BucketServerSideEncryptionConfiguration with bucket=<bucket>.id.",
    needs="the encryption configurations whose bucket came from the bucket (property dependency)",
    covered_by=["aws-s3-bucket-enable-server-side-encryption"],
    anchors=_ENCRYPTION_ANCHORS,
)
def has_encryption(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Each bucket has an encryption configuration (or the legacy inline one)."""
    for bucket in _missing(args, ENCRYPTION, "serverSideEncryptionConfiguration"):
        report_violation(f"Bucket '{bucket.name}' declares no server-side encryption configuration.", bucket.urn)


@stack_rule(
    "aws-s3-bucket-require-bucket-policy", Severity.MEDIUM,
    "Every bucket has a bucket policy (which must deny requests without TLS).",
    fix="Add an aws.s3.BucketPolicy with bucket=<bucket>.id whose document denies s3:* when aws:SecureTransport "
        "is false.",
    needs="the bucket policies whose bucket came from the bucket (property dependency)",
    covered_by=["aws-s3-bucket-require-tls-only-policy"],
    anchors=Anchors(securityhub=["S3.5"]),
)
def has_policy(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Each bucket has a policy resource (or the legacy inline policy)."""
    for bucket in _missing(args, POLICY, "policy"):
        report_violation(f"Bucket '{bucket.name}' has no bucket policy, so nothing denies requests without TLS.",
                         bucket.urn)


def _is_log_bucket(args: StackValidationArgs, bucket: PolicyResource) -> bool:
    for lb in (r for r in args.resources if r.resource_type in LOAD_BALANCERS):
        if bucket in lb.property_dependencies.get("accessLogs", []):
            return True
        logged = known(as_map(known(lb.props, "accessLogs")), "bucket")
        if isinstance(logged, str) and logged in (known(bucket.props, "bucket"), known(bucket.props, "id")):
            return True
    return as_map(known(bucket.props, "tags")).get("sark:purpose") == "access-logs"


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
    fix="Add an aws.s3.BucketLifecycleConfiguration rule with status 'Enabled' and expiration.days at least the "
        "retention period (config accessLogRetentionDays).",
    needs="whether the bucket is a log destination (a load balancer's accessLogs) and its lifecycle configuration",
    anchors=Anchors(checkov=["CKV2_AWS_61"], securityhub=["S3.13"],
                    checklist=["Pre-Deployment 3.3 (log retention 30-90 days)"]),
    config={"minRetentionDays": {"type": "integer", "default": 30,
                                 "description": "Fewest days access logs must be kept."}},
)
def log_retention(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Access-log buckets keep logs at least ``minRetentionDays`` and then expire them."""
    minimum = settings(args).int("minRetentionDays")
    waiting = _waiting(args, LIFECYCLE)
    for bucket in (b for b in _buckets(args) if _is_log_bucket(args, b)):
        rules = [as_map(rule) for config in _side(args, bucket, LIFECYCLE)
                 for rule in as_list(config.props.get("rules"))]
        rules += [as_map(rule) for rule in as_list(bucket.props.get("lifecycleRules"))]
        days = _expiration_days(rules)
        if not days and not waiting:
            report_violation(f"Log bucket '{bucket.name}' has no enabled lifecycle rule expiring objects; logs "
                             f"must be kept {minimum}+ days and then expire.", bucket.urn)
        elif days and min(days) < minimum:
            report_violation(f"Log bucket '{bucket.name}' expires objects after {min(days)} days; it must keep them "
                             f"at least {minimum} days.", bucket.urn)


@stack_rule(
    "aws-s3-bucket-enable-versioning", Severity.LOW,
    "Buckets keep object versions.",
    fix="Add an aws.s3.BucketVersioning with versioning_configuration status 'Enabled'.",
    needs="the versioning resources whose bucket came from the bucket (property dependency)",
    anchors=Anchors(checkov=["CKV_AWS_21"], trivy=["AVD-AWS-0090"], securityhub=["S3.14"]),
    level=EnforcementLevel.ADVISORY,
)
def versioned(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Buckets keep object versions, so an overwrite or delete can be undone."""
    if _waiting(args, VERSIONING):
        return
    for bucket in _buckets(args):
        states = [as_map(v.props.get("versioningConfiguration")).get("status")
                  for v in _side(args, bucket, VERSIONING)]
        if as_bool(as_map(known(bucket.props, "versioning")).get("enabled")) is True:
            states.append("Enabled")
        if "Enabled" not in states:
            report_violation(f"Bucket '{bucket.name}' does not have versioning enabled.", bucket.urn)


def _is_log_target(args: StackValidationArgs, bucket: PolicyResource) -> bool:
    """Whether another bucket's server access logging writes into ``bucket``."""
    if any(as_map(known(b.props, "logging")).get("targetBucket") in (known(bucket.props, "bucket"),
                                                                      known(bucket.props, "id"))
           for b in _buckets(args) if b is not bucket):
        return True
    return any(refers(r, "targetBucket", bucket, ("bucket", "id")) for r in args.resources
               if r.resource_type in LOGGING)


@stack_rule(
    "aws-s3-bucket-enable-access-logging", Severity.LOW,
    "Buckets log requests to a log bucket (log destinations themselves excepted).",
    fix="Add an aws.s3.BucketLogging with target_bucket=<the log bucket>.",
    needs="the logging resources of the bucket, and whether the bucket is itself a log destination",
    anchors=Anchors(awsguard=["s3-bucket-logging-enabled"], checkov=["CKV_AWS_18"], trivy=["AVD-AWS-0089"],
                    securityhub=["S3.9"]),
    level=EnforcementLevel.ADVISORY,
)
def access_logging(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Buckets log requests to a log bucket, except the buckets that are log destinations themselves."""
    if _waiting(args, LOGGING):
        return
    for bucket in _buckets(args):
        if _is_log_bucket(args, bucket) or _is_log_target(args, bucket):
            continue
        if as_map(known(bucket.props, "logging")).get("targetBucket") or _side(args, bucket, LOGGING):
            continue
        report_violation(f"Bucket '{bucket.name}' does not log requests (no aws.s3.BucketLogging); access to its "
                         "objects could not be audited.", bucket.urn)


POLICIES = policies_of(__name__)
