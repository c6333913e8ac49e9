"""Evaluate CrossGuard policy packs over a :class:`~sarkops.plan.runtime.Recording`, as the engine does.

A pack is loaded the way the policy analyzer loads it, from its directory, but without the
gRPC server: ``PolicyPack`` is swapped for a stand-in that captures its arguments while the
pack's ``__main__.py`` runs (the real constructor serves forever).

Evaluation drives the policy SDK's own analyzer servicer (``_PolicyAnalyzerServicer``, the
code behind ``pulumi preview --policy-pack``; private API, so pulumi-policy is pinned) with
the requests the engine would send:

1. ``GetAnalyzerInfo``, then ``Configure`` with each policy's effective config
   (:mod:`sarkops.plan.pack_config`: defaults, initial config, file; JSON Schema validation);
2. ``Remediate`` for every custom resource; returned properties replace the inputs for what
   follows (and for the next pack);
3. ``Analyze`` for every custom resource, on its (remediated) inputs;
4. ``AnalyzeStack`` once, over every resource including components and the root stack, on
   their outputs, with parent, dependencies and property dependencies.

Properties travel as protobuf Structs, so policies see exactly what they would see under the
engine: numbers as floats, secrets unwrapped (``Remediate`` gets them proxied), and preview
unknowns raising inside the proxy (reported as advisory "can't run policy ... during preview").

Exemptions (the SARK pack's convention, also usable by any pack): a policy's config may list
``{"resource": <logical name or URN>, "reason": ...}`` entries under ``exemptions``. The report
lists every entry of the effective config (:attr:`PolicyReport.exemptions`) with the resources
it names, marks the not-applicable results an exemption caused, and warns about an entry that
names no resource of the stack: a typo would otherwise exempt nothing, silently. It is a
warning, not an error, because one config file is often shared by several stacks whose
resource names differ.
"""

from __future__ import annotations

import gc
import math
import os
import re
import runpy
import sys
import traceback
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format, struct_pb2

from sarkops.errors import PolicyPackError
from sarkops.plan.files import read_json
from sarkops.plan.pack_config import LEVELS, effective_config
from sarkops.plan.runtime import STACK_TYPE, RecordedResource, Recording, _from_struct

if TYPE_CHECKING:
    from pulumi_policy import Policy

__all__ = [
    "LEVELS",
    "Exemption",
    "LoadedPack",
    "NotApplicable",
    "NotRun",
    "PolicyInfo",
    "PolicyReport",
    "Remediation",
    "Violation",
    "check_pack_config",
    "configured_exemptions",
    "effective_config",
    "evaluate",
    "load_pack",
    "read_pack_config",
]


# The SDK reports these for every resource a remediation-only (or validation-only) policy
# skips; they carry no information, and a 200-resource stack would print hundreds of them.
_BOILERPLATE_REASONS = frozenset({"Policy does not implement validate", "Policy does not implement remediate"})


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Violation:
    """One diagnostic from a policy."""

    pack: str
    policy: str
    enforcement_level: str
    """``mandatory``, ``advisory``, ``remediate`` (an applied remediation) or ``disabled``."""
    severity: str
    """``low``, ``medium``, ``high``, ``critical`` or ``""``."""
    urn: str
    """The resource; ``""`` for a stack-level violation that names none."""
    message: str
    """Full text as the SDK reports it: the policy description, a newline, the detail."""
    detail: str = ""
    """The message without the description prefix (what the rule itself said)."""


@dataclass(frozen=True)
class NotApplicable:
    """A policy that declared itself not applicable (``args.not_applicable(reason)``)."""

    pack: str
    policy: str
    urn: str
    """The resource for resource policies, ``""`` for stack policies."""
    reason: str
    exemption: bool = False
    """True if a configured exemption (see :class:`Exemption`) made the policy not applicable."""


