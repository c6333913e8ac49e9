"""The stack's secrets (checklist 2.1) and how each of them rotates.

:class:`StackSecrets` creates, for every credential SARK reads from its environment, one
Secrets Manager secret encrypted with the stack key, named ``<prefix>/<ENV_VAR>``, with a
recovery window on deletion and tags saying how it rotates:

- ``SECRET_KEY`` (64 characters), ``POSTGRES_PASSWORD``, ``TIMESCALE_PASSWORD`` and
  ``VALKEY_PASSWORD``: values generated with pulumi-random and stored as the first secret
  version. The character sets suit where each value goes: ElastiCache AUTH tokens allow only
  ``! & # $ ^ < > -`` besides letters and digits, RDS passwords forbid ``/ ' " @`` and spaces,
  and every value must survive a connection URL and an environment file unquoted, so the
  passwords use letters, digits and ``-`` (plus ``_`` for PostgreSQL) only.
- ``SPLUNK_HEC_TOKEN`` or ``DATADOG_API_KEY`` (per ``siem_provider``), and optionally
  ``CONSUL_TOKEN`` / ``VAULT_TOKEN``: credentials issued elsewhere. The secret is created
  *without a value*; an operator puts it in with ``aws secretsmanager put-secret-value``
  (docs/data-tier.md). Their value is never in stack config, the program or its state.

:class:`SecretRotations` makes the rotation schedule real once the data stores exist:

- a rotation Lambda (inline code from ``templates/secret_rotation/lambda_function.py``, no
  VPC access needed because it only calls AWS APIs), its log group, a least-privilege role,
  and two SSM documents with fixed commands it may run (set/check the TimescaleDB password on
  that host; restart SARK on the app hosts);
- Secrets Manager rotation for the four generated secrets: ``SECRET_KEY`` every
  ``secret_key_rotation_days`` (180), the three passwords every
  ``database_password_rotation_days`` (90). The Lambda sets the new RDS master password
  through the RDS API, the new AUTH token through ElastiCache's ROTATE strategy (old and new
  token both valid), and the TimescaleDB password on the host through SSM Run Command, then
  restarts SARK host by host so it reads the new values at service start;
- a daily audit (EventBridge schedule -> the same Lambda) that counts secrets with no value
  yet or older than their ``sark:rotation-days`` tag, as CloudWatch metric
  ``SARK/Secrets SecretsNeedingAttention``, and an alarm on it. For the external tokens this
  alarm is the rotation reminder (every ``api_token_rotation_days``): their issuers have no
  API the stack could drive, so their rotation is manual and the alarm says when it is due.

Why the RDS master password is ours and not RDS-managed (``manage_master_user_password``):
RDS would keep it in a secret RDS owns, as JSON (``{"username", "password"}``) rather than the
plain value SARK's ``POSTGRES_PASSWORD`` expects, rotating every 7 days unless re-scheduled,
deleted together with the instance, and with no hook to restart the app hosts when it
changes. Our secret has one shape and one rotation path for all four passwords, the same
recovery window and tags as every other secret, and a restart of the consumers after each
rotation. The cost: the generated first password is an input of the RDS instance (a Pulumi
secret, encrypted in state), and the Lambda role may call ``rds:ModifyDBInstance`` on that one
instance. The policy pack accepts an RDS password only if it comes from a generated value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components._iam import assume_role_policy
from components.timescale import PASSWORD_TOOL

SIEM_SECRETS: dict[str, tuple[str, ...]] = {
    "splunk": ("SPLUNK_HEC_TOKEN",),
    "datadog": ("DATADOG_API_KEY",),
    "none": (),
}
ROTATION_CLASS_TAG = "sark:rotation-class"
ROTATION_DAYS_TAG = "sark:rotation-days"
ROTATION_TAG = "sark:rotation"
ENV_VAR_TAG = "sark:env-var"
METRIC_NAMESPACE = "SARK/Secrets"
METRIC_NAME = "SecretsNeedingAttention"
LAMBDA_SOURCE = Path(__file__).parent / "templates" / "secret_rotation" / "lambda_function.py"



class SecretsArgsError(pulumi.RunError, ValueError):
    """An argument of StackSecrets or SecretRotations is invalid; the message names it, its value and what is allowed.

    A ``pulumi.RunError``, so the Pulumi CLI prints the message without a traceback.
    """

@dataclass(frozen=True)
class GeneratedSecret:
    """How one generated secret's value looks and rotates."""

    env_var: str
    length: int
    special: str
    """Punctuation allowed besides letters and digits ('' for none)."""
    rotation_class: str
    """``signing-key`` (rotation period: ``secret_key_rotation_days``) or ``password``."""
    kind: str
    """How the rotation Lambda applies a new value: generated, rds, elasticache or timescale."""
    description: str


