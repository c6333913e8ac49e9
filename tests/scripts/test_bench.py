"""scripts/bench.py (``make bench``): the plan beside an import-only process, and the ratio."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEBAPP = ["--project", "tests/fixtures/projects/webapp", "--stack", "test",
          "--policy-pack", "tests/fixtures/packs/demo"]


def test_bench_times_the_plan_beside_the_imports_it_needs_and_enforces_a_ratio(tmp_path: Path) -> None:
    saved = tmp_path / "modules.json"
    result = subprocess.run([sys.executable, "scripts/bench.py", "--runs", "1", "--max-ratio", "0.01",
                             "--save-modules", str(saved), "--", *WEBAPP],
                            cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 1, result.stderr  # no plan is 100x faster than its imports
    assert "above --max-ratio 0.01" in result.stderr
    out = result.stdout
    assert "python -m sarkops plan --project tests/fixtures/projects/webapp" in out
    modules = re.search(r"imported (\d+) third-party modules \((\d+) of pulumi_aws\)", out)
    assert modules is not None, out
    # The SDKs and the pulumi_aws services the webapp uses, but none of the project's modules.
    assert int(modules[1]) > 200
    assert int(modules[2]) > 10
    baseline = json.loads(saved.read_text())
    assert len(baseline) == int(modules[1])
    assert {"pulumi", "pulumi_aws.ec2", "pulumi_policy", "grpc", "google.protobuf", "yaml"} <= set(baseline)
    tops = {name.split(".")[0] for name in baseline}
    assert not tops & {"sarkops", "components", "stack_config", "demo_rules", "__main__", "json", "asyncio"}
    rows = {line.split(":")[0]: line for line in out.splitlines()
            if line.startswith(("plan:", "GC off:", "GC off, frozen:"))}
    assert set(rows) == {"plan", "GC off", "GC off, frozen"}
    medians = {name: float(re.search(r"median ([\d.]+) s", line)[1]) for name, line in rows.items()}  # type: ignore[index]
    ratio = float(re.search(r"GC off: ([\d.]+) \(median wall\)", out)[1])  # type: ignore[index]
    assert abs(ratio - medians["plan"] / medians["GC off"]) < 0.02
    assert "goal at most 1.3" in out
    assert re.search(r"load average after: [\d.]+ [\d.]+ [\d.]+", out)