@dataclass(frozen=True)
class NotRun:
    """A policy that could not decide during the preview, so it was not applied.

    The policy SDK reports it as an advisory diagnostic worded ``can't run policy '<name>' from
    policy pack '<pack>@v<version>' during preview: <why>`` (``_PolicyAnalyzerServicer`` in
    pulumi/pulumi-policy ``sdk/python/lib/pulumi_policy/policy.py``), which is what the CLI
    prints; this record keeps the policy, the resource and the why for the summary.
    """

    pack: str
    policy: str
    urn: str
    """The resource (``""`` for a stack policy)."""
    reason: str
    """The SDK's explanation, e.g. ``string value at .cidrIpv4 can't be known during preview``."""
    kind: str = "policy"
    """``policy`` or ``remediation``."""


@dataclass(frozen=True)
class Exemption:
    """One ``exemptions`` entry of a policy's effective config."""

    pack: str
    policy: str
    resource: str
    """The logical name or URN the entry names."""
    reason: str
    matches: tuple[str, ...] = ()
    """URNs of the stack's resources it names; empty if it names none (a typo, or another stack's resource)."""


@dataclass(frozen=True)
class Remediation:
    """A remediation that changed a resource's inputs before validation."""

    pack: str
    policy: str
    urn: str
    changed: dict[str, tuple[Any, Any]]
    """Input key -> (before, after); values may hold secrets, mask before printing."""


@dataclass(frozen=True)
class PolicyInfo:
    """What ``GetAnalyzerInfo`` says about one policy."""

    name: str
    description: str
    enforcement_level: str
    severity: str
    kind: str
    """``resource`` or ``stack``."""
    config_schema: dict[str, Any]
    """JSON schema ``properties``."""
    required: list[str]
    remediation_steps: str = ""


@dataclass(frozen=True)
class LoadedPack:
    """A policy pack as its ``__main__.py`` constructed it."""

    dir: Path
    name: str
    version: str
    policies: list[Policy]
    enforcement_level: Any
    """The pack default, a ``pulumi_policy.EnforcementLevel``."""
    initial_config: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Other ``PolicyPack`` arguments (description, display_name, readme, provider, tags, repository)."""


@dataclass
class PolicyReport:
    """Everything the packs reported for one recording."""

    violations: list[Violation] = field(default_factory=list)
    not_applicable: list[NotApplicable] = field(default_factory=list)
    remediations: list[Remediation] = field(default_factory=list)
    policies: dict[str, dict[str, PolicyInfo]] = field(default_factory=dict)
    """Pack name -> policy name -> metadata."""
    config: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Pack name -> policy name -> ``{"enforcementLevel": ..., "properties": {...}}`` as sent to Configure."""
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """URN -> inputs after remediation (only resources a remediation changed)."""
    warnings: list[str] = field(default_factory=list)
    """Pack set-ups that behave differently from what they seem to say."""
    exemptions: list[Exemption] = field(default_factory=list)
    """Every ``exemptions`` entry of the effective configs, pack by pack, in config order."""
    not_run: list[NotRun] = field(default_factory=list)
    """Policies that could not run during the preview (unknown values), one per policy and resource."""

    def at_level(self, level: str) -> list[Violation]:
        """Violations of one enforcement level."""
        return [v for v in self.violations if v.enforcement_level == level]

    @property
    def mandatory(self) -> list[Violation]:
        """Violations that fail the plan."""
        return self.at_level("mandatory")

    @property
    def exempted(self) -> list[NotApplicable]:
        """The not-applicable results that configured exemptions caused."""
        return [n for n in self.not_applicable if n.exemption]


# --------------------------------------------------------------------------------------
# Loading packs
# --------------------------------------------------------------------------------------

@contextmanager
def _pack_context(directory: Path) -> Iterator[None]:
    """Run with the pack dir as cwd and first on sys.path; drop its modules afterwards."""
    import pulumi_policy
    import pulumi_policy.policy as policy_module

    root = str(directory)
    before = set(sys.modules)
    old_cwd, old_path = os.getcwd(), list(sys.path)
    saved = (pulumi_policy.PolicyPack, policy_module.PolicyPack)
    sys.path.insert(0, root)
    os.chdir(root)
    try:
        yield
    finally:
        pulumi_policy.PolicyPack, policy_module.PolicyPack = saved
        os.chdir(old_cwd)
        sys.path[:] = old_path
        # The captured policies keep their functions alive; dropping the modules lets another
        # pack with a module of the same name import its own.
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules.get(name), "__file__", None) or ""
            if module_file.startswith(root + os.sep):
                del sys.modules[name]