GENERATED: tuple[GeneratedSecret, ...] = (
    GeneratedSecret("SECRET_KEY", 64, "", "signing-key", "generated",
                    "SARK JWT signing key (SECRET_KEY)"),
    GeneratedSecret("POSTGRES_PASSWORD", 40, "-_", "password", "rds",
                    "Password of the sark user of the RDS PostgreSQL database (POSTGRES_PASSWORD)"),
    GeneratedSecret("TIMESCALE_PASSWORD", 40, "-_", "password", "timescale",
                    "Password of the sark user of the TimescaleDB database sark_audit (TIMESCALE_PASSWORD)"),
    GeneratedSecret("VALKEY_PASSWORD", 64, "-", "password", "elasticache",
                    "AUTH token of the ElastiCache Valkey/Redis replication group (VALKEY_PASSWORD)"),
)
EXTERNAL_DESCRIPTIONS = {
    "SPLUNK_HEC_TOKEN": "Splunk HTTP Event Collector token for SARK audit events (put by an operator)",
    "DATADOG_API_KEY": "Datadog API key for SARK audit events (put by an operator)",
    "CONSUL_TOKEN": "Consul ACL token for SARK (put by an operator)",
    "VAULT_TOKEN": "Vault token for SARK (put by an operator)",
}


def _slug(env_var: str) -> str:
    return env_var.lower().replace("_", "-")


@dataclass(frozen=True, kw_only=True)
class StackSecretsArgs:
    """Arguments of :class:`StackSecrets`."""

    key_arn: pulumi.Input[str]
    """The stack's customer-managed KMS key (``StackKey.key_arn``); encrypts every secret."""

    name_prefix: str
    """Secrets are named ``<name_prefix>/<ENV_VAR>``, e.g. ``sark-production/POSTGRES_PASSWORD``."""

    siem_provider: str = "none"
    """``splunk`` (creates ``SPLUNK_HEC_TOKEN``), ``datadog`` (``DATADOG_API_KEY``) or ``none``."""

    consul_token: bool = False
    """Create an empty ``CONSUL_TOKEN`` secret for an operator to fill."""

    vault_token: bool = False
    """Create an empty ``VAULT_TOKEN`` secret for an operator to fill."""

    recovery_window_days: int = 30
    """Days a deleted secret can still be restored (7-30); the longest window is the safe default."""

    secret_key_rotation_days: int = 180
    """Rotation period of ``SECRET_KEY`` (checklist: 180)."""

    database_password_rotation_days: int = 90
    """Rotation period of the database and cache passwords (checklist: 90)."""

    api_token_rotation_days: int = 90
    """Period after which the external tokens are due for manual rotation (checklist: 30-90)."""


