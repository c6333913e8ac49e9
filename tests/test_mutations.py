"""The mutation suite: flip one security-relevant setting of the production stack, and the pack must catch it.

Each case is a variant of the production stack with ONE setting flipped, and names the
MANDATORY rule that must report it. A variant is built one of two ways:

- recording mutations: the production program runs ONCE per session (``production_plan`` in
  tests/conftest.py; each worker process of :func:`outcomes` plans it once more for its
  share); a variant deep-copies one recorded resource, changes one property in its inputs
  AND its outputs (resource rules read inputs, stack rules outputs), drops the property
  dependencies the change cuts, and re-evaluates the pack with
  :func:`sarkops.plan.policy_runner.evaluate`. Only the changed resource is sent to ``Analyze``
  again (every other resource is unchanged, and the baseline test proves they pass);
  ``AnalyzeStack`` always sees the whole variant;
- config mutations: ``sarkops.plan.run_plan`` with ``-c`` overrides, for settings the stack
  config can flip (with ``environment=development`` where production validation refuses the
  value, which the pack must then catch on its own).

A mutation no rule catches is a gap in the pack. ``tests/conftest.py`` prints the tally:
``mutation suite: caught N of M security-relevant mutations``.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import gzip
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy

from sarkops.plan import PlanResult, run_plan
from sarkops.plan.policy_runner import PolicyReport, evaluate
from sarkops.plan.runtime import UNKNOWN, RecordedResource, Recording
from tests.conftest import MUTATION_SUITE_SIZE, MUTATIONS

ROOT = Path(__file__).resolve().parents[1]
WORLD = "0.0.0.0/0"

Change = Callable[[dict[str, Any]], None]


# --------------------------------------------------------------------------------------
# How a property is changed (applied to inputs and outputs alike)
# --------------------------------------------------------------------------------------

def _walk(props: dict[str, Any], path: str) -> tuple[Any, str | int]:
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = props
    for key in parents:
        node = node[key]
    return node, last


def put(path: str, value: Any) -> Change:
    """Set ``a.b.0.c`` to ``value``."""
    def change(props: dict[str, Any]) -> None:
        node, last = _walk(props, path)
        node[last] = value
    return change


def remove(path: str) -> Change:
    """Delete ``a.b`` (the program no longer sets it)."""
    def change(props: dict[str, Any]) -> None:
        node, last = _walk(props, path)
        node.pop(last, None)
    return change


def source_cidr(cidr: str) -> Change:
    """A security group rule that admitted a security group now admits a CIDR."""
    def change(props: dict[str, Any]) -> None:
        props.pop("referencedSecurityGroupId", None)
        props["cidrIpv4"] = cidr
    return change


def user_data_line(line: str) -> Change:
    """Append a line to the user data, keeping its encoding (an instance's is text, a template's base64)."""
    def change(props: dict[str, Any]) -> None:
        if "userData" in props and props.get("imageId") is None:
            props["userData"] += f"\n{line}\n"
            return
        raw = base64.b64decode(props["userData"])
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        props["userData"] = base64.b64encode(raw + f"\n{line}\n".encode()).decode()
    return change


def parameter(name: str, value: str) -> Change:
    """Set one parameter of an RDS parameter group."""
    def change(props: dict[str, Any]) -> None:
        for entry in props["parameters"]:
            if entry["name"] == name:
                entry["value"] = value
    return change


def without_tls_deny(props: dict[str, Any]) -> None:
    """Drop the bucket policy statement that denies plain-HTTP requests."""
    policy = json.loads(props["policy"])
    policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != "DenyInsecureTransport"]
    props["policy"] = json.dumps(policy)


# --------------------------------------------------------------------------------------
# The mutations
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mutation:
    """One security-relevant setting of the production stack, flipped."""

    id: str
    """Readable test id."""
    setting: str
    """The setting and its unsafe value, in words."""
    policy: str
    """The MANDATORY rule that must report it."""
    resource: str = ""
    """Logical name of the recorded resource to change (recording mutations)."""
    change: Change | None = None
    cut: tuple[str, ...] = ()
    """Property-dependency keys the change cuts (a value no longer computed from another resource)."""
    overrides: tuple[str, ...] = ()
    """``-c KEY=VALUE`` overrides (config mutations)."""
    needs: str = ""
    """Why the fault takes other resources to see (then ``policy`` is a stack rule); empty means the
    changed resource's own inputs show it, so a resource rule must refuse it before it is created."""
    unknown: tuple[str, ...] = ()
    """Input paths sent as the engine's unknown sentinel, as in a first preview: values the resource
    takes from resources that do not exist yet. The fault must still be refused before create."""


