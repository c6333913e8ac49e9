"""SARK production stack: composes the components; every detail lives in them or in config."""

import pulumi

from components.kms import StackKey, StackKeyArgs
from components.network import ExistingVpc, Network, NetworkArgs
from components.security_groups import SecurityGroups, SecurityGroupsArgs
from stack_config import load_config

cfg = load_config()
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

pulumi.export("environment", cfg.environment)
pulumi.export("stackKeyArn", stack_key.key_arn)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("publicSubnetIds", network.public_subnet_ids)
pulumi.export("appSubnetIds", network.app_subnet_ids)
pulumi.export("dataSubnetIds", network.data_subnet_ids)
