"""Security group ingress and egress, normalised across the three ways to write them.

pulumi-aws lets a stack open a port with an inline ``ingress`` block of
``aws.ec2.SecurityGroup``, a standalone ``aws.ec2.SecurityGroupRule`` (``type: ingress``) or
an ``aws.vpc.SecurityGroupIngressRule``. Rules about ports must see all three, resolve which
security group a standalone rule belongs to (through the engine's property dependencies,
falling back to matching the group's id), and treat protocol ``-1``/``all`` as every port.
Egress has the same three shapes (inline ``egress``, ``type: egress``,
``aws.vpc.SecurityGroupEgressRule``); :func:`egress_rules` reads them into the same record,
with the destinations in ``cidrs`` / ``source_groups``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource

from ._props import as_bool, as_int, as_list, as_map

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
VPC_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
VPC_EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
INGRESS_TYPES = frozenset({SECURITY_GROUP, SECURITY_GROUP_RULE, VPC_INGRESS_RULE})
STANDALONE_RULE_TYPES = frozenset({SECURITY_GROUP_RULE, VPC_INGRESS_RULE, VPC_EGRESS_RULE})

WORLD = frozenset({"0.0.0.0/0", "::/0"})
ROLE_TAG = "sark:role"
_PROTOCOLS = {"-1": "all", "all": "all", "6": "tcp", "tcp": "tcp", "17": "udp", "udp": "udp",
              "1": "icmp", "icmp": "icmp", "58": "icmpv6", "icmpv6": "icmpv6"}


@dataclass(frozen=True)
class Ingress:
    """One ingress permission."""

    group: PolicyResource | None
    """The security group it opens (None if it cannot be resolved)."""

    declared_by: PolicyResource
    """The resource that declares it (the group itself for inline rules)."""

    protocol: str
    """``all``, ``tcp``, ``udp``, ``icmp``, ``icmpv6`` or the raw protocol number."""

    from_port: int
    to_port: int
    cidrs: tuple[str, ...]
    """IPv4 and IPv6 source blocks."""

    source_groups: tuple[str, ...]
    """Source security group ids (or references)."""

    def covers(self, port: int) -> bool:
        """Whether this permission lets ``port`` in (TCP or all protocols)."""
        if self.protocol == "all":
            return True
        return self.protocol == "tcp" and self.from_port <= port <= self.to_port

    @property
    def is_public(self) -> bool:
        """Open to the whole internet (0.0.0.0/0 or ::/0)."""
        return any(cidr in WORLD for cidr in self.cidrs)

    def ports(self) -> str:
        """Human-readable port range for messages."""
        if self.protocol == "all":
            return "all ports (protocol -1)"
        if self.from_port == self.to_port:
            return f"{self.protocol}/{self.from_port}"
        return f"{self.protocol}/{self.from_port}-{self.to_port}"


def _protocol(value: Any) -> str:
    if isinstance(value, float | int) and not isinstance(value, bool):
        value = str(int(value))
    text = str(value).lower() if value is not None else "all"
    return _PROTOCOLS.get(text, text)


def _range(protocol: str, props: Mapping[str, Any]) -> tuple[int, int]:
    if protocol == "all":
        return 0, 65535
    low, high = as_int(props.get("fromPort")), as_int(props.get("toPort"))
    # AWS uses -1 for "all ICMP types"; for TCP/UDP a missing bound means the whole range.
    low = 0 if low is None or low < 0 else low
    high = 65535 if high is None or high < 0 else high
    return low, high


def role(group: PolicyResource | None) -> str | None:
    """The ``sark:role`` tag of a security group, e.g. ``load-balancer``."""
    if group is None:
        return None
    value = as_map(group.props.get("tags")).get(ROLE_TAG)
    return value if isinstance(value, str) else None


def _owner(rule: PolicyResource, groups: Sequence[PolicyResource]) -> PolicyResource | None:
    for dependency in rule.property_dependencies.get("securityGroupId", []):
        if dependency.resource_type == SECURITY_GROUP:
            return dependency
    wanted = rule.props.get("securityGroupId")
    return next((g for g in groups if g.props.get("id") == wanted and wanted is not None), None)


def owner(rule: PolicyResource, resources: Sequence[PolicyResource]) -> PolicyResource | None:
    """The security group a standalone rule belongs to (None if the stack does not define it)."""
    return _owner(rule, [r for r in resources if r.resource_type == SECURITY_GROUP])


def direction(rule: PolicyResource) -> str | None:
    """``ingress`` or ``egress`` for a standalone rule resource; None for anything else."""
    if rule.resource_type == VPC_INGRESS_RULE:
        return "ingress"
    if rule.resource_type == VPC_EGRESS_RULE:
        return "egress"
    if rule.resource_type == SECURITY_GROUP_RULE:
        kind = rule.props.get("type")
        return kind if kind in ("ingress", "egress") else None
    return None


def _permissions(resources: Sequence[PolicyResource], way: str) -> Iterator[Ingress]:
    groups = [r for r in resources if r.resource_type == SECURITY_GROUP]
    vpc_type = VPC_INGRESS_RULE if way == "ingress" else VPC_EGRESS_RULE
    for resource in resources:
        props = resource.props
        if resource.resource_type == SECURITY_GROUP:
            for item in as_list(props.get(way)):
                block = as_map(item)
                protocol = _protocol(block.get("protocol"))
                low, high = _range(protocol, block)
                sources = [*as_list(block.get("securityGroups"))]
                if as_bool(block.get("self")):
                    sources.append("self")
                yield Ingress(resource, resource, protocol, low, high,
                              tuple(as_list(block.get("cidrBlocks")) + as_list(block.get("ipv6CidrBlocks"))),
                              tuple(str(s) for s in sources))
        elif resource.resource_type == SECURITY_GROUP_RULE and props.get("type") == way:
            protocol = _protocol(props.get("protocol"))
            low, high = _range(protocol, props)
            sources = [props.get("sourceSecurityGroupId")] if props.get("sourceSecurityGroupId") else []
            if as_bool(props.get("self")):
                sources.append("self")
            yield Ingress(_owner(resource, groups), resource, protocol, low, high,
                          tuple(as_list(props.get("cidrBlocks")) + as_list(props.get("ipv6CidrBlocks"))),
                          tuple(str(s) for s in sources))
        elif resource.resource_type == vpc_type:
            protocol = _protocol(props.get("ipProtocol"))
            low, high = _range(protocol, props)
            cidrs = tuple(c for c in (props.get("cidrIpv4"), props.get("cidrIpv6")) if isinstance(c, str))
            sources = (str(props["referencedSecurityGroupId"]),) if props.get("referencedSecurityGroupId") else ()
            yield Ingress(_owner(resource, groups), resource, protocol, low, high, cidrs, sources)


def ingress_rules(resources: Sequence[PolicyResource]) -> Iterator[Ingress]:
    """Every ingress permission declared in the stack, in any of the three shapes."""
    return _permissions(resources, "ingress")


def egress_rules(resources: Sequence[PolicyResource]) -> Iterator[Ingress]:
    """Every egress permission declared in the stack, in any of the three shapes.

    ``cidrs`` and ``source_groups`` hold the destinations.
    """
    return _permissions(resources, "egress")
