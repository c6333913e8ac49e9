"""A compliant SARK account built with boto3 against moto's server, and a fake of the live site.

:func:`build_account` creates, under a unique prefix, everything ``sarkops verify`` looks at (VPC,
the five security groups of the firewall matrix, ALB with HTTPS/HTTP listeners and a target
group, the access-log bucket, the stack KMS key, RDS PostgreSQL, the TimescaleDB data volume and
its snapshot, an ElastiCache replication group, the secrets with rotation, the alert topic with
a confirmed subscription, alarms, log groups and the dashboard) and returns the stack outputs a
real ``pulumi stack output --json`` would print for it.

moto does not serve HTTP for the load balancer, so :class:`FakeSite` answers the HTTP probes
the way the real ALB + app do (and can be told to misbehave).
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sarkops.verify.core import HttpProbeError, HttpResponse

REGION = "us-east-1"
_counter = itertools.count(1)

GOOD_HEADERS = {
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-type": "application/json",
}

SECRET_DAYS = {"SECRET_KEY": 180, "POSTGRES_PASSWORD": 90, "TIMESCALE_PASSWORD": 90, "VALKEY_PASSWORD": 90}
"""The generated secrets and the rotation period the stack gives them (Secrets Manager rotation)."""
EXTERNAL_SECRETS = ("SPLUNK_HEC_TOKEN",)
"""Issued outside AWS and put in by an operator; rotated by hand."""


@dataclass
class Account:
    """What :func:`build_account` made: the outputs, and handles for injecting drift."""

    prefix: str
    session: Any
    endpoint: str
    outputs: dict[str, Any]
    ids: dict[str, str] = field(default_factory=dict)
    """Raw identifiers (security groups, listeners, volume, snapshot, ...) by role."""
    clients: dict[str, Any] = field(default_factory=dict)
    verify_clients: Any = None
    """A shared :class:`sarkops.verify.Clients` for verify runs (None: verify makes its own)."""

    def client(self, service: str) -> Any:
        """A boto3 client against the moto server (cached: creating one costs 10-25 ms)."""
        if service not in self.clients:
            self.clients[service] = self.session.client(service, region_name=REGION, endpoint_url=self.endpoint)
        return self.clients[service]


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source)
    return buffer.getvalue()


@dataclass(frozen=True)
class Shared:
    """Made once per session because moto is slow to make them (RSA and key material): ~0.45 s."""

    rotation_lambda_arn: str
    certificate_arn: str
    stack_key_arn: str
    other_key_arn: str
    """A second customer-managed key, for the "secret encrypted with another key" drift."""


def create_shared(session: Any, endpoint: str) -> Shared:
    """The rotation Lambda, the ACM certificate and the KMS keys every account uses."""
    kms = session.client("kms", region_name=REGION, endpoint_url=endpoint)
    return Shared(
        rotation_lambda_arn=_create_rotation_lambda(session, endpoint),
        certificate_arn=session.client("acm", region_name=REGION, endpoint_url=endpoint).request_certificate(
            DomainName="*.sark.example.com")["CertificateArn"],
        stack_key_arn=kms.create_key(Description="SARK stack key")["KeyMetadata"]["Arn"],
        other_key_arn=kms.create_key(Description="someone else's key")["KeyMetadata"]["Arn"],
    )


def _create_rotation_lambda(session: Any, endpoint: str) -> str:
    """A rotation function for Secrets Manager (moto's docker-less Lambda backend must be on)."""
    iam = session.client("iam", region_name=REGION, endpoint_url=endpoint)
    role = iam.create_role(RoleName="sark-secret-rotation", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                       "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    function = session.client("lambda", region_name=REGION, endpoint_url=endpoint).create_function(
        FunctionName="sark-secret-rotation", Runtime="python3.11", Role=role, Handler="index.handler",
        Code={"ZipFile": _zip("def handler(event, context):\n    return {}\n")})
    return str(function["FunctionArn"])


def build_account(session: Any, endpoint: str, shared: Shared, clients: dict[str, Any] | None = None) -> Account:
    """Create a compliant SARK deployment under a fresh prefix and return its outputs.

    ``clients`` is a boto3 client cache to share between accounts (same session and endpoint).
    """
    prefix = f"t{next(_counter)}"
    account = Account(prefix=prefix, session=session, endpoint=endpoint, outputs={},
                      clients=clients if clients is not None else {})
    ec2, elbv2 = account.client("ec2"), account.client("elbv2")
    ids = account.ids

    # Network and the firewall matrix (components/security_groups.py).
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{i}.0/24", AvailabilityZone=f"{REGION}{az}")
               ["Subnet"]["SubnetId"] for i, az in ((1, "a"), (2, "b"))]
    groups = {role: ec2.create_security_group(GroupName=f"{prefix}-{role}", Description=f"SARK {role}",
                                              VpcId=vpc)["GroupId"]
              for role in ("load-balancer", "app", "database", "timescale", "cache")}
    ec2.authorize_security_group_ingress(GroupId=groups["load-balancer"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
         "Ipv6Ranges": [{"CidrIpv6": "::/0"}]} for port in (443, 80)])
    ec2.authorize_security_group_ingress(GroupId=groups["app"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8000,
         "UserIdGroupPairs": [{"GroupId": groups["load-balancer"]}]},
        {"IpProtocol": "tcp", "FromPort": 9090, "ToPort": 9090, "IpRanges": [{"CidrIp": "10.50.0.0/24"}]}])
    for role, port in (("database", 5432), ("timescale", 5432), ("cache", 6379)):
        ec2.authorize_security_group_ingress(GroupId=groups[role], IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [{"GroupId": groups["app"]}]}])
    ids.update({f"sg-{role}": gid for role, gid in groups.items()}, vpc=vpc)

    key = {"Arn": shared.stack_key_arn}

    # Load balancer, listeners, the release's target group, access logs.
    bucket = f"{prefix}-sark-access-logs"
    account.client("s3").create_bucket(Bucket=bucket)
    lb = elbv2.create_load_balancer(Name=f"{prefix}-sark", Subnets=subnets, SecurityGroups=[groups["load-balancer"]],
                                    Scheme="internet-facing", Type="application")["LoadBalancers"][0]
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"], Attributes=[
        {"Key": "access_logs.s3.enabled", "Value": "true"}, {"Key": "access_logs.s3.bucket", "Value": bucket}])
    target_group = elbv2.create_target_group(
        Name=f"{prefix}-v1-2-0", Protocol="HTTP", Port=8000, VpcId=vpc, HealthCheckPath="/health",
        HealthCheckIntervalSeconds=10, UnhealthyThresholdCount=3, HealthyThresholdCount=2,
        Matcher={"HttpCode": "200"})["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=target_group, Targets=[{"Id": "i-0a1b2c3d4e5f60001", "Port": 8000},
                                                                 {"Id": "i-0a1b2c3d4e5f60002", "Port": 8000}])
    certificate = shared.certificate_arn
    https = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTPS", Port=443,
        SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06", Certificates=[{"CertificateArn": certificate}],
        DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}])["Listeners"][0]["ListenerArn"]
    http = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
        DefaultActions=[{"Type": "redirect", "RedirectConfig": {
            "Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}])["Listeners"][0]["ListenerArn"]
    ids.update(https_listener=https, http_listener=http, target_group=target_group)

    # Data tier.
    db_id = f"{prefix}-sark-db"
    account.client("rds").create_db_instance(
        DBInstanceIdentifier=db_id, Engine="postgres", EngineVersion="15.8", DBInstanceClass="db.m6g.large",
        DBName="sark", MasterUsername="sark", MasterUserPassword="not-a-real-password-0123",
        AllocatedStorage=100, StorageType="gp3", StorageEncrypted=True, KmsKeyId=key["Arn"],
        DeletionProtection=True, BackupRetentionPeriod=30, MultiAZ=True,
        VpcSecurityGroupIds=[groups["database"]])
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=200, VolumeType="gp3", Encrypted=True,
                               KmsKeyId=key["Arn"])["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume, Description="daily")["SnapshotId"]
    cache_id = f"{prefix}-sark-cache"
    account.client("elasticache").create_replication_group(
        ReplicationGroupId=cache_id, ReplicationGroupDescription="SARK cache", Engine="valkey",
        EngineVersion="7.2", CacheNodeType="cache.m6g.large", NumCacheClusters=2, AutomaticFailoverEnabled=True,
        MultiAZEnabled=True, TransitEncryptionEnabled=True, AtRestEncryptionEnabled=True,
        AuthToken="not-a-real-auth-token-0123456789", KmsKeyId=key["Arn"],
        SecurityGroupIds=[groups["cache"]])
    ids.update(volume=volume, snapshot=snapshot)

    # Secrets: generated ones rotate in Secrets Manager, the SIEM token is put by an operator.
    secrets = account.client("secretsmanager")
    secret_arns: dict[str, str] = {}
    for name, days in SECRET_DAYS.items():
        arn = secrets.create_secret(Name=f"{prefix}/{name}", SecretString="generated-value", KmsKeyId=key["Arn"],
                                    Tags=[{"Key": "sark:rotation-days", "Value": str(days)}])["ARN"]
        secrets.rotate_secret(SecretId=arn, RotationLambdaARN=shared.rotation_lambda_arn,
                              RotationRules={"AutomaticallyAfterDays": days}, RotateImmediately=False)
        secret_arns[name] = arn
    for name in EXTERNAL_SECRETS:
        secret_arns[name] = secrets.create_secret(Name=f"{prefix}/{name}", SecretString="operator-put-value",
                                                  KmsKeyId=key["Arn"])["ARN"]

    # Observability.
    topic = account.client("sns").create_topic(Name=f"{prefix}-sark-alerts",
                                               Attributes={"KmsMasterKeyId": key["Arn"]})["TopicArn"]
    queue = account.client("sqs").create_queue(QueueName=f"{prefix}-pager")["QueueUrl"]
    queue_arn = account.client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    subscription = account.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn,
                                                    ReturnSubscriptionArn=True)["SubscriptionArn"]
    ids["subscription"] = subscription
    cloudwatch = account.client("cloudwatch")
    alarm_names = []
    for what, namespace, metric in (("error-rate", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"),
                                    ("siem-failures", "SARK/App", "siem_events_failed_total"),
                                    ("rds-connections", "AWS/RDS", "DatabaseConnections"),
                                    ("app-cpu", "AWS/EC2", "CPUUtilization")):
        name = f"{prefix}-sark-{what}"
        cloudwatch.put_metric_alarm(AlarmName=name, Namespace=namespace, MetricName=metric, Statistic="Sum",
                                    Period=60, EvaluationPeriods=5, Threshold=1,
                                    ComparisonOperator="GreaterThanThreshold",
                                    AlarmActions=[topic], OKActions=[topic], TreatMissingData="notBreaching")
        alarm_names.append(name)
    logs = account.client("logs")
    log_groups = [f"/sark/{prefix}/app", f"/sark/{prefix}/journal", f"/sark/{prefix}/timescale"]
    for name in log_groups:
        logs.create_log_group(logGroupName=name, kmsKeyId=key["Arn"])
        logs.put_retention_policy(logGroupName=name, retentionInDays=90)
    dashboard = f"{prefix}-sark"
    cloudwatch.put_dashboard(DashboardName=dashboard, DashboardBody=json.dumps({"widgets": [
        {"type": "metric", "x": 0, "y": 0, "width": 12, "height": 6,
         "properties": {"title": "Request rate", "region": REGION,
                        "metrics": [["AWS/ApplicationELB", "RequestCount", "LoadBalancer", "app/x/y"]]}},
        {"type": "metric", "x": 12, "y": 0, "width": 12, "height": 6,
         "properties": {"title": "Error rate", "region": REGION,
                        "metrics": [["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", "app/x/y"]]}},
    ]}))

    account.outputs = {
        "serviceUrl": f"https://{prefix}.sark.example.com",
        "loadBalancerArn": lb["LoadBalancerArn"],
        "loadBalancerDnsName": lb["DNSName"],
        "httpsListenerArn": https,
        "httpListenerArn": http,
        "targetGroupArns": [target_group],
        "appSecurityGroupId": groups["app"],
        "loadBalancerSecurityGroupId": groups["load-balancer"],
        "dbInstanceIdentifier": db_id,
        "timescaleInstanceId": "i-0a1b2c3d4e5f6aaaa",
        "timescaleDataVolumeId": volume,
        "cacheReplicationGroupId": cache_id,
        "secretArns": secret_arns,
        "stackKeyArn": key["Arn"],
        "alertTopicArn": topic,
        "alarmNames": alarm_names,
        "dashboardName": dashboard,
        "logGroupNames": log_groups,
        "accessLogBucket": bucket,
        "vpcId": vpc,  # exported by the stack but not used by verify: must be ignored
    }
    return account


class FakeSite:
    """The service as the HTTP probe sees it: ALB redirect on :80, the app's /health, /metrics blocked.

    moto emulates the load balancer's API but does not serve HTTP, so the HTTP items are checked
    against this instead. ``routes`` maps a URL to a response (or an exception) and can be edited
    by a test to inject a fault; ``requested`` records every URL asked for.
    """

    def __init__(self, service_url: str) -> None:
        host = urlsplit(service_url).hostname
        self.requested: list[str] = []
        self.routes: dict[str, HttpResponse | Exception | Callable[[], HttpResponse]] = {
            f"https://{host}/health": HttpResponse(200, GOOD_HEADERS, b'{"status": "healthy", "version": "v1.2.0"}'),
            f"http://{host}/health": HttpResponse(301, {"location": f"https://{host}:443/health"}),
            f"https://{host}/metrics": HttpResponse(404, GOOD_HEADERS, b'{"detail": "Not Found"}'),
        }

    def __call__(self, url: str) -> HttpResponse:
        self.requested.append(url)
        route = self.routes.get(url)
        if route is None:
            raise HttpProbeError(url, "the fake site has no such URL")
        if isinstance(route, Exception):
            raise route
        if callable(route):
            return route()
        return route
