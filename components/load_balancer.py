"""The internet-facing HTTPS load balancer in front of the SARK hosts (checklist 3.2, Deployment 1.2).

Creates:
- an S3 bucket for access logs (``protect=True``): public access blocked, ACLs disabled,
  SSE-S3 (AES256) encryption, versioning, expiry after ``access_log_retention_days``, and a
  policy that denies every request not made over TLS and lets only the ELB log delivery
  service write, under this load balancer's prefix;
- an application load balancer in the public subnets with the load-balancer security group,
  invalid header fields dropped, desync mitigation ``defensive`` or ``strictest``, deletion
  protection and access logs;
- the certificate: an existing ACM ARN, or a new ACM certificate for ``domain_name``,
  validated with DNS records in ``hosted_zone_id``; plus an alias record for the name;
- an HTTPS:443 listener (TLS 1.2/1.3 policy, HSTS, X-Content-Type-Options and
  X-Frame-Options added by the load balancer) whose default action answers 503 until a
  release takes traffic (the release's weighted forward rule, :mod:`components.release`),
  and a rule answering 404 for ``/metrics`` so Prometheus metrics never leave the VPC;
- an HTTP:80 listener that only redirects to HTTPS:443 with a 301;
- per live release (keyed by release tag): an HTTP:8000 target group with the checklist's
  health check (``/health`` every 10 s, unhealthy after 3, healthy after 2, matcher 200) and
  a listener rule that sends requests carrying ``X-Sark-Release: <tag>`` to it, from
  ``canary_source_cidrs`` only. That rule makes the load balancer health-check a new release
  before it takes any traffic (target groups no rule references are never checked) and lets
  operators smoke-test it; without the source condition any client knowing a tag could reach
  a release before its gate passed;
- optionally a WAF v2 web ACL: a per-client-IP rate limit (blocks above ``waf_rate_limit``
  requests per 5 minutes) before AWS managed rule groups, logging to a KMS-encrypted
  CloudWatch log group ``aws-waf-logs-<name>`` with retention (the ``aws-waf-logs-`` prefix is
  what WAF requires of a log group destination) and Authorization/Cookie headers redacted,
  associated with the load balancer with a create timeout long enough for a new load balancer
  to become active.

Names that AWS limits (load balancer and target groups: 32 characters) are explicit
(:func:`load_balancer_name`, :func:`target_group_name`; components/_names.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._names import (
    BUCKET_PREFIX_LIMIT,
    LOAD_BALANCER_NAME_LIMIT,
    TARGET_GROUP_NAME_LIMIT,
    bounded_name,
)
from components.app_hosts import version_key

HEALTH_CHECK_PATH = "/health"
METRICS_PATHS: tuple[str, ...] = ("/metrics", "/metrics/*")
RELEASE_HEADER = "X-Sark-Release"
LOG_PREFIX = "alb"
WAF_MANAGED_RULE_GROUPS: tuple[str, ...] = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
)
WAF_RATE_RULE = "rate-limit-per-ip"
WAF_LOG_GROUP_PREFIX = "aws-waf-logs-"
"""WAF logs only to CloudWatch log groups whose name starts so (WAF developer guide, "Sending web ACL
traffic logs to an Amazon CloudWatch Logs log group")."""
WAF_REDACTED_HEADERS: tuple[str, ...] = ("authorization", "cookie")
"""Headers left out of WAF logs: they carry the clients' tokens and sessions."""
WAF_ASSOCIATION_CREATE_TIMEOUT = "20m"
"""A new load balancer takes minutes to become active; WAF refuses the association until then, and
the provider's default (5 minutes) can run out (terraform-provider-aws wafv2 web_acl_association)."""
MAX_CANARY_SOURCES = 4
"""An ALB rule takes 5 condition values in all; the release header takes one."""
METRICS_RULE_PRIORITY = 1
TRAFFIC_RULE_PRIORITY = 50000
"""The release's catch-all forward rule; the last rule before the 503 default action."""


def load_balancer_name(name: str) -> str:
    """The load balancer's AWS name: the component name cut to fit 32 characters, plus a digest of it."""
    return bounded_name(name, LOAD_BALANCER_NAME_LIMIT, name)


def target_group_name(name: str, version: str, *, port: int, protocol: str = "HTTP",
                      target_type: str = "instance") -> str:
    """A release's target group name (at most 32 characters): ``<prefix>-<release>-<digest>``.

    The digest covers the component name (so prefix and stack), the release and the inputs
    whose change replaces a target group (port, protocol, target type): a replacement gets a
    new name, so Pulumi's create-before-delete never collides with the old group.
    """
    prefix = name.split("-", 1)[0]
    return bounded_name(f"{prefix}-{version_key(version)}", TARGET_GROUP_NAME_LIMIT, name, version, port, protocol,
                        target_type)


def log_bucket_prefix(name: str) -> str:
    """``<name>-logs-``, lower-cased, cut (with a digest) to the 37 characters terraform-provider-aws
    allows a ``bucket_prefix`` (internal/service/s3/bucket.go)."""
    plain = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if len(plain) + len("-logs-") > BUCKET_PREFIX_LIMIT:
        plain = bounded_name(plain, BUCKET_PREFIX_LIMIT - len("-logs-"), name)
    return f"{plain}-logs-"


def release_rule_priority(version: str) -> int:
    """A stable listener-rule priority per release tag, between the /metrics rule and the traffic rule.

    Stable, so a release's rule is never rewritten when another release comes or goes.
    """
    return 100 + int(hashlib.sha256(version.encode()).hexdigest()[:8], 16) % 40000


@dataclass(frozen=True, kw_only=True)
class LoadBalancerArgs:
    """Arguments of :class:`LoadBalancer`."""

    vpc_id: pulumi.Input[str]
    """VPC of the target groups."""

    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Public subnets (one per zone)."""

    security_group_id: pulumi.Input[str]
    """The load-balancer security group (``SecurityGroups.load_balancer_id``)."""

    region: str
    """AWS region (the access-log writer differs per region)."""

    versions: Sequence[str]
    """Live release tags; one target group each."""

    certificate_arn: str | None = None
    """An existing ACM certificate; None creates one for ``domain_name``."""

    domain_name: str | None = None
    """DNS name of the service (needed without ``certificate_arn``)."""

    hosted_zone_id: str | None = None
    """Route 53 zone of ``domain_name``; validation and alias records go here."""

    tls_policy: str = "ELBSecurityPolicy-TLS13-1-2-2021-06"
    """TLS policy of the HTTPS listener (TLS 1.2 and 1.3 only)."""

    hsts_max_age_seconds: int = 31536000
    """max-age of Strict-Transport-Security."""

    access_log_retention_days: int = 90
    """Days access logs are kept."""

    canary_source_cidrs: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Sources allowed to reach a release through its ``X-Sark-Release`` header (1 to 4 CIDRs), e.g.
    the operators' network, or the stack's NAT addresses (``/32``) for hosts in the VPC."""

    waf_enabled: bool = True
    """Attach a WAF web ACL with a rate limit, AWS managed rule groups and logging."""

    waf_rate_limit: int = 2000
    """Requests per 5 minutes from one client IP before the WAF blocks it."""

    waf_log_retention_days: int = 90
    """Days WAF logs are kept."""

    kms_key_arn: pulumi.Input[str] | None = None
    """Key that encrypts the WAF log group (required with ``waf_enabled``)."""

    deletion_protection: bool = True
    """Deletion protection on the load balancer."""

    desync_mitigation_mode: str = "defensive"
    """``defensive`` or ``strictest`` (``monitor`` is not allowed)."""

    app_port: int = 8000
    """Port the hosts serve on."""

    health_check_path: str = HEALTH_CHECK_PATH
    """Target health check path (checklist Deployment 1.2)."""

    legacy_log_delivery_account: bool = True
    """Also let the region's ELB account write logs: regions launched before August 2022 deliver
    from that account; newer ones only from the log delivery service principal (set False there)."""

    idle_timeout_seconds: int = 60
    """Connection idle timeout."""


class LoadBalancer(pulumi.ComponentResource):
    """ALB, listeners, target groups, certificate, access-log bucket and WAF."""

    load_balancer_arn: pulumi.Output[str]
    """ARN of the load balancer."""

    arn_suffix: pulumi.Output[str]
    """``app/<name>/<id>``, the LoadBalancer dimension of CloudWatch metrics."""

    dns_name: pulumi.Output[str]
    """DNS name AWS gives the load balancer."""

    zone_id: pulumi.Output[str]
    """Route 53 zone id of the load balancer (for alias records)."""

    https_listener_arn: pulumi.Output[str]
    """ARN of the HTTPS:443 listener."""

    http_listener_arn: pulumi.Output[str]
    """ARN of the HTTP:80 redirect listener."""

    target_group_arns: dict[str, pulumi.Output[str]]
    """Target group ARN per live release tag."""

    target_group_arn_suffixes: dict[str, pulumi.Output[str]]
    """Target group ``targetgroup/<name>/<id>`` per release (CloudWatch dimension)."""

    access_log_bucket: pulumi.Output[str]
    """Name of the access-log bucket."""

    service_url: pulumi.Output[str]
    """``https://<domain>`` (or the load balancer's DNS name without a domain)."""

    web_acl_arn: pulumi.Output[str] | None
    """ARN of the WAF web ACL, if enabled."""

    waf_log_group_name: pulumi.Output[str] | None = None
    """CloudWatch log group of the WAF logs, if the WAF is enabled."""

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:loadbalancer:LoadBalancer", name, None, opts)
        if not args.versions:
            raise pulumi.RunError(f"{name}: versions is empty; at least the current release needs a target group")
        if args.desync_mitigation_mode not in ("defensive", "strictest"):
            raise pulumi.RunError(f"{name}: desync_mitigation_mode {args.desync_mitigation_mode!r} is not allowed; "
                                  "expected defensive or strictest")
        if args.certificate_arn is None and not (args.domain_name and args.hosted_zone_id):
            raise pulumi.RunError(f"{name}: certificate_arn is not set; expected an ACM certificate ARN, or "
                                  "domain_name and hosted_zone_id to create one")
        if args.waf_enabled and args.kms_key_arn is None:
            raise pulumi.RunError(f"{name}: kms_key_arn is not set; the WAF log group must be encrypted with the "
                                  "stack key")
        if isinstance(args.canary_source_cidrs, Sequence) and not isinstance(args.canary_source_cidrs, str) \
                and not 1 <= len(args.canary_source_cidrs) <= MAX_CANARY_SOURCES:
            raise pulumi.RunError(f"{name}: canary_source_cidrs has {len(args.canary_source_cidrs)} entries; expected "
                                  f"1 to {MAX_CANARY_SOURCES} (an ALB rule takes 5 condition values, one is the "
                                  "release header)")
        priorities = {release_rule_priority(v): v for v in args.versions}
        if len(priorities) != len(set(args.versions)):
            raise pulumi.RunError(f"{name}: releases {', '.join(args.versions)} map to the same listener rule "
                                  "priority; rename one tag")
        child = pulumi.ResourceOptions(parent=self)

        bucket = self._log_bucket(name, args)

        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            name=load_balancer_name(name),
            load_balancer_type="application",
            # Internet-facing on purpose: this is the service's public entry point (Trivy
            # AVD-AWS-0053 does not apply); only 443 and 80 are open, to ingress_cidrs.
            internal=False,
            subnets=args.subnet_ids,
            security_groups=[args.security_group_id],
            drop_invalid_header_fields=True,
            desync_mitigation_mode=args.desync_mitigation_mode,
            enable_deletion_protection=args.deletion_protection,
            enable_http2=True,
            idle_timeout=args.idle_timeout_seconds,
            access_logs=aws.lb.LoadBalancerAccessLogsArgs(bucket=bucket.bucket, prefix=LOG_PREFIX, enabled=True),
            tags={"Name": f"{name}-alb"},
            # The bucket policy must exist first, or AWS rejects the access-log settings.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self._bucket_policy]),
        )

        certificate_arn, service_host = self._certificate(name, args, alb)

        self.target_group_arns = {}
        self.target_group_arn_suffixes = {}
        target_groups: dict[str, aws.lb.TargetGroup] = {}
        for version in args.versions:
            key = version_key(version)
            group = aws.lb.TargetGroup(
                f"{name}-{key}-tg",
                # Explicit: the auto-name (logical name + 8) passes AWS's 32 characters.
                name=target_group_name(name, version, port=args.app_port),
                vpc_id=args.vpc_id,
                port=args.app_port,
                protocol="HTTP",
                target_type="instance",
                # Enough for in-flight API calls to finish when a host leaves; the unit's
                # TimeoutStopSec (30 s) is the same.
                deregistration_delay=30,
                health_check=aws.lb.TargetGroupHealthCheckArgs(
                    enabled=True,
                    protocol="HTTP",
                    port="traffic-port",
                    path=args.health_check_path,
                    interval=10,
                    timeout=5,
                    unhealthy_threshold=3,
                    healthy_threshold=2,
                    matcher="200",
                ),
                tags={"Name": f"{name}-{key}", "sark:release": version},
                opts=child,
            )
            target_groups[version] = group
            self.target_group_arns[version] = group.arn
            self.target_group_arn_suffixes[version] = group.arn_suffix

        http = aws.lb.Listener(
            f"{name}-http",
            load_balancer_arn=alb.arn,
            port=80,
            protocol="HTTP",
            # Port 80 exists only to send browsers to HTTPS (checklist Post-Deployment 6:
            # `curl -I http://...` answers 301).
            default_actions=[aws.lb.ListenerDefaultActionArgs(
                type="redirect",
                redirect=aws.lb.ListenerDefaultActionRedirectArgs(protocol="HTTPS", port="443",
                                                                  status_code="HTTP_301"),
            )],
            opts=child,
        )
        https = aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=alb.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=args.tls_policy,
            certificate_arn=certificate_arn,
            # The checklist leaves HSTS to the app in production; the load balancer adds it to
            # every response too, so no path (errors, the 503 below) goes without it.
            routing_http_response_strict_transport_security_header_value=(
                f"max-age={args.hsts_max_age_seconds}; includeSubDomains"),
            routing_http_response_x_content_type_options_header_value="nosniff",
            routing_http_response_x_frame_options_header_value="DENY",
            # Until a release has passed its gate (components/release.py) there is nothing to serve.
            default_actions=[aws.lb.ListenerDefaultActionArgs(
                type="fixed-response",
                fixed_response=aws.lb.ListenerDefaultActionFixedResponseArgs(
                    content_type="text/plain", status_code="503", message_body="SARK is not serving yet"),
            )],
            opts=child,
        )
        aws.lb.ListenerRule(
            f"{name}-block-metrics",
            listener_arn=https.arn,
            priority=METRICS_RULE_PRIORITY,
            # Evaluated before every forward rule: the app also answers /metrics on :8000, and
            # those metrics are for the monitoring network only (checklist 3.3).
            conditions=[aws.lb.ListenerRuleConditionArgs(
                path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=list(METRICS_PATHS)))],
            actions=[aws.lb.ListenerRuleActionArgs(
                type="fixed-response",
                fixed_response=aws.lb.ListenerRuleActionFixedResponseArgs(
                    content_type="text/plain", status_code="404", message_body="Not Found"),
            )],
            opts=child,
        )
        for version, group in target_groups.items():
            aws.lb.ListenerRule(
                f"{name}-{version_key(version)}-pin",
                listener_arn=https.arn,
                priority=release_rule_priority(version),
                # Header AND source: a release is reachable before its gate only from where
                # operators (or the stack's own hosts) test it.
                conditions=[
                    aws.lb.ListenerRuleConditionArgs(http_header=aws.lb.ListenerRuleConditionHttpHeaderArgs(
                        http_header_name=RELEASE_HEADER, values=[version])),
                    aws.lb.ListenerRuleConditionArgs(source_ip=aws.lb.ListenerRuleConditionSourceIpArgs(
                        values=args.canary_source_cidrs)),
                ],
                actions=[aws.lb.ListenerRuleActionArgs(type="forward", target_group_arn=group.arn)],
                opts=child,
            )

        self.web_acl_arn = self._waf(name, args, alb) if args.waf_enabled else None

        self.load_balancer_arn = alb.arn
        self.arn_suffix = alb.arn_suffix
        self.dns_name = alb.dns_name
        self.zone_id = alb.zone_id
        self.https_listener_arn = https.arn
        self.http_listener_arn = http.arn
        self.access_log_bucket = bucket.bucket
        self.service_url = pulumi.Output.from_input(service_host).apply(lambda host: f"https://{host}")
        outputs: dict[str, object] = {
            "loadBalancerArn": self.load_balancer_arn,
            "dnsName": self.dns_name,
            "httpsListenerArn": self.https_listener_arn,
            "httpListenerArn": self.http_listener_arn,
            "targetGroupArns": self.target_group_arns,
            "accessLogBucket": self.access_log_bucket,
            "serviceUrl": self.service_url,
        }
        if self.web_acl_arn is not None:
            outputs["webAclArn"] = self.web_acl_arn
        self.register_outputs(outputs)

    # ----------------------------------------------------------------------------------

    def _log_bucket(self, name: str, args: LoadBalancerArgs) -> aws.s3.Bucket:
        # Access logs are the record of who called the service: losing them on a replace
        # would hurt, so the bucket is protected and kept if the stack ever drops it.
        bucket = aws.s3.Bucket(
            f"{name}-access-logs",
            bucket_prefix=log_bucket_prefix(name),
            force_destroy=False,
            tags={"Name": f"{name}-access-logs", "sark:purpose": "access-logs"},
            opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True),
        )
        child = pulumi.ResourceOptions(parent=self)
        public_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-access-logs-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-access-logs-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-access-logs-encryption",
            bucket=bucket.id,
            # SSE-S3: ALB access-log delivery supports only S3-managed keys, not SSE-KMS
            # (AWS ELB user guide, "Enable access logs for your Application Load Balancer",
            # bucket requirements; aws/aws-cdk#21947).
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"),
            )],
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-access-logs-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-access-logs-lifecycle",
            bucket=bucket.id,
            rules=[aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-access-logs",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                    days=args.access_log_retention_days),
                noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    noncurrent_days=args.access_log_retention_days),
                abort_incomplete_multipart_upload=aws.s3.
                BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(days_after_initiation=7),
            )],
            opts=child,
        )
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        legacy_account: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if args.legacy_log_delivery_account:
            legacy_account = aws.elb.get_service_account_output(
                region=args.region, opts=pulumi.InvokeOutputOptions(parent=self)).arn
        self._bucket_policy = aws.s3.BucketPolicy(
            f"{name}-access-logs-policy",
            bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, identity.account_id, legacy_account).apply(
                lambda v: access_log_bucket_policy(bucket_arn=v[0], account_id=v[1], legacy_elb_account_arn=v[2])),
            # The public access block first: with block_public_policy on, AWS checks the
            # policy on write, and the two must not race.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_block]),
        )
        return bucket

    def _certificate(self, name: str, args: LoadBalancerArgs,
                     alb: aws.lb.LoadBalancer) -> tuple[pulumi.Input[str], pulumi.Input[str]]:
        child = pulumi.ResourceOptions(parent=self)
        if args.domain_name and args.hosted_zone_id:
            aws.route53.Record(
                f"{name}-alias",
                zone_id=args.hosted_zone_id,
                name=args.domain_name,
                type="A",
                aliases=[aws.route53.RecordAliasArgs(name=alb.dns_name, zone_id=alb.zone_id,
                                                     evaluate_target_health=True)],
                opts=child,
            )
        if args.certificate_arn is not None:
            return args.certificate_arn, args.domain_name or alb.dns_name
        domain = str(args.domain_name)
        certificate = aws.acm.Certificate(
            f"{name}-certificate",
            domain_name=domain,
            validation_method="DNS",
            key_algorithm="RSA_2048",
            tags={"Name": domain},
            # Pulumi's default create-before-delete replacement keeps the listener on a valid
            # certificate while a new one is issued.
            opts=child,
        )
        # One domain name, so exactly one validation record; indexing is safe and keeps the
        # record out of an apply.
        option = certificate.domain_validation_options[0]
        record = aws.route53.Record(
            f"{name}-certificate-validation-record",
            zone_id=args.hosted_zone_id,
            name=option.resource_record_name,
            type=option.resource_record_type,
            records=[option.resource_record_value],
            ttl=300,
            allow_overwrite=True,
            opts=child,
        )
        validation = aws.acm.CertificateValidation(
            f"{name}-certificate-validation",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn],
            opts=child,
        )
        return validation.certificate_arn, domain

    def _waf(self, name: str, args: LoadBalancerArgs, alb: aws.lb.LoadBalancer) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        # First: a client over the limit is blocked before the managed groups spend effort on it.
        rate_rule = aws.wafv2.WebAclRuleArgs(
            name=WAF_RATE_RULE,
            priority=0,
            action=aws.wafv2.WebAclRuleActionArgs(block=aws.wafv2.WebAclRuleActionBlockArgs()),
            statement=aws.wafv2.WebAclRuleStatementArgs(
                rate_based_statement=aws.wafv2.WebAclRuleStatementRateBasedStatementArgs(
                    limit=args.waf_rate_limit, aggregate_key_type="IP", evaluation_window_sec=300)),
            visibility_config=aws.wafv2.WebAclRuleVisibilityConfigArgs(
                cloudwatch_metrics_enabled=True, metric_name=WAF_RATE_RULE, sampled_requests_enabled=True),
        )
        rules = [rate_rule, *[
            aws.wafv2.WebAclRuleArgs(
                name=group,
                priority=index,
                override_action=aws.wafv2.WebAclRuleOverrideActionArgs(none=aws.wafv2.WebAclRuleOverrideActionNoneArgs()),
                statement=aws.wafv2.WebAclRuleStatementArgs(
                    managed_rule_group_statement=aws.wafv2.WebAclRuleStatementManagedRuleGroupStatementArgs(
                        vendor_name="AWS", name=group)),
                visibility_config=aws.wafv2.WebAclRuleVisibilityConfigArgs(
                    cloudwatch_metrics_enabled=True, metric_name=group, sampled_requests_enabled=True),
            )
            for index, group in enumerate(WAF_MANAGED_RULE_GROUPS, start=1)
        ]]
        acl = aws.wafv2.WebAcl(
            f"{name}-waf",
            scope="REGIONAL",
            description="SARK: AWS managed rule groups in front of the API",
            default_action=aws.wafv2.WebAclDefaultActionArgs(allow=aws.wafv2.WebAclDefaultActionAllowArgs()),
            rules=rules,
            visibility_config=aws.wafv2.WebAclVisibilityConfigArgs(
                cloudwatch_metrics_enabled=True, metric_name=f"{name}-waf", sampled_requests_enabled=True),
            opts=child,
        )
        self._waf_logging(name, args, acl)
        aws.wafv2.WebAclAssociation(
            f"{name}-waf-association", resource_arn=alb.arn, web_acl_arn=acl.arn,
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=pulumi.CustomTimeouts(
                create=WAF_ASSOCIATION_CREATE_TIMEOUT)),
        )
        return acl.arn

    def _waf_logging(self, name: str, args: LoadBalancerArgs, acl: aws.wafv2.WebAcl) -> None:
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-waf-logs",
            name=f"{WAF_LOG_GROUP_PREFIX}{name}",
            retention_in_days=args.waf_log_retention_days,
            kms_key_id=args.kms_key_arn,
            # The record of who was blocked and why: kept through a replace or an accidental delete.
            opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True),
        )
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        # WAF delivers through the log delivery service; this lets it write to this group only
        # (terraform-provider-aws docs, wafv2_web_acl_logging_configuration, CloudWatch example).
        delivery = aws.cloudwatch.LogResourcePolicy(
            f"{name}-waf-logs-delivery",
            policy_name=f"{name}-waf-logs-delivery",
            policy_document=pulumi.Output.all(log_group.arn, identity.account_id).apply(
                lambda v: waf_log_delivery_policy(log_group_arn=v[0], account_id=v[1], region=args.region)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-waf-logging",
            resource_arn=acl.arn,
            log_destination_configs=[log_group.arn],
            redacted_fields=[aws.wafv2.WebAclLoggingConfigurationRedactedFieldArgs(
                single_header=aws.wafv2.WebAclLoggingConfigurationRedactedFieldSingleHeaderArgs(name=header))
                for header in WAF_REDACTED_HEADERS],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[delivery]),
        )
        self.waf_log_group_name = log_group.name


