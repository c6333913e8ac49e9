#!/usr/bin/env python3
"""Roll a failed SARK release back: traffic first, then (only if the operator confirms) the database.

    make rollback STACK=production                      # traffic only
    make rollback STACK=production RESTORE=1            # traffic, then restore the pre-migration snapshot

1. **Traffic.** Reads the stack's config (``pulumi config --json``). With ``previousAppVersion``
   set, the release to revert is ``appVersion`` (or ``--release``) and the program is run back to
   the previous release alone: ``pulumi up -c appVersion=<previous> -c previousAppVersion= -c
   newVersionTrafficPercent=100``. The previous release's hosts never stopped, so this only moves
   the traffic rule and removes the failed release's hosts and target group; its gate, if it
   failed, is dropped with it instead of being retried.
2. **Database** (``--restore-database``, confirmed by typing the database identifier, or
   ``--yes``): the gate's pre-migration RDS snapshot of that release
   (``sark-<stack>-pre-<release>``) is restored next to the live instance with the live
   instance's settings (class, subnet group, security groups, parameter group, Multi-AZ,
   deletion protection, IAM auth, log exports), then the two are swapped by renaming: the live
   one becomes ``<id>-replaced-<release>`` (kept, with deletion protection, for inspection) and
   the restored one takes ``<id>``, so its endpoint is the one the app already uses. Writes made
   after the snapshot are lost: that is what the confirmation is for. The release's gate record
   (``/<prefix>/<stack>/releases/<release>/gate``) is deleted, so deploying the tag again
   migrates again. Then ``pulumi refresh`` makes the state read the restored instance.

TimescaleDB is not swapped automatically: its data volume is attached to a running host and
protected in the program. The script prints the EBS snapshot the gate took and the steps
(docs/data-tier.md, "Rolling back a release"). With expand/contract migrations (the rule, same
guide) a rollback needs neither restore: the previous release runs on the expanded schema.

Exit status: 0 done, 1 a step failed (the message says what was and was not done), 2 cannot start.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.app_hosts import version_key  # noqa: E402
from components.release import gate_state_parameter, snapshot_identifier  # noqa: E402

PROJECT = "sark-infra"
Runner = Callable[[Sequence[str]], "Completed"]


class RollbackError(Exception):
    """A step failed or the rollback cannot start; the message says what was done and what to do."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Completed:
    """Outcome of one command."""

    code: int
    stdout: str = ""
    stderr: str = ""


def subprocess_runner(argv: Sequence[str]) -> Completed:
    """Run a command, its output passed through (pulumi up shows its progress) except for --json calls."""
    capture = "--json" in argv
    result = subprocess.run(list(argv), capture_output=capture, text=True, check=False)
    return Completed(result.returncode, result.stdout or "", result.stderr or "")


@dataclass(frozen=True)
class StackConfig:
    """What the rollback reads from ``pulumi config --json``."""

    app_version: str
    previous_version: str | None
    name_prefix: str
    region: str

    @classmethod
    def parse(cls, document: Mapping[str, Any]) -> StackConfig:
        def value(key: str) -> str | None:
            entry = document.get(key)
            raw = entry.get("value") if isinstance(entry, Mapping) else entry
            return None if raw in (None, "") else str(raw)

        app_version = value(f"{PROJECT}:appVersion")
        region = value("aws:region")
        if app_version is None or region is None:
            raise RollbackError("the stack config has no sark-infra:appVersion or aws:region; is this the SARK stack?",
                                code=2)
        return cls(app_version=app_version, previous_version=value(f"{PROJECT}:previousAppVersion"),
                   name_prefix=value(f"{PROJECT}:namePrefix") or "sark", region=region)