def m(id_: str, setting: str, policy: str, resource: str, change: Change, *cut: str, needs: str = "") -> Mutation:
    return Mutation(id_, setting, policy, resource=resource, change=change, cut=tuple(cut), needs=needs)


def first_preview(id_: str, setting: str, policy: str, resource: str, change: Change, *unknown: str,
                  cut: tuple[str, ...] = ()) -> Mutation:
    """A fault on a resource that references resources not created yet: ``unknown`` paths are sent
    as the engine's unknown sentinel, as a first preview sends ids and ARNs of new resources."""
    return Mutation(id_, setting, policy, resource=resource, change=change, cut=cut, unknown=tuple(unknown))


def both(*changes: Change) -> Change:
    """Several changes to one resource."""
    def change(props: dict[str, Any]) -> None:
        for one in changes:
            one(props)
    return change


def c(id_: str, setting: str, policy: str, *overrides: str) -> Mutation:
    return Mutation(id_, setting, policy, overrides=overrides)


P = "sark-production"
LT = f"{P}-app-v0-1-0-lt"
HOST = f"{P}-timescale-instance"
DB = f"{P}-db-instance"
CACHE = f"{P}-cache-group"
ALB = f"{P}-lb-alb"
HTTPS = f"{P}-lb-https"
BUCKET = f"{P}-lb-access-logs"

