"""Load balancer rules: listeners, the load balancer itself, target groups (anchors section C).

Both token families are checked: ``aws:lb/...`` and the ``aws:alb/...`` aliases (CrossGuard
matches exact tokens, so a rule listing only one would miss the other; pulumi-policy-aws#113).

Deliberate departures from the anchor rule sets, following the checklist:

- the HTTP:80 listener is required, as a single 301 redirect to HTTPS:443 (compliance-policies
  ``aws-lb-listener-disallow-unencrypted-traffic`` fails any port-80 listener and is not ported);
- the load balancer is internet-facing on purpose (Trivy AVD-AWS-0053 is not ported);
- target groups forward plain HTTP to the hosts' port 8000 inside the VPC, behind the TLS
  listener, as the checklist's reverse proxy does (Checkov CKV_AWS_378 is not ported).

Dropping invalid header fields and deletion protection can be switched on in place without
changing how valid traffic is served, so those two rules offer a remediation (applied when
their enforcement level is ``remediate``).
"""

from __future__ import annotations

import fnmatch
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
from ._props import as_bool, as_int, as_list, as_map

LOAD_BALANCERS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
LISTENERS = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
TARGET_GROUPS = ("aws:lb/targetGroup:TargetGroup", "aws:alb/targetGroup:TargetGroup")
LISTENER_RULES = ("aws:lb/listenerRule:ListenerRule", "aws:alb/listenerRule:ListenerRule")
WAF_ASSOCIATIONS = ("aws:wafv2/webAclAssociation:WebAclAssociation",
                    "aws:wafregional/webAclAssociation:WebAclAssociation")
"""WAF v2, and WAF Classic (regional), associate a web ACL with a load balancer the same way."""
WAF_ASSOCIATION = WAF_ASSOCIATIONS[0]

SECURE_TLS_POLICIES = [
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04",
    "ELBSecurityPolicy-FS-1-2-Res-2020-10",
    "ELBSecurityPolicy-FS-1-2-Res-2019-08",
]
"""TLS 1.2+ policies with forward-secret ciphers (compliance-policies' allow-list plus TLS13-1-2-Res)."""

_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)


def _is_https(props: Mapping[str, Any]) -> bool:
    return props.get("protocol") == "HTTPS" or (as_int(props.get("port")) == 443 and props.get("protocol") != "TCP")


def _is_http(props: Mapping[str, Any]) -> bool:
    return props.get("protocol") == "HTTP" or (as_int(props.get("port")) == 80 and not props.get("protocol"))


def _is_application(props: Mapping[str, Any]) -> bool:
    return props.get("loadBalancerType") in (None, "application")


# --- listeners --------------------------------------------------------------------------

