"""Shared test helpers.

Component tests record what a component registers under the mocks::

    def test_database_is_encrypted(record):
        rec = record(lambda: Database("orders-db", DatabaseArgs(...)))
        db = rec.one("aws:rds/instance:Instance")
        assert db.inputs["storageEncrypted"] is True
        assert is_secret(db.inputs["password"])          # from sarkops.plan.runtime

``record`` runs the callable as project ``sark-infra``, stack ``test``, as a preview with the
realistic AWS mocks of :mod:`sarkops.plan.mock_aws` and the provider emulation (names filled in
by Check). Outputs keep concrete mock values by default, so tests can assert on them;
``record(..., first_preview=True)`` gives a first preview's unknowns instead, as
``sarkops plan`` does by default. Config keys without a namespace belong to ``sark-infra``.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore.loaders
import botocore.session
import pytest

if TYPE_CHECKING:
    from sarkops.plan import PlanResult
    from sarkops.plan.runtime import Recording

# --------------------------------------------------------------------------------------
# Cheaper moto and botocore in the test processes (nothing here changes what a test sees)
# --------------------------------------------------------------------------------------

# moto's EC2 backend parses its ~1,300 default AMIs each time it is created: per test under ``mock_aws()``, per
# account and region on the moto server, ~0.2 s each. No test here uses them (tests/scripts/test_newest_ami.py
# turns them back on for its own backend, to search beside moto's public images). Subprocesses inherit it.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


class _PathsOnce(list[str]):
    """A loader's search path, to which boto3 appends its data directory once per ``boto3.Session``."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


def _share_botocore_loaders() -> None:
    """One botocore data loader per search path for the whole process, instead of one per session.

    Every ``boto3.Session`` (and ``boto3.client`` under ``mock_aws()``, which clears boto3's default session)
    gets a fresh loader that parses the service models again: ~5 ms a file, hundreds of times a run. The
    loader caches read-only model data (botocore/loaders.py, ``instance_cache``), which every client of one
    session already shares, so sharing it between sessions changes nothing a client sees.
    """
    create_loader = botocore.loaders.create_loader
    loaders: dict[str | None, botocore.loaders.Loader] = {}

    def shared_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        if search_path_string not in loaders:
            loader = create_loader(search_path_string)
            loader._search_paths = _PathsOnce(loader.search_paths)  # boto3 appends to it
            loaders[search_path_string] = loader
        return loaders[search_path_string]

    botocore.session.create_loader = shared_loader  # what Session's data_loader component calls


_share_botocore_loaders()

PROJECT = "sark-infra"
STACK = "test"
FIXTURES = Path(__file__).parent / "fixtures"
"""Fixture projects (``FIXTURES / "projects" / <name>``) and policy packs (``FIXTURES / "packs"``)."""


def record_program(
    program: Callable[[], None],
    config: Mapping[str, str] | None = None,
    *,
    secret_keys: Sequence[str] = (),
    preview: bool = True,
    first_preview: bool = False,
) -> Recording:
    """Run ``program`` under the mocks as ``sark-infra``/``test`` and return the recording.

    :param first_preview: outputs the provider computes are unknown, as in a first ``pulumi preview``.
    """
    # Imported here: the xdist controller loads this file too, and never records anything (~0.15 s of pulumi).
    from sarkops.plan.runtime import run_program

    return run_program(program, project=PROJECT, stack=STACK, config=config, secret_keys=secret_keys,
                       preview=preview, first_preview=first_preview)


@pytest.fixture
def record() -> Callable[..., Recording]:
    """:func:`record_program`, as a fixture."""
    return record_program


MUTATIONS = pytest.StashKey[dict[str, bool]]()
"""tests/test_mutations.py records each mutation's id -> caught here; the summary prints the tally."""