MUTATIONS_LIST: list[Mutation] = [
    # --- network -------------------------------------------------------------------------
    m("subnet-assigns-public-ips", "an app subnet sets mapPublicIpOnLaunch",
      "aws-ec2-subnet-disallow-public-ip-on-launch",
      f"{P}-network-app-us-east-1a", put("mapPublicIpOnLaunch", True)),
    m("default-sg-allows-traffic", "the VPC's default security group allows all traffic within itself",
      "aws-ec2-default-security-group-disallow-rules", f"{P}-network-default-sg",
      put("ingress", [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}])),
    m("flow-log-rejected-only", "the VPC flow log records rejected traffic only", "aws-ec2-vpc-enable-flow-logs",
      f"{P}-network-flow-log", put("trafficType", "REJECT"),
      needs="a REJECT-only flow log is fine next to one recording ALL: the VPC's other flow logs decide"),
    # --- security groups -----------------------------------------------------------------
    c("ssh-from-internet", "adminCidrs opens SSH to 0.0.0.0/0", "aws-ec2-security-group-disallow-public-ingress",
      'adminCidrs=["0.0.0.0/0"]'),
    m("alb-public-on-all-ports", "the load balancer's public HTTPS rule becomes protocol -1 (every port)",
      "aws-ec2-security-group-disallow-public-ingress", f"{P}-sg-load-balancer-https-any-ipv4",
      put("ipProtocol", "-1")),
    m("api-port-from-internet", "port 8000 admits 0.0.0.0/0 instead of the load balancer's group",
      "aws-ec2-security-group-disallow-public-ingress", f"{P}-sg-app-from-load-balancer",
      source_cidr(WORLD), "referencedSecurityGroupId"),
    m("metrics-port-from-internet", "the Prometheus port 9090 is open to 0.0.0.0/0",
      "aws-ec2-security-group-disallow-public-metrics-port", f"{P}-sg-app-metrics-10-60-0-0-24",
      put("cidrIpv4", WORLD)),
    m("postgres-from-whole-vpc", "PostgreSQL admits the whole VPC CIDR instead of the app hosts' group",
      "aws-ec2-security-group-require-app-source-for-data-ports", f"{P}-sg-database-from-app",
      source_cidr("10.40.0.0/16"), "referencedSecurityGroupId",
      needs="a private CIDR is a fault only on a data store's group: the group's role"),
    m("valkey-port-range-widened", "the cache group opens 6379-6400", "aws-ec2-security-group-configure-role-ports",
      f"{P}-sg-cache-from-app", put("toPort", 6400), needs="the role's port allow-list: the group's role"),
    m("api-endpoints-from-internet", "the VPC endpoints' HTTPS rule admits 0.0.0.0/0",
      "aws-ec2-security-group-disallow-public-ingress", f"{P}-network-endpoints-https", put("cidrIpv4", WORLD)),
    # --- app hosts -------------------------------------------------------------------------
    m("app-hosts-allow-imdsv1", "the app launch template allows IMDSv1", "aws-ec2-launchtemplate-require-imdsv2",
      LT, put("metadataOptions.httpTokens", "optional")),
    m("app-hosts-metadata-hop-limit-2", "the app launch template lets containers reach IMDS (hop limit 2)",
      "aws-ec2-launchtemplate-require-imdsv2", LT, put("metadataOptions.httpPutResponseHopLimit", 2)),
    m("app-hosts-public-ip", "app hosts get a public IP", "aws-ec2-launchtemplate-disallow-public-ip", LT,
      put("networkInterfaces.0.associatePublicIpAddress", "true")),
    m("app-hosts-unencrypted-root", "the app hosts' root volume is unencrypted",
      "aws-ec2-launchtemplate-disallow-unencrypted-block-device", LT,
      put("blockDeviceMappings.0.ebs.encrypted", "false")),
    m("app-hosts-secret-in-user-data", "the SIEM token is written into the app hosts' user data",
      "aws-ec2-launchtemplate-disallow-secrets-in-user-data", LT,
      user_data_line("export SPLUNK_HEC_TOKEN=2f1c9a7e-hec-token-typed-in")),
    m("app-hosts-debug-on", "the app hosts' user data turns DEBUG on",
      "aws-ec2-user-data-configure-app-security-settings", LT, user_data_line("DEBUG=true")),
    m("asg-ignores-health-check", "the app Auto Scaling group uses EC2 status checks, not the /health check",
      "aws-autoscaling-group-require-elb-health-check", f"{P}-app-v0-1-0-asg", put("healthCheckType", "EC2")),
    # --- TimescaleDB host, its volume and backups -------------------------------------------
    m("timescale-host-allows-imdsv1", "the TimescaleDB host allows IMDSv1", "aws-ec2-instance-require-imdsv2",
      HOST, put("metadataOptions.httpTokens", "optional")),
    m("timescale-host-public-ip", "the TimescaleDB host gets a public IP", "aws-ec2-instance-disallow-public-ip",
      HOST, put("associatePublicIpAddress", True)),
    m("timescale-host-unencrypted-root", "the TimescaleDB host's root volume is unencrypted",
      "aws-ec2-instance-disallow-unencrypted-block-device", HOST, put("rootBlockDevice.encrypted", False)),
    m("timescale-host-termination-unprotected", "the TimescaleDB host can be terminated through the API",
      "aws-ec2-instance-enable-termination-protection", HOST, put("disableApiTermination", False)),
    m("timescale-data-volume-unencrypted", "the TimescaleDB data volume is unencrypted",
      "aws-ebs-volume-disallow-unencrypted-volume", f"{P}-timescale-data", put("encrypted", False)),
    m("timescale-data-volume-aws-key", "the TimescaleDB data volume uses the AWS-managed key",
      "aws-ebs-volume-configure-customer-managed-key", f"{P}-timescale-data", put("kmsKeyId", "alias/aws/ebs")),
    m("timescale-backups-kept-7-days", "TimescaleDB backups are deleted after 7 days",
      "aws-backup-plan-configure-retention", f"{P}-timescale-backup-plan", put("rules.0.lifecycle.deleteAfter", 7)),
    m("timescale-volume-not-backed-up", "the backup selection no longer includes the data volume",
      "aws-ebs-volume-require-backup", f"{P}-timescale-backup-selection", put("resources", []), "resources",
      needs="which volumes no selection covers: every selection and DLM policy"),
    # --- RDS PostgreSQL ----------------------------------------------------------------------
    m("database-public", "the database is publicly accessible", "aws-rds-instance-disallow-public-access",
      DB, put("publiclyAccessible", True)),
    m("database-unencrypted", "the database's storage is unencrypted", "aws-rds-instance-disallow-unencrypted-storage",
      DB, put("storageEncrypted", False)),
    m("database-backups-7-days", "database backups are kept 7 days", "aws-rds-instance-configure-backup-retention",
      DB, put("backupRetentionPeriod", 7)),
    c("database-single-az", "the database has no Multi-AZ standby", "aws-rds-instance-enable-multi-az",
      "environment=development", "dbMultiAz=false"),
    m("database-deletable", "the database's deletion protection is off", "aws-rds-instance-enable-deletion-protection",
      DB, put("deletionProtection", False)),
    m("database-no-final-snapshot", "deleting the database skips the final snapshot",
      "aws-rds-instance-enable-deletion-protection", DB, put("skipFinalSnapshot", True)),
    m("database-postgres-13", "the database runs PostgreSQL 13", "aws-rds-instance-configure-engine-version",
      DB, put("engineVersion", "13")),
    m("database-tls-optional", "the parameter group stops forcing TLS (rds.force_ssl=0)",
      "aws-rds-parameter-group-require-tls", f"{P}-db-params", parameter("rds.force_ssl", "0")),
    m("database-query-text-default-key", "Performance Insights (query text) uses the AWS-managed key",
      "aws-rds-instance-disallow-unencrypted-performance-insights", DB, remove("performanceInsightsKmsKeyId")),
    m("database-password-typed-in", "the master password comes from a literal, not the generated secret",
      "aws-rds-instance-disallow-literal-password", DB, put("password", "typed-in-password-123"), "password",
      needs="where the value came from: the property dependency on a random.RandomPassword"),
    # --- ElastiCache ---------------------------------------------------------------------------
    m("cache-unencrypted-at-rest", "the cache is not encrypted at rest",
      "aws-elasticache-replication-group-enable-at-rest-encryption", CACHE, put("atRestEncryptionEnabled", False)),
    m("cache-tls-preferred", "the cache accepts clients without TLS (transit encryption preferred)",
      "aws-elasticache-replication-group-require-transit-encryption", CACHE, put("transitEncryptionMode", "preferred")),
    m("cache-without-auth", "the cache has no AUTH token", "aws-elasticache-replication-group-require-auth",
      CACHE, remove("authToken"), "authToken"),
    m("cache-snapshots-1-day", "cache snapshots are kept 1 day",
      "aws-elasticache-replication-group-configure-snapshot-retention", CACHE, put("snapshotRetentionLimit", 1)),
    m("cache-no-failover", "the cache does not fail over automatically",
      "aws-elasticache-replication-group-enable-automatic-failover", CACHE, put("automaticFailoverEnabled", False)),
    m("cache-default-subnet-group", "the cache lands in the default subnet group",
      "aws-elasticache-replication-group-disallow-default-subnet-group", CACHE, put("subnetGroupName", "default"),
      "subnetGroupName"),
    # --- Secrets Manager -------------------------------------------------------------------------
    m("secret-aws-managed-key", "SECRET_KEY is encrypted with the AWS-managed key",
      "aws-secretsmanager-secret-configure-customer-managed-key", f"{P}-secrets-secret-key", remove("kmsKeyId"),
      "kmsKeyId"),
    m("secret-force-delete", "a deleted POSTGRES_PASSWORD is gone at once (recovery window 0)",
      "aws-secretsmanager-secret-configure-recovery-window", f"{P}-secrets-postgres-password",
      put("recoveryWindowInDays", 0)),
    m("password-rotated-yearly", "POSTGRES_PASSWORD rotates every 365 days",
      "aws-secretsmanager-secret-enable-rotation",
      f"{P}-secret-rotation-postgres-password", put("rotationRules.automaticallyAfterDays", 365),
      needs="the period allowed depends on the rotated secret's sark:rotation-class tag"),
    m("secret-value-typed-in", "the VALKEY_PASSWORD version holds a literal, not the generated value",
      "aws-secretsmanager-secret-version-require-generated-value", f"{P}-secrets-valkey-password-version",
      put("secretString", "typed-in-valkey-password"), "secretString",
      needs="where the value came from: the property dependency on a random.RandomPassword"),
    # --- KMS -------------------------------------------------------------------------------------
    m("stack-key-never-rotates", "the stack key's rotation is off", "aws-kms-key-enable-key-rotation",
      f"{P}-key", put("enableKeyRotation", False)),
    m("stack-key-7-day-deletion-window", "a scheduled deletion of the stack key can be cancelled for 7 days only",
      "aws-kms-key-configure-deletion-window", f"{P}-key", put("deletionWindowInDays", 7)),
    m("stack-key-lockout-check-bypassed", "the stack key bypasses the policy lockout safety check",
      "aws-kms-key-disallow-bypass-policy-lockout-safety-check", f"{P}-key",
      put("bypassPolicyLockoutSafetyCheck", True)),
    # --- load balancer -------------------------------------------------------------------------
    m("https-allows-tls-1-0", "the HTTPS listener uses ELBSecurityPolicy-2016-08 (TLS 1.0)",
      "aws-lb-listener-configure-secure-tls", HTTPS, put("sslPolicy", "ELBSecurityPolicy-2016-08")),
    m("http-redirect-302", "the HTTP listener redirects with 302 instead of 301",
      "aws-lb-listener-require-https-redirect", f"{P}-lb-http",
      put("defaultActions.0.redirect.statusCode", "HTTP_302")),
    m("hsts-removed", "the HTTPS listener stops sending Strict-Transport-Security", "aws-lb-listener-enable-hsts",
      HTTPS, remove("routingHttpResponseStrictTransportSecurityHeaderValue")),
    m("alb-cors-wildcard", "the HTTPS listener answers Access-Control-Allow-Origin: *",
      "aws-lb-listener-disallow-wildcard-cors", HTTPS,
      put("routingHttpResponseAccessControlAllowOriginHeaderValue", "*")),
    m("alb-keeps-invalid-headers", "the load balancer forwards invalid header fields",
      "aws-lb-loadbalancer-enable-drop-invalid-header-fields", ALB, put("dropInvalidHeaderFields", False)),
    c("alb-deletable", "the load balancer's deletion protection is off",
      "aws-lb-loadbalancer-enable-deletion-protection", "environment=development",
      "loadBalancerDeletionProtection=false"),
    m("alb-access-logs-off", "the load balancer stops writing access logs", "aws-lb-loadbalancer-enable-access-logging",
      ALB, put("accessLogs.enabled", False)),
    m("alb-desync-monitor-only", "HTTP desync mitigation only monitors",
      "aws-lb-loadbalancer-configure-desync-mitigation",
      ALB, put("desyncMitigationMode", "monitor")),
    m("health-check-on-root", "the target group health-checks / instead of /health",
      "aws-lb-targetgroup-configure-health-check", f"{P}-lb-v0-1-0-tg", put("healthCheck.path", "/")),
    m("metrics-through-the-alb", "the /metrics block rule no longer matches /metrics (typo), so it is forwarded",
      "aws-lb-listener-disallow-metrics-path", f"{P}-lb-block-metrics",
      put("conditions.0.pathPattern.values", ["/metric", "/metric/*"]),
      needs="which of a listener's rules decides /metrics: all its rules, by priority"),
    # --- access-log bucket -----------------------------------------------------------------------
    m("log-bucket-public-policy-allowed", "the log bucket's public access block allows public policies",
      "aws-s3-bucket-disallow-public-access", f"{BUCKET}-public-access", put("blockPublicPolicy", False)),
    m("log-bucket-unencrypted", "the log bucket loses its default encryption",
      "aws-s3-bucket-enable-server-side-encryption",
      f"{BUCKET}-encryption", put("rules", [])),
    m("access-logs-kept-7-days", "access logs expire after 7 days", "aws-s3-bucket-configure-log-retention",
      f"{BUCKET}-lifecycle", put("rules.0.expiration.days", 7),
      needs="the minimum applies to log buckets: the load balancer's accessLogs say which bucket is one"),
    m("log-bucket-plain-http", "the log bucket's policy no longer denies plain HTTP",
      "aws-s3-bucket-require-tls-only-policy", f"{BUCKET}-policy", without_tls_deny),
    m("log-bucket-public-read", "the log bucket gets the public-read ACL", "aws-s3-bucket-disallow-public-acl",
      BUCKET, put("acl", "public-read")),
    # --- CloudWatch and SNS ----------------------------------------------------------------------
    m("alarm-actions-disabled", "the 5xx-rate alarm's actions are disabled",
      "aws-cloudwatch-metric-alarm-require-actions",
      f"{P}-monitoring-http-5xx-rate", put("actionsEnabled", False)),
    m("db-alarm-watches-other-db", "the database connections alarm watches another instance",
      "aws-cloudwatch-require-sark-alarms", f"{P}-monitoring-db-connections",
      put("dimensions.DBInstanceIdentifier", "sark-staging-db"), "dimensions",
      needs="that an alarm watches the database: the instance's identifier"),
    m("app-logs-kept-forever", "the app log group has no retention", "aws-cloudwatch-log-group-configure-retention",
      f"{P}-monitoring-app-logs", remove("retentionInDays")),
    m("app-logs-unencrypted-key", "the app log group is not encrypted with the stack key",
      "aws-cloudwatch-log-group-enable-kms-encryption", f"{P}-monitoring-app-logs", remove("kmsKeyId"), "kmsKeyId"),
    m("alert-topic-unencrypted", "the alert topic is not encrypted", "aws-sns-topic-enable-kms-encryption",
      f"{P}-monitoring-alerts", remove("kmsMasterKeyId"), "kmsMasterKeyId"),
    # --- app settings --------------------------------------------------------------------------
    c("environment-development", "the app runs with ENVIRONMENT=development",
      "aws-ssm-parameter-configure-app-security-settings", "environment=development"),
    m("app-debug-on", "the published DEBUG setting is true", "aws-ssm-parameter-configure-app-security-settings",
      f"{P}-app-env-debug", put("insecureValue", "true")),
    m("app-cors-wildcard", "the published CORS_ORIGINS is *", "aws-ssm-parameter-configure-app-security-settings",
      f"{P}-app-env-cors-origins", put("insecureValue", "*")),
    m("app-tls-verification-off", "the published VERIFY_SSL is false",
      "aws-ssm-parameter-configure-app-security-settings", f"{P}-app-env-verify-ssl", put("insecureValue", "false")),
    m("password-in-plain-parameter", "the POSTGRES_PASSWORD parameter holds the password instead of the secret's ARN",
      "aws-ssm-parameter-disallow-plaintext-secrets", f"{P}-app-secret-arn-postgres-password",
      put("insecureValue", "typed-in-password-123"), "insecureValue"),
    # --- what the pack missed outright (issue #13) ---------------------------------------------
    m("log-bucket-public-acls-not-blocked", "the log bucket's public access block lets public ACLs in and counts them",
      "aws-s3-bucket-disallow-public-access", f"{BUCKET}-public-access",
      both(put("blockPublicAcls", False), put("ignorePublicAcls", False))),
    # --- faults on resources that reference resources not created yet (first preview) --------------
    first_preview("ssh-from-internet-on-a-new-group", "SSH from 0.0.0.0/0 on the app group, whose id is not known yet",
                  "aws-ec2-security-group-disallow-public-ingress", f"{P}-sg-app-from-load-balancer",
                  both(source_cidr(WORLD), put("fromPort", 22), put("toPort", 22)), "securityGroupId",
                  cut=("referencedSecurityGroupId",)),
    first_preview("alb-all-ports-on-a-new-group", "the load balancer's new group opens every port to ::/0",
                  "aws-ec2-security-group-disallow-public-ingress", f"{P}-sg-load-balancer-https-any-ipv6",
                  put("ipProtocol", "-1"), "securityGroupId"),
    first_preview("metrics-public-on-a-new-group", "9090 open to 0.0.0.0/0 on a group not created yet",
                  "aws-ec2-security-group-disallow-public-metrics-port", f"{P}-sg-app-metrics-10-60-0-0-24",
                  put("cidrIpv4", WORLD), "securityGroupId"),
    first_preview("new-bucket-public-policy-allowed", "the public access block of a bucket not created yet allows "
                  "public policies", "aws-s3-bucket-disallow-public-access", f"{BUCKET}-public-access",
                  put("restrictPublicBuckets", False), "bucket"),
    first_preview("new-bucket-unencrypted", "the encryption configuration of a bucket not created yet has no rule",
                  "aws-s3-bucket-enable-server-side-encryption", f"{BUCKET}-encryption", put("rules", []), "bucket"),
    first_preview("new-template-allows-imdsv1", "the app launch template allows IMDSv1; its instance profile and "
                  "security group are not created yet", "aws-ec2-launchtemplate-require-imdsv2", LT,
                  put("metadataOptions.httpTokens", "optional"), "iamInstanceProfile.arn",
                  "networkInterfaces.0.securityGroups.0"),
    first_preview("new-asg-ignores-health-check", "the app Auto Scaling group uses EC2 checks; its template and "
                  "target group are not created yet", "aws-autoscaling-group-require-elb-health-check",
                  f"{P}-app-v0-1-0-asg", put("healthCheckType", "EC2"), "launchTemplate.id", "targetGroupArns.0"),
]
IDS = [mutation.id for mutation in MUTATIONS_LIST]


