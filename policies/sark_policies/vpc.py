"""Network rules: the default security group, subnets, flow logs and public ingress."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity, StackValidationArgs

from ._base import Anchors, policies_of, resource_rule, stack_rule
from ._props import as_bool, as_int, as_list
from ._security_groups import ingress_rules, role

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
    anchors=Anchors(checkov=["CKV2_AWS_11"], securityhub=["EC2.6"]),
    needs="TODO",
)
def vpc_has_flow_logs(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every VPC the stack creates records all its traffic in flow logs."""
    flow_logs = [r for r in args.resources if r.resource_type == FLOW_LOG]
    for vpc in (r for r in args.resources if r.resource_type == VPC):
        covering = [
            log for log in flow_logs
            if vpc in log.property_dependencies.get("vpcId", [])
            or (log.props.get("vpcId") is not None and log.props.get("vpcId") == vpc.props.get("id"))
        ]
        if not covering:
            report_violation(f"VPC '{vpc.name}' has no flow log.", vpc.urn)
        elif not any(log.props.get("trafficType") == "ALL" for log in covering):
            report_violation(f"VPC '{vpc.name}' has flow logs, but none records ALL traffic (accepted and "
                             "rejected).", vpc.urn)


@stack_rule(
    "aws-ec2-security-group-disallow-public-ingress", Severity.CRITICAL,
    "No security group accepts traffic from 0.0.0.0/0 or ::/0, except the load balancer on "
    "its public ports.",
    fix="Restrict the rule's source to a security group or private CIDR. Only the load "
        "balancer's security group (tag sark:role=load-balancer) may be public, on tcp/80 "
        "(redirect) and tcp/443.",
    anchors=Anchors(compliance=["aws-ec2-securitygroup-disallow-public-internet-ingress"],
                    checkov=["CKV_AWS_24", "CKV_AWS_25", "CKV_AWS_260", "CKV_AWS_277"],
                    trivy=["AVD-AWS-0107"], securityhub=["EC2.13", "EC2.14", "EC2.18", "EC2.19"],
                    checklist=["Pre-Deployment 1.1 (firewall)", "Pre-Deployment 3.2"]),
    config={
        "publicRole": {"type": "string", "default": "load-balancer",
                       "description": "sark:role tag value of the one security group that may be public."},
        "publicPorts": {"type": "array", "items": {"type": "integer"}, "default": [80, 443],
                        "description": "TCP ports that group may open to the internet."},
    },
    needs="TODO",
)
def no_public_ingress(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Nothing is open to 0.0.0.0/0 or ::/0 except the load balancer's public ports.

    Follows the checklist where anchor rules contradict it: the load balancer is meant to be
    public on 443 and on 80 (the 301 redirect), so compliance-policies'
    ``aws-ec2-securitygroup-disallow-public-internet-ingress`` / ``...-disallow-inbound-http-traffic``
    and Checkov CKV_AWS_260 (which all fire on that group) are ported with the load balancer's
    group (``publicRole``) and ports (``publicPorts``) excepted, not as written.
    """
    config = args.get_config()
    public_role = config.get("publicRole", "load-balancer")
    allowed = {as_int(p) for p in as_list(config.get("publicPorts", [80, 443]))}
    for rule in ingress_rules(args.resources):
        if not rule.is_public:
            continue
        owner = rule.group.name if rule.group is not None else "an unresolved security group"
        world = ", ".join(sorted(c for c in rule.cidrs if c in {"0.0.0.0/0", "::/0"}))
        if role(rule.group) != public_role:
            report_violation(f"'{rule.declared_by.name}' opens {rule.ports()} on {owner} to {world}; only the "
                             f"security group tagged sark:role={public_role} may take traffic from the internet.",
                             rule.declared_by.urn)
        elif rule.protocol != "tcp" or not all(p in allowed for p in range(rule.from_port, rule.to_port + 1)):
            ports = ", ".join(str(p) for p in sorted(p for p in allowed if p is not None))
            report_violation(f"'{rule.declared_by.name}' opens {rule.ports()} on {owner} to {world}; the load "
                             f"balancer may only be public on tcp/{ports}.", rule.declared_by.urn)


POLICIES = policies_of(__name__)
