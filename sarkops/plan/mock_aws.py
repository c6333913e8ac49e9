"""Realistic, deterministic stand-ins for what AWS would return: resource outputs and invoke answers.

Pulumi's mock runtime asks :class:`AwsMocks` for the state of every resource the program
registers (``new_resource``) and for the result of every data-source call (``call``). The
answers look like AWS's (``vpc-0a1b...`` ids, ARNs in each service's shape, RDS endpoints,
load balancer DNS names) so programs that format, split or compare them behave as they would
for real, and they are derived from a hash of the type and logical name, so two runs of the
same program produce identical output. Names are not invented here: the provider's Check
(:mod:`sarkops.plan.provider.names`) has already put them into the inputs, and the ARNs and
endpoints below are built from them. In a first preview (the default of ``sarkops plan``)
the computed values below are replaced by unknowns (:mod:`sarkops.plan.provider.unknowns`);
they are what ``--known-outputs`` and the component tests see.

Both tables are plain dicts keyed by type token; to support a new type or data source, add
one function and one entry:

- :data:`RESOURCE_OUTPUTS`: ``token -> fn(ResourceContext) -> dict`` of computed outputs
  (``id`` included). The resource's inputs are echoed back on top, so only computed values
  go here. Types not listed get ``id = "<name>-id"`` and, for ``aws:`` types, a generic ARN.
- :data:`INVOKES`: ``token -> fn(InvokeContext) -> dict`` of camelCase results.

Any invoke token without an answer raises :class:`UnansweredInvokeError`; a silent ``{}``
would turn into ``None`` attributes and fail far away from the cause.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import rpc

from sarkops.errors import SarkopsError

ACCOUNT_ID = "123456789012"
"""The AWS account every mock ARN belongs to (the documentation account)."""

DEFAULT_REGION = "us-east-1"
"""Region used when the stack sets no ``aws:region``."""

PARTITION = "aws"


class UnansweredInvokeError(SarkopsError):
    """The program called a data source (invoke) that :data:`INVOKES` has no answer for."""

    def __init__(self, token: str, args: Mapping[str, Any], reason: str = "") -> None:
        self.token = token
        self.args = dict(args)
        shown = json.dumps(_plain(args), sort_keys=True, default=str)
        if len(shown) > 300:
            shown = shown[:297] + "..."
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"no mock answer for invoke {token} (args {shown}){why}: add one to sarkops/plan/mock_aws.py"
        )


# --------------------------------------------------------------------------------------
# Deterministic values
# --------------------------------------------------------------------------------------

def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _plain(value: Any) -> Any:
    """Unwrap rpc secrets and turn preview unknowns into None (computations treat them as unset)."""
    if rpc.is_rpc_secret(value):
        return _plain(value["value"])
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value == rpc.UNKNOWN or isinstance(value, pulumi.output.Unknown):
        return None
    return value


@dataclass(frozen=True)
class _Seeded:
    """Deterministic hex, uuids and numbers from a seed string."""

    seed: str

    def hex(self, length: int, salt: str = "") -> str:
        """``length`` lowercase hex digits derived from the seed."""
        out = ""
        counter = 0
        while len(out) < length:
            out += _digest(self.seed, salt, str(counter))
            counter += 1
        return out[:length]

    def number(self, modulo: int, salt: str = "") -> int:
        """A number in ``range(modulo)`` derived from the seed."""
        return int(self.hex(12, salt), 16) % modulo

    def uuid(self, salt: str = "") -> str:
        """A UUID-shaped string derived from the seed."""
        h = self.hex(32, salt)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"

    def upper(self, length: int, salt: str = "") -> str:
        """Uppercase letters and digits (AWS unique ids such as ``AROA...``)."""
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        return "".join(alphabet[int(c, 16) * 2 % 32] for c in self.hex(length, salt))


@dataclass(frozen=True)
class ResourceContext(_Seeded):
    """What a :data:`RESOURCE_OUTPUTS` function gets to compute one resource's outputs."""

    type: str
    name: str
    inputs: Mapping[str, Any]
    """Inputs with secrets unwrapped and preview unknowns as None."""
    region: str
    account_id: str = ACCOUNT_ID

    def arn(self, service: str, resource: str, *, regional: bool = True, account: bool = True) -> str:
        """``arn:aws:<service>:<region>:<account>:<resource>``; IAM and S3 leave parts empty."""
        region = self.region if regional else ""
        owner = self.account_id if account else ""
        return f"arn:{PARTITION}:{service}:{region}:{owner}:{resource}"

    def physical_name(self, key: str = "name") -> str:
        """The name AWS will see: the input, which the provider's Check has already filled in for
        every type :mod:`sarkops.plan.provider.names` knows. For other types: the ``<key>Prefix``
        plus 26 characters (Terraform's unique suffix), else the logical name plus 7 characters."""
        explicit = self.inputs.get(key)
        if isinstance(explicit, str) and explicit:
            return explicit
        prefix = self.inputs.get(f"{key}Prefix")
        if isinstance(prefix, str) and prefix:
            return prefix + self.hex(26, "prefix")
        return f"{self.name}-{self.hex(7, 'autoname')}"

    def ec2_id(self, prefix: str, salt: str = "") -> str:
        """An EC2-style id, ``<prefix>-0`` plus 16 hex digits."""
        return f"{prefix}-0{self.hex(16, salt)}"

    def private_ip(self) -> str:
        """A private address inside 10.0.0.0/8."""
        return f"10.{self.number(256, 'ip1')}.{self.number(256, 'ip2')}.{1 + self.number(250, 'ip3')}"

    def public_ip(self) -> str:
        """A public-looking address in 3.0.0.0/8 (an AWS range)."""
        return f"3.{self.number(256, 'pub1')}.{self.number(256, 'pub2')}.{1 + self.number(250, 'pub3')}"

    def int_input(self, key: str, default: int) -> int:
        """A numeric input as int (the wire sends floats), or ``default``."""
        value = self.inputs.get(key)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


