"""SARK production stack: composes the components; every detail lives in them or in config."""

import pulumi

from components import cloudwatch_agent
from components.app_hosts import AppHosts, AppHostsArgs, AppScaling, AppSettings, CloudWatchAgentSetup, DataEndpoints
from components.cache import Cache, CacheArgs
from components.database import Database, DatabaseArgs
from components.kms import StackKey, StackKeyArgs
from components.load_balancer import LoadBalancer, LoadBalancerArgs
from components.monitoring import Monitoring, MonitoringArgs, agent_parameter_name, cache_member_cluster_ids
from components.network import ExistingVpc, Network, NetworkArgs, PrivateRoute
from components.release import Release, ReleaseArgs
from components.secrets import SecretRotations, SecretRotationsArgs, StackSecrets, StackSecretsArgs
from components.security_groups import SecurityGroups, SecurityGroupsArgs
from components.timescale import TimescaleHost, TimescaleHostArgs
from stack_config import check_placeholders, load_config

cfg = load_config()
# Before any resource: a preview shows the plan and warns about each example value; an
# update stops here, with all of them listed, instead of half-creating the stack.
check_placeholders(cfg, dry_run=pulumi.runtime.is_dry_run())
pulumi.export("placeholders", [str(p) for p in cfg.placeholders])
base = f"{cfg.name_prefix}-{cfg.stack}"

stack_key = StackKey(base, StackKeyArgs(region=cfg.region))

existing = cfg.network.existing
network = Network(
    f"{base}-network",
    NetworkArgs(
        region=cfg.region,
        vpc_cidr=cfg.network.vpc_cidr,
        az_count=cfg.network.az_count,
        single_nat_gateway=cfg.network.single_nat_gateway,
        flow_log_retention_days=cfg.network.flow_log_retention_days,
        kms_key_arn=stack_key.key_arn,
        existing=ExistingVpc(
            vpc_id=existing.vpc_id,
            public_subnet_ids=existing.public_subnet_ids,
            app_subnet_ids=existing.app_subnet_ids,
            data_subnet_ids=existing.data_subnet_ids,
        ) if existing else None,
        private_routes=[PrivateRoute(destination_cidr=cidr, target_id=target)
                        for cidr, target in cfg.network.private_routes],
    ),
)

firewall = SecurityGroups(
    f"{base}-sg",
    SecurityGroupsArgs(
        vpc_id=network.vpc_id,
        ingress_cidrs=cfg.load_balancer.ingress_cidrs,
        monitoring_cidrs=cfg.app.monitoring_cidrs,
        admin_cidrs=cfg.app.admin_cidrs,
        siem_port=cfg.secrets.siem_port,
    ),
)

secrets = StackSecrets(
    f"{base}-secrets",
    StackSecretsArgs(
        key_arn=stack_key.key_arn,
        name_prefix=base,
        siem_provider=cfg.secrets.siem_provider,
        consul_token=cfg.secrets.consul_token,
        vault_token=cfg.secrets.vault_token,
        recovery_window_days=cfg.secrets.recovery_window_days,
        secret_key_rotation_days=cfg.secrets.secret_key_rotation_days,
        database_password_rotation_days=cfg.secrets.database_password_rotation_days,
        api_token_rotation_days=cfg.secrets.api_token_rotation_days,
    ),
)

database = Database(
    f"{base}-db",
    DatabaseArgs(
        subnet_ids=network.data_subnet_ids,
        security_group_id=firewall.database_id,
        key_arn=stack_key.key_arn,
        password=secrets.postgres_master_password,
        engine_version=cfg.database.engine_version,
        instance_class=cfg.database.instance_class,
        allocated_storage_gb=cfg.database.allocated_storage_gb,
        max_allocated_storage_gb=cfg.database.max_allocated_storage_gb,
        backup_retention_days=cfg.database.backup_retention_days,
        multi_az=cfg.database.multi_az,
        deletion_protection=cfg.database.deletion_protection,
        max_connections=cfg.database.max_connections,
        log_retention_days=cfg.observability.log_retention_days,
    ),
)

