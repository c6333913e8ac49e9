"""``AnalyzeStack`` with the stack's resources built once per evaluation instead of once per stack policy.

The policy SDK's ``_PolicyAnalyzerServicer.AnalyzeStack`` (pulumi/pulumi-policy
``sdk/python/lib/pulumi_policy/policy.py``, unchanged from the pinned 1.21.0 to the mirror's HEAD)
rebuilds every resource of the request for each stack policy: its properties deserialised and
wrapped in unknown-checking proxies, its options, its provider, and the parent and dependency
links between the ``PolicyResource`` objects. With a dozen stack policies over 250 resources
that was most of the policy time of a plan. :func:`analyze_stack` builds that list once and
passes it to every stack policy, and is otherwise the SDK's loop line for line: the same
enforcement levels (disabled skipped, remediate treated as mandatory), the same per-policy
config copy, the same "can't run policy ... during preview" diagnostic when a policy touches an
unknown, the same not-applicable results, in the same order.

Sharing is only equivalent if no policy changes what the next one sees, which under the SDK
cannot happen because each gets its own copy. So the shared objects are read-only: a mapping or
list in the properties, the resource list, the dependency lists and maps, and the attributes of
the resources, options and providers refuse changes (:class:`SharedResourceMutationError`). Every
attempt is noted even when the policy catches the error, and a policy that attempted one is run
again on a private copy built exactly as the SDK builds it, with its first results discarded: a
pack that does mutate gets the SDK's behaviour, only slower. The project's own stack policies
never take that path (tests/sarkops/plan/test_stack_policies.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from inspect import isawaitable
from typing import Any

from pulumi.runtime import proto
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
    StackValidationPolicy,
    _NotApplicableError,
    _PolicyAnalyzerServicer,
)
from pulumi_policy.proxy import UnknownValueError, _append_prop, _DictProxy, _ListProxy, unknown_checking_proxy

__all__ = ["SharedResourceMutationError", "analyze_stack", "build_stack_resources", "sealed"]


class SharedResourceMutationError(TypeError):
    """A stack policy tried to change a resource that every stack policy shares."""


_attempts: list[str] = []
"""What the running stack policy tried to change (reset before each policy)."""

_sealed: set[int] = set()
"""ids of the shared resource, option and provider objects while the stack policies run."""


def _refuse(what: str) -> None:
    _attempts.append(what)
    raise SharedResourceMutationError(
        f"stack policies share one read-only view of the stack's resources: cannot {what}; copy the value first "
        "(copy.copy / copy.deepcopy give plain, writable dicts and lists)")


class _FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that refuses changes; copies of it are plain dicts."""

    __slots__ = ()

    def _refuse(self, *_: Any, **__: Any) -> Any:
        _refuse("change a mapping")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse

    def __reduce_ex__(self, protocol: Any) -> Any:
        return dict, (dict(self),)


class _FrozenList(list):  # type: ignore[type-arg]
    """A list that refuses changes; copies of it (and ``+``) are plain lists."""

    __slots__ = ()

    def _refuse(self, *_: Any, **__: Any) -> Any:
        _refuse("change a list")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = append = extend = insert = pop = remove = clear = sort = \
        reverse = _refuse

    def __reduce_ex__(self, protocol: Any) -> Any:
        return list, (list(self),)


