"""Run a Pulumi program under Pulumi's mock runtime and record everything it registers.

    from sarkops.plan.runtime import run_program

    rec = run_program(lambda: Database("db", DatabaseArgs(...)), project="sark-infra", stack="test")
    db = rec.one("aws:rds/instance:Instance")
    assert db.inputs["storageEncrypted"] is True
    assert is_secret(db.inputs["password"])

What a :class:`Recording` holds is what the engine would see: each resource's inputs exactly
as the SDK sent them (camelCase keys, numbers as floats, secrets still wrapped as rpc secrets,
preview unknowns as :data:`UNKNOWN`), its options (parent, dependencies, protect, ...), the
state the mocks returned, and the stack outputs. Use :func:`plain` to strip the secret
wrappers before comparing, and :func:`masked` before printing.

The run is as close to ``pulumi preview`` as a process without the engine can be:

- the program runs inside a fresh root ``pulumi:pulumi:Stack`` (the one ``set_mocks`` creates
  is finished immediately, so exports made afterwards would be lost), and the harness waits
  for every outstanding RPC and output before returning;
- every custom resource goes through the provider emulation of :mod:`sarkops.plan.provider`
  in the engine's order: Check (auto-names filled in and known, name limits checked), diff
  against the prior state (``prior``), then the outputs the preview returns;
- ``first_preview=True`` models a first ``pulumi preview``: outputs the provider computes for
  resources being created (ids, ARNs, endpoints, generated attributes) are unknown, inputs
  echo back known, and ``apply`` callbacks never run on the unknowns. The default (False)
  keeps the mocks' concrete values everywhere, which component tests assert on;
- ``additionalSecretOutputs`` are applied to the returned state, as the engine does, so a
  ``RandomPassword.result`` is secret (even while unknown).
"""

from __future__ import annotations

import asyncio
import logging
import os
import runpy
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import struct_pb2
from pulumi.runtime import rpc, settings
from pulumi.runtime.mocks import MockMonitor, MockResourceArgs, _resolve_callbacks, _sync_await
from pulumi.runtime.proto import resource_pb2

from sarkops.plan.diff import Change
from sarkops.plan.mock_aws import DEFAULT_REGION, AwsMocks, UnansweredInvokeError
from sarkops.plan.provider.emulator import CheckFailure, ProviderEmulator
from sarkops.plan.source import SourcePosition, from_request
from sarkops.plan.state import PriorState

__all__ = [
    "STACK_TYPE",
    "UNKNOWN",
    "RecordedResource",
    "Recording",
    "UnansweredInvokeError",
    "contains_secret",
    "is_secret",
    "is_unknown",
    "masked",
    "plain",
    "run_program",
    "secret_strings",
]

UNKNOWN = rpc.UNKNOWN
"""How a value that is unknown during preview appears in recorded inputs and outputs."""

STACK_TYPE = "pulumi:pulumi:Stack"

SECRET_MASK = "[secret]"  # noqa: S105 (the mask printed instead of a secret)
UNKNOWN_MASK = "[unknown]"


# --------------------------------------------------------------------------------------
# Value helpers
# --------------------------------------------------------------------------------------

def is_secret(value: Any) -> bool:
    """True if ``value`` itself is a wrapped rpc secret (see :func:`contains_secret`)."""
    return rpc.is_rpc_secret(value)


def contains_secret(value: Any) -> bool:
    """True if ``value`` is, or anywhere contains, a wrapped rpc secret."""
    if rpc.is_rpc_secret(value):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    return False


def is_unknown(value: Any) -> bool:
    """True if ``value`` is a preview unknown."""
    return isinstance(value, str) and value == UNKNOWN


def plain(value: Any) -> Any:
    """``value`` with every secret wrapper removed (unknowns stay :data:`UNKNOWN`)."""
    if rpc.is_rpc_secret(value):
        return plain(value["value"])
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def masked(value: Any) -> Any:
    """``value`` safe to print: secrets become ``"[secret]"``, unknowns ``"[unknown]"``.

    Whole-number floats (the wire format of every number) become ints, so ``22.0`` prints as
    ``22`` in reports.
    """
    if rpc.is_rpc_secret(value):
        return SECRET_MASK
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if is_unknown(value):
        return UNKNOWN_MASK
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def secret_strings(value: Any, *, inside: bool = False) -> set[str]:
    """Every string (and number, as text) found inside a secret anywhere in ``value``."""
    found: set[str] = set()
    if rpc.is_rpc_secret(value):
        return secret_strings(value["value"], inside=True)
    if isinstance(value, dict):
        for item in value.values():
            found |= secret_strings(item, inside=inside)
    elif isinstance(value, list):
        for item in value:
            found |= secret_strings(item, inside=inside)
    elif inside and isinstance(value, str) and value != UNKNOWN:
        found.add(value)
    return found