# --------------------------------------------------------------------------------------
# Running them
# --------------------------------------------------------------------------------------

BY_ID = {mutation.id: mutation for mutation in MUTATIONS_LIST}
Outcome = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]
"""The policies a variant violates: (mandatory, advisory, mandatory resource policies on the
changed resource (refused before create), policies that could not run on the changed resource)."""

_CONFIG_COST = 5
"""A config mutation runs the program again: about five recording mutations' worth of time."""
_WORKER_START_COST = 8
"""A worker process first imports the SDKs and plans the production stack."""


@pytest.fixture(autouse=True)
def _suite_size(request: pytest.FixtureRequest) -> None:
    request.config.stash[MUTATION_SUITE_SIZE] = len(MUTATIONS_LIST)


def mutated(recording: Recording, mutation: Mutation) -> tuple[Recording, RecordedResource]:
    """The recording with one resource changed in its inputs and outputs; that resource."""
    [target] = [r for r in recording.resources if r.name == mutation.resource and r.custom]
    changed = copy.deepcopy(target)
    assert mutation.change is not None
    mutation.change(changed.inputs)
    mutation.change(changed.outputs)
    for path in mutation.unknown:
        put(path, UNKNOWN)(changed.inputs)
        put(path, UNKNOWN)(changed.outputs)
    for key in mutation.cut:
        changed.property_dependencies.pop(key, None)
    resources = [changed if r.urn == target.urn else r for r in recording.resources]
    return dataclasses.replace(recording, resources=resources), changed