class _Sealed:
    """Attributes fixed once the object is in :data:`_sealed` (copies of it are writable)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if id(self) in _sealed:
            _refuse(f"set {type(self).__mro__[2].__name__}.{name}")
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if id(self) in _sealed:
            _refuse(f"delete {type(self).__mro__[2].__name__}.{name}")
        super().__delattr__(name)


class _SharedResource(_Sealed, PolicyResource):
    pass


class _SharedOptions(_Sealed, PolicyResourceOptions):
    pass


class _SharedTimeouts(_Sealed, PolicyCustomTimeouts):
    pass


class _SharedProvider(_Sealed, PolicyProviderResource):
    pass


def _frozen_proxy(value: Any, path: list[str]) -> Any:
    """``unknown_checking_proxy`` (pulumi_policy ``proxy.py`` ``_proxy_helper``) over read-only containers.

    The proxies are the SDK's own classes, so a policy sees the same types and the same
    ``UnknownValueError`` paths; only the containers they wrap (also what ``props["__target"]``
    returns) refuse changes.
    """
    if isinstance(value, list):
        return _ListProxy(_FrozenList(_frozen_proxy(item, _append_prop(path, i)) for i, item in enumerate(value)),
                          path)
    if isinstance(value, dict):
        return _DictProxy(_FrozenDict({key: _frozen_proxy(item, _append_prop(path, key))
                                       for key, item in value.items()}), path)
    return value


def _servicer_field(servicer: _PolicyAnalyzerServicer, name: str) -> Any:
    return getattr(servicer, f"_PolicyAnalyzerServicer__{name}")


def _properties(struct: Any, shared: bool) -> Any:
    from google.protobuf import json_format

    deserialized = deserialize_properties(json_format.MessageToDict(struct))
    return _frozen_proxy(deserialized, []) if shared else unknown_checking_proxy(deserialized)


def _options(servicer: _PolicyAnalyzerServicer, entry: Any, shared: bool) -> PolicyResourceOptions:
    opts = servicer._get_resource_options(entry)
    if not shared:
        return opts
    timeouts = opts.custom_timeouts
    return _SharedOptions(opts.protect, opts.ignore_changes, opts.delete_before_replace, opts.aliases,
                          _SharedTimeouts(timeouts.create_seconds, timeouts.update_seconds, timeouts.delete_seconds),
                          opts.additional_secret_outputs, opts.parent)


def _provider(entry: Any, shared: bool) -> PolicyProviderResource | None:
    """``_PolicyAnalyzerServicer._get_provider_resource``, read-only when ``shared``."""
    if not entry.HasField("provider"):
        return None
    provider = entry.provider
    cls = _SharedProvider if shared else PolicyProviderResource
    return cls(provider.type, _properties(provider.properties, shared), provider.urn, provider.name)


def build_stack_resources(servicer: _PolicyAnalyzerServicer, request: Any, *, shared: bool) -> list[PolicyResource]:
    """The ``PolicyResource`` list ``AnalyzeStack`` gives a stack policy, linked as the SDK links it.

    :param shared: read-only objects, for every stack policy of the evaluation; False builds
        exactly the SDK's objects (what a policy that mutates gets, one copy per policy).
    """
    resources: list[PolicyResource] = []
    links = []
    for entry in request.resources:
        if shared:
            resource = _SharedResource(entry.type, _properties(entry.properties, True), entry.urn, entry.name,
                                       _options(servicer, entry, True), _provider(entry, True), None, [], {})
        else:
            resource = PolicyResource(entry.type, _properties(entry.properties, False), entry.urn, entry.name,
                                      servicer._get_resource_options(entry), _provider(entry, False), None, [], {})
        resources.append(resource)
        links.append((resource, entry.parent, list(entry.dependencies),
                      {key: list(value.urns) for key, value in entry.propertyDependencies.items()}))
    # The SDK's dict comprehension order: a later resource with the same URN wins.
    by_urn = {resource.urn: resource for resource in resources}
    for resource, parent, dependencies, property_dependencies in links:
        if parent is not None and parent in by_urn:
            resource.parent = by_urn[parent]
        resource.dependencies = [by_urn[urn] for urn in dependencies if urn in by_urn]
        resource.property_dependencies = {key: [by_urn[urn] for urn in urns if urn in by_urn]
                                          for key, urns in property_dependencies.items()}
        if shared:
            resource.dependencies = _FrozenList(resource.dependencies)
            resource.property_dependencies = _FrozenDict(
                {key: _FrozenList(value) for key, value in resource.property_dependencies.items()})
    return _FrozenList(resources) if shared else resources


@contextmanager
def sealed(resources: list[PolicyResource]) -> Iterator[None]:
    """Seal the shared objects of ``resources`` (from :func:`build_stack_resources`) while stack policies run."""
    ids = set()
    for resource in resources:
        ids |= {id(resource), id(resource.opts), id(resource.opts.custom_timeouts)}
        if resource.provider is not None:
            ids.add(id(resource.provider))
    _sealed.update(ids)
    try:
        yield
    finally:
        _sealed.difference_update(ids)


def _run_policy(servicer: _PolicyAnalyzerServicer, policy: StackValidationPolicy, level: EnforcementLevel,
                resources: list[PolicyResource], response: Any) -> None:
    """One stack policy, as the body of the SDK's ``AnalyzeStack`` loop runs it."""
    pack_name = _servicer_field(servicer, "policy_pack_name")
    pack_version = _servicer_field(servicer, "policy_pack_version")
    report_violation = servicer._create_report_violation(response, policy.name, policy.description, level,
                                                         policy.severity)
    args = StackValidationArgs(resources, servicer._get_policy_config(policy.name),
                               _servicer_field(servicer, "stack_tags"))
    try:
        result = policy.validate(args, report_violation)
        if isawaitable(result):
            loop = asyncio.new_event_loop()
            task = asyncio.Task(result, loop=loop)
            loop.run_until_complete(task)
            loop.close()
    except UnknownValueError as error:
        response.diagnostics.append(proto.AnalyzeDiagnostic(
            policyName=policy.name,
            policyPackName=pack_name,
            policyPackVersion=pack_version,
            message=(f"can't run policy '{policy.name}' from policy pack "
                     f"'{pack_name}@v{pack_version}' during preview: {error.message}"),
            urn="",
            description=policy.description,
            enforcementLevel=servicer._map_enforcement_level(EnforcementLevel.ADVISORY),
        ))
    except _NotApplicableError as error:
        response.not_applicable.append(proto.PolicyNotApplicable(policy_name=policy.name, reason=error.reason or ""))


def analyze_stack(servicer: _PolicyAnalyzerServicer, request: Any, *,
                  fallbacks: list[tuple[str, list[str]]] | None = None) -> Any:
    """``servicer.AnalyzeStack(request, None)``, with one shared resource list for all its stack policies.

    :param fallbacks: if given, receives ``(policy name, what it tried to change)`` for each
        policy that had to run again on a private copy.
    """
    servicer._configure_runtime_settings()
    response = proto.AnalyzeResponse()
    shared: list[PolicyResource] | None = None
    for policy in _servicer_field(servicer, "policies"):
        level = servicer._get_enforcement_level(policy)
        if level == EnforcementLevel.DISABLED or not isinstance(policy, StackValidationPolicy):
            continue
        if level == EnforcementLevel.REMEDIATE:
            level = EnforcementLevel.MANDATORY  # stack policies cannot remediate (the SDK's rule)
        if shared is None:
            shared = build_stack_resources(servicer, request, shared=True)
        part = proto.AnalyzeResponse()
        _attempts.clear()
        try:
            with sealed(shared):
                _run_policy(servicer, policy, level, shared, part)
        except Exception:
            if not _attempts:
                raise
        if _attempts:
            if fallbacks is not None:
                fallbacks.append((policy.name, list(_attempts)))
            # It tried to change what the next policy sees: give it the SDK's private copy instead.
            part = proto.AnalyzeResponse()
            _run_policy(servicer, policy, level, build_stack_resources(servicer, request, shared=False), part)
        response.MergeFrom(part)
    return response
