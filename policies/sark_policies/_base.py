"""How every rule of the pack is declared: a decorator on the plain rule function.

A rule is a plain function ``(args, report_violation) -> None``. Its declaration sits right
above it, so a rule's name, resource types, severity, level, anchors and settings are read on
one screen with the code::

    @resource_rule("aws-rds-instance-disallow-public-access", [INSTANCE], Severity.CRITICAL,
                   "RDS instances are not publicly accessible.",
                   fix="Set publicly_accessible=False ...",
                   anchors=Anchors(checkov=["CKV_AWS_17"]), remediate=make_private)
    def not_public(args, report_violation): ...

and each module ends with ``POLICIES = policies_of(__name__)``. The declaration adds what every
rule shares:

- matching on resource type tokens (Python CrossGuard has no typed matching, and the engine
  sends every resource to every resource policy);
- metadata: description, enforcement level, severity, remediation steps, and the anchor rules
  it corresponds to (AWSGuard, Pulumi compliance policies, Checkov, Trivy, Security Hub) as
  policy tags such as ``checkov:CKV_AWS_17``;
- settings: a config schema with the rule's thresholds (each with a default) plus
  ``exemptions``. The rule reads them with :func:`settings`, which always sees every schema
  default: the engine sends the defaults itself (pulumi/pulumi
  ``pkg/resource/analyzer/config.go``, ``ReconcilePolicyPackConfig``: schema defaults, then the
  pack's initial config, then the user's), but a rule must not depend on that, so the
  declaration merges the defaults under whatever config arrived;
- exemptions: ``{"resource": <logical name or URN>, "reason": <why>}``. An exempted resource is
  reported through CrossGuard's not-applicable channel with the reason (resource rules) or
  its violations are dropped (stack rules), and ``sarkops plan`` lists every exemption;
- decisions under preview unknowns (stack rules): a rule decides what it can from the
  dependency graph and calls :func:`wait_for` for what it cannot; the declaration then raises
  the SDK's ``UnknownValueError`` once, naming every value the rule waits for, which the SDK
  reports as an advisory "can't run policy ... during preview: ..." next to the violations the
  rule did find (pulumi-policy ``sdk/python/lib/pulumi_policy/policy.py``, ``AnalyzeStack``).

When each kind runs (pulumi/pulumi ``pkg/resource/deploy/step_generator.go``): the engine calls
``Analyze`` for every resource on its inputs, after the provider's Check and before the
resource is created or updated, and a mandatory violation stops that resource in ``pulumi up``;
``AnalyzeStack`` runs once after every step (``AnalyzeResources``, called from
``deployment_executor.go``), on outputs, when the resources already exist. So every check that
one resource's own inputs can decide is a resource rule; a stack rule says what it needs other
resources for (``needs``) and which resource rules check its single-resource part before create
(``covered_by``).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

from ._props import as_int, as_list, as_map

ResourceRule = Callable[[ResourceValidationArgs, ReportViolation], None]
StackRule = Callable[[StackValidationArgs, ReportViolation], None]
Remediation = Callable[[ResourceValidationArgs], Mapping[str, Any] | None]
Rule = TypeVar("Rule", bound=Callable[..., Any])

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

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
"""Policy name -> the rule as the policy runs it (settings defaults merged, waits reported),
without type matching and exemptions, for evaluating rules without the policy server."""

BEFORE_CREATE: dict[str, str] = {}
"""Policy name -> "yes" for resource rules; for stack rules, why other resources are needed and
which resource rules check the single-resource part before create. Feeds the rule table."""

_DECLARED: dict[str, list[Policy]] = {}


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------

class Settings:
    """A rule's settings: the config the engine sent over the schema defaults, with typed readers.

    Config numbers arrive as floats (they travel as a protobuf Struct), so the readers convert.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = config

    def __getitem__(self, key: str) -> Any:
        return self._config[key]

    def int(self, key: str) -> int:
        """An integer setting."""
        value = as_int(self._config[key])
        if value is None:
            raise ValueError(f"setting {key} = {self._config[key]!r} is not an integer")
        return value

    def text(self, key: str) -> str:
        """A string setting."""
        return str(self._config[key])

    def strings(self, key: str) -> list[str]:
        """A list-of-strings setting."""
        return [str(v) for v in as_list(self._config[key])]

    def ints(self, key: str) -> list[int]:
        """A list-of-integers setting (entries that are not integers are dropped)."""
        return [v for v in (as_int(x) for x in as_list(self._config[key])) if v is not None]

    def map(self, key: str) -> Mapping[str, Any]:
        """An object setting."""
        return as_map(self._config[key])


