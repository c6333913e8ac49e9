"""Physical names for resources whose AWS name is limited in length or characters.

Pulumi auto-names a resource ``<logical name>-<7 random characters>``, and our logical names
carry prefix, stack and component (``sark-production-lb-v0-1-0-tg``). For most types AWS
allows 255 characters or more and that is fine; for the types below it is not: a target
group auto-named ``sark-production-lb-v0-1-0-tg-xxxxxxx`` is 36 characters against AWS's 32,
and a longer stack name pushes the backup names past 50. The provider refuses such a name at
preview (pulumi/pulumi-aws ``provider/resources.go`` declares the maximum for the types it
knows) or AWS refuses it at ``pulumi up``.

:func:`bounded_name` gives those resources explicit names: a readable part, cut to fit,
then ``-`` and 8 hex characters of a SHA-256 over the inputs that make the name unique
(stack, release, ...). The name is stable from run to run and changes only when those
inputs do. :data:`NAME_LIMITS` records AWS's limits for every named type the program
creates; ``tests/test_resource_names.py`` checks every name of the whole program against it
for a 20-character stack name and 20-character release tags.

Limits (AWS API references): Elastic Load Balancing v2 ``CreateLoadBalancer`` /
``CreateTargetGroup`` (32; letters, digits, hyphens; no hyphen first or last; a load balancer
name must not start with ``internal-``); AWS Backup ``CreateBackupVault`` (2-50,
``[a-zA-Z0-9-_]``), ``CreateBackupPlan`` and ``CreateBackupSelection`` (1-50,
``[a-zA-Z0-9-_.]``); IAM ``CreateRole`` (64), ``CreateInstanceProfile`` (128),
``PutRolePolicy`` (128); ElastiCache ``CreateReplicationGroup`` (40, lowercase); RDS
``CreateDBInstance`` (63); S3 bucket names (63; ``bucket_prefix`` at most 37 in the
terraform-provider-aws schema); Lambda function (64); EventBridge rule (64); the others 128
and more.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

DIGEST_LENGTH = 8
AUTO_SUFFIX_LENGTH = 8
"""What Pulumi's auto-naming appends to a logical name: ``-`` and 7 random characters."""

TARGET_GROUP_NAME_LIMIT = 32
LOAD_BALANCER_NAME_LIMIT = 32
BACKUP_NAME_LIMIT = 50
BUCKET_PREFIX_LIMIT = 37


@dataclass(frozen=True)
class NameLimit:
    """AWS's rule for one resource type's name."""

    prop: str
    """Input property holding the name (camelCase, as recorded)."""

    max_length: int
    """Longest name AWS accepts."""

    pattern: str = r"[\x21-\x7e]+"
    """Characters AWS accepts (a full-match regular expression)."""

    auto_named: bool = True
    """Whether Pulumi fills the property with ``<logical name>-<7 random>`` when it is not set."""


_ALNUM_HYPHEN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"