def _from_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return _from_struct(value.struct_value)
    if kind == "list_value":
        return [_from_value(v) for v in value.list_value.values]
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    return None


_SIG = rpc._special_sig_key  # "4dabf18193072939515e22adb298388d"


def _from_struct(struct: struct_pb2.Struct) -> Any:
    """A wire Struct as plain Python, the way the engine sees it.

    This mirrors ``rpc.deserialize_properties(struct, keep_unknowns=True)`` except that it
    never builds SDK objects: unknowns stay the :data:`UNKNOWN` string (not ``Unknown()``),
    secrets stay wrapped where they are (no pushing secretness up to the parent, which is a
    client-side convenience), resource references become their URN (deserializing them would
    construct resources), and assets/archives stay as their wire dicts.
    """
    fields = struct.fields
    if _SIG in fields:
        sig = fields[_SIG].string_value
        if sig == rpc._special_secret_sig:
            return rpc.wrap_rpc_secret(_from_value(fields["value"]) if "value" in fields else None)
        if sig == rpc._special_resource_sig:
            return fields["urn"].string_value
        if sig == rpc._special_output_value_sig:
            inner = _from_value(fields["value"]) if "value" in fields else UNKNOWN
            secret = "secret" in fields and fields["secret"].bool_value
            return rpc.wrap_rpc_secret(inner) if secret else inner
    out: dict[str, Any] = {}
    for key, item in fields.items():
        converted = _from_value(item)
        if converted is not None:  # the SDK drops nulls too
            out[key] = converted
    return out


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------

@dataclass
class RecordedResource:
    """One resource registration, as the engine would have received it."""

    urn: str
    type: str
    name: str
    custom: bool
    """False for component resources."""
    parent: str | None
    """URN of the parent; top-level resources have the root stack's URN."""
    dependencies: list[str]
    """URNs this resource depends on (explicit ``depends_on`` plus those of its inputs)."""
    property_dependencies: dict[str, list[str]]
    """Input key -> URNs the value of that input came from."""
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool | None
    """None when the program did not set it."""
    ignore_changes: list[str]
    replace_on_changes: list[str]
    additional_secret_outputs: list[str]
    provider: str | None
    """Explicit provider reference (``urn::id``); None means the default provider."""
    inputs: dict[str, Any]
    """Inputs as sent: camelCase keys, floats, rpc-wrapped secrets, :data:`UNKNOWN`."""
    outputs: dict[str, Any]
    """State the mocks returned (with ``id``), secrets and unknowns as in ``inputs``. For
    components: the values passed to ``register_outputs``."""
    id: str | None = None
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    """Non-empty ``create``/``update``/``delete`` timeouts, e.g. ``{"create": "30m"}``."""
    aliases: list[str] = field(default_factory=list)
    version: str = ""
    """Version of the provider package the SDK registered the resource for."""
    source: SourcePosition | None = None
    """The program line that created it (see :mod:`sarkops.plan.source`)."""


