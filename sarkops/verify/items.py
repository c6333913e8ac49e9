"""The checks of ``sarkops verify``: one small function per checklist item.

Each check takes a :class:`~sarkops.verify.core.Context` and returns an
:class:`~sarkops.verify.core.Outcome`. A check that needs an output the stack does not export
raises :class:`~sarkops.verify.core.MissingOutput` (the item is skipped); AWS errors are
turned into FAIL lines by the runner in :mod:`sarkops.verify.cli`. Every FAIL carries a ``fix``:
what the operator should do, usually "run ``pulumi up``" for drift from the program, or the
config key to change.

The thresholds are the checklist's (Pre-Deployment 1.2, 2.1, 3.2, 3.3; Post-Deployment 1, 4, 6)
and are module constants so the documentation and the tests can name them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sarkops.verify.core import (
    Context,
    HttpResponse,
    MissingOutput,
    Outcome,
    ago,
    arn_name,
    aws_error,
    failed,
    is_not_found,
    kms_key_id_from_arn,
    passed,
    plural,
    skipped,
    stamp,
    verdict,
)

# ---------------------------------------------------------------------------------------------
# Thresholds
# ---------------------------------------------------------------------------------------------
ALLOWED_TLS_POLICIES: tuple[str, ...] = (
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
)
"""ELB policies that offer only TLS 1.2 and 1.3 with forward-secret ciphers (checklist 3.2)."""

PUBLIC_PORTS: tuple[int, ...] = (80, 443)
APP_PORT = 8000
MIN_BACKUP_RETENTION_DAYS = 30
MAX_SNAPSHOT_AGE = timedelta(hours=26)
"""A daily snapshot plus two hours for the backup window to move or run long."""
MAX_RESTORE_LAG = timedelta(hours=1)
"""RDS ships transaction logs every 5 minutes; an hour behind means point-in-time restore is broken."""
LOG_RETENTION_DAYS: tuple[int, int] = (30, 90)
MIN_HSTS_MAX_AGE = 31_536_000
FRAME_OPTIONS: tuple[str, ...] = ("DENY", "SAMEORIGIN")
WORLD_CIDRS: frozenset[str] = frozenset({"0.0.0.0/0", "::/0"})
ROTATION_DAYS_TAG = "sark:rotation-days"


@dataclass(frozen=True)
class Rotation:
    """How often a secret must change (checklist 2.1 "Document secret rotation schedule")."""

    max_days: int
    automatic: bool
    """True: Secrets Manager rotates it. False: issued outside AWS, rotated by hand (LastChangedDate)."""


ROTATION_SCHEDULE: Mapping[str, Rotation] = {
    "SECRET_KEY": Rotation(180, automatic=True),
    "POSTGRES_PASSWORD": Rotation(90, automatic=True),
    "TIMESCALE_PASSWORD": Rotation(90, automatic=True),
    "VALKEY_PASSWORD": Rotation(90, automatic=True),
    "SPLUNK_HEC_TOKEN": Rotation(90, automatic=False),
    "DATADOG_API_KEY": Rotation(90, automatic=False),
    "CONSUL_TOKEN": Rotation(90, automatic=False),
    "VAULT_TOKEN": Rotation(90, automatic=False),
}
DEFAULT_ROTATION = Rotation(90, automatic=False)
"""A secret the table does not know is held to the API-token rule (90 days, manual allowed)."""



def _up(ctx: Context) -> str:
    """The usual fix for drift: let the program put the resource back."""
    return f"run `pulumi up --stack {ctx.stack}`"


# ---------------------------------------------------------------------------------------------
# Shared lookups (cached per run)
# ---------------------------------------------------------------------------------------------
def _listener(ctx: Context, output: str) -> dict[str, Any]:
    arn = ctx.outputs.get(output)

    def load() -> dict[str, Any]:
        listeners = ctx.client("elbv2").describe_listeners(ListenerArns=[arn])["Listeners"]
        return listeners[0]

    return ctx.cached("listener", arn, load)


def _db_instance(ctx: Context) -> dict[str, Any]:
    ident = ctx.outputs.get("dbInstanceIdentifier")
    return ctx.cached("rds", ident, lambda: ctx.client("rds").describe_db_instances(
        DBInstanceIdentifier=ident)["DBInstances"][0])


def _replication_group(ctx: Context) -> dict[str, Any]:
    ident = ctx.outputs.get("cacheReplicationGroupId")
    return ctx.cached("elasticache", ident, lambda: ctx.client("elasticache").describe_replication_groups(
        ReplicationGroupId=ident)["ReplicationGroups"][0])


def _key_id(ctx: Context, ref: str) -> str:
    """Resolve a KMS key reference (ARN, id, alias, alias ARN) to its key id."""
    direct = kms_key_id_from_arn(ref)
    if direct is not None:
        return direct
    return ctx.cached("kms", ref, lambda: ctx.client("kms").describe_key(KeyId=ref)["KeyMetadata"]["KeyId"])


def _stack_key_id(ctx: Context) -> str:
    return _key_id(ctx, ctx.outputs.get("stackKeyArn"))


def _alarms(ctx: Context) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """(required names, {name: alarm}) for the names the stack exports."""
    names: list[str] = list(ctx.outputs.get("alarmNames"))

    def load() -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        client = ctx.client("cloudwatch")
        for start in range(0, len(names), 100):  # describe_alarms takes at most 100 names
            response = client.describe_alarms(AlarmNames=names[start:start + 100],
                                              AlarmTypes=["MetricAlarm", "CompositeAlarm"])
            for alarm in [*response.get("MetricAlarms", []), *response.get("CompositeAlarms", [])]:
                found[alarm["AlarmName"]] = alarm
        return found

    return names, ctx.cached("alarms", ",".join(names), load)


def _service_url(ctx: Context, path: str) -> str:
    base = ctx.outputs.get("serviceUrl").rstrip("/")
    return f"{base}{path}"


def no_answer_fix(url: str) -> str:
    """What to do when nothing answers at ``url``."""
    host = urlsplit(url).hostname or url
    return (f"make {host} resolve to the load balancer (loadBalancerDnsName output) and allow 80/443 from "
            "where verify runs (ingressCidrs); rerun verify from a machine that can reach the service")


# ---------------------------------------------------------------------------------------------
# Load balancer and HTTP
# ---------------------------------------------------------------------------------------------
def check_targets_healthy(ctx: Context) -> Outcome:
    """Every registered target of every release's target group is ``healthy``."""
    arns: list[str] = ctx.outputs.get("targetGroupArns")
    if not arns:
        return failed("targetGroupArns is empty: no release is registered with the load balancer",
                      "deploy a release (`pulumi up` with appVersion set), then rerun verify")
    client = ctx.client("elbv2")
    problems: list[str] = []
    good: list[str] = []
    for arn in arns:
        name = arn_name(arn)
        descriptions = client.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        if not descriptions:
            problems.append(f"{name}: no targets registered")
            continue
        sick = [d for d in descriptions if d.get("TargetHealth", {}).get("State") != "healthy"]
        for description in sick:
            health = description.get("TargetHealth", {})
            reason = health.get("Description") or health.get("Reason") or "no reason given"
            problems.append(f"{name}: {description['Target']['Id']} is {health.get('State', 'unknown')} ({reason})")
        if not sick:
            good.append(f"{name} {len(descriptions)}/{len(descriptions)} healthy")
    return verdict(problems, ", ".join(good),
                   "look at the failing hosts (SSM Session Manager: `journalctl -u sark.service`, "
                   "`curl localhost:8000/health`) and the target group's health check; if a new release "
                   "is the one failing, roll it back: `pulumi up -c newVersionTrafficPercent=0`")


