"""EC2 rules for instances, launch templates and launch configurations (anchors section A).

Each rule checks ``aws.ec2.Instance``, ``aws.ec2.LaunchTemplate`` and the legacy
``aws.ec2.LaunchConfiguration`` (the app hosts run from launch templates in Auto Scaling
groups, the TimescaleDB host is an instance; other stacks still launch from configurations),
registered as one policy per resource kind so the names say what they check, as
compliance-policies does. The kinds spell the same settings differently (a launch
configuration spells them as an instance does, except monitoring):

==========================  ================================  ===============================================
setting                     instance / launch configuration   launch template
==========================  ================================  ===============================================
IMDS                        ``metadataOptions``               ``metadataOptions``
public IP                   ``associatePublicIpAddress``      ``networkInterfaces[].associatePublicIpAddress``
volumes                     ``rootBlockDevice``,              ``blockDeviceMappings[].ebs``
                            ``ebsBlockDevices[]``
user data                   ``userData`` (text) or            ``userData`` (base64, possibly gzip)
                            ``userDataBase64``
instance profile            ``iamInstanceProfile``            ``iamInstanceProfile.arn`` / ``.name``
detailed monitoring         ``monitoring`` /                  ``monitoring.enabled``
                            ``enableMonitoring`` (LC)
==========================  ================================  ===============================================

The account-wide ``aws.ec2.InstanceMetadataDefaults``, when a stack sets it, must not
undercut IMDSv2 either.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, Severity

from ._base import ADVISORY, MANDATORY, Anchors, Remediation, ResourceRule, policies_of, resource_rule, settings
from ._props import as_bool, as_int, as_list, as_map, plain_items

INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
LAUNCH_CONFIGURATION = "aws:ec2/launchConfiguration:LaunchConfiguration"
METADATA_DEFAULTS = "aws:ec2/instanceMetadataDefaults:InstanceMetadataDefaults"
KINDS = {INSTANCE: "instance", LAUNCH_TEMPLATE: "launchtemplate", LAUNCH_CONFIGURATION: "launchconfiguration"}
_KIND_PLURALS = {INSTANCE: "EC2 instances", LAUNCH_TEMPLATE: "Launch templates",
                 LAUNCH_CONFIGURATION: "Launch configurations"}

ROLE_TAG = "sark:role"


# --------------------------------------------------------------------------------------
# User data
# --------------------------------------------------------------------------------------

def user_data_text(resource_type: str, props: Mapping[str, Any]) -> str | None:
    """The user data as text: base64 and gzip undone where the resource kind uses them."""
    if resource_type != LAUNCH_TEMPLATE:  # instances and launch configurations: text or userDataBase64
        if isinstance(props.get("userData"), str):
            return props["userData"]
        encoded = props.get("userDataBase64")
    else:
        encoded = props.get("userData")
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return encoded  # not base64 after all: check it as written
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            return raw.decode("utf-8", errors="replace")
    return raw.decode("utf-8", errors="replace")


_ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
_SECRET_ACCESS_KEY = re.compile(r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}", re.IGNORECASE)
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")
# NAME=value / NAME: value / "NAME": "value" where NAME ends in a secret-sounding word and the
# value is literal: references ($VAR, ${VAR}, %(x)s, {{ }}) and ARNs are not secrets.
_ASSIGNMENT = re.compile(
    r"""(?P<name>\b[A-Za-z0-9_]*(?:PASSWORD|PASSWD|TOKEN|SECRET|SECRET_KEY|API_KEY|APIKEY))['"]?"""
    r"""\s*(?:=|:)\s*(?P<quote>\\?['"]?)(?P<value>[^\s'"\\]*)""",
    re.IGNORECASE,
)
_REFERENCE = re.compile(r"^(\$|%\(|\{\{|arn:aws[a-z-]*:secretsmanager:|arn:aws[a-z-]*:ssm:|<)")


def secrets_in(text: str) -> list[str]:
    """What in ``text`` looks like a secret, described without repeating the secret."""
    found: list[str] = []
    if _ACCESS_KEY.search(text):
        found.append("an AWS access key id")
    if _SECRET_ACCESS_KEY.search(text):
        found.append("an AWS secret access key")
    if _PRIVATE_KEY.search(text):
        found.append("a private key")
    names: list[str] = []
    for match in _ASSIGNMENT.finditer(text):
        value = match.group("value")
        if not value or _REFERENCE.match(value) or value.lower() in ("true", "false", "none", "null"):
            continue
        name = match.group("name")
        if name not in names:
            names.append(name)
    if names:
        found.append("literal values for " + ", ".join(names))
    return found


