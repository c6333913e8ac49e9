"""``sarkops verify`` against moto's server: a compliant account passes every item, and each injected
drift fails exactly the item it should and no other.

What moto cannot emulate is covered elsewhere, and said so here:

- moto does not serve HTTP for the load balancer, so /health, the 301 at the edge, the security
  headers and /metrics are answered by :class:`~tests.verify.account.FakeSite` (the HTTP drifts
  below edit its answers);
- moto reports every target ``healthy`` and RDS ``LatestRestorableTime`` is always "now": the
  FAIL paths of ``targets-healthy`` and ``rds-restorable`` are tested with botocore's Stubber in
  test_checks.py;
- moto never evaluates alarms: the "in ALARM" drift uses ``set_alarm_state``;
- moto has no ``CancelRotation``: "rotation off" points the stack's output at a twin secret that
  was never given rotation, which is what ``describe_secret`` shows after a cancel;
- moto stamps EBS snapshots with the creation time and has no API to change it: "snapshot too
  old" ages the snapshot in moto's in-process backend (the server runs in this process).

Timing (2-core machine): the first account costs ~4 s while moto loads its backends; each later
one ~0.3 s to build and ~0.2 s to verify.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from sarkops.verify.cli import AwsSettings, Report, verify
from sarkops.verify.core import FAIL, PASS, HttpProbeError, HttpResponse, parse_outputs
from sarkops.verify.items import ITEM_IDS
from tests.verify.account import GOOD_HEADERS, REGION, Account, FakeSite, Shared


def run(account: Account, site: FakeSite | None = None, *, shared_clients: bool = True) -> Report:
    outputs = parse_outputs(account.outputs, "outputs.json")
    return verify(outputs, stack="production", settings=AwsSettings(endpoint_url=account.endpoint),
                  session=account.session, http_get=site or FakeSite(account.outputs["serviceUrl"]),
                  clients=account.verify_clients if shared_clients else None)


def failures(report: Report) -> dict[str, tuple[str, str | None]]:
    return {item.id: (item.evidence, item.fix) for item in report.items if item.status != PASS}


def test_compliant_account_passes_every_item(account: Account) -> None:
    site = FakeSite(account.outputs["serviceUrl"])
    report = run(account, site, shared_clients=False)

    assert [item.id for item in report.items] == list(ITEM_IDS)
    assert failures(report) == {}
    assert not report.failed
    assert report.account_id == "123456789012"
    assert report.region == REGION  # taken from the ARNs in the outputs: no --region given
    host = account.outputs["serviceUrl"].removeprefix("https://")
    # Each URL is fetched once even though several items read /health.
    assert sorted(site.requested) == sorted([f"https://{host}/health", f"http://{host}/health",
                                             f"https://{host}/metrics"])
    evidence = {item.id: item.evidence for item in report.items}
    db = account.outputs["dbInstanceIdentifier"]
    assert evidence["rds-backup-retention"] == f"{db} keeps automated backups 30 days"
    assert "2/2 healthy" in evidence["targets-healthy"]
    assert "SPLUNK_HEC_TOKEN by hand" in evidence["secrets-rotation"]
    assert "SECRET_KEY every 180 days" in evidence["secrets-rotation"]


# ---------------------------------------------------------------------------------------------
# AWS drift: change the account with boto3, expect exactly one failing item
# ---------------------------------------------------------------------------------------------
def _rds(account: Account, **changes: Any) -> None:
    account.client("rds").modify_db_instance(DBInstanceIdentifier=account.outputs["dbInstanceIdentifier"],
                                             ApplyImmediately=True, **changes)


def _alarm(account: Account, index: int = 1) -> str:
    return account.outputs["alarmNames"][index]


def drift_retention_lowered(account: Account) -> str:
    _rds(account, BackupRetentionPeriod=7)
    return "keeps automated backups 7 days, expected at least 30"


def drift_deletion_protection_off(account: Account) -> str:
    _rds(account, DeletionProtection=False)
    return "has deletion protection off"


def drift_multi_az_off(account: Account) -> str:
    _rds(account, MultiAZ=False)
    return "runs in one availability zone"


def drift_unencrypted_database(account: Account) -> str:
    # Encryption cannot be switched off in place: the stack output points at an unencrypted twin.
    twin = account.outputs["dbInstanceIdentifier"] + "-plain"
    account.client("rds").create_db_instance(
        DBInstanceIdentifier=twin, Engine="postgres", DBInstanceClass="db.m6g.large", MasterUsername="sark",
        MasterUserPassword="not-a-real-password-0123", AllocatedStorage=100, StorageEncrypted=False,
        DeletionProtection=True, BackupRetentionPeriod=30, MultiAZ=True)
    account.outputs["dbInstanceIdentifier"] = twin
    return f"{twin} storage is not encrypted"


def drift_alarm_deleted(account: Account) -> str:
    account.client("cloudwatch").delete_alarms(AlarmNames=[_alarm(account)])
    return f"missing: {_alarm(account)}"


def drift_alarm_without_actions(account: Account) -> str:
    account.client("cloudwatch").put_metric_alarm(
        AlarmName=_alarm(account), Namespace="SARK/App", MetricName="siem_events_failed_total", Statistic="Sum",
        Period=60, EvaluationPeriods=2, Threshold=0, ComparisonOperator="GreaterThanThreshold")
    return f"no alarm actions: {_alarm(account)}"


def drift_alarm_actions_disabled(account: Account) -> str:
    account.client("cloudwatch").disable_alarm_actions(AlarmNames=[_alarm(account, 2)])
    return f"actions disabled: {_alarm(account, 2)}"


def drift_alarm_firing(account: Account) -> str:
    # moto never evaluates alarms from metric data; set_alarm_state is how a test puts one in ALARM.
    account.client("cloudwatch").set_alarm_state(AlarmName=_alarm(account, 0), StateValue="ALARM",
                                                 StateReason="5xx above 5% for 5 minutes")
    return f"in ALARM: {_alarm(account, 0)} (5xx above 5% for 5 minutes)"


def drift_subscription_removed(account: Account) -> str:
    account.client("sns").unsubscribe(SubscriptionArn=account.ids["subscription"])
    return "no confirmed subscription (no subscriptions)"


def drift_app_port_22_open_to_world(account: Account) -> str:
    account.client("ec2").authorize_security_group_ingress(
        GroupId=account.ids["sg-app"], IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                                       "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    return f"{account.ids['sg-app']} ({account.prefix}-app) allows tcp/22 from 0.0.0.0/0"


def drift_database_open_to_world_ipv6(account: Account) -> str:
    account.client("ec2").authorize_security_group_ingress(
        GroupId=account.ids["sg-database"], IpPermissions=[{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
                                                            "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}])
    return f"{account.ids['sg-database']} ({account.prefix}-database) allows tcp/5432 from ::/0"


def drift_load_balancer_all_ports_open(account: Account) -> str:
    account.client("ec2").authorize_security_group_ingress(
        GroupId=account.ids["sg-load-balancer"], IpPermissions=[{"IpProtocol": "-1",
                                                                 "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    return "allows all traffic from 0.0.0.0/0"


def drift_app_port_from_a_cidr(account: Account) -> str:
    account.client("ec2").authorize_security_group_ingress(
        GroupId=account.ids["sg-app"], IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8000,
                                                       "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    return f"allows tcp/8000 from 10.0.0.0/8; only {account.ids['sg-load-balancer']} may reach 8000"


def drift_extra_listener(account: Account) -> str:
    account.client("elbv2").create_listener(
        LoadBalancerArn=account.outputs["loadBalancerArn"], Protocol="HTTP", Port=8080,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": account.ids["target_group"]}])
    return "load balancer listens on 8080"


def drift_http_listener_not_redirecting(account: Account) -> str:
    account.client("elbv2").modify_listener(
        ListenerArn=account.ids["http_listener"],
        DefaultActions=[{"Type": "forward", "TargetGroupArn": account.ids["target_group"]}])
    return "HTTP listener :80 default action is forward, expected one redirect to HTTPS"


def drift_redirect_with_302(account: Account) -> str:
    account.client("elbv2").modify_listener(
        ListenerArn=account.ids["http_listener"],
        DefaultActions=[{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443",
                                                                 "StatusCode": "HTTP_302"}}])
    return "redirects with HTTP_302, expected HTTP_301"


def drift_wrong_tls_policy(account: Account) -> str:
    account.client("elbv2").modify_listener(ListenerArn=account.ids["https_listener"],
                                            SslPolicy="ELBSecurityPolicy-2016-08")
    return "HTTPS listener uses TLS policy ELBSecurityPolicy-2016-08"


def drift_access_logs_off(account: Account) -> str:
    account.client("elbv2").modify_load_balancer_attributes(
        LoadBalancerArn=account.outputs["loadBalancerArn"],
        Attributes=[{"Key": "access_logs.s3.enabled", "Value": "false"}])
    return "access logs are off"


def drift_timescale_snapshot_too_old(account: Account) -> str:
    # No AWS API backdates a snapshot; the moto server runs in this process, so age it in its backend.
    from moto.core.utils import utcnow
    from moto.ec2.models import ec2_backends

    snapshot = ec2_backends["123456789012"][REGION].snapshots[account.ids["snapshot"]]
    snapshot.start_time = utcnow() - timedelta(days=3)
    return f"latest snapshot {account.ids['snapshot']}"


def drift_timescale_snapshot_deleted(account: Account) -> str:
    account.client("ec2").delete_snapshot(SnapshotId=account.ids["snapshot"])
    return "no completed snapshot; expected one within 26 h"


def drift_cache_failover_off(account: Account) -> str:
    account.client("elasticache").modify_replication_group(
        ReplicationGroupId=account.outputs["cacheReplicationGroupId"], AutomaticFailoverEnabled=False,
        ApplyImmediately=True)
    return "automatic failover is disabled"


def _cache_twin(account: Account, **settings: Any) -> str:
    twin = account.outputs["cacheReplicationGroupId"] + "-twin"
    base = {"TransitEncryptionEnabled": True, "AtRestEncryptionEnabled": True, "AuthToken": "x" * 32}
    account.client("elasticache").create_replication_group(
        ReplicationGroupId=twin, ReplicationGroupDescription="twin", Engine="valkey", CacheNodeType="cache.m6g.large",
        NumCacheClusters=2, AutomaticFailoverEnabled=True, MultiAZEnabled=True,
        **{k: v for k, v in {**base, **settings}.items() if v is not None})
    account.outputs["cacheReplicationGroupId"] = twin
    return twin


def drift_cache_without_auth(account: Account) -> str:
    return f"{_cache_twin(account, AuthToken=None)} accepts clients without AUTH"


def drift_cache_not_encrypted_at_rest(account: Account) -> str:
    return f"{_cache_twin(account, AtRestEncryptionEnabled=False)} is not encrypted at rest"


def drift_rotation_off(account: Account) -> str:
    # moto has no CancelRotation: point POSTGRES_PASSWORD at a twin secret that never got rotation.
    twin = account.client("secretsmanager").create_secret(
        Name=f"{account.prefix}/POSTGRES_PASSWORD-twin", SecretString="v",
        KmsKeyId=account.outputs["stackKeyArn"])["ARN"]
    account.outputs["secretArns"]["POSTGRES_PASSWORD"] = twin
    return "POSTGRES_PASSWORD has rotation off, expected every 90 days (checklist)"


def drift_rotation_too_slow(account: Account) -> str:
    secrets = account.client("secretsmanager")
    secrets.rotate_secret(SecretId=account.outputs["secretArns"]["SECRET_KEY"],
                          RotationRules={"AutomaticallyAfterDays": 365}, RotateImmediately=False)
    return "SECRET_KEY rotates every 365 days, expected at most 180 (checklist)"


def drift_secret_with_another_key(account: Account, shared: Shared) -> str:
    account.client("secretsmanager").update_secret(SecretId=account.outputs["secretArns"]["VALKEY_PASSWORD"],
                                                   KmsKeyId=shared.other_key_arn)
    return f"VALKEY_PASSWORD is encrypted with {shared.other_key_arn}"


def drift_secret_with_aws_managed_key(account: Account) -> str:
    account.client("secretsmanager").update_secret(SecretId=account.outputs["secretArns"]["SECRET_KEY"],
                                                   KmsKeyId="alias/aws/secretsmanager")
    return "SECRET_KEY is encrypted with the AWS managed key aws/secretsmanager"


def drift_external_token_never_put(account: Account) -> str:
    twin = account.client("secretsmanager").create_secret(
        Name=f"{account.prefix}/SPLUNK_HEC_TOKEN-empty", KmsKeyId=account.outputs["stackKeyArn"])["ARN"]
    account.outputs["secretArns"]["SPLUNK_HEC_TOKEN"] = twin
    return "SPLUNK_HEC_TOKEN has no value yet"


def drift_secret_scheduled_for_deletion(account: Account) -> str:
    account.client("secretsmanager").delete_secret(SecretId=account.outputs["secretArns"]["TIMESCALE_PASSWORD"],
                                                   RecoveryWindowInDays=7)
    return "TIMESCALE_PASSWORD is scheduled for deletion"


def drift_log_retention_removed(account: Account) -> str:
    name = account.outputs["logGroupNames"][1]
    account.client("logs").delete_retention_policy(logGroupName=name)
    return f"{name} never expires"


def drift_log_retention_too_long(account: Account) -> str:
    name = account.outputs["logGroupNames"][0]
    account.client("logs").put_retention_policy(logGroupName=name, retentionInDays=365)
    return f"{name} keeps 365 days"


def drift_log_group_deleted(account: Account) -> str:
    name = account.outputs["logGroupNames"][2]
    account.client("logs").delete_log_group(logGroupName=name)
    return f"{name} does not exist"


def drift_dashboard_deleted(account: Account) -> str:
    account.client("cloudwatch").delete_dashboards(DashboardNames=[account.outputs["dashboardName"]])
    return "GetDashboard: ResourceNotFound"


AWS_DRIFTS: dict[str, tuple[Callable[..., str], str]] = {
    "retention lowered": (drift_retention_lowered, "rds-backup-retention"),
    "deletion protection off": (drift_deletion_protection_off, "rds-deletion-protection"),
    "multi-az off": (drift_multi_az_off, "rds-multi-az"),
    "unencrypted database": (drift_unencrypted_database, "rds-encryption"),
    "an alarm deleted": (drift_alarm_deleted, "alarms-configured"),
    "an alarm without actions": (drift_alarm_without_actions, "alarms-configured"),
    "alarm actions disabled": (drift_alarm_actions_disabled, "alarms-configured"),
    "an alarm in ALARM": (drift_alarm_firing, "alarms-quiet"),
    "alert subscription removed": (drift_subscription_removed, "alert-topic"),
    "port 22 opened to the world": (drift_app_port_22_open_to_world, "exposed-ports"),
    "database open to ::/0": (drift_database_open_to_world_ipv6, "exposed-ports"),
    "load balancer open on every port": (drift_load_balancer_all_ports_open, "exposed-ports"),
    "app port from a CIDR": (drift_app_port_from_a_cidr, "exposed-ports"),
    "extra load balancer listener": (drift_extra_listener, "exposed-ports"),
    "HTTP listener not redirecting": (drift_http_listener_not_redirecting, "https-redirect"),
    "redirect with 302": (drift_redirect_with_302, "https-redirect"),
    "wrong TLS policy": (drift_wrong_tls_policy, "tls-policy"),
    "access logs off": (drift_access_logs_off, "lb-access-logs"),
    "snapshot too old": (drift_timescale_snapshot_too_old, "timescale-snapshots"),
    "snapshot deleted": (drift_timescale_snapshot_deleted, "timescale-snapshots"),
    "cache failover off": (drift_cache_failover_off, "cache-failover"),
    "cache without AUTH": (drift_cache_without_auth, "cache-auth"),
    "cache not encrypted at rest": (drift_cache_not_encrypted_at_rest, "cache-encryption"),
    "rotation off": (drift_rotation_off, "secrets-rotation"),
    "rotation too slow": (drift_rotation_too_slow, "secrets-rotation"),
    "secret with another KMS key": (drift_secret_with_another_key, "secrets-encryption"),
    "secret with the AWS managed key": (drift_secret_with_aws_managed_key, "secrets-encryption"),
    "external token never put": (drift_external_token_never_put, "secrets-encryption"),
    "secret scheduled for deletion": (drift_secret_scheduled_for_deletion, "secrets-encryption"),
    "log retention removed": (drift_log_retention_removed, "log-retention"),
    "log retention too long": (drift_log_retention_too_long, "log-retention"),
    "log group deleted": (drift_log_group_deleted, "log-retention"),
    "dashboard deleted": (drift_dashboard_deleted, "dashboard"),
}


@pytest.mark.parametrize("drift", list(AWS_DRIFTS))
def test_aws_drift_fails_exactly_its_item(drift: str, account: Account, shared: Shared) -> None:
    inject, item = AWS_DRIFTS[drift]
    expected = inject(account, shared) if "shared" in inject.__code__.co_varnames else inject(account)

    report = run(account)

    found = failures(report)
    assert list(found) == [item], found
    evidence, fix = found[item]
    assert expected in evidence
    assert fix  # every FAIL says what to do
    assert report.failed


# ---------------------------------------------------------------------------------------------
# HTTP drift: the account stays compliant, the live site misbehaves
# ---------------------------------------------------------------------------------------------
def _health(site: FakeSite) -> str:
    return next(url for url in site.routes if url.startswith("https://") and url.endswith("/health"))


def http_unhealthy(site: FakeSite) -> str:
    site.routes[_health(site)] = HttpResponse(503, GOOD_HEADERS, b'{"status": "unhealthy"}')
    return "answered 503, expected 200"


def http_degraded(site: FakeSite) -> str:
    site.routes[_health(site)] = HttpResponse(200, GOOD_HEADERS, json.dumps({"status": "degraded"}).encode())
    return "answered 200 with status 'degraded', expected \"healthy\""


def http_no_hsts(site: FakeSite) -> str:
    headers = {k: v for k, v in GOOD_HEADERS.items() if k != "strict-transport-security"}
    site.routes[_health(site)] = HttpResponse(200, headers, b'{"status": "healthy"}')
    return "Strict-Transport-Security missing"


def http_short_hsts_and_frames_allowed(site: FakeSite) -> str:
    headers = {**GOOD_HEADERS, "strict-transport-security": "max-age=300", "x-frame-options": "ALLOWALL"}
    site.routes[_health(site)] = HttpResponse(200, headers, b'{"status": "healthy"}')
    return "has max-age below 31536000 (one year); GET"


def http_metrics_public(site: FakeSite) -> str:
    url = _health(site).replace("/health", "/metrics")
    site.routes[url] = HttpResponse(200, {}, b"# HELP http_requests_total Total\n# TYPE http_requests_total counter\n")
    return "answered 200 with Prometheus metrics"


def http_plain_http_served(site: FakeSite) -> str:
    url = _health(site).replace("https://", "http://")
    site.routes[url] = HttpResponse(200, {}, b'{"status": "healthy"}')
    return "answered 200, expected 301"


HTTP_DRIFTS: dict[str, tuple[Callable[[FakeSite], str], str]] = {
    "/health answers 503": (http_unhealthy, "health-endpoint"),
    "/health degraded": (http_degraded, "health-endpoint"),
    "no HSTS": (http_no_hsts, "security-headers"),
    "short HSTS and framing allowed": (http_short_hsts_and_frames_allowed, "security-headers"),
    "/metrics public": (http_metrics_public, "metrics-not-public"),
    "plain HTTP served": (http_plain_http_served, "https-redirect"),
}


@pytest.fixture(scope="module")
def pristine(aws_session: Any, moto_endpoint: str, shared: Shared, client_cache: dict[str, Any],
             verify_clients: Any) -> Account:
    """One compliant account for the tests that never change AWS."""
    from tests.verify.account import build_account

    built = build_account(aws_session, moto_endpoint, shared, client_cache)
    built.verify_clients = verify_clients
    return built


@pytest.mark.parametrize("drift", list(HTTP_DRIFTS))
def test_http_drift_fails_exactly_its_item(drift: str, pristine: Account) -> None:
    inject, item = HTTP_DRIFTS[drift]
    site = FakeSite(pristine.outputs["serviceUrl"])
    expected = inject(site)

    found = failures(run(pristine, site))

    assert list(found) == [item], found
    assert expected in found[item][0]
    assert found[item][1]


def test_unreachable_service_fails_every_http_item_with_a_dns_fix(pristine: Account) -> None:
    def nothing_answers(url: str) -> HttpResponse:
        raise HttpProbeError(url, "[Errno -2] Name or service not known")

    report = verify(parse_outputs(pristine.outputs, "outputs.json"), stack="production",
                    settings=AwsSettings(endpoint_url=pristine.endpoint), session=pristine.session,
                    http_get=nothing_answers)

    found = failures(report)
    assert sorted(found) == ["health-endpoint", "https-redirect", "metrics-not-public", "security-headers"]
    host = pristine.outputs["serviceUrl"].removeprefix("https://")
    assert found["health-endpoint"] == (
        f"no answer from https://{host}/health: [Errno -2] Name or service not known",
        f"make {host} resolve to the load balancer (loadBalancerDnsName output) and allow 80/443 from where "
        "verify runs (ingressCidrs); rerun verify from a machine that can reach the service")


def test_missing_outputs_skip_their_items_with_the_reason(pristine: Account) -> None:
    outputs = {k: v for k, v in pristine.outputs.items()
               if k not in ("timescaleDataVolumeId", "cacheReplicationGroupId")}
    outputs["dashboardName"] = "[secret]"

    report = verify(parse_outputs(outputs, "outputs.json"), stack="production",
                    settings=AwsSettings(endpoint_url=pristine.endpoint), session=pristine.session,
                    http_get=FakeSite(pristine.outputs["serviceUrl"]))

    skipped = {i.id: i.evidence for i in report.items if i.status != PASS}
    assert skipped == {
        "timescale-snapshots": "output timescaleDataVolumeId not exported by the stack in outputs.json",
        "cache-encryption": "output cacheReplicationGroupId not exported by the stack in outputs.json",
        "cache-auth": "output cacheReplicationGroupId not exported by the stack in outputs.json",
        "cache-failover": "output cacheReplicationGroupId not exported by the stack in outputs.json",
        "dashboard": "output dashboardName is a secret output (masked) in outputs.json",
    }
    assert not report.failed  # skips alone do not fail the run
    assert all(i.status != FAIL for i in report.items)


def test_resource_gone_fails_with_a_not_found_fix(account: Account) -> None:
    account.outputs["dbInstanceIdentifier"] = "sark-production-db-that-was-deleted"

    found = failures(run(account))

    rds_items = ["rds-backup-retention", "rds-restorable", "rds-deletion-protection", "rds-multi-az", "rds-encryption"]
    assert sorted(found) == sorted(rds_items)
    evidence, fix = found["rds-multi-az"]
    assert evidence == ("DescribeDBInstances: DBInstanceNotFound: "
                        "DBInstance sark-production-db-that-was-deleted not found.")
    assert fix is not None
    assert "`pulumi refresh` then `pulumi up` recreates it" in fix
