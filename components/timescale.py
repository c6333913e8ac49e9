"""The self-managed TimescaleDB host (RDS cannot load the timescaledb extension).

Creates:
- an EC2 instance (the pinned Ubuntu 22.04 image ``image_id``, checked to be Canonical's) in
  a data subnet, created only after that subnet's route out (``route_out``) exists,
  in the TimescaleDB security group, tagged ``sark:role=timescale``: IMDSv2 only (hop limit
  1), no public IP, termination protection, detailed monitoring, an encrypted gp3 root
  volume (stack key);
- a separate encrypted gp3 data volume (stack key) with a final snapshot on deletion,
  attached as ``/dev/sdf``, protected and retained on delete, so the database survives a
  replacement of the instance;
- an instance role and profile with least privilege: read the ``TIMESCALE_PASSWORD``
  secret only (and decrypt it with the stack key only through Secrets Manager), SSM
  Session Manager / Run Command (``_iam.ssm_agent_policy``: AmazonSSMManagedInstanceCore
  without its account-wide ``ssm:GetParameter*``) and the CloudWatch agent
  (``CloudWatchAgentServerPolicy``);
- cloud-init user data (a ``#cloud-config`` document) that mounts the data volume (found
  by its id, formatted only when empty), installs PostgreSQL and TimescaleDB from their
  official repositories, creates database ``sark_audit`` owned by ``sark`` with the
  extension, turns on TLS with a certificate made on the host, listens on the private
  address only, lets only the app subnets in (``hostssl`` + ``scram-sha-256``), and sets
  the password it reads itself from Secrets Manager. Network steps (apt, curl) are retried.
  The user data holds no secret and is sent gzip-compressed (``user_data_base64``) to stay
  well under EC2's 16,384 bytes;
- daily AWS Backup snapshots of the data volume, kept ``snapshot_retention_days``, in a
  backup vault encrypted with the stack key (protected);
- a CloudWatch alarm on ``StatusCheckFailed_System`` that recovers the instance
  (``arn:aws:automate:<region>:ec2:recover``).

The host's scripts live in ``templates/timescale/``; the rotation Lambda
(components/secrets.py) runs ``sark-timescale-password`` through SSM to rotate the password.
"""

from __future__ import annotations

import base64
import gzip
import ipaddress
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_command as command
import yaml

from components._iam import assume_role_policy, ssm_agent_policy
from components._names import BACKUP_NAME_LIMIT, bounded_name

TEMPLATES = Path(__file__).parent / "templates" / "timescale"
PASSWORD_TOOL = "/usr/local/sbin/sark-timescale-password"  # noqa: S105 (a path, not a password)
SETUP_TOOL = "/usr/local/sbin/sark-timescale-setup"
TLS_TOOL = "/usr/local/sbin/sark-timescale-tls"
WAIT_SCRIPT = "scripts/release/wait_for_parameter.py"
NOT_PUBLISHED = "not published yet"
"""First value of the CA and ready parameters, until the host overwrites them."""
CLIENT_CA_PATH = "/etc/sark/tls/timescale-ca.pem"
"""Where the app hosts keep the CA (sark-render-env writes it from the CA parameter)."""
SETTINGS_FILE = "/etc/sark/timescale.env"
HBA_FILE = "/etc/sark/pg_hba.conf"
CONF_FILE = "/etc/sark/postgresql-sark.conf"
DATA_MOUNT = "/var/lib/postgresql"
DATA_DEVICE = "/dev/sdf"
PORT = 5432
POSTGRES_UID = 5432
"""Fixed uid/gid of the postgres account, so files on the data volume keep their owner on a new instance."""

CANONICAL = "099720109477"
UBUNTU_JAMMY = "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"
USER_DATA_LIMIT = 16384
"""EC2 rejects user data above 16 KiB."""
USER_DATA_HEADROOM = 4096
"""Bytes the compressed user data leaves free under the limit."""



class TimescaleArgsError(pulumi.RunError, ValueError):
    """An argument of TimescaleHost is invalid; the message names it, its value and what is allowed.

    A ``pulumi.RunError``, so the Pulumi CLI prints the message without a traceback.
    """

