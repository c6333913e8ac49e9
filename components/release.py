"""The release path: a gate per release, then weighted traffic between the live releases.

A release is ``pulumi up`` with a new ``appVersion`` (and ``previousAppVersion`` set to the
running one). Each live release already has its own target group (components/load_balancer.py)
and Auto Scaling group (components/app_hosts.py), keyed by its tag. This component adds:

- per live release, the *gate*: a ``pulumi_command.local.Command`` running
  ``scripts/release/release_gate.py`` where ``pulumi up`` runs (AWS CLI, operator
  credentials): pre-migration RDS snapshot named after the release, TimescaleDB volume
  snapshot, ``alembic upgrade head`` and the TimescaleDB migrations on one new host through
  SSM Run Command, then a wait until the new targets answer ``/health``. It runs once, when
  the release first appears; a failure fails the update. The gate is the one resource that
  truly depends on the data tier, so it has explicit ``depends_on`` on it;
- the traffic rule on the HTTPS listener: forward to the current release with weight
  ``new_release_weight`` and to the previous one with the rest (the checklist's 10 -> 50 ->
  100 canary). It depends on every gate, so traffic moves only after the new release passed.

Rolling back the app is one config change: ``newVersionTrafficPercent: 0``; ``make rollback``
(``scripts/rollback.py``) also reverts a release whose gate failed and, when the operator
confirms, restores the pre-migration snapshot (docs/app-tier.md, docs/data-tier.md).

A gate that fails part-way resumes on the next ``pulumi up``: it records its completed steps
(snapshots, migrations) in ``<state_parameter_path>/<release>/gate`` and skips them when retried.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_command as command

from components.app_hosts import version_key
from components.load_balancer import TRAFFIC_RULE_PRIORITY

GATE_SCRIPT = "scripts/release/release_gate.py"


def snapshot_identifier(stack: str, version: str) -> str:
    """RDS snapshot id of a release: letters, digits and single hyphens, starting with a letter."""
    text = re.sub(r"-+", "-", f"sark-{version_key(stack)}-pre-{version_key(version)}").strip("-")
    return text[:255].rstrip("-")


def gate_state_parameter(path: str, version: str) -> str:
    """SSM parameter holding a release's record of completed gate steps."""
    return f"{path.rstrip('/')}/{version_key(version)}/gate"


def traffic_weights(current: str, previous: str | None, new_release_weight: int) -> dict[str, int]:
    """Weight per release tag for the forward rule."""
    if not 0 <= new_release_weight <= 100:
        raise pulumi.RunError(f"Release: new_release_weight {new_release_weight} is not allowed; expected 0 to 100")
    if previous is None:
        if new_release_weight != 100:
            raise pulumi.RunError("Release: new_release_weight must be 100 without a previous release "
                                  f"(got {new_release_weight}); nothing else could take the rest")
        return {current: 100}
    if previous == current:
        raise pulumi.RunError(f"Release: previous release {previous!r} is the current one; set previousAppVersion "
                              "to the release being replaced, or unset it")
    return {current: new_release_weight, previous: 100 - new_release_weight}


@dataclass(frozen=True, kw_only=True)
class ReleaseArgs:
    """Arguments of :class:`Release`."""

    stack: str
    """Stack name; part of snapshot names."""

    region: str
    """AWS region the gate's AWS CLI calls go to."""

    current_version: str
    """The release being rolled out (``appVersion``)."""

    previous_version: str | None = None
    """The release still serving the rest of the traffic (``previousAppVersion``)."""

    new_release_weight: int = 100
    """Percent of requests for ``current_version`` (``newVersionTrafficPercent``)."""

    https_listener_arn: pulumi.Input[str]
    """The HTTPS listener the traffic rule belongs to."""

    target_group_arns: Mapping[str, pulumi.Input[str]]
    """Target group per live release tag."""

    autoscaling_group_names: Mapping[str, pulumi.Input[str]]
    """Auto Scaling group per live release tag (the gate migrates on one of its hosts)."""

    db_instance_identifier: pulumi.Input[str]
    """RDS instance to snapshot before migrating."""

    data_tier: Sequence[pulumi.Resource] = ()
    """The database, TimescaleDB host (and its volume) the migrations need: explicit dependencies of the gates."""

    timescale_volume_id: pulumi.Input[str] | None = None
    """TimescaleDB data volume to snapshot before migrating (None: no volume snapshot)."""

    min_healthy_targets: int = 2
    """Healthy targets the new release needs before it takes traffic (the Auto Scaling group's desired size)."""

    health_timeout_seconds: int = 1800
    """How long the gate waits for healthy targets."""

    migration_timeout_seconds: int = 3600
    """How long the migrations may run."""

    python: str = "python3"
    """Interpreter for the gate script on the machine running ``pulumi up``."""

    state_parameter_path: str | None = None
    """SSM path under which each release's gate records its completed steps
    (``<path>/<release key>/gate``), so a retried gate resumes; None: no record."""

    secret_arns: Mapping[str, pulumi.Input[str]] | None = None
    """Secrets the release needs (environment variable -> ARN): the gate first checks each has a value."""

    cache_replication_group_id: pulumi.Input[str] | None = None
    """The cache the gate waits for (None: not waited for)."""

    timescale_ready_parameter: pulumi.Input[str] | None = None
    """SSM parameter the TimescaleDB host sets to its instance id when its bootstrap is done."""

    timescale_instance_id: pulumi.Input[str] | None = None
    """The TimescaleDB host the gate waits for (with ``timescale_ready_parameter``)."""


