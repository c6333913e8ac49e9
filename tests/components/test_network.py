"""Network, StackKey and SecurityGroups: security invariants on the recorded inputs."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

import pulumi
import pytest

from components.kms import StackKey, StackKeyArgs
from components.network import (
    INTERFACE_ENDPOINT_SERVICES,
    ExistingVpc,
    Network,
    NetworkArgs,
    PrivateRoute,
    subnet_cidrs,
)
from components.security_groups import SecurityGroups, SecurityGroupsArgs
from sarkops.plan.runtime import Recording

Record = Callable[..., Recording]


def _network(record: Record, **overrides: object) -> Recording:
    args = NetworkArgs(**{"region": "us-east-1", "kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/k",
                          **overrides})
    return record(lambda: Network("net", args), {"aws:region": "us-east-1"})


def _routes(rec: Recording, table: object) -> list[dict]:
    """The routes of a route table: separate Route resources pointing at it."""
    table_id = table.outputs["id"]  # type: ignore[attr-defined]
    return [r.inputs for r in rec.by_type("aws:ec2/route:Route") if r.inputs["routeTableId"] == table_id]


def _tier(rec: Recording, tier: str) -> list:
    return [s for s in rec.by_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["sark:tier"] == tier]


def test_subnet_cidrs_are_disjoint_and_inside_the_vpc() -> None:
    cidrs = subnet_cidrs("10.40.0.0/16", 3)
    networks = [ipaddress.ip_network(c) for tier in cidrs.values() for c in tier]
    assert len(networks) == 9
    assert all(n.subnet_of(ipaddress.ip_network("10.40.0.0/16")) for n in networks)
    assert all(not a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1:])
    # Adding a zone later must not renumber the existing subnets.
    four = subnet_cidrs("10.40.0.0/16", 4)
    assert all(four[tier][:3] == cidrs[tier] for tier in cidrs)


def test_subnet_cidrs_reject_unsupported_zone_counts() -> None:
    with pytest.raises(ValueError, match="az_count must be from 2 to 4, got 5"):
        subnet_cidrs("10.40.0.0/16", 5)


def test_three_tiers_in_three_zones_and_no_public_ips(record: Record) -> None:
    rec = _network(record)
    for tier in ("public", "app", "data"):
        subnets = _tier(rec, tier)
        assert sorted(s.inputs["availabilityZone"] for s in subnets) == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in rec.by_type("aws:ec2/subnet:Subnet"))


def test_children_are_parented_and_named_from_the_component(record: Record) -> None:
    rec = _network(record)
    component = rec.one("sark:network:Network")
    children = [r for r in rec.resources if r.parent == component.urn]
    assert len(children) == len(rec.resources) - 1
    assert all(r.name.startswith("net-") for r in children)


def test_nat_gateway_per_zone_and_private_routes_through_own_zone(record: Record) -> None:
    rec = _network(record)
    nats = rec.by_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 3
    public_ids = {s.outputs["id"] for s in _tier(rec, "public")}
    assert {n.inputs["subnetId"] for n in nats} == public_ids
    for zone in ("us-east-1a", "us-east-1b", "us-east-1c"):
        for tier in ("app", "data"):
            table = rec.one("aws:ec2/routeTable:RouteTable", f"net-{tier}-{zone}-rt")
            (route,) = _routes(rec, table)
            assert route["destinationCidrBlock"] == "0.0.0.0/0"
            assert route["natGatewayId"] == rec.one("aws:ec2/natGateway:NatGateway", f"net-nat-{zone}").outputs["id"]
            assert "gatewayId" not in route


def test_only_public_subnets_route_to_the_internet_gateway(record: Record) -> None:
    rec = _network(record)
    igw_id = rec.one("aws:ec2/internetGateway:InternetGateway").outputs["id"]
    tables = {t.outputs["id"]: t for t in rec.by_type("aws:ec2/routeTable:RouteTable")}
    for assoc in rec.by_type("aws:ec2/routeTableAssociation:RouteTableAssociation"):
        subnet = next(s for s in rec.by_type("aws:ec2/subnet:Subnet") if s.outputs["id"] == assoc.inputs["subnetId"])
        routes_to_igw = any(r.get("gatewayId") == igw_id for r in _routes(rec, tables[assoc.inputs["routeTableId"]]))
        assert routes_to_igw == (subnet.inputs["tags"]["sark:tier"] == "public"), subnet.name


def test_single_nat_gateway_is_shared(record: Record) -> None:
    rec = _network(record, single_nat_gateway=True)
    (nat,) = rec.by_type("aws:ec2/natGateway:NatGateway")
    routes = [r.inputs for r in rec.by_type("aws:ec2/route:Route") if "natGatewayId" in r.inputs]
    assert len(routes) == 6
    assert {r["natGatewayId"] for r in routes} == {nat.outputs["id"]}


def test_no_route_table_declares_inline_routes(record: Record) -> None:
    # Inline routes own the whole table: a separately added route (the peering route) would be
    # deleted by the next update.
    rec = _network(record, private_routes=[PrivateRoute(destination_cidr="10.60.0.0/16",
                                                        target_id="pcx-0123456789abcdef0")])
    tables = rec.by_type("aws:ec2/routeTable:RouteTable")
    assert len(tables) == 7
    assert [t.name for t in tables if t.inputs.get("routes")] == []


def test_private_routes_go_to_every_private_table_and_never_the_public_one(record: Record) -> None:
    rec = _network(record, private_routes=[
        PrivateRoute(destination_cidr="10.60.0.0/16", target_id="pcx-0123456789abcdef0"),
        PrivateRoute(destination_cidr="172.16.0.0/12", target_id="tgw-0123456789abcdef0")])
    for table in rec.by_type("aws:ec2/routeTable:RouteTable"):
        extra = {r["destinationCidrBlock"]: r for r in _routes(rec, table) if r["destinationCidrBlock"] != "0.0.0.0/0"}
        if table.name == "net-public-rt":
            assert extra == {}
            continue
        assert extra["10.60.0.0/16"]["vpcPeeringConnectionId"] == "pcx-0123456789abcdef0"
        assert extra["172.16.0.0/12"]["transitGatewayId"] == "tgw-0123456789abcdef0"
        assert set(extra) == {"10.60.0.0/16", "172.16.0.0/12"}


@pytest.mark.parametrize(("route", "message"), [
    (PrivateRoute(destination_cidr="10.60.0.0/16", target_id="igw-0123456789abcdef0"),
     "net: private route target 'igw-0123456789abcdef0' is not allowed; expected an id starting pcx-, tgw-, vgw-, "
     "nat-, eni-, vpce-"),
    (PrivateRoute(destination_cidr="10.40.8.0/24", target_id="pcx-0123456789abcdef0"),
     "net: private route destination '10.40.8.0/24' is not allowed; expected a block outside the VPC (10.40.0.0/16) "
     "other than 0.0.0.0/0 (the NAT route)"),
    (PrivateRoute(destination_cidr="10.60.0.1/16", target_id="pcx-0123456789abcdef0"),
     "net: private route destination '10.60.0.1/16' is not allowed; expected an IPv4 CIDR block such as "
     "10.60.0.0/16"),
])
def test_bad_private_routes_are_named(record: Record, route: PrivateRoute, message: str) -> None:
    with pytest.raises(pulumi.RunError) as raised:
        _network(record, private_routes=[route])
    assert str(raised.value) == message


def test_private_routes_are_refused_for_an_existing_vpc(record: Record) -> None:
    existing = ExistingVpc(vpc_id="vpc-0123456789abcdef0", public_subnet_ids=["subnet-0a", "subnet-0b"],
                           app_subnet_ids=["subnet-1a", "subnet-1b"], data_subnet_ids=["subnet-2a", "subnet-2b"])
    with pytest.raises(pulumi.RunError, match="net: private_routes cannot be added to an existing VPC"):
        _network(record, existing=existing, private_routes=[
            PrivateRoute(destination_cidr="10.60.0.0/16", target_id="pcx-0123456789abcdef0")])


def test_route_out_holds_each_private_subnets_nat_route_and_association(record: Record) -> None:
    holder: dict[str, Network] = {}

    def program() -> None:
        holder["net"] = Network("net", NetworkArgs(region="us-east-1", kms_key_arn="k"))

    record(program, {"aws:region": "us-east-1"})
    net = holder["net"]
    for tier, resources in (("app", net.app_route_out), ("data", net.data_route_out)):
        names = sorted(r.pulumi_resource_name for r in resources)
        assert names == sorted([*(f"net-nat-{zone}" for zone in ("us-east-1a", "us-east-1b", "us-east-1c")),
                                *(f"net-{tier}-{zone}-default-route" for zone in ("us-east-1a", "us-east-1b",
                                                                                  "us-east-1c")),
                                *(f"net-{tier}-{zone}-rta" for zone in ("us-east-1a", "us-east-1b", "us-east-1c"))])


def test_default_security_group_is_stripped(record: Record) -> None:
    rec = _network(record)
    default = rec.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default.inputs["ingress"] == []
    assert default.inputs["egress"] == []
    assert default.inputs["vpcId"] == rec.one("aws:ec2/vpc:Vpc").outputs["id"]


def test_flow_logs_capture_all_traffic_with_retention_and_encryption(record: Record) -> None:
    rec = _network(record, flow_log_retention_days=120)
    flow = rec.one("aws:ec2/flowLog:FlowLog")
    log_group = rec.one("aws:cloudwatch/logGroup:LogGroup")
    assert flow.inputs["trafficType"] == "ALL"
    assert flow.inputs["vpcId"] == rec.one("aws:ec2/vpc:Vpc").outputs["id"]
    assert flow.inputs["logDestination"] == log_group.outputs["arn"]
    assert log_group.inputs["retentionInDays"] == 120
    assert log_group.inputs["kmsKeyId"] == "arn:aws:kms:us-east-1:123456789012:key/k"
    policy = json.loads(rec.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    (statement,) = policy["Statement"]
    assert statement["Resource"] == [log_group.outputs["arn"], log_group.outputs["arn"] + ":*"]
    trust = json.loads(rec.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}


def test_endpoints_let_private_hosts_reach_aws_without_public_ips(record: Record) -> None:
    rec = _network(record)
    endpoints = {e.inputs["serviceName"]: e for e in rec.by_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    for service in (*INTERFACE_ENDPOINT_SERVICES, "s3"):
        assert f"com.amazonaws.us-east-1.{service}" in endpoints
    app_ids = sorted(s.outputs["id"] for s in _tier(rec, "app"))
    for service in INTERFACE_ENDPOINT_SERVICES:
        endpoint = endpoints[f"com.amazonaws.us-east-1.{service}"]
        assert endpoint.inputs["vpcEndpointType"] == "Interface"
        assert endpoint.inputs["privateDnsEnabled"] is True
        assert sorted(endpoint.inputs["subnetIds"]) == app_ids
    s3 = endpoints["com.amazonaws.us-east-1.s3"]
    assert s3.inputs["vpcEndpointType"] == "Gateway"
    assert len(s3.inputs["routeTableIds"]) == 6
    (https,) = rec.by_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert (https.inputs["fromPort"], https.inputs["toPort"], https.inputs["cidrIpv4"]) == (443, 443, "10.40.0.0/16")


def test_too_few_zones_in_region_is_a_clear_error(record: Record) -> None:
    with pytest.raises(Exception, match=r"offers 3 availability zones, 4 were asked for \(availabilityZoneCount\)"):
        _network(record, az_count=4)


def test_existing_vpc_creates_nothing(record: Record) -> None:
    existing = ExistingVpc(vpc_id="vpc-0123456789abcdef0",
                           public_subnet_ids=["subnet-0a", "subnet-0b"],
                           app_subnet_ids=["subnet-1a", "subnet-1b"],
                           data_subnet_ids=["subnet-2a", "subnet-2b"])
    rec = _network(record, existing=existing)
    assert [r.type for r in rec.resources] == ["sark:network:Network"]
    outputs = rec.one("sark:network:Network").outputs
    assert outputs["vpcId"] == "vpc-0123456789abcdef0"
    assert outputs["appSubnetIds"] == ["subnet-1a", "subnet-1b"]
    assert all(ipaddress.ip_network(c) for c in outputs["appSubnetCidrs"])


def test_stack_key_rotates_is_protected_and_scopes_log_access(record: Record) -> None:
    rec = record(lambda: StackKey("sark-test", StackKeyArgs(region="eu-west-1")), {"aws:region": "eu-west-1"})
    key = rec.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["deletionWindowInDays"] == 30
    assert key.protect is True
    policy = json.loads(key.inputs["policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    logs = by_sid["CloudWatchLogsEncryptsThisAccountsLogGroups"]
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == "arn:aws:logs:eu-west-1:123456789012:*"
    assert by_sid["AccountIamPoliciesGovernUse"]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert rec.one("aws:kms/alias:Alias").inputs["name"] == "alias/sark-test"


def _firewall(record: Record, **overrides: object) -> Recording:
    args = SecurityGroupsArgs(**{"vpc_id": "vpc-1", "monitoring_cidrs": ["10.60.0.0/24"], **overrides})
    return record(lambda: SecurityGroups("fw", args))


def _rules(rec: Recording, kind: str) -> list[dict]:
    groups = {g.outputs["id"]: g.inputs["tags"]["sark:role"]
              for g in rec.by_type("aws:ec2/securityGroup:SecurityGroup")}
    rules = rec.by_type(f"aws:vpc/securityGroup{kind}Rule:SecurityGroup{kind}Rule")
    return [{"group": groups[r.inputs["securityGroupId"]], "port": int(r.inputs["fromPort"]),
             "to_port": int(r.inputs["toPort"]), "protocol": r.inputs["ipProtocol"],
             "peer": groups.get(r.inputs.get("referencedSecurityGroupId", ""))
             or r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6")} for r in rules]


def test_firewall_matrix_ingress(record: Record) -> None:
    ingress = _rules(_firewall(record), "Ingress")
    assert all(r["protocol"] == "tcp" and r["port"] == r["to_port"] for r in ingress)
    assert sorted((r["group"], r["port"], r["peer"]) for r in ingress) == sorted([
        ("load-balancer", 443, "0.0.0.0/0"), ("load-balancer", 443, "::/0"),
        ("load-balancer", 80, "0.0.0.0/0"), ("load-balancer", 80, "::/0"),
        ("app", 8000, "load-balancer"), ("app", 9090, "10.60.0.0/24"),
        ("database", 5432, "app"), ("timescale", 5432, "app"), ("cache", 6379, "app"),
    ])


def test_ssh_opens_only_for_configured_admin_cidrs(record: Record) -> None:
    ingress = _rules(_firewall(record, admin_cidrs=["192.0.2.0/28"]), "Ingress")
    assert sorted((r["group"], r["peer"]) for r in ingress if r["port"] == 22) == [
        ("app", "192.0.2.0/28"), ("timescale", "192.0.2.0/28")]


def test_data_stores_have_no_egress_and_app_egress_is_scoped(record: Record) -> None:
    egress = _rules(_firewall(record, siem_port=8088), "Egress")
    groups = {r["group"] for r in egress}
    assert "database" not in groups
    assert "cache" not in groups
    assert sorted((r["port"], r["peer"]) for r in egress if r["group"] == "app") == sorted([
        (443, "0.0.0.0/0"), (80, "0.0.0.0/0"), (8088, "0.0.0.0/0"),
        (5432, "database"), (5432, "timescale"), (6379, "cache"),
    ])
    assert [(r["port"], r["peer"]) for r in egress if r["group"] == "load-balancer"] == [(8000, "app")]


def test_resource_names_never_contain_urn_separators(record: Record) -> None:
    rec = _firewall(record)
    assert all("::" not in r.name for r in rec.resources)
    assert "fw-load-balancer-https-any-ipv6" in {r.name for r in rec.resources}


def test_every_rule_is_tagged_with_its_groups_role(record: Record) -> None:
    """The pack decides world-open ingress per rule, before the group's id is known, from this tag."""
    rec = _firewall(record, admin_cidrs=["192.0.2.0/28"], siem_port=8088)
    groups = rec.by_type("aws:ec2/securityGroup:SecurityGroup")
    roles = {g.outputs["id"]: g.inputs["tags"]["sark:role"] for g in groups}
    rules = [*rec.by_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"),
             *rec.by_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")]
    assert len(rules) == 20  # 11 ingress, 9 egress
    assert [(r.name, r.inputs["tags"]) for r in rules
            if r.inputs["tags"] != {"sark:role": roles[r.inputs["securityGroupId"]]}] == []
    world = [r.inputs["tags"]["sark:role"] for r in rules if r.type.endswith("IngressRule")
             and (r.inputs.get("cidrIpv4") == "0.0.0.0/0" or r.inputs.get("cidrIpv6") == "::/0")]
    assert world == ["load-balancer"] * 4
