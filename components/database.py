"""SARK's PostgreSQL database on RDS (checklist 1.2, 3.2 "Restrict database access", Post-Deployment 4).

Creates:
- a DB subnet group over the isolated data subnets;
- a parameter group (family ``postgres<major>``) that forces TLS (``rds.force_ssl=1``,
  ``ssl_min_protocol_version=TLSv1.2``), stores passwords as SCRAM, sizes
  ``max_connections`` for the app's pools (static: applied at the next reboot) and logs
  connections, lock waits and statements slower than a second;
- CloudWatch log groups ``/aws/rds/instance/<id>/postgresql`` and ``.../upgrade`` with a
  retention period, encrypted with the stack key, created before the instance so RDS
  exports into them instead of creating unencrypted ones that keep logs forever;
- the enhanced-monitoring role;
- the instance: PostgreSQL ``engine_version`` (major, e.g. ``15``; minor upgrades are
  automatic), database ``sark``, master user ``sark`` with the generated first password of the
  ``POSTGRES_MASTER`` secret (rotated by components/secrets.py; migrations, the rotation Lambda
  and operators only: SARK itself logs in as the least-privilege ``sark_app_user``/``_clone``,
  which the rotation Lambda creates with database-level grants), gp3 storage encrypted with the stack key and
  autoscaling up to ``max_allocated_storage_gb``, Multi-AZ, 30 days of automated backups
  (kept after deletion too), deletion protection plus a final snapshot, tags copied to
  snapshots, not publicly accessible, only the database security group (5432 from the app
  hosts), IAM authentication, Performance Insights encrypted with the stack key, enhanced
  monitoring every 60 s, the ``rds-ca-rsa2048-g1`` CA. Protected in Pulumi as well.

``ssl_min_protocol_version`` is an RDS for PostgreSQL parameter from version 12 on (the RDS
CloudFormation resource provider treats it as a modifiable parameter); TLS 1.3 needs
PostgreSQL 16 on RDS, so 1.2 is the floor that works for every allowed version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components._iam import assume_role_policy

PORT = 5432
LOG_EXPORTS: tuple[str, ...] = ("postgresql", "upgrade")
CA_CERTIFICATE = "rds-ca-rsa2048-g1"



class DatabaseArgsError(pulumi.RunError, ValueError):
    """An argument of Database is invalid; the message names it, its value and what is allowed.

    A ``pulumi.RunError``, so the Pulumi CLI prints the message without a traceback.
    """

@dataclass(frozen=True, kw_only=True)
class DatabaseArgs:
    """Arguments of :class:`Database`."""

    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """The isolated data subnets (at least two zones, for Multi-AZ)."""

    security_group_id: pulumi.Input[str]
    """``SecurityGroups.database_id``: 5432 from the app hosts only."""

    key_arn: pulumi.Input[str]
    """The stack key: storage, Performance Insights and the log groups."""

    password: pulumi.Input[str]
    """First master password (``StackSecrets.postgres_password``, a secret); rotated afterwards."""

    engine_version: str = "15"
    """PostgreSQL version, major (``15``) or major.minor (``15.7``); 14 or newer."""

    instance_class: str = "db.m6i.large"
    """RDS instance class."""

    allocated_storage_gb: int = 100
    """Initial storage."""

    max_allocated_storage_gb: int = 500
    """Storage autoscaling ceiling."""

    backup_retention_days: int = 30
    """Days automated backups are kept (checklist: 30; RDS allows up to 35)."""

    multi_az: bool = True
    """Standby in a second zone with automatic failover."""

    deletion_protection: bool = True
    """Block deletes through the AWS API."""

    max_connections: int = 720
    """``max_connections``: the app's worst case plus a reserve (stack_config's connection budget checks it)."""

    log_retention_days: int = 90
    """Days the exported PostgreSQL logs are kept."""

    identifier: str | None = None
    """RDS instance identifier; None uses the component name."""

    database_name: str = "sark"
    """Database created with the instance (``POSTGRES_DB``)."""

    username: str = "sark"
    """Master user (``POSTGRES_USER``)."""

    backup_window: str = "03:00-04:00"
    """Daily backup window (UTC)."""

    maintenance_window: str = "sun:04:30-sun:05:30"
    """Weekly maintenance window (UTC), after the backup window."""

    monitoring_interval: int = 60
    """Enhanced monitoring interval in seconds."""

    performance_insights_retention_days: int = 7
    """Performance Insights retention (7 is the free tier)."""

    slow_statement_ms: int = 1000
    """``log_min_duration_statement``: statements slower than this are logged."""

    extra_tags: Mapping[str, str] = field(default_factory=dict)
    """Tags added to every resource."""


def engine_major(version: str) -> int:
    """The major version of an RDS PostgreSQL engine version (``15`` or ``15.7`` -> 15)."""
    match = re.fullmatch(r"(\d+)(\.\d+)?", version)
    if match is None:
        raise DatabaseArgsError(f"DatabaseArgs.engine_version: {version!r} is not allowed; expected e.g. '15' or "
                                "'15.7'")
    return int(match.group(1))


class Database(pulumi.ComponentResource):
    """RDS PostgreSQL for SARK, with TLS forced, encrypted, Multi-AZ and backed up for 30 days."""

    instance_identifier: pulumi.Output[str]
    """RDS instance identifier (the ``DBInstanceIdentifier`` metric dimension)."""

    endpoint: pulumi.Output[str]
    """``host:port`` of the instance."""

    address: pulumi.Output[str]
    """Host name of the instance: ``POSTGRES_HOST`` for the app."""

    port: pulumi.Output[int]
    """Port of the instance: ``POSTGRES_PORT``."""

    arn: pulumi.Output[str]
    """ARN of the instance."""

    resource_id: pulumi.Output[str]
    """``db-...`` resource id (for ``rds-db:connect`` IAM policies)."""

    database_name: str
    """Name of the application database."""

    username: str
    """Master user name."""

    max_connections: int
    """``max_connections`` of the parameter group."""

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:database:Database", name, None, opts)
        major = engine_major(args.engine_version)
        if major < 14:
            raise DatabaseArgsError(f"DatabaseArgs.engine_version: {args.engine_version!r} is not allowed; expected "
                             "PostgreSQL 14 or newer")
        if not 1 <= args.backup_retention_days <= 35:
            raise DatabaseArgsError(f"DatabaseArgs.backup_retention_days: {args.backup_retention_days} is not allowed; "
                             "expected 1 to 35")
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.extra_tags)
        identifier = args.identifier or name

        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            description=f"SARK PostgreSQL ({name}) in the data subnets",
            subnet_ids=args.subnet_ids,
            tags=tags,
            opts=child,
        )
        parameters = aws.rds.ParameterGroup(
            f"{name}-params",
            family=f"postgres{major}",
            description=f"SARK PostgreSQL {major}: TLS only, sized connections, logging",
            parameters=[
                aws.rds.ParameterGroupParameterArgs(name=p_name, value=value, apply_method=method)
                for p_name, value, method in _parameters(args)
            ],
            tags=tags,
            opts=child,
        )
        log_groups = [
            aws.cloudwatch.LogGroup(
                f"{name}-{export}-logs",
                name=f"/aws/rds/instance/{identifier}/{export}",
                retention_in_days=args.log_retention_days,
                kms_key_id=args.key_arn,
                tags=tags,
                opts=child,
            )
            for export in LOG_EXPORTS
        ]
        monitoring_role = aws.iam.Role(
            f"{name}-monitoring-role",
            description="RDS enhanced monitoring for SARK PostgreSQL",
            assume_role_policy=assume_role_policy("monitoring.rds.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        monitoring_policy = aws.iam.RolePolicyAttachment(
            f"{name}-monitoring-policy",
            role=monitoring_role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole",
            opts=child,
        )

        instance = aws.rds.Instance(
            f"{name}-instance",
            identifier=identifier,
            engine="postgres",
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            db_name=args.database_name,
            username=args.username,
            password=pulumi.Output.secret(args.password),
            port=PORT,
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[args.security_group_id],
            publicly_accessible=False,
            parameter_group_name=parameters.name,
            storage_type="gp3",
            allocated_storage=args.allocated_storage_gb,
            max_allocated_storage=args.max_allocated_storage_gb,
            storage_encrypted=True,
            kms_key_id=args.key_arn,
            multi_az=args.multi_az,
            backup_retention_period=args.backup_retention_days,
            backup_window=args.backup_window,
            maintenance_window=args.maintenance_window,
            # Automated backups outlive the instance, so a deleted database can still be restored.
            delete_automated_backups=False,
            deletion_protection=args.deletion_protection,
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{identifier}-final",
            copy_tags_to_snapshot=True,
            enabled_cloudwatch_logs_exports=list(LOG_EXPORTS),
            performance_insights_enabled=True,
            performance_insights_kms_key_id=args.key_arn,
            performance_insights_retention_period=args.performance_insights_retention_days,
            monitoring_interval=args.monitoring_interval,
            monitoring_role_arn=monitoring_role.arn,
            iam_database_authentication_enabled=True,
            auto_minor_version_upgrade=True,
            allow_major_version_upgrade=False,
            ca_cert_identifier=CA_CERTIFICATE,
            apply_immediately=False,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=True,
                                        depends_on=[*log_groups, monitoring_policy]),
        )

        self.instance_identifier = instance.identifier
        self.endpoint = instance.endpoint
        self.address = instance.address
        self.port = instance.port
        self.arn = instance.arn
        self.resource_id = instance.resource_id
        self.database_name = args.database_name
        self.username = args.username
        self.max_connections = args.max_connections
        self.register_outputs({
            "instanceIdentifier": self.instance_identifier, "endpoint": self.endpoint, "address": self.address,
            "port": self.port, "arn": self.arn,
        })


def _parameters(args: DatabaseArgs) -> list[tuple[str, str, str]]:
    """(name, value, apply method) of every parameter the group sets."""
    return [
        ("rds.force_ssl", "1", "immediate"),
        ("ssl_min_protocol_version", "TLSv1.2", "immediate"),
        ("password_encryption", "scram-sha-256", "immediate"),
        # Static parameter: RDS applies it at the next reboot, whatever is asked.
        ("max_connections", str(args.max_connections), "pending-reboot"),
        ("log_connections", "1", "immediate"),
        ("log_disconnections", "1", "immediate"),
        ("log_lock_waits", "1", "immediate"),
        ("log_min_duration_statement", str(args.slow_statement_ms), "immediate"),
    ]