class Release(pulumi.ComponentResource):
    """Release gates and the weighted traffic rule."""

    weights: dict[str, int]
    """Traffic percent per live release tag."""

    gate_ids: dict[str, pulumi.Output[str]]
    """Id of each release's gate command."""

    traffic_rule_arn: pulumi.Output[str]
    """ARN of the weighted forward rule."""

    def __init__(self, name: str, args: ReleaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:release:Release", name, None, opts)
        self.weights = traffic_weights(args.current_version, args.previous_version, args.new_release_weight)
        for version in self.weights:
            for label, mapping in (("target_group_arns", args.target_group_arns),
                                   ("autoscaling_group_names", args.autoscaling_group_names)):
                if version not in mapping:
                    raise pulumi.RunError(f"{name}: {label} has no entry for release {version!r}; "
                                          f"it has {', '.join(sorted(mapping)) or 'none'}")

        gates: list[command.local.Command] = []
        self.gate_ids = {}
        for version in self.weights:
            environment: dict[str, pulumi.Input[str]] = {
                "SARK_RELEASE": version,
                "AWS_REGION": args.region,
                "SARK_DB_INSTANCE": args.db_instance_identifier,
                "SARK_SNAPSHOT_ID": snapshot_identifier(args.stack, version),
                "SARK_AUTOSCALING_GROUP": args.autoscaling_group_names[version],
                "SARK_TARGET_GROUP_ARN": args.target_group_arns[version],
                "SARK_MIN_HEALTHY": str(args.min_healthy_targets),
                "SARK_HEALTH_TIMEOUT": str(args.health_timeout_seconds),
                "SARK_MIGRATION_TIMEOUT": str(args.migration_timeout_seconds),
            }
            if args.timescale_volume_id is not None:
                environment["SARK_TIMESCALE_VOLUME"] = args.timescale_volume_id
            if args.state_parameter_path is not None:
                environment["SARK_STATE_PARAMETER"] = gate_state_parameter(args.state_parameter_path, version)
            if args.secret_arns:
                # ARNs only: the gate reads each secret's metadata, never its value.
                environment["SARK_SECRET_ARNS"] = pulumi.Output.json_dumps(dict(args.secret_arns))
            if args.cache_replication_group_id is not None:
                environment["SARK_CACHE_GROUP"] = args.cache_replication_group_id
            if args.timescale_ready_parameter is not None and args.timescale_instance_id is not None:
                environment["SARK_TIMESCALE_READY_PARAMETER"] = args.timescale_ready_parameter
                environment["SARK_TIMESCALE_INSTANCE"] = args.timescale_instance_id
            gate = command.local.Command(
                f"{name}-{version_key(version)}-gate",
                create=f"{args.python} {GATE_SCRIPT}",
                # Once a release has passed, its gate never runs again: re-running an older
                # release's migrations against a database a newer release has migrated would
                # fail (alembic does not know the newer revision). `pulumi up --replace` on
                # the gate's URN re-runs it deliberately.
                update=f"echo 'release {version}: gate passed earlier, not repeated'",
                environment=environment,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.data_tier)),
            )
            gates.append(gate)
            self.gate_ids[version] = gate.id

        rule = aws.lb.ListenerRule(
            f"{name}-traffic",
            listener_arn=args.https_listener_arn,
            priority=TRAFFIC_RULE_PRIORITY,
            conditions=[aws.lb.ListenerRuleConditionArgs(
                path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=["/*"]))],
            actions=[aws.lb.ListenerRuleActionArgs(
                type="forward",
                forward=aws.lb.ListenerRuleActionForwardArgs(
                    target_groups=[
                        aws.lb.ListenerRuleActionForwardTargetGroupArgs(arn=args.target_group_arns[v], weight=w)
                        for v, w in self.weights.items()
                    ],
                    # No stickiness: a rollback to weight 0 must move every client at once.
                    stickiness=aws.lb.ListenerRuleActionForwardStickinessArgs(enabled=False, duration=1),
                ),
            )],
            opts=pulumi.ResourceOptions(parent=self, depends_on=gates),
        )
        self.traffic_rule_arn = rule.arn
        self.register_outputs({"weights": self.weights, "gateIds": self.gate_ids, "trafficRuleArn": rule.arn})