class StackSecrets(pulumi.ComponentResource):
    """Secrets Manager secrets for every credential SARK reads at service start."""

    secret_arns: pulumi.Output[dict[str, str]]
    """ARN of every secret by the environment variable it feeds (what the app hosts read)."""

    arns: dict[str, pulumi.Output[str]]
    """The same ARNs as separate outputs, for wiring one secret into one consumer."""

    names: dict[str, str]
    """Name of every secret (``<name_prefix>/<ENV_VAR>``), by environment variable."""

    rotation_days: dict[str, int]
    """Rotation period in days of every secret, by environment variable."""

    external: tuple[str, ...]
    """Environment variables whose secret an operator fills (no value is created by the stack)."""

    postgres_password: pulumi.Output[str]
    """The generated first ``POSTGRES_PASSWORD`` (secret): the RDS master password at creation."""

    valkey_password: pulumi.Output[str]
    """The generated first ``VALKEY_PASSWORD`` (secret): the ElastiCache AUTH token at creation."""

    def __init__(self, name: str, args: StackSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:secrets:StackSecrets", name, None, opts)
        if args.siem_provider not in SIEM_SECRETS:
            raise SecretsArgsError(f"StackSecretsArgs.siem_provider: {args.siem_provider!r} is not allowed; "
                                   f"expected one of {', '.join(SIEM_SECRETS)}")
        if not 7 <= args.recovery_window_days <= 30:
            raise SecretsArgsError(f"StackSecretsArgs.recovery_window_days: {args.recovery_window_days} is not "
                                   "allowed; expected 7 to 30 (0 would delete secrets at once, with no way back)")

        days = {"signing-key": args.secret_key_rotation_days, "password": args.database_password_rotation_days,
                "api-token": args.api_token_rotation_days}
        external = list(SIEM_SECRETS[args.siem_provider])
        external += ["CONSUL_TOKEN"] if args.consul_token else []
        external += ["VAULT_TOKEN"] if args.vault_token else []

        self.arns = {}
        self.names = {}
        self.rotation_days = {}
        values: dict[str, pulumi.Output[str]] = {}
        for spec in GENERATED:
            value = random.RandomPassword(
                f"{name}-{_slug(spec.env_var)}-value",
                length=spec.length,
                special=bool(spec.special),
                override_special=spec.special or None,
                min_lower=1,
                min_upper=1,
                min_numeric=1,
                min_special=1 if spec.special else 0,
                opts=pulumi.ResourceOptions(parent=self),
            )
            secret = self._secret(name, args, env_var=spec.env_var, description=spec.description,
                                  rotation_class=spec.rotation_class, rotation="automatic",
                                  days=days[spec.rotation_class])
            aws.secretsmanager.SecretVersion(
                f"{name}-{_slug(spec.env_var)}-version",
                secret_id=secret.id,
                secret_string=value.result,
                # Rotation moves AWSCURRENT to newer versions; this first version must stay
                # (it is AWSPREVIOUS for a while) and must never be rewritten by an update.
                opts=pulumi.ResourceOptions(parent=self, protect=True),
            )
            values[spec.env_var] = pulumi.Output.secret(value.result)
        for env_var in external:
            self._secret(name, args, env_var=env_var, description=EXTERNAL_DESCRIPTIONS[env_var],
                         rotation_class="api-token", rotation="manual", days=days["api-token"])

        self.external = tuple(external)
        self.secret_arns = pulumi.Output.all(**self.arns)  # type: ignore[assignment]
        self.postgres_password = values["POSTGRES_PASSWORD"]
        self.valkey_password = values["VALKEY_PASSWORD"]
        self.register_outputs({"secretArns": self.secret_arns})

    def _secret(self, name: str, args: StackSecretsArgs, *, env_var: str, description: str, rotation_class: str,
                rotation: str, days: int) -> aws.secretsmanager.Secret:
        secret_name = f"{args.name_prefix}/{env_var}"
        secret = aws.secretsmanager.Secret(
            f"{name}-{_slug(env_var)}",
            name=secret_name,
            description=description,
            kms_key_id=args.key_arn,
            recovery_window_in_days=args.recovery_window_days,
            tags={ENV_VAR_TAG: env_var, ROTATION_CLASS_TAG: rotation_class, ROTATION_TAG: rotation,
                  ROTATION_DAYS_TAG: str(days)},
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        self.arns[env_var] = secret.arn
        self.names[env_var] = secret_name
        self.rotation_days[env_var] = days
        return secret


# --------------------------------------------------------------------------------------
# Rotation
# --------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class SecretRotationsArgs:
    """Arguments of :class:`SecretRotations`."""

    region: str
    """AWS region of the stack (IAM resource ARNs, KMS ``ViaService`` conditions)."""

    key_arn: pulumi.Input[str]
    """The stack key: encrypts the Lambda's environment and log group; the secrets use it too."""

    secret_arns: Mapping[str, pulumi.Input[str]]
    """ARN of every stack secret by environment variable (``StackSecrets.arns``)."""

    rotation_days: Mapping[str, int]
    """Rotation period of every secret (``StackSecrets.rotation_days``)."""

    db_instance_identifier: pulumi.Input[str]
    """RDS instance whose master password is ``POSTGRES_PASSWORD``."""

    db_instance_arn: pulumi.Input[str]
    """Its ARN (scopes ``rds:ModifyDBInstance`` to it)."""

    replication_group_id: pulumi.Input[str]
    """ElastiCache replication group whose AUTH token is ``VALKEY_PASSWORD``."""

    replication_group_arn: pulumi.Input[str]
    """Its ARN (scopes ``elasticache:ModifyReplicationGroup`` to it)."""

    timescale_instance_id: pulumi.Input[str]
    """The TimescaleDB host, where the ``sark`` role's password is ``TIMESCALE_PASSWORD``."""

    app_role: str = "app"
    """Value of the ``sark:role`` tag of the app hosts that are restarted after a rotation."""

    app_reload_command: str = "systemctl try-restart sark.service"
    """Shell command that makes an app host re-read its secrets (restart of the SARK unit)."""

    alarm_actions: Sequence[pulumi.Input[str]] = ()
    """Where the rotation-reminder alarm notifies (e.g. the stack's alert topic)."""

    log_retention_days: int = 90
    """Days the Lambda's logs are kept."""

    audit_schedule: str = "rate(1 day)"
    """EventBridge schedule of the audit that feeds the reminder alarm."""

    lambda_timeout_seconds: int = 300
    """Time one rotation step may take (waiting for RDS, ElastiCache or the host)."""

    extra_tags: Mapping[str, str] = field(default_factory=dict)
    """Tags added to the Lambda, its role and the alarm."""


ROTATED_KINDS = {spec.env_var: spec for spec in GENERATED}


class SecretRotations(pulumi.ComponentResource):
    """Automatic rotation of the generated secrets, and the reminder for the external ones."""

    function_arn: pulumi.Output[str]
    """ARN of the rotation Lambda."""

    alarm_name: pulumi.Output[str]
    """Name of the alarm that fires when a secret has no value or is overdue for rotation."""

    rotated: tuple[str, ...]
    """Environment variables whose secret rotates automatically."""

    def __init__(self, name: str, args: SecretRotationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:secrets:SecretRotations", name, None, opts)
        missing = sorted(set(ROTATED_KINDS) - set(args.secret_arns))
        if missing:
            raise SecretsArgsError(f"SecretRotationsArgs.secret_arns: missing {', '.join(missing)}; pass "
                                   "StackSecrets.arns")
        child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/sark/{name}/secret-rotation",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.key_arn,
            tags=dict(args.extra_tags),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-role",
            description="SARK secret rotation Lambda",
            assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
            tags=dict(args.extra_tags),
            opts=child,
        )
        # Fixed names, so operators can run them by hand (docs/data-tier.md).
        timescale_doc = aws.ssm.Document(
            f"{name}-timescale-password",
            name=f"{name}-timescale-password",
            document_type="Command",
            document_format="JSON",
            content=json.dumps(_timescale_document()),
            tags=dict(args.extra_tags),
            opts=child,
        )
        reload_doc = aws.ssm.Document(
            f"{name}-app-reload",
            name=f"{name}-app-reload",
            document_type="Command",
            document_format="JSON",
            content=json.dumps(_reload_document(args.app_reload_command)),
            tags=dict(args.extra_tags),
            opts=child,
        )

        targets = {
            "POSTGRES_PASSWORD": args.db_instance_identifier,
            "VALKEY_PASSWORD": args.replication_group_id,
            "TIMESCALE_PASSWORD": args.timescale_instance_id,
        }
        config = pulumi.Output.all(
            arns=pulumi.Output.all(**{k: args.secret_arns[k] for k in args.secret_arns}),
            targets=pulumi.Output.all(**targets),
            timescale_doc=timescale_doc.name,
            reload_doc=reload_doc.name,
        ).apply(lambda v: json.dumps(_lambda_config(
            name, arns=v["arns"], targets=v["targets"], timescale_doc=v["timescale_doc"], reload_doc=v["reload_doc"],
            app_role=args.app_role), sort_keys=True))

        code = LAMBDA_SOURCE.read_text(encoding="utf-8")
        function = aws.lambda_.Function(
            f"{name}-function",
            name=name,
            description="Rotates the SARK stack's generated secrets and audits every secret's age",
            runtime="python3.12",
            handler="lambda_function.handler",
            code=pulumi.AssetArchive({"lambda_function.py": pulumi.StringAsset(code)}),
            role=role.arn,
            timeout=args.lambda_timeout_seconds,
            memory_size=256,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={"SARK_ROTATION_CONFIG": config}),
            kms_key_arn=args.key_arn,
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=log_group.name),
            tags=dict(args.extra_tags),
            opts=child,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.all(
                account=account,
                arns=pulumi.Output.all(**{k: args.secret_arns[k] for k in args.secret_arns}),
                key=args.key_arn,
                log_group=log_group.arn,
                db=args.db_instance_arn,
                cache=args.replication_group_arn,
                instance=args.timescale_instance_id,
                docs=pulumi.Output.all(timescale_doc.arn, reload_doc.arn),
                function_name=function.name,
            ).apply(lambda v: json.dumps(_lambda_policy(args.region, args.app_role, v))),
            opts=child,
        )

        self.rotated = tuple(spec.env_var for spec in GENERATED)
        for env_var in self.rotated:
            slug = _slug(env_var)
            permission = aws.lambda_.Permission(
                f"{name}-{slug}-invoke",
                action="lambda:InvokeFunction",
                function=function.name,
                principal="secretsmanager.amazonaws.com",
                source_arn=args.secret_arns[env_var],
                opts=child,
            )
            aws.secretsmanager.SecretRotation(
                f"{name}-{slug}",
                secret_id=args.secret_arns[env_var],
                rotation_lambda_arn=function.arn,
                rotation_rules=aws.secretsmanager.SecretRotationRotationRulesArgs(
                    automatically_after_days=args.rotation_days[env_var]),
                # The first value was generated moments ago; rotating at once would only change
                # the passwords while the data stores are still being created.
                rotate_immediately=False,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[permission, policy]),
            )

        schedule = aws.cloudwatch.EventRule(
            f"{name}-audit",
            description="Daily audit of the SARK secrets' age (feeds the rotation reminder alarm)",
            schedule_expression=args.audit_schedule,
            tags=dict(args.extra_tags),
            opts=child,
        )
        audit_permission = aws.lambda_.Permission(
            f"{name}-audit-invoke",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="events.amazonaws.com",
            source_arn=schedule.arn,
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-audit-target",
            rule=schedule.name,
            arn=function.arn,
            input=json.dumps({"action": "audit"}),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[audit_permission]),
        )
        alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-attention",
            name=f"{name}-attention",
            alarm_description="A SARK secret has no value yet, or is overdue for rotation (external tokens: rotate "
                              "by hand, see docs/data-tier.md; generated secrets: the rotation Lambda is failing).",
            namespace=METRIC_NAMESPACE,
            metric_name=METRIC_NAME,
            dimensions={"Stack": name},
            statistic="Maximum",
            period=86400,
            evaluation_periods=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            # No data means the audit itself did not run: that needs attention too.
            treat_missing_data="breaching",
            alarm_actions=list(args.alarm_actions),
            ok_actions=list(args.alarm_actions),
            tags=dict(args.extra_tags),
            opts=child,
        )

        self.function_arn = function.arn
        self.alarm_name = alarm.name
        self.register_outputs({"functionArn": self.function_arn, "alarmName": self.alarm_name})


