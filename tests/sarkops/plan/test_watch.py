"""``sarkops plan --watch``: a resident process that plans again when a project or pack file changes."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from sarkops.plan.watch import INTERRUPTED, changed_files, snapshot

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"


class _Lines:
    """A process's stream read on a thread, line by line, so the test can wait with a deadline."""

    def __init__(self, stream: TextIO) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: TextIO) -> None:
        for line in stream:
            self.queue.put(line)

    def all(self) -> list[str]:
        """Every line, once the process has closed the stream."""
        self.thread.join(timeout=30)
        while not self.queue.empty():
            self.seen.append(self.queue.get())
        return self.seen

    def wait_for(self, prefix: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line starting {prefix!r} within {timeout} s; seen: {self.seen}") from None
            self.seen.append(line)
            if line.startswith(prefix):
                return line


def _documents(lines: list[str]) -> list[dict[str, Any]]:
    """The JSON documents printed one after the other (each ends with a ``}`` line)."""
    documents, current = [], []
    for line in lines:
        current.append(line)
        if line == "}\n":
            documents.append(json.loads("".join(current)))
            current = []
    return documents


def test_watch_plans_again_after_edits_to_the_program_and_the_pack_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    project = tmp_path / "webapp"
    shutil.copytree(FIXTURES / "projects" / "webapp", project)
    pack = tmp_path / "pack"
    shutil.copytree(FIXTURES / "packs" / "demo", pack, ignore=shutil.ignore_patterns("__pycache__"))
    process = subprocess.Popen(
        [sys.executable, "-m", "sarkops", "plan", "--project", str(project), "--stack", "test", "--policy-pack",
         str(pack), "--known-outputs", "--json", "--watch"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        stdout, stderr = _Lines(process.stdout), _Lines(process.stderr)
        first = stderr.wait_for("watch: planned in")
        assert "(start); exit status 0" in first

        main = project / "__main__.py"
        main.write_text(main.read_text() + '\naws.s3.Bucket("watch-added")\n')
        second = stderr.wait_for("watch: re-planned in")
        assert "(a change to __main__.py); exit status 0" in second

        # A module the pack imports: its advisory rules become mandatory, and their findings fail the plan.
        rules = pack / "demo_rules.py"
        rules.write_text(rules.read_text().replace("EnforcementLevel.ADVISORY", "EnforcementLevel.MANDATORY"))
        third = stderr.wait_for("watch: re-planned in")
        assert f"(a change to {Path('..') / 'pack' / 'demo_rules.py'}); exit status 1" in third

        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=30)
        stopped = stderr.wait_for("watch: stopped", timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert status == INTERRUPTED == 130
    assert stopped == "watch: stopped\n"
    assert not any("Traceback" in line for line in stderr.all()), "".join(stderr.seen)

    plans = _documents(stdout.all())
    assert [plan["summary"]["resources"] for plan in plans] == [13, 14, 14]
    assert "watch-added" in {resource["name"] for resource in plans[1]["resources"]}
    assert [plan["summary"]["passed"] for plan in plans] == [True, True, False]
    times = [float(line.split(" in ", 1)[1].split(" s ", 1)[0]) for line in (first, second, third)]
    assert all(seconds > 0 for seconds in times)


def test_snapshot_sees_edits_additions_and_removals_but_not_caches_or_hidden_dirs(tmp_path: Path) -> None:
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "a.py").write_text("A = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / ".git").mkdir()
    before = snapshot([tmp_path])
    assert list(before) == [str(tmp_path / "components" / "a.py")]

    (tmp_path / "components" / "a.py").write_text("A = 22\n")  # size changes even within one mtime tick
    (tmp_path / "b.yaml").write_text("x: 1\n")
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / ".git" / "index").write_bytes(b"\0")
    after = snapshot([tmp_path])
    assert changed_files(before, after) == [str(tmp_path / "b.yaml"), str(tmp_path / "components" / "a.py")]
    (tmp_path / "b.yaml").unlink()
    assert changed_files(after, snapshot([tmp_path])) == [str(tmp_path / "b.yaml")]