def report_for(mutation: Mutation, production: PlanResult) -> PolicyReport:
    """The policy report of the variant."""
    if mutation.overrides:
        return run_plan(ROOT, "production", overrides=list(mutation.overrides), known_outputs=True).report
    recording, changed = mutated(production.recording, mutation)
    assert changed.inputs != production.recording.get(changed.urn).inputs, "the mutation changed nothing"
    return evaluate(recording, production.packs, config=production.config.values, analyze_only={changed.urn})


def run_mutations(ids: list[str], production: PlanResult | None = None) -> dict[str, Outcome]:
    """Each mutation's outcome. Also the entry point of the worker processes (hence ids, not objects)."""
    results: dict[str, Outcome] = {}
    for id_ in ids:
        mutation = BY_ID[id_]
        if production is None and not mutation.overrides:
            production = run_plan(ROOT, "production", known_outputs=True)
        report = report_for(mutation, production)  # type: ignore[arg-type]
        urn = next((r.urn for r in production.recording.resources if r.name == mutation.resource), "") \
            if production is not None else ""
        kinds = {name: info.kind for infos in report.policies.values() for name, info in infos.items()}
        results[id_] = (tuple(sorted({v.policy for v in report.mandatory})),
                        tuple(sorted({v.policy for v in report.at_level("advisory")})),
                        tuple(sorted({v.policy for v in report.mandatory
                                      if v.urn == urn and kinds[v.policy] == "resource"})),
                        tuple(sorted({v.policy for v in report.at_level("advisory")
                                      if v.urn == urn and "during preview" in v.message})))
    return results


