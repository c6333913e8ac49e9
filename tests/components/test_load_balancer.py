"""LoadBalancer: the ALB, its listeners and target groups, certificate, access-log bucket and WAF."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.load_balancer import (
    METRICS_RULE_PRIORITY,
    RELEASE_HEADER,
    WAF_MANAGED_RULE_GROUPS,
    LoadBalancer,
    LoadBalancerArgs,
    release_rule_priority,
)
from sarkops.plan.policy_runner import evaluate, load_pack
from sarkops.plan.runtime import RecordedResource, Recording
from tests.conftest import record_program

Record = Callable[..., Recording]
ROOT = Path(__file__).resolve().parents[2]
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-1111-2222-3333-444444444444"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"


def args(**overrides: Any) -> LoadBalancerArgs:
    values: dict[str, Any] = {
        "vpc_id": "vpc-0abc", "subnet_ids": ["subnet-0pub1", "subnet-0pub2"], "security_group_id": "sg-0lb",
        "region": "us-east-1", "versions": ["v0.1.0"], "domain_name": "sark.example.com",
        "hosted_zone_id": "Z0123456789ABCDEFGHIJ", "access_log_retention_days": 90, "hsts_max_age_seconds": 31536000,
        "canary_source_cidrs": ["198.51.100.0/24"], "kms_key_arn": KEY_ARN,
    }
    values.update(overrides)
    return LoadBalancerArgs(**values)


@pytest.fixture(scope="module")
def rec() -> Recording:
    """The component with the default args, recorded once for the tests that only read it."""
    return record_program(lambda: LoadBalancer("lb", args()), {"aws:region": "us-east-1"})


def listener(rec: Recording, port: int) -> RecordedResource:
    (found,) = [r for r in rec.by_type("aws:lb/listener:Listener") if r.inputs["port"] == port]
    return found


def test_internet_facing_alb_hardening(rec: Recording) -> None:
    alb = rec.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["internal"] is False
    assert alb["loadBalancerType"] == "application"
    assert alb["subnets"] == ["subnet-0pub1", "subnet-0pub2"]
    assert alb["securityGroups"] == ["sg-0lb"]
    assert alb["dropInvalidHeaderFields"] is True
    assert alb["desyncMitigationMode"] in ("defensive", "strictest")
    assert alb["enableDeletionProtection"] is True
    bucket = rec.one("aws:s3/bucket:Bucket")
    assert alb["accessLogs"] == {"bucket": bucket.outputs["bucket"], "prefix": "alb", "enabled": True}


def test_alb_waits_for_the_bucket_policy(rec: Recording) -> None:
    alb = rec.one("aws:lb/loadBalancer:LoadBalancer")
    assert rec.one("aws:s3/bucketPolicy:BucketPolicy").urn in alb.dependencies


def test_https_listener_tls_certificate_and_headers(rec: Recording) -> None:
    https = listener(rec, 443).inputs
    assert https["protocol"] == "HTTPS"
    assert https["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    validation = rec.one("aws:acm/certificateValidation:CertificateValidation")
    assert https["certificateArn"] == validation.outputs["certificateArn"]
    assert https["routingHttpResponseStrictTransportSecurityHeaderValue"] == "max-age=31536000; includeSubDomains"
    assert https["routingHttpResponseXContentTypeOptionsHeaderValue"] == "nosniff"
    assert https["routingHttpResponseXFrameOptionsHeaderValue"] == "DENY"
    (default,) = https["defaultActions"]
    assert default["type"] == "fixed-response"
    assert default["fixedResponse"]["statusCode"] == "503"


def test_http_listener_only_redirects_with_301(rec: Recording) -> None:
    http = listener(rec, 80).inputs
    assert http["protocol"] == "HTTP"
    assert http["defaultActions"] == [{"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443",
                                                                        "statusCode": "HTTP_301"}}]


def test_certificate_is_dns_validated_in_the_zone(rec: Recording) -> None:
    certificate = rec.one("aws:acm/certificate:Certificate")
    assert certificate.inputs["domainName"] == "sark.example.com"
    assert certificate.inputs["validationMethod"] == "DNS"
    record = rec.one("aws:route53/record:Record", "lb-certificate-validation-record")
    option = certificate.outputs["domainValidationOptions"][0]
    assert record.inputs["zoneId"] == "Z0123456789ABCDEFGHIJ"
    assert (record.inputs["name"], record.inputs["type"]) == (option["resourceRecordName"], "CNAME")
    validation = rec.one("aws:acm/certificateValidation:CertificateValidation")
    assert validation.inputs["validationRecordFqdns"] == [record.outputs["fqdn"]]
    alias = rec.one("aws:route53/record:Record", "lb-alias")
    assert alias.inputs["name"] == "sark.example.com"
    assert alias.inputs["aliases"][0]["name"] == rec.one("aws:lb/loadBalancer:LoadBalancer").outputs["dnsName"]


def test_existing_certificate_is_used_as_given(record: Record) -> None:
    rec = record(lambda: LoadBalancer("lb", args(certificate_arn=CERT, domain_name=None, hosted_zone_id=None)))
    assert rec.by_type("aws:acm/certificate:Certificate") == []
    assert rec.by_type("aws:route53/record:Record") == []
    assert listener(rec, 443).inputs["certificateArn"] == CERT


def test_target_group_health_check_per_release(record: Record) -> None:
    rec = record(lambda: LoadBalancer("lb", args(versions=["v0.2.0", "v0.1.0"])))
    groups = {g.name: g.inputs for g in rec.by_type("aws:lb/targetGroup:TargetGroup")}
    assert set(groups) == {"lb-v0-2-0-tg", "lb-v0-1-0-tg"}
    for group in groups.values():
        assert (group["port"], group["protocol"], group["vpcId"]) == (8000, "HTTP", "vpc-0abc")
        check = group["healthCheck"]
        assert (check["path"], check["interval"], check["unhealthyThreshold"], check["healthyThreshold"],
                check["matcher"]) == ("/health", 10, 3, 2, "200")


def test_release_pin_rules_send_header_traffic_to_their_target_group(record: Record) -> None:
    rec = record(lambda: LoadBalancer("lb", args(versions=["v0.2.0", "v0.1.0"])))
    https = listener(rec, 443)
    for version, key in (("v0.2.0", "v0-2-0"), ("v0.1.0", "v0-1-0")):
        rule = rec.one("aws:lb/listenerRule:ListenerRule", f"lb-{key}-pin").inputs
        assert rule["listenerArn"] == https.outputs["arn"]
        assert rule["priority"] == release_rule_priority(version)
        # The header alone would let any client reach a release before its gate: the source must match too.
        assert rule["conditions"] == [{"httpHeader": {"httpHeaderName": RELEASE_HEADER, "values": [version]}},
                                      {"sourceIp": {"values": ["198.51.100.0/24"]}}]
        target = rec.one("aws:lb/targetGroup:TargetGroup", f"lb-{key}-tg")
        assert rule["actions"] == [{"type": "forward", "targetGroupArn": target.outputs["arn"]}]


def test_metrics_path_answered_before_any_forward(rec: Recording) -> None:
    block = rec.one("aws:lb/listenerRule:ListenerRule", "lb-block-metrics").inputs
    assert block["priority"] == METRICS_RULE_PRIORITY
    assert block["conditions"] == [{"pathPattern": {"values": ["/metrics", "/metrics/*"]}}]
    assert block["actions"][0]["type"] == "fixed-response"
    others = [r.inputs["priority"] for r in rec.by_type("aws:lb/listenerRule:ListenerRule")
              if r.name != "lb-block-metrics"]
    assert all(p > METRICS_RULE_PRIORITY for p in others)


# --- access-log bucket -----------------------------------------------------------------------

def test_log_bucket_is_protected_private_encrypted_and_expiring(rec: Recording) -> None:
    bucket = rec.one("aws:s3/bucket:Bucket")
    assert bucket.protect is True
    assert bucket.retain_on_delete is True
    block = rec.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                          "restrictPublicBuckets"))
    encryption = rec.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert encryption.inputs["rules"] == [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]
    (rule,) = rec.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]
    assert (rule["status"], rule["expiration"]["days"]) == ("Enabled", 90)
    assert rec.one("aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"] == {
        "status": "Enabled"}
    assert rec.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs["rule"] == {
        "objectOwnership": "BucketOwnerEnforced"}


def test_log_bucket_policy_tls_only_and_elb_writes_only(rec: Recording) -> None:
    bucket = rec.one("aws:s3/bucket:Bucket").outputs["arn"]
    policy = json.loads(rec.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    deny = statements["DenyInsecureTransport"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "s3:*")
    assert deny["Resource"] == [bucket, f"{bucket}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    writers = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert {json.dumps(s["Principal"], sort_keys=True) for s in writers} == {
        json.dumps({"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}),
        json.dumps({"AWS": "arn:aws:iam::127311923021:root"}),  # us-east-1's ELB account
    }
    assert all(s["Action"] == "s3:PutObject" for s in writers)
    assert all(s["Resource"] == f"{bucket}/alb/AWSLogs/123456789012/*" for s in writers)


def test_newer_regions_use_only_the_service_principal(record: Record) -> None:
    rec = record(lambda: LoadBalancer("lb", args(legacy_log_delivery_account=False)))
    policy = json.loads(rec.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    assert [s["Principal"] for s in policy["Statement"] if s["Effect"] == "Allow"] == [
        {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}]
    assert not [t for t, _ in rec.invokes if t == "aws:elb/getServiceAccount:getServiceAccount"]


# --- WAF ------------------------------------------------------------------------------------------

def test_waf_with_rate_limit_and_managed_rule_groups_is_associated(rec: Recording) -> None:
    acl = rec.one("aws:wafv2/webAcl:WebAcl")
    assert acl.inputs["scope"] == "REGIONAL"
    rate, *managed = acl.inputs["rules"]
    assert [r["statement"]["managedRuleGroupStatement"]["name"] for r in managed] == list(WAF_MANAGED_RULE_GROUPS)
    # The rate limit comes first and blocks (managed groups only count matches through override "none").
    assert (rate["name"], rate["priority"], rate["action"]) == ("rate-limit-per-ip", 0, {"block": {}})
    assert rate["statement"]["rateBasedStatement"] == {"limit": 2000, "aggregateKeyType": "IP",
                                                       "evaluationWindowSec": 300}
    assert sorted(r["priority"] for r in acl.inputs["rules"]) == list(range(len(acl.inputs["rules"])))
    association = rec.one("aws:wafv2/webAclAssociation:WebAclAssociation")
    assert association.inputs["resourceArn"] == rec.one("aws:lb/loadBalancer:LoadBalancer").outputs["arn"]
    assert association.inputs["webAclArn"] == acl.outputs["arn"]
    # A new load balancer is provisioning for minutes; the provider's 5-minute default can run out.
    assert association.custom_timeouts == {"create": "20m"}


def test_waf_logs_to_an_encrypted_aws_waf_logs_group_with_retention(rec: Recording) -> None:
    acl = rec.one("aws:wafv2/webAcl:WebAcl")
    group = rec.one("aws:cloudwatch/logGroup:LogGroup", "lb-waf-logs")
    assert group.inputs["name"] == "aws-waf-logs-lb"
    assert group.inputs["kmsKeyId"] == KEY_ARN
    assert group.inputs["retentionInDays"] == 90
    assert group.protect is True
    logging = rec.one("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
    assert logging.inputs["resourceArn"] == acl.outputs["arn"]
    assert logging.inputs["logDestinationConfigs"] == [group.outputs["arn"]]
    assert [f["singleHeader"]["name"] for f in logging.inputs["redactedFields"]] == ["authorization", "cookie"]
    policy = rec.one("aws:cloudwatch/logResourcePolicy:LogResourcePolicy")
    assert policy.urn in logging.dependencies
    (statement,) = json.loads(policy.inputs["policyDocument"])["Statement"]
    assert statement["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
    assert statement["Resource"] == f"{group.outputs['arn']}:*"
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}


def test_pin_rule_sources_come_from_the_arguments(record: Record) -> None:
    rec = record(lambda: LoadBalancer("lb", args(canary_source_cidrs=["203.0.113.7/32", "203.0.113.8/32"])))
    rule = rec.one("aws:lb/listenerRule:ListenerRule", "lb-v0-1-0-pin").inputs
    assert rule["conditions"][1] == {"sourceIp": {"values": ["203.0.113.7/32", "203.0.113.8/32"]}}


def test_waf_can_be_switched_off(record: Record) -> None:
    rec = record(lambda: LoadBalancer("lb", args(waf_enabled=False)))
    assert rec.by_type("aws:wafv2/webAcl:WebAcl") == []
    report = evaluate(rec, [load_pack(ROOT / "policies")])
    assert [v.detail for v in report.violations if v.policy == "aws-lb-loadbalancer-enable-waf"] == [
        "Load balancer 'lb-alb' is internet-facing without a WAF web ACL."]


# --- the pack, outputs, bad arguments ---------------------------------------------------------------

def test_policy_pack_finds_nothing_mandatory(rec: Recording) -> None:
    report = evaluate(rec, [load_pack(ROOT / "policies")])
    # The load balancer's alarms are the Monitoring component's; the whole-stack plan checks them.
    found = [(v.policy, v.detail) for v in report.mandatory
             if v.policy != "aws-cloudwatch-require-sark-alarms"]
    assert found == []


def test_outputs(rec: Recording) -> None:
    component = rec.one("sark:loadbalancer:LoadBalancer")
    assert component.outputs["serviceUrl"] == "https://sark.example.com"
    assert component.outputs["httpsListenerArn"] == listener(rec, 443).outputs["arn"]
    assert component.outputs["accessLogBucket"] == rec.one("aws:s3/bucket:Bucket").outputs["bucket"]
    assert set(component.outputs["targetGroupArns"]) == {"v0.1.0"}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"certificate_arn": None, "hosted_zone_id": None},
     "lb: certificate_arn is not set; expected an ACM certificate ARN, or domain_name and hosted_zone_id to create "
     "one"),
    ({"desync_mitigation_mode": "monitor"},
     "lb: desync_mitigation_mode 'monitor' is not allowed; expected defensive or strictest"),
    ({"versions": []}, "lb: versions is empty; at least the current release needs a target group"),
    ({"canary_source_cidrs": []}, "lb: canary_source_cidrs has 0 entries; expected 1 to 4 (an ALB rule takes 5 "
                                  "condition values, one is the release header)"),
    ({"canary_source_cidrs": [f"198.51.100.{i}/32" for i in range(5)]},
     "lb: canary_source_cidrs has 5 entries; expected 1 to 4 (an ALB rule takes 5 condition values, one is the "
     "release header)"),
    ({"kms_key_arn": None}, "lb: kms_key_arn is not set; the WAF log group must be encrypted with the stack key"),
])
def test_bad_arguments_are_named(record: Record, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(pulumi.RunError) as raised:
        record(lambda: LoadBalancer("lb", args(**overrides)))
    assert str(raised.value) == message