@dataclass
class Recording:
    """Everything one program run registered, in the order the program constructed it."""

    project: str
    stack: str
    stack_urn: str
    resources: list[RecordedResource]
    """Every resource except the root stack, in construction order (deterministic; the
    registration RPCs themselves run on threads and arrive in varying order)."""
    outputs: dict[str, Any]
    """The stack's ``pulumi.export`` values (secrets wrapped, unknowns :data:`UNKNOWN`)."""
    invokes: list[tuple[str, dict[str, Any]]]
    """Every data-source call, ``(token, args)``, in call order."""
    reads: list[RecordedResource] = field(default_factory=list)
    """Resources read with ``Resource.get`` (not registered, so not in :attr:`resources`)."""
    logs: list[tuple[str, str]] = field(default_factory=list)
    """``(level, message)`` of what the program logged with ``pulumi.log``."""
    check_failures: list[CheckFailure] = field(default_factory=list)
    """What the provider's Check refuses (names over AWS limits and the like): a real preview fails."""
    changes: dict[str, Change] = field(default_factory=dict)
    """URN -> planned operation of every custom resource (all ``create`` without prior state)."""
    first_preview: bool = False
    """True if outputs the provider computes were unknown for resources being created."""

    def by_type(self, token: str) -> list[RecordedResource]:
        """All resources of one type token, in construction order."""
        return [r for r in self.resources if r.type == token]

    def one(self, token: str, name: str | None = None) -> RecordedResource:
        """The single resource of ``token`` (and ``name``); raises listing what exists otherwise."""
        matches = [r for r in self.by_type(token) if name is None or r.name == name]
        if len(matches) == 1:
            return matches[0]
        same_type = sorted(r.name for r in self.by_type(token))
        wanted = f"{token} named {name!r}" if name else token
        if same_type:
            detail = f"resources of that type: {', '.join(same_type)}"
        else:
            types = sorted({r.type for r in self.resources})
            detail = f"types registered: {', '.join(types) or 'none'}"
        raise LookupError(f"expected exactly one {wanted}, found {len(matches)}; {detail}")

    def get(self, urn: str) -> RecordedResource:
        """The resource with this URN (KeyError if none)."""
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise KeyError(urn)

    def secret_strings(self) -> set[str]:
        """Every string that is secret somewhere in this run (to scrub from printed text)."""
        found = secret_strings(self.outputs)
        for resource in self.resources:
            found |= secret_strings(resource.inputs) | secret_strings(resource.outputs)
        return found


# --------------------------------------------------------------------------------------
# The monitor
# --------------------------------------------------------------------------------------

class RecordingMonitor(MockMonitor):
    """A mock resource monitor that records each registration with its options and outputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks, stack_urn: str,
                 emulator: ProviderEmulator | None = None) -> None:
        super().__init__(mocks)
        self.emulator = emulator or ProviderEmulator(first_preview=False)
        self.stack_urn = stack_urn
        self.registered: list[RecordedResource] = []
        self.read: list[RecordedResource] = []
        self.stack_outputs: dict[str, Any] = {}
        self.component_outputs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._thread_loops: list[asyncio.AbstractEventLoop] = []
        self.source_root: Path | None = None
        """The project dir: source positions are the first frame in it (None: any program frame)."""

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN the engine gives this resource (pulumi/pulumi ``sdk/go/common/resource/urn/urn.go``):
        the parent's full qualified type, ``$``, the type, except that children of the root stack
        carry no parent type. (``MockMonitor.make_urn`` keeps ``pulumi:pulumi:Stack$`` and only the
        parent's last type, so its URNs would never match a real ``pulumi stack export``.)"""
        qualified = type_
        if parent:
            parent_type = parent.split("::")[2]
            if parent_type != STACK_TYPE:
                qualified = f"{parent_type}${type_}"
        prefix = self.stack_urn.split(f"::{STACK_TYPE}::", 1)[0]  # urn:pulumi:<stack>::<project>
        return f"{prefix}::{qualified}::{name}"

    def _ensure_thread_loop(self) -> None:
        """Give this executor thread the event loop MockMonitor needs, and remember it.

        MockMonitor creates one per thread itself but never closes it; the garbage collector
        then closes it at some later point with an "unclosed event loop" ResourceWarning. Loops
        created here are closed by :meth:`close_thread_loops` once the threads are joined.
        """
        policy = asyncio.get_event_loop_policy()
        try:
            policy.get_event_loop()
        except RuntimeError:
            loop = policy.new_event_loop()
            policy.set_event_loop(loop)
            with self._lock:
                self._thread_loops.append(loop)

    def close_thread_loops(self) -> None:
        """Close the executor threads' loops (call after the threads have been joined)."""
        with self._lock:
            loops, self._thread_loops = self._thread_loops, []
        for loop in loops:
            loop.close()

    def Invoke(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        """Answer a data-source call through the mocks."""
        self._ensure_thread_loop()
        return super().Invoke(request)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802
        """Register the way the engine would: provider Check, diff, mocks, preview outputs; then record.

        This replaces ``MockMonitor.RegisterResource`` (same steps) so that the provider
        emulation sits where the engine puts the provider: between the request and the state.
        """
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == STACK_TYPE:
            return resource_pb2.RegisterResourceResponse(urn=urn)
        self._ensure_thread_loop()
        custom = bool(request.custom)
        engine_inputs = _from_struct(request.object)
        inputs = rpc.deserialize_properties(request.object)
        filled: dict[str, Any] = {}
        change = None
        if custom:
            filled = self.emulator.check(urn, request.type, request.name, engine_inputs).filled
            engine_inputs.update(filled)
            inputs.update(filled)
            change = self.emulator.diff(urn, request.type, engine_inputs, list(request.replaceOnChanges))
        args = MockResourceArgs(typ=request.type, name=request.name, inputs=inputs, provider=request.provider,
                                resource_id=request.importId, custom=custom,
                                transforms=_resolve_callbacks(request.transforms))
        id_, state = self.mocks.new_resource(args)
        if custom and change is not None:
            id_, state = self.emulator.outputs(urn, id_, state, inputs=set(inputs), filled=set(filled),
                                                 change=change)
        state = dict(state)
        for key in request.additionalSecretOutputs:
            # The engine marks these secret whatever the provider returns, unknowns included.
            if key in state and not rpc.is_rpc_secret(state[key]):
                state[key] = rpc.wrap_rpc_secret(state[key])
        obj_proto = _sync_await(rpc.serialize_properties(state, {}))
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, id_, state)
        record = _record(request, urn, id_, obj_proto, inputs=engine_inputs)
        record.source = from_request(request, self.source_root)
        with self._lock:
            self.registered.append(record)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_ or "", object=obj_proto)

    def ReadResource(self, request: Any) -> Any:  # noqa: N802
        """Answer ``Resource.get`` through the mocks and keep it apart from registrations."""
        self._ensure_thread_loop()
        response = super().ReadResource(request)
        record = _record(request, response.urn, request.id, response.properties)
        record.source = from_request(request, self.source_root)
        with self._lock:
            self.read.append(record)
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802
        """Capture stack exports and component outputs."""
        outputs = _from_struct(request.outputs)
        with self._lock:
            if request.urn == self.stack_urn:
                self.stack_outputs = outputs
            else:
                self.component_outputs[request.urn] = outputs
        return super().RegisterResourceOutputs(request)