def _shares(ids: list[str], count: int) -> list[list[str]]:
    """``ids`` split into ``count`` lists that take about as long; the first is this process's."""
    shares: list[list[str]] = [[] for _ in range(count)]
    costs = [0] + [_WORKER_START_COST] * (count - 1)
    for id_ in sorted(ids, key=lambda i: -(_CONFIG_COST if BY_ID[i].overrides else 1)):
        lightest = costs.index(min(costs))
        shares[lightest].append(id_)
        costs[lightest] += _CONFIG_COST if BY_ID[id_].overrides else 1
    return shares


class _OutcomesOnDemand(dict[str, Outcome]):
    """Outcomes evaluated on first lookup, against this process's production plan."""

    def __init__(self, production: PlanResult) -> None:
        super().__init__()
        self.production = production

    def __missing__(self, id_: str) -> Outcome:
        self[id_] = run_mutations([id_], self.production)[id_]
        return self[id_]


@pytest.fixture(scope="session")
def outcomes(request: pytest.FixtureRequest, production_plan: PlanResult) -> dict[str, Outcome]:
    """The outcome of every selected mutation.

    Evaluating a variant is CPU-bound (about half a second, mostly the SDK rebuilding the
    stack for each stack policy), so with more than one CPU the work is shared with worker
    processes; each plans the production stack once for its share.
    """
    if hasattr(request.config, "workerinput"):
        # Under pytest-xdist the cases are spread over its workers test by test (tests/conftest.py): each
        # worker evaluates only the cases it is given, when they ask.
        return _OutcomesOnDemand(production_plan)
    selected = [item.callspec.params["mutation"].id for item in request.session.items
                if getattr(item, "originalname", "") == "test_mutation_is_caught"]
    cost = sum(_CONFIG_COST if BY_ID[i].overrides else 1 for i in selected)
    workers = min((os.cpu_count() or 1) - 1, 3) if cost >= 4 * _CONFIG_COST else 0
    if workers <= 0:
        return run_mutations(selected, production_plan)
    shares = _shares(selected, workers + 1)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_mutations, share) for share in shares[1:] if share]
        results = run_mutations(shares[0], production_plan)
        for future in futures:
            results.update(future.result())
    return results