@dataclass(frozen=True, kw_only=True)
class TimescaleHostArgs:
    """Arguments of :class:`TimescaleHost`."""

    region: str
    """AWS region (the recover action's ARN and the KMS ``ViaService`` condition)."""

    subnet_id: pulumi.Input[str]
    """Data subnet for the host (the first one: the data volume lives in its zone)."""

    security_group_id: pulumi.Input[str]
    """``SecurityGroups.timescale_id``: 5432 from the app hosts only."""

    key_arn: pulumi.Input[str]
    """The stack key: encrypts both volumes and the backup vault."""

    password_secret_arn: pulumi.Input[str]
    """The ``TIMESCALE_PASSWORD`` secret; the only secret the host may read."""

    password_secret_name: str
    """Name of that secret (``StackSecrets.names``); the host looks it up by name, so user data
    carries no ARN a secret scanner could mistake for a credential."""

    app_subnet_cidrs: pulumi.Input[Sequence[pulumi.Input[str]]]
    """App subnets: the only networks pg_hba.conf lets in (over TLS, with scram-sha-256)."""

    image_id: str
    """Pinned Ubuntu 22.04 amd64 AMI (``timescaleImageId``). Changes are ignored on the running
    host (it patches itself; replacing the database host is a deliberate act)."""

    route_out: Sequence[pulumi.Resource] = ()
    """What gives the host's subnet its route to the internet (``Network.data_route_out``): the
    instance is created after it, as its first boot installs packages."""

    instance_type: str = "m6i.xlarge"
    """EC2 instance type (x86_64, Nitro: the data volume is found by its NVMe serial)."""

    root_volume_gb: int = 30
    """Size of the root volume (OS and packages; the database is on the data volume)."""

    data_volume_gb: int = 200
    """Size of the data volume."""

    timescaledb_version: str = "2.14"
    """TimescaleDB major.minor to install (2.11 or newer; the newest patch release is taken)."""

    postgres_major: int = 15
    """PostgreSQL major version (14 or newer)."""

    database_name: str = "sark_audit"
    """Database created for SARK's audit events."""

    database_user: str = "sark"
    """Role that owns it and that SARK logs in as."""

    snapshot_retention_days: int = 30
    """Days the daily snapshots of the data volume are kept (checklist: 30)."""

    backup_schedule: str = "cron(0 3 * * ? *)"
    """When the daily snapshot starts (AWS Backup cron, UTC)."""

    max_connections: int = 720
    """``max_connections`` of the server (the connection budget of stack_config covers the app's worst case)."""

    parameter_path: str | None = None
    """The stack's SSM path (``/<prefix>/<stack>``). With it the host publishes its CA certificate to
    ``<path>/tls/timescale-ca.pem`` and its readiness to ``<path>/timescale/ready``, the app gets
    ``TIMESCALE_SSLMODE=verify-full`` and ``TIMESCALE_SSLROOTCERT`` under ``<path>/env/``, and
    :attr:`TimescaleHost.ready` waits for the bootstrap. None: none of that."""

    python: str = "python3"
    """Interpreter for the readiness wait on the machine running ``pulumi up``."""

    ready_timeout_seconds: int = 3600
    """How long ``pulumi up`` waits for the host's bootstrap."""

    cloudwatch_agent_parameter: str | None = None
    """SSM parameter with the CloudWatch agent configuration for this host
    (``Monitoring.agent_config_parameter_names["timescale"]``); None: no agent is installed."""

    extra_tags: Mapping[str, str] = field(default_factory=dict)
    """Tags added to every resource."""


