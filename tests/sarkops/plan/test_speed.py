"""What keeps a plan fast without changing its result (issue #12, item 7).

The timings themselves are measured by ``make bench`` (scripts/bench.py) and recorded in the
README; these tests pin down the mechanisms, which a refactoring could silently undo.
"""

from __future__ import annotations

import logging

import pulumi
import pulumi_aws as aws
import pytest

from tests.conftest import record_program


def test_the_sdks_per_resource_debug_lines_build_no_log_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK logs debug lines for every registration; the capture keeps only warnings and errors, so it
    must not even build the records it would drop."""
    built: list[tuple[int, str]] = []
    real = logging.Logger.makeRecord

    def counting(self: logging.Logger, name: str, level: int, *args: object, **kwargs: object) -> logging.LogRecord:
        if name == "sarkops.program":
            built.append((level, str(args[3])))
        return real(self, name, level, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(logging.Logger, "makeRecord", counting)

    def program() -> None:
        for index in range(5):
            aws.s3.Bucket(f"bucket-{index}")
        pulumi.log.warn("a warning the plan must still report")

    rec = record_program(program)

    assert len(rec.by_type("aws:s3/bucket:Bucket")) == 5
    assert rec.logs == [("warning", "a warning the plan must still report")]
    assert [level for level, _ in built] == [logging.WARNING]