def _pack_version(directory: Path) -> str:
    """``version`` from PulumiPolicy.yaml (what the CLI reports), else the SDK's ``0.0.1``."""
    path = directory / "PulumiPolicy.yaml"
    if path.is_file():
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise PolicyPackError(f"{path}: not valid YAML: {error}") from None
        if isinstance(data, dict) and data.get("version"):
            return str(data["version"])
    return "0.0.1"


def _innermost_frame(error: BaseException, root: Path) -> str:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith(str(root) + os.sep)]
    return f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def load_pack(directory: Path | str) -> LoadedPack:
    """Load the policy pack in ``directory`` without starting its analyzer server.

    :raises PolicyPackError: no ``__main__.py``, it failed, or it never constructed a PolicyPack.
    """
    import pulumi_policy
    import pulumi_policy.policy as policy_module

    directory = Path(directory).resolve()
    main = directory / "__main__.py"
    if not main.is_file():
        raise PolicyPackError(f"{directory}: not a policy pack (no __main__.py)")
    captured: list[dict[str, Any]] = []

    # Same parameters as PolicyPack.__init__, which packs may call positionally.
    def capture(  # noqa: PLR0917
                name: str, policies: list[Policy], enforcement_level: Any = None,
                initial_config: dict[str, Any] | None = None, description: str | None = None,
                display_name: str | None = None, readme: str | None = None, provider: str | None = None,
                tags: list[str] | None = None, repository: str | None = None) -> None:
        captured.append({"name": name, "policies": policies, "enforcement_level": enforcement_level,
                         "initial_config": initial_config, "options": {
                             "description": description, "display_name": display_name, "readme": readme,
                             "provider": provider, "tags": tags, "repository": repository}})

    with _pack_context(directory):
        pulumi_policy.PolicyPack = capture  # type: ignore[assignment,misc]
        policy_module.PolicyPack = capture  # type: ignore[assignment,misc]
        try:
            runpy.run_path(str(main), run_name="__main__")
        except Exception as error:
            raise PolicyPackError(f"policy pack {directory}: __main__.py failed: "
                                  f"{type(error).__name__}: {error}{_innermost_frame(error, directory)}") from error

    if not captured:
        raise PolicyPackError(f"policy pack {directory}: __main__.py never constructs a PolicyPack")
    pack = captured[-1]
    name, policies = pack["name"], pack["policies"]
    # The checks the real PolicyPack constructor makes before it starts serving.
    if not isinstance(name, str) or not policy_module._POLICY_PACK_NAME_RE.match(name):
        raise PolicyPackError(f"policy pack {directory}: invalid pack name {name!r} "
                              "(alphanumerics, hyphens, underscores and periods only)")
    if not isinstance(policies, list) or not policies or \
            not all(isinstance(p, pulumi_policy.Policy) for p in policies):
        raise PolicyPackError(f"policy pack {directory}: `policies` must be a non-empty list of Policy objects")
    level = pack["enforcement_level"] or pulumi_policy.EnforcementLevel.ADVISORY
    return LoadedPack(dir=directory, name=name, version=_pack_version(directory), policies=policies,
                      enforcement_level=level, initial_config=pack["initial_config"],
                      options={k: v for k, v in pack["options"].items() if v is not None})


def read_pack_config(path: Path | str) -> dict[str, Any]:
    """Parse a ``--policy-pack-config`` JSON file."""
    path = Path(path)
    data = read_json(path, "policy pack config", PolicyPackError)
    if not isinstance(data, dict):
        raise PolicyPackError(f"{path}: a policy pack config must be a JSON object keyed by policy name")
    return data


# --------------------------------------------------------------------------------------
# Config: defaults, initial config, file; validation
# --------------------------------------------------------------------------------------

def check_pack_config(pack: LoadedPack, config: Mapping[str, Any] | None, *, source: str) -> dict[str, Any]:
    """Validate ``config`` for ``pack`` before anything runs; errors name ``source`` (the file).

    :returns: the effective config, as :func:`effective_config`.
    """
    infos, initial = _analyzer_info(_servicer(pack))
    return effective_config(pack.name, infos, initial, config, source=source)