def enable_drop_invalid_headers(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    """Remediation: drop header fields with invalid names (valid requests are unaffected)."""
    if not _is_application(args.props) or as_bool(args.props.get("dropInvalidHeaderFields")) is True:
        return None
    args.props["dropInvalidHeaderFields"] = True
    return args.props

def enable_deletion_protection(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    """Remediation: turn deletion protection on (a deliberate delete turns it off first)."""
    if as_bool(args.props.get("enableDeletionProtection")) is True:
        return None
    args.props["enableDeletionProtection"] = True
    return args.props


@resource_rule(
    "aws-lb-listener-configure-secure-tls", LISTENERS, Severity.HIGH,
    "HTTPS listeners use a TLS 1.2/1.3-only policy and a certificate.",
    fix="Set ssl_policy to ELBSecurityPolicy-TLS13-1-2-2021-06 (TLS 1.2 and 1.3) or "
        "ELBSecurityPolicy-TLS13-1-3-2021-06 (TLS 1.3 only) and certificate_arn to an ACM "
        "certificate.",
    anchors=Anchors(compliance=["aws-lb-listener-configure-secure-tls", "aws-alb-listener-configure-secure-tls"],
                    checkov=["CKV_AWS_103", "CKV2_AWS_74"], trivy=["AVD-AWS-0047"], securityhub=["ELB.17"],
                    checklist=["Pre-Deployment 3.2 (ssl_protocols TLSv1.2 TLSv1.3)"]),
    config={"allowedPolicies": {"type": "array", "items": {"type": "string"}, "default": SECURE_TLS_POLICIES,
                                "description": "ELB security policies allowed on HTTPS listeners."}},
)
def https_listener_secure_tls(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """HTTPS listeners use an allowed TLS 1.2/1.3 policy and a certificate."""
    if not _is_https(args.props):
        return
    allowed = settings(args).strings("allowedPolicies")
    policy = args.props.get("sslPolicy")
    if policy not in allowed:
        report_violation(f"sslPolicy is {policy or 'not set (AWS picks its default)'}; it must be one of "
                         f"{', '.join(allowed)}.", None)
    if not args.props.get("certificateArn"):
        report_violation("certificateArn is not set; an HTTPS listener needs a certificate.", None)


@resource_rule(
    "aws-lb-listener-require-https-redirect", LISTENERS, Severity.HIGH,
    "HTTP listeners only redirect to HTTPS:443 with a 301.",
    fix="Give the port-80 listener exactly one default action: type 'redirect' with "
        "protocol='HTTPS', port='443', status_code='HTTP_301'.",
    anchors=Anchors(awsguard=["alb-http-to-https-redirection"], checkov=["CKV_AWS_2", "CKV2_AWS_20"],
                    trivy=["AVD-AWS-0054"], securityhub=["ELB.1"],
                    checklist=["Pre-Deployment 3.2 (HTTPS redirect)", "Post-Deployment 6"]),
)
def http_listener_redirects(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """An HTTP listener does one thing: a permanent redirect to HTTPS:443.

    Contradicts compliance-policies ``aws-lb-listener-disallow-unencrypted-traffic``, which
    fails every port-80 listener: the checklist requires this redirect (Post-Deployment 6,
    ``curl -I http://...`` answers 301), so the listener is allowed when it only redirects.
    """
    if not _is_http(args.props):
        return
    actions = [as_map(a) for a in as_list(args.props.get("defaultActions"))]
    if len(actions) != 1:
        report_violation(f"The HTTP listener has {len(actions)} default actions; it must have exactly one, a "
                         "redirect to HTTPS:443.", None)
        return
    action = actions[0]
    if action.get("type") != "redirect":
        report_violation(f"The HTTP listener's default action is {action.get('type')!r}; it must be a redirect to "
                         "HTTPS:443.", None)
        return
    redirect = as_map(action.get("redirect"))
    wrong = []
    if redirect.get("protocol") != "HTTPS":
        wrong.append(f"protocol {redirect.get('protocol') or '#{protocol} (unchanged)'} (must be HTTPS)")
    if str(as_int(redirect.get("port")) or redirect.get("port") or "") != "443":
        wrong.append(f"port {redirect.get('port') or '#{port} (unchanged)'} (must be 443)")
    if redirect.get("statusCode") != "HTTP_301":
        wrong.append(f"statusCode {redirect.get('statusCode') or 'not set'} (must be HTTP_301)")
    if wrong:
        report_violation("The HTTP listener's redirect has " + "; ".join(wrong) + ".", None)


@resource_rule(
    "aws-lb-listener-enable-hsts", LISTENERS, Severity.MEDIUM,
    "HTTPS listeners send Strict-Transport-Security with a long max-age.",
    fix="Set routing_http_response_strict_transport_security_header_value to "
        "'max-age=31536000; includeSubDomains' (or longer).",
    anchors=Anchors(checklist=["Pre-Deployment 3.2 (HSTS)", "Post-Deployment 6"]),
    config={"minMaxAgeSeconds": {"type": "integer", "default": 31536000,
                                 "description": "Smallest accepted HSTS max-age (one year)."}},
)
def https_listener_hsts(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """HTTPS responses carry Strict-Transport-Security with a long enough max-age."""
    if not _is_https(args.props):
        return
    minimum = settings(args).int("minMaxAgeSeconds")
    header = args.props.get("routingHttpResponseStrictTransportSecurityHeaderValue")
    match = _MAX_AGE.search(header) if isinstance(header, str) else None
    if match is None:
        report_violation("routingHttpResponseStrictTransportSecurityHeaderValue is not set; the listener must send "
                         f"Strict-Transport-Security with max-age of at least {minimum}.", None)
    elif int(match.group(1)) < minimum:
        report_violation(f"Strict-Transport-Security max-age is {match.group(1)}; it must be at least {minimum}.",
                         None)


@resource_rule(
    "aws-lb-listener-disallow-wildcard-cors", LISTENERS, Severity.HIGH,
    "Listeners do not answer Access-Control-Allow-Origin: *.",
    fix="Remove routing_http_response_access_control_allow_origin_header_value or set it to the "
        "trusted origin; the app answers CORS for its CORS_ORIGINS.",
    anchors=Anchors(checklist=["Pre-Deployment 3.1 (CORS not *)"]),
)
def listener_cors_not_wildcard(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The load balancer never answers Access-Control-Allow-Origin: * (checklist 3.1)."""
    value = args.props.get("routingHttpResponseAccessControlAllowOriginHeaderValue")
    if isinstance(value, str) and value.strip() == "*":
        report_violation("routingHttpResponseAccessControlAllowOriginHeaderValue is '*'; CORS must be restricted to "
                         "trusted origins.", None)


@resource_rule(
    "aws-lb-listener-configure-security-headers", LISTENERS, Severity.LOW,
    "HTTPS listeners send X-Content-Type-Options and X-Frame-Options.",
    fix="Set routing_http_response_x_content_type_options_header_value='nosniff' and "
        "routing_http_response_x_frame_options_header_value='DENY'.",
    anchors=Anchors(checklist=["Pre-Deployment 5.2 (security headers)", "Post-Deployment 6"]),
    level=EnforcementLevel.ADVISORY,
    config={"allowedFrameOptions": {"type": "array", "items": {"type": "string"}, "default": ["DENY", "SAMEORIGIN"],
                                    "description": "X-Frame-Options values accepted."}},
)
def https_listener_security_headers(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """HTTPS responses carry X-Content-Type-Options: nosniff and X-Frame-Options DENY/SAMEORIGIN."""
    if not _is_https(args.props):
        return
    if args.props.get("routingHttpResponseXContentTypeOptionsHeaderValue") != "nosniff":
        report_violation("routingHttpResponseXContentTypeOptionsHeaderValue is not 'nosniff'.", None)
    allowed = settings(args).strings("allowedFrameOptions")
    if args.props.get("routingHttpResponseXFrameOptionsHeaderValue") not in allowed:
        report_violation(f"routingHttpResponseXFrameOptionsHeaderValue is not {' or '.join(allowed)}.", None)


# --- the load balancer ------------------------------------------------------------------

@resource_rule(
    "aws-lb-loadbalancer-enable-drop-invalid-header-fields", LOAD_BALANCERS, Severity.MEDIUM,
    "Application load balancers drop invalid HTTP header fields.",
    fix="Set drop_invalid_header_fields=True.",
    anchors=Anchors(checkov=["CKV_AWS_131"], trivy=["AVD-AWS-0052"], securityhub=["ELB.4"]),
    remediate=enable_drop_invalid_headers,
)
def drop_invalid_headers(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Application load balancers drop header fields with invalid names (request smuggling)."""
    if _is_application(args.props) and as_bool(args.props.get("dropInvalidHeaderFields")) is not True:
        report_violation("dropInvalidHeaderFields is not true.", None)



@resource_rule(
    "aws-lb-loadbalancer-enable-deletion-protection", LOAD_BALANCERS, Severity.MEDIUM,
    "Load balancers have deletion protection.",
    fix="Set enable_deletion_protection=True (config loadBalancerDeletionProtection).",
    anchors=Anchors(awsguard=["elb-deletion-protection-enabled"], checkov=["CKV_AWS_150"], securityhub=["ELB.6"]),
    remediate=enable_deletion_protection,
)
def deletion_protection(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The load balancer cannot be deleted by accident."""
    if as_bool(args.props.get("enableDeletionProtection")) is not True:
        report_violation("enableDeletionProtection is not true.", None)


@resource_rule(
    "aws-lb-loadbalancer-configure-desync-mitigation", LOAD_BALANCERS, Severity.MEDIUM,
    "Application load balancers mitigate HTTP desync defensively or strictly.",
    fix="Set desync_mitigation_mode to 'defensive' or 'strictest'.",
    anchors=Anchors(checkov=["CKV_AWS_328"], securityhub=["ELB.12"]),
    config={"allowedModes": {"type": "array", "items": {"type": "string"}, "default": ["defensive", "strictest"],
                             "description": "desync_mitigation_mode values accepted (unset means AWS's "
                                            "default, defensive)."}},
)
def desync_mitigation(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """HTTP desync mitigation is defensive or strictest (AWS's default, when unset, is defensive)."""
    mode = args.props.get("desyncMitigationMode")
    allowed = settings(args).strings("allowedModes")
    if _is_application(args.props) and mode is not None and mode not in allowed:
        shown = " or ".join(repr(m) for m in allowed)
        report_violation(f"desyncMitigationMode is {mode!r}; it must be {shown}.", None)


@resource_rule(
    "aws-lb-loadbalancer-enable-access-logging", LOAD_BALANCERS, Severity.MEDIUM,
    "Load balancers write access logs to S3.",
    fix="Set access_logs with enabled=True and bucket=<log bucket> (SSE-S3, policy for ELB log "
        "delivery).",
    anchors=Anchors(awsguard=["elb-logging-enabled"],
                    compliance=["aws-lb-loadbalancer-enable-access-logging",
                                "aws-lb-loadbalancer-configure-access-logging"],
                    checkov=["CKV_AWS_91"], securityhub=["ELB.5"], checklist=["Post-Deployment 6 (access logs)"]),
)
def access_logs(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Access logs go to an S3 bucket."""
    logs = as_map(args.props.get("accessLogs"))
    if as_bool(logs.get("enabled")) is not True:
        report_violation("accessLogs.enabled is not true.", None)
    elif not logs.get("bucket"):
        report_violation("accessLogs.bucket is not set.", None)


# --- target groups ----------------------------------------------------------------------

@resource_rule(
    "aws-lb-targetgroup-configure-health-check", TARGET_GROUPS, Severity.MEDIUM,
    "Target groups health-check /health every 10 s (unhealthy after 3, healthy after 2, 200).",
    fix="Set health_check with enabled=True, path='/health', interval=10, unhealthy_threshold=3, "
        "healthy_threshold=2, matcher='200'.",
    anchors=Anchors(checkov=["CKV_AWS_261"], securityhub=["AutoScaling.1"], checklist=["Deployment 1.2"]),
    config={
        "path": {"type": "string", "default": "/health", "description": "The app's health endpoint."},
        "maxIntervalSeconds": {"type": "integer", "default": 10, "description": "Longest check interval."},
        "maxUnhealthyThreshold": {"type": "integer", "default": 3,
                                  "description": "Most failures before a target is taken out."},
        "maxHealthyThreshold": {"type": "integer", "default": 2,
                                "description": "Most successes before a target takes traffic."},
        "matcher": {"type": "string", "default": "200", "description": "Expected HTTP status."},
    },
)
def target_group_health_check(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """HTTP target groups check the app's health endpoint as the checklist specifies (Deployment 1.2)."""
    if args.props.get("targetType") == "lambda" or args.props.get("protocol") not in (None, "HTTP", "HTTPS"):
        return
    config = settings(args)
    check = as_map(args.props.get("healthCheck"))
    if as_bool(check.get("enabled")) is False:
        report_violation("healthCheck.enabled is false.", None)
        return
    path = config.text("path")
    if check.get("path") != path:
        report_violation(f"healthCheck.path is {check.get('path') or 'not set (AWS default /)'}; it must be {path}.",
                         None)
    for key, limit_key, default in (("interval", "maxIntervalSeconds", 30),
                                    ("unhealthyThreshold", "maxUnhealthyThreshold", 2),
                                    ("healthyThreshold", "maxHealthyThreshold", 5)):
        limit = config.int(limit_key)
        value = as_int(check.get(key))
        if limit is not None and (value if value is not None else default) > limit:
            shown = value if value is not None else f"not set (AWS default {default})"
            report_violation(f"healthCheck.{key} is {shown}; it must be at most {limit}.", None)
    matcher = config.text("matcher")
    if check.get("matcher") != matcher:
        report_violation(f"healthCheck.matcher is {check.get('matcher') or 'not set'}; it must be {matcher}.", None)


@resource_rule(
    "aws-lb-targetgroup-disallow-metrics-port", (*TARGET_GROUPS, *LISTENERS), Severity.HIGH,
    "No target group or listener uses the Prometheus metrics port.",
    fix="Remove the target group/listener on the metrics port; Prometheus scrapes the hosts on "
        "9090 from the monitoring network only.",
    anchors=Anchors(checklist=["Pre-Deployment 1.1 (metrics port internal only)", "Pre-Deployment 3.3"]),
    config={"metricsPort": {"type": "integer", "default": 9090, "description": "The app's metrics port."}},
)
def metrics_port_not_published(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """No target group or listener on the Prometheus port: metrics stay inside the VPC."""
    port = settings(args).int("metricsPort")
    if as_int(args.props.get("port")) == port:
        kind = "target group" if args.resource_type in TARGET_GROUPS else "listener"
        report_violation(f"The {kind} uses port {port}, the metrics port; metrics must not be reachable through "
                         "the load balancer.", None)


def _could_match(rule: Mapping[str, Any], path: str) -> bool:
    """Whether a request for ``path`` can match the rule. Header, host and query conditions are
    chosen by the client, so they never keep a request out; a source-IP condition does."""
    for condition in (as_map(c) for c in as_list(rule.get("conditions"))):
        if condition.get("sourceIp"):
            return False
        patterns = as_list(as_map(condition.get("pathPattern")).get("values"))
        if condition.get("pathPattern") is not None and not any(
                fnmatch.fnmatchcase(path, str(p)) for p in patterns):
            return False
    return True


def _forwards(actions: Sequence[Any]) -> bool:
    types = [as_map(a).get("type") for a in actions]
    return "forward" in types


def _belongs_to(rule: PolicyResource, listener: PolicyResource) -> bool:
    return refers(rule, "listenerArn", listener, ("arn", "id"))


@stack_rule(
    "aws-lb-listener-disallow-metrics-path", Severity.HIGH,
    "No listener forwards /metrics to the hosts.",
    fix="Add a listener rule with the highest priority (lowest number) matching /metrics and "
        "/metrics/* with a fixed-response 404 action.",
    anchors=Anchors(checklist=["Pre-Deployment 3.3 (metrics internal only)"]),
    config={"metricsPath": {"type": "string", "default": "/metrics", "description": "The app's metrics path."}},
    needs="the listener rules whose listenerArn came from each listener (property dependency), by priority",
    covered_by=["aws-lb-targetgroup-disallow-metrics-port"],
)
def metrics_path_not_forwarded(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """A request for /metrics through any listener ends in a fixed response or redirect, never at the hosts.

    Rules are evaluated the way the load balancer does, by priority; the first one a
    ``/metrics`` request can match decides, else the listener's default action.
    """
    path = settings(args).text("metricsPath")
    rules = [r for r in args.resources if r.resource_type in LISTENER_RULES]
    if any(undecided(r, "listenerArn") for r in rules):
        return  # a rule that cannot be placed yet could be the one that decides
    for listener in (r for r in args.resources if r.resource_type in LISTENERS):
        own = sorted((r for r in rules if _belongs_to(r, listener)),
                     key=lambda r: as_int(r.props.get("priority")) or 50000)
        deciding = next((r for r in own if _could_match(r.props, path)), None)
        if deciding is not None:
            if _forwards(as_list(deciding.props.get("actions"))):
                report_violation(f"Listener rule '{deciding.name}' (priority {as_int(deciding.props.get('priority'))}) "
                                 f"forwards {path} to the hosts; add a higher-priority rule answering {path} with a "
                                 "fixed response.", deciding.urn)
        elif _forwards(as_list(listener.props.get("defaultActions"))):
            report_violation(f"Listener '{listener.name}' forwards {path} to the hosts through its default action; "
                             f"add a rule answering {path} with a fixed response.", listener.urn)


@stack_rule(
    "aws-lb-loadbalancer-enable-waf", Severity.LOW,
    "Internet-facing application load balancers are protected by a WAF web ACL.",
    fix="Set wafEnabled: true (a WAF v2 web ACL with AWS managed rule groups, associated with the "
        "load balancer). Advisory: the checklist does not require a WAF; SARK's production stack "
        "has one.",
    needs="the WAF associations whose resourceArn came from the load balancer (property dependency)",
    anchors=Anchors(checkov=["CKV2_AWS_28"], securityhub=["ELB.16"]),
    level=EnforcementLevel.ADVISORY,
)
def waf_attached(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Internet-facing application load balancers have a WAF web ACL."""
    associations = [r for r in args.resources if r.resource_type in WAF_ASSOCIATIONS]
    for lb in (r for r in args.resources if r.resource_type in LOAD_BALANCERS):
        if as_bool(lb.props.get("internal")) or not _is_application(lb.props):
            continue
        if any(undecided(a, "resourceArn") for a in associations):
            return
        if not any(refers(a, "resourceArn", lb, ("arn",)) for a in associations):
            report_violation(f"Load balancer '{lb.name}' is internet-facing without a WAF web ACL.", lb.urn)


POLICIES = policies_of(__name__)