def _record(request: Any, urn: str, id_: str | None, state: struct_pb2.Struct,
            inputs: dict[str, Any] | None = None) -> RecordedResource:
    is_register = isinstance(request, resource_pb2.RegisterResourceRequest)
    outputs = _from_struct(state)
    custom = bool(request.custom) if is_register else True
    if custom:
        # An empty id is the preview's unknown id (a resource being created).
        outputs = {"id": id_ or UNKNOWN, **outputs}
    timeouts: dict[str, str] = {}
    if is_register and request.HasField("customTimeouts"):
        timeouts = {k: getattr(request.customTimeouts, k) for k in ("create", "update", "delete")
                    if getattr(request.customTimeouts, k)}
    return RecordedResource(
        urn=urn,
        type=request.type,
        name=request.name,
        custom=custom,
        parent=request.parent or None,
        # The SDK collects dependencies in sets; sorting makes the order stable between runs.
        dependencies=sorted(request.dependencies),
        property_dependencies={k: sorted(v.urns) for k, v in sorted(request.propertyDependencies.items())}
        if is_register else {},
        protect=bool(getattr(request, "protect", False)),
        retain_on_delete=bool(getattr(request, "retainOnDelete", False)),
        delete_before_replace=request.deleteBeforeReplace if is_register and request.deleteBeforeReplaceDefined
        else None,
        ignore_changes=list(request.ignoreChanges) if is_register else [],
        replace_on_changes=list(request.replaceOnChanges) if is_register else [],
        additional_secret_outputs=list(request.additionalSecretOutputs),
        provider=request.provider or None,
        inputs=inputs if inputs is not None else _from_struct(request.object if is_register else request.properties),
        outputs=outputs,
        id=id_ or None,
        custom_timeouts=timeouts,
        aliases=list(request.aliasURNs) if is_register else [],
        version=request.version,
    )


# --------------------------------------------------------------------------------------
# Construction order
# --------------------------------------------------------------------------------------