# --------------------------------------------------------------------------------------
# Marshalling
# --------------------------------------------------------------------------------------

def _struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(props)
    return struct


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(duration: str) -> float:
    """A Go duration (``"30m"``, ``"1h30m"``) in seconds, as the engine converts custom timeouts."""
    return math.fsum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(duration))


def _options(resource: RecordedResource) -> Any:
    from pulumi.runtime import proto

    options = proto.AnalyzerResourceOptions(
        protect=resource.protect,
        ignoreChanges=resource.ignore_changes,
        deleteBeforeReplace=bool(resource.delete_before_replace),
        deleteBeforeReplaceDefined=resource.delete_before_replace is not None,
        additionalSecretOutputs=resource.additional_secret_outputs,
        aliases=resource.aliases,
        parent=resource.parent or "",
    )
    if resource.custom_timeouts:
        options.customTimeouts.CopyFrom(proto.AnalyzerResourceOptions.CustomTimeouts(
            **{k: _seconds(v) for k, v in resource.custom_timeouts.items()}))
    return options


class _Providers:
    """The provider each custom resource would be managed by, as Analyze requests carry it.

    Explicit providers are recorded resources; default providers (created by the engine, so
    absent under the mocks) are synthesised as the engine names them, ``default_<version>``,
    with the package's stack config as their properties.
    """

    def __init__(self, recording: Recording, config: Mapping[str, str]) -> None:
        self.recording = recording
        self.config = config
        self.by_urn = {r.urn: r for r in recording.resources}
        self.cache: dict[str, Any] = {}

    def for_resource(self, resource: RecordedResource) -> Any:
        from pulumi.runtime import proto

        if resource.provider:
            # A provider reference is "<urn>::<id>"; URNs contain "::" themselves.
            provider = self.by_urn.get(resource.provider.rsplit("::", 1)[0])
            if provider is not None:
                return proto.AnalyzerProviderResource(type=provider.type, urn=provider.urn, name=provider.name,
                                                      properties=_struct(provider.inputs))
        package = resource.type.split(":", 1)[0]
        if package == "pulumi":
            return None
        if package not in self.cache:
            name = "default" + (f"_{resource.version.replace('.', '_').replace('-', '_')}" if resource.version else "")
            type_ = f"pulumi:providers:{package}"
            props = {key.split(":", 1)[1]: value for key, value in self.config.items()
                     if key.startswith(f"{package}:")}
            if resource.version:
                props["version"] = resource.version
            self.cache[package] = proto.AnalyzerProviderResource(
                type=type_, name=name, properties=_struct(props),
                urn=f"urn:pulumi:{self.recording.stack}::{self.recording.project}::{type_}::{name}")
        return self.cache[package]


def _level_word(value: int) -> str:
    from pulumi.runtime import proto

    return proto.EnforcementLevel.Name(value).lower()


def _severity_word(value: int) -> str:
    from pulumi.runtime import proto

    name = proto.PolicySeverity.Name(value)
    return "" if name.endswith("UNSPECIFIED") else name.removeprefix("POLICY_SEVERITY_").lower()


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------

def _servicer(pack: LoadedPack, policies: Sequence[Any] | None = None) -> Any:
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    return _PolicyAnalyzerServicer(pack.name, pack.version, list(pack.policies if policies is None else policies),
                                   pack.enforcement_level, pack.initial_config, **pack.options)


def _applies_to(policy: Any, resource_type: str) -> bool:
    """False only for a policy that declares ``resource_types`` without this type.

    Python CrossGuard has no typed matching: the engine sends every resource to every
    resource policy, and a policy checks the type itself. Policies that also declare the
    tokens they check (ours do, as ``resource_types``) would return at once for any other
    type, so skipping those calls gives the same report; a policy without the attribute is
    always called, exactly as the engine calls it.
    """
    types = getattr(policy, "resource_types", None)
    return types is None or resource_type in types