def waf_log_delivery_policy(*, log_group_arn: str, account_id: str, region: str) -> str:
    """CloudWatch Logs resource policy: the log delivery service may write WAF logs to this group only."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "WafLogDelivery",
            "Effect": "Allow",
            "Principal": {"Service": "delivery.logs.amazonaws.com"},
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{log_group_arn}:*",
            # Only deliveries made for this account (confused deputy).
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id},
                          "ArnLike": {"aws:SourceArn": f"arn:aws:logs:{region}:{account_id}:*"}},
        }],
    }, indent=2)


def access_log_bucket_policy(*, bucket_arn: str, account_id: str, legacy_elb_account_arn: str | None) -> str:
    """The access-log bucket policy: TLS only, and writes only from ELB log delivery."""
    logs = f"{bucket_arn}/{LOG_PREFIX}/AWSLogs/{account_id}/*"
    statements: list[dict[str, object]] = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "ElbLogDeliveryWrites",
            "Effect": "Allow",
            "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": logs,
        },
    ]
    if legacy_elb_account_arn:
        statements.append({
            "Sid": "RegionalElbAccountWrites",
            "Effect": "Allow",
            "Principal": {"AWS": legacy_elb_account_arn},
            "Action": "s3:PutObject",
            "Resource": logs,
        })
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=2)
