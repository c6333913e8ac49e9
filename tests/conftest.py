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

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sarkops.plan.runtime import Recording, run_program

if TYPE_CHECKING:
    from sarkops.plan import PlanResult

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
