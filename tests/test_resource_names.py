"""Every length-limited name the program creates fits AWS's limits, for long stack names and tags.

The whole production program is planned as a stack named with 20 characters, rolling a
20-character release out while a 20-character one still serves; every recorded resource of a
type in :data:`components._names.NAME_LIMITS` is checked: its explicit name, or the name
Pulumi would generate (logical name, ``-`` and 7 random characters).
"""

from __future__ import annotations

import re
from functools import cache

import pytest

from components._names import AUTO_SUFFIX_LENGTH, NAME_LIMITS, bounded_name
from components.load_balancer import load_balancer_name, log_bucket_prefix, target_group_name
from sarkops.plan.project import load_project, resolve_config
from sarkops.plan.runtime import Recording, is_unknown, plain, run_program
from tests.app_tier_plans import ROOT

LONG_STACK = "production-eu-west-1"
LONG_RELEASE = "v2024.12.31-hotfix.1"
LONG_PREVIOUS = "v2024.11.30-hotfix.9"


@cache
def long_plan() -> Recording:
    project = load_project(ROOT)
    config = resolve_config(project, "production", [("appVersion", LONG_RELEASE),
                                                     ("previousAppVersion", LONG_PREVIOUS),
                                                     ("newVersionTrafficPercent", "10")])
    return run_program(ROOT, project=project.name, stack=LONG_STACK, config=config.values,
                       secret_keys=config.secret_keys)


def effective_name(resource_type: str, logical: str, inputs: dict) -> str | None:
    rule = NAME_LIMITS[resource_type]
    value = plain(inputs.get(rule.prop))
    if isinstance(value, str) and value:
        return value
    if value is not None and is_unknown(value):
        return None
    return f"{logical}-{'x' * (AUTO_SUFFIX_LENGTH - 1)}" if rule.auto_named else None


def test_the_inputs_are_as_long_as_promised() -> None:
    assert len(LONG_STACK) == len(LONG_RELEASE) == len(LONG_PREVIOUS) == 20


def test_every_limited_name_fits_for_a_20_character_stack_and_release() -> None:
    rec = long_plan()
    checked, problems = 0, []
    for resource in rec.resources:
        if resource.type not in NAME_LIMITS:
            continue
        name = effective_name(resource.type, resource.name, resource.inputs)
        if name is None:
            continue
        rule = NAME_LIMITS[resource.type]
        checked += 1
        if len(name) > rule.max_length or not re.fullmatch(rule.pattern, name):
            problems.append(f"{resource.type} {name!r} ({len(name)} > {rule.max_length} or not {rule.pattern})")
    assert problems == []
    # Both releases' target groups and the backup names were among the names checked.
    assert checked > 50
    assert len(rec.by_type("aws:lb/targetGroup:TargetGroup")) == 2


def test_target_groups_load_balancer_and_backups_are_named_explicitly() -> None:
    rec = long_plan()
    for resource_type in ("aws:lb/targetGroup:TargetGroup", "aws:lb/loadBalancer:LoadBalancer",
                          "aws:backup/vault:Vault", "aws:backup/plan:Plan", "aws:backup/selection:Selection"):
        for resource in rec.by_type(resource_type):
            assert isinstance(resource.inputs.get("name"), str), resource.name
    names = sorted(t.inputs["name"] for t in rec.by_type("aws:lb/targetGroup:TargetGroup"))
    assert [len(n) for n in names] == [32, 32]
    # The readable part is cut to fit; the digest still tells the two releases apart.
    assert [n.rsplit("-", 1)[0] for n in names] == ["sark-v2024-11-30-hotfix", "sark-v2024-12-31-hotfix"]


def test_the_production_stack_keeps_readable_names() -> None:
    from tests.app_tier_plans import plan

    rec = plan()
    (group,) = rec.by_type("aws:lb/targetGroup:TargetGroup")
    assert re.fullmatch(r"sark-v0-1-0-[0-9a-f]{8}", group.inputs["name"])
    assert re.fullmatch(r"sark-production-lb-[0-9a-f]{8}", rec.one("aws:lb/loadBalancer:LoadBalancer").inputs["name"])
    assert rec.one("aws:s3/bucket:Bucket").inputs["bucketPrefix"] == "sark-production-lb-logs-"
    selection = rec.one("aws:backup/selection:Selection").inputs["name"]
    assert re.fullmatch(r"sark-production-timescale-data-volume-[0-9a-f]{8}", selection)


def test_names_are_stable_and_change_only_with_their_inputs() -> None:
    a = target_group_name("sark-production-lb", "v0.1.0", port=8000)
    assert a == target_group_name("sark-production-lb", "v0.1.0", port=8000)
    assert a != target_group_name("sark-staging-lb", "v0.1.0", port=8000)  # another stack
    assert a != target_group_name("sark-production-lb", "v0.1.1", port=8000)  # another release
    assert a != target_group_name("sark-production-lb", "v0.1.0", port=8080)  # a replacement
    assert load_balancer_name("sark-production-lb") != load_balancer_name("sark-staging-lb")


@pytest.mark.parametrize("stack", ["production-eu-west-1", "Prod_EU.West.2025xyz", "internal-tools-stack"])
@pytest.mark.parametrize("release", ["v2024.12.31-hotfix.1", "release/2025_01_RC-3", "-"])
def test_odd_stack_names_and_tags_still_give_valid_names(stack: str, release: str) -> None:
    component = f"sark-{stack}-lb"
    tg = target_group_name(component, release, port=8000)
    lb = load_balancer_name(component)
    for name in (tg, lb):
        assert len(name) <= 32
        assert re.fullmatch(NAME_LIMITS["aws:lb/loadBalancer:LoadBalancer"].pattern, name), name
    prefix = log_bucket_prefix(f"sark-{stack}-a-much-longer-component-name-lb")
    assert len(prefix) <= 37
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*-logs-", prefix)


def test_bounded_name_never_reads_as_an_internal_load_balancer() -> None:
    assert bounded_name("internal-api", 32, "x").startswith("int-api-")
    with pytest.raises(ValueError, match="limit 5 leaves no room"):
        bounded_name("x", 5)