_HOP_LIMIT = {"maxHopLimit": {"type": "integer", "minimum": 1, "maximum": 64, "default": 1,
                             "description": "Largest allowed http_put_response_hop_limit (2 lets containers reach "
                                            "the instance role)."}}



def per_kind(name: str, description: str, severity: Severity, *, fix: str, anchors: Mapping[str, Anchors],
             config: Mapping[str, dict[str, Any]] | None = None, level: EnforcementLevel = MANDATORY,
             remediate: Remediation | None = None) -> Callable[[ResourceRule], ResourceRule]:
    """Declare one resource policy per resource kind in ``anchors`` (instance, launch template,
    launch configuration), named ``aws-ec2-<kind>-<name>``, as compliance-policies names them."""

    def declare(validate: ResourceRule) -> ResourceRule:
        for token, kind_anchors in anchors.items():
            resource_rule(f"aws-ec2-{KINDS[token]}-{name}", [token], severity,
                          description.format(kind=_KIND_PLURALS[token]), fix=fix, anchors=kind_anchors,
                          level=level, config=config, remediate=remediate)(validate)
        return validate

    return declare


# --------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------

def require_imdsv2(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    """Remediation: httpTokens 'required' and the hop limit capped at ``maxHopLimit``.

    Safe to apply: IMDSv2 clients (every current AWS SDK and the CLI) keep working; only
    IMDSv1 requests, which SSRF exploits use, start failing.
    """
    props = args.props
    options = as_map(props.get("metadataOptions"))
    if options.get("httpEndpoint") == "disabled":
        return None
    max_hops = settings(args).int("maxHopLimit")
    hops = as_int(options.get("httpPutResponseHopLimit"))
    wanted = {"httpTokens": "required", "httpPutResponseHopLimit": max_hops if hops is None else min(hops, max_hops)}
    if all(options.get(key) == value for key, value in wanted.items()):
        return None
    props["metadataOptions"] = {**plain_items(props.get("metadataOptions")), **wanted}
    return props


@per_kind(
    "require-imdsv2", "{kind} require IMDSv2 session tokens and a metadata hop limit of 1.", Severity.HIGH,
    fix="Set metadata_options with http_tokens='required' and http_put_response_hop_limit=1.",
    anchors={INSTANCE: Anchors(checkov=["CKV_AWS_79"], trivy=["AVD-AWS-0028"], securityhub=["EC2.8"]),
             LAUNCH_TEMPLATE: Anchors(compliance=["pulumi/compliance-policies#63"],
                                      checkov=["CKV_AWS_79", "CKV_AWS_341"], trivy=["AVD-AWS-0130"],
                                      securityhub=["EC2.170", "AutoScaling.3"]),
             LAUNCH_CONFIGURATION: Anchors(checkov=["CKV_AWS_79", "CKV_AWS_341"], trivy=["AVD-AWS-0130"],
                                           securityhub=["AutoScaling.3"])},
    config=_HOP_LIMIT, remediate=require_imdsv2,
)
def imdsv2_required(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """IMDSv2 only (session tokens required), with a hop limit that keeps containers away from the role."""
    options = as_map(args.props.get("metadataOptions"))
    max_hops = settings(args).int("maxHopLimit")
    if options.get("httpEndpoint") == "disabled":
        return
    if options.get("httpTokens") != "required":
        shown = options.get("httpTokens") or "not set (IMDSv1 stays available)"
        report_violation(f"metadataOptions.httpTokens is {shown}; it must be 'required' (IMDSv2 only).", None)
    hops = as_int(options.get("httpPutResponseHopLimit"))
    if hops is None:
        report_violation(f"metadataOptions.httpPutResponseHopLimit is not set (some AMIs default to 2); it must be "
                         f"at most {max_hops}.", None)
    elif hops > max_hops:
        report_violation(f"metadataOptions.httpPutResponseHopLimit is {hops}; it must be at most {max_hops}.", None)


@per_kind(
    "disallow-public-ip", "{kind} do not get a public IP address.", Severity.HIGH,
    fix="Set associate_public_ip_address=False (on a launch template: in network_interfaces) and keep hosts in "
        "private subnets behind the load balancer.",
    anchors={INSTANCE: Anchors(awsguard=["ec2-instance-no-public-ip"],
                               compliance=["aws-ec2-instance-disallow-public-ip"], checkov=["CKV_AWS_88"],
                               securityhub=["EC2.9"], checklist=["Pre-Deployment 1.1 (private network access)"]),
             LAUNCH_TEMPLATE: Anchors(compliance=["aws-ec2-launchtemplate-disallow-public-ip"], checkov=["CKV_AWS_88"],
                                      securityhub=["EC2.9"], checklist=["Pre-Deployment 1.1 (private network access)"]),
             LAUNCH_CONFIGURATION: Anchors(trivy=["AVD-AWS-0009"], securityhub=["EC2.9"],
                                           checklist=["Pre-Deployment 1.1 (private network access)"])},
)
def no_public_ip(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """No public IPv4 address, stated explicitly rather than left to the subnet's default."""
    if args.resource_type != LAUNCH_TEMPLATE:
        value = as_bool(args.props.get("associatePublicIpAddress"))
        if value is not False:
            state = "true" if value else "not set (the subnet's default decides)"
            report_violation(f"associatePublicIpAddress is {state}; it must be false.", None)
        return
    interfaces = [as_map(i) for i in as_list(args.props.get("networkInterfaces"))]
    if not interfaces:
        report_violation("networkInterfaces is not set, so associatePublicIpAddress is left to the subnet's "
                         "default; declare the interface with associatePublicIpAddress false.", None)
    for index, interface in enumerate(interfaces):
        value = as_bool(interface.get("associatePublicIpAddress"))
        if value is not False:
            state = "true" if value else "not set"
            report_violation(f"networkInterfaces[{index}].associatePublicIpAddress is {state}; it must be false.",
                             None)


@per_kind(
    "disallow-unencrypted-block-device", "{kind} encrypt their root and data volumes.", Severity.HIGH,
    fix="Declare the root device (root_block_device / block_device_mappings[].ebs) with encrypted=True, and "
        "encrypted=True on every other EBS device.",
    anchors={INSTANCE: Anchors(awsguard=["encrypted-volumes"],
                               compliance=["aws-ec2-instance-disallow-unencrypted-root-block-device",
                                           "aws-ec2-instance-disallow-unencrypted-block-device"],
                               checkov=["CKV_AWS_8"], trivy=["AVD-AWS-0131"], securityhub=["EC2.3"]),
             LAUNCH_TEMPLATE: Anchors(compliance=["aws-ec2-launchtemplate-disallow-unencrypted-block-device"],
                                      checkov=["CKV_AWS_8"], trivy=["AVD-AWS-0008"], securityhub=["EC2.3"]),
             LAUNCH_CONFIGURATION: Anchors(checkov=["CKV_AWS_8"], trivy=["AVD-AWS-0008"], securityhub=["EC2.3"])},
)
def volumes_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Root and data volumes are encrypted."""
    if args.resource_type != LAUNCH_TEMPLATE:
        root = as_map(args.props.get("rootBlockDevice"))
        if not root:
            report_violation("rootBlockDevice is not set, so the root volume is encrypted only if the AMI's "
                             "snapshot is; set rootBlockDevice.encrypted true.", None)
        elif as_bool(root.get("encrypted")) is not True:
            report_violation("rootBlockDevice.encrypted is not true.", None)
        for index, device in enumerate(as_list(args.props.get("ebsBlockDevices"))):
            if as_bool(as_map(device).get("encrypted")) is not True:
                name = as_map(device).get("deviceName") or index
                report_violation(f"ebsBlockDevices[{index}] ({name}) is not encrypted.", None)
        return
    mappings = [as_map(m) for m in as_list(args.props.get("blockDeviceMappings"))]
    with_ebs = [m for m in mappings if as_map(m.get("ebs"))]
    if not with_ebs:
        report_violation("blockDeviceMappings has no EBS volume, so the root volume is encrypted only if the AMI's "
                         "snapshot is; map the root device with ebs.encrypted true.", None)
    for index, mapping in enumerate(mappings):
        ebs = as_map(mapping.get("ebs"))
        if ebs and as_bool(ebs.get("encrypted")) is not True:
            report_violation(f"blockDeviceMappings[{index}] ({mapping.get('deviceName') or 'no device name'}) "
                             "ebs.encrypted is not true.", None)


@per_kind(
    "disallow-secrets-in-user-data", "{kind} carry no secrets in user data.", Severity.CRITICAL,
    fix="Remove the value from user data; store it in Secrets Manager and let the host read it at start with its "
        "instance role (see sark-render-env).",
    anchors={INSTANCE: Anchors(checkov=["CKV_AWS_46"], trivy=["AVD-AWS-0029"], checklist=["Pre-Deployment 2.1"]),
             LAUNCH_TEMPLATE: Anchors(checkov=["CKV_AWS_46"], trivy=["AVD-AWS-0129"], checklist=["Pre-Deployment 2.1"]),
             LAUNCH_CONFIGURATION: Anchors(checkov=["CKV_AWS_46"], checklist=["Pre-Deployment 2.1"])},
)
def no_secrets_in_user_data(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """User data is readable by anyone with ec2:DescribeInstanceAttribute and from the instance: no secrets."""
    text = user_data_text(args.resource_type, args.props)
    if text is None:
        return
    for finding in secrets_in(text):
        report_violation(f"userData contains {finding}; hosts must read secrets from Secrets Manager at start.",
                         None)


@per_kind(
    "require-instance-profile", "{kind} have an instance profile.", Severity.LOW, level=ADVISORY,
    fix="Attach an instance profile whose role has AmazonSSMManagedInstanceCore and reads only this stack's "
        "secrets and parameters.",
    anchors={token: Anchors(checkov=["CKV2_AWS_41"], securityhub=["SSM.1"]) for token in KINDS},
)
def instance_profile_attached(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Hosts have an instance profile (SSM management, CloudWatch agent, reading their secrets)."""
    profile = args.props.get("iamInstanceProfile")
    if args.resource_type == LAUNCH_TEMPLATE:
        block = as_map(profile)
        profile = block.get("arn") or block.get("name")
    if not profile:
        report_violation("iamInstanceProfile is not set; the host cannot be managed through SSM or read its "
                         "configuration.", None)


@per_kind(
    "enable-detailed-monitoring", "{kind} have detailed (one-minute) CloudWatch monitoring.", Severity.LOW,
    level=ADVISORY,
    fix="Set monitoring=True (a launch template: monitoring.enabled=True; a launch configuration: leave "
        "enable_monitoring at its default, True).",
    anchors={INSTANCE: Anchors(awsguard=["ec2-instance-detailed-monitoring-enabled"], checkov=["CKV_AWS_126"],
                               checklist=["Pre-Deployment 3.3 (alerting rules)"]),
             LAUNCH_TEMPLATE: Anchors(checkov=["CKV_AWS_126"], checklist=["Pre-Deployment 3.3 (alerting rules)"]),
             LAUNCH_CONFIGURATION: Anchors(checklist=["Pre-Deployment 3.3 (alerting rules)"])},
)
def detailed_monitoring(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """One-minute CloudWatch metrics, so alarms and scaling react within minutes."""
    if args.resource_type == LAUNCH_TEMPLATE:
        if as_bool(as_map(args.props.get("monitoring")).get("enabled")) is not True:
            report_violation("monitoring.enabled is not true; instances would report metrics every 5 minutes only.",
                             None)
    elif args.resource_type == LAUNCH_CONFIGURATION:
        if as_bool(args.props.get("enableMonitoring")) is False:  # a launch configuration's default is true
            report_violation("enableMonitoring is false; instances would report metrics every 5 minutes only.", None)
    elif as_bool(args.props.get("monitoring")) is not True:
        report_violation("monitoring is not true; the instance would report metrics every 5 minutes only.", None)


@resource_rule(
    "aws-ec2-instance-metadata-defaults-require-imdsv2", [METADATA_DEFAULTS], Severity.HIGH,
    "Account-wide instance metadata defaults, where a stack sets them, require IMDSv2.",
    fix="Set http_tokens='required' and http_put_response_hop_limit=1 (or leave the hop limit at -1, no "
        "preference).",
    anchors=Anchors(checkov=["CKV_AWS_79"], securityhub=["EC2.8", "EC2.170"]), config=_HOP_LIMIT,
)
def metadata_defaults_imdsv2(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Account-wide IMDS defaults, where a stack sets them, require session tokens."""
    props = args.props
    if props.get("httpEndpoint") == "disabled":
        return
    tokens = props.get("httpTokens")
    if tokens != "required":
        shown = tokens or "not set (no-preference: each AMI decides)"
        report_violation(f"httpTokens is {shown}; account defaults must be 'required' (IMDSv2 only).", None)
    max_hops = settings(args).int("maxHopLimit")
    hops = as_int(props.get("httpPutResponseHopLimit"))
    if hops is not None and hops > max_hops:
        report_violation(f"httpPutResponseHopLimit is {hops}; it must be at most {max_hops}.", None)


@resource_rule(
    "aws-ec2-instance-enable-termination-protection", [INSTANCE], Severity.MEDIUM,
    "Database hosts (sark:role timescale) have termination protection.",
    fix="Set disable_api_termination=True on the instance; turn it off deliberately before a planned replacement.",
    anchors=Anchors(checklist=["Pre-Deployment 1.2 (TimescaleDB)"]),
    config={"roles": {"type": "array", "items": {"type": "string"}, "default": ["timescale"],
                      "description": "sark:role tag values whose instances hold data."}},
)
def termination_protection(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Database hosts cannot be terminated through the API by accident."""
    roles = settings(args).strings("roles")
    role = as_map(args.props.get("tags")).get(ROLE_TAG)
    if role in roles and as_bool(args.props.get("disableApiTermination")) is not True:
        report_violation(f"Instance tagged {ROLE_TAG}={role} has disableApiTermination unset or false; it must be "
                         "true.", None)


POLICIES = policies_of(__name__)
