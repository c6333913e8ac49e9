"""Physical names, exactly as pulumi-aws fills them in at ``Check``, and the AWS limits they must meet.

This is the one module that generates names. When a program leaves a resource's name
property unset, the AWS provider's ``Check`` fills it in before anything else sees the
resource, so the name is **known** in a first preview and is what policies, the state and
AWS get. The rule (``info.ComputeAutoNameDefault`` in pulumi/pulumi-terraform-bridge
``pkg/tfbridge/info/autonaming.go``, calling ``resource.NewUniqueName`` in pulumi/pulumi
``sdk/go/common/resource/resource_id.go``) is::

    transform(logical name) + separator + 7 random hex characters

and it fails when ``len(prefix) + 7 > maxlen`` with ``name '<prefix>' plus 7 random chars is
longer than maximum length <maxlen>`` (wrapped as ``could not make instance of '<type>'``).
A real preview draws the 7 characters from a per-resource random seed; offline they are the
first 7 hex digits of sha256(URN), so reruns print the same names.

Names the program sets explicitly, and generated ones, are then checked against the limits
the Terraform provider validates in ``Check`` (``ValidateFunc``); a violation is a check
failure that fails the real preview (``issueCheckErrors`` in pulumi/pulumi
``pkg/resource/deploy/step_generator.go``), reported as ``<reason>. Examine values at
'<name>.<property>'.`` (pulumi-terraform-bridge ``pkg/tfbridge/check_failures.go``).

Sources, per type (pulumi-aws ``provider/resources.go`` read at commit 00ba5ea5; types not
listed there get ``setAutonaming(255, "-")`` for a property called ``name``; the ELBv2 limits
and messages are from terraform-provider-aws ``internal/service/elbv2/validate.go``; the other
limits are the AWS API limits the Terraform validators encode, with our own wording):

========================================  ====================  ================================  =================
type                                      property              auto-name (pulumi-aws)            AWS limit
========================================  ====================  ================================  =================
aws:lb/targetGroup:TargetGroup            name                  AutoName(32, "-")                 1-32 [0-9A-Za-z-]
aws:lb/loadBalancer:LoadBalancer          name                  default (255, "-")                1-32 [0-9A-Za-z-]
aws:autoscaling/group:Group               name                  default (255, "-")                1-255
aws:backup/plan:Plan                      name                  default (255, "-")                1-50 [A-Za-z0-9_.-]
aws:backup/selection:Selection            name                  default (255, "-")                1-50 [A-Za-z0-9_.-]
aws:backup/vault:Vault                    name                  default (255, "-")                2-50 [A-Za-z0-9_-]
aws:cloudwatch/dashboard:Dashboard        dashboardName         required, not generated           1-255 [A-Za-z0-9_-]
aws:cloudwatch/eventRule:EventRule        name                  AutoName(64, "-")                 1-64 [A-Za-z0-9_.-]
aws:cloudwatch/eventTarget:EventTarget    targetId              AutoName(255, "-")                1-64 [A-Za-z0-9_.-]
aws:cloudwatch/logGroup:LogGroup          name                  default (255, "-")                1-512 [A-Za-z0-9._/#-]
aws:cloudwatch/metricAlarm:MetricAlarm    name (alarm_name)     AutoName(255, "-")                1-255
aws:ec2/launchTemplate:LaunchTemplate     name                  default (255, "-")                3-128 see pattern
aws:ec2/securityGroup:SecurityGroup       name                  default (255, "-")                1-255, not "sg-*"
aws:elasticache/parameterGroup            name                  default (255, "-")                1-255 [A-Za-z0-9-]
aws:elasticache/replicationGroup          replicationGroupId    AutoNameTransform(40, lower)      1-40, letter first
aws:elasticache/subnetGroup               name                  default (255, "-")                1-255 [A-Za-z0-9-]
aws:iam/instanceProfile:InstanceProfile   name                  default (255, "-")                1-128 [\\w+=,.@-]
aws:iam/role:Role                         name                  AutoName(64, "-")                 1-64 [\\w+=,.@-]
aws:iam/rolePolicy:RolePolicy             name                  default (255, "-")                1-128 [\\w+=,.@-]
aws:kms/alias:Alias                       name                  (238, "-", PostTransform alias/)  alias/..., ≤256
aws:lambda/function:Function              name (function_name)  AutoName(64, "-")                 1-64 [A-Za-z0-9_-]
aws:lambda/permission:Permission          statementId           AutoName(100, "-")                1-100 [A-Za-z0-9_-]
aws:rds/instance:Instance                 identifier            NewUniqueHex(name, 7, 255), no    1-63 [a-z0-9-], letter
                                                                separator, no transform           first, no "--"/"-$"
aws:rds/parameterGroup:ParameterGroup     name                  default (255, "-")                1-255 [a-z0-9-]
aws:rds/subnetGroup:SubnetGroup           name                  default (255, "-")                1-255 [a-z0-9 ._-]
aws:s3/bucket:Bucket (+ BucketV2)         bucket                AutoNameTransform(63, lower)      3-63 [a-z0-9.-]
aws:secretsmanager/secret:Secret          name                  default (255, "-")                1-512 [\\w/+=.@-]
aws:sns/topic:Topic                       name                  (80, "-", ".fifo" if fifoTopic)   1-256 [A-Za-z0-9_-]
aws:ssm/document:Document                 name                  default (255, "-")                3-128 [A-Za-z0-9_.-]
aws:ssm/parameter:Parameter               name                  default (255, "-")                1-2048
aws:wafv2/webAcl:WebAcl                   name                  default (255, "-")                1-128 [A-Za-z0-9_-]
aws:route53/record:Record                 name                  never auto-named (a DNS name)     (not checked)
========================================  ====================  ================================  =================

Other resource types the program uses (VPC, subnets, routes, gateways, EIPs, instances,
volumes, keys, listeners, rules, attachments, security-group rules, certificates, secret
versions, random passwords, commands) have no name property to generate.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

RANDOM_LENGTH = 7
"""Random characters pulumi-aws appends (``Randlen: 7`` in every AutoName above)."""


@dataclass(frozen=True)
class Limit:
    """What AWS (and the Terraform validator) accept for one name property."""

    max_length: int
    min_length: int = 1
    pattern: str | None = None
    """Allowed characters, as a full-match regex."""
    pattern_message: str = ""
    extra: tuple[tuple[str, str], ...] = ()
    """``(regex that must NOT match, message)`` pairs, e.g. a leading hyphen."""
    message_style: str = "length"
    """``length``: Terraform's ``StringLenBetween`` wording; ``elbv2``: elbv2/validate.go wording."""