def check_health_endpoint(ctx: Context) -> Outcome:
    """``GET <serviceUrl>/health`` answers 200 with ``"status": "healthy"``."""
    url = _service_url(ctx, "/health")
    response = ctx.http(url)
    fix = ("the app behind the load balancer is not healthy: see targets-healthy and the service logs "
           "(`journalctl -u sark.service` on a host via SSM Session Manager); roll back a bad release with "
           "`pulumi up -c newVersionTrafficPercent=0`")
    if response.status != 200:
        return failed(f"GET {url} answered {response.status}, expected 200", fix)
    try:
        body = json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return failed(f"GET {url} answered 200 but the body is not JSON: {response.body[:80]!r}", fix)
    status = body.get("status") if isinstance(body, dict) else None
    if status != "healthy":
        return failed(f"GET {url} answered 200 with status {status!r}, expected \"healthy\"", fix)
    version = f", version {body['version']}" if isinstance(body, dict) and body.get("version") else ""
    return passed(f"GET {url} -> 200 status \"healthy\"{version}")


def _redirect_listener_problems(ctx: Context) -> tuple[list[str], str]:
    listener = _listener(ctx, "httpListenerArn")
    problems: list[str] = []
    where = f"HTTP listener :{listener.get('Port')}"
    if listener.get("Protocol") != "HTTP" or listener.get("Port") != 80:
        problems.append(f"httpListenerArn is a {listener.get('Protocol')}:{listener.get('Port')} listener, "
                        "expected HTTP:80")
    actions = listener.get("DefaultActions") or []
    redirect = actions[0].get("RedirectConfig") if len(actions) == 1 and actions[0].get("Type") == "redirect" \
        else None
    if redirect is None:
        kinds = ", ".join(a.get("Type", "?") for a in actions) or "none"
        problems.append(f"{where} default action is {kinds}, expected one redirect to HTTPS")
    else:
        if redirect.get("Protocol") != "HTTPS":
            problems.append(f"{where} redirects to {redirect.get('Protocol')}, expected HTTPS")
        if str(redirect.get("Port")) != "443":
            problems.append(f"{where} redirects to port {redirect.get('Port')}, expected 443")
        if redirect.get("StatusCode") != "HTTP_301":
            problems.append(f"{where} redirects with {redirect.get('StatusCode')}, expected HTTP_301")
    rules = ctx.client("elbv2").describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
    for rule in rules:
        if rule.get("IsDefault"):
            continue
        if any(action.get("Type") != "redirect" for action in rule.get("Actions") or []):
            problems.append(f"{where} rule {rule.get('Priority')} serves plain HTTP instead of redirecting")
    return problems, f"{where} redirects to HTTPS:443 with 301"


def check_https_redirect(ctx: Context) -> Outcome:
    """Plain HTTP answers 301 to HTTPS: the HTTP listener's configuration and, if probes are on, a live GET."""
    problems: list[str] = []
    good: list[str] = []
    checked = False
    if ctx.outputs.has("httpListenerArn"):
        listener_problems, summary = _redirect_listener_problems(ctx)
        problems += listener_problems
        good.append(summary)
        checked = True
    if ctx.outputs.has("serviceUrl") and ctx.http_get is not None:
        url = _service_url(ctx, "/health")
        parts = urlsplit(url)
        plain = urlunsplit(("http", parts.netloc, parts.path, parts.query, ""))
        response = ctx.http(plain)
        location = response.header("location") or ""
        target = urlsplit(location)
        if response.status != 301:
            problems.append(f"GET {plain} answered {response.status}, expected 301")
        elif target.scheme != "https" or target.hostname != parts.hostname:
            problems.append(f"GET {plain} redirects to {location or 'nowhere'}, expected https://{parts.hostname}")
        else:
            good.append(f"GET {plain} -> 301 {location}")
        checked = True
    if not checked:
        if not ctx.outputs.has("httpListenerArn") and not ctx.outputs.has("serviceUrl"):
            raise MissingOutput("httpListenerArn", "serviceUrl")
        raise MissingOutput("httpListenerArn")
    return verdict(problems, "; ".join(good),
                   f"{_up(ctx)}: the HTTP:80 listener must only redirect to HTTPS:443 with HTTP_301 "
                   "(remove any listener rule that forwards plain HTTP)")