NAME_LIMITS: Mapping[str, NameLimit] = {
    "aws:lb/targetGroup:TargetGroup": NameLimit("name", TARGET_GROUP_NAME_LIMIT, _ALNUM_HYPHEN),
    "aws:lb/loadBalancer:LoadBalancer": NameLimit("name", LOAD_BALANCER_NAME_LIMIT, r"(?!internal-)" + _ALNUM_HYPHEN),
    "aws:backup/vault:Vault": NameLimit("name", BACKUP_NAME_LIMIT, r"[A-Za-z0-9_-]{2,}"),
    "aws:backup/plan:Plan": NameLimit("name", BACKUP_NAME_LIMIT, r"[A-Za-z0-9_.-]+"),
    "aws:backup/selection:Selection": NameLimit("name", BACKUP_NAME_LIMIT, r"[A-Za-z0-9_.-]+"),
    "aws:iam/role:Role": NameLimit("name", 64, r"[\w+=,.@-]+"),
    "aws:iam/instanceProfile:InstanceProfile": NameLimit("name", 128, r"[\w+=,.@-]+"),
    "aws:iam/rolePolicy:RolePolicy": NameLimit("name", 128, r"[\w+=,.@-]+"),
    "aws:elasticache/replicationGroup:ReplicationGroup": NameLimit("replicationGroupId", 40, r"[a-z][a-z0-9-]*"),
    "aws:elasticache/parameterGroup:ParameterGroup": NameLimit("name", 255, r"[a-z][a-z0-9-]*"),
    "aws:elasticache/subnetGroup:SubnetGroup": NameLimit("name", 255, r"[a-z0-9-]+"),
    "aws:rds/instance:Instance": NameLimit("identifier", 63, r"[a-z][a-z0-9-]*"),
    "aws:rds/parameterGroup:ParameterGroup": NameLimit("name", 255, r"[a-z][a-z0-9-]*"),
    "aws:rds/subnetGroup:SubnetGroup": NameLimit("name", 255, r"[a-z0-9 ._-]+"),
    "aws:lambda/function:Function": NameLimit("name", 64, r"[A-Za-z0-9_-]+"),
    "aws:cloudwatch/eventRule:EventRule": NameLimit("name", 64, r"[\w.-]+"),
    "aws:cloudwatch/logGroup:LogGroup": NameLimit("name", 512, r"[\w./#-]+"),
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": NameLimit("policyName", 255, auto_named=False),
    "aws:cloudwatch/metricAlarm:MetricAlarm": NameLimit("name", 255),
    "aws:cloudwatch/dashboard:Dashboard": NameLimit("dashboardName", 255, r"[A-Za-z0-9_-]+", auto_named=False),
    "aws:autoscaling/group:Group": NameLimit("name", 255),
    "aws:autoscaling/policy:Policy": NameLimit("name", 255),
    "aws:ec2/launchTemplate:LaunchTemplate": NameLimit("name", 128, r"[\w()./-]+"),
    "aws:ec2/securityGroup:SecurityGroup": NameLimit("name", 255),
    "aws:wafv2/webAcl:WebAcl": NameLimit("name", 128, r"[\w-]+"),
    "aws:sns/topic:Topic": NameLimit("name", 256, r"[A-Za-z0-9_-]+"),
    "aws:ssm/document:Document": NameLimit("name", 128, r"[A-Za-z0-9_.-]+", auto_named=False),
    "aws:ssm/parameter:Parameter": NameLimit("name", 2048, r"[A-Za-z0-9_./-]+"),
    "aws:secretsmanager/secret:Secret": NameLimit("name", 512, r"[A-Za-z0-9/_+=.@-]+"),
    "aws:kms/alias:Alias": NameLimit("name", 256, r"alias/[A-Za-z0-9/_-]+"),
}
"""AWS's name rule for every named resource type the program creates (see the module docstring)."""


def digest(*parts: object) -> str:
    """8 hex characters of SHA-256 over ``parts`` (stable across runs and machines)."""
    return hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:DIGEST_LENGTH]


def bounded_name(readable: str, limit: int, *unique: object, allowed: str = "a-z0-9") -> str:
    """``<readable, cut to fit>-<digest of unique>``: at most ``limit`` characters.

    ``readable`` is lower-cased and every run of characters outside ``allowed`` (plus ``-``)
    becomes one ``-``; the result never starts or ends with a hyphen and never starts with
    ``internal-`` (which would read as an internal load balancer).
    """
    if limit < DIGEST_LENGTH + 2:
        raise ValueError(f"bounded_name: limit {limit} leaves no room for a name")
    slug = re.sub(rf"[^{allowed}]+", "-", readable.lower()).strip("-")
    if slug == "internal" or slug.startswith("internal-"):
        slug = "int" + slug.removeprefix("internal")
    slug = slug[: limit - DIGEST_LENGTH - 1].rstrip("-")
    suffix = digest(*unique) if unique else digest(readable)
    return f"{slug}-{suffix}" if slug else suffix