cache = Cache(
    f"{base}-cache",
    CacheArgs(
        subnet_ids=network.data_subnet_ids,
        security_group_id=firewall.cache_id,
        key_arn=stack_key.key_arn,
        auth_token=secrets.valkey_password,
        engine=cfg.cache.engine,
        engine_version=cfg.cache.engine_version,
        node_type=cfg.cache.node_type,
        node_count=cfg.cache.node_count,
        snapshot_retention_days=cfg.cache.snapshot_retention_days,
    ),
)

timescale = TimescaleHost(
    f"{base}-timescale",
    TimescaleHostArgs(
        region=cfg.region,
        subnet_id=network.data_subnet_ids[0],
        security_group_id=firewall.timescale_id,
        key_arn=stack_key.key_arn,
        password_secret_arn=secrets.arns["TIMESCALE_PASSWORD"],
        password_secret_name=secrets.names["TIMESCALE_PASSWORD"],
        app_subnet_cidrs=network.app_subnet_cidrs,
        instance_type=cfg.timescale.instance_type,
        data_volume_gb=cfg.timescale.data_volume_gb,
        timescaledb_version=cfg.timescale.timescaledb_version,
        snapshot_retention_days=cfg.timescale.snapshot_retention_days,
        image_id=cfg.timescale.image_id,
        route_out=network.data_route_out,
        max_connections=cfg.timescale.max_connections,
        parameter_path=f"/{cfg.name_prefix}/{cfg.stack}",
        # Monitoring (created below, as it needs this host's id) names its agent parameter this way.
        cloudwatch_agent_parameter=agent_parameter_name(f"{base}-monitoring", "timescale"),
    ),
)

# The app tier. Releases are keyed by tag: the running one (previousAppVersion) keeps its hosts
# and target group while the new one (appVersion) is gated and takes newVersionTrafficPercent.
versions = [cfg.app.release_tag, *([cfg.app.previous_release_tag] if cfg.app.previous_release_tag else [])]
load_balancer = LoadBalancer(
    f"{base}-lb",
    LoadBalancerArgs(
        vpc_id=network.vpc_id,
        subnet_ids=network.public_subnet_ids,
        security_group_id=firewall.load_balancer_id,
        region=cfg.region,
        versions=versions,
        certificate_arn=cfg.load_balancer.certificate_arn,
        domain_name=cfg.load_balancer.domain_name,
        hosted_zone_id=cfg.load_balancer.hosted_zone_id,
        tls_policy=cfg.load_balancer.tls_policy,
        hsts_max_age_seconds=cfg.load_balancer.hsts_max_age_seconds,
        access_log_retention_days=cfg.load_balancer.access_log_retention_days,
        waf_enabled=cfg.load_balancer.waf_enabled,
        waf_rate_limit=cfg.load_balancer.waf_rate_limit,
        waf_log_retention_days=cfg.observability.log_retention_days,
        kms_key_arn=stack_key.key_arn,
        # Configured sources, or else the stack's NAT addresses: hosts in the VPC only.
        canary_source_cidrs=list(cfg.load_balancer.canary_cidrs) or network.nat_public_ips.apply(
            lambda ips: [f"{ip}/32" for ip in ips]),
        deletion_protection=cfg.load_balancer.deletion_protection,
    ),
)