def check_tls_policy(ctx: Context) -> Outcome:
    """The HTTPS listener is HTTPS:443 with an allowed TLS 1.2/1.3 policy."""
    listener = _listener(ctx, "httpsListenerArn")
    policy = listener.get("SslPolicy")
    problems: list[str] = []
    if listener.get("Protocol") != "HTTPS" or listener.get("Port") != 443:
        problems.append(f"httpsListenerArn is a {listener.get('Protocol')}:{listener.get('Port')} listener, "
                        "expected HTTPS:443")
    if policy not in ALLOWED_TLS_POLICIES:
        problems.append(f"HTTPS listener uses TLS policy {policy}, which is not one of "
                        f"{', '.join(ALLOWED_TLS_POLICIES)}")
    return verdict(problems, f"HTTPS:443 with {policy}",
                   "set tlsPolicy to ELBSecurityPolicy-TLS13-1-2-2021-06 (TLS 1.2 and 1.3) or "
                   f"ELBSecurityPolicy-TLS13-1-3-2021-06 (TLS 1.3 only) and {_up(ctx)}")


def _hsts_max_age(value: str) -> int | None:
    for part in value.split(";"):
        name, _, number = part.strip().partition("=")
        if name.strip().lower() == "max-age":
            try:
                return int(number.strip().strip('"'))
            except ValueError:
                return None
    return None


def check_security_headers(ctx: Context) -> Outcome:
    """``/health`` over HTTPS carries HSTS (>= 1 year), ``X-Content-Type-Options: nosniff`` and X-Frame-Options."""
    url = _service_url(ctx, "/health")
    response: HttpResponse = ctx.http(url)
    problems: list[str] = []
    hsts = response.header("strict-transport-security")
    if hsts is None:
        problems.append("Strict-Transport-Security missing")
    else:
        max_age = _hsts_max_age(hsts)
        if max_age is None or max_age < MIN_HSTS_MAX_AGE:
            problems.append(f"Strict-Transport-Security {hsts!r} has max-age below {MIN_HSTS_MAX_AGE} (one year)")
    nosniff = response.header("x-content-type-options")
    if (nosniff or "").strip().lower() != "nosniff":
        problems.append(f"X-Content-Type-Options is {nosniff!r}, expected 'nosniff'")
    frame = response.header("x-frame-options")
    if (frame or "").strip().upper() not in FRAME_OPTIONS:
        problems.append(f"X-Frame-Options is {frame!r}, expected DENY or SAMEORIGIN")
    return verdict([f"GET {url}: {p}" for p in problems],
                   f"GET {url}: Strict-Transport-Security {hsts!r}, X-Content-Type-Options {nosniff!r}, "
                   f"X-Frame-Options {frame!r}",
                   "the HTTPS listener adds these headers (hstsMaxAgeSeconds >= 31536000) and the app sends them "
                   f"when ENVIRONMENT=production; {_up(ctx)} and check the app's environment file")


def check_metrics_not_public(ctx: Context) -> Outcome:
    """Prometheus metrics never leave the VPC: ``GET <serviceUrl>/metrics`` does not serve them."""
    url = _service_url(ctx, "/metrics")
    response = ctx.http(url)
    text = response.body[:4096].decode("utf-8", "replace")
    if response.status == 200 and ("# HELP" in text or "# TYPE" in text):
        return failed(f"GET {url} answered 200 with Prometheus metrics",
                      f"{_up(ctx)}: the HTTPS listener's rule answering 404 for /metrics is missing; metrics "
                      "are scraped on :9090 inside the VPC only")
    return passed(f"GET {url} -> {response.status}")


# ---------------------------------------------------------------------------------------------
# Firewall
# ---------------------------------------------------------------------------------------------
def _rule_text(permission: Mapping[str, Any]) -> str:
    protocol = str(permission.get("IpProtocol"))
    if protocol == "-1":
        return "all traffic"
    low, high = permission.get("FromPort"), permission.get("ToPort")
    if low is None or low == -1:
        return protocol
    return f"{protocol}/{low}" if low == high else f"{protocol}/{low}-{high}"


def _covers(permission: Mapping[str, Any], port: int) -> bool:
    if str(permission.get("IpProtocol")) == "-1":
        return True
    if str(permission.get("IpProtocol")) not in ("tcp", "6"):
        return False
    low, high = permission.get("FromPort"), permission.get("ToPort")
    return low is not None and high is not None and low <= port <= high


def _world_sources(permission: Mapping[str, Any]) -> list[str]:
    cidrs = [r.get("CidrIp") for r in permission.get("IpRanges") or []]
    cidrs += [r.get("CidrIpv6") for r in permission.get("Ipv6Ranges") or []]
    return [c for c in cidrs if c in WORLD_CIDRS]


def _security_groups(ctx: Context, group_ids: Sequence[str]) -> list[dict[str, Any]]:
    ec2 = ctx.client("ec2")
    groups = ec2.describe_security_groups(GroupIds=list(group_ids))["SecurityGroups"]
    vpcs = sorted({g["VpcId"] for g in groups if g.get("VpcId")})
    if not vpcs:
        return groups
    seen = {g["GroupId"] for g in groups}
    paginator = ec2.get_paginator("describe_security_groups")
    for page in paginator.paginate(Filters=[{"Name": "vpc-id", "Values": vpcs}]):
        for group in page["SecurityGroups"]:
            if group["GroupId"] not in seen:
                seen.add(group["GroupId"])
                groups.append(group)
    return groups


