"""The stack's firewall matrix: one security group per role and every rule between them.

Creates a security group for each role, tagged ``sark:role=<role>`` (the policy pack keys
its per-role port rules on that tag), and standalone ingress/egress rules, each tagged with
its group's ``sark:role`` too: the pack's public-ingress rule runs on each rule resource before
it is created, when the group's id is not known yet, so the rule itself must say which role it
opens a port for (the load balancer's 80/443 are the only world-open ports allowed); a stack
rule checks afterwards that the tag matches the group. The rules are
``aws.vpc.SecurityGroupIngressRule``/``EgressRule`` because ``aws.ec2.SecurityGroupRule``
cannot carry tags.

==============  ==========================================  =====================================
role            ingress                                      egress
==============  ==========================================  =====================================
load-balancer   tcp/443 and tcp/80 from ``ingress_cidrs``    tcp/8000 to app
app             tcp/8000 from load-balancer;                 tcp/443, tcp/80 (+ SIEM port) to the
                tcp/9090 from ``monitoring_cidrs``;          internet via NAT; tcp/5432 to database
                tcp/22 from ``admin_cidrs`` (none: closed)   and timescale; tcp/6379 to cache
database        tcp/5432 from app                            none
timescale       tcp/5432 from app; tcp/22 from admin         tcp/443, tcp/80 (packages, AWS APIs)
cache           tcp/6379 from app                            none
==============  ==========================================  =====================================

Keeping the matrix in one place makes the checklist's firewall section reviewable at a
glance, and lets every tier be created in parallel: the groups exist before any host or
data store, so nothing waits for anything else to be created first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

ROLES: tuple[str, ...] = ("load-balancer", "app", "database", "timescale", "cache")
APP_PORT = 8000
METRICS_PORT = 9090
POSTGRES_PORT = 5432
VALKEY_PORT = 6379


@dataclass(frozen=True, kw_only=True)
class SecurityGroupsArgs:
    """Arguments of :class:`SecurityGroups`."""

    vpc_id: pulumi.Input[str]
    """VPC the groups belong to."""

    ingress_cidrs: Sequence[str] = ("0.0.0.0/0", "::/0")
    """Who may reach the load balancer on 443 and 80."""

    monitoring_cidrs: Sequence[str] = ()
    """Prometheus servers allowed to scrape :9090 on the app hosts; empty keeps 9090 closed."""

    admin_cidrs: Sequence[str] = ()
    """Who may SSH to the hosts; empty keeps 22 closed (SSM Session Manager is the way in)."""

    siem_port: int | None = None
    """Extra outbound TCP port the app needs for its SIEM (8088 for Splunk HEC); None for HTTPS-only SIEMs."""


def _slug(cidr: str) -> str:
    # "::/0" must not reach a resource name: "::" separates the parts of a URN.
    named = {"0.0.0.0/0": "any-ipv4", "::/0": "any-ipv6"}
    return named.get(cidr) or re.sub(r"[^a-zA-Z0-9]+", "-", cidr).strip("-")


class SecurityGroups(pulumi.ComponentResource):
    """Security groups for the load balancer, app hosts and data stores."""

    load_balancer_id: pulumi.Output[str]
    """Group of the internet-facing load balancer."""

    app_id: pulumi.Output[str]
    """Group of the SARK hosts."""

    database_id: pulumi.Output[str]
    """Group of the RDS instance."""

    timescale_id: pulumi.Output[str]
    """Group of the TimescaleDB host."""

    cache_id: pulumi.Output[str]
    """Group of the ElastiCache replication group."""

    def __init__(self, name: str, args: SecurityGroupsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:security:SecurityGroups", name, None, opts)
        self._name = name
        groups = {
            role: aws.ec2.SecurityGroup(
                f"{name}-{role}",
                vpc_id=args.vpc_id,
                description=f"SARK {role}",
                tags={"Name": f"{name}-{role}", "sark:role": role},
                opts=pulumi.ResourceOptions(parent=self),
            )
            for role in ROLES
        }
        lb, app, db, ts, cache = (groups[r].id for r in ROLES)
        self._group_ids = {role: groups[role].id for role in ROLES}

        for port, label in ((443, "https"), (80, "http")):
            for cidr in args.ingress_cidrs:
                self._ingress(f"load-balancer-{label}-{_slug(cidr)}", "load-balancer", port, cidr=cidr,
                              description=f"{label.upper()} from {cidr}")
        self._egress("load-balancer-to-app", "load-balancer", APP_PORT, group=app,
                     description="Forward to the SARK hosts")

        self._ingress("app-from-load-balancer", "app", APP_PORT, group=lb,
                      description="SARK API from the load balancer")
        for cidr in args.monitoring_cidrs:
            self._ingress(f"app-metrics-{_slug(cidr)}", "app", METRICS_PORT, cidr=cidr,
                          description=f"Prometheus scrape from {cidr}")
        for cidr in args.admin_cidrs:
            self._ingress(f"app-ssh-{_slug(cidr)}", "app", 22, cidr=cidr, description=f"SSH from {cidr}")
            self._ingress(f"timescale-ssh-{_slug(cidr)}", "timescale", 22, cidr=cidr, description=f"SSH from {cidr}")

        outbound = [(443, "https"), (80, "http")]
        if args.siem_port is not None and args.siem_port not in (443, 80):
            outbound.append((args.siem_port, "siem"))
        for port, label in outbound:
            self._egress(f"app-{label}-out", "app", port, cidr="0.0.0.0/0",
                         description=f"{label.upper()} out (packages, release checkout, SIEM, AWS APIs)")
        for port, label in ((443, "https"), (80, "http")):
            self._egress(f"timescale-{label}-out", "timescale", port, cidr="0.0.0.0/0",
                         description=f"{label.upper()} out (package installs, AWS APIs)")
        self._egress("app-to-database", "app", POSTGRES_PORT, group=db, description="PostgreSQL")
        self._egress("app-to-timescale", "app", POSTGRES_PORT, group=ts, description="TimescaleDB")
        self._egress("app-to-cache", "app", VALKEY_PORT, group=cache, description="Valkey/Redis")

        self._ingress("database-from-app", "database", POSTGRES_PORT, group=app,
                      description="PostgreSQL from the SARK hosts")
        self._ingress("timescale-from-app", "timescale", POSTGRES_PORT, group=app,
                      description="TimescaleDB from SARK hosts")
        self._ingress("cache-from-app", "cache", VALKEY_PORT, group=app, description="Valkey from the SARK hosts")

        self.load_balancer_id, self.app_id, self.database_id, self.timescale_id, self.cache_id = lb, app, db, ts, cache
        self.register_outputs({
            "loadBalancerId": lb, "appId": app, "databaseId": db, "timescaleId": ts, "cacheId": cache,
        })

    def _ingress(self, label: str, role: str, port: int, *, description: str,
                 cidr: str | None = None, group: pulumi.Output[str] | None = None) -> None:
        self._rule(aws.vpc.SecurityGroupIngressRule, label, role, port, description=description, cidr=cidr,
                   peer_group=group)

    def _egress(self, label: str, role: str, port: int, *, description: str,
                cidr: str | None = None, group: pulumi.Output[str] | None = None) -> None:
        self._rule(aws.vpc.SecurityGroupEgressRule, label, role, port, description=description, cidr=cidr,
                   peer_group=group)

    def _rule(self, kind: type[aws.vpc.SecurityGroupIngressRule] | type[aws.vpc.SecurityGroupEgressRule],
              label: str, role: str, port: int, *, description: str, cidr: str | None,
              peer_group: pulumi.Output[str] | None) -> None:
        """A rule of the ``role`` group, tagged with that role (see the module docstring)."""
        kind(
            f"{self._name}-{label}",
            security_group_id=self._group_ids[role],
            tags={"sark:role": role},
            description=description,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            cidr_ipv4=cidr if cidr is not None and ":" not in cidr else None,
            cidr_ipv6=cidr if cidr is not None and ":" in cidr else None,
            referenced_security_group_id=peer_group,
            opts=pulumi.ResourceOptions(parent=self),
        )