class _ConstructionOrder:
    """Numbers resources in the order the program constructs them.

    A legacy stack transformation runs synchronously inside every resource constructor, in
    program order, before any RPC; it returns None, so it changes nothing. Resources are
    matched to registrations by the part of the mock URN after ``project::``
    (its parent's last type, ``$``, its type, ``::``, its name).
    """

    def __init__(self) -> None:
        self.order: dict[str, list[int]] = {}
        self.count = 0

    def __call__(self, args: pulumi.ResourceTransformationArgs) -> None:
        parent = args.opts.parent if args.opts is not None and args.opts.parent is not None \
            else settings.get_root_resource()
        parent_type = getattr(parent, "_type", STACK_TYPE)
        self.order.setdefault(f"{parent_type}${args.type_}::{args.name}", []).append(self.count)
        self.count += 1

    def sort(self, resources: list[RecordedResource]) -> list[RecordedResource]:
        """``resources`` in construction order (unmatched ones last, in arrival order)."""
        queues = {key: list(indexes) for key, indexes in self.order.items()}
        keyed: list[tuple[int, int, RecordedResource]] = []
        for position, resource in enumerate(resources):
            # urn:pulumi:<stack>::<project>::[<parent types>$]<type>::<name>
            parts = resource.urn.split("::")
            types = parts[2].split("$")
            parent_type = types[-2] if len(types) > 1 else STACK_TYPE
            queue = queues.get(f"{parent_type}${types[-1]}::{'::'.join(parts[3:])}")
            index = queue.pop(0) if queue else self.count + position
            keyed.append((index, position, resource))
        return [resource for _, _, resource in sorted(keyed, key=lambda item: item[:2])]


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------