def check_exposed_ports(ctx: Context) -> Outcome:
    """Only 80/443 on the load balancer are open to the world; 8000 only from the load balancer's group."""
    lb_group = ctx.outputs.get("loadBalancerSecurityGroupId")
    app_group = ctx.outputs.get("appSecurityGroupId")
    groups = _security_groups(ctx, [lb_group, app_group])
    problems: list[str] = []
    for group in groups:
        gid = group["GroupId"]
        for permission in group.get("IpPermissions") or []:
            world = _world_sources(permission)
            rule = _rule_text(permission)
            public_ok = gid == lb_group and str(permission.get("IpProtocol")) == "tcp" and \
                permission.get("FromPort") == permission.get("ToPort") and permission.get("FromPort") in PUBLIC_PORTS
            if world and not public_ok:
                problems.append(f"{gid} ({group.get('GroupName')}) allows {rule} from {', '.join(world)}")
            if gid == app_group and _covers(permission, APP_PORT):
                sources = [r.get("CidrIp") for r in permission.get("IpRanges") or []]
                sources += [r.get("CidrIpv6") for r in permission.get("Ipv6Ranges") or []]
                sources += [p.get("PrefixListId") for p in permission.get("PrefixListIds") or []]
                sources += [p.get("GroupId") for p in permission.get("UserIdGroupPairs") or []
                            if p.get("GroupId") != lb_group]
                for source in sources:
                    if source not in WORLD_CIDRS:  # world-open is reported above already
                        problems.append(f"{gid} (app) allows {rule} from {source}; only {lb_group} may reach "
                                        f"{APP_PORT}")
    ports: list[int] = []
    if ctx.outputs.has("loadBalancerArn"):
        paginator = ctx.client("elbv2").get_paginator("describe_listeners")
        for page in paginator.paginate(LoadBalancerArn=ctx.outputs.get("loadBalancerArn")):
            ports += [listener["Port"] for listener in page["Listeners"]]
        problems += [f"load balancer listens on {port}" for port in sorted(set(ports) - set(PUBLIC_PORTS))]
    listening = f"; load balancer listens on {', '.join(str(p) for p in sorted(set(ports)))}" if ports else ""
    return verdict(problems,
                   f"{len(groups)} security groups in the VPC: only {lb_group} is open to the internet, on tcp/80 "
                   f"and tcp/443; {APP_PORT} on {app_group} only from {lb_group}{listening}",
                   "remove the rules above (`aws ec2 revoke-security-group-ingress`) or "
                   f"{_up(ctx)} to restore the firewall matrix (components/security_groups.py); a rule the "
                   "program does not define was added by hand: find who in CloudTrail")


def check_lb_access_logs(ctx: Context) -> Outcome:
    """The load balancer writes access logs to the stack's log bucket."""
    arn = ctx.outputs.get("loadBalancerArn")
    bucket = ctx.outputs.get("accessLogBucket")
    attributes = {a["Key"]: a["Value"] for a in
                  ctx.client("elbv2").describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}
    problems: list[str] = []
    if attributes.get("access_logs.s3.enabled") != "true":
        problems.append(f"access logs are off on {arn_name(arn)}")
    elif attributes.get("access_logs.s3.bucket") != bucket:
        problems.append(f"access logs go to {attributes.get('access_logs.s3.bucket')!r}, expected {bucket!r}")
    try:
        ctx.client("s3").head_bucket(Bucket=bucket)
    except Exception as error:
        if not is_not_found(error):
            raise
        problems.append(f"bucket {bucket} does not exist")
    return verdict(problems, f"{arn_name(arn)} logs to s3://{bucket}",
                   f"{_up(ctx)} to turn access logs back on to the stack's bucket")


# ---------------------------------------------------------------------------------------------
# RDS PostgreSQL
# ---------------------------------------------------------------------------------------------
def check_rds_backup_retention(ctx: Context) -> Outcome:
    """Automated backups are kept at least 30 days."""
    db = _db_instance(ctx)
    days = int(db.get("BackupRetentionPeriod") or 0)
    name = db["DBInstanceIdentifier"]
    if days < MIN_BACKUP_RETENTION_DAYS:
        return failed(f"{name} keeps automated backups {days} days, expected at least {MIN_BACKUP_RETENTION_DAYS}",
                      f"set dbBackupRetentionDays to 30-35 and {_up(ctx)}")
    return passed(f"{name} keeps automated backups {days} days")


def _latest_automated_snapshot(ctx: Context, ident: str) -> dict[str, Any] | None:
    paginator = ctx.client("rds").get_paginator("describe_db_snapshots")
    snapshots = [s for page in paginator.paginate(DBInstanceIdentifier=ident, SnapshotType="automated")
                 for s in page["DBSnapshots"] if s.get("Status") == "available" and s.get("SnapshotCreateTime")]
    return max(snapshots, key=lambda s: s["SnapshotCreateTime"], default=None)


def check_rds_restorable(ctx: Context) -> Outcome:
    """A restore point exists: an automated snapshot within 26 h, or point-in-time restore within the hour."""
    db = _db_instance(ctx)
    name = db["DBInstanceIdentifier"]
    snapshot = _latest_automated_snapshot(ctx, name)
    restorable: datetime | None = db.get("LatestRestorableTime")
    facts: list[str] = []
    fresh = False
    if snapshot is None:
        facts.append("no automated snapshot")
    else:
        created: datetime = snapshot["SnapshotCreateTime"]
        facts.append(f"latest automated snapshot {snapshot['DBSnapshotIdentifier']} {stamp(created)} "
                     f"({ago(ctx.age(created))})")
        fresh = ctx.age(created) <= MAX_SNAPSHOT_AGE
    if restorable is None:
        facts.append("no point-in-time restore")
    else:
        facts.append(f"latest restorable time {stamp(restorable)} ({ago(ctx.age(restorable))})")
        fresh = fresh or ctx.age(restorable) <= MAX_RESTORE_LAG
    if not fresh:
        return failed(f"{name}: {'; '.join(facts)}",
                      f"no restore point within {int(MAX_SNAPSHOT_AGE.total_seconds() // 3600)} h: check the "
                      f"instance's backup window and events (`aws rds describe-events --source-identifier {name} "
                      "--source-type db-instance`), and take a snapshot now "
                      f"(`aws rds create-db-snapshot --db-instance-identifier {name} "
                      "--db-snapshot-identifier <name>`)")
    return passed(f"{name}: {'; '.join(facts)}")


def check_rds_deletion_protection(ctx: Context) -> Outcome:
    """Deletion protection is on."""
    db = _db_instance(ctx)
    name = db["DBInstanceIdentifier"]
    if not db.get("DeletionProtection"):
        return failed(f"{name} has deletion protection off",
                      f"set dbDeletionProtection: true and {_up(ctx)} (or `aws rds modify-db-instance "
                      f"--db-instance-identifier {name} --deletion-protection --apply-immediately`)")
    return passed(f"{name} has deletion protection on")


