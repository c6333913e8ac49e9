"""A release (`pulumi up` with a new appVersion) changes only the app tier, never a stateful resource.

The whole production program is planned twice: running v0.1.0 alone, then releasing v0.2.0
with previousAppVersion v0.1.0 at 10 % traffic. Recorded inputs are compared by URN.
"""

from __future__ import annotations

from sarkops.plan.runtime import RecordedResource, Recording
from tests.app_tier_plans import descendants, plan

RUNNING = ()
RELEASING = (("appVersion", "v0.2.0"), ("previousAppVersion", "v0.1.0"), ("newVersionTrafficPercent", "10"))

APP_TIER = ("sark:app:AppHosts", "sark:loadbalancer:LoadBalancer", "sark:release:Release")
# Monitoring follows the releases: alarms per Auto Scaling group and target group, and the dashboard.
FOLLOWS_RELEASES = {"sark:monitoring:Monitoring": ("aws:cloudwatch/metricAlarm:MetricAlarm",
                                                   "aws:cloudwatch/dashboard:Dashboard")}
STATEFUL_TYPES = (
    "aws:rds/instance:Instance", "aws:elasticache/replicationGroup:ReplicationGroup", "aws:ebs/volume:Volume",
    "aws:ec2/instance:Instance", "aws:secretsmanager/secret:Secret", "aws:secretsmanager/secretVersion:SecretVersion",
    "aws:kms/key:Key", "aws:s3/bucket:Bucket", "aws:cloudwatch/logGroup:LogGroup",
    "random:index/randomPassword:RandomPassword",
)


def diff(before: Recording, after: Recording) -> tuple[set[str], set[str], set[str]]:
    """(added, removed, changed) URNs."""
    old = {r.urn: r for r in before.resources}
    new = {r.urn: r for r in after.resources}
    changed = {urn for urn in old.keys() & new.keys() if old[urn].inputs != new[urn].inputs}
    return set(new) - set(old), set(old) - set(new), changed


def app_tier(rec: Recording) -> set[str]:
    allowed: set[str] = set()
    for resource in rec.resources:
        if resource.type in APP_TIER:
            allowed |= {resource.urn} | descendants(rec, resource.urn)
        elif resource.type in FOLLOWS_RELEASES:
            allowed |= {urn for urn in descendants(rec, resource.urn)
                        if rec.get(urn).type in FOLLOWS_RELEASES[resource.type]}
    return allowed


def names(rec: Recording, urns: set[str]) -> list[str]:
    return sorted(rec.get(urn).name for urn in urns)


def test_a_release_adds_the_new_version_and_keeps_the_running_one() -> None:
    before, after = plan(*RUNNING), plan(*RELEASING)
    added, removed, changed = diff(before, after)
    assert removed == set()
    assert {n for n in names(after, added) if "v0-2-0" in n} >= {
        "sark-production-app-v0-2-0-lt", "sark-production-app-v0-2-0-asg", "sark-production-lb-v0-2-0-tg",
        "sark-production-lb-v0-2-0-pin", "sark-production-release-v0-2-0-gate"}
    assert "sark-production-release-traffic" in names(after, changed)


def test_a_release_touches_only_the_app_tier() -> None:
    before, after = plan(*RUNNING), plan(*RELEASING)
    added, _, changed = diff(before, after)
    outside = (added | changed) - app_tier(after)
    assert names(after, outside) == []


def test_stateful_resources_are_identical() -> None:
    before, after = plan(*RUNNING), plan(*RELEASING)
    stateful = [r for r in before.resources if r.type in STATEFUL_TYPES or r.protect]
    kinds = {r.type for r in stateful}
    for kind in ("aws:rds/instance:Instance", "aws:elasticache/replicationGroup:ReplicationGroup",
                 "aws:ebs/volume:Volume", "aws:secretsmanager/secret:Secret", "aws:kms/key:Key",
                 "aws:s3/bucket:Bucket"):
        assert kind in kinds, f"the stack has no {kind} to compare"
    new = {r.urn: r for r in after.resources}
    for resource in stateful:
        assert resource.urn in new, resource.name
        assert new[resource.urn].inputs == resource.inputs, resource.name
        assert new[resource.urn].protect == resource.protect, resource.name


def test_the_running_release_is_untouched() -> None:
    before, after = plan(*RUNNING), plan(*RELEASING)
    old = {r.urn: r for r in before.resources}
    running: list[RecordedResource] = [r for r in after.resources if "v0-1-0" in r.name]
    assert {r.type for r in running} >= {"aws:ec2/launchTemplate:LaunchTemplate", "aws:autoscaling/group:Group",
                                         "aws:lb/targetGroup:TargetGroup", "command:local:Command"}
    for resource in running:
        assert old[resource.urn].inputs == resource.inputs, resource.name  # e.g. its gate never re-runs


def test_weights_follow_config_and_rollback_is_one_change() -> None:
    def weights(rec: Recording) -> dict[str, int]:
        rule = rec.one("aws:lb/listenerRule:ListenerRule", "sark-production-release-traffic")
        groups = {r.outputs["arn"]: r.name for r in rec.by_type("aws:lb/targetGroup:TargetGroup")}
        return {groups[g["arn"]]: int(g["weight"]) for g in rule.inputs["actions"][0]["forward"]["targetGroups"]}

    assert weights(plan(*RUNNING)) == {"sark-production-lb-v0-1-0-tg": 100}
    assert weights(plan(*RELEASING)) == {"sark-production-lb-v0-2-0-tg": 10, "sark-production-lb-v0-1-0-tg": 90}
    rollback = plan(*RELEASING[:2], ("newVersionTrafficPercent", "0"))
    assert weights(rollback) == {"sark-production-lb-v0-2-0-tg": 0, "sark-production-lb-v0-1-0-tg": 100}
    _, removed, changed = diff(plan(*RELEASING), rollback)
    assert removed == set()
    assert names(rollback, changed) == ["sark-production-release-traffic"]