@dataclass(frozen=True)
class NameRule:
    """How one resource type's name property is generated and what it must satisfy."""

    property: str
    """The Pulumi (camelCase) property."""
    limit: Limit
    max_length: int = 255
    """pulumi-aws's ``Maxlen`` for the generated name (0: none)."""
    separator: str = "-"
    transform: Callable[[str], str] | None = None
    post_prefix: str = ""
    """PostTransform prefix (KMS aliases get ``alias/``)."""
    fifo_suffix_from: str = ""
    """Input that, when true, makes the PostTransform append ``.fifo`` (SNS topics)."""
    generated: bool = True
    """False for properties pulumi-aws never fills in."""
    tf_attribute: str = "name"
    """The Terraform attribute the validator messages name."""


_IAM = r"[\w+=,.@-]+"

_ELB_LIMIT = Limit(max_length=32, pattern=r"[0-9A-Za-z-]+", message_style="elbv2",
                   extra=((r"^-", "cannot begin with a hyphen"), (r"-$", "cannot end with a hyphen")))
_LB_LIMIT = Limit(max_length=32, pattern=r"[0-9A-Za-z-]+", message_style="elbv2",
                  extra=((r"^-", "cannot begin with a hyphen"), (r"-$", "cannot end with a hyphen"),
                         (r"^internal-", 'cannot begin with "internal-"')))
_RDS_IDENT = (
    (r"^[^a-z]", "must begin with a lowercase letter"),
    (r"--", "cannot contain two consecutive hyphens"),
    (r"-$", "cannot end with a hyphen"),
)
_lower = str.lower