def _timescale_document() -> dict[str, object]:
    return {
        "schemaVersion": "2.2",
        "description": "Set or check the TimescaleDB sark role's password from Secrets Manager (the host reads "
                       "the value itself; no secret passes through this command).",
        "parameters": {
            "action": {"type": "String", "allowedValues": ["apply", "check"],
                       "description": "apply: ALTER ROLE to the value; check: log in with it."},
            "stage": {"type": "String", "allowedValues": ["AWSCURRENT", "AWSPENDING"],
                      "description": "Secrets Manager version stage to use."},
        },
        "mainSteps": [{
            "action": "aws:runShellScript",
            "name": "timescalePassword",
            "inputs": {"runCommand": [f"{PASSWORD_TOOL} {{{{ action }}}} {{{{ stage }}}}"], "timeoutSeconds": "120"},
        }],
    }


def _reload_document(command: str) -> dict[str, object]:
    return {
        "schemaVersion": "2.2",
        "description": "Restart SARK so it reads its secrets from Secrets Manager again.",
        "mainSteps": [{
            "action": "aws:runShellScript",
            "name": "reloadSark",
            "inputs": {"runCommand": [command], "timeoutSeconds": "300"},
        }],
    }


def _lambda_config(stack: str, *, arns: Mapping[str, str], targets: Mapping[str, str], timescale_doc: str,
                   reload_doc: str, app_role: str) -> dict[str, object]:
    secrets: dict[str, dict[str, object]] = {}
    for env_var, spec in ROTATED_KINDS.items():
        entry: dict[str, object] = {"name": env_var, "kind": spec.kind, "length": spec.length,
                                    "special": spec.special}
        if env_var in targets:
            entry["target"] = targets[env_var]
        secrets[arns[env_var]] = entry
    return {
        "stack": stack,
        "namespace": METRIC_NAMESPACE,
        "secrets": secrets,
        "audit": [arns[k] for k in sorted(arns)],
        "timescale": {"document": timescale_doc},
        "reload": {"document": reload_doc, "tag_key": "sark:role", "tag_value": app_role},
    }


