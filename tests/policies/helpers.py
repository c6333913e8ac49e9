"""Run single rules the way the policy server runs them.

Each call goes through the SDK's own analyzer servicer (the code path ``pulumi preview
--policy-pack`` drives): properties are marshalled into a protobuf Struct, so numbers arrive
as floats, values marked :data:`UNKNOWN` arrive as preview unknowns and raise inside the
proxy, and the rule's config is its schema defaults plus any overrides, as the engine sends it.

:func:`remediate_resource` drives ``Remediate`` the same way, with the policy at enforcement
level ``remediate`` (the only level at which the engine runs remediations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi.runtime import rpc
from pulumi_policy import EnforcementLevel, Policy, StackValidationPolicy
from pulumi_policy.policy import _PolicyAnalyzerServicer, proto

UNKNOWN = rpc.UNKNOWN
"""Put this in props for a value that is unknown during preview."""

STACK = "urn:pulumi:test::sark-infra::pulumi:pulumi:Stack::sark-infra-test"


def urn(type_: str, name: str) -> str:
    """A URN shaped like the engine's."""
    return f"urn:pulumi:test::sark-infra::{type_}::{name}"


@dataclass
class Result:
    """What one run of one policy produced."""

    violations: list[tuple[str, str]] = field(default_factory=list)
    """(urn, message) pairs; the message without the policy description prefix."""

    not_applicable: list[str] = field(default_factory=list)
    """Reasons given through args.not_applicable()."""

    advisories: list[str] = field(default_factory=list)
    """Messages the SDK reported itself, e.g. "can't run policy ... during preview"."""

    @property
    def messages(self) -> list[str]:
        """Just the violation messages."""
        return [message for _, message in self.violations]


@dataclass
class Res:
    """A resource for a stack-policy run."""

    type: str
    name: str
    props: Mapping[str, Any]
    parent: str | None = None
    dependencies: Sequence[str] = ()
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def urn(self) -> str:
        """The resource's URN."""
        return urn(self.type, self.name)


def _struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    json_format.ParseDict(dict(props), struct)
    return struct


def _servicer(policy: Policy, config: Mapping[str, Any] | None,
              level: int = proto.MANDATORY) -> _PolicyAnalyzerServicer:
    servicer = _PolicyAnalyzerServicer("sark-policies", "0.0.1", [policy], EnforcementLevel.ADVISORY)
    properties = {k: v["default"] for k, v in (policy.config_schema.properties.items() if policy.config_schema
                                                else ()) if "default" in v}
    properties.update(config or {})
    request = proto.ConfigureAnalyzerRequest()
    request.policyConfig[policy.name].CopyFrom(proto.PolicyConfig(
        enforcementLevel=level, properties=_struct(properties)))
    servicer.Configure(request, None)
    return servicer


def _collect(response: Any, policy: Policy, default_urn: str) -> Result:
    result = Result(not_applicable=[n.reason for n in response.not_applicable])
    prefix = policy.description + "\n"
    for diagnostic in response.diagnostics:
        if diagnostic.message.startswith(prefix):
            result.violations.append((diagnostic.urn or default_urn, diagnostic.message[len(prefix):]))
        else:
            result.advisories.append(diagnostic.message)
    return result


def check_resource(policy: Policy, type_: str, props: Mapping[str, Any], *, name: str = "subject",
                   config: Mapping[str, Any] | None = None) -> Result:
    """Run a resource policy on one resource's inputs."""
    request = proto.AnalyzeRequest(type=type_, properties=_struct(props), urn=urn(type_, name), name=name)
    return _collect(_servicer(policy, config).Analyze(request, None), policy, urn(type_, name))


def check_stack(policy: Policy, resources: Sequence[Res], *, config: Mapping[str, Any] | None = None) -> Result:
    """Run a stack policy over several resources (their outputs)."""
    request = proto.AnalyzeStackRequest()
    for resource in resources:
        entry = request.resources.add(
            type=resource.type, properties=_struct(resource.props), urn=resource.urn, name=resource.name,
            parent=resource.parent or "", dependencies=list(resource.dependencies),
        )
        for key, urns in resource.property_dependencies.items():
            entry.propertyDependencies[key].urns.extend(urns)
    return _collect(_servicer(policy, config).AnalyzeStack(request, None), policy, "")


@dataclass
class Remediated:
    """What one ``Remediate`` call of one policy produced."""

    properties: dict[str, Any] | None
    """The rewritten inputs (numbers as floats, as the engine receives them); None if nothing changed."""

    diagnostics: list[str] = field(default_factory=list)
    """Why a remediation could not run (e.g. a value unknown during preview)."""

    not_applicable: list[str] = field(default_factory=list)


def remediate_resource(policy: Policy, type_: str, props: Mapping[str, Any], *, name: str = "subject",
                       config: Mapping[str, Any] | None = None) -> Remediated:
    """Run a resource policy's remediation on one resource's inputs, at enforcement level remediate."""
    request = proto.AnalyzeRequest(type=type_, properties=_struct(props), urn=urn(type_, name), name=name)
    response = _servicer(policy, config, level=proto.REMEDIATE).Remediate(request, None)
    result = Remediated(properties=None, not_applicable=[n.reason for n in response.not_applicable])
    for remediation in response.remediations:
        if remediation.diagnostic:
            result.diagnostics.append(remediation.diagnostic)
        if remediation.HasField("properties"):
            result.properties = json_format.MessageToDict(remediation.properties)
    return result


def by_name(policies: Sequence[Policy], name: str) -> Policy:
    """The policy called ``name``."""
    return next(p for p in policies if p.name == name)


def check_each(policy: Policy, resources: Sequence[Res], *, config: Mapping[str, Any] | None = None) -> Result:
    """Run a policy the way the engine would over these resources: a resource policy through
    ``Analyze`` on every resource (its props as inputs), a stack policy through ``AnalyzeStack``."""
    if isinstance(policy, StackValidationPolicy):
        return check_stack(policy, resources, config=config)
    total = Result()
    for resource in resources:
        result = check_resource(policy, resource.type, resource.props, name=resource.name, config=config)
        total.violations.extend(result.violations)
        total.not_applicable.extend(result.not_applicable)
        total.advisories.extend(result.advisories)
    return total