class _LogCapture:
    """A logger for set_mocks: MockEngine forwards ``pulumi.log`` calls here."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []
        # WARNING, not DEBUG: the SDK logs several debug lines per resource ("registering ...",
        # "resource registration successful"), and a record built for each was thrown away here.
        self.logger = logging.Logger("sarkops.program", level=logging.WARNING)
        self.logger.propagate = False
        capture = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno >= logging.WARNING:
                    capture.records.append((record.levelname.lower(), record.getMessage()))

        self.logger.addHandler(_Handler())


def _main_file(project_dir: Path) -> Path:
    """The program file of a project dir: ``main`` from Pulumi.yaml, else ``__main__.py``."""
    from sarkops.plan.project import main_file

    return main_file(project_dir)


@contextmanager
def _project_context(project_dir: Path) -> Iterator[None]:
    """Run with the project dir as cwd and first on sys.path, as the language host does.

    Modules imported from the project dir during the run are dropped afterwards, so the next
    run (possibly of another project with a module of the same name) imports its own.
    """
    root = str(project_dir)
    before = set(sys.modules)
    old_cwd = os.getcwd()
    old_path = list(sys.path)
    # A virtualenv inside the project (.venv/.../site-packages) is itself on sys.path: modules
    # from there are libraries, not the project's, and must stay imported (pulumi_aws refuses
    # to register its package twice).
    nested = [os.path.abspath(p) + os.sep for p in old_path
              if p and os.path.abspath(p).startswith(root + os.sep)]
    sys.path.insert(0, root)
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules.get(name), "__file__", None) or ""
            if module_file.startswith(root + os.sep) and not any(module_file.startswith(n) for n in nested) \
                    and f"{os.sep}site-packages{os.sep}" not in module_file:
                del sys.modules[name]


def run_program(
    program: Path | Callable[[], None],
    *,
    project: str,
    stack: str,
    config: Mapping[str, str] | None = None,
    secret_keys: Sequence[str] = (),
    preview: bool = True,
    mocks: pulumi.runtime.Mocks | None = None,
    first_preview: bool = False,
    prior: PriorState | None = None,
) -> Recording:
    """Run ``program`` under the mocks and return what it registered.

    :param program: a project directory (its ``main`` file, default ``__main__.py``, runs as
        ``__main__`` with the dir as cwd and first on ``sys.path``), a program file, or a callable.
    :param project: project name (the config namespace of unprefixed keys and part of URNs).
    :param stack: stack name.
    :param config: the full config map, ``{"<namespace>:<key>": "<string value>"}``, replacing
        any config set before (a key without namespace is taken as ``<project>:<key>``).
    :param secret_keys: config keys that are secret (``require_secret`` then yields secrets).
    :param preview: run as ``pulumi preview`` (values the mocks do not return are unknown).
    :param first_preview: outputs the provider computes are unknown for resources being created,
        as in a first ``pulumi preview`` (``sarkops plan``'s default); False keeps the mocks'
        concrete values (what component tests assert on).
    :param prior: the stack's prior state: resources in it are existing, with known outputs.
    :param mocks: mocks to use instead of :class:`~sarkops.plan.mock_aws.AwsMocks` for the region in
        ``aws:region``.
    :raises UnansweredInvokeError: the program called a data source the mocks cannot answer
        (raised even if the program caught the original error).
    :raises Exception: whatever the program raised, unchanged.

    Safe to call many times in one process: every run gets fresh settings, a fresh root
    stack and fresh records, and the previous root resource and config are restored after.
    """
    full_config = {key if ":" in key else f"{project}:{key}": str(value) for key, value in (config or {}).items()}
    secret = [key if ":" in key else f"{project}:{key}" for key in secret_keys]
    if mocks is None:
        mocks = AwsMocks(region=full_config.get("aws:region") or DEFAULT_REGION)
    stack_urn = f"urn:pulumi:{stack}::{project}::{STACK_TYPE}::{project}-{stack}"
    emulator = ProviderEmulator(first_preview=first_preview, prior=prior)
    monitor = RecordingMonitor(mocks, stack_urn, emulator)
    if not callable(program):
        path = Path(program).resolve()
        monitor.source_root = path if path.is_dir() else path.parent
    logs = _LogCapture()
    order = _ConstructionOrder()

    body, context = _program_body(program)

    def entry() -> None:
        from pulumi.runtime.stack import register_stack_transformation

        register_stack_transformation(order)
        body()

    from pulumi.runtime.stack import run_in_stack

    try:
        with _isolated_runtime() as loop:
            pulumi.runtime.set_all_config(full_config, secret_keys=secret)
            # set_mocks creates a root Stack only when none exists, and finishes it at once (so
            # later exports would never be registered). Hold the slot with a placeholder, then
            # let run_in_stack create the real root stack, exactly as the language host does.
            settings.ROOT.set(_PLACEHOLDER_ROOT)  # type: ignore[arg-type]
            pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview,
                                     monitor=monitor, logger=logs.logger)
            settings.ROOT.set(None)
            settings.SETTINGS.outputs.clear()
            with context:
                try:
                    loop.run_until_complete(run_in_stack(entry))
                except BaseException as error:
                    _raise_unanswered(mocks, error)
                    raise
            # Also when the program swallowed the error: the plan would be wrong either way.
            _raise_unanswered(mocks, None)
    finally:
        monitor.close_thread_loops()  # after _isolated_runtime joined the executor threads

    for record in monitor.registered:
        if not record.custom and record.urn in monitor.component_outputs:
            record.outputs = {**record.outputs, **monitor.component_outputs[record.urn]}
    return Recording(
        project=project,
        stack=stack,
        stack_urn=stack_urn,
        resources=order.sort(monitor.registered),
        outputs=monitor.stack_outputs,
        invokes=list(getattr(mocks, "invokes", [])),
        reads=monitor.read,
        logs=logs.records,
        check_failures=list(emulator.check_failures),
        changes=dict(emulator.changes),
        first_preview=first_preview,
    )


_PLACEHOLDER_ROOT = object()


def _program_body(program: Path | Callable[[], None]) -> tuple[Callable[[], None], AbstractContextManager[None]]:
    """What to call for ``program``, and the context (cwd, sys.path) to call it in."""
    if callable(program):
        return program, nullcontext()
    path = Path(program).resolve()
    main = _main_file(path) if path.is_dir() else path

    def body() -> None:
        runpy.run_path(str(main), run_name="__main__")

    return body, _project_context(main.parent)


@contextmanager
def _isolated_runtime() -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh event loop for one run; the root resource and config are restored afterwards.

    The loop is closed (its executor threads joined) at the end: nothing a failed run left
    scheduled can fire during the next one, and no loop is left for the garbage collector to
    close at interpreter exit, which can print a spurious "Invalid file descriptor" traceback.
    """
    from pulumi.runtime.config import _SECRET_KEYS, CONFIG

    saved_root = settings.ROOT.get()
    saved_config = (dict(CONFIG.get()), set(_SECRET_KEYS.get()))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        try:
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
            asyncio.set_event_loop(None)  # Pulumi's own helpers create a fresh loop when there is none
            settings.ROOT.set(saved_root)
            pulumi.runtime.set_all_config(saved_config[0], secret_keys=list(saved_config[1]))


def _raise_unanswered(mocks: pulumi.runtime.Mocks, cause: BaseException | None) -> None:
    """Raise the first unanswered invoke, which explains a failure better than its symptom."""
    unanswered = getattr(mocks, "unanswered", None)
    if unanswered:
        raise unanswered[0] from cause