class TimescaleHost(pulumi.ComponentResource):
    """PostgreSQL + TimescaleDB on EC2, with a protected data volume and daily snapshots."""

    instance_id: pulumi.Output[str]
    """EC2 instance id."""

    private_ip: pulumi.Output[str]
    """Private address of the host: ``TIMESCALE_HOST`` for the app."""

    data_volume_id: pulumi.Output[str]
    """EBS volume holding the database."""

    data_volume_arn: pulumi.Output[str]
    """ARN of that volume (what AWS Backup snapshots)."""

    port: int
    """TCP port of the database."""

    data_volume_mount: str
    """Where the data volume is mounted on the host (for disk-use alarms)."""

    recovery_alarm_name: pulumi.Output[str]
    """Alarm that recovers the instance when the system status check fails."""

    user_data: pulumi.Output[str]
    """The cloud-init document (no secrets)."""

    ready: pulumi.Resource | None
    """Completes when the host's bootstrap has finished (None without ``parameter_path``): what the
    password rotation's first test must wait for."""

    ready_parameter: pulumi.Output[str] | None
    """SSM parameter the host sets to its instance id when its bootstrap is done."""

    ca_parameter: pulumi.Output[str] | None
    """SSM parameter holding the server's CA certificate (PEM)."""

    def __init__(self, name: str, args: TimescaleHostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:timescale:TimescaleHost", name, None, opts)
        _validate(args)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.extra_tags)

        # The pinned image, looked up only to check it is Canonical's jammy amd64 image: a wrong
        # id fails the preview instead of booting something else.
        ami = aws.ec2.get_ami_output(
            owners=[CANONICAL],
            filters=[aws.ec2.GetAmiFilterArgs(name="image-id", values=[args.image_id]),
                     aws.ec2.GetAmiFilterArgs(name="name", values=[UBUNTU_JAMMY]),
                     aws.ec2.GetAmiFilterArgs(name="architecture", values=["x86_64"])],
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        zone = aws.ec2.get_subnet_output(id=args.subnet_id, opts=pulumi.InvokeOutputOptions(parent=self))

        data_volume = aws.ebs.Volume(
            f"{name}-data",
            availability_zone=zone.availability_zone,
            size=args.data_volume_gb,
            type="gp3",
            encrypted=True,
            kms_key_id=args.key_arn,
            final_snapshot=True,
            tags={**tags, "Name": f"{name}-data", "sark:role": "timescale-data"},
            # The database itself: a replaced or deleted instance must not take it along.
            opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True),
        )

        role = aws.iam.Role(
            f"{name}-role",
            description="SARK TimescaleDB host",
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-CloudWatchAgentServerPolicy",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy",
            opts=child,
        )
        # Not AmazonSSMManagedInstanceCore: its ssm:GetParameter* on "*" reads every parameter.
        aws.iam.RolePolicy(f"{name}-ssm-agent", role=role.id, policy=ssm_agent_policy(), opts=child)
        aws.iam.RolePolicy(
            f"{name}-read-password",
            role=role.id,
            policy=pulumi.Output.all(args.password_secret_arn, args.key_arn).apply(
                lambda v: json.dumps(host_policy(args.region, v[0], v[1]))),
            opts=child,
        )
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, tags=tags, opts=child)
        published = self._published(name, args, role, tags)

        self.user_data = pulumi.Output.all(
            volume_id=data_volume.id,
            cidrs=args.app_subnet_cidrs,
            ca=published[0] if published else "",
            ready=published[1] if published else "",
        ).apply(lambda v: render_user_data(
            secret_name=args.password_secret_name, volume_id=v["volume_id"], app_subnet_cidrs=v["cidrs"],
            postgres_major=args.postgres_major, timescaledb_version=args.timescaledb_version,
            database_name=args.database_name, database_user=args.database_user,
            cloudwatch_agent_parameter=args.cloudwatch_agent_parameter, max_connections=args.max_connections,
            ca_parameter=v["ca"] or None, ready_parameter=v["ready"] or None))

        instance = aws.ec2.Instance(
            f"{name}-instance",
            # ami.id is the same id once the lookup has confirmed it is Canonical's.
            ami=pulumi.Output.all(ami.id, args.image_id).apply(lambda ids: args.image_id),
            instance_type=args.instance_type,
            subnet_id=args.subnet_id,
            vpc_security_group_ids=[args.security_group_id],
            iam_instance_profile=profile.name,
            associate_public_ip_address=False,
            disable_api_termination=True,
            monitoring=True,
            ebs_optimized=True,
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1,
                instance_metadata_tags="disabled"),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                encrypted=True, kms_key_id=args.key_arn, volume_type="gp3", volume_size=args.root_volume_gb,
                delete_on_termination=True, tags={**tags, "Name": f"{name}-root"}),
            maintenance_options=aws.ec2.InstanceMaintenanceOptionsArgs(auto_recovery="default"),
            user_data_base64=self.user_data.apply(compress_user_data),
            tags={**tags, "Name": name, "sark:role": "timescale"},
            # A new pinned image must not replace the database host on the next update; the
            # host patches itself, and a new image is rolled out by replacing it on purpose.
            # No boot before the data subnet's NAT route: the first boot installs packages.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["ami"], depends_on=list(args.route_out)),
        )
        aws.ec2.VolumeAttachment(
            f"{name}-data-attachment",
            device_name=DATA_DEVICE,
            volume_id=data_volume.id,
            instance_id=instance.id,
            # Detach only from a stopped instance, so PostgreSQL never loses its disk mid-write.
            stop_instance_before_detaching=True,
            opts=child,
        )

        self._backups(name, args, data_volume, tags)

        self.ready = None
        self.ready_parameter = self.ca_parameter = None
        if published is not None:
            self.ca_parameter, self.ready_parameter = published
            # Runs where `pulumi up` runs; again whenever the instance is replaced.
            self.ready = command.local.Command(
                f"{name}-ready",
                create=f"{args.python} {WAIT_SCRIPT}",
                environment={"AWS_REGION": args.region, "SARK_PARAMETER": self.ready_parameter,
                             "SARK_EXPECTED": instance.id, "SARK_TIMEOUT": str(args.ready_timeout_seconds),
                             "SARK_WHAT": "the TimescaleDB host's bootstrap"},
                triggers=[instance.id],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[instance]),
            )

        alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-recover",
            name=f"{name}-recover",
            alarm_description=f"Recover the TimescaleDB host {name} when AWS's system status check fails "
                              "(hardware, power or network of the underlying host).",
            namespace="AWS/EC2",
            metric_name="StatusCheckFailed_System",
            dimensions={"InstanceId": instance.id},
            statistic="Maximum",
            period=60,
            evaluation_periods=2,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            alarm_actions=[f"arn:aws:automate:{args.region}:ec2:recover"],
            tags=tags,
            opts=child,
        )

        self.instance_id = instance.id
        self.private_ip = instance.private_ip
        self.data_volume_id = data_volume.id
        self.data_volume_arn = data_volume.arn
        self.port = PORT
        self.data_volume_mount = DATA_MOUNT
        self.recovery_alarm_name = alarm.name
        self.register_outputs({
            "instanceId": self.instance_id, "privateIp": self.private_ip, "dataVolumeId": self.data_volume_id,
            "dataVolumeArn": self.data_volume_arn, "port": self.port, "recoveryAlarmName": self.recovery_alarm_name,
        })

    def _published(self, name: str, args: TimescaleHostArgs, role: aws.iam.Role,
                   tags: dict[str, str]) -> tuple[pulumi.Output[str], pulumi.Output[str]] | None:
        """The parameters the host writes (CA, ready), the app's TLS settings, and the host's right to write."""
        if args.parameter_path is None:
            return None
        path = args.parameter_path.rstrip("/")
        made: list[aws.ssm.Parameter] = []
        for label, parameter, description in (
                ("ca", f"{path}/tls/timescale-ca.pem", "CA certificate of the TimescaleDB server (written by host)"),
                ("ready", f"{path}/timescale/ready", "Instance id of the TimescaleDB host once its bootstrap is done")):
            made.append(aws.ssm.Parameter(
                f"{name}-{label}-parameter",
                name=parameter,
                type="String",
                insecure_value=NOT_PUBLISHED,
                description=description,
                tags=tags,
                # The host writes the value; the program only owns the parameter.
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["insecureValue", "value"]),
            ))
        for key, value in (("TIMESCALE_SSLMODE", "verify-full"), ("TIMESCALE_SSLROOTCERT", CLIENT_CA_PATH)):
            aws.ssm.Parameter(
                f"{name}-env-{key.lower().replace('_', '-')}",
                name=f"{path}/env/{key}",
                type="String",
                insecure_value=value,
                description="TimescaleDB TLS for SARK and its migrations: verify the server against the stack's CA",
                tags={**tags, "sark:role": "app"},
                opts=pulumi.ResourceOptions(parent=self),
            )
        aws.iam.RolePolicy(
            f"{name}-publish",
            role=role.id,
            policy=pulumi.Output.all(made[0].arn, made[1].arn).apply(lambda arns: json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Sid": "PublishCaAndReadiness", "Effect": "Allow", "Action": "ssm:PutParameter",
                               "Resource": sorted(arns)}]})),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return made[0].name, made[1].name

    def _backups(self, name: str, args: TimescaleHostArgs, volume: aws.ebs.Volume, tags: dict[str, str]) -> None:
        child = pulumi.ResourceOptions(parent=self)
        # AWS Backup names allow 50 characters; auto-names (logical name + 8) pass that for
        # longer stack names, so all three are explicit (components/_names.py).
        vault = aws.backup.Vault(
            f"{name}-backups",
            name=bounded_name(f"{name}-backups", BACKUP_NAME_LIMIT, name, "vault"),
            kms_key_arn=args.key_arn,
            force_destroy=False,
            tags=tags,
            # Holds the recovery points; deleting it (it must be empty) is a deliberate act.
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        plan = aws.backup.Plan(
            f"{name}-backup-plan",
            name=bounded_name(f"{name}-daily", BACKUP_NAME_LIMIT, name, "plan"),
            rules=[aws.backup.PlanRuleArgs(
                rule_name="daily",
                target_vault_name=vault.name,
                schedule=args.backup_schedule,
                start_window=60,
                completion_window=360,
                lifecycle=aws.backup.PlanRuleLifecycleArgs(delete_after=args.snapshot_retention_days),
                recovery_point_tags={**tags, "sark:role": "timescale-data"},
            )],
            tags=tags,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-backup-role",
            description="AWS Backup for the SARK TimescaleDB data volume",
            assume_role_policy=assume_role_policy("backup.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        for policy in ("AWSBackupServiceRolePolicyForBackup", "AWSBackupServiceRolePolicyForRestores"):
            aws.iam.RolePolicyAttachment(
                f"{name}-{policy}",
                role=role.name,
                policy_arn=f"arn:aws:iam::aws:policy/service-role/{policy}",
                opts=child,
            )
        aws.backup.Selection(
            f"{name}-backup-selection",
            name=bounded_name(f"{name}-data-volume", BACKUP_NAME_LIMIT, name, "selection"),
            plan_id=plan.id,
            iam_role_arn=role.arn,
            resources=[volume.arn],
            opts=child,
        )


def compress_user_data(text: str) -> str:
    """gzip + base64 for ``user_data_base64`` (cloud-init recognises gzip by its magic bytes).

    Compressed it is about a third of EC2's 16,384-byte limit, which the plain document had
    nearly reached; ``mtime=0`` keeps the bytes identical from run to run.
    """
    raw = gzip.compress(text.encode(), compresslevel=9, mtime=0)
    if len(raw) > USER_DATA_LIMIT - USER_DATA_HEADROOM:
        raise TimescaleArgsError(f"TimescaleDB user data is {len(raw)} bytes compressed; EC2 allows "
                                 f"{USER_DATA_LIMIT} and the stack keeps {USER_DATA_HEADROOM} free")
    return base64.b64encode(raw).decode()


def _validate(args: TimescaleHostArgs) -> None:
    problems: list[str] = []
    if not re.fullmatch(r"ami-[0-9a-f]{8,17}", args.image_id):
        problems.append(f"image_id: {args.image_id!r} is not allowed; expected an AMI id such as "
                        "ami-0123456789abcdef0")
    parsed = re.fullmatch(r"(\d+)\.(\d+)", args.timescaledb_version)
    if parsed is None or (int(parsed.group(1)), int(parsed.group(2))) < (2, 11):
        problems.append(f"timescaledb_version: {args.timescaledb_version!r} is not allowed; expected major.minor "
                        "2.11 or newer, e.g. '2.14'")
    if not 50 <= args.max_connections <= 5000:
        problems.append(f"max_connections: {args.max_connections} is not allowed; expected 50 to 5000")
    if args.postgres_major < 14:
        problems.append(f"postgres_major: {args.postgres_major} is not allowed; expected 14 or newer")
    if args.snapshot_retention_days < 1:
        problems.append(f"snapshot_retention_days: {args.snapshot_retention_days} is not allowed; expected 1 or more")
    for key in ("database_name", "database_user"):
        value = getattr(args, key)
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
            problems.append(f"{key}: {value!r} is not allowed; expected a lowercase PostgreSQL identifier")
    if problems:
        raise TimescaleArgsError("TimescaleHostArgs: " + "; ".join(problems))


def host_policy(region: str, secret_arn: str, key_arn: str) -> dict[str, Any]:
    """The host's own permissions: one secret, and the key only as Secrets Manager uses it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadTimescalePassword", "Effect": "Allow",
             "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], "Resource": secret_arn},
            {"Sid": "DecryptThroughSecretsManager", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}}},
        ],
    }


def pg_hba(app_subnet_cidrs: Sequence[str], *, database: str, user: str) -> str:
    """pg_hba.conf: local admin by peer, the app subnets over TLS with scram-sha-256, nothing else."""
    # The owner and its clone: the two logins the TIMESCALE_PASSWORD secret alternates between.
    users = f"{user},{user}_clone"
    lines = [
        "# Generated by the SARK stack (components/timescale.py). First match wins.",
        "# TYPE    DATABASE   USER      ADDRESS          METHOD",
        "local     all        postgres                   peer",
        # Lets the host check a new password during rotation without opening TCP to itself.
        f"local     {database}  {users}                      scram-sha-256",
    ]
    for cidr in app_subnet_cidrs:
        network = ipaddress.ip_network(cidr, strict=True)
        lines.append(f"hostssl   {database}  {users}      {network}    scram-sha-256")
    lines += [
        "hostnossl all        all       0.0.0.0/0        reject",
        "hostnossl all        all       ::/0             reject",
        "host      all        all       0.0.0.0/0        reject",
        "host      all        all       ::/0             reject",
    ]
    return "\n".join(lines) + "\n"


def settings_env(values: Mapping[str, str | int]) -> str:
    """A shell-sourceable KEY=value file (values quoted)."""
    return "".join(f"{key}={shlex.quote(str(value))}\n" for key, value in values.items())


class _LiteralDumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as literal blocks, so the scripts stay readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str)


def render_user_data(*, secret_name: str, volume_id: str, app_subnet_cidrs: Sequence[str], postgres_major: int,
                     timescaledb_version: str, database_name: str, database_user: str,
                     cloudwatch_agent_parameter: str | None = None, max_connections: int = 720,
                     ca_parameter: str | None = None, ready_parameter: str | None = None) -> str:
    """The host's ``#cloud-config`` document. Only names, ids and addresses go in; never a secret."""
    settings = {
        "SARK_SECRET_ID": secret_name,
        "SARK_DATA_VOLUME_ID": volume_id,
        "SARK_DATA_MOUNT": DATA_MOUNT,
        "SARK_PG_MAJOR": postgres_major,
        "SARK_TIMESCALEDB_VERSION": timescaledb_version,
        "SARK_DB_NAME": database_name,
        "SARK_DB_USER": database_user,
        "SARK_PORT": PORT,
        "SARK_POSTGRES_UID": POSTGRES_UID,
        "SARK_MAX_CONNECTIONS": int(max_connections),
        "SARK_CA_PARAMETER": ca_parameter or "",
        "SARK_READY_PARAMETER": ready_parameter or "",
        "SARK_CLOUDWATCH_AGENT_PARAMETER": cloudwatch_agent_parameter or "",
    }
    document = {
        "package_update": True,
        "package_upgrade": True,
        "packages": ["ca-certificates", "curl", "gnupg", "openssl", "xfsprogs", "python3-boto3"],
        "write_files": [
            # apt retries failed downloads (cloud-init's package install included).
            {"path": "/etc/apt/apt.conf.d/80-sark-retries", "owner": "root:root", "permissions": "0644",
             "content": 'Acquire::Retries "10";\n'},
            {"path": SETTINGS_FILE, "owner": "root:root", "permissions": "0644", "content": settings_env(settings)},
            {"path": HBA_FILE, "owner": "root:root", "permissions": "0644",
             "content": pg_hba(app_subnet_cidrs, database=database_name, user=database_user)},
            {"path": CONF_FILE, "owner": "root:root", "permissions": "0644",
             "content": (TEMPLATES / "postgresql-sark.conf").read_text(encoding="utf-8")
             .replace("@MAX_CONNECTIONS@", str(int(max_connections)))},
            {"path": PASSWORD_TOOL, "owner": "root:root", "permissions": "0750",
             "content": (TEMPLATES / "sark_timescale_password.py").read_text(encoding="utf-8")},
            {"path": TLS_TOOL, "owner": "root:root", "permissions": "0750",
             "content": (TEMPLATES / "sark-timescale-tls.sh").read_text(encoding="utf-8")},
            {"path": SETUP_TOOL, "owner": "root:root", "permissions": "0750",
             "content": (TEMPLATES / "sark-timescale-setup.sh").read_text(encoding="utf-8")},
        ],
        "runcmd": [[SETUP_TOOL]],
    }
    # The size limit applies to what EC2 receives: compress_user_data checks it.
    return "#cloud-config\n" + yaml.dump(document, Dumper=_LiteralDumper, sort_keys=False, width=120)