class Rollback:
    """The two steps, with pulumi, boto3 and the prompt injectable for tests."""

    def __init__(self, *, stack: str, release: str | None, restore_database: bool, assume_yes: bool,
                 run: Runner = subprocess_runner, session: Any = None, endpoint_url: str | None = None,
                 pulumi: str = "pulumi", ask: Callable[[str], str] = input,
                 log: Callable[[str], None] = lambda m: print(f"rollback: {m}", flush=True)) -> None:
        self.stack = stack
        self.release = release
        self.restore_database = restore_database
        self.assume_yes = assume_yes
        self.run = run
        self.session = session
        self.endpoint_url = endpoint_url
        self.pulumi = pulumi
        self.ask = ask
        self.log = log

    # -- pulumi ---------------------------------------------------------------------------

    def _pulumi_json(self, *args: str) -> Any:
        result = self.run([self.pulumi, *args, "--stack", self.stack, "--json"])
        if result.code != 0:
            raise RollbackError(f"`pulumi {' '.join(args)} --stack {self.stack}` failed: "
                                f"{result.stderr.strip() or result.code}", code=2)
        return json.loads(result.stdout or "{}")

    def revert_traffic(self, config: StackConfig, failed: str) -> str:
        """Run the program back to the previous release alone; returns it."""
        previous = config.previous_version
        if previous is None or previous == failed:
            raise RollbackError(f"no previous release to send traffic to (previousAppVersion is "
                                f"{previous or 'unset'}); a first deployment has nothing to roll back to", code=2)
        self.log(f"traffic: {failed} -> {previous} (pulumi up)")
        argv = [self.pulumi, "up", "--stack", self.stack, "--yes", "--policy-pack", "policies",
                "-c", f"appVersion={previous}", "-c", "previousAppVersion=", "-c", "newVersionTrafficPercent=100"]
        if self.run(argv).code != 0:
            raise RollbackError(f"`{' '.join(argv)}` failed: traffic may still reach {failed}; fix the error above "
                                "and run `make rollback` again (nothing was restored)")
        self.log(f"traffic: all on {previous}; {failed}'s hosts and target group removed")
        return previous

    # -- the database -----------------------------------------------------------------------

    def _client(self, service: str, region: str) -> Any:
        import boto3

        session = self.session or boto3.Session()
        return session.client(service, region_name=region, endpoint_url=self.endpoint_url)

    def confirm(self, db: str, snapshot: str) -> None:
        if self.assume_yes:
            return
        answer = self.ask(f"Restore {snapshot} over {db}? Every write since that snapshot is lost. "
                          f"Type the database identifier ({db}) to go on: ").strip()
        if answer != db:
            raise RollbackError(f"not confirmed ({answer!r} is not {db!r}); the database was not touched "
                                "(traffic was reverted)")

    def restore(self, config: StackConfig, failed: str, db: str) -> str:
        """Restore the release's pre-migration snapshot over ``db`` by restore-and-rename; returns the old id."""
        rds = self._client("rds", config.region)
        snapshot = snapshot_identifier(self.stack, failed)
        try:
            found = rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot)["DBSnapshots"]
        except Exception as error:
            raise RollbackError(f"pre-migration snapshot {snapshot} not found ({error}); the gate of {failed} did "
                                "not take one, so there is nothing to restore") from None
        if not found or found[0].get("Status") != "available":
            raise RollbackError(f"snapshot {snapshot} is {found[0].get('Status') if found else 'missing'}, not "
                                "available; wait for it and run again")
        self.confirm(db, snapshot)
        live = rds.describe_db_instances(DBInstanceIdentifier=db)["DBInstances"][0]
        key = version_key(failed)
        restored_id = f"{db}-restore-{key}"[:63].rstrip("-")
        replaced_id = f"{db}-replaced-{key}"[:63].rstrip("-")
        settings: dict[str, Any] = {
            "DBInstanceIdentifier": restored_id,
            "DBSnapshotIdentifier": snapshot,
            "DBInstanceClass": live["DBInstanceClass"],
            "MultiAZ": bool(live.get("MultiAZ")),
            "PubliclyAccessible": False,
            "DeletionProtection": True,
            "CopyTagsToSnapshot": True,
            "EnableIAMDatabaseAuthentication": bool(live.get("IAMDatabaseAuthenticationEnabled")),
            "VpcSecurityGroupIds": [g["VpcSecurityGroupId"] for g in live.get("VpcSecurityGroups", [])],
            "Tags": [{"Key": "sark:restored-from", "Value": snapshot}],
        }
        if live.get("DBSubnetGroup", {}).get("DBSubnetGroupName"):
            settings["DBSubnetGroupName"] = live["DBSubnetGroup"]["DBSubnetGroupName"]
        groups = [g["DBParameterGroupName"] for g in live.get("DBParameterGroups", [])]
        if groups:
            settings["DBParameterGroupName"] = groups[0]
        if live.get("EnabledCloudwatchLogsExports"):
            settings["EnableCloudwatchLogsExports"] = live["EnabledCloudwatchLogsExports"]
        self.log(f"database: restoring {snapshot} as {restored_id}")
        rds.restore_db_instance_from_db_snapshot(**settings)
        self._wait(rds, restored_id)
        self.log(f"database: renaming {db} -> {replaced_id} (the app loses its database until the next rename)")
        rds.modify_db_instance(DBInstanceIdentifier=db, NewDBInstanceIdentifier=replaced_id, ApplyImmediately=True)
        self._wait(rds, replaced_id)
        rds.modify_db_instance(DBInstanceIdentifier=restored_id, NewDBInstanceIdentifier=db, ApplyImmediately=True)
        self._wait(rds, db)
        self.log(f"database: {db} is now the restored snapshot; the replaced instance is kept as {replaced_id}")
        return replaced_id

    @staticmethod
    def _wait(rds: Any, identifier: str) -> None:
        rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=identifier,
                                                     WaiterConfig={"Delay": 30, "MaxAttempts": 120})

    def forget_gate(self, config: StackConfig, failed: str) -> None:
        """Delete the release's gate record, so deploying it again snapshots and migrates again."""
        name = gate_state_parameter(f"/{config.name_prefix}/{self.stack}/releases", failed)
        ssm = self._client("ssm", config.region)
        try:
            ssm.delete_parameter(Name=name)
            self.log(f"gate record {name} deleted")
        except Exception as error:
            if "ParameterNotFound" not in str(error):
                raise

    # -- all of it -----------------------------------------------------------------------

    def execute(self) -> int:
        config = StackConfig.parse(self._pulumi_json("config"))
        failed = self.release or config.app_version
        outputs = self._pulumi_json("stack", "output") if self.restore_database else {}
        self.revert_traffic(config, failed)
        if not self.restore_database:
            self.log("database untouched (pass RESTORE=1 / --restore-database to restore the pre-migration "
                     "snapshot)")
            return 0
        db = outputs.get("dbInstanceIdentifier")
        if not isinstance(db, str) or not db:
            raise RollbackError("the stack exports no dbInstanceIdentifier; restore by hand (docs/data-tier.md)")
        replaced = self.restore(config, failed, db)
        self.forget_gate(config, failed)
        volume = outputs.get("timescaleDataVolumeId")
        self.log(f"next: `pulumi refresh --stack {self.stack} --yes` so the state reads the restored instance; "
                 f"delete {replaced} once you no longer need it (`aws rds modify-db-instance "
                 f"--db-instance-identifier {replaced} --no-deletion-protection`, then `aws rds delete-db-instance`)")
        if volume:
            snapshot = snapshot_identifier(self.stack, failed)
            self.log(f"TimescaleDB: the gate's snapshot of {volume} is tagged Name={snapshot}; restore it by hand "
                     "if the TimescaleDB migrations must be undone (docs/data-tier.md)")
        return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="Pulumi stack, e.g. production")
    parser.add_argument("--release", help="the release to roll back (default: the stack's appVersion)")
    parser.add_argument("--restore-database", action="store_true",
                        help="also restore the release's pre-migration RDS snapshot (asks for confirmation)")
    parser.add_argument("--yes", action="store_true", help="do not ask before restoring (for automation)")
    parser.add_argument("--pulumi", default="pulumi", help="the Pulumi CLI")
    parser.add_argument("--endpoint-url", help="AWS endpoint (tests: moto)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, **overrides: Any) -> int:
    args = parse_args(argv)
    rollback = Rollback(stack=args.stack, release=args.release, restore_database=args.restore_database,
                        assume_yes=args.yes, pulumi=args.pulumi, endpoint_url=args.endpoint_url, **overrides)
    try:
        return rollback.execute()
    except RollbackError as error:
        print(f"rollback failed: {error}", file=sys.stderr, flush=True)
        return error.code


if __name__ == "__main__":
    sys.exit(main())
