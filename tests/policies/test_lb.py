"""Load balancer rules: compliant listener / load balancer / target group, one mutation, the exact message."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from sark_policies import lb
from tests.policies.helpers import Res, by_name, check_resource, check_stack, urn

LISTENER = "aws:lb/listener:Listener"
ALB_LISTENER = "aws:alb/listener:Listener"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
RULE = "aws:lb/listenerRule:ListenerRule"

TLS = by_name(lb.POLICIES, "aws-lb-listener-configure-secure-tls")
REDIRECT = by_name(lb.POLICIES, "aws-lb-listener-require-https-redirect")
HSTS = by_name(lb.POLICIES, "aws-lb-listener-enable-hsts")
CORS = by_name(lb.POLICIES, "aws-lb-listener-disallow-wildcard-cors")
HEADERS = by_name(lb.POLICIES, "aws-lb-listener-configure-security-headers")
DROP = by_name(lb.POLICIES, "aws-lb-loadbalancer-enable-drop-invalid-header-fields")
DELETION = by_name(lb.POLICIES, "aws-lb-loadbalancer-enable-deletion-protection")
DESYNC = by_name(lb.POLICIES, "aws-lb-loadbalancer-configure-desync-mitigation")
LOGS = by_name(lb.POLICIES, "aws-lb-loadbalancer-enable-access-logging")
HEALTH = by_name(lb.POLICIES, "aws-lb-targetgroup-configure-health-check")
METRICS_PORT = by_name(lb.POLICIES, "aws-lb-targetgroup-disallow-metrics-port")
METRICS_PATH = by_name(lb.POLICIES, "aws-lb-listener-disallow-metrics-path")
WAF = by_name(lb.POLICIES, "aws-lb-loadbalancer-enable-waf")


def https() -> dict[str, Any]:
    return {
        "port": 443, "protocol": "HTTPS", "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/abc",
        "routingHttpResponseStrictTransportSecurityHeaderValue": "max-age=31536000; includeSubDomains",
        "routingHttpResponseXContentTypeOptionsHeaderValue": "nosniff",
        "routingHttpResponseXFrameOptionsHeaderValue": "DENY",
        "defaultActions": [{"type": "fixed-response", "fixedResponse": {"statusCode": "503",
                                                                        "contentType": "text/plain"}}],
    }


def http() -> dict[str, Any]:
    return {"port": 80, "protocol": "HTTP", "defaultActions": [
        {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}]}


def alb() -> dict[str, Any]:
    return {"loadBalancerType": "application", "internal": False, "dropInvalidHeaderFields": True,
            "enableDeletionProtection": True, "desyncMitigationMode": "defensive",
            "accessLogs": {"bucket": "sark-logs", "enabled": True, "prefix": "alb"}}


def target_group() -> dict[str, Any]:
    return {"port": 8000, "protocol": "HTTP", "targetType": "instance", "healthCheck": {
        "enabled": True, "path": "/health", "interval": 10, "unhealthyThreshold": 3, "healthyThreshold": 2,
        "matcher": "200"}}


LISTENER_RULES = [TLS, REDIRECT, HSTS, CORS, HEADERS, METRICS_PORT]


@pytest.mark.parametrize("policy", LISTENER_RULES, ids=lambda p: p.name)
@pytest.mark.parametrize("token", [LISTENER, ALB_LISTENER])
def test_compliant_listeners_pass(policy: Any, token: str) -> None:
    assert check_resource(policy, token, https()).violations == []
    assert check_resource(policy, token, http()).violations == []


@pytest.mark.parametrize("policy", [DROP, DELETION, DESYNC, LOGS], ids=lambda p: p.name)
@pytest.mark.parametrize("token", [LOAD_BALANCER, "aws:alb/loadBalancer:LoadBalancer"])
def test_compliant_load_balancer_passes(policy: Any, token: str) -> None:
    assert check_resource(policy, token, alb()).violations == []


# --- TLS ---------------------------------------------------------------------------------

def test_old_tls_policy_fails_on_alb_alias_token() -> None:
    bad = https()
    bad["sslPolicy"] = "ELBSecurityPolicy-2016-08"
    result = check_resource(TLS, ALB_LISTENER, bad)
    assert result.messages == ["sslPolicy is ELBSecurityPolicy-2016-08; it must be one of "
                               + ", ".join(lb.SECURE_TLS_POLICIES) + "."]


def test_tls13_1_0_policy_is_not_accepted() -> None:
    bad = https()
    bad["sslPolicy"] = "ELBSecurityPolicy-TLS13-1-0-2021-06"
    assert check_resource(TLS, LISTENER, bad, config={"allowedPolicies": ["ELBSecurityPolicy-TLS13-1-2-2021-06"]}
                          ).messages == ["sslPolicy is ELBSecurityPolicy-TLS13-1-0-2021-06; it must be one of "
                                         "ELBSecurityPolicy-TLS13-1-2-2021-06."]


def test_https_without_certificate_fails() -> None:
    bad = https()
    del bad["certificateArn"]
    assert check_resource(TLS, LISTENER, bad).messages == [
        "certificateArn is not set; an HTTPS listener needs a certificate."]


# --- redirect ----------------------------------------------------------------------------

@pytest.mark.parametrize(("redirect", "message"), [
    ({"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_302"},
     "The HTTP listener's redirect has statusCode HTTP_302 (must be HTTP_301)."),
    ({"protocol": "HTTP", "port": "443", "statusCode": "HTTP_301"},
     "The HTTP listener's redirect has protocol HTTP (must be HTTPS)."),
    ({"protocol": "HTTPS", "port": "8443", "statusCode": "HTTP_301"},
     "The HTTP listener's redirect has port 8443 (must be 443)."),
    ({"protocol": "HTTPS", "statusCode": "HTTP_301"},
     "The HTTP listener's redirect has port #{port} (unchanged) (must be 443)."),
])
def test_wrong_redirect_fails(redirect: dict[str, str], message: str) -> None:
    bad = http()
    bad["defaultActions"][0]["redirect"] = redirect
    assert check_resource(REDIRECT, LISTENER, bad).messages == [message]


def test_http_listener_forwarding_fails() -> None:
    bad = http()
    bad["defaultActions"] = [{"type": "forward", "targetGroupArn": "arn:tg"}]
    assert check_resource(REDIRECT, LISTENER, bad).messages == [
        "The HTTP listener's default action is 'forward'; it must be a redirect to HTTPS:443."]


def test_http_listener_with_two_actions_fails() -> None:
    bad = http()
    bad["defaultActions"] = bad["defaultActions"] * 2
    assert check_resource(REDIRECT, LISTENER, bad).messages == [
        "The HTTP listener has 2 default actions; it must have exactly one, a redirect to HTTPS:443."]


# --- HSTS, CORS, headers -----------------------------------------------------------------

def test_missing_hsts_fails() -> None:
    bad = https()
    del bad["routingHttpResponseStrictTransportSecurityHeaderValue"]
    assert check_resource(HSTS, LISTENER, bad).messages == [
        "routingHttpResponseStrictTransportSecurityHeaderValue is not set; the listener must send "
        "Strict-Transport-Security with max-age of at least 31536000."]


def test_short_hsts_fails_against_config() -> None:
    bad = https()
    bad["routingHttpResponseStrictTransportSecurityHeaderValue"] = "max-age=31536000"
    assert check_resource(HSTS, LISTENER, bad, config={"minMaxAgeSeconds": 63072000}).messages == [
        "Strict-Transport-Security max-age is 31536000; it must be at least 63072000."]


def test_wildcard_cors_header_fails() -> None:
    bad = https()
    bad["routingHttpResponseAccessControlAllowOriginHeaderValue"] = "*"
    assert check_resource(CORS, LISTENER, bad).messages == [
        "routingHttpResponseAccessControlAllowOriginHeaderValue is '*'; CORS must be restricted to trusted origins."]


def test_missing_security_headers_are_advisory() -> None:
    bad = https()
    del bad["routingHttpResponseXFrameOptionsHeaderValue"]
    bad["routingHttpResponseXContentTypeOptionsHeaderValue"] = "sniff"
    assert check_resource(HEADERS, LISTENER, bad).messages == [
        "routingHttpResponseXContentTypeOptionsHeaderValue is not 'nosniff'.",
        "routingHttpResponseXFrameOptionsHeaderValue is not DENY or SAMEORIGIN.",
    ]
    assert HEADERS.enforcement_level == EnforcementLevel.ADVISORY


# --- load balancer -----------------------------------------------------------------------

@pytest.mark.parametrize(("policy", "key", "value", "message"), [
    (DROP, "dropInvalidHeaderFields", False, "dropInvalidHeaderFields is not true."),
    (DELETION, "enableDeletionProtection", "false", "enableDeletionProtection is not true."),
    (DESYNC, "desyncMitigationMode", "monitor", "desyncMitigationMode is 'monitor'; it must be 'defensive' or "
                                                "'strictest'."),
    (LOGS, "accessLogs", {"bucket": "sark-logs", "enabled": False}, "accessLogs.enabled is not true."),
    (LOGS, "accessLogs", {"enabled": True}, "accessLogs.bucket is not set."),
])
def test_load_balancer_mutations_fail(policy: Any, key: str, value: Any, message: str) -> None:
    bad = alb()
    bad[key] = value
    assert check_resource(policy, LOAD_BALANCER, bad).messages == [message]


def test_network_load_balancer_needs_no_header_dropping() -> None:
    props = alb() | {"loadBalancerType": "network", "dropInvalidHeaderFields": False}
    assert check_resource(DROP, LOAD_BALANCER, props).violations == []


# --- target groups -----------------------------------------------------------------------

def test_compliant_target_group_passes() -> None:
    assert check_resource(HEALTH, TARGET_GROUP, target_group()).violations == []
    assert check_resource(METRICS_PORT, TARGET_GROUP, target_group()).violations == []


@pytest.mark.parametrize(("key", "value", "message"), [
    ("path", "/", "healthCheck.path is /; it must be /health."),
    ("interval", 30, "healthCheck.interval is 30; it must be at most 10."),
    ("unhealthyThreshold", 5, "healthCheck.unhealthyThreshold is 5; it must be at most 3."),
    ("healthyThreshold", 5, "healthCheck.healthyThreshold is 5; it must be at most 2."),
    ("matcher", "200-399", "healthCheck.matcher is 200-399; it must be 200."),
    ("enabled", False, "healthCheck.enabled is false."),
])
def test_health_check_mutations_fail(key: str, value: Any, message: str) -> None:
    bad = target_group()
    bad["healthCheck"][key] = value
    assert check_resource(HEALTH, TARGET_GROUP, bad).messages == [message]


def test_missing_health_check_reports_aws_defaults() -> None:
    bad = target_group()
    del bad["healthCheck"]
    assert check_resource(HEALTH, TARGET_GROUP, bad).messages == [
        "healthCheck.path is not set (AWS default /); it must be /health.",
        "healthCheck.interval is not set (AWS default 30); it must be at most 10.",
        "healthCheck.healthyThreshold is not set (AWS default 5); it must be at most 2.",
        "healthCheck.matcher is not set; it must be 200.",
    ]


def test_metrics_target_group_fails() -> None:
    bad = target_group() | {"port": 9090}
    assert check_resource(METRICS_PORT, TARGET_GROUP, bad).messages == [
        "The target group uses port 9090, the metrics port; metrics must not be reachable through the load balancer."]


def test_metrics_listener_fails() -> None:
    bad = https() | {"port": 9090}
    assert check_resource(METRICS_PORT, LISTENER, bad).messages == [
        "The listener uses port 9090, the metrics port; metrics must not be reachable through the load balancer."]


# --- /metrics through the listener (stack) ---------------------------------------------------

def _listener_stack(*, block: bool = True, catch_all_priority: int = 50000) -> list[Res]:
    listener = Res(LISTENER, "https", https() | {"arn": "arn:listener"})
    rules = [Res(RULE, "traffic", {"listenerArn": "arn:listener", "priority": catch_all_priority,
                                   "conditions": [{"pathPattern": {"values": ["/*"]}}],
                                   "actions": [{"type": "forward", "forward": {"targetGroups": [{"arn": "tg"}]}}]},
                 property_dependencies={"listenerArn": [listener.urn]}),
             Res(RULE, "pin-v1", {"listenerArn": "arn:listener", "priority": 200,
                                  "conditions": [{"httpHeader": {"httpHeaderName": "X-Sark-Release",
                                                                 "values": ["v1"]}}],
                                  "actions": [{"type": "forward", "targetGroupArn": "tg"}]})]
    if block:
        rules.append(Res(RULE, "block-metrics", {"listenerArn": "arn:listener", "priority": 1,
                                                 "conditions": [{"pathPattern": {"values": ["/metrics",
                                                                                            "/metrics/*"]}}],
                                                 "actions": [{"type": "fixed-response"}]}))
    return [listener, Res(LISTENER, "http", http() | {"arn": "arn:http"}), *rules]


def test_metrics_blocked_before_every_forward_passes() -> None:
    assert check_stack(METRICS_PATH, _listener_stack()).violations == []


def test_header_rule_forwards_metrics_without_block() -> None:
    result = check_stack(METRICS_PATH, _listener_stack(block=False))
    assert result.violations == [(urn(RULE, "pin-v1"),
                                  "Listener rule 'pin-v1' (priority 200) forwards /metrics to the hosts; add a "
                                  "higher-priority rule answering /metrics with a fixed response.")]


def test_block_rule_after_the_forward_does_not_help() -> None:
    resources = _listener_stack(catch_all_priority=100)
    resources = [r for r in resources if r.name != "pin-v1"]
    for resource in resources:
        if resource.name == "block-metrics":
            resource.props = {**resource.props, "priority": 300}
    assert check_stack(METRICS_PATH, resources).messages == [
        "Listener rule 'traffic' (priority 100) forwards /metrics to the hosts; add a higher-priority rule answering "
        "/metrics with a fixed response."]


def test_default_forward_action_fails() -> None:
    listener = Res(LISTENER, "https", https() | {"arn": "arn:listener",
                                                 "defaultActions": [{"type": "forward", "targetGroupArn": "tg"}]})
    assert check_stack(METRICS_PATH, [listener]).violations == [
        (listener.urn, "Listener 'https' forwards /metrics to the hosts through its default action; add a rule "
                       "answering /metrics with a fixed response.")]


def test_source_ip_rule_cannot_be_reached_by_anyone() -> None:
    listener = Res(LISTENER, "https", https() | {"arn": "arn:listener"})
    office = Res(RULE, "office", {"listenerArn": "arn:listener", "priority": 5,
                                  "conditions": [{"sourceIp": {"values": ["10.60.0.0/24"]}}],
                                  "actions": [{"type": "forward", "targetGroupArn": "tg"}]})
    assert check_stack(METRICS_PATH, [listener, office]).violations == []


# --- WAF (stack, advisory) -------------------------------------------------------------------

def test_public_alb_with_waf_passes() -> None:
    balancer = Res(LOAD_BALANCER, "alb", alb() | {"arn": "arn:alb"})
    association = Res(lb.WAF_ASSOCIATION, "waf", {"resourceArn": "arn:alb", "webAclArn": "arn:acl"})
    assert check_stack(WAF, [balancer, association]).violations == []


def test_public_alb_without_waf_is_reported() -> None:
    balancer = Res(LOAD_BALANCER, "alb", alb() | {"arn": "arn:alb"})
    assert check_stack(WAF, [balancer]).violations == [
        (balancer.urn, "Load balancer 'alb' is internet-facing without a WAF web ACL.")]
    assert WAF.enforcement_level == EnforcementLevel.ADVISORY


def test_waf_classic_regional_association_counts() -> None:
    balancer = Res(LOAD_BALANCER, "alb", alb() | {"arn": "arn:alb"})
    association = Res("aws:wafregional/webAclAssociation:WebAclAssociation", "waf-classic",
                      {"webAclId": "acl-1"}, property_dependencies={"resourceArn": [balancer.urn]})
    assert check_stack(WAF, [balancer, association]).violations == []


def test_internal_alb_needs_no_waf() -> None:
    balancer = Res(LOAD_BALANCER, "internal-alb", alb() | {"arn": "arn:alb", "internal": True})
    assert check_stack(WAF, [balancer]).violations == []


# --- thresholds from config ----------------------------------------------------------------------

def test_desync_modes_come_from_config() -> None:
    props = alb() | {"desyncMitigationMode": "defensive"}
    assert check_resource(DESYNC, LOAD_BALANCER, props, config={"allowedModes": ["strictest"]}).messages == [
        "desyncMitigationMode is 'defensive'; it must be 'strictest'."]


def test_frame_options_come_from_config() -> None:
    props = https() | {"routingHttpResponseXFrameOptionsHeaderValue": "SAMEORIGIN"}
    assert check_resource(HEADERS, LISTENER, props, config={"allowedFrameOptions": ["DENY"]}).messages == [
        "routingHttpResponseXFrameOptionsHeaderValue is not DENY."]
