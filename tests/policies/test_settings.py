"""Settings never fail open or closed: a rule configured with no properties behaves as with its defaults.

The engine always sends every policy's schema defaults (pulumi/pulumi
``pkg/resource/analyzer/config.go``, ``ReconcilePolicyPackConfig``), but a rule must not depend
on that: ``sark_policies._base`` merges the defaults under whatever config arrives, and every rule
reads its settings through ``settings(args)``. Here every policy is configured through
``Configure`` with empty properties (``sarkops.plan.policy_runner.effective_config`` replaced for
the test, nothing else), and the reports must equal the ones with the defaults: on the
production stack, and on an insecure variant where the thresholds matter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from pulumi_policy import Policy, ResourceValidationArgs

from sark_policies import POLICIES
from sark_policies._base import Settings, _merged, settings
from sarkops.plan import PlanResult, policy_runner
from sarkops.plan.policy_runner import PolicyInfo, evaluate
from sarkops.plan.runtime import Recording
from tests.policies.test_evaluators import insecure

Finding = tuple[str, str, str, str]


def _findings(recording: Recording, production: PlanResult) -> list[Finding]:
    report = evaluate(recording, production.packs, config=production.config.values)
    return sorted((v.policy, v.enforcement_level, v.urn, v.detail) for v in report.violations)


def _send_no_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, Configure sends each policy its level and no properties at all."""

    def no_properties(pack: str, infos: Mapping[str, PolicyInfo], initial: Any, config: Any,
                      **_: Any) -> dict[str, dict[str, Any]]:
        return {name: {"enforcementLevel": info.enforcement_level, "properties": {}} for name, info in infos.items()}

    monkeypatch.setattr(policy_runner, "effective_config", no_properties)


def test_production_plan_is_the_same_with_empty_settings(production_plan: PlanResult,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with_defaults = _findings(production_plan.recording, production_plan)
    _send_no_properties(monkeypatch)
    assert _findings(production_plan.recording, production_plan) == with_defaults


def test_insecure_variant_is_the_same_with_empty_settings(production_plan: PlanResult,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    variant = insecure(production_plan.recording)
    with_defaults = _findings(variant, production_plan)
    assert len([f for f in with_defaults if f[1] == "mandatory"]) >= 8
    _send_no_properties(monkeypatch)
    assert _findings(variant, production_plan) == with_defaults


def _defaults(policy: Policy) -> dict[str, Any]:
    schema = policy.config_schema.properties if policy.config_schema else {}
    return {k: v["default"] for k, v in schema.items() if v.get("default") is not None}


@pytest.mark.parametrize("policy", [p for p in POLICIES if len(_defaults(p)) > 1], ids=lambda p: p.name)
def test_every_declared_setting_has_its_default_when_none_arrives(policy: Policy) -> None:
    merged = _merged({}, _defaults(policy))
    assert merged == _defaults(policy)
    assert _merged({"exemptions": None}, _defaults(policy)) == _defaults(policy)


def test_a_given_setting_wins_and_integers_arrive_as_floats() -> None:
    config_in = _merged({"minDays": 45.0}, {"minDays": 30})
    args = ResourceValidationArgs("t", {}, "urn", "n", None, None, config_in)  # type: ignore[arg-type]
    config: Settings = settings(args)
    assert (config.int("minDays"), config["minDays"]) == (45, 45.0)