def _analyzer_info(servicer: Any) -> tuple[dict[str, PolicyInfo], dict[str, Any]]:
    """Policy metadata and the initial config, both as ``GetAnalyzerInfo`` reports them.

    The initial config is taken from the response, not from the Python object the pack passed,
    because that is what the engine applies: an entry without an enforcement level arrives as
    level 0, ADVISORY (the proto field has no presence), and the engine applies it as advisory.
    """
    from pulumi.runtime import proto

    info = servicer.GetAnalyzerInfo(None, None)
    initial = {name: {"enforcementLevel": _level_word(entry.enforcementLevel),
                      **json_format.MessageToDict(entry.properties)}
               for name, entry in info.initialConfig.items()}
    result = {}
    for policy in info.policies:
        result[policy.name] = PolicyInfo(
            name=policy.name, description=policy.description,
            enforcement_level=_level_word(policy.enforcementLevel), severity=_severity_word(policy.severity),
            kind="stack" if policy.policy_type == proto.PolicyType.POLICY_TYPE_STACK else "resource",
            config_schema=json_format.MessageToDict(policy.configSchema.properties),
            required=list(policy.configSchema.required), remediation_steps=policy.remediation_steps,
        )
    return result, initial


def _initial_config_warnings(pack: LoadedPack) -> list[str]:
    """Entries of the pack's ``initial_config`` that the engine will silently make advisory."""
    return [f"policy pack {pack.name!r}: initial_config for {name!r} sets no enforcementLevel, which the engine "
            "applies as advisory; add the level to keep the policy's own"
            for name, entry in (pack.initial_config or {}).items()
            if isinstance(entry, Mapping) and entry.get("enforcementLevel") is None]