app_hosts = AppHosts(
    f"{base}-app",
    AppHostsArgs(
        region=cfg.region,
        stack=cfg.stack,
        parameter_path=f"/{cfg.name_prefix}/{cfg.stack}",
        subnet_ids=network.app_subnet_ids,
        vpc_cidr=network.vpc_cidr,
        security_group_id=firewall.app_id,
        kms_key_arn=stack_key.key_arn,
        image_id=cfg.app.image_id,
        route_out=network.app_route_out,
        repository_url=cfg.app.repository_url,
        versions=load_balancer.target_group_arns,
        data=DataEndpoints(
            postgres_host=database.address,
            postgres_port=database.port,
            postgres_user=database.username,
            postgres_db=database.database_name,
            timescale_host=timescale.private_ip,
            timescale_port=timescale.port,
            valkey_host=cache.primary_endpoint,
            valkey_port=cache.port,
        ),
        # The master login too, for the migration step only (sark-render-env keeps it out of SARK's environment).
        secret_arns={**secrets.arns, "POSTGRES_MASTER": secrets.master_arn},
        settings=AppSettings(
            environment=cfg.environment,
            log_level=cfg.app.log_level,
            cors_origins=cfg.app.cors_origins,
            access_token_expire_minutes=cfg.app.access_token_expire_minutes,
            postgres_pool_size=cfg.app.postgres_pool_size,
            postgres_max_overflow=cfg.app.postgres_max_overflow,
            siem_provider=cfg.secrets.siem_provider,
            splunk_hec_url=cfg.secrets.splunk_hec_url,
            splunk_index=cfg.secrets.splunk_index,
            datadog_site=cfg.secrets.datadog_site,
        ),
        instance_type=cfg.app.instance_type,
        workers=cfg.app.workers,
        root_volume_gb=cfg.app.root_volume_gb,
        min_size=cfg.app.min_size,
        desired_capacity=cfg.app.desired_capacity,
        max_size=cfg.app.max_size,
        scaling=AppScaling(
            load_balancer_arn_suffix=load_balancer.arn_suffix,
            target_group_arn_suffixes=load_balancer.target_group_arn_suffixes,
            cpu_target_percent=cfg.app.scaling_cpu_percent,
            requests_per_target=cfg.app.scaling_requests_per_target,
        ),
        metrics_stack_label=base,
        monitoring_cidrs=cfg.app.monitoring_cidrs,
        admin_cidrs=cfg.app.admin_cidrs,
        # Monitoring (created below, as it needs these hosts' group names) names its parameter this way.
        cloudwatch_agent=CloudWatchAgentSetup(
            config_parameter=agent_parameter_name(f"{base}-monitoring", "app"),
            files={"/etc/rsyslog.d/30-sark.conf": cloudwatch_agent.RSYSLOG_SARK_CONF,
                   cloudwatch_agent.LOGROTATE_PATH: cloudwatch_agent.LOGROTATE_SARK_CONF,
                   cloudwatch_agent.PROMETHEUS_CONFIG_PATH: cloudwatch_agent.prometheus_scrape_config(base)},
        ),
    ),
)

release = Release(
    f"{base}-release",
    ReleaseArgs(
        stack=cfg.stack,
        region=cfg.region,
        current_version=cfg.app.release_tag,
        previous_version=cfg.app.previous_release_tag,
        new_release_weight=cfg.app.new_release_weight,
        https_listener_arn=load_balancer.https_listener_arn,
        target_group_arns=load_balancer.target_group_arns,
        autoscaling_group_names=app_hosts.autoscaling_group_names,
        db_instance_identifier=database.instance_identifier,
        data_tier=[database, timescale],
        timescale_volume_id=timescale.data_volume_id,
        min_healthy_targets=cfg.app.desired_capacity,
        state_parameter_path=f"/{cfg.name_prefix}/{cfg.stack}/releases",
        secret_arns=secrets.arns,
        cache_replication_group_id=cache.replication_group_id,
        timescale_ready_parameter=timescale.ready_parameter,
        timescale_instance_id=timescale.instance_id,
    ),
)

