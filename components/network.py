"""The stack's network: a three-tier VPC, or an existing VPC brought in by id.

Creates (when no existing VPC is given):
- a VPC with DNS support, spread over ``az_count`` availability zones;
- per zone a *public* subnet (load balancer, NAT gateway), a private *app* subnet (SARK
  hosts, outbound through NAT) and a private *data* subnet (RDS, ElastiCache, TimescaleDB;
  unreachable from the internet, outbound through NAT only for the TimescaleDB host's
  package installs);
- an internet gateway, a NAT gateway with an Elastic IP per zone (or one shared NAT when
  ``single_nat_gateway`` is set, for cheaper non-production stacks), and route tables;
- VPC flow logs of all traffic to a CloudWatch log group with a retention period,
  encrypted with the stack key;
- the VPC's default security group, taken over and stripped of every rule, so nothing
  that lands in it by accident can talk to anything;
- interface endpoints for SSM (with ssmmessages/ec2messages for Session Manager), Secrets
  Manager, CloudWatch Logs and CloudWatch metrics, and a gateway endpoint for S3, so hosts
  in the app and data subnets need neither a public IP nor, for AWS APIs, the NAT.

No subnet assigns public IPs on launch, the public ones included: only the load balancer
and the NAT gateways live there, and they get their addresses explicitly.

With ``existing`` set, nothing above is created; the component only exposes the given ids
(flow logs, endpoints and the default security group then belong to the VPC's owner).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._iam import assume_role_policy

# Interface endpoints the hosts need so that SSM, secrets and logs work without a public IP.
INTERFACE_ENDPOINT_SERVICES: tuple[str, ...] = (
    "ssm", "ssmmessages", "ec2messages", "secretsmanager", "logs", "monitoring",
)
TIERS: tuple[str, ...] = ("public", "app", "data")


@dataclass(frozen=True, kw_only=True)
class ExistingVpc:
    """Ids of a VPC and its subnets that already exist."""

    vpc_id: str
    """The VPC to deploy into."""

    public_subnet_ids: Sequence[str]
    """Subnets with a route to an internet gateway, for the load balancer."""

    app_subnet_ids: Sequence[str]
    """Private subnets with outbound internet access (NAT), for the app hosts."""

    data_subnet_ids: Sequence[str]
    """Private subnets for the databases and the cache."""


@dataclass(frozen=True, kw_only=True)
class NetworkArgs:
    """Arguments of :class:`Network`."""

    region: str
    """AWS region; names the VPC endpoint services."""

    vpc_cidr: str = "10.40.0.0/16"
    """IPv4 block of the VPC; each tier gets a quarter of it, split evenly across zones."""

    az_count: int = 3
    """Availability zones to spread over; at least 2, so losing one zone leaves the stack running."""

    single_nat_gateway: bool = False
    """Share one NAT gateway between zones: cheaper, but an outage of its zone cuts every
    app host off from the internet. Meant for non-production stacks."""

    flow_log_retention_days: int = 90
    """Days VPC flow logs are kept."""

    kms_key_arn: pulumi.Input[str] | None = None
    """Key that encrypts the flow log group; None leaves CloudWatch's own encryption."""

    existing: ExistingVpc | None = None
    """Use this VPC instead of creating one."""


def subnet_cidrs(vpc_cidr: str, az_count: int) -> dict[str, list[str]]:
    """Carve the VPC block into per-tier, per-zone subnets.

    The block is cut into 16 equal pieces; each tier owns 4 consecutive ones (public 0-3,
    app 4-7, data 8-11), so adding a zone later never renumbers an existing subnet. 12-15
    are left for future tiers.
    """
    if not 2 <= az_count <= 4:
        raise ValueError(f"az_count must be from 2 to 4, got {az_count}")
    network = ipaddress.IPv4Network(vpc_cidr)
    pieces = list(network.subnets(prefixlen_diff=4))
    return {tier: [str(pieces[4 * index + zone]) for zone in range(az_count)] for index, tier in enumerate(TIERS)}