def test_production_is_clean(production_plan: PlanResult) -> None:
    """The baseline the recording mutations rely on: no violation of any level, nothing not applicable."""
    report = production_plan.report
    assert [(v.policy, v.detail) for v in report.violations] == []
    assert report.not_applicable == []
    assert report.warnings == []


def test_the_suite_is_large_and_names_mandatory_rules(production_plan: PlanResult) -> None:
    assert len(MUTATIONS_LIST) >= 40
    assert len(set(IDS)) == len(IDS)
    assert len({m.setting for m in MUTATIONS_LIST}) == len(MUTATIONS_LIST)
    levels = {p.name: p.enforcement_level for pack in production_plan.packs for p in pack.policies}
    assert {m.policy: levels.get(m.policy) for m in MUTATIONS_LIST} == {
        m.policy: EnforcementLevel.MANDATORY for m in MUTATIONS_LIST}


def test_single_resource_faults_name_resource_rules_and_the_rest_say_why(production_plan: PlanResult) -> None:
    """Every fault one resource's own inputs show is a resource rule's (refused before create); a
    mutation caught by a stack rule says what other resources it takes to see it."""
    kinds = {p.name: isinstance(p, ResourceValidationPolicy) for pack in production_plan.packs for p in pack.policies}
    recording = [m for m in MUTATIONS_LIST if m.change is not None]
    assert [m.id for m in recording if not m.needs and not kinds[m.policy]] == []
    assert [m.id for m in recording if m.needs and kinds[m.policy]] == []
    assert len([m for m in recording if m.unknown]) >= 6


