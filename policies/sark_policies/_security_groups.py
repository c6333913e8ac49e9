"""Security group ingress and egress, normalised across the three ways to write them.

pulumi-aws lets a stack open a port with an inline ``ingress`` block of
``aws.ec2.SecurityGroup``, a standalone ``aws.ec2.SecurityGroupRule`` (``type: ingress``) or
an ``aws.vpc.SecurityGroupIngressRule``. Rules about ports must see all three and treat
protocol ``-1``/``all`` as every port. Egress has the same three shapes (inline ``egress``,
``type: egress``, ``aws.vpc.SecurityGroupEgressRule``), read into the same record with the
destinations in ``cidrs`` / ``sources``.

Two levels:

- :func:`permissions` reads one resource's own inputs, for resource rules (``Analyze``, before
  the resource is created). Which role a permission belongs to is then read from the resource
  itself: a group's own ``sark:role`` tag for inline blocks, the rule's own ``sark:role`` tag
  for ``aws.vpc.SecurityGroup{In,E}gressRule`` (the firewall matrix tags each rule with its
  group's role; :func:`rule_role`). ``aws.ec2.SecurityGroupRule`` cannot carry tags, so its
  role is never known before create.
- :func:`ingress_rules` / :func:`egress_rules` read the whole stack, for stack rules, and
  resolve which group a standalone rule belongs to through the engine's property
  dependencies (``securityGroupId``), which a first preview knows even though the group's id
  is still unknown; only without a dependency do they compare ids, and wait for an id that is
  unknown.

Values a first preview does not know (a source group's id, a CIDR computed from another
resource) are :data:`~._props.UNKNOWN` in the records, never a raised ``UnknownValueError``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource

from ._base import wait_for
from ._props import UNKNOWN, as_bool, as_int, as_map, known, known_items

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
VPC_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
VPC_EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
INGRESS_TYPES = (SECURITY_GROUP, SECURITY_GROUP_RULE, VPC_INGRESS_RULE)
STANDALONE_RULE_TYPES = frozenset({SECURITY_GROUP_RULE, VPC_INGRESS_RULE, VPC_EGRESS_RULE})
TAGGABLE_RULE_TYPES = frozenset({VPC_INGRESS_RULE, VPC_EGRESS_RULE})

WORLD = frozenset({"0.0.0.0/0", "::/0"})
ROLE_TAG = "sark:role"
_PROTOCOLS = {"-1": "all", "all": "all", "6": "tcp", "tcp": "tcp", "17": "udp", "udp": "udp",
              "1": "icmp", "icmp": "icmp", "58": "icmpv6", "icmpv6": "icmpv6"}


@dataclass(frozen=True)
class Permission:
    """One ingress or egress permission as one resource declares it."""

    protocol: str
    """``all``, ``tcp``, ``udp``, ``icmp``, ``icmpv6`` or the raw protocol number."""

    from_port: int
    to_port: int
    cidrs: tuple[Any, ...]
    """IPv4 and IPv6 blocks (sources for ingress, destinations for egress); UNKNOWN where not known yet."""

    sources: tuple[Any, ...]
    """Peer security group ids, ``"self"``, or UNKNOWN for an id a first preview does not know."""

    label: str = ""
    """Where it is declared inside the resource (``ingress[0]``) for inline blocks, else ``""``."""

    def covers(self, port: int) -> bool:
        """Whether this permission lets ``port`` through (TCP or all protocols)."""
        if self.protocol == "all":
            return True
        return self.protocol == "tcp" and self.from_port <= port <= self.to_port

    def only(self, ports: Sequence[int]) -> bool:
        """Whether it is TCP and every port it opens is in ``ports``."""
        return self.protocol == "tcp" and all(p in ports for p in range(self.from_port, self.to_port + 1))

    @property
    def world(self) -> list[str]:
        """The internet-wide blocks (0.0.0.0/0, ::/0) it names."""
        return sorted(c for c in self.cidrs if isinstance(c, str) and c in WORLD)

    @property
    def is_public(self) -> bool:
        """Open to (or reaching) the whole internet."""
        return bool(self.world)

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
    low, high = as_int(known(props, "fromPort")), as_int(known(props, "toPort"))
    # AWS uses -1 for "all ICMP types"; for TCP/UDP a missing bound means the whole range.
    low = 0 if low is None or low < 0 else low
    high = 65535 if high is None or high < 0 else high
    return low, high


def _cidrs(props: Mapping[str, Any], *keys: str) -> tuple[Any, ...]:
    found: list[Any] = []
    for key in keys:
        value = known(props, key)
        if isinstance(value, str) or value is UNKNOWN:
            found.append(value)
        else:
            found.extend(known_items(value))
    return tuple(c for c in found if c is not None)


def permissions(resource_type: str, props: Mapping[str, Any], way: str) -> list[Permission]:
    """The ``way`` (``ingress``/``egress``) permissions one resource declares in its own inputs."""
    found: list[Permission] = []
    if resource_type == SECURITY_GROUP:
        for index, item in enumerate(known_items(known(props, way))):
            block = as_map(item)
            protocol = _protocol(known(block, "protocol"))
            low, high = _range(protocol, block)
            sources = [s for s in known_items(known(block, "securityGroups")) if s is not None]
            if as_bool(known(block, "self")):
                sources.append("self")
            found.append(Permission(protocol, low, high, _cidrs(block, "cidrBlocks", "ipv6CidrBlocks"),
                                    tuple(sources), f"{way}[{index}]"))
    elif resource_type == SECURITY_GROUP_RULE and known(props, "type") == way:
        protocol = _protocol(known(props, "protocol"))
        low, high = _range(protocol, props)
        sources = [s for s in (known(props, "sourceSecurityGroupId"),) if s]
        if as_bool(known(props, "self")):
            sources.append("self")
        found.append(Permission(protocol, low, high, _cidrs(props, "cidrBlocks", "ipv6CidrBlocks"), tuple(sources)))
    elif resource_type == (VPC_INGRESS_RULE if way == "ingress" else VPC_EGRESS_RULE):
        protocol = _protocol(known(props, "ipProtocol"))
        low, high = _range(protocol, props)
        sources = tuple(s for s in (known(props, "referencedSecurityGroupId"),) if s)
        found.append(Permission(protocol, low, high, _cidrs(props, "cidrIpv4", "cidrIpv6"), sources))
    return found


def tag(props: Mapping[str, Any], key: str = ROLE_TAG) -> str | None:
    """A tag's value from a resource's own ``tags`` (None when missing or not known)."""
    value = known(as_map(known(props, "tags")), key)
    return value if isinstance(value, str) else None


def role(group: PolicyResource | None) -> str | None:
    """The ``sark:role`` tag of a security group, e.g. ``load-balancer``."""
    return tag(group.props) if group is not None else None


def rule_role(resource_type: str, props: Mapping[str, Any]) -> str | None:
    """The role a resource declares its permissions for, from its own inputs: a group's own
    ``sark:role`` tag, or the ``sark:role`` tag a standalone rule carries (None for
    ``aws.ec2.SecurityGroupRule``, which cannot carry tags)."""
    if resource_type == SECURITY_GROUP or resource_type in TAGGABLE_RULE_TYPES:
        return tag(props)
    return None


# --------------------------------------------------------------------------------------
# The whole stack, for stack rules
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ingress:
    """One permission of the stack, with the resource that declares it and the group it opens."""

    group: PolicyResource | None
    """The security group it belongs to (None if the stack does not define it, or not known yet)."""

    declared_by: PolicyResource
    """The resource that declares it (the group itself for inline rules)."""

    permission: Permission

    @property
    def protocol(self) -> str:
        return self.permission.protocol

    @property
    def from_port(self) -> int:
        return self.permission.from_port

    @property
    def to_port(self) -> int:
        return self.permission.to_port

    @property
    def cidrs(self) -> tuple[Any, ...]:
        return self.permission.cidrs

    @property
    def source_groups(self) -> tuple[Any, ...]:
        return self.permission.sources

    @property
    def is_public(self) -> bool:
        return self.permission.is_public

    def covers(self, port: int) -> bool:
        return self.permission.covers(port)

    def ports(self) -> str:
        return self.permission.ports()


def _owner(rule: PolicyResource, groups: Sequence[PolicyResource]) -> PolicyResource | None:
    dependencies = rule.property_dependencies.get("securityGroupId", [])
    for dependency in dependencies:
        if dependency.resource_type == SECURITY_GROUP:
            return dependency
    if dependencies:
        return None  # computed from something else than a group of this stack
    wanted = known(rule.props, "securityGroupId")
    if wanted is UNKNOWN:
        wait_for(f"{rule.name}.securityGroupId")
        return None
    return next((g for g in groups if wanted is not None and known(g.props, "id") == wanted), None)


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
        kind = known(rule.props, "type")
        return kind if kind in ("ingress", "egress") else None
    return None


def _stack_permissions(resources: Sequence[PolicyResource], way: str) -> Iterator[Ingress]:
    groups = [r for r in resources if r.resource_type == SECURITY_GROUP]
    for resource in resources:
        found = permissions(resource.resource_type, resource.props, way)
        if not found:
            continue
        group = resource if resource.resource_type == SECURITY_GROUP else _owner(resource, groups)
        for permission in found:
            yield Ingress(group, resource, permission)


def ingress_rules(resources: Sequence[PolicyResource]) -> Iterator[Ingress]:
    """Every ingress permission declared in the stack, in any of the three shapes."""
    return _stack_permissions(resources, "ingress")


def egress_rules(resources: Sequence[PolicyResource]) -> Iterator[Ingress]:
    """Every egress permission declared in the stack, in any of the three shapes (destinations in ``cidrs``)."""
    return _stack_permissions(resources, "egress")