def _lambda_policy(region: str, app_role: str, v: Mapping[str, object]) -> dict[str, object]:
    account = v["account"]
    arns: Mapping[str, str] = v["arns"]  # type: ignore[assignment]
    rotated = [arns[k] for k in ROTATED_KINDS]
    statements = [
        {"Sid": "RotateGeneratedSecrets", "Effect": "Allow",
         "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
         "Resource": rotated},
        # The audit reads metadata only, never a value, of every secret (external ones included).
        {"Sid": "AuditSecretAges", "Effect": "Allow",
         "Action": ["secretsmanager:DescribeSecret", "secretsmanager:ListSecretVersionIds"],
         "Resource": [arns[k] for k in sorted(arns)]},
        {"Sid": "GenerateValues", "Effect": "Allow", "Action": "secretsmanager:GetRandomPassword", "Resource": "*"},
        {"Sid": "StackKeyThroughSecretsManager", "Effect": "Allow",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": v["key"],
         "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}}},
        {"Sid": "StackKeyForOwnEnvironment", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": v["key"],
         "Condition": {"StringEquals": {"kms:EncryptionContext:LambdaFunctionName": v["function_name"]}}},
        {"Sid": "SetDatabasePassword", "Effect": "Allow",
         "Action": ["rds:ModifyDBInstance", "rds:DescribeDBInstances"], "Resource": v["db"]},
        {"Sid": "SetCacheAuthToken", "Effect": "Allow",
         "Action": ["elasticache:ModifyReplicationGroup", "elasticache:DescribeReplicationGroups"],
         "Resource": v["cache"]},
        {"Sid": "RunStackDocuments", "Effect": "Allow", "Action": "ssm:SendCommand", "Resource": v["docs"]},
        {"Sid": "OnTheTimescaleHost", "Effect": "Allow", "Action": "ssm:SendCommand",
         "Resource": f"arn:aws:ec2:{region}:{account}:instance/{v['instance']}"},
        {"Sid": "OnTheAppHosts", "Effect": "Allow", "Action": "ssm:SendCommand",
         "Resource": f"arn:aws:ec2:{region}:{account}:instance/*",
         "Condition": {"StringEquals": {"ssm:resourceTag/sark:role": app_role}}},
        {"Sid": "FollowCommands", "Effect": "Allow",
         "Action": ["ssm:GetCommandInvocation", "ssm:ListCommandInvocations"], "Resource": "*"},
        {"Sid": "PublishAuditMetric", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}}},
        {"Sid": "WriteOwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [v["log_group"], f"{v['log_group']}:*"]},
        {"Sid": "Tracing", "Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
         "Resource": "*"},
    ]
    return {"Version": "2012-10-17", "Statement": statements}


__all__ = [
    "GENERATED",
    "SIEM_SECRETS",
    "GeneratedSecret",
    "SecretRotations",
    "SecretRotationsArgs",
    "StackSecrets",
    "StackSecretsArgs",
]