def settings(args: ResourceValidationArgs | StackValidationArgs) -> Settings:
    """The rule's settings. The declaration has already put every schema default under the
    config that arrived, so a key the schema declares is always present."""
    return Settings(args.get_config() or {})


def raise_to_min_days(args: ResourceValidationArgs, prop: str) -> Mapping[str, Any] | None:
    """Remediation: raise a too-short waiting period in days (``prop``) to the rule's ``minDays``."""
    minimum = settings(args).int("minDays")
    days = as_int(args.props.get(prop))
    if days is None or days >= minimum:
        return None
    args.props[prop] = minimum
    return args.props


def _defaults(schema: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {key: spec["default"] for key, spec in schema.items() if spec.get("default") is not None}


def _merged(config: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Schema defaults, overridden by every key the config sets (None counts as not set)."""
    return {**defaults, **{k: v for k, v in (config or {}).items() if v is not None}}


def _with_settings(args: Any, defaults: Mapping[str, Any]) -> Any:
    """The same arguments, with the schema defaults under the config that arrived."""
    config = _merged(args.get_config(), defaults)
    if isinstance(args, StackValidationArgs):
        return StackValidationArgs(args.resources, config, args.stack_tags)
    return ResourceValidationArgs(args.resource_type, args.props, args.urn, args.name, args.opts, args.provider,
                                  config, args.stack_tags)


# --------------------------------------------------------------------------------------
# Waiting for values a preview does not know
# --------------------------------------------------------------------------------------

_WAITING: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("sark_waiting", default=None)


def wait_for(what: str) -> None:
    """Note that the running rule cannot decide something until ``what`` is known.

    The rule goes on deciding everything else; when it returns, the declaration reports every
    noted value at once through the SDK's "can't run policy ... during preview" advisory.
    """
    waiting = _WAITING.get()
    if waiting is not None and what not in waiting:
        waiting.append(what)


class WaitingForValuesError(UnknownValueError):
    """Raised after a rule ran, naming every value it could not decide without."""

    def __init__(self, waiting: Sequence[str]) -> None:
        super().__init__(UNKNOWN_STRING_VALUE, [])
        self.message = (f"it waits for {', '.join(waiting)} (unknown until the resource that computes it "
                        "exists); everything else was checked")


def _settled(rule: Rule, defaults: Mapping[str, Any]) -> Rule:
    """``rule`` with its settings defaults merged in and its waits reported."""

    def run(args: Any, report_violation: ReportViolation) -> None:
        token = _WAITING.set([])
        try:
            rule(_with_settings(args, defaults), report_violation)
            waiting = _WAITING.get() or []
        finally:
            _WAITING.reset(token)
        if waiting:
            raise WaitingForValuesError(waiting)

    run.__doc__ = rule.__doc__
    run.__name__ = getattr(rule, "__name__", "rule")
    return run  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# Declarations
# --------------------------------------------------------------------------------------

def exemption_reason(config: Mapping[str, Any] | None, name: str, urn: str) -> str | None:
    """The configured reason if this resource is exempt, else None."""
    for entry in (config or {}).get("exemptions") or ():
        if isinstance(entry, Mapping) and entry.get("resource") in (name, urn):
            return str(entry.get("reason") or "no reason given")
    return None


def _schema(properties: Mapping[str, dict[str, Any]] | None) -> PolicyConfigSchema:
    return PolicyConfigSchema(properties={**(properties or {}), "exemptions": EXEMPTIONS_SCHEMA})


def _declare(module: str, policy: Policy) -> None:
    _DECLARED.setdefault(module, []).append(policy)


def policies_of(module: str) -> list[Policy]:
    """The policies declared in ``module`` (pass ``__name__``), in declaration order."""
    return list(_DECLARED.get(module, []))


def resource_rule(
    name: str,
    resource_types: Iterable[str],
    severity: Severity,
    description: str,
    *,
    fix: str,
    anchors: Anchors,
    level: EnforcementLevel = MANDATORY,
    config: Mapping[str, dict[str, Any]] | None = None,
    remediate: Remediation | None = None,
) -> Callable[[ResourceRule], ResourceRule]:
    """Declare the decorated function as a resource policy: it runs in ``Analyze``, before create."""
    types = frozenset(resource_types)
    defaults = _defaults(config or {})

    def declare(validate: ResourceRule) -> ResourceRule:
        settled = _settled(validate, defaults)

        def _validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            if args.resource_type not in types:
                return
            reason = exemption_reason(args.get_config(), args.name, args.urn)
            if reason is not None:
                args.not_applicable(f"exempted: {reason}")
            settled(args, report_violation)

        def _remediate(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
            if remediate is None or args.resource_type not in types:
                return None
            if exemption_reason(args.get_config(), args.name, args.urn) is not None:
                return None
            return remediate(_with_settings(args, defaults))

        RESOURCE_TYPES[name] = tuple(sorted(types))
        RULES[name] = settled
        BEFORE_CREATE[name] = "yes"
        policy = ResourceValidationPolicy(
            name=name, description=description, validate=_validate,
            remediate=_remediate if remediate is not None else None, enforcement_level=level,
            config_schema=_schema(config), severity=severity, tags=anchors.tags(), remediation_steps=fix,
        )
        # A hint for offline runners (sarkops plan): the types this policy would not return at
        # once for. The engine ignores it and sends every resource, which the wrapper handles.
        policy.resource_types = types  # type: ignore[attr-defined]
        _declare(validate.__module__, policy)
        return validate

    return declare


def stack_rule(
    name: str,
    severity: Severity,
    description: str,
    *,
    fix: str,
    needs: str,
    anchors: Anchors,
    covered_by: Sequence[str] = (),
    level: EnforcementLevel = MANDATORY,
    config: Mapping[str, dict[str, Any]] | None = None,
) -> Callable[[StackRule], StackRule]:
    """Declare the decorated function as a stack policy: it runs in ``AnalyzeStack``, after every step.

    :param needs: what the rule needs other resources for (why it cannot block before create).
    :param covered_by: the resource rules that check its single-resource part before create.

    A stack rule has no per-resource not-applicable channel, so a violation whose URN belongs
    to an exempt resource is dropped; ``sarkops plan`` lists every configured exemption.
    """
    defaults = _defaults(config or {})
    before = " ".join(f"`{p}`" for p in covered_by)
    steps = fix + (f" Checked before create by: {', '.join(covered_by)}." if covered_by else "")

    def declare(validate: StackRule) -> StackRule:
        settled = _settled(validate, defaults)

        def _validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            names = {r.urn: r.name for r in args.resources}
            config = args.get_config()

            def report(message: str, urn: str | None = None) -> None:
                reason = exemption_reason(config, names.get(urn or "", ""), urn or "") if urn else None
                if reason is None:
                    report_violation(message, urn)

            settled(args, report)

        RESOURCE_TYPES[name] = ()
        RULES[name] = settled
        BEFORE_CREATE[name] = f"no: needs {needs}" + (f"; before create: {before}" if before else "")
        _declare(validate.__module__, StackValidationPolicy(
            name=name, description=description, validate=_validate, enforcement_level=level,
            config_schema=_schema(config), severity=severity, tags=anchors.tags(), remediation_steps=steps,
        ))
        return validate

    return declare