@dataclass(frozen=True)
class InvokeContext(_Seeded):
    """What an :data:`INVOKES` function gets: the token and its camelCase args."""

    token: str
    args: Mapping[str, Any]
    """Args with secrets unwrapped."""
    region: str
    account_id: str = ACCOUNT_ID


ResourceOutputs = Callable[[ResourceContext], dict[str, Any]]
InvokeAnswer = Callable[[InvokeContext], dict[str, Any]]


# --------------------------------------------------------------------------------------
# Region data
# --------------------------------------------------------------------------------------

_REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)", "us-west-2": "US West (Oregon)",
    "eu-west-1": "Europe (Ireland)", "eu-west-2": "Europe (London)", "eu-west-3": "Europe (Paris)",
    "eu-central-1": "Europe (Frankfurt)", "eu-north-1": "Europe (Stockholm)",
    "ap-southeast-1": "Asia Pacific (Singapore)", "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-northeast-1": "Asia Pacific (Tokyo)", "ap-south-1": "Asia Pacific (Mumbai)",
    "ca-central-1": "Canada (Central)", "sa-east-1": "South America (Sao Paulo)",
}

# Account that writes ALB access logs, per region (AWS docs, "Enable access logs").
_ELB_ACCOUNTS = {
    "us-east-1": "127311923021", "us-east-2": "033677994240", "us-west-1": "027434742980",
    "us-west-2": "797873946194", "eu-west-1": "156460612806", "eu-west-2": "652711504416",
    "eu-west-3": "009996457667", "eu-central-1": "054676820928", "eu-north-1": "897822967062",
    "ap-southeast-1": "114774131450", "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864", "ap-south-1": "718504428378", "ca-central-1": "985666609251",
    "sa-east-1": "507241528517",
}

# Route 53 hosted zone of application load balancers, per region.
_ALB_ZONES = {
    "us-east-1": "Z35SXDOTRQ7X7K", "us-east-2": "Z3AADJGX6KTTL2", "us-west-1": "Z368ELLRRE2KJ0",
    "us-west-2": "Z1H1FL5HABSF5", "eu-west-1": "Z32O12XQLNTSW2", "eu-west-2": "ZHURV8PSTC4K8",
    "eu-central-1": "Z215JYRZR1TBD5", "ap-southeast-1": "Z1LMS91P8CMLE5",
    "ap-southeast-2": "Z1GM3OXH4ZPM65", "ap-northeast-1": "Z14GRHDCWA56QT",
}

_DIRECTIONS = {"east": "e", "west": "w", "north": "n", "south": "s", "central": "c",
               "northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw"}


def _region_code(region: str) -> str:
    """``us-east-1`` -> ``use1``, the short form in ElastiCache endpoints and AZ ids."""
    parts = region.split("-")
    if len(parts) != 3:
        return region.replace("-", "")
    return parts[0] + _DIRECTIONS.get(parts[1], parts[1][:1]) + parts[2]


def _internal_dns_suffix(region: str) -> str:
    return "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"


# --------------------------------------------------------------------------------------
# Resource outputs, one function per type (or per family)
# --------------------------------------------------------------------------------------

def _ec2(prefix: str, arn_kind: str | None = None, **extra: Callable[[ResourceContext], Any]) -> ResourceOutputs:
    """An EC2-family resource: ``<prefix>-<hex>`` id and, if it has one, an ARN."""

    def outputs(ctx: ResourceContext) -> dict[str, Any]:
        rid = ctx.ec2_id(prefix)
        result: dict[str, Any] = {"id": rid}
        if arn_kind:
            result["arn"] = ctx.arn("ec2", f"{arn_kind}/{rid}")
            result["ownerId"] = ctx.account_id
        result.update({key: fn(ctx) for key, fn in extra.items()})
        return result

    return outputs


def _vpc(ctx: ResourceContext) -> dict[str, Any]:
    rid = ctx.ec2_id("vpc")
    return {
        "id": rid, "arn": ctx.arn("ec2", f"vpc/{rid}"), "ownerId": ctx.account_id,
        "defaultSecurityGroupId": ctx.ec2_id("sg", "default"), "defaultNetworkAclId": ctx.ec2_id("acl"),
        "defaultRouteTableId": ctx.ec2_id("rtb"), "mainRouteTableId": ctx.ec2_id("rtb"),
        "dhcpOptionsId": ctx.ec2_id("dopt"),
    }


def _subnet(ctx: ResourceContext) -> dict[str, Any]:
    rid = ctx.ec2_id("subnet")
    return {"id": rid, "arn": ctx.arn("ec2", f"subnet/{rid}"), "ownerId": ctx.account_id,
            "availabilityZone": ctx.inputs.get("availabilityZone") or f"{ctx.region}a"}


def _security_group(ctx: ResourceContext) -> dict[str, Any]:
    rid = ctx.ec2_id("sg")
    return {"id": rid, "arn": ctx.arn("ec2", f"security-group/{rid}"), "ownerId": ctx.account_id,
            "name": ctx.physical_name()}


def _instance(ctx: ResourceContext) -> dict[str, Any]:
    rid = ctx.ec2_id("i")
    ip = ctx.private_ip()
    result = {
        "id": rid, "arn": ctx.arn("ec2", f"instance/{rid}"), "privateIp": ip,
        "privateDns": f"ip-{ip.replace('.', '-')}.{_internal_dns_suffix(ctx.region)}",
        "primaryNetworkInterfaceId": ctx.ec2_id("eni"), "instanceState": "running",
        "availabilityZone": ctx.inputs.get("availabilityZone") or f"{ctx.region}a",
    }
    if ctx.inputs.get("associatePublicIpAddress") is True:
        result["publicIp"] = ctx.public_ip()
    return result


