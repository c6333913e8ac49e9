#!/usr/bin/env python3
"""The release gate: what must happen before a new SARK release takes traffic.

Run by ``pulumi up`` (a ``pulumi_command.local.Command`` of components/release.py) on the
machine running Pulumi, with the AWS CLI and the operator's credentials, once per release:

0. every secret the release needs has a current value (``describe-secret``: metadata only,
   never a value); a missing one fails at once, naming the secret and the command that sets it
   (the SIEM token is put in by an operator: docs/data-tier.md);
1. the data stores are up: the RDS instance and the cache replication group ``available``, and
   the TimescaleDB host has finished its bootstrap (its ready parameter names the instance);
2. a pre-migration RDS snapshot named after the release (reused if it already exists, so a
   retried ``pulumi up`` does not fail), and an EBS snapshot of the TimescaleDB data volume;
3. ``alembic upgrade head`` and the TimescaleDB SQL migrations on one host of the new
   release, through SSM Run Command (``/usr/local/sbin/sark-migrate``, shipped by
   cloud-init), waiting for the command and failing if it did not succeed;
4. waiting until the new release's targets answer ``/health`` on the load balancer.

Any failure exits non-zero, which fails the ``pulumi up``: the traffic rule that depends on
this gate is not changed, so the running release keeps all traffic.

**Resuming.** A failed gate is retried by the next ``pulumi up`` (the Command was never
created). Steps that change something (the snapshots, the migrations) are recorded per release
in the SSM parameter ``SARK_STATE_PARAMETER`` (``/<prefix>/<stack>/releases/<release>/gate``,
a JSON document of completed steps and when), and a retried gate skips them: the database is
not snapshotted again after its migration, and migrations are not re-run. The checks (secrets,
data stores, health) always run again. ``make rollback`` clears the record when it restores
the pre-migration snapshot, so a re-deployed tag migrates again.

Settings come from the environment (the Command passes them); a missing one is an error
naming it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Runner = Callable[[Sequence[str]], "Result"]

TERMINAL_FAILURES = frozenset({"Cancelled", "Cancelling", "TimedOut", "Failed", "DeliveryTimedOut",
                               "ExecutionTimedOut", "Undeliverable", "Terminated", "InvalidPlatform",
                               "AccessDenied"})


class GateError(Exception):
    """The release must not take traffic; the message says why."""


@dataclass(frozen=True)
class Result:
    """Outcome of one AWS CLI call."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        """stdout parsed as JSON (``{}`` when empty)."""
        return json.loads(self.stdout) if self.stdout.strip() else {}


@dataclass(frozen=True)
class Settings:
    """What the gate needs, from ``SARK_*`` environment variables."""

    release: str
    region: str
    db_instance: str
    snapshot_id: str
    autoscaling_group: str
    target_group_arn: str
    min_healthy: int
    timescale_volume: str | None = None
    state_parameter: str | None = None
    """SSM parameter recording the completed steps of this release (None: no record, every step runs)."""
    secret_ids: tuple[tuple[str, str], ...] = ()
    """(environment variable, secret ARN or name) of every secret the release needs."""
    cache_group: str | None = None
    timescale_ready_parameter: str | None = None
    timescale_instance: str | None = None
    migrate_command: str = "/usr/local/sbin/sark-migrate"
    host_timeout: float = 1800
    migration_timeout: float = 3600
    snapshot_timeout: float = 3600
    health_timeout: float = 1800
    poll_seconds: float = 15

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read the settings; :class:`GateError` names every missing or malformed variable."""
        required = {"release": "SARK_RELEASE", "region": "AWS_REGION", "db_instance": "SARK_DB_INSTANCE",
                    "snapshot_id": "SARK_SNAPSHOT_ID", "autoscaling_group": "SARK_AUTOSCALING_GROUP",
                    "target_group_arn": "SARK_TARGET_GROUP_ARN"}
        missing = [var for var in required.values() if not env.get(var)]
        if missing:
            raise GateError(f"missing environment variables: {', '.join(missing)}")
        numbers: dict[str, float] = {}
        for field_name, var, default in (("min_healthy", "SARK_MIN_HEALTHY", 1),
                                         ("host_timeout", "SARK_HOST_TIMEOUT", 1800),
                                         ("migration_timeout", "SARK_MIGRATION_TIMEOUT", 3600),
                                         ("snapshot_timeout", "SARK_SNAPSHOT_TIMEOUT", 3600),
                                         ("health_timeout", "SARK_HEALTH_TIMEOUT", 1800),
                                         ("poll_seconds", "SARK_POLL_SECONDS", 15)):
            raw = env.get(var, "")
            try:
                numbers[field_name] = float(raw) if raw else float(default)
            except ValueError:
                raise GateError(f"{var}={raw!r} is not a number") from None
            if numbers[field_name] < 0:
                raise GateError(f"{var}={raw!r} must not be negative")
        raw_secrets = env.get("SARK_SECRET_ARNS", "") or "{}"
        try:
            secret_map = json.loads(raw_secrets)
        except ValueError:
            secret_map = None
        if not isinstance(secret_map, dict) or not all(isinstance(v, str) and v for v in secret_map.values()):
            raise GateError(f"SARK_SECRET_ARNS={raw_secrets[:80]!r} is not a JSON object of name -> secret ARN")
        ready_parameter = env.get("SARK_TIMESCALE_READY_PARAMETER") or None
        instance = env.get("SARK_TIMESCALE_INSTANCE") or None
        if (ready_parameter is None) != (instance is None):
            raise GateError("SARK_TIMESCALE_READY_PARAMETER and SARK_TIMESCALE_INSTANCE go together; set both or "
                            "neither")
        return cls(**{k: env[v] for k, v in required.items()},
                   min_healthy=max(1, int(numbers.pop("min_healthy"))),
                   timescale_volume=env.get("SARK_TIMESCALE_VOLUME") or None,
                   state_parameter=env.get("SARK_STATE_PARAMETER") or None,
                   secret_ids=tuple(sorted(secret_map.items())),
                   cache_group=env.get("SARK_CACHE_GROUP") or None,
                   timescale_ready_parameter=ready_parameter,
                   timescale_instance=instance,
                   migrate_command=env.get("SARK_MIGRATE_COMMAND") or "/usr/local/sbin/sark-migrate",
                   **numbers)


