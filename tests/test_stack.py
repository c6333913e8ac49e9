"""The whole production program, planned offline with the policy pack, as `make plan` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from sarkops.errors import ProgramError
from sarkops.plan import PlanResult, run_plan

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def production() -> PlanResult:
    return run_plan(ROOT, "production", known_outputs=True)


def test_production_plans_without_mandatory_violations(production: PlanResult) -> None:
    assert [(v.policy, v.urn, v.message) for v in production.report.mandatory] == []


def test_production_exports_the_network(production: PlanResult) -> None:
    outputs = production.recording.outputs
    assert outputs["environment"] == "production"
    assert outputs["vpcId"].startswith("vpc-")
    assert len(outputs["appSubnetIds"]) == 3
    assert outputs["stackKeyArn"].startswith("arn:aws:kms:us-east-1:")


def test_every_resource_lives_inside_a_component(production: PlanResult) -> None:
    rec = production.recording
    components = {r.urn for r in rec.resources if not r.custom}
    orphans = [r.name for r in rec.resources if r.custom and r.parent not in components]
    assert orphans == []


def test_stateful_resources_are_protected(production: PlanResult) -> None:
    stateful = {"aws:kms/key:Key", "aws:rds/instance:Instance", "aws:ebs/volume:Volume",
                "aws:secretsmanager/secret:Secret", "aws:elasticache/replicationGroup:ReplicationGroup"}
    unprotected = [r.name for r in production.recording.resources if r.type in stateful and not r.protect]
    assert unprotected == []


def test_a_bad_config_value_stops_the_plan_with_the_key_named() -> None:
    with pytest.raises(ProgramError, match=r"sark-infra:availabilityZoneCount: 1 is not allowed; expected a whole "
                                          r"number from 2 to 4"):
        run_plan(ROOT, "production", overrides=["availabilityZoneCount=1"])


def test_components_use_fixed_sark_type_tokens_and_name_their_children(production: PlanResult) -> None:
    rec = production.recording
    components = {r.urn: r for r in rec.resources if not r.custom}
    assert all(c.type.startswith("sark:") and c.type.count(":") == 2 for c in components.values())
    misnamed = [(r.name, components[r.parent].name) for r in rec.resources
                if r.parent in components and not r.name.startswith(components[r.parent].name + "-")]
    assert misnamed == []