def check_rds_multi_az(ctx: Context) -> Outcome:
    """The instance is Multi-AZ."""
    db = _db_instance(ctx)
    name = db["DBInstanceIdentifier"]
    if not db.get("MultiAZ"):
        return failed(f"{name} runs in one availability zone ({db.get('AvailabilityZone')})",
                      f"set dbMultiAz: true and {_up(ctx)} (converting to Multi-AZ causes no downtime)")
    secondary = f", standby in {db['SecondaryAvailabilityZone']}" if db.get("SecondaryAvailabilityZone") else ""
    return passed(f"{name} is Multi-AZ{secondary}")


def check_rds_encryption(ctx: Context) -> Outcome:
    """Storage is encrypted, with the stack key when the stack exports it."""
    db = _db_instance(ctx)
    name = db["DBInstanceIdentifier"]
    if not db.get("StorageEncrypted"):
        return failed(f"{name} storage is not encrypted",
                      "encryption cannot be turned on in place: snapshot the instance, copy the snapshot with "
                      "`--kms-key-id <stackKeyArn>`, restore from the copy and point the stack at it "
                      "(see docs/verify.md)")
    key = db.get("KmsKeyId") or ""
    if ctx.outputs.has("stackKeyArn") and key and _key_id(ctx, key) != _stack_key_id(ctx):
        return failed(f"{name} is encrypted with {key}, not the stack key {ctx.outputs.get('stackKeyArn')}",
                      "restore the instance from a snapshot copied with `--kms-key-id <stackKeyArn>`; "
                      "the program encrypts with the stack key")
    return passed(f"{name} storage encrypted with {key or 'a KMS key'}")


# ---------------------------------------------------------------------------------------------
# TimescaleDB data volume
# ---------------------------------------------------------------------------------------------
def _latest_backup_recovery_point(ctx: Context, volume_id: str) -> datetime | None:
    """Newest completed AWS Backup recovery point of the volume; None if none or AWS Backup is not usable."""
    arn = f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:volume/{volume_id}"
    try:
        points = ctx.client("backup").list_recovery_points_by_resource(ResourceArn=arn).get("RecoveryPoints", [])
    except Exception:  # AWS Backup is only the fallback source: not using it is not a finding
        return None
    dates = [p["CreationDate"] for p in points if p.get("Status") == "COMPLETED" and p.get("CreationDate")]
    return max(dates, default=None)


def check_timescale_snapshots(ctx: Context) -> Outcome:
    """The TimescaleDB data volume has a completed snapshot from the last day (EBS or AWS Backup)."""
    volume_id = ctx.outputs.get("timescaleDataVolumeId")
    ec2 = ctx.client("ec2")
    ec2.describe_volumes(VolumeIds=[volume_id])  # a missing volume is a FAIL of its own (not found)
    paginator = ec2.get_paginator("describe_snapshots")
    snapshots = [s for page in paginator.paginate(OwnerIds=["self"],
                                                  Filters=[{"Name": "volume-id", "Values": [volume_id]}])
                 for s in page["Snapshots"]]
    completed = [s for s in snapshots if s.get("State") == "completed"]
    latest = max(completed, key=lambda s: s["StartTime"], default=None)
    if latest is not None and ctx.age(latest["StartTime"]) <= MAX_SNAPSHOT_AGE:
        return passed(f"{volume_id}: latest snapshot {latest['SnapshotId']} {stamp(latest['StartTime'])} "
                      f"({ago(ctx.age(latest['StartTime']))}), {len(completed)} completed")
    recovery_point = _latest_backup_recovery_point(ctx, volume_id)
    if recovery_point is not None and ctx.age(recovery_point) <= MAX_SNAPSHOT_AGE:
        return passed(f"{volume_id}: latest AWS Backup recovery point {stamp(recovery_point)} "
                      f"({ago(ctx.age(recovery_point))})")
    if latest is None:
        found = "no completed snapshot"
    else:
        started = latest["StartTime"]
        found = f"latest snapshot {latest['SnapshotId']} {stamp(started)} ({ago(ctx.age(started))})"
    pending = len(snapshots) - len(completed)
    extra = f", {pending} not completed" if pending else ""
    return failed(f"{volume_id}: {found}{extra}; expected one within "
                  f"{int(MAX_SNAPSHOT_AGE.total_seconds() // 3600)} h",
                  "the daily snapshot policy did not run: check that the stack's Data Lifecycle Manager policy / "
                  "AWS Backup plan is ENABLED and still targets this volume's tags, then take one now "
                  f"(`aws ec2 create-snapshot --volume-id {volume_id}`)")


# ---------------------------------------------------------------------------------------------
# ElastiCache
# ---------------------------------------------------------------------------------------------
def check_cache_encryption(ctx: Context) -> Outcome:
    """Encryption at rest and in transit (required, not preferred) on the replication group."""
    group = _replication_group(ctx)
    name = group["ReplicationGroupId"]
    problems: list[str] = []
    if not group.get("AtRestEncryptionEnabled"):
        problems.append(f"{name} is not encrypted at rest")
    if not group.get("TransitEncryptionEnabled"):
        problems.append(f"{name} does not encrypt in transit")
    elif group.get("TransitEncryptionMode") == "preferred":
        problems.append(f"{name} accepts unencrypted connections (TransitEncryptionMode preferred)")
    key = group.get("KmsKeyId")
    if not problems and key and ctx.outputs.has("stackKeyArn") and _key_id(ctx, key) != _stack_key_id(ctx):
        problems.append(f"{name} is encrypted with {key}, not the stack key")
    return verdict(problems, f"{name}: at rest ({key or 'default key'}) and in transit",
                   "in-transit encryption can be required in place (`aws elasticache modify-replication-group "
                   "--transit-encryption-mode required`); at-rest encryption or another key needs a new "
                   f"replication group: {_up(ctx)} (it replaces the group; the app reconnects)")


def check_cache_auth(ctx: Context) -> Outcome:
    """Clients must authenticate (AUTH token or RBAC user group)."""
    group = _replication_group(ctx)
    name = group["ReplicationGroupId"]
    if group.get("AuthTokenEnabled"):
        return passed(f"{name}: AUTH token required")
    if group.get("UserGroupIds"):
        return passed(f"{name}: RBAC user groups {', '.join(group['UserGroupIds'])}")
    return failed(f"{name} accepts clients without AUTH",
                  f"{_up(ctx)}: it sets the AUTH token from the VALKEY_PASSWORD secret "
                  "(`--auth-token-update-strategy SET` with in-transit encryption on)")


