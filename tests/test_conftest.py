"""tests/conftest.py under pytest-xdist: which tests share a worker, and the mutation tally seen by the controller."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import conftest
from tests.conftest import xdist_group_of

ROOT = Path(__file__).resolve().parents[1]


def test_modules_are_groups_and_mutation_cases_are_spread() -> None:
    assert xdist_group_of("tests/test_stack.py::test_production_exports_the_network") == "tests/test_stack.py"
    assert xdist_group_of("tests/components/test_cache.py::test_redis_engine_by_config") == \
        "tests/components/test_cache.py"
    # The modules using moto share one worker and run there in collection order: in-process moto before the server.
    moto = ["tests/components/test_app_hosts.py::test_render_env_writes_the_service_environment",
            "tests/components/test_secret_rotation_lambda.py::test_refuses_a_token_that_is_not_pending",
            "tests/verify/test_cli.py::test_json_report",
            "tests/verify/test_moto_account.py::test_compliant_account_passes_every_item"]
    assert {xdist_group_of(nodeid) for nodeid in moto} == {"moto"}
    assert moto == sorted(moto)
    assert xdist_group_of("tests/test_mutations.py::test_mutation_is_caught[app-debug-on]") is None
    assert xdist_group_of("tests/test_mutations.py::test_production_is_clean") == "tests/test_mutations.py"


def test_the_hooks_are_the_ones_xdist_calls() -> None:
    """Declared as optional hooks, a misspelt name would be silently ignored."""
    from xdist import newhooks

    for name in ("pytest_testnodedown", "pytest_xdist_make_scheduler"):
        assert hasattr(newhooks, name)
        assert callable(getattr(conftest, name))


def test_a_workers_mutation_tally_is_handed_to_the_controller() -> None:
    """The worker side (pytest_sessionfinish) fills workeroutput; the controller side (pytest_testnodedown) merges
    each worker's share into the stash the terminal summary prints. A full parallel run shows the printed line."""
    worker = SimpleNamespace(config=SimpleNamespace(workeroutput={}, stash=pytest.Stash()))
    worker.config.stash[conftest.MUTATIONS] = {"app-debug-on": True, "ssh-from-internet": False}
    worker.config.stash[conftest.MUTATION_SUITE_SIZE] = 73
    conftest.pytest_sessionfinish(worker)  # type: ignore[arg-type]

    controller = SimpleNamespace(stash=pytest.Stash())
    controller.stash[conftest.MUTATIONS] = {"alb-deletable": True}  # another worker's share, already merged
    conftest.pytest_testnodedown(SimpleNamespace(config=controller, workeroutput=worker.config.workeroutput), None)
    assert controller.stash[conftest.MUTATIONS] == {"alb-deletable": True, "app-debug-on": True,
                                                    "ssh-from-internet": False}
    assert controller.stash[conftest.MUTATION_SUITE_SIZE] == 73

    lines: list[str] = []
    reporter = SimpleNamespace(write_sep=lambda _sep, title: lines.append(f"-- {title}"), write_line=lines.append)
    conftest.pytest_terminal_summary(reporter, 0, controller)  # type: ignore[arg-type]
    assert lines == ["-- mutation suite",
                     "mutation suite: caught 2 of 3 security-relevant mutations (70 more defined but not run)",
                     "not caught: ssh-from-internet"]


def test_a_worker_that_ran_no_mutation_hands_over_nothing() -> None:
    worker = SimpleNamespace(config=SimpleNamespace(workeroutput={}, stash=pytest.Stash()))
    conftest.pytest_sessionfinish(worker)  # type: ignore[arg-type]
    controller = SimpleNamespace(stash=pytest.Stash())
    conftest.pytest_testnodedown(SimpleNamespace(config=controller, workeroutput=worker.config.workeroutput), None)
    assert conftest.MUTATIONS not in controller.stash


_SERVER_FIXTURES = {"moto_endpoint", "account", "shared", "verify_clients", "empty_session"}


def _uses_moto(path: Path) -> bool:
    """The module imports moto (in-process mocks), or a test or fixture in it takes a moto-server fixture."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "moto":
            return True
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "moto" for alias in node.names):
            return True
        if isinstance(node, ast.FunctionDef) and path.parent.name == "verify" and \
                {arg.arg for arg in node.args.args} & _SERVER_FIXTURES:
            return True
    return False


def test_every_module_using_moto_is_in_the_moto_group() -> None:
    users = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").rglob("test_*.py") if _uses_moto(path))
    assert users == sorted(conftest._MOTO_MODULES)
    assert "tests/verify/test_moto_account.py" in users  # the detection sees the server's users
    assert "tests/test_rollback.py" in users  # and moto in-process
