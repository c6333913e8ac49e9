"""Network rules: the default security group, subnets and flow logs (public ingress: security_groups.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity, StackValidationArgs

from ._base import Anchors, policies_of, resource_rule, stack_rule
from ._graph import refers, undecided
from ._props import as_bool, as_list, known

DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
SUBNET = "aws:ec2/subnet:Subnet"
VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"


def no_public_ip_on_launch(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    """Remediation: stop assigning public addresses on launch (running instances keep theirs)."""
    changed = False
    for key in ("mapPublicIpOnLaunch", "assignIpv6AddressOnCreation"):
        if as_bool(args.props.get(key)):
            args.props[key] = False
            changed = True
    return args.props if changed else None


@resource_rule(
    "aws-ec2-default-security-group-disallow-rules", [DEFAULT_SECURITY_GROUP], Severity.HIGH,
    "The VPC's default security group allows no traffic.",
    fix="Manage the default security group with aws.ec2.DefaultSecurityGroup and pass "
        "ingress=[] and egress=[]; put resources in purpose-built security groups.",
    anchors=Anchors(checkov=["CKV2_AWS_12"], trivy=["AVD-AWS-0173"], securityhub=["EC2.2"]),
)
def default_security_group_has_no_rules(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The VPC's default security group must allow nothing in or out."""
    ingress = len(as_list(args.props.get("ingress")))
    egress = len(as_list(args.props.get("egress")))
    if ingress or egress:
        report_violation(
            f"The default security group has {ingress} ingress and {egress} egress rules; it must have none.", None)


@resource_rule(
    "aws-ec2-subnet-disallow-public-ip-on-launch", [SUBNET], Severity.HIGH,
    "Subnets do not assign public IP addresses to instances on launch.",
    fix="Set map_public_ip_on_launch=False (and assign_ipv6_address_on_creation=False). Hosts "
        "stay private; the load balancer and NAT gateways get addresses explicitly.",
    anchors=Anchors(compliance=["aws-ec2-instance-disallow-public-ip"], trivy=["AVD-AWS-0164"],
                    securityhub=["EC2.15"], checklist=["Pre-Deployment 1.1 (private network access)"]),
    remediate=no_public_ip_on_launch,
)
def subnet_never_assigns_public_ips(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Subnets must not hand out public addresses on launch."""
    if as_bool(args.props.get("mapPublicIpOnLaunch")):
        report_violation("mapPublicIpOnLaunch is true; instances launched here would get a public IPv4 address.",
                         None)
    if as_bool(args.props.get("assignIpv6AddressOnCreation")):
        report_violation("assignIpv6AddressOnCreation is true; instances launched here would be reachable over "
                         "IPv6.", None)


@stack_rule(
    "aws-ec2-vpc-enable-flow-logs", Severity.MEDIUM,
    "Every VPC records all of its traffic in flow logs.",
    fix="Add an aws.ec2.FlowLog with vpc_id=<vpc>.id and traffic_type='ALL' delivering to a "
        "CloudWatch log group with a retention period.",
    needs="the flow logs whose vpcId came from the VPC (property dependency)",
    anchors=Anchors(checkov=["CKV2_AWS_11"], securityhub=["EC2.6"]),
)
def vpc_has_flow_logs(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every VPC the stack creates records all its traffic in flow logs."""
    flow_logs = [r for r in args.resources if r.resource_type == FLOW_LOG]
    for vpc in (r for r in args.resources if r.resource_type == VPC):
        covering = [log for log in flow_logs if refers(log, "vpcId", vpc)]
        if not covering:
            if any(undecided(log, "vpcId") for log in flow_logs):
                continue
            report_violation(f"VPC '{vpc.name}' has no flow log.", vpc.urn)
        elif not any(known(log.props, "trafficType") == "ALL" for log in covering):
            report_violation(f"VPC '{vpc.name}' has flow logs, but none records ALL traffic (accepted and "
                             "rejected).", vpc.urn)


POLICIES = policies_of(__name__)