def cli_runner(region: str) -> Runner:
    """Run ``aws <args>`` with JSON output in ``region``."""

    def run(args: Sequence[str]) -> Result:
        completed = subprocess.run(["aws", *args, "--region", region, "--output", "json"],
                                   capture_output=True, text=True, check=False)
        return Result(completed.returncode, completed.stdout, completed.stderr)

    return run


class Gate:
    """The three steps, with the clock and the AWS CLI injectable for tests."""

    def __init__(self, settings: Settings, run: Runner, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, log: Callable[[str], None] | None = None) -> None:
        self.s = settings
        self.run = run
        self.sleep = sleep
        self.clock = clock
        self.log = log or (lambda message: print(f"[release {settings.release}] {message}", flush=True))

    def _call(self, args: Sequence[str]) -> dict:
        result = self.run(args)
        if result.code != 0:
            raise GateError(f"aws {' '.join(args[:2])} failed: {result.stderr.strip() or result.code}")
        return result.json()

    # -- the record of completed steps ---------------------------------------------------

    def completed(self) -> dict[str, str]:
        """Steps already done for this release (step -> when), from the state parameter."""
        if self.s.state_parameter is None:
            return {}
        found = self.run(["ssm", "get-parameter", "--name", self.s.state_parameter])
        if found.code != 0:
            if "ParameterNotFound" in found.stderr:
                return {}
            raise GateError(f"aws ssm get-parameter failed: {found.stderr.strip() or found.code}")
        try:
            record = json.loads(found.json()["Parameter"]["Value"])
        except (KeyError, ValueError, TypeError):
            raise GateError(f"{self.s.state_parameter} does not hold a gate record; delete it "
                            f"(`aws ssm delete-parameter --name {self.s.state_parameter}`) to run every step "
                            "again") from None
        if record.get("release") != self.s.release:
            raise GateError(f"{self.s.state_parameter} records release {record.get('release')!r}, not "
                            f"{self.s.release!r}; delete it to run every step again")
        return dict(record.get("steps") or {})

    def record(self, done: dict[str, str], step: str) -> None:
        """Add ``step`` to the record (written after the step succeeded, so a crash repeats it at worst)."""
        done[step] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.s.state_parameter is None:
            return
        document = json.dumps({"release": self.s.release, "steps": done}, sort_keys=True)
        self._call(["ssm", "put-parameter", "--name", self.s.state_parameter, "--type", "String",
                    "--overwrite", "--value", document,
                    "--description", f"SARK release gate: completed steps of {self.s.release}"[:1024]])

    # -- 0. secrets ---------------------------------------------------------------------

    def check_secrets(self) -> None:
        """Every secret has a current value; fail fast, naming each missing one and how to set it."""
        missing: list[str] = []
        for name, secret in self.s.secret_ids:
            described = self._call(["secretsmanager", "describe-secret", "--secret-id", secret])
            stages = [stage for stages in (described.get("VersionIdsToStages") or {}).values() for stage in stages]
            if described.get("DeletedDate"):
                missing.append(f"{name} ({described.get('Name', secret)}) is scheduled for deletion: "
                               f"`aws secretsmanager restore-secret --secret-id {described.get('Name', secret)}`")
            elif "AWSCURRENT" not in stages:
                missing.append(f"{name} ({described.get('Name', secret)}) has no value: `aws secretsmanager "
                               f"put-secret-value --secret-id {described.get('Name', secret)} --secret-string "
                               "file://<file>` (docs/data-tier.md, \"Put in the SIEM token\")")
        if missing:
            raise GateError("secrets without a current value:\n  " + "\n  ".join(missing))
        if self.s.secret_ids:
            self.log(f"{len(self.s.secret_ids)} secrets have a current value")

    # -- 1. data stores -----------------------------------------------------------------

    def wait_data_stores(self) -> None:
        """Wait until RDS, the cache and the TimescaleDB host are ready (a first deployment creates them)."""
        s = self.s
        deadline = self.clock() + s.host_timeout
        while True:
            waiting: list[str] = []
            instance = (self._call(["rds", "describe-db-instances", "--db-instance-identifier", s.db_instance])
                        .get("DBInstances") or [{}])[0]
            if instance.get("DBInstanceStatus") not in ("available", "backing-up"):
                waiting.append(f"RDS {s.db_instance} is {instance.get('DBInstanceStatus', 'unknown')}")
            if s.cache_group is not None:
                group = (self._call(["elasticache", "describe-replication-groups", "--replication-group-id",
                                     s.cache_group]).get("ReplicationGroups") or [{}])[0]
                if group.get("Status") != "available":
                    waiting.append(f"cache {s.cache_group} is {group.get('Status', 'unknown')}")
            if s.timescale_ready_parameter is not None:
                found = self.run(["ssm", "get-parameter", "--name", s.timescale_ready_parameter])
                value = found.json().get("Parameter", {}).get("Value") if found.code == 0 else None
                if found.code != 0 and "ParameterNotFound" not in found.stderr:
                    raise GateError(f"aws ssm get-parameter failed: {found.stderr.strip() or found.code}")
                if value != s.timescale_instance:
                    waiting.append(f"TimescaleDB host {s.timescale_instance} has not finished its bootstrap "
                                   f"({s.timescale_ready_parameter} is {value!r})")
            if not waiting:
                self.log("data stores ready")
                return
            if self.clock() >= deadline:
                raise GateError(f"data stores not ready after {s.host_timeout:.0f} s: {'; '.join(waiting)}")
            self.sleep(s.poll_seconds)

    # -- 1. snapshots -------------------------------------------------------------------

    def snapshot_database(self) -> None:
        """Take (or find) the pre-migration snapshot and wait until it is available."""
        s = self.s
        found = self.run(["rds", "describe-db-snapshots", "--db-snapshot-identifier", s.snapshot_id])
        if found.code == 0:
            self.log(f"snapshot {s.snapshot_id} exists already; reusing it")
        elif "DBSnapshotNotFound" in found.stderr:
            self._call(["rds", "create-db-snapshot", "--db-instance-identifier", s.db_instance,
                        "--db-snapshot-identifier", s.snapshot_id,
                        "--tags", f"Key=sark:release,Value={s.release}", "Key=sark:purpose,Value=pre-migration"])
            self.log(f"snapshot {s.snapshot_id} of {s.db_instance} started")
        else:
            raise GateError(f"aws rds describe-db-snapshots failed: {found.stderr.strip() or found.code}")
        deadline = self.clock() + s.snapshot_timeout
        while True:
            snapshots = self._call(["rds", "describe-db-snapshots", "--db-snapshot-identifier", s.snapshot_id])
            status = (snapshots.get("DBSnapshots") or [{}])[0].get("Status", "unknown")
            if status == "available":
                self.log(f"snapshot {s.snapshot_id} is available")
                return
            if status in ("failed", "deleted", "deleting"):
                raise GateError(f"snapshot {s.snapshot_id} is {status}")
            if self.clock() >= deadline:
                raise GateError(f"snapshot {s.snapshot_id} still {status} after {s.snapshot_timeout:.0f} s")
            self.sleep(s.poll_seconds)

    def snapshot_timescale(self) -> None:
        """Start an EBS snapshot of the TimescaleDB data volume (its point in time is fixed when it starts)."""
        s = self.s
        if s.timescale_volume is None:
            return
        existing = self._call(["ec2", "describe-snapshots", "--owner-ids", "self",
                               "--filters", f"Name=tag:Name,Values={s.snapshot_id}",
                               f"Name=volume-id,Values={s.timescale_volume}"])
        if existing.get("Snapshots"):
            self.log(f"TimescaleDB snapshot {existing['Snapshots'][0].get('SnapshotId')} exists already")
            return
        created = self._call([
            "ec2", "create-snapshot", "--volume-id", s.timescale_volume,
            "--description", f"SARK {s.release} pre-migration",
            "--tag-specifications",
            f"ResourceType=snapshot,Tags=[{{Key=Name,Value={s.snapshot_id}}},{{Key=sark:release,Value={s.release}}}]",
        ])
        self.log(f"TimescaleDB snapshot {created.get('SnapshotId')} of {s.timescale_volume} started")

    # -- 2. migrations --------------------------------------------------------------------

    def pick_host(self) -> str:
        """An in-service instance of the new release whose SSM agent is online."""
        s = self.s
        deadline = self.clock() + s.host_timeout
        while True:
            groups = self._call(["autoscaling", "describe-auto-scaling-groups",
                                 "--auto-scaling-group-names", s.autoscaling_group]).get("AutoScalingGroups") or []
            in_service = sorted(i["InstanceId"] for g in groups for i in g.get("Instances", [])
                                if i.get("LifecycleState") == "InService")
            if in_service:
                info = self._call(["ssm", "describe-instance-information", "--filters",
                                   f"Key=InstanceIds,Values={','.join(in_service)}"])
                online = sorted(i["InstanceId"] for i in info.get("InstanceInformationList", [])
                                if i.get("PingStatus") == "Online")
                if online:
                    self.log(f"migrating on {online[0]}")
                    return online[0]
            if self.clock() >= deadline:
                raise GateError(f"no in-service host of {s.autoscaling_group} with an online SSM agent after "
                                f"{s.host_timeout:.0f} s (in service: {', '.join(in_service) or 'none'})")
            self.sleep(s.poll_seconds)

    def migrate(self, instance: str) -> None:
        """Run the migrations through SSM Run Command and fail unless they succeed."""
        s = self.s
        timeout = str(int(s.migration_timeout))
        sent = self._call([
            "ssm", "send-command", "--document-name", "AWS-RunShellScript", "--instance-ids", instance,
            "--comment", f"SARK {s.release} migrations"[:100],
            # With the tag, sark-migrate refuses a host that installed another release (a host
            # replaced mid-gate by the previous launch template, say) instead of migrating there.
            "--parameters", json.dumps({"commands": [f"{s.migrate_command} {shlex.quote(s.release)}"],
                                        "executionTimeout": [timeout]}),
        ])
        command_id = sent["Command"]["CommandId"]
        self.log(f"SSM command {command_id} sent")
        deadline = self.clock() + s.migration_timeout + 300
        while True:
            self.sleep(s.poll_seconds)
            result = self.run(["ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", instance])
            if result.code != 0:
                if "InvocationDoesNotExist" not in result.stderr:
                    raise GateError(f"aws ssm get-command-invocation failed: {result.stderr.strip() or result.code}")
                status, invocation = "Pending", {}
            else:
                invocation = result.json()
                status = invocation.get("Status", "Pending")
            if status == "Success":
                self.log("migrations succeeded:\n" + _tail(invocation.get("StandardOutputContent", "")))
                return
            if status in TERMINAL_FAILURES:
                raise GateError(f"migrations {status} on {instance} (SSM command {command_id}):\n"
                                + _tail(invocation.get("StandardErrorContent", "")
                                        or invocation.get("StandardOutputContent", "")))
            if self.clock() >= deadline:
                raise GateError(f"migrations still {status} on {instance} after {s.migration_timeout:.0f} s "
                                f"(SSM command {command_id})")

    # -- 3. health ------------------------------------------------------------------------

    def wait_healthy(self) -> None:
        """Wait until at least ``min_healthy`` targets of the new release pass the /health check."""
        s = self.s
        deadline = self.clock() + s.health_timeout
        while True:
            described = self._call(["elbv2", "describe-target-health", "--target-group-arn", s.target_group_arn])
            states = {d["Target"]["Id"]: d.get("TargetHealth", {}).get("State", "unknown")
                      for d in described.get("TargetHealthDescriptions", [])}
            healthy = sorted(t for t, state in states.items() if state == "healthy")
            if len(healthy) >= s.min_healthy:
                self.log(f"{len(healthy)} healthy targets: {', '.join(healthy)}")
                return
            if self.clock() >= deadline:
                shown = ", ".join(f"{t}={state}" for t, state in sorted(states.items())) or "no targets"
                raise GateError(f"only {len(healthy)} of {s.min_healthy} required targets healthy after "
                                f"{s.health_timeout:.0f} s ({shown})")
            self.sleep(s.poll_seconds)

    def run_all(self) -> None:
        """Secrets, data stores, snapshots, migrations, health, in that order; recorded steps are skipped."""
        self.check_secrets()
        done = self.completed()
        if done:
            self.log("resuming: already done " + ", ".join(f"{step} ({when})" for step, when in done.items()))
        self.wait_data_stores()
        for step, action in (("snapshot-database", self.snapshot_database),
                             ("snapshot-timescale", self.snapshot_timescale),
                             ("migrate", lambda: self.migrate(self.pick_host()))):
            if step in done:
                continue
            action()
            self.record(done, step)
        self.wait_healthy()
        self.log("gate passed; the release may take traffic")


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def main(env: Mapping[str, str] | None = None, run: Runner | None = None) -> int:
    """Entry point; returns the exit code."""
    env = os.environ if env is None else env
    try:
        settings = Settings.from_env(env)
        Gate(settings, run or cli_runner(settings.region)).run_all()
    except GateError as error:
        print(f"release gate failed: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
