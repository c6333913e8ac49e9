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

import hashlib
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
APP_ROLE_VERSION = hashlib.sha256(LAMBDA_SOURCE.read_bytes()).hexdigest()[:16]
"""Changes with the Lambda (which holds the app role's grants), re-running the idempotent bootstrap."""



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
    """How the rotation Lambda applies a new value: generated, rds (the master, single user),
    rds-app (alternating users), elasticache or timescale (alternating users)."""
    description: str
    username: str | None = None
    """Base user of a JSON ``{"username", "password"}`` secret (alternating users: the value
    holds this user or ``<username>_clone``); None: the value is the bare password or key."""


APP_DB_GROUP = "sark_app"
"""NOLOGIN role holding the app's database-level grants on RDS (components/database.py: app_role_sql)."""
APP_DB_USER = "sark_app_user"
"""The app's RDS login; it alternates with ``sark_app_user_clone``, both members of ``sark_app``."""
MASTER_USER = "sark"
"""The RDS master user: migrations and operators only."""
TIMESCALE_USER = "sark"
"""TimescaleDB owner of ``sark_audit``; it alternates with ``sark_clone`` (which acts as ``sark``)."""

GENERATED: tuple[GeneratedSecret, ...] = (
    GeneratedSecret("SECRET_KEY", 64, "", "signing-key", "generated",
                    "SARK JWT signing key (SECRET_KEY)"),
    GeneratedSecret("POSTGRES_PASSWORD", 40, "-_", "password", "rds-app",
                    "Login of the app's least-privilege role on RDS PostgreSQL, JSON {username, password}; the "
                    "username alternates between sark_app_user and sark_app_user_clone (POSTGRES_USER/PASSWORD)",
                    username=APP_DB_USER),
    GeneratedSecret("TIMESCALE_PASSWORD", 40, "-_", "password", "timescale",
                    "Login of the TimescaleDB database sark_audit, JSON {username, password}; the username "
                    "alternates between sark and sark_clone (TIMESCALE_USER/PASSWORD)", username=TIMESCALE_USER),
    GeneratedSecret("VALKEY_PASSWORD", 64, "-", "password", "elasticache",
                    "AUTH token of the ElastiCache Valkey/Redis replication group (VALKEY_PASSWORD)"),
)
MASTER = GeneratedSecret("POSTGRES_MASTER", 40, "-_", "password", "rds",
                         "RDS PostgreSQL master user sark, JSON {username, password}: migrations, the rotation "
                         "Lambda and operators only; never given to the app", username=MASTER_USER)
"""The master credential: a stack secret, but not one the app hosts read (not in ``StackSecrets.arns``)."""
EXTERNAL_DESCRIPTIONS = {
    "SPLUNK_HEC_TOKEN": "Splunk HTTP Event Collector token for SARK audit events (put by an operator)",
    "DATADOG_API_KEY": "Datadog API key for SARK audit events (put by an operator)",
    "CONSUL_TOKEN": "Consul ACL token for SARK (put by an operator)",
    "VAULT_TOKEN": "Vault token for SARK (put by an operator)",
}


def secret_value(spec: GeneratedSecret, password: pulumi.Input[str]) -> pulumi.Output[str]:
    """The first value of a generated secret: the bare value, or ``{"username", "password"}`` JSON."""
    if spec.username is None:
        return pulumi.Output.secret(password)
    return pulumi.Output.secret(pulumi.Output.json_dumps({"username": spec.username, "password": password}))


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

    master_arn: pulumi.Output[str]
    """ARN of ``<prefix>/POSTGRES_MASTER`` (the RDS master credential; not for the app)."""

    master_name: str
    """Its name."""

    postgres_master_password: pulumi.Output[str]
    """The generated first master password (secret): the RDS master password at creation."""

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
        for spec in (*GENERATED, MASTER):
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
                secret_string=secret_value(spec, value.result),
                # Rotation moves AWSCURRENT to newer versions; this first version must stay
                # (it is AWSPREVIOUS for a while) and must never be rewritten by an update.
                opts=pulumi.ResourceOptions(parent=self, protect=True),
            )
            values[spec.env_var] = pulumi.Output.secret(value.result)
        for env_var in external:
            self._secret(name, args, env_var=env_var, description=EXTERNAL_DESCRIPTIONS[env_var],
                         rotation_class="api-token", rotation="manual", days=days["api-token"])

        self.external = tuple(external)
        # The master is a stack secret the app must never read: out of the map the app hosts get.
        self.master_arn = self.arns.pop(MASTER.env_var)
        self.master_name = self.names.pop(MASTER.env_var)
        self.secret_arns = pulumi.Output.all(**self.arns)  # type: ignore[assignment]
        self.postgres_master_password = values[MASTER.env_var]
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

    master_secret_arn: pulumi.Input[str]
    """``StackSecrets.master_arn``: the RDS master credential, rotated here and used to manage the app's logins."""

    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Private subnets with a route out (the app subnets): the Lambda connects to RDS to manage the app's
    logins, and reaches the AWS APIs through NAT."""

    security_group_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """The app hosts' security group: it already reaches RDS on 5432 and the internet on 443, so the
    Lambda adds no firewall path of its own."""

    database_name: str = "sark"
    """RDS database the app's role is granted on."""

    reserved_concurrency: int = 2
    """Concurrent executions reserved for (and capping) the Lambda; -1: none reserved (accounts whose
    concurrency limit is 10 cannot reserve any). 0 is refused: it would stop every rotation."""

    timescale_ready: Sequence[pulumi.Resource] = ()
    """What must exist before the TimescaleDB rotation is configured (its first test logs in on the host):
    ``TimescaleHost.ready``, which waits for the host's bootstrap."""

    bootstrap_after: Sequence[pulumi.Resource] = ()
    """What the app-role bootstrap invocation waits for (the database instance, the secrets' first values)."""

    route_out: Sequence[pulumi.Resource] = ()
    """The route out of the Lambda's subnets (``Network.app_route_out``: NAT gateways, default routes,
    route-table associations). The bootstrap invocation and every rotation's first test run the
    Lambda at once, and it calls Secrets Manager, SSM and CloudWatch: on a first ``pulumi up`` they
    must not start before the subnets have a route to those APIs."""

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