def check_cache_failover(ctx: Context) -> Outcome:
    """Automatic failover and Multi-AZ are on."""
    group = _replication_group(ctx)
    name = group["ReplicationGroupId"]
    problems: list[str] = []
    if group.get("AutomaticFailover") != "enabled":
        problems.append(f"{name} automatic failover is {group.get('AutomaticFailover')}")
    if group.get("MultiAZ") != "enabled":
        problems.append(f"{name} Multi-AZ is {group.get('MultiAZ')}")
    members = len(group.get("MemberClusters") or [])
    return verdict(problems, f"{name}: automatic failover and Multi-AZ enabled, {plural(members, 'member cluster')}",
                   f"set cacheNodeCount to at least 2 and {_up(ctx)} (or `aws elasticache "
                   f"modify-replication-group --replication-group-id {name} --automatic-failover-enabled "
                   "--multi-az-enabled --apply-immediately`)")


# ---------------------------------------------------------------------------------------------
# Alarms, notifications, logs, dashboard
# ---------------------------------------------------------------------------------------------
def check_alarms_configured(ctx: Context) -> Outcome:
    """Every alarm the stack defines exists, has alarm actions (to the alert topic) and actions enabled."""
    names, found = _alarms(ctx)
    if not names:
        return failed("alarmNames is empty: the stack defines no alarms",
                      f"check that --outputs belongs to the SARK stack, then {_up(ctx)}")
    topic = ctx.outputs.get("alertTopicArn") if ctx.outputs.has("alertTopicArn") else None
    problems: list[str] = []
    missing = [n for n in names if n not in found]
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    silent = [n for n in names if n in found and not found[n].get("AlarmActions")]
    if silent:
        problems.append(f"no alarm actions: {', '.join(silent)}")
    disabled = [n for n in names if n in found and not found[n].get("ActionsEnabled")]
    if disabled:
        problems.append(f"actions disabled: {', '.join(disabled)}")
    if topic:
        elsewhere = [n for n in names if n in found and found[n].get("AlarmActions")
                     and topic not in found[n]["AlarmActions"]]
        if elsewhere:
            problems.append(f"not notifying {arn_name(topic)}: {', '.join(elsewhere)}")
    target = f", each notifying {topic.rsplit(':', 1)[-1]}" if topic else ""
    return verdict(problems, f"{len(names)} alarms present with actions enabled{target}",
                   f"{_up(ctx)} to recreate missing alarms and restore their actions; if actions were "
                   "switched off for maintenance, `aws cloudwatch enable-alarm-actions --alarm-names <names>`")


def check_alarms_quiet(ctx: Context) -> Outcome:
    """No alarm the stack defines is in ALARM; an alarm that does not exist is no evidence of quiet."""
    names, found = _alarms(ctx)
    if not names:
        return failed("alarmNames is empty: there is no alarm whose state could be checked",
                      f"check that --outputs belongs to the SARK stack, then {_up(ctx)}")
    missing = [n for n in names if n not in found]
    if len(missing) == len(names):
        return failed(f"0 of {len(names)} alarms exist, so none could be seen in ALARM or not",
                      f"check that --outputs belongs to this account and region, then {_up(ctx)} to recreate the "
                      "alarms and rerun verify")
    firing = [found[n] for n in names if n in found and found[n].get("StateValue") == "ALARM"]
    if firing:
        return failed("in ALARM: " + "; ".join(f"{a['AlarmName']} ({a.get('StateReason', 'no reason')})"
                                               for a in firing),
                      "investigate before going on (dashboard, runbook); do not continue a rollout: roll a new "
                      "release back with `pulumi up -c newVersionTrafficPercent=0`")
    waiting = [n for n in names if n in found and found[n].get("StateValue") == "INSUFFICIENT_DATA"]
    note = f" ({len(waiting)} with insufficient data yet)" if waiting else ""
    checked = len(names) - len(missing)
    absent = f"; {len(missing)} of {len(names)} missing (see alarms-configured)" if missing else ""
    return passed(f"none of {checked} alarms in ALARM{note}{absent}")


def check_alert_topic(ctx: Context) -> Outcome:
    """The alert topic exists and at least one subscription is confirmed, so alarms reach someone."""
    arn = ctx.outputs.get("alertTopicArn")
    sns = ctx.client("sns")
    sns.get_topic_attributes(TopicArn=arn)
    paginator = sns.get_paginator("list_subscriptions_by_topic")
    subscriptions = [s for page in paginator.paginate(TopicArn=arn) for s in page["Subscriptions"]]
    confirmed = [s for s in subscriptions if str(s.get("SubscriptionArn", "")).startswith("arn:")]
    pending = len(subscriptions) - len(confirmed)
    if not confirmed:
        why = f"{pending} pending confirmation" if pending else "no subscriptions"
        return failed(f"{arn_name(arn)}: no confirmed subscription ({why})",
                      "confirm the subscription e-mail sent to the alertEmails addresses, or set alertEmails / "
                      f"alertHttpsEndpoints and {_up(ctx)}; then publish a test alert "
                      "(`aws sns publish --topic-arn <alertTopicArn> --message test`)")
    protocols = ", ".join(sorted({s.get("Protocol", "?") for s in confirmed}))
    note = f", {pending} pending confirmation" if pending else ""
    return passed(f"{arn.rsplit(':', 1)[-1]}: {plural(len(confirmed), 'confirmed subscription')} ({protocols}){note}")


def check_log_retention(ctx: Context) -> Outcome:
    """Every log group of the stack exists and keeps logs 30 to 90 days."""
    names: list[str] = ctx.outputs.get("logGroupNames")
    if not names:
        return failed("logGroupNames is empty: the stack ships no logs",
                      f"check that --outputs belongs to the SARK stack, then {_up(ctx)}")
    logs = ctx.client("logs")
    paginator = logs.get_paginator("describe_log_groups")
    low, high = LOG_RETENTION_DAYS
    problems: list[str] = []
    for name in names:
        groups = [g for page in paginator.paginate(logGroupNamePrefix=name) for g in page["logGroups"]
                  if g["logGroupName"] == name]
        if not groups:
            problems.append(f"{name} does not exist")
            continue
        days = groups[0].get("retentionInDays")
        if days is None:
            problems.append(f"{name} never expires")
        elif not low <= days <= high:
            problems.append(f"{name} keeps {days} days")
    return verdict(problems, f"{len(names)} log groups keep {low}-{high} days",
                   f"set logRetentionDays ({low}-{high}) and {_up(ctx)}, or "
                   f"`aws logs put-retention-policy --log-group-name <name> --retention-in-days {high}`")