class _MemoJsonFormat:
    """Stands in for ``json_format`` inside ``pulumi_policy.policy`` during one evaluation.

    The servicer's ``Analyze`` converts a request's properties with ``MessageToDict`` once per
    policy (and its ``AnalyzeStack`` every resource once per stack policy, before
    :mod:`sarkops.plan.stack_policies` replaced it): with 40 policies and 200 resources that was
    19,000 conversions and a third of the evaluation time. The result is only read
    (``deserialize_properties`` builds new containers), so one conversion per message is
    enough; the memo holds each message, so an ``id`` cannot be reused while it is cached.
    """

    def __init__(self, real: Any) -> None:
        self._real = real
        self._memo: dict[int, tuple[Any, Any]] = {}

    def MessageToDict(self, message: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 (the module's name)
        if args or kwargs:
            return self._real.MessageToDict(message, *args, **kwargs)
        hit = self._memo.get(id(message))
        if hit is None or hit[0] is not message:
            hit = (message, self._real.MessageToDict(message))
            self._memo[id(message)] = hit
        return hit[1]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _MemoDeserialize:
    """Stands in for ``deserialize_properties`` inside ``pulumi_policy.policy`` during one evaluation.

    After the ``MessageToDict`` memo, ``Analyze`` still rebuilds a resource's properties once per
    policy (``AnalyzeStack`` no longer goes through the servicer: :mod:`sarkops.plan.stack_policies`
    builds its resources once). Sharing one result is safe where the servicer wraps it in
    ``unknown_checking_proxy``, which copies every mapping and list it wraps, so no policy can
    change what the next one sees. ``Remediate`` (``proxy_secrets=True``) hands the result to
    remediations that rewrite it in place, so that path is never shared.
    """

    def __init__(self, real: Any) -> None:
        self._real = real
        self._memo: dict[int, tuple[Any, Any]] = {}

    def __call__(self, props: Any, proxy_secrets: bool = False) -> Any:
        if proxy_secrets:
            return self._real(props, proxy_secrets)
        hit = self._memo.get(id(props))
        if hit is None or hit[0] is not props:
            hit = (props, self._real(props))
            self._memo[id(props)] = hit
        return hit[1]


@contextmanager
def _memoized_conversions() -> Iterator[None]:
    import pulumi_policy.policy as policy_module

    real = policy_module.json_format
    real_deserialize = policy_module.deserialize_properties
    policy_module.json_format = _MemoJsonFormat(real)  # type: ignore[assignment]
    policy_module.deserialize_properties = _MemoDeserialize(real_deserialize)  # type: ignore[assignment]
    try:
        yield
    finally:
        policy_module.json_format = real
        policy_module.deserialize_properties = real_deserialize


def _call(pack: LoadedPack, method: Any, request: Any, urn: str) -> Any:
    """Call a servicer method; a policy that raises is a pack error naming policy file and resource."""
    try:
        return method(request, None)
    except Exception as error:
        raise PolicyPackError(
            f"policy pack {pack.name!r}: a policy raised {type(error).__name__}: {error} while evaluating "
            f"{urn or 'the stack'}{_innermost_frame(error, pack.dir)}") from error


def _violations(pack: LoadedPack, response: Any, urn: str) -> list[Violation]:
    found = []
    for diagnostic in response.diagnostics:
        prefix = diagnostic.description + "\n"
        detail = diagnostic.message[len(prefix):] if diagnostic.message.startswith(prefix) else diagnostic.message
        found.append(Violation(pack=pack.name, policy=diagnostic.policyName,
                               enforcement_level=_level_word(diagnostic.enforcementLevel),
                               severity=_severity_word(diagnostic.severity),
                               urn=diagnostic.urn or urn, message=diagnostic.message, detail=detail))
    return found


def _not_applicable(pack: LoadedPack, response: Any, urn: str) -> list[NotApplicable]:
    return [NotApplicable(pack=pack.name, policy=n.policy_name, urn=urn, reason=n.reason)
            for n in response.not_applicable if n.reason not in _BOILERPLATE_REASONS]


class _Evaluation:
    """One evaluation: the packs' servicers plus the state the steps pass along."""

    def __init__(self, recording: Recording, config: Mapping[str, str],
                 analyze_only: Collection[str] | None = None) -> None:
        self.recording = recording
        self.report = PolicyReport()
        self.providers = _Providers(recording, config)
        self.custom = [r for r in recording.resources if r.custom and (analyze_only is None or r.urn in analyze_only)]
        self.inputs: dict[str, dict[str, Any]] = {r.urn: r.inputs for r in self.custom}
        self.servicers: list[tuple[LoadedPack, Any, dict[str, PolicyInfo]]] = []
        self._configure_requests: dict[str, Any] = {}
        self._typed: dict[tuple[str, str], Any] = {}

    def for_type(self, pack: LoadedPack, resource_type: str) -> Any | None:
        """A servicer holding only the pack's policies that apply to ``resource_type``, configured
        like the pack's own (see :func:`_applies_to`); built once per type. None when no policy
        applies (the servicer refuses an empty list, and there is nothing to ask)."""
        key = (pack.name, resource_type)
        if key not in self._typed:
            policies = [p for p in pack.policies if _applies_to(p, resource_type)]
            servicer = _servicer(pack, policies) if policies else None
            if servicer is not None:
                servicer.Configure(self._configure_requests[pack.name], None)
            self._typed[key] = servicer
        return self._typed[key]

    def configure(self, pack: LoadedPack, given: Mapping[str, Any] | None) -> None:
        """GetAnalyzerInfo, reconcile the config, Configure."""
        from pulumi.runtime import proto

        servicer = _servicer(pack)
        infos, initial = _analyzer_info(servicer)
        effective = effective_config(pack.name, infos, initial, given)
        self.report.warnings.extend(_initial_config_warnings(pack))
        request = proto.ConfigureAnalyzerRequest()
        for name, entry in effective.items():
            request.policyConfig[name].CopyFrom(proto.PolicyConfig(
                enforcementLevel=proto.EnforcementLevel.Value(entry["enforcementLevel"].upper()),
                properties=_struct(entry["properties"])))
        servicer.Configure(request, None)
        self._configure_requests[pack.name] = request
        self.report.policies[pack.name] = infos
        self.report.config[pack.name] = effective
        self.servicers.append((pack, servicer, infos))

    def _request(self, resource: RecordedResource) -> Any:
        from pulumi.runtime import proto

        request = proto.AnalyzeRequest(type=resource.type, urn=resource.urn, name=resource.name,
                                       properties=_struct(self.inputs[resource.urn]), options=_options(resource))
        provider = self.providers.for_resource(resource)
        if provider is not None:
            request.provider.CopyFrom(provider)
        return request

    def remediate(self) -> None:
        """Step 1: Remediate each custom resource, pack by pack; rewritten inputs carry forward."""
        for pack, _, infos in self.servicers:
            levels = {entry["enforcementLevel"] for entry in self.report.config[pack.name].values()}
            if "remediate" not in levels:
                continue  # no policy can remediate: skip the per-resource round trips
            for resource in self.custom:
                typed = self.for_type(pack, resource.type)
                if typed is None:
                    continue
                response = _call(pack, typed.Remediate, self._request(resource), resource.urn)
                for remediation in response.remediations:
                    self._apply(pack, infos, resource, remediation)
                self.report.not_applicable.extend(_not_applicable(pack, response, resource.urn))

    def _apply(self, pack: LoadedPack, infos: Mapping[str, PolicyInfo], resource: RecordedResource,
               remediation: Any) -> None:
        info = infos.get(remediation.policyName)
        severity = info.severity if info else ""
        if remediation.diagnostic:
            # The engine shows a remediation that could not run (preview unknowns) as a warning.
            self.report.violations.append(Violation(
                pack=pack.name, policy=remediation.policyName, enforcement_level="advisory", severity=severity,
                urn=resource.urn, message=remediation.diagnostic, detail=remediation.diagnostic))
        if not remediation.HasField("properties"):
            return
        before = self.inputs[resource.urn]
        after = _from_struct(remediation.properties)
        changed = {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after))
                   if before.get(k) != after.get(k)}
        self.inputs[resource.urn] = after
        self.report.inputs[resource.urn] = after
        if changed:
            keys = ", ".join(changed)
            self.report.remediations.append(Remediation(pack.name, remediation.policyName, resource.urn, changed))
            self.report.violations.append(Violation(
                pack=pack.name, policy=remediation.policyName, enforcement_level="remediate", severity=severity,
                urn=resource.urn, message=f"{remediation.description}\nremediated: {keys}",
                detail=f"remediated: {keys}"))

    def analyze(self) -> None:
        """Step 2: Analyze each custom resource's (remediated) inputs."""
        for pack, _, _ in self.servicers:
            for resource in self.custom:
                typed = self.for_type(pack, resource.type)
                if typed is None:
                    continue
                response = _call(pack, typed.Analyze, self._request(resource), resource.urn)
                self.report.violations.extend(_violations(pack, response, resource.urn))
                self.report.not_applicable.extend(_not_applicable(pack, response, resource.urn))

    def stack_request(self) -> Any:
        """The ``AnalyzeStackRequest``: every resource's outputs, the root stack included (the
        engine sends the whole snapshot, so top-level resources have the stack as parent)."""
        from pulumi.runtime import proto

        rec = self.recording
        request = proto.AnalyzeStackRequest()
        request.resources.add(type=STACK_TYPE, urn=rec.stack_urn, name=f"{rec.project}-{rec.stack}",
                              properties=_struct(rec.outputs))
        for resource in rec.resources:
            entry = request.resources.add(type=resource.type, urn=resource.urn, name=resource.name,
                                          properties=_struct(self._outputs(resource)), options=_options(resource),
                                          parent=resource.parent or "", dependencies=resource.dependencies)
            for key, urns in resource.property_dependencies.items():
                entry.propertyDependencies[key].urns.extend(urns)
            provider = self.providers.for_resource(resource) if resource.custom else None
            if provider is not None:
                entry.provider.CopyFrom(provider)
        return request

    def analyze_stack(self) -> None:
        """Step 3: AnalyzeStack once per pack, over :meth:`stack_request`."""
        from sarkops.plan.stack_policies import analyze_stack

        request = self.stack_request()
        for pack, servicer, _ in self.servicers:
            # The SDK's AnalyzeStack, with the resources built once for all the pack's stack policies.
            response = _call(pack, lambda request, _context, servicer=servicer: analyze_stack(servicer, request),
                             request, "")
            self.report.violations.extend(_violations(pack, response, ""))
            self.report.not_applicable.extend(_not_applicable(pack, response, ""))

    def _outputs(self, resource: RecordedResource) -> dict[str, Any]:
        remediated = self.report.inputs.get(resource.urn)
        if remediated is None:
            return resource.outputs
        # A real deployment sends the remediated inputs to the provider, so its outputs follow.
        outputs = {k: v for k, v in resource.outputs.items() if k not in resource.inputs or k in remediated}
        outputs.update(remediated)
        return outputs