def test_noeviction_is_reported_on_the_parameter_group(production_plan: PlanResult) -> None:
    """The outright miss: a Valkey parameter group with maxmemory-policy noeviction (advisory)."""
    mutation = m("cache-noeviction", "the cache evicts nothing", "unused", f"{P}-cache-params",
                 parameter("maxmemory-policy", "noeviction"))
    recording, changed = mutated(production_plan.recording, mutation)
    report = evaluate(recording, production_plan.packs, config=production_plan.config.values,
                      analyze_only={changed.urn})
    assert [(v.policy, v.enforcement_level, v.urn, v.detail) for v in report.violations if v.urn == changed.urn] == [
        ("aws-elasticache-parameter-group-configure-maxmemory-policy", "advisory", changed.urn,
         "maxmemory-policy is noeviction; it must be allkeys-lru.")]


def test_cost_shares_are_balanced() -> None:
    shares = _shares(IDS, 2)
    assert sorted(shares[0] + shares[1]) == sorted(IDS)
    costs = [sum(_CONFIG_COST if BY_ID[i].overrides else 1 for i in share) for share in shares]
    assert abs(costs[0] - (costs[1] + _WORKER_START_COST)) <= _CONFIG_COST


@pytest.mark.parametrize("mutation", MUTATIONS_LIST, ids=IDS)
def test_mutation_is_caught(mutation: Mutation, outcomes: dict[str, Outcome], request: pytest.FixtureRequest) -> None:
    mandatory, advisory, before_create, cannot_run = outcomes[mutation.id]
    request.config.stash.setdefault(MUTATIONS, {})[mutation.id] = mutation.policy in mandatory
    assert mutation.policy in mandatory, (
        f"{mutation.setting}: not caught by {mutation.policy}; mandatory: {list(mandatory)}, "
        f"advisory: {list(advisory)}")
    if mutation.change is not None and not mutation.needs:
        # The engine runs resource policies in Analyze, before the resource is created: `pulumi up` stops here.
        assert mutation.policy in before_create, f"{mutation.setting}: not refused before create"
    if mutation.unknown:
        assert mutation.policy not in cannot_run, f"{mutation.setting}: {mutation.policy} could not run"


def test_a_remediation_fixes_the_mutation_instead_of_failing(production_plan: PlanResult) -> None:
    """At level remediate, the key-rotation rule turns rotation back on before validation runs."""
    mutation = BY_ID["stack-key-never-rotates"]
    recording, changed = mutated(production_plan.recording, mutation)
    report = evaluate(recording, production_plan.packs, [{"aws-kms-key-enable-key-rotation": "remediate"}],
                      config=production_plan.config.values, analyze_only={changed.urn})
    assert report.mandatory == []
    [remediation] = report.remediations
    assert (remediation.policy, remediation.urn, remediation.changed) == (
        "aws-kms-key-enable-key-rotation", changed.urn, {"enableKeyRotation": (False, True)})