ROTATED_KINDS = {spec.env_var: spec for spec in (*GENERATED, MASTER)}


class SecretRotations(pulumi.ComponentResource):
    """Automatic rotation of the generated secrets, and the reminder for the external ones."""

    function_arn: pulumi.Output[str]
    """ARN of the rotation Lambda."""

    alarm_name: pulumi.Output[str]
    """Name of the alarm that fires when a secret has no value or is overdue for rotation."""

    alarm_names: pulumi.Output[list[str]]
    """Every alarm of the component: the rotation reminder and the failed-invocation queue."""

    failure_queue_arn: pulumi.Output[str]
    """SQS queue receiving the Lambda's failed asynchronous invocations (the daily audit)."""

    rotated: tuple[str, ...]
    """Environment variables whose secret rotates automatically."""

    def __init__(self, name: str, args: SecretRotationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sark:secrets:SecretRotations", name, None, opts)
        missing = sorted(set(ROTATED_KINDS) - {*args.secret_arns, MASTER.env_var})
        if args.reserved_concurrency == 0 or args.reserved_concurrency < -1:
            raise SecretsArgsError(f"SecretRotationsArgs.reserved_concurrency: {args.reserved_concurrency} is not "
                                   "allowed; expected -1 (none reserved) or 1 and more (0 would stop every rotation)")
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

        arns: dict[str, pulumi.Input[str]] = {**args.secret_arns, MASTER.env_var: args.master_secret_arn}
        targets = {
            "POSTGRES_PASSWORD": args.db_instance_identifier,
            MASTER.env_var: args.db_instance_identifier,
            "VALKEY_PASSWORD": args.replication_group_id,
            "TIMESCALE_PASSWORD": args.timescale_instance_id,
        }
        config = pulumi.Output.all(
            arns=pulumi.Output.all(**arns),
            targets=pulumi.Output.all(**targets),
            timescale_doc=timescale_doc.name,
            reload_doc=reload_doc.name,
        ).apply(lambda v: json.dumps(_lambda_config(
            name, arns=v["arns"], targets=v["targets"], timescale_doc=v["timescale_doc"], reload_doc=v["reload_doc"],
            app_role=args.app_role, database_name=args.database_name), sort_keys=True))

        # Failed asynchronous invocations (the daily audit; EventBridge invokes asynchronously) land
        # here instead of vanishing, and an alarm says so.
        failures = aws.sqs.Queue(
            f"{name}-failures",
            name=f"{name}-failures",
            kms_master_key_id=args.key_arn,
            kms_data_key_reuse_period_seconds=300,
            message_retention_seconds=14 * 86400,
            tags=dict(args.extra_tags),
            opts=child,
        )
        vpc_access = aws.iam.RolePolicyAttachment(
            f"{name}-vpc-access",
            role=role.name,
            # Create/describe/delete the function's network interfaces in the app subnets.
            policy_arn="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
            opts=child,
        )

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
            reserved_concurrent_executions=args.reserved_concurrency,
            vpc_config=aws.lambda_.FunctionVpcConfigArgs(subnet_ids=args.subnet_ids,
                                                         security_group_ids=args.security_group_ids),
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={"SARK_ROTATION_CONFIG": config}),
            kms_key_arn=args.key_arn,
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=log_group.name),
            tags=dict(args.extra_tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[vpc_access]),
        )
        policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.all(
                account=account,
                arns=pulumi.Output.all(**arns),
                key=args.key_arn,
                log_group=log_group.arn,
                db=args.db_instance_arn,
                cache=args.replication_group_arn,
                instance=args.timescale_instance_id,
                docs=pulumi.Output.all(timescale_doc.arn, reload_doc.arn),
                function_name=function.name,
                queue=failures.arn,
            ).apply(lambda v: json.dumps(_lambda_policy(args.region, args.app_role, v))),
            opts=child,
        )
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-async",
            function_name=function.name,
            maximum_retry_attempts=2,
            maximum_event_age_in_seconds=6 * 3600,
            destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                    destination=failures.arn)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )

        # The app's least-privilege role and its first login, created as the master user once the
        # database and the first secret values exist (the Lambda is the one thing in the VPC with
        # the master credential). Re-run when the grants change.
        bootstrap = aws.lambda_.Invocation(
            f"{name}-app-role",
            function_name=function.name,
            input=json.dumps({"action": "bootstrap"}),
            triggers={"grants": APP_ROLE_VERSION, "instance": args.db_instance_identifier},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, *args.bootstrap_after, *args.route_out]),
        )

        self.rotated = tuple(ROTATED_KINDS)
        for env_var in self.rotated:
            slug = _slug(env_var)
            permission = aws.lambda_.Permission(
                f"{name}-{slug}-invoke",
                action="lambda:InvokeFunction",
                function=function.name,
                principal="secretsmanager.amazonaws.com",
                source_arn=arns[env_var],
                opts=child,
            )
            # Configuring rotation runs the Lambda's testSecret at once: it must find what it tests.
            ready: list[pulumi.Resource] = [permission, policy, *args.route_out]
            if env_var == "POSTGRES_PASSWORD":
                ready.append(bootstrap)
            elif env_var == "TIMESCALE_PASSWORD":
                ready.extend(args.timescale_ready)
            aws.secretsmanager.SecretRotation(
                f"{name}-{slug}",
                secret_id=arns[env_var],
                rotation_lambda_arn=function.arn,
                rotation_rules=aws.secretsmanager.SecretRotationRotationRulesArgs(
                    automatically_after_days=args.rotation_days[env_var]),
                # The first value was generated moments ago; rotating at once would only change
                # the passwords while the data stores are still being created.
                rotate_immediately=False,
                opts=pulumi.ResourceOptions(parent=self, depends_on=ready),
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

        failure_alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-failed-invocations",
            name=f"{name}-failed-invocations",
            alarm_description=f"An asynchronous invocation of {name} (the daily secret audit) failed after its "
                              f"retries; the event is in the SQS queue {name}-failures (docs/data-tier.md).",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": failures.name},
            statistic="Maximum",
            period=300,
            evaluation_periods=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=list(args.alarm_actions),
            ok_actions=list(args.alarm_actions),
            tags=dict(args.extra_tags),
            opts=child,
        )

        self.function_arn = function.arn
        self.alarm_name = alarm.name
        self.alarm_names = pulumi.Output.all(alarm.name, failure_alarm.name)  # type: ignore[assignment]
        self.failure_queue_arn = failures.arn
        self.register_outputs({"functionArn": self.function_arn, "alarmName": self.alarm_name,
                               "alarmNames": self.alarm_names, "failureQueueArn": self.failure_queue_arn})


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
                   reload_doc: str, app_role: str, database_name: str = "sark") -> dict[str, object]:
    secrets: dict[str, dict[str, object]] = {}
    for env_var, spec in ROTATED_KINDS.items():
        entry: dict[str, object] = {"name": env_var, "kind": spec.kind, "length": spec.length,
                                    "special": spec.special}
        if spec.username is not None:
            entry["username"] = spec.username
        if env_var in targets:
            entry["target"] = targets[env_var]
        # SECRET_KEY: every host restarts at once, so they disagree on the key for one restart at most;
        # passwords: host by host (alternating users keep the previous login valid meanwhile).
        entry["restart"] = "all-at-once" if spec.rotation_class == "signing-key" else "rolling"
        if spec.kind == "rds-app":
            entry["master"] = arns[MASTER.env_var]
        secrets[arns[env_var]] = entry
    return {
        "stack": stack,
        "namespace": METRIC_NAMESPACE,
        "secrets": secrets,
        "audit": [arns[k] for k in sorted(arns)],
        "timescale": {"document": timescale_doc},
        "reload": {"document": reload_doc, "tag_key": "sark:role", "tag_value": app_role},
        "database": {"name": database_name, "owner": MASTER_USER, "group": APP_DB_GROUP,
                     "app_secret": arns["POSTGRES_PASSWORD"], "master_secret": arns[MASTER.env_var],
                     "instance": targets["POSTGRES_PASSWORD"]},
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
        {"Sid": "FailedInvocationsToQueue", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": v["queue"]},
        {"Sid": "StackKeyThroughSqs", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
         "Resource": v["key"],
         "Condition": {"StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}}},
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
