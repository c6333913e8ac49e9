"""How every rule of the pack is declared.

A rule is a plain function ``(args, report_violation) -> None``. :func:`resource_policy` and
:func:`stack_policy` wrap it into a CrossGuard policy and add what every rule shares:

- matching on resource type tokens (Python CrossGuard has no typed matching, and the engine
  sends every resource to every resource policy);
- metadata: description, enforcement level, severity, remediation steps, and the anchor
  rules it corresponds to (AWSGuard, Pulumi compliance policies, Checkov, Trivy, Security
  Hub) as policy tags such as ``checkov:CKV_AWS_17``;
- a config schema with the rule's own thresholds plus ``exemptions``, a list of
  ``{"resource": <logical name or URN>, "reason": <why>}``. An exempted resource is
  reported through CrossGuard's not-applicable channel with the reason, so the exemption
  stays visible in every report instead of silently passing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

ResourceRule = Callable[[ResourceValidationArgs, ReportViolation], None]
StackRule = Callable[[StackValidationArgs, ReportViolation], None]
Remediation = Callable[[ResourceValidationArgs], Mapping[str, Any] | None]

EXEMPTIONS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "Resources this rule does not apply to, each with the reason; shown in every report.",
    "items": {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "description": "Logical name or URN of the resource."},
            "reason": {"type": "string", "minLength": 10, "description": "Why the rule does not apply."},
        },
        "required": ["resource", "reason"],
    },
    "default": [],
}


@dataclass(frozen=True, kw_only=True)
class Anchors:
    """The rules of other rule sets that check the same thing."""

    awsguard: Sequence[str] = ()
    compliance: Sequence[str] = ()
    checkov: Sequence[str] = ()
    trivy: Sequence[str] = ()
    securityhub: Sequence[str] = ()
    checklist: Sequence[str] = field(default=())
    """Sections of the SARK production deployment checklist."""

    def tags(self) -> list[str]:
        """Anchors as policy tags, ``<set>:<id>``."""
        sets = {
            "awsguard": self.awsguard, "compliance": self.compliance, "checkov": self.checkov,
            "trivy": self.trivy, "securityhub": self.securityhub, "checklist": self.checklist,
        }
        return [f"{name}:{rule}" for name, rules in sets.items() for rule in rules]


RESOURCE_TYPES: dict[str, tuple[str, ...]] = {}
"""Policy name -> the type tokens it checks (``()`` for stack policies); feeds the rule table."""

RULES: dict[str, ResourceRule | StackRule] = {}
"""Policy name -> the plain rule function it wraps, for evaluating rules without the policy server."""


def exemption_reason(config: Mapping[str, Any] | None, name: str, urn: str) -> str | None:
    """The configured reason if this resource is exempt, else None."""
    for entry in (config or {}).get("exemptions") or ():
        if isinstance(entry, Mapping) and entry.get("resource") in (name, urn):
            return str(entry.get("reason") or "no reason given")
    return None


def _schema(properties: Mapping[str, dict[str, Any]] | None) -> PolicyConfigSchema:
    return PolicyConfigSchema(properties={**(properties or {}), "exemptions": EXEMPTIONS_SCHEMA})


def resource_policy(
    *,
    name: str,
    description: str,
    resource_types: Iterable[str],
    validate: ResourceRule,
    severity: Severity,
    remediation_steps: str,
    anchors: Anchors = Anchors(),
    enforcement_level: EnforcementLevel = EnforcementLevel.MANDATORY,
    config: Mapping[str, dict[str, Any]] | None = None,
    remediate: Remediation | None = None,
) -> ResourceValidationPolicy:
    """Wrap a resource rule: type matching, exemptions and metadata."""
    types = frozenset(resource_types)

    def _validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in types:
            return
        reason = exemption_reason(args.get_config(), args.name, args.urn)
        if reason is not None:
            args.not_applicable(f"exempted: {reason}")
        validate(args, report_violation)

    def _remediate(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
        if remediate is None or args.resource_type not in types:
            return None
        if exemption_reason(args.get_config(), args.name, args.urn) is not None:
            return None
        return remediate(args)

    RESOURCE_TYPES[name] = tuple(sorted(types))
    RULES[name] = validate
    policy = ResourceValidationPolicy(
        name=name,
        description=description,
        validate=_validate,
        remediate=_remediate if remediate is not None else None,
        enforcement_level=enforcement_level,
        config_schema=_schema(config),
        severity=severity,
        tags=anchors.tags(),
        remediation_steps=remediation_steps,
    )
    # A hint for offline runners (sarkops plan): the types this policy would not return at
    # once for. The engine ignores it and sends every resource, which the wrapper handles.
    policy.resource_types = types  # type: ignore[attr-defined]
    return policy


def stack_policy(
    *,
    name: str,
    description: str,
    validate: StackRule,
    severity: Severity,
    remediation_steps: str,
    anchors: Anchors = Anchors(),
    enforcement_level: EnforcementLevel = EnforcementLevel.MANDATORY,
    config: Mapping[str, dict[str, Any]] | None = None,
) -> StackValidationPolicy:
    """Wrap a stack rule: exemptions (by the violation's URN) and metadata.

    A stack rule has no per-resource not-applicable channel, so a violation whose URN
    belongs to an exempt resource is dropped here; the exemption stays visible because
    ``sarkops plan`` lists every configured exemption, with its reason, in its report.
    """

    def _validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        names = {r.urn: r.name for r in args.resources}
        config = args.get_config()

        def report(message: str, urn: str | None = None) -> None:
            reason = exemption_reason(config, names.get(urn or "", ""), urn or "") if urn else None
            if reason is None:
                report_violation(message, urn)

        validate(args, report)

    RESOURCE_TYPES[name] = ()
    RULES[name] = validate
    return StackValidationPolicy(
        name=name,
        description=description,
        validate=_validate,
        enforcement_level=enforcement_level,
        config_schema=_schema(config),
        severity=severity,
        tags=anchors.tags(),
        remediation_steps=remediation_steps,
    )
