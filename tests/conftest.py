"""Shared test helpers.

Component tests record what a component registers under the mocks::

    def test_database_is_encrypted(record):
        rec = record(lambda: Database("orders-db", DatabaseArgs(...)))
        db = rec.one("aws:rds/instance:Instance")
        assert db.inputs["storageEncrypted"] is True
        assert is_secret(db.inputs["password"])          # from sarkops.harness

``record`` runs the callable as project ``sark-infra``, stack ``test``, as a preview (like
``sarkops plan``), with the realistic AWS mocks of :mod:`sarkops.mock_aws`. Config keys without
a namespace belong to ``sark-infra``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from sarkops.harness import Recording, run_program

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
) -> Recording:
    """Run ``program`` under the mocks as ``sark-infra``/``test`` and return the recording."""
    return run_program(program, project=PROJECT, stack=STACK, config=config, secret_keys=secret_keys,
                       preview=preview)


@pytest.fixture
def record() -> Callable[..., Recording]:
    """:func:`record_program`, as a fixture."""
    return record_program
