"""The pack as a whole: naming, metadata, and the README table generated from it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pulumi_policy import EnforcementLevel, Severity

from sark_policies import POLICIES
from sark_policies._base import RESOURCE_TYPES

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"^aws-[a-z0-9]+(-[a-z0-9]+)*-(disallow|enable|configure|require)(-[a-z0-9]+)+$")


def test_names_are_unique_and_follow_the_scheme() -> None:
    names = [p.name for p in POLICIES]
    assert len(names) == len(set(names))
    bad = [n for n in names if not NAME.match(n)]
    assert bad == []


def test_every_rule_carries_its_metadata() -> None:
    for policy in POLICIES:
        assert policy.description.endswith("."), policy.name
        assert policy.enforcement_level in (EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY), policy.name
        assert policy.severity is not None, policy.name
        assert policy.remediation_steps, policy.name
        assert policy.name in RESOURCE_TYPES, policy.name
        assert policy.config_schema is not None
        assert "exemptions" in policy.config_schema.properties, policy.name


def test_readme_rule_table_matches_the_pack() -> None:
    result = subprocess.run([sys.executable, "scripts/policy_table.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


ANCHOR_SETS = {"awsguard", "compliance", "checkov", "trivy", "securityhub", "checklist"}


def test_levels_follow_severity_and_every_rule_names_its_anchors() -> None:
    for policy in POLICIES:
        assert policy.tags, policy.name
        assert {tag.split(":", 1)[0] for tag in policy.tags} <= ANCHOR_SETS, policy.name
        if policy.enforcement_level == EnforcementLevel.MANDATORY:
            assert policy.severity in (Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL), policy.name
        else:
            assert policy.severity in (Severity.LOW, Severity.MEDIUM), policy.name


def test_every_threshold_has_a_default_and_exemptions_need_a_reason() -> None:
    for policy in POLICIES:
        properties = policy.config_schema.properties
        assert all("default" in spec for key, spec in properties.items() if key != "exemptions"), policy.name
        item = properties["exemptions"]["items"]
        assert item["required"] == ["resource", "reason"]


def _coverage() -> str:
    text = (ROOT / "policies" / "README.md").read_text()
    return text[text.index("## Coverage"):text.index("## Tests")]


def test_coverage_table_names_only_rules_of_the_pack() -> None:
    names = {p.name for p in POLICIES}
    anchors = {tag.split(":", 1)[1] for p in POLICIES for tag in p.tags or []}
    mentioned = set(re.findall(r"`(aws-[a-z0-9-]+)`", _coverage()))
    assert mentioned - names - anchors == set()


def test_coverage_table_maps_every_rule_of_the_pack() -> None:
    mentioned = set(re.findall(r"`(aws-[a-z0-9-]+)`", _coverage()))
    assert {p.name for p in POLICIES} - mentioned == set()


def test_coverage_lists_every_anchor_idea() -> None:
    coverage = _coverage()
    ideas = [f"{section}{n}" for section, count in
             {"A": 8, "B": 10, "C": 11, "D": 13, "E": 8, "F": 4, "G": 3, "H": 2, "I": 4, "J": 2}.items()
             for n in range(1, count + 1)]
    assert [i for i in ideas if f"| {i} |" not in coverage] == []
