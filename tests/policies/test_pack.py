"""The pack as a whole: naming, metadata, and the README table generated from it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pulumi_policy import EnforcementLevel

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