RULES: dict[str, NameRule] = {
    "aws:lb/targetGroup:TargetGroup": NameRule("name", _ELB_LIMIT, max_length=32),
    "aws:alb/targetGroup:TargetGroup": NameRule("name", _ELB_LIMIT, max_length=255),
    "aws:lb/loadBalancer:LoadBalancer": NameRule("name", _LB_LIMIT),
    "aws:alb/loadBalancer:LoadBalancer": NameRule("name", _LB_LIMIT),
    "aws:autoscaling/group:Group": NameRule("name", Limit(255)),
    "aws:backup/plan:Plan": NameRule("name", Limit(50, pattern=r"[A-Za-z0-9_.-]+")),
    "aws:backup/selection:Selection": NameRule("name", Limit(50, pattern=r"[A-Za-z0-9_.-]+")),
    "aws:backup/vault:Vault": NameRule("name", Limit(50, min_length=2, pattern=r"[A-Za-z0-9_-]+")),
    "aws:cloudwatch/dashboard:Dashboard": NameRule("dashboardName", Limit(255, pattern=r"[A-Za-z0-9_-]+"),
                                                   generated=False, tf_attribute="dashboard_name"),
    "aws:cloudwatch/eventRule:EventRule": NameRule("name", Limit(64, pattern=r"[A-Za-z0-9_.-]+"), max_length=64),
    "aws:cloudwatch/eventTarget:EventTarget": NameRule("targetId", Limit(64, pattern=r"[A-Za-z0-9_.-]+"),
                                                       tf_attribute="target_id"),
    "aws:cloudwatch/logGroup:LogGroup": NameRule("name", Limit(512, pattern=r"[A-Za-z0-9._/#-]+")),
    "aws:cloudwatch/metricAlarm:MetricAlarm": NameRule("name", Limit(255), tf_attribute="alarm_name"),
    "aws:ec2/launchTemplate:LaunchTemplate": NameRule("name", Limit(128, min_length=3,
                                                                    pattern=r"[A-Za-z0-9().\-/_]+")),
    "aws:ec2/securityGroup:SecurityGroup": NameRule("name", Limit(255, extra=((r"^sg-", 'cannot begin with "sg-"'),))),
    "aws:elasticache/parameterGroup:ParameterGroup": NameRule("name", Limit(255, pattern=r"[A-Za-z0-9-]+")),
    "aws:elasticache/replicationGroup:ReplicationGroup": NameRule(
        "replicationGroupId", Limit(40, pattern=r"[0-9A-Za-z-]+", extra=(
            (r"^[^A-Za-z]", "must begin with a letter"), (r"--", "cannot contain two consecutive hyphens"),
            (r"-$", "cannot end with a hyphen"))),
        max_length=40, transform=_lower, tf_attribute="replication_group_id"),
    "aws:elasticache/subnetGroup:SubnetGroup": NameRule("name", Limit(255, pattern=r"[A-Za-z0-9-]+")),
    "aws:iam/instanceProfile:InstanceProfile": NameRule("name", Limit(128, pattern=_IAM)),
    "aws:iam/role:Role": NameRule("name", Limit(64, pattern=_IAM), max_length=64),
    "aws:iam/rolePolicy:RolePolicy": NameRule("name", Limit(128, pattern=_IAM)),
    "aws:kms/alias:Alias": NameRule("name", Limit(256, pattern=r"alias/[A-Za-z0-9/_-]+",
                                                  extra=((r"^alias/aws/", 'cannot begin with "alias/aws/"'),)),
                                    max_length=238, post_prefix="alias/"),
    "aws:lambda/function:Function": NameRule("name", Limit(64, pattern=r"[A-Za-z0-9_-]+"), max_length=64,
                                             tf_attribute="function_name"),
    "aws:lambda/permission:Permission": NameRule("statementId", Limit(100, pattern=r"[A-Za-z0-9_-]+"),
                                                 max_length=100, tf_attribute="statement_id"),
    "aws:rds/instance:Instance": NameRule("identifier", Limit(63, pattern=r"[0-9a-z-]+", extra=_RDS_IDENT),
                                          separator="", tf_attribute="identifier"),
    "aws:rds/parameterGroup:ParameterGroup": NameRule("name", Limit(255, pattern=r"[0-9a-z-]+", extra=_RDS_IDENT)),
    "aws:rds/subnetGroup:SubnetGroup": NameRule("name", Limit(255, pattern=r"[0-9a-z ._-]+")),
    "aws:s3/bucket:Bucket": NameRule("bucket", Limit(63, min_length=3, pattern=r"[0-9a-z.-]+", extra=(
        (r"^[^0-9a-z]", "must begin with a lowercase letter or number"),
        (r"[^0-9a-z]$", "must end with a lowercase letter or number"))), max_length=63, transform=_lower,
        tf_attribute="bucket"),
    "aws:secretsmanager/secret:Secret": NameRule("name", Limit(512, pattern=r"[A-Za-z0-9/_+=.@-]+")),
    "aws:sns/topic:Topic": NameRule("name", Limit(256, pattern=r"[A-Za-z0-9_-]+(\.fifo)?"), max_length=80,
                                    fifo_suffix_from="fifoTopic"),
    "aws:ssm/document:Document": NameRule("name", Limit(128, min_length=3, pattern=r"[A-Za-z0-9_.-]+")),
    "aws:ssm/parameter:Parameter": NameRule("name", Limit(2048)),
    "aws:wafv2/webAcl:WebAcl": NameRule("name", Limit(128, pattern=r"[A-Za-z0-9_-]+")),
    "aws:route53/record:Record": NameRule("name", Limit(255), generated=False),
}
RULES["aws:s3/bucketV2:BucketV2"] = RULES["aws:s3/bucket:Bucket"]


