"""A first `pulumi up` creates the app hosts in parallel with the data tier, not after it, but
never before their route out.

Proved on the recorded dependency graph of the whole production program (explicit and
property dependencies, transitively): no launch template, Auto Scaling group or instance of
the app tier waits for the RDS instance or the ElastiCache replication group. The hosts find
the endpoints when the service starts (SSM parameters, which do depend on the data stores).
Every host (the Auto Scaling groups, the TimescaleDB instance) does wait for its subnets' NAT
gateway, default route and route-table association: its first boot installs packages.
"""

from __future__ import annotations

import base64
import gzip
import json

import yaml

from sarkops.plan.runtime import Recording
from tests.app_tier_plans import plan, upstream

DATA_STORES = ("aws:rds/instance:Instance", "aws:elasticache/replicationGroup:ReplicationGroup")
HOST_TYPES = ("aws:ec2/launchTemplate:LaunchTemplate", "aws:autoscaling/group:Group", "aws:ec2/instance:Instance")


def app_hosts(rec: Recording) -> list:
    component = rec.one("sark:app:AppHosts")
    return [r for r in rec.resources if r.type in HOST_TYPES and r.parent == component.urn]


def data_stores(rec: Recording) -> dict[str, str]:
    return {r.urn: r.type for r in rec.resources if r.type in DATA_STORES}


def test_the_stack_has_hosts_and_data_stores() -> None:
    rec = plan()
    assert {r.type for r in app_hosts(rec)} == {"aws:ec2/launchTemplate:LaunchTemplate",
                                                "aws:autoscaling/group:Group"}
    assert sorted(set(data_stores(rec).values())) == sorted(DATA_STORES)


def test_no_host_launch_template_or_group_waits_for_a_data_store() -> None:
    rec = plan()
    stores = data_stores(rec)
    for host in app_hosts(rec):
        waits_for = sorted(stores[urn] for urn in upstream(rec, [host.urn]) if urn in stores)
        assert waits_for == [], f"{host.name} waits for {waits_for}"


def test_the_load_balancer_does_not_wait_either() -> None:
    rec = plan()
    stores = data_stores(rec)
    for resource in rec.by_type("aws:lb/loadBalancer:LoadBalancer") + rec.by_type("aws:lb/listener:Listener"):
        assert not upstream(rec, [resource.urn]) & set(stores), resource.name


def test_endpoint_parameters_and_release_gates_do_depend_on_the_data_tier() -> None:
    # The same graph walk finds the dependencies that are meant to exist, so the checks above
    # cannot pass merely because the walk sees nothing.
    rec = plan()
    stores = data_stores(rec)
    rds = next(urn for urn, kind in stores.items() if kind == "aws:rds/instance:Instance")
    cache = next(urn for urn, kind in stores.items() if kind == DATA_STORES[1])
    parameters = {p.inputs["name"]: p for p in rec.by_type("aws:ssm/parameter:Parameter")}
    assert rds in upstream(rec, [parameters["/sark/production/env/POSTGRES_HOST"].urn])
    assert cache in upstream(rec, [parameters["/sark/production/env/VALKEY_HOST"].urn])
    for gate in [c for c in rec.by_type("command:local:Command") if c.name.endswith("-gate")]:
        assert rds in gate.dependencies or rds in upstream(rec, [gate.urn])
    traffic = rec.one("aws:lb/listenerRule:ListenerRule", "sark-production-release-traffic")
    assert rds in upstream(rec, [traffic.urn])


def test_user_data_names_parameters_not_endpoints() -> None:
    rec = plan()
    endpoints = [rec.one("aws:rds/instance:Instance").outputs["address"],
                 rec.one(DATA_STORES[1]).outputs["primaryEndpointAddress"],
                 rec.one("aws:ec2/instance:Instance").outputs["privateIp"]]
    for template in rec.by_type("aws:ec2/launchTemplate:LaunchTemplate"):
        text = gzip.decompress(base64.b64decode(template.inputs["userData"])).decode()
        host = json.loads(yaml.safe_load(text.split("\n", 1)[1])["write_files"][0]["content"])
        assert host["parameterPath"] == "/sark/production"
        assert [e for e in endpoints if e in text] == []


def _route_out(rec: Recording, tier: str) -> dict[str, str]:
    """NAT gateways, default routes and route-table associations of one private tier, by URN."""
    zones = ("us-east-1a", "us-east-1b", "us-east-1c")
    names = {f"sark-production-network-nat-{z}" for z in zones}
    names |= {f"sark-production-network-{tier}-{z}-default-route" for z in zones}
    names |= {f"sark-production-network-{tier}-{z}-rta" for z in zones}
    found = {r.urn: r.name for r in rec.resources if r.name in names}
    assert len(found) == 9
    return found


def test_app_hosts_wait_for_every_app_subnets_route_out() -> None:
    rec = plan()
    route_out = _route_out(rec, "app")
    for group in rec.by_type("aws:autoscaling/group:Group"):
        missing = sorted(name for urn, name in route_out.items() if urn not in upstream(rec, [group.urn]))
        assert missing == [], f"{group.name} may launch hosts before {missing}"


def test_timescale_host_waits_for_the_data_subnets_route_out() -> None:
    rec = plan()
    instance = rec.one("aws:ec2/instance:Instance")
    waits_for = upstream(rec, [instance.urn])
    assert sorted(name for urn, name in _route_out(rec, "data").items() if urn not in waits_for) == []


def test_the_rotation_lambda_runs_only_after_its_subnets_route_out() -> None:
    """The app-role bootstrap and each rotation's first test invoke the Lambda at once; in the app
    subnets it reaches Secrets Manager, SSM and CloudWatch only once their route out exists."""
    rec = plan()
    route_out = _route_out(rec, "app")
    bootstrap = rec.by_type("aws:lambda/invocation:Invocation")
    rotations = rec.by_type("aws:secretsmanager/secretRotation:SecretRotation")
    assert len(bootstrap) == 1
    assert len(rotations) >= 4  # SECRET_KEY, both database logins, the cache token (and the master)
    first_runs = [*bootstrap, *rotations]
    for resource in first_runs:
        missing = sorted(name for urn, name in route_out.items() if urn not in upstream(rec, [resource.urn]))
        assert missing == [], f"{resource.name} may run the Lambda before {missing}"