def configured_exemptions(config: Mapping[str, Mapping[str, Mapping[str, Any]]],
                          recording: Recording) -> list[Exemption]:
    """Every ``exemptions`` entry of the effective ``config`` (pack -> policy -> entry), with its matches."""
    by_name: dict[str, list[str]] = {f"{recording.project}-{recording.stack}": [recording.stack_urn]}
    for resource in recording.resources:
        by_name.setdefault(resource.name, []).append(resource.urn)
    urns = {r.urn for r in recording.resources} | {recording.stack_urn}
    found = []
    for pack, policies in config.items():
        for policy, entry in policies.items():
            for item in entry.get("properties", {}).get("exemptions") or []:
                if not isinstance(item, Mapping):
                    continue
                resource = str(item.get("resource", ""))
                matches = tuple(by_name.get(resource, [resource] if resource in urns else []))
                found.append(Exemption(pack, policy, resource, str(item.get("reason", "")), matches))
    return found


_CANT_RUN = re.compile(r"^can't run (policy|remediation) '(?P<policy>[^']*)' from policy pack '[^']*' "
                       r"during preview: (?P<reason>.*)$", re.DOTALL)


def policies_not_run(violations: Sequence[Violation]) -> list[NotRun]:
    """The "can't run ... during preview" diagnostics among ``violations``, as :class:`NotRun` records."""
    found = []
    for violation in violations:
        match = _CANT_RUN.match(violation.detail or violation.message)
        if match:
            found.append(NotRun(pack=violation.pack, policy=violation.policy, urn=violation.urn,
                                reason=match.group("reason").strip(), kind=match.group(1)))
    return found