monitoring = Monitoring(
    f"{base}-monitoring",
    MonitoringArgs(
        region=cfg.region,
        kms_key_arn=stack_key.key_arn,
        stack_label=base,
        log_group_prefix=f"/{cfg.name_prefix}/{cfg.stack}",
        log_retention_days=cfg.observability.log_retention_days,
        alert_emails=cfg.observability.alert_emails,
        alert_https_endpoints=cfg.observability.alert_https_endpoints,
        error_rate_percent=cfg.observability.error_rate_percent,
        cpu_percent=cfg.observability.cpu_percent,
        memory_percent=cfg.observability.memory_percent,
        p95_latency_ms=cfg.observability.p95_latency_ms,
        db_max_connections=cfg.database.max_connections,
        app_db_pool_size=cfg.app.postgres_pool_size,
        load_balancer_arn_suffix=load_balancer.arn_suffix,
        target_group_arn_suffixes=load_balancer.target_group_arn_suffixes,
        app_asg_names=app_hosts.autoscaling_group_names,
        db_instance_identifier=database.instance_identifier,
        cache_cluster_ids=cache_member_cluster_ids(cache.replication_group_id, cfg.cache.node_count),
        timescale_instance_id=timescale.instance_id,
        timescale_data_volume_mount=timescale.data_volume_mount,
    ),
)

rotations = SecretRotations(
    f"{base}-secret-rotation",
    SecretRotationsArgs(
        region=cfg.region,
        key_arn=stack_key.key_arn,
        secret_arns=secrets.arns,
        rotation_days=secrets.rotation_days,
        db_instance_identifier=database.instance_identifier,
        db_instance_arn=database.arn,
        replication_group_id=cache.replication_group_id,
        replication_group_arn=cache.arn,
        timescale_instance_id=timescale.instance_id,
        alarm_actions=[monitoring.alert_topic_arn],
        log_retention_days=cfg.observability.log_retention_days,
        master_secret_arn=secrets.master_arn,
        subnet_ids=network.app_subnet_ids,
        security_group_ids=[firewall.app_id],
        database_name=database.database_name,
        reserved_concurrency=cfg.secrets.rotation_reserved_concurrency,
        bootstrap_after=[database, secrets],
        route_out=network.app_route_out,
        timescale_ready=[timescale.ready] if timescale.ready is not None else [],
    ),
)

pulumi.export("environment", cfg.environment)
pulumi.export("stackKeyArn", stack_key.key_arn)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("publicSubnetIds", network.public_subnet_ids)
pulumi.export("appSubnetIds", network.app_subnet_ids)
pulumi.export("dataSubnetIds", network.data_subnet_ids)
pulumi.export("alertTopicArn", monitoring.alert_topic_arn)
# Every alarm the stack owns, including the data tier's own (rotation audit, host auto-recovery),
# so `sarkops verify` checks them all.
pulumi.export("alarmNames", pulumi.Output.all(monitoring.alarm_names, rotations.alarm_names,
                                              timescale.recovery_alarm_name)
              .apply(lambda names: [*names[0], *names[1], names[2]]))
pulumi.export("dashboardName", monitoring.dashboard_name)
pulumi.export("logGroupNames", monitoring.log_group_names)
pulumi.export("dbInstanceIdentifier", database.instance_identifier)
pulumi.export("dbEndpoint", database.endpoint)
pulumi.export("timescaleInstanceId", timescale.instance_id)
pulumi.export("timescaleDataVolumeId", timescale.data_volume_id)
pulumi.export("timescalePrivateIp", timescale.private_ip)
pulumi.export("cacheReplicationGroupId", cache.replication_group_id)
pulumi.export("cachePrimaryEndpoint", cache.primary_endpoint)
pulumi.export("secretArns", secrets.secret_arns)
pulumi.export("serviceUrl", load_balancer.service_url)
pulumi.export("loadBalancerArn", load_balancer.load_balancer_arn)
pulumi.export("loadBalancerDnsName", load_balancer.dns_name)
pulumi.export("httpsListenerArn", load_balancer.https_listener_arn)
pulumi.export("httpListenerArn", load_balancer.http_listener_arn)
pulumi.export("targetGroupArns", [load_balancer.target_group_arns[v] for v in versions])
pulumi.export("appAutoScalingGroupName", app_hosts.autoscaling_group_names[cfg.app.release_tag])
pulumi.export("appSecurityGroupId", firewall.app_id)
pulumi.export("loadBalancerSecurityGroupId", firewall.load_balancer_id)
pulumi.export("accessLogBucket", load_balancer.access_log_bucket)