class Network(pulumi.ComponentResource):
    """A VPC with public, app and data subnets in several zones."""

    vpc_id: pulumi.Output[str]
    """Id of the VPC."""

    vpc_cidr: pulumi.Output[str]
    """IPv4 block of the VPC."""

    availability_zones: list[str]
    """Zones the subnets are in (empty for an existing VPC)."""

    public_subnet_ids: pulumi.Output[list[str]]
    """Subnets for the internet-facing load balancer."""

    app_subnet_ids: pulumi.Output[list[str]]
    """Private subnets for the app hosts."""

    data_subnet_ids: pulumi.Output[list[str]]
    """Isolated subnets for RDS, ElastiCache and the TimescaleDB host."""

    app_subnet_cidrs: pulumi.Output[list[str]]
    """IPv4 blocks of the app subnets (for host-level allow lists such as pg_hba.conf)."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:network:Network", name, None, opts)
        if args.existing is not None:
            self._adopt(name, args.existing)
        else:
            self._create(name, args)
        self.register_outputs({
            "vpcId": self.vpc_id,
            "vpcCidr": self.vpc_cidr,
            "publicSubnetIds": self.public_subnet_ids,
            "appSubnetIds": self.app_subnet_ids,
            "dataSubnetIds": self.data_subnet_ids,
            "appSubnetCidrs": self.app_subnet_cidrs,
        })

    def _adopt(self, name: str, existing: ExistingVpc) -> None:
        vpc = aws.ec2.get_vpc_output(id=existing.vpc_id, opts=pulumi.InvokeOutputOptions(parent=self))
        self.vpc_id = pulumi.Output.from_input(existing.vpc_id)
        self.vpc_cidr = vpc.cidr_block
        self.availability_zones = []
        self.public_subnet_ids = pulumi.Output.from_input(list(existing.public_subnet_ids))
        self.app_subnet_ids = pulumi.Output.from_input(list(existing.app_subnet_ids))
        self.data_subnet_ids = pulumi.Output.from_input(list(existing.data_subnet_ids))
        self.app_subnet_cidrs = pulumi.Output.all(*[
            aws.ec2.get_subnet_output(id=subnet_id, opts=pulumi.InvokeOutputOptions(parent=self)).cidr_block
            for subnet_id in existing.app_subnet_ids
        ])

    def _create(self, name: str, args: NetworkArgs) -> None:
        child = pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones(
            state="available",
            filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
            opts=pulumi.InvokeOptions(parent=self),
        ).names
        if len(zones) < args.az_count:
            raise pulumi.RunError(
                f"{name}: region {args.region} offers {len(zones)} availability zones, "
                f"{args.az_count} were asked for (availabilityZoneCount)"
            )
        zones = zones[: args.az_count]
        cidrs = subnet_cidrs(args.vpc_cidr, args.az_count)

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": f"{name}-vpc"},
            opts=child,
        )
        # Taking over the default security group with no rules revokes AWS's allow-all
        # defaults (CIS 5.4 / Security Hub EC2.2).
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=vpc.id, ingress=[], egress=[],
            tags={"Name": f"{name}-default-sg-unused"}, opts=child,
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={"Name": f"{name}-igw"}, opts=child)

        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={"Name": f"{name}-public-rt"}, opts=child,
        )
        subnets: dict[str, list[aws.ec2.Subnet]] = {tier: [] for tier in TIERS}
        for tier in TIERS:
            for zone, cidr in zip(zones, cidrs[tier], strict=True):
                subnet = aws.ec2.Subnet(
                    f"{name}-{tier}-{zone}",
                    vpc_id=vpc.id,
                    cidr_block=cidr,
                    availability_zone=zone,
                    map_public_ip_on_launch=False,
                    tags={"Name": f"{name}-{tier}-{zone}", "sark:tier": tier},
                    opts=child,
                )
                subnets[tier].append(subnet)
        for zone, subnet in zip(zones, subnets["public"], strict=True):
            aws.ec2.RouteTableAssociation(f"{name}-public-{zone}-rta", subnet_id=subnet.id,
                                          route_table_id=public_rt.id, opts=child)

        nat_zones = zones[:1] if args.single_nat_gateway else zones
        nats: dict[str, aws.ec2.NatGateway] = {}
        for zone, public_subnet in zip(nat_zones, subnets["public"], strict=False):
            eip = aws.ec2.Eip(f"{name}-nat-{zone}-eip", domain="vpc", tags={"Name": f"{name}-nat-{zone}"},
                              opts=child)
            nats[zone] = aws.ec2.NatGateway(
                f"{name}-nat-{zone}", allocation_id=eip.allocation_id, subnet_id=public_subnet.id,
                tags={"Name": f"{name}-nat-{zone}"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
            )
        # Data subnets route outbound through NAT too: the TimescaleDB host installs its
        # packages at boot. Nothing routes *in* from the internet (no internet gateway route,
        # no public IPs), and the data tier's security groups allow no egress except where a
        # host needs it, so RDS and ElastiCache stay unreachable from outside.
        private_rts: list[aws.ec2.RouteTable] = []
        for tier in ("app", "data"):
            for zone, subnet in zip(zones, subnets[tier], strict=True):
                nat = nats.get(zone) or nats[nat_zones[0]]
                route_table = aws.ec2.RouteTable(
                    f"{name}-{tier}-{zone}-rt", vpc_id=vpc.id,
                    routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                    tags={"Name": f"{name}-{tier}-{zone}-rt"}, opts=child,
                )
                aws.ec2.RouteTableAssociation(f"{name}-{tier}-{zone}-rta", subnet_id=subnet.id,
                                              route_table_id=route_table.id, opts=child)
                private_rts.append(route_table)

        self._flow_logs(name, args, vpc)
        self._endpoints(name, args, vpc, subnets["app"], private_rts)

        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        self.availability_zones = list(zones)
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["public"]])
        self.app_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["app"]])
        self.data_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["data"]])
        self.app_subnet_cidrs = pulumi.Output.from_input(cidrs["app"])

    def _flow_logs(self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc) -> None:
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/sark/{name}/vpc-flow-logs",
            retention_in_days=args.flow_log_retention_days,
            kms_key_id=args.kms_key_arn,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs-role",
            assume_role_policy=assume_role_policy("vpc-flow-logs.amazonaws.com"),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-policy",
            role=role.id,
            policy=log_group.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    "Resource": [arn, f"{arn}:*"],
                }],
            })),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags={"Name": f"{name}-flow-log"},
            opts=child,
        )

    def _endpoints(self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc, app_subnets: list[aws.ec2.Subnet],
                   route_tables: list[aws.ec2.RouteTable]) -> None:
        child = pulumi.ResourceOptions(parent=self)
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            vpc_id=vpc.id,
            description="HTTPS from inside the VPC to the AWS API endpoints",
            tags={"Name": f"{name}-endpoints-sg", "sark:role": "vpc-endpoints"},
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-endpoints-https",
            security_group_id=endpoint_sg.id,
            description="HTTPS from the VPC",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4=vpc.cidr_block,
            opts=child,
        )
        for service in INTERFACE_ENDPOINT_SERVICES:
            aws.ec2.VpcEndpoint(
                f"{name}-{service}-endpoint",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{args.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in app_subnets],
                security_group_ids=[endpoint_sg.id],
                tags={"Name": f"{name}-{service}"},
                opts=child,
            )
        aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in route_tables],
            tags={"Name": f"{name}-s3"},
            opts=child,
        )
