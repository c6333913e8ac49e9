"""run_plan in-process: pack discovery, program logs, warnings, and a production-sized program."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sarkops.errors import PolicyPackError, ProgramError
from sarkops.plan import render_text, run_plan, to_json
from tests.conftest import FIXTURES


def small_project(tmp_path: Path, stack_file: str = "config:\n  aws:region: us-east-1\n") -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: small\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text(stack_file)
    (tmp_path / "__main__.py").write_text("import pulumi_aws as aws\n\naws.s3.Bucket('assets')\n")
    return tmp_path


def test_policies_dir_of_the_project_is_the_default_pack(tmp_path: Path) -> None:
    project = small_project(tmp_path)
    assert run_plan(project, "dev").packs == []
    shutil.copytree(FIXTURES / "packs" / "demo", project / "policies")
    result = run_plan(project, "dev")
    assert [pack.name for pack in result.packs] == ["demo-policies"]
    assert [(v.policy, v.enforcement_level) for v in result.report.violations] == [
        ("demo-bucket-managed-by-tag", "remediate"), ("demo-resources-in-components", "advisory")]


def test_esc_environment_warning_is_reported(tmp_path: Path) -> None:
    result = run_plan(small_project(tmp_path, "environment:\n  - shared\nconfig: {}\n"), "dev")
    assert "Pulumi ESC" in to_json(result)["warnings"][0]
    assert "Warnings:\n  Pulumi.dev.yaml: `environment:` (Pulumi ESC) is not resolved offline" in render_text(result)


def test_a_logged_error_fails_the_plan() -> None:
    with pytest.raises(ProgramError, match=r"^program logged an error: failing:mode logerror: something the "
                                           r"program considers fatal$"):
        run_plan(FIXTURES / "projects" / "failing", "test", overrides=["mode=logerror"])


def test_more_pack_configs_than_packs(tmp_path: Path) -> None:
    with pytest.raises(PolicyPackError, match=r"2 --policy-pack-config file\(s\) for 1 policy pack\(s\)"):
        run_plan(small_project(tmp_path), "dev", pack_dirs=[FIXTURES / "packs" / "demo"],
                 pack_config_files=[tmp_path / "a.json", tmp_path / "b.json"])


def test_production_sized_program() -> None:
    # Network, data stores, load balancer with WAF and TLS, ten services: 200 resources, every
    # invoke answered (AZs, ELB account, IAM policy document), every resource in a component
    # except the three shared ones at the top.
    result = run_plan(FIXTURES / "projects" / "large", "test", pack_dirs=[FIXTURES / "packs" / "demo"],
                      known_outputs=True)
    rec = result.recording
    assert len(rec.resources) == 200
    assert sorted(r.name for r in rec.resources if r.parent == rec.stack_urn and r.custom) == [
        "large-alerts", "large-key", "large-oncall"]
    policy = rec.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"]
    assert '"AWS": "arn:aws:iam::127311923021:root"' in policy
    assert result.report.mandatory == []