@dataclass(frozen=True)
class CheckFailure:
    """A name the provider's Check refuses: the real preview fails with this message."""

    urn: str
    type: str
    property: str
    message: str


@dataclass
class NameCheck:
    """What Check did to one resource's name property."""

    filled: dict[str, str] = field(default_factory=dict)
    """Properties the provider filled in (known at preview)."""
    failures: list[CheckFailure] = field(default_factory=list)


def random_suffix(urn: str, length: int = RANDOM_LENGTH) -> str:
    """The deterministic stand-in for the provider's random characters: sha256(URN) in hex."""
    return hashlib.sha256(urn.encode()).hexdigest()[:length]


def autoname(rule: NameRule, logical_name: str, urn: str, inputs: Mapping[str, Any] | None = None) -> str:
    """The name pulumi-aws generates; raises ValueError with the provider's message if too long."""
    base = rule.transform(logical_name) if rule.transform else logical_name
    prefix = base + rule.separator
    if rule.max_length and len(prefix) + RANDOM_LENGTH > rule.max_length:
        raise ValueError(f"name '{prefix}' plus {RANDOM_LENGTH} random chars is longer than maximum length "
                         f"{rule.max_length}")
    name = prefix + random_suffix(urn)
    if rule.post_prefix and not name.startswith(rule.post_prefix):
        name = rule.post_prefix + name
    if rule.fifo_suffix_from and (inputs or {}).get(rule.fifo_suffix_from) is True:
        name += ".fifo"
    return name


def limit_problems(rule: NameRule, value: str) -> list[str]:
    """Why ``value`` breaks the AWS limit of ``rule`` (empty when it is fine)."""
    limit, key = rule.limit, rule.tf_attribute
    problems: list[str] = []
    if limit.message_style == "elbv2":
        # Wording of terraform-provider-aws internal/service/elbv2/validate.go.
        if len(value) > limit.max_length:
            problems.append(f'"{key}" cannot be longer than {limit.max_length} characters: "{value}"')
        if limit.pattern and not re.fullmatch(limit.pattern, value):
            problems.append(f'only alphanumeric characters and hyphens allowed in "{key}": "{value}"')
        problems += [f'"{key}" {message}: "{value}"' for regex, message in limit.extra if re.search(regex, value)]
        return problems
    if not limit.min_length <= len(value) <= limit.max_length:
        # Terraform's validation.StringLenBetween wording.
        problems.append(f"expected length of {key} to be in the range ({limit.min_length} - {limit.max_length}), "
                        f"got {value}")
    if limit.pattern and not re.fullmatch(limit.pattern, value):
        problems.append(f'"{key}" may only contain characters matching {limit.pattern}: "{value}"')
    problems += [f'"{key}" {message}: "{value}"' for regex, message in limit.extra if re.search(regex, value)]
    return problems


def check(type_: str, logical_name: str, urn: str, inputs: Mapping[str, Any],
          old_inputs: Mapping[str, Any] | None = None, *, is_unknown: Callable[[Any], bool]) -> NameCheck:
    """The name part of the provider's Check for one resource.

    :param inputs: the inputs as the engine sees them (plain values; secrets already unwrapped).
    :param old_inputs: the resource's inputs in the prior state, if it exists: an auto-name is kept
        from there, as the bridge does (``ComputeAutoNameDefault`` reuses the prior value).
    """
    result = NameCheck()
    rule = RULES.get(type_)
    if rule is None:
        return result
    prop = rule.property
    value = inputs.get(prop)
    if value is None and rule.generated and not inputs.get(f"{prop}Prefix"):
        previous = (old_inputs or {}).get(prop)
        if isinstance(previous, str) and previous:
            value = previous
        else:
            try:
                value = autoname(rule, logical_name, urn, inputs)
            except ValueError as error:
                result.failures.append(CheckFailure(urn, type_, prop, f"could not make instance of '{type_}': {error}"))
                return result
        result.filled[prop] = value
    if isinstance(value, str) and not is_unknown(value):
        for problem in limit_problems(rule, value):
            result.failures.append(CheckFailure(urn, type_, prop,
                                                f"{problem}. Examine values at '{logical_name}.{prop}'."))
    prefix = inputs.get(f"{prop}Prefix")
    if isinstance(prefix, str) and not is_unknown(prefix) and len(prefix) + 26 > rule.limit.max_length:
        # Terraform appends a 26-character unique id to a prefix (create.Name / id.PrefixedUniqueId).
        result.failures.append(CheckFailure(
            urn, type_, f"{prop}Prefix",
            f'"{rule.tf_attribute}_prefix" cannot be longer than {rule.limit.max_length - 26} characters: '
            f'"{prefix}". Examine values at \'{logical_name}.{prop}Prefix\'.'))
    return result