def _eip(ctx: ResourceContext) -> dict[str, Any]:
    rid = ctx.ec2_id("eipalloc")
    return {"id": rid, "allocationId": rid, "publicIp": ctx.public_ip(),
            "arn": ctx.arn("ec2", f"elastic-ip/{rid}")}


def _nat_gateway(ctx: ResourceContext) -> dict[str, Any]:
    return {"id": ctx.ec2_id("nat"), "privateIp": ctx.private_ip(), "publicIp": ctx.public_ip(),
            "networkInterfaceId": ctx.ec2_id("eni")}


def _launch_template(ctx: ResourceContext) -> dict[str, Any]:
    rid = ctx.ec2_id("lt")
    return {"id": rid, "arn": ctx.arn("ec2", f"launch-template/{rid}"), "latestVersion": 1,
            "defaultVersion": 1, "name": ctx.physical_name()}


def _kms_key(ctx: ResourceContext) -> dict[str, Any]:
    key_id = ctx.uuid()
    return {"id": key_id, "keyId": key_id, "arn": ctx.arn("kms", f"key/{key_id}")}


def _kms_alias(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    return {"id": name, "arn": ctx.arn("kms", name), "targetKeyArn": ctx.arn("kms", f"key/{ctx.uuid('target')}")}


def _rds_instance(ctx: ResourceContext) -> dict[str, Any]:
    identifier = ctx.physical_name("identifier")
    engine = str(ctx.inputs.get("engine") or "postgres")
    port = ctx.int_input("port", 3306 if engine in ("mysql", "mariadb") else 5432)
    address = f"{identifier}.c{ctx.hex(11)}.{ctx.region}.rds.amazonaws.com"
    resource_id = f"db-{ctx.upper(26)}"
    result: dict[str, Any] = {
        "id": resource_id, "resourceId": resource_id, "identifier": identifier,
        "arn": ctx.arn("rds", f"db:{identifier}"), "address": address, "port": port,
        "endpoint": f"{address}:{port}", "hostedZoneId": "Z2R2ITUGPM61AM", "status": "available",
    }
    if ctx.inputs.get("manageMasterUserPassword") is True:
        result["masterUserSecrets"] = [{
            "secretArn": ctx.arn("secretsmanager", f"secret:rds!{resource_id.lower()}-{ctx.hex(6, 'mus')}"),
            "kmsKeyId": ctx.inputs.get("masterUserSecretKmsKeyId") or ctx.arn("kms", f"key/{ctx.uuid('mus')}"),
            "secretStatus": "active",
        }]
    return result


def _rds_named(kind: str) -> ResourceOutputs:
    """RDS resources whose id is their name (subnet groups ``subgrp``, parameter groups ``pg``)."""

    def outputs(ctx: ResourceContext) -> dict[str, Any]:
        name = ctx.physical_name()
        return {"id": name, "name": name, "arn": ctx.arn("rds", f"{kind}:{name}")}

    return outputs


def _replication_group(ctx: ResourceContext) -> dict[str, Any]:
    group_id = ctx.physical_name("replicationGroupId")
    host = f"{group_id}.{ctx.hex(6)}.{_region_code(ctx.region)}.cache.amazonaws.com"
    nodes = ctx.int_input("numCacheClusters", 2)
    return {
        "id": group_id, "replicationGroupId": group_id,
        "arn": ctx.arn("elasticache", f"replicationgroup:{group_id}"),
        "primaryEndpointAddress": f"master.{host}", "readerEndpointAddress": f"replica.{host}",
        "port": ctx.int_input("port", 6379),
        "memberClusters": [f"{group_id}-{i:03d}" for i in range(1, nodes + 1)],
    }


def _elasticache_named(kind: str) -> ResourceOutputs:
    def outputs(ctx: ResourceContext) -> dict[str, Any]:
        name = ctx.physical_name()
        return {"id": name, "name": name, "arn": ctx.arn("elasticache", f"{kind}:{name}")}

    return outputs


def _load_balancer(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    kind = {"network": "net", "gateway": "gwy"}.get(str(ctx.inputs.get("loadBalancerType")), "app")
    suffix = f"{kind}/{name}/{ctx.hex(16)}"
    arn = ctx.arn("elasticloadbalancing", f"loadbalancer/{suffix}")
    internal = "internal-" if ctx.inputs.get("internal") is True else ""
    return {
        "id": arn, "arn": arn, "arnSuffix": suffix, "name": name,
        "dnsName": f"{internal}{name}-{ctx.number(10**10):010d}.{ctx.region}.elb.amazonaws.com",
        "zoneId": _ALB_ZONES.get(ctx.region, _ALB_ZONES[DEFAULT_REGION]),
    }


def _target_group(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    suffix = f"targetgroup/{name}/{ctx.hex(16)}"
    arn = ctx.arn("elasticloadbalancing", suffix)
    return {"id": arn, "arn": arn, "arnSuffix": suffix, "name": name}


def _listener(ctx: ResourceContext) -> dict[str, Any]:
    lb_arn = ctx.inputs.get("loadBalancerArn")
    lb_part = lb_arn.split("loadbalancer/", 1)[1] if isinstance(lb_arn, str) and "loadbalancer/" in lb_arn \
        else f"app/{ctx.name}/{ctx.hex(16, 'lb')}"
    arn = ctx.arn("elasticloadbalancing", f"listener/{lb_part}/{ctx.hex(16)}")
    return {"id": arn, "arn": arn}


def _listener_rule(ctx: ResourceContext) -> dict[str, Any]:
    listener = ctx.inputs.get("listenerArn")
    base = listener.split(":listener/", 1)[1] if isinstance(listener, str) and ":listener/" in listener \
        else f"app/{ctx.name}/{ctx.hex(16, 'lb')}/{ctx.hex(16, 'l')}"
    arn = ctx.arn("elasticloadbalancing", f"listener-rule/{base}/{ctx.hex(16)}")
    return {"id": arn, "arn": arn}


def _secret(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    arn = ctx.arn("secretsmanager", f"secret:{name}-{ctx.hex(6)}")
    return {"id": arn, "arn": arn, "name": name}


def _secret_version(ctx: ResourceContext) -> dict[str, Any]:
    secret_id = str(ctx.inputs.get("secretId") or ctx.arn("secretsmanager", f"secret:{ctx.name}"))
    version = ctx.uuid()
    return {"id": f"{secret_id}|{version}", "arn": secret_id, "versionId": version,
            "versionStages": ["AWSCURRENT"]}


def _fake_secret_text(ctx: ResourceContext) -> str:
    """Obviously fake, deterministic text of the requested length (never a usable password)."""
    length = ctx.int_input("length", 16)
    return ("mock" + ctx.hex(max(length, 1), "result"))[:length]


def _random_password(ctx: ResourceContext) -> dict[str, Any]:
    return {"id": "none", "result": _fake_secret_text(ctx), "bcryptHash": "$2a$10$mock" + ctx.hex(49, "bcrypt")}


def _random_string(ctx: ResourceContext) -> dict[str, Any]:
    result = _fake_secret_text(ctx)
    return {"id": result, "result": result}


def _random_id(ctx: ResourceContext) -> dict[str, Any]:
    hex_ = ctx.hex(2 * ctx.int_input("byteLength", 8), "rid")
    return {"id": hex_, "hex": hex_, "dec": str(int(hex_, 16)), "b64Std": hex_, "b64Url": hex_}


def _iam_named(kind: str, *, id_is_arn: bool = False, unique_prefix: str = "") -> ResourceOutputs:
    """IAM resources (roles, instance profiles, policies, users): global ARNs, no region."""

    def outputs(ctx: ResourceContext) -> dict[str, Any]:
        name = ctx.physical_name()
        path = ctx.inputs.get("path") or "/"
        arn = ctx.arn("iam", f"{kind}{path}{name}", regional=False)
        result: dict[str, Any] = {"id": arn if id_is_arn else name, "arn": arn, "name": name}
        if unique_prefix:
            result["uniqueId"] = unique_prefix + ctx.upper(17)
        return result

    return outputs


def _role_policy_attachment(ctx: ResourceContext) -> dict[str, Any]:
    return {"id": f"{ctx.inputs.get('role') or ctx.name}-{ctx.hex(20)}"}


def _certificate(ctx: ResourceContext) -> dict[str, Any]:
    arn = ctx.arn("acm", f"certificate/{ctx.uuid()}")
    domains: list[str] = []
    for domain in [ctx.inputs.get("domainName"), *(ctx.inputs.get("subjectAlternativeNames") or [])]:
        if isinstance(domain, str) and domain not in domains:
            domains.append(domain)
    options = [{
        "domainName": domain,
        "resourceRecordName": f"_{ctx.hex(32, domain)}.{domain.removeprefix('*.')}.",
        "resourceRecordType": "CNAME",
        "resourceRecordValue": f"_{ctx.hex(32, 'v' + domain)}.mhbtsbpdnt.acm-validations.aws.",
    } for domain in domains]
    return {"id": arn, "arn": arn, "domainValidationOptions": options, "status": "PENDING_VALIDATION"}


def _bucket(ctx: ResourceContext) -> dict[str, Any]:
    bucket = ctx.physical_name("bucket")
    return {
        "id": bucket, "bucket": bucket, "arn": f"arn:{PARTITION}:s3:::{bucket}",
        "bucketDomainName": f"{bucket}.s3.amazonaws.com",
        "bucketRegionalDomainName": f"{bucket}.s3.{ctx.region}.amazonaws.com",
        "hostedZoneId": "Z3AQBSTGFYJSTF", "region": ctx.region,
    }


def _bucket_child(ctx: ResourceContext) -> dict[str, Any]:
    return {"id": str(ctx.inputs.get("bucket") or f"{ctx.name}-id")}


def _log_group(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    return {"id": name, "name": name, "arn": ctx.arn("logs", f"log-group:{name}")}


def _metric_alarm(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    return {"id": name, "name": name, "arn": ctx.arn("cloudwatch", f"alarm:{name}")}


def _dashboard(ctx: ResourceContext) -> dict[str, Any]:
    name = str(ctx.inputs.get("dashboardName") or ctx.name)
    return {"id": name, "dashboardArn": ctx.arn("cloudwatch", f"dashboard/{name}", regional=False)}


def _sns_topic(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    arn = ctx.arn("sns", name)
    return {"id": arn, "arn": arn, "name": name, "owner": ctx.account_id}


def _sns_subscription(ctx: ResourceContext) -> dict[str, Any]:
    topic = ctx.inputs.get("topic")
    arn = f"{topic if isinstance(topic, str) else ctx.arn('sns', ctx.name)}:{ctx.uuid()}"
    return {"id": arn, "arn": arn, "ownerId": ctx.account_id}


def _autoscaling_group(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    arn = ctx.arn("autoscaling", f"autoScalingGroup:{ctx.uuid()}:autoScalingGroupName/{name}")
    return {"id": name, "name": name, "arn": arn}


def _ssm_parameter(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    path = name if name.startswith("/") else f"/{name}"
    return {"id": name, "name": name, "arn": ctx.arn("ssm", f"parameter{path}"), "version": 1}


def _web_acl(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    uid = ctx.uuid()
    scope = "global" if ctx.inputs.get("scope") == "CLOUDFRONT" else "regional"
    return {"id": uid, "name": name, "arn": ctx.arn("wafv2", f"{scope}/webacl/{name}/{uid}"), "capacity": 700}


def _route53_record(ctx: ResourceContext) -> dict[str, Any]:
    name = str(ctx.inputs.get("name") or ctx.name)
    return {"id": f"{ctx.inputs.get('zoneId') or 'Z0MOCK'}_{name}_{ctx.inputs.get('type') or 'A'}", "fqdn": name}


def _route53_zone(ctx: ResourceContext) -> dict[str, Any]:
    zone_id = "Z" + ctx.upper(20)
    return {"id": zone_id, "zoneId": zone_id, "arn": f"arn:{PARTITION}:route53:::hostedzone/{zone_id}",
            "nameServers": [f"ns-{ctx.number(2048, str(i))}.awsdns-{i:02d}.com" for i in range(4)]}


def _lambda_function(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    arn = ctx.arn("lambda", f"function:{name}")
    return {"id": name, "name": name, "arn": arn, "qualifiedArn": f"{arn}:1", "version": "1",
            "invokeArn": f"arn:{PARTITION}:apigateway:{ctx.region}:lambda:path/2015-03-31/functions/{arn}/invocations"}


def _dlm_policy(ctx: ResourceContext) -> dict[str, Any]:
    pid = f"policy-{ctx.hex(17)}"
    return {"id": pid, "arn": ctx.arn("dlm", f"policy/{pid}")}


def _backup_vault(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    return {"id": name, "name": name, "arn": ctx.arn("backup", f"backup-vault:{name}"), "recoveryPoints": 0}


def _backup_plan(ctx: ResourceContext) -> dict[str, Any]:
    plan_id = ctx.uuid()
    return {"id": plan_id, "arn": ctx.arn("backup", f"backup-plan:{plan_id}"), "version": ctx.hex(32, "v")}


def _event_rule(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    return {"id": name, "name": name, "arn": ctx.arn("events", f"rule/{name}")}


def _ssm_document(ctx: ResourceContext) -> dict[str, Any]:
    name = ctx.physical_name()
    return {"id": name, "name": name, "arn": ctx.arn("ssm", f"document/{name}"), "status": "Active",
            "latestVersion": "1", "defaultVersion": "1"}


def _joined_id(*keys: str, separator: str = ",") -> ResourceOutputs:
    """Resources whose id AWS (or the provider) builds from their inputs, e.g. ``<acl arn>,<lb arn>``."""

    def outputs(ctx: ResourceContext) -> dict[str, Any]:
        parts = [str(ctx.inputs.get(key) or f"{ctx.name}-{key}") for key in keys]
        return {"id": separator.join(parts)}

    return outputs


def _provider(ctx: ResourceContext) -> dict[str, Any]:
    return {"id": ctx.uuid()}


def _command(ctx: ResourceContext) -> dict[str, Any]:
    # Nothing runs under the mocks: a command resource has empty output, as in a preview.
    return {"id": f"{ctx.name}-id", "stdout": "", "stderr": ""}


RESOURCE_OUTPUTS: dict[str, ResourceOutputs] = {
    # network
    "aws:ec2/vpc:Vpc": _vpc,
    "aws:ec2/subnet:Subnet": _subnet,
    "aws:ec2/securityGroup:SecurityGroup": _security_group,
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": _ec2("sg", "security-group"),
    "aws:ec2/securityGroupRule:SecurityGroupRule": _ec2("sgrule"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _ec2(
        "sgr", "security-group-rule", securityGroupRuleId=lambda c: c.ec2_id("sgr")),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": _ec2(
        "sgr", "security-group-rule", securityGroupRuleId=lambda c: c.ec2_id("sgr")),
    "aws:ec2/internetGateway:InternetGateway": _ec2("igw", "internet-gateway"),
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway": _ec2("eigw"),
    "aws:ec2/natGateway:NatGateway": _nat_gateway,
    "aws:ec2/eip:Eip": _eip,
    "aws:ec2/routeTable:RouteTable": _ec2("rtb", "route-table"),
    "aws:ec2/defaultRouteTable:DefaultRouteTable": _ec2("rtb", "route-table"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _ec2("rtbassoc"),
    "aws:ec2/route:Route": _ec2("r-rtb"),
    "aws:ec2/networkAcl:NetworkAcl": _ec2("acl", "network-acl"),
    "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl": _ec2("acl", "network-acl"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": _ec2("vpce", "vpc-endpoint"),
    "aws:ec2/flowLog:FlowLog": _ec2("fl", "vpc-flow-log"),
    "aws:ec2/networkInterface:NetworkInterface": _ec2("eni", "network-interface",
                                                      privateIp=lambda c: c.private_ip()),
    # compute
    "aws:ec2/instance:Instance": _instance,
    "aws:ebs/volume:Volume": _ec2("vol", "volume"),
    "aws:ebs/snapshot:Snapshot": _ec2("snap", "snapshot"),
    "aws:ec2/volumeAttachment:VolumeAttachment": _ec2("vai"),
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:ec2/keyPair:KeyPair": _ec2("key", "key-pair"),
    "aws:autoscaling/group:Group": _autoscaling_group,
    "aws:lambda/function:Function": _lambda_function,
    "aws:lambda/permission:Permission": lambda c: {"id": c.physical_name("statementId")},
    "aws:dlm/lifecyclePolicy:LifecyclePolicy": _dlm_policy,
    "aws:backup/vault:Vault": _backup_vault,
    "aws:backup/plan:Plan": _backup_plan,
    "aws:backup/selection:Selection": lambda c: {"id": c.uuid()},
    "aws:cloudwatch/eventRule:EventRule": _event_rule,
    "aws:ssm/document:Document": _ssm_document,
    # data stores
    "aws:rds/instance:Instance": _rds_instance,
    "aws:rds/subnetGroup:SubnetGroup": _rds_named("subgrp"),
    "aws:rds/parameterGroup:ParameterGroup": _rds_named("pg"),
    "aws:rds/optionGroup:OptionGroup": _rds_named("og"),
    "aws:elasticache/replicationGroup:ReplicationGroup": _replication_group,
    "aws:elasticache/subnetGroup:SubnetGroup": _elasticache_named("subnetgroup"),
    "aws:elasticache/parameterGroup:ParameterGroup": _elasticache_named("parametergroup"),
    "aws:s3/bucket:Bucket": _bucket,
    "aws:s3/bucketV2:BucketV2": _bucket,
    "aws:s3/bucketPolicy:BucketPolicy": _bucket_child,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _bucket_child,
    "aws:s3/bucketVersioning:BucketVersioning": _bucket_child,
    "aws:s3/bucketVersioningV2:BucketVersioningV2": _bucket_child,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": _bucket_child,
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2": _bucket_child,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _bucket_child,
    "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2": _bucket_child,
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": _bucket_child,
    "aws:s3/bucketLogging:BucketLogging": _bucket_child,
    "aws:s3/bucketLoggingV2:BucketLoggingV2": _bucket_child,
    # load balancing, TLS, DNS, WAF
    "aws:lb/loadBalancer:LoadBalancer": _load_balancer,
    "aws:alb/loadBalancer:LoadBalancer": _load_balancer,
    "aws:lb/targetGroup:TargetGroup": _target_group,
    "aws:alb/targetGroup:TargetGroup": _target_group,
    "aws:lb/listener:Listener": _listener,
    "aws:alb/listener:Listener": _listener,
    "aws:lb/listenerRule:ListenerRule": _listener_rule,
    "aws:alb/listenerRule:ListenerRule": _listener_rule,
    "aws:acm/certificate:Certificate": _certificate,
    "aws:acm/certificateValidation:CertificateValidation": lambda c: {
        "id": str(c.inputs.get("certificateArn") or f"{c.name}-id")},
    "aws:route53/record:Record": _route53_record,
    "aws:route53/zone:Zone": _route53_zone,
    "aws:wafv2/webAcl:WebAcl": _web_acl,
    "aws:wafv2/webAclAssociation:WebAclAssociation": _joined_id("webAclArn", "resourceArn"),
    # security, secrets, identity
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _kms_alias,
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:secretsmanager/secretVersion:SecretVersion": _secret_version,
    "aws:secretsmanager/secretRotation:SecretRotation": lambda c: {"id": str(c.inputs.get("secretId") or c.name)},
    "aws:iam/role:Role": _iam_named("role", unique_prefix="AROA"),
    "aws:iam/instanceProfile:InstanceProfile": _iam_named("instance-profile", unique_prefix="AIPA"),
    "aws:iam/policy:Policy": _iam_named("policy", id_is_arn=True),
    "aws:iam/user:User": _iam_named("user", unique_prefix="AIDA"),
    "aws:iam/group:Group": _iam_named("group", unique_prefix="AGPA"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _role_policy_attachment,
    "aws:iam/rolePolicy:RolePolicy": lambda c: {
        "id": f"{c.inputs.get('role') or c.name}:{c.physical_name()}", "name": c.physical_name()},
    "aws:ssm/parameter:Parameter": _ssm_parameter,
    # monitoring
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _metric_alarm,
    "aws:cloudwatch/dashboard:Dashboard": _dashboard,
    "aws:sns/topic:Topic": _sns_topic,
    "aws:sns/topicSubscription:TopicSubscription": _sns_subscription,
    "aws:sns/topicPolicy:TopicPolicy": _joined_id("arn"),
    "aws:cloudwatch/eventTarget:EventTarget": _joined_id("rule", "targetId", separator="-"),
    # other providers
    "random:index/randomPassword:RandomPassword": _random_password,
    "random:index/randomString:RandomString": _random_string,
    "random:index/randomId:RandomId": _random_id,
    "random:index/randomUuid:RandomUuid": lambda c: {"id": c.uuid(), "result": c.uuid()},
    "command:local:Command": _command,
    "command:remote:Command": _command,
}


# Services whose ARN service name differs from the SDK module name.
_ARN_SERVICES = {"lb": "elasticloadbalancing", "alb": "elasticloadbalancing", "cloudwatch": "cloudwatch",
                 "vpc": "ec2", "appautoscaling": "application-autoscaling"}


def _generic_outputs(ctx: ResourceContext) -> dict[str, Any]:
    """Outputs for types not in the table: ``<name>-id`` and, for AWS, a plausible ARN."""
    result: dict[str, Any] = {"id": f"{ctx.name}-id"}
    parts = ctx.type.split(":")
    if parts[0] == "aws" and len(parts) == 3:
        module = parts[1].split("/")[0]
        kind = "".join("-" + c.lower() if c.isupper() else c for c in parts[2]).lstrip("-")
        result["arn"] = ctx.arn(_ARN_SERVICES.get(module, module), f"{kind}/{ctx.name}")
    return result


# --------------------------------------------------------------------------------------
# Invokes
# --------------------------------------------------------------------------------------

def _availability_zones(ctx: InvokeContext) -> dict[str, Any]:
    code = _region_code(ctx.region)
    return {"id": ctx.region, "names": [f"{ctx.region}{s}" for s in "abc"],
            "zoneIds": [f"{code}-az{i}" for i in (1, 2, 3)], "groupNames": [ctx.region]}


def _region(ctx: InvokeContext) -> dict[str, Any]:
    region = str(ctx.args.get("region") or ctx.args.get("name") or ctx.region)
    return {"id": region, "name": region, "region": region, "endpoint": f"ec2.{region}.amazonaws.com",
            "description": _REGION_NAMES.get(region, region)}


def _caller_identity(ctx: InvokeContext) -> dict[str, Any]:
    return {"id": ctx.account_id, "accountId": ctx.account_id,
            "arn": f"arn:{PARTITION}:sts::{ctx.account_id}:assumed-role/sarkops-plan/offline",
            "userId": "AROAMOCKSARKOPSPLAN:offline"}


def _partition(ctx: InvokeContext) -> dict[str, Any]:
    return {"id": PARTITION, "partition": PARTITION, "dnsSuffix": "amazonaws.com",
            "reverseDnsPrefix": "com.amazonaws"}


# Owners of the public images the program may look up.
_CANONICAL = "099720109477"
_AMAZON = "137112412989"


def _ami(ctx: InvokeContext) -> dict[str, Any]:
    patterns = [str(v) for f in ctx.args.get("filters") or [] if f.get("name") == "name" for v in f.get("values") or []]
    wanted_arch = [str(v) for f in ctx.args.get("filters") or [] if f.get("name") == "architecture"
                   for v in f.get("values") or []]
    text = " ".join([*patterns, str(ctx.args.get("nameRegex") or "")])
    arm = "arm64" in text or "aarch64" in text or "arm64" in wanted_arch
    arch = "arm64" if arm else "x86_64"
    ubuntu_arch = "arm64" if arm else "amd64"
    volume = "hvm-ssd-gp3" if "gp3" in text else "hvm-ssd"
    release = "jammy-22.04" if "jammy" in text or "22.04" in text else \
        "noble-24.04" if "noble" in text or "24.04" in text else None
    if release:
        name = f"ubuntu/images/{volume}/ubuntu-{release}-{ubuntu_arch}-server-20261101"
        owner, root = _CANONICAL, "/dev/sda1"
    else:
        name, owner, root = f"al2023-ami-2023.9.20261101.0-kernel-6.1-{arch}", _AMAZON, "/dev/xvda"
    image_id = f"ami-0{ctx.hex(16, name)}"
    return {
        "id": image_id, "imageId": image_id, "name": name, "architecture": arch, "ownerId": owner,
        "rootDeviceName": root, "rootDeviceType": "ebs", "virtualizationType": "hvm",
        "creationDate": "2026-11-01T00:00:00.000Z", "state": "available",
        "blockDeviceMappings": [{"deviceName": root, "ebs": {"volumeSize": "8", "volumeType": "gp3",
                                                            "encrypted": "false", "deleteOnTermination": "true"}}],
    }


def _single_or_list(values: Sequence[Any]) -> Any:
    """IAM JSON writes a one-element list as a scalar, as the AWS provider's renderer does."""
    return values[0] if len(values) == 1 else list(values)


def _render_statement(statement: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if statement.get("sid"):
        out["Sid"] = statement["sid"]
    out["Effect"] = statement.get("effect") or "Allow"
    for key, field in (("actions", "Action"), ("notActions", "NotAction"),
                       ("resources", "Resource"), ("notResources", "NotResource")):
        if statement.get(key):
            out[field] = _single_or_list(statement[key])
    for key, field in (("principals", "Principal"), ("notPrincipals", "NotPrincipal")):
        principals = statement.get(key) or []
        if not principals:
            continue
        if any(p.get("type") == "*" for p in principals):
            out[field] = "*"
            continue
        merged: dict[str, list[str]] = {}
        for principal in principals:
            merged.setdefault(str(principal.get("type")), []).extend(principal.get("identifiers") or [])
        out[field] = {kind: _single_or_list(ids) for kind, ids in merged.items()}
    conditions: dict[str, dict[str, Any]] = {}
    for condition in statement.get("conditions") or []:
        values = list(condition.get("values") or [])
        conditions.setdefault(str(condition.get("test")), {})[str(condition.get("variable"))] = _single_or_list(values)
    if conditions:
        out["Condition"] = conditions
    return out


def _merge_statement(statements: list[dict[str, Any]], statement: dict[str, Any]) -> None:
    """Replace the statement with the same Sid, or append."""
    sid = statement.get("Sid")
    for index, existing in enumerate(statements):
        if sid and existing.get("Sid") == sid:
            statements[index] = statement
            return
    statements.append(statement)


def render_policy_document(args: Mapping[str, Any]) -> dict[str, Any]:
    """The IAM policy JSON ``aws.iam.get_policy_document`` would render from its (camelCase) args.

    Statements of ``sourcePolicyDocuments`` come first; statements of
    ``overridePolicyDocuments`` replace ones with the same ``Sid`` (or are appended).
    """
    statements: list[dict[str, Any]] = []
    for source in args.get("sourcePolicyDocuments") or []:
        statements.extend(json.loads(source).get("Statement", []))
    for statement in args.get("statements") or []:
        _merge_statement(statements, _render_statement(statement))
    for override in args.get("overridePolicyDocuments") or []:
        for statement in json.loads(override).get("Statement", []):
            _merge_statement(statements, statement)
    document: dict[str, Any] = {"Version": args.get("version") or "2012-10-17"}
    if args.get("policyId"):
        document["Id"] = args["policyId"]
    document["Statement"] = statements
    return document


def _policy_document(ctx: InvokeContext) -> dict[str, Any]:
    document = render_policy_document(ctx.args)
    text = json.dumps(document, indent=2)
    return {"id": _digest(text)[:10], "json": text, "minifiedJson": json.dumps(document, separators=(",", ":")),
            "statements": ctx.args.get("statements") or []}


def _elb_service_account(ctx: InvokeContext) -> dict[str, Any]:
    region = str(ctx.args.get("region") or ctx.region)
    account = _ELB_ACCOUNTS.get(region)
    if account is None:
        raise UnansweredInvokeError(ctx.token, ctx.args, f"no ELB log-delivery account known for region {region}")
    return {"id": account, "arn": f"arn:{PARTITION}:iam::{account}:root", "region": region}


def _get_vpc(ctx: InvokeContext) -> dict[str, Any]:
    vpc_id = str(ctx.args.get("id") or f"vpc-0{ctx.hex(16)}")
    return {"id": vpc_id, "arn": f"arn:{PARTITION}:ec2:{ctx.region}:{ctx.account_id}:vpc/{vpc_id}",
            "cidrBlock": "10.0.0.0/16", "default": False, "state": "available", "ownerId": ctx.account_id,
            "mainRouteTableId": f"rtb-0{ctx.hex(16, 'rtb')}", "tags": {}}


def _get_subnet(ctx: InvokeContext) -> dict[str, Any]:
    subnet_id = str(ctx.args.get("id") or f"subnet-0{ctx.hex(16)}")
    third = int(_digest(subnet_id)[:4], 16) % 256
    return {"id": subnet_id, "arn": f"arn:{PARTITION}:ec2:{ctx.region}:{ctx.account_id}:subnet/{subnet_id}",
            "cidrBlock": f"10.0.{third}.0/24", "vpcId": str(ctx.args.get("vpcId") or f"vpc-0{ctx.hex(16, 'vpc')}"),
            "availabilityZone": f"{ctx.region}{'abc'[third % 3]}", "mapPublicIpOnLaunch": False,
            "state": "available", "ownerId": ctx.account_id, "tags": {}}


def _get_parameter(ctx: InvokeContext) -> dict[str, Any]:
    name = str(ctx.args.get("name") or "")
    if not name:
        raise UnansweredInvokeError(ctx.token, ctx.args, "no parameter name")
    path = name if name.startswith("/") else f"/{name}"
    # Public AMI parameters (/aws/service/...) resolve to an image id, everything else to marked fake text.
    value = f"ami-0{_digest(name)[:16]}" if "/ami" in name else f"mock-parameter-value{path.replace('/', '-')}"
    return {"id": name, "name": name, "value": value, "insecureValue": value, "type": "String", "version": 1,
            "arn": f"arn:{PARTITION}:ssm:{ctx.region}:{ctx.account_id}:parameter{path}"}


INVOKES: dict[str, InvokeAnswer] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
    "aws:index/getRegion:getRegion": _region,
    "aws:index/getCallerIdentity:getCallerIdentity": _caller_identity,
    "aws:index/getPartition:getPartition": _partition,
    "aws:ec2/getAmi:getAmi": _ami,
    "aws:iam/getPolicyDocument:getPolicyDocument": _policy_document,
    "aws:elb/getServiceAccount:getServiceAccount": _elb_service_account,
    "aws:ec2/getVpc:getVpc": _get_vpc,
    "aws:ec2/getSubnet:getSubnet": _get_subnet,
    "aws:ssm/getParameter:getParameter": _get_parameter,
}


# --------------------------------------------------------------------------------------
# The Mocks implementation
# --------------------------------------------------------------------------------------

class AwsMocks(pulumi.runtime.Mocks):
    """Pulumi mocks answering from :data:`RESOURCE_OUTPUTS` and :data:`INVOKES`.

    ``extra_invokes`` adds or overrides answers for one run (tests use it for data sources
    the shared table should not know). Every invoke is recorded in :attr:`invokes`; an
    invoke without an answer is recorded in :attr:`unanswered` before the error is raised,
    so the harness can report it even if the program catches or wraps the exception.
    """

    def __init__(self, *, region: str = DEFAULT_REGION,
                 extra_invokes: Mapping[str, InvokeAnswer] | None = None) -> None:
        self.region = region
        self.answers: dict[str, InvokeAnswer] = {**INVOKES, **(extra_invokes or {})}
        self.invokes: list[tuple[str, dict[str, Any]]] = []
        self.unanswered: list[UnansweredInvokeError] = []
        self._lock = threading.Lock()  # RPCs arrive on executor threads

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        """Inputs echoed back plus the computed outputs AWS would add."""
        if not args.custom:
            # Components have no provider; the engine echoes their inputs.
            return "", dict(args.inputs)
        ctx = ResourceContext(seed=f"{args.typ}\x00{args.name}", type=args.typ, name=args.name,
                              inputs=_plain(dict(args.inputs)), region=self.region)
        if args.typ.startswith("pulumi:providers:"):
            computed = _provider(ctx)
        else:
            computed = RESOURCE_OUTPUTS.get(args.typ, _generic_outputs)(ctx)
        # Inputs win over computed values: what the program set explicitly is what AWS keeps.
        state = {**computed, **args.inputs}
        return str(computed["id"]), state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        """Answer a data-source call, or raise :class:`UnansweredInvokeError`."""
        call_args = dict(args.args)
        with self._lock:
            self.invokes.append((args.token, call_args))
        answer = self.answers.get(args.token)
        try:
            if answer is None:
                raise UnansweredInvokeError(args.token, call_args)
            ctx = InvokeContext(seed=f"{args.token}\x00{json.dumps(_plain(call_args), sort_keys=True, default=str)}",
                                token=args.token, args=_plain(call_args), region=self.region)
            return answer(ctx)
        except UnansweredInvokeError as error:
            with self._lock:
                self.unanswered.append(error)
            raise