def check_dashboard(ctx: Context) -> Outcome:
    """The CloudWatch dashboard exists and has widgets."""
    name = ctx.outputs.get("dashboardName")
    body = ctx.client("cloudwatch").get_dashboard(DashboardName=name).get("DashboardBody") or "{}"
    try:
        widgets = json.loads(body).get("widgets") or []
    except (ValueError, AttributeError):
        widgets = []
    if not widgets:
        return failed(f"dashboard {name} has no widgets", f"{_up(ctx)} to put its panels back")
    return passed(f"dashboard {name} with {len(widgets)} widgets")


# ---------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------
def _secrets(ctx: Context) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(name, arn, description or None if it does not exist), for every secret the stack exports."""
    arns: Mapping[str, str] = ctx.outputs.get("secretArns")

    def load() -> list[tuple[str, str, dict[str, Any] | None]]:
        client = ctx.client("secretsmanager")
        result: list[tuple[str, str, dict[str, Any] | None]] = []
        for name, arn in sorted(arns.items()):
            try:
                result.append((name, arn, client.describe_secret(SecretId=arn)))
            except Exception as error:
                if not is_not_found(error):
                    raise
                result.append((name, arn, None))
        return result

    return ctx.cached("secrets", ",".join(sorted(arns.values())), load)


def check_secrets_encryption(ctx: Context) -> Outcome:
    """Every secret exists, has a current value and is encrypted with the stack key."""
    secrets = _secrets(ctx)
    if not secrets:
        return failed("secretArns is empty: the stack defines no secrets",
                      f"check that --outputs belongs to the SARK stack, then {_up(ctx)}")
    stack_key = _stack_key_id(ctx)
    problems: list[str] = []
    fixes: list[str] = []
    for name, arn, described in secrets:
        if described is None:
            problems.append(f"{name} does not exist")
            fixes.append(_up(ctx) + " to recreate missing secrets")
            continue
        if described.get("DeletedDate"):
            problems.append(f"{name} is scheduled for deletion")
            fixes.append(f"`aws secretsmanager restore-secret --secret-id {arn}`")
        stages = [s for stages in (described.get("VersionIdsToStages") or {}).values() for s in stages]
        if "AWSCURRENT" not in stages:
            problems.append(f"{name} has no value yet")
            fixes.append(f"put the value: `aws secretsmanager put-secret-value --secret-id {arn} "
                         "--secret-string file://<file>` (never on the command line)")
        key = described.get("KmsKeyId")
        if not key:
            problems.append(f"{name} is encrypted with the AWS managed key aws/secretsmanager")
        elif _key_id(ctx, key) != stack_key:
            problems.append(f"{name} is encrypted with {key}")
        if not key or _key_id(ctx, key) != stack_key:
            fixes.append(f"re-encrypt with the stack key: `aws secretsmanager update-secret --secret-id <arn> "
                         f"--kms-key-id {ctx.outputs.get('stackKeyArn')}`, or {_up(ctx)}")
    unique_fixes = "; ".join(dict.fromkeys(fixes))
    return verdict(problems, f"{len(secrets)} secrets present with a current value, encrypted with the stack key",
                   unique_fixes)


def _schedule_days(rules: Mapping[str, Any]) -> int | None:
    """Days between rotations from RotationRules (AutomaticallyAfterDays or a ``rate(...)`` expression)."""
    if rules.get("AutomaticallyAfterDays"):
        return int(rules["AutomaticallyAfterDays"])
    expression = str(rules.get("ScheduleExpression") or "").strip()
    if expression.startswith("rate(") and expression.endswith(")"):
        amount, _, unit = expression[5:-1].strip().partition(" ")
        try:
            value = int(amount)
        except ValueError:
            return None
        if unit.startswith("day"):
            return value
        if unit.startswith("hour"):
            return max(1, value // 24)
    return None


def _expected_rotation(name: str, described: Mapping[str, Any]) -> tuple[Rotation, str]:
    """The schedule to hold a secret to: the table's, or the stack's stricter ``sark:rotation-days`` tag."""
    rotation = ROTATION_SCHEDULE.get(name, DEFAULT_ROTATION)
    origin = "checklist" if name in ROTATION_SCHEDULE else "default for unknown secrets"
    tags = {t.get("Key"): t.get("Value") for t in described.get("Tags") or []}
    try:
        tagged = int(str(tags.get(ROTATION_DAYS_TAG)))
    except ValueError:
        tagged = 0
    if 0 < tagged < rotation.max_days:
        return Rotation(tagged, rotation.automatic), f"{ROTATION_DAYS_TAG} tag"
    return rotation, origin


def _rotation_problem(ctx: Context, name: str, described: Mapping[str, Any]) -> tuple[str | None, str]:
    """(problem or None, evidence) for one secret."""
    rotation, origin = _expected_rotation(name, described)
    if described.get("RotationEnabled"):
        return _scheduled_rotation_problem(ctx, name, described, rotation.max_days, origin)
    if rotation.automatic:
        return f"{name} has rotation off, expected every {rotation.max_days} days ({origin})", ""
    last = described.get("LastChangedDate") or described.get("CreatedDate")
    if last is None or ctx.age(last).days > rotation.max_days:
        when = ago(ctx.age(last)) if last is not None else "never"
        return f"{name} (rotated by hand) last changed {when}, expected within {rotation.max_days} days", ""
    return None, f"{name} by hand, changed {ago(ctx.age(last))}"


def _scheduled_rotation_problem(ctx: Context, name: str, described: Mapping[str, Any], limit: int,
                                origin: str) -> tuple[str | None, str]:
    rules = described.get("RotationRules") or {}
    days = _schedule_days(rules)
    if days is not None:
        if days > limit:
            return f"{name} rotates every {days} days, expected at most {limit} ({origin})", ""
        return None, f"{name} every {days} days"
    # A cron schedule has no fixed period: judge it by when it last rotated.
    last = described.get("LastRotatedDate") or described.get("CreatedDate")
    if last is not None and ctx.age(last).days > limit:
        return f"{name} last rotated {ago(ctx.age(last))}, expected every {limit} days ({origin})", ""
    return None, f"{name} on schedule {rules.get('ScheduleExpression')}"


def check_secrets_rotation(ctx: Context) -> Outcome:
    """Every secret is on its rotation schedule (SECRET_KEY 180 days, passwords 90, API tokens 90)."""
    every = _secrets(ctx)
    secrets = [(name, described) for name, _arn, described in every if described is not None]
    if not secrets:
        return skipped(f"none of the {len(every)} secrets of secretArns exists, so no schedule can be checked "
                       "(see secrets-encryption)")
    # A secret that is not there has no schedule: that is a finding, never a silent pass over the rest.
    problems: list[str] = [f"{name} does not exist" for name, _arn, described in every if described is None]
    good: list[str] = []
    for name, described in secrets:
        problem, evidence = _rotation_problem(ctx, name, described)
        if problem:
            problems.append(problem)
        else:
            good.append(evidence)
    return verdict(problems, "; ".join(good),
                   f"{_up(ctx)} to restore Secrets Manager rotation of the generated secrets "
                   "(secretKeyRotationDays <= 180, databasePasswordRotationDays <= 90); external tokens are "
                   "rotated by hand: issue a new one and `aws secretsmanager put-secret-value`")


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    """One line of the verify checklist."""

    id: str
    title: str
    checklist: str
    """Where the production deployment checklist asks for it."""
    check: Callable[[Context], Outcome]
    http: bool = False
    """Needs the live HTTP probe (skipped with --skip-http)."""


ITEMS: tuple[Item, ...] = (
    Item("targets-healthy", "every load balancer target healthy", "Deployment 1.2", check_targets_healthy),
    Item("health-endpoint", "/health answers 200 \"healthy\"", "Deployment 2.1, Rollback 4",
         check_health_endpoint, http=True),
    Item("https-redirect", "HTTP answers 301 to HTTPS", "Pre-Deployment 3.2, Post-Deployment 6",
         check_https_redirect),
    Item("tls-policy", "HTTPS listener TLS policy allowed", "Pre-Deployment 3.2", check_tls_policy),
    Item("security-headers", "HSTS, X-Content-Type-Options, X-Frame-Options on /health",
         "Pre-Deployment 5.2, Post-Deployment 6", check_security_headers, http=True),
    Item("metrics-not-public", "/metrics not served to the internet", "Pre-Deployment 1.1",
         check_metrics_not_public, http=True),
    Item("exposed-ports", "only intended ports reachable from outside", "Post-Deployment 6",
         check_exposed_ports),
    Item("lb-access-logs", "load balancer access logs to the log bucket", "Post-Deployment 6",
         check_lb_access_logs),
    Item("rds-backup-retention", "RDS automated backups kept >= 30 days", "Pre-Deployment 1.2, Post-Deployment 4",
         check_rds_backup_retention),
    Item("rds-restorable", "RDS restore point within the last day", "Post-Deployment 4, Rollback 3",
         check_rds_restorable),
    Item("rds-deletion-protection", "RDS deletion protection on", "Pre-Deployment 1.2",
         check_rds_deletion_protection),
    Item("rds-multi-az", "RDS Multi-AZ", "Pre-Deployment 1.2", check_rds_multi_az),
    Item("rds-encryption", "RDS storage encrypted with the stack key", "Pre-Deployment 3.2", check_rds_encryption),
    Item("timescale-snapshots", "TimescaleDB volume snapshot within the last day", "Post-Deployment 4",
         check_timescale_snapshots),
    Item("cache-encryption", "cache encrypted at rest and in transit", "Pre-Deployment 1.3",
         check_cache_encryption),
    Item("cache-auth", "cache requires AUTH", "Pre-Deployment 1.3", check_cache_auth),
    Item("cache-failover", "cache automatic failover and Multi-AZ", "Pre-Deployment 1.3", check_cache_failover),
    Item("alarms-configured", "every required alarm present with actions enabled", "Post-Deployment 1.1",
         check_alarms_configured),
    Item("alarms-quiet", "no alarm in ALARM", "Deployment 1.2, Rollback 4", check_alarms_quiet),
    Item("alert-topic", "alert topic has a confirmed subscription", "Post-Deployment 1.1", check_alert_topic),
    Item("secrets-encryption", "every secret present and encrypted with the stack key", "Pre-Deployment 2.1",
         check_secrets_encryption),
    Item("secrets-rotation", "every secret on its rotation schedule", "Pre-Deployment 2.1",
         check_secrets_rotation),
    Item("log-retention", "log groups kept 30-90 days", "Pre-Deployment 3.3", check_log_retention),
    Item("dashboard", "CloudWatch dashboard present", "Post-Deployment 1.2", check_dashboard),
)
ITEM_IDS: tuple[str, ...] = tuple(item.id for item in ITEMS)


def items_by_id(ids: Iterable[str]) -> list[Item]:
    """The items with these ids, in checklist order."""
    wanted = set(ids)
    return [item for item in ITEMS if item.id in wanted]


def describe_client_error(error: Exception) -> tuple[str, str]:
    """(evidence, fix) for an AWS error inside a check."""
    code, message = aws_error(error)
    operation = getattr(error, "operation_name", None) or "the AWS call"
    if is_not_found(error):
        return (f"{operation}: {code}: {message}",
                "the stack output points at a resource that does not exist: check that --outputs, --region and "
                "the account belong to this stack; if the resource was deleted, `pulumi refresh` then "
                "`pulumi up` recreates it")
    if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}:
        return (f"{operation}: {code}: {message}",
                f"give the verifying role read access for {operation} (docs/verify.md lists the permissions)")
    return (f"{operation}: {code}: {message}", "rerun verify; if it persists, check the AWS service health")