MUTATION_SUITE_SIZE = pytest.StashKey[int]()
"""How many mutations tests/test_mutations.py defines (so a partial run says what it left out)."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    """``mutation suite: caught N of M security-relevant mutations``, when the suite ran."""
    results = config.stash.get(MUTATIONS, {})
    if not results:
        return
    caught = sum(results.values())
    line = f"mutation suite: caught {caught} of {len(results)} security-relevant mutations"
    size = config.stash.get(MUTATION_SUITE_SIZE, len(results))
    if size > len(results):
        line += f" ({size - len(results)} more defined but not run)"
    missed = sorted(name for name, ok in results.items() if not ok)
    terminalreporter.write_sep("-", "mutation suite")
    terminalreporter.write_line(line)
    if missed:
        terminalreporter.write_line(f"not caught: {', '.join(missed)}")


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Any:
    """Keep pytest's rewritten test modules (tests/**/__pycache__/*-pytest-*.pyc) even under PYTHONDONTWRITEBYTECODE.

    Rewriting the asserts of every test module costs each xdist worker ~3 s of its start, every run; pytest reads
    a cached rewrite whenever one exists (_pytest/assertion/rewrite.py, ``AssertionRewritingHook.exec_module``) but
    writes one only when ``sys.dont_write_bytecode`` is false. Only during collection: modules a test writes and
    imports later (fixture projects copied to tmp_path, edited within the same second) never get a .pyc that
    could go stale.
    """
    saved = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    try:
        return (yield)
    finally:
        sys.dont_write_bytecode = saved


# --------------------------------------------------------------------------------------
# Parallel runs (pytest-xdist: `make test` runs `pytest -n auto --dist loadgroup`)
# --------------------------------------------------------------------------------------

_MUTATION_CASE = "tests/test_mutations.py::test_mutation_is_caught["
"""The mutation cases are the one set spread test by test: each costs about half a second and needs only the
session's production plan, so they fill the workers' idle time at the end of a run."""

_MOTO_GROUP = "moto"
_MOTO_MODULES = (
    "tests/components/test_app_hosts.py",
    "tests/components/test_release.py",
    "tests/components/test_secret_rotation_lambda.py",
    "tests/scripts/test_newest_ami.py",
    "tests/test_rollback.py",
    "tests/verify/test_cli.py",
    "tests/verify/test_empty_account.py",
    "tests/verify/test_moto_account.py",
)
"""Modules that use moto: kept on one worker, in collection order. The tests/verify modules share the session's
moto server (tests/verify/conftest.py; only one worker pays its start and first account, ~4 s); the others use moto
in-process (``mock_aws()``), which fails once that server has started in the same process (``GetSecretValue``
finds no AWSCURRENT after a rotation) and resets the backends the server shares (its certificate is gone), so they
must run before it, as they do in a serial run. Every module that uses either belongs here: one left out runs on
whichever worker is free, and fails or breaks the server depending on the order (tests/test_conftest.py's
``test_every_module_using_moto_is_in_the_moto_group`` keeps the list complete)."""


def xdist_group_of(nodeid: str) -> str | None:
    """The xdist group a test runs in under ``--dist loadgroup``; None for a test scheduled on its own.

    Every module is one group, so its module-scoped fixtures are built once and not once per worker.
    """
    if nodeid.startswith(_MUTATION_CASE):
        return None
    module = nodeid.split("::", 1)[0]
    return _MOTO_GROUP if module in _MOTO_MODULES else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadgroup``, schedule by :func:`xdist_group_of`.

    pytest-xdist 3.8 groups ``xdist_group`` marks by appending ``@group`` to ``item._nodeid``, which pytest 9
    no longer reads (node ids live in ``Node._id``), so its own loadgroup silently schedules test by test.
    This scheduler is its LoadScope scheduling (whole groups to one worker, largest groups first) with the
    groups computed here instead.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid) or nodeid

    return GroupScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: hand this worker's share of the mutation tally to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is None:
        return
    workeroutput["sark_mutations"] = dict(session.config.stash.get(MUTATIONS, {}))
    if MUTATION_SUITE_SIZE in session.config.stash:
        workeroutput["sark_mutation_suite_size"] = session.config.stash[MUTATION_SUITE_SIZE]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object | None) -> None:
    """On the xdist controller: merge a finished worker's mutation tally (printed by the terminal summary)."""
    output = getattr(node, "workeroutput", None) or {}
    config = node.config
    if output.get("sark_mutations"):
        config.stash.setdefault(MUTATIONS, {}).update(output["sark_mutations"])
    if "sark_mutation_suite_size" in output:
        config.stash[MUTATION_SUITE_SIZE] = output["sark_mutation_suite_size"]


def pytest_configure(config: pytest.Config) -> None:
    """Full (generation 2) collections only when a test process has done ~1,000 young ones, not every ~10.

    A worker's heap holds the SDKs and plans (one production plan leaves ~360,000 tracked objects) and moto's
    backends; each full collection walks all of it, ~0.4 s, and found next to nothing to free: with the default
    threshold they took ~20 of the suite's ~120 CPU seconds. Young collections still reclaim short-lived cycles;
    a worker's peak memory stays ~600 MB. Only this pytest process: subprocesses (``sarkops plan``, bench) run
    with the interpreter's defaults.
    """
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 1000)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The modules and test items collection loaded live as long as the process: out of every later collection."""
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Move every live object out of the collector's reach before the process exits.

    The interpreter runs a full collection as it shuts down; after a worker's share of the suite (dozens of plans,
    the SDKs, moto's backends) that walk found nothing to free and took seconds, while the controller waited for
    the worker to end. The same reason as ``sarkops.__main__._freeze_before_exit``; nothing runs after this but
    the interpreter's shutdown.
    """
    gc.freeze()


@pytest.fixture(scope="session")
def production_plan() -> PlanResult:
    """The production stack planned once per session with known (mock) outputs, shared by the suites
    that re-evaluate variants of it (tests/test_mutations.py, tests/policies/test_evaluators.py)."""
    from sarkops.plan import run_plan

    return run_plan(Path(__file__).resolve().parents[1], "production", known_outputs=True)


@pytest.fixture(scope="session")
def production_preview() -> PlanResult:
    """The production stack planned once per session as ``sarkops plan`` does by default: a first
    preview, with the outputs the provider computes unknown."""
    from sarkops.plan import run_plan

    return run_plan(Path(__file__).resolve().parents[1], "production")