def _mark_exemptions(report: PolicyReport) -> None:
    """Flag the not-applicable results exemptions caused; warn about exemptions that match nothing."""
    exempted = {(e.pack, e.policy, urn) for e in report.exemptions for urn in e.matches}
    report.not_applicable = [replace(n, exemption=True) if (n.pack, n.policy, n.urn) in exempted else n
                             for n in report.not_applicable]
    for exemption in report.exemptions:
        if not exemption.matches:
            report.warnings.append(
                f"policy pack {exemption.pack!r}: the exemption of {exemption.resource!r} from {exemption.policy!r} "
                "names no resource of this stack (by logical name or URN), so it exempts nothing; fix the name or "
                "remove the entry")


def evaluate(
    recording: Recording,
    packs: Sequence[LoadedPack],
    pack_configs: Sequence[Mapping[str, Any] | None] = (),
    *,
    config: Mapping[str, str] | None = None,
    analyze_only: Collection[str] | None = None,
) -> PolicyReport:
    """Run every pack over ``recording`` the way ``pulumi preview --policy-pack`` would.

    :param pack_configs: ``--policy-pack-config`` contents, paired with ``packs`` by position
        (missing entries mean no config).
    :param config: the stack config map; the ``<package>:`` keys become the properties of the
        default providers the policies see.
    :param analyze_only: URNs of the custom resources to send to ``Remediate`` and ``Analyze``
        (default: all). For a caller that already has every other resource's result, such as a
        suite re-evaluating variants of one recording that differ in a resource or two; stack
        policies always see the whole stack.
    :raises PolicyPackError: invalid pack config, or a policy raised an exception.
    """
    evaluation = _Evaluation(recording, config or {}, analyze_only)
    for index, pack in enumerate(packs):
        evaluation.configure(pack, pack_configs[index] if index < len(pack_configs) else None)
    # The servicer allocates hundreds of thousands of short-lived proxies; each full garbage
    # collection would also walk every object already alive (the SDKs, the recording), which
    # cost more than the policies themselves. Freezing those for the evaluation leaves the
    # collector only the new objects.
    gc.freeze()
    try:
        with _memoized_conversions():
            evaluation.remediate()
            evaluation.analyze()
            evaluation.analyze_stack()
    finally:
        gc.unfreeze()
    report = evaluation.report
    report.exemptions = configured_exemptions(report.config, recording)
    _mark_exemptions(report)
    report.not_run = policies_not_run(report.violations)
    return report
