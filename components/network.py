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

Routes are separate ``aws.ec2.Route`` resources, never inline ``routes`` of a route table: a
route table with inline routes owns all of its routes, so a route added beside it (the
documented peering route to the monitoring VPC) would be deleted by the next ``pulumi up``
(terraform-provider-aws, ``aws_route_table`` docs: "NOTE on Route Tables and Routes").
Extra routes for the private tiers come from config (``privateRoutes``) as
:class:`PrivateRoute` values.

A host in a private subnet can only install packages once its subnet has a route out: the
NAT gateway, the ``0.0.0.0/0`` route and the subnet's route-table association. Those
resources are exposed per tier (:attr:`Network.app_route_out`, :attr:`Network.data_route_out`)
so the app hosts and the TimescaleDB host can depend on them; otherwise the engine may
launch a host before its route exists, and its first boot fails.

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

ROUTE_TARGET_PROPERTIES: dict[str, str] = {
    "pcx-": "vpc_peering_connection_id",
    "tgw-": "transit_gateway_id",
    "vgw-": "gateway_id",
    "nat-": "nat_gateway_id",
    "eni-": "network_interface_id",
    "vpce-": "vpc_endpoint_id",
}
"""Targets a private route may name, by id prefix, and the ``aws.ec2.Route`` argument each one
goes to. An internet gateway (``igw-``) is not among them: it would make a private subnet public."""


def route_target_property(target_id: str) -> str | None:
    """The ``aws.ec2.Route`` argument for ``target_id``, or None if that kind of target is not allowed."""
    return next((prop for prefix, prop in ROUTE_TARGET_PROPERTIES.items() if target_id.startswith(prefix)), None)


@dataclass(frozen=True, kw_only=True)
class PrivateRoute:
    """A route added to every private (app and data) route table, e.g. to a peered monitoring VPC."""

    destination_cidr: str
    """IPv4 block the route leads to."""

    target_id: str
    """Where it leads: a peering connection, transit gateway, virtual private gateway, ... (see
    :data:`ROUTE_TARGET_PROPERTIES`)."""


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

    private_routes: Sequence[PrivateRoute] = ()
    """Extra routes of the app and data route tables (not possible with ``existing``)."""


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

    app_route_out: list[pulumi.Resource]
    """What gives the app subnets their route to the internet (NAT gateways, default routes,
    route-table associations): hosts there depend on it. Empty for an existing VPC."""

    data_route_out: list[pulumi.Resource]
    """The same for the data subnets (the TimescaleDB host installs its packages at boot)."""

    nat_public_ips: pulumi.Output[list[str]]
    """Public addresses of the NAT gateways: what the internet sees of a host in a private subnet.
    Empty for an existing VPC."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:network:Network", name, None, opts)
        for route in args.private_routes:
            _check_route(name, route, args.vpc_cidr)
        if args.existing is not None and args.private_routes:
            raise pulumi.RunError(f"{name}: private_routes cannot be added to an existing VPC; its owner manages "
                                  "its route tables")
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
            "natPublicIps": self.nat_public_ips,
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
        # The owner of an existing VPC provides the routes; nothing here to wait for.
        self.app_route_out = []
        self.data_route_out = []
        self.nat_public_ips = pulumi.Output.from_input([])

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

        public_rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id, tags={"Name": f"{name}-public-rt"},
                                       opts=child)
        aws.ec2.Route(f"{name}-public-default-route", route_table_id=public_rt.id,
                      destination_cidr_block="0.0.0.0/0", gateway_id=igw.id, opts=child)
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
        eips: list[aws.ec2.Eip] = []
        for zone, public_subnet in zip(nat_zones, subnets["public"], strict=False):
            eip = aws.ec2.Eip(f"{name}-nat-{zone}-eip", domain="vpc", tags={"Name": f"{name}-nat-{zone}"},
                              opts=child)
            eips.append(eip)
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
        route_out: dict[str, list[pulumi.Resource]] = {"app": [], "data": []}
        for tier in ("app", "data"):
            for zone, subnet in zip(zones, subnets[tier], strict=True):
                nat = nats.get(zone) or nats[nat_zones[0]]
                route_table = aws.ec2.RouteTable(f"{name}-{tier}-{zone}-rt", vpc_id=vpc.id,
                                                 tags={"Name": f"{name}-{tier}-{zone}-rt"}, opts=child)
                default_route = aws.ec2.Route(f"{name}-{tier}-{zone}-default-route", route_table_id=route_table.id,
                                              destination_cidr_block="0.0.0.0/0", nat_gateway_id=nat.id, opts=child)
                association = aws.ec2.RouteTableAssociation(f"{name}-{tier}-{zone}-rta", subnet_id=subnet.id,
                                                            route_table_id=route_table.id, opts=child)
                for route in args.private_routes:
                    aws.ec2.Route(
                        f"{name}-{tier}-{zone}-route-{_route_key(route.destination_cidr)}",
                        route_table_id=route_table.id,
                        destination_cidr_block=route.destination_cidr,
                        **{route_target_property(route.target_id) or "": route.target_id},
                        opts=child,
                    )
                private_rts.append(route_table)
                route_out[tier] += [nat, default_route, association]

        self._flow_logs(name, args, vpc)
        self._endpoints(name, args, vpc, subnets["app"], private_rts)

        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        self.availability_zones = list(zones)
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["public"]])
        self.app_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["app"]])
        self.data_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["data"]])
        self.app_subnet_cidrs = pulumi.Output.from_input(cidrs["app"])
        self.app_route_out = _unique(route_out["app"])
        self.data_route_out = _unique(route_out["data"])
        self.nat_public_ips = pulumi.Output.all(*[eip.public_ip for eip in eips])

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


def _route_key(cidr: str) -> str:
    return cidr.replace(".", "-").replace("/", "-")


def _unique(resources: list[pulumi.Resource]) -> list[pulumi.Resource]:
    seen: list[pulumi.Resource] = []
    for resource in resources:
        if not any(resource is known for known in seen):
            seen.append(resource)
    return seen


def _check_route(name: str, route: PrivateRoute, vpc_cidr: str) -> None:
    try:
        destination = ipaddress.IPv4Network(route.destination_cidr, strict=True)
    except ValueError:
        raise pulumi.RunError(f"{name}: private route destination {route.destination_cidr!r} is not allowed; "
                              "expected an IPv4 CIDR block such as 10.60.0.0/16") from None
    if destination.prefixlen == 0 or destination.overlaps(ipaddress.IPv4Network(vpc_cidr)):
        raise pulumi.RunError(f"{name}: private route destination {route.destination_cidr!r} is not allowed; "
                              f"expected a block outside the VPC ({vpc_cidr}) other than 0.0.0.0/0 (the NAT route)")
    if route_target_property(route.target_id) is None:
        raise pulumi.RunError(f"{name}: private route target {route.target_id!r} is not allowed; expected an id "
                              f"starting {', '.join(ROUTE_TARGET_PROPERTIES)}")
