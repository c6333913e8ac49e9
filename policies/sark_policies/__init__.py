"""SARK's CrossGuard rules, one module per AWS service. ``POLICIES`` is the whole pack.

Importing this package has no side effects: ``policies/__main__.py`` is the only place that
constructs the ``PolicyPack`` (which starts a gRPC server and blocks), so tests and
``sarkops plan`` can import the rules.
"""

from . import (
    app_settings,
    autoscaling,
    cloudwatch,
    ebs,
    ec2,
    elasticache,
    kms,
    lambdas,
    lb,
    rds,
    s3,
    secretsmanager,
    security_group_hygiene,
    security_groups,
    sns,
    vpc,
    waf,
)

POLICIES = [
    *vpc.POLICIES,
    *cloudwatch.POLICIES,
    *sns.POLICIES,
    *ec2.POLICIES,
    *lb.POLICIES,
    *s3.POLICIES,
    *security_groups.POLICIES,
    *app_settings.POLICIES,
    *kms.POLICIES,
    *secretsmanager.POLICIES,
    *rds.POLICIES,
    *elasticache.POLICIES,
    *ebs.POLICIES,
    *autoscaling.POLICIES,
    *security_group_hygiene.POLICIES,
    *waf.POLICIES,
    *lambdas.POLICIES,
]
