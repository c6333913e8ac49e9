"""RDS rules: a compliant instance, one mutated property, the exact message."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, Severity

from sark_policies import rds
from tests.policies.helpers import UNKNOWN, Res, by_name, check_resource, check_stack, urn

KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-4222-a333-444455556666"
ROLE = "arn:aws:iam::123456789012:role/sark-db-monitoring"

COMPLIANT: dict[str, Any] = {
    "engine": "postgres", "engineVersion": "15", "publiclyAccessible": False, "storageEncrypted": True,
    "kmsKeyId": KEY, "backupRetentionPeriod": 30, "multiAz": True, "deletionProtection": True,
    "skipFinalSnapshot": False, "finalSnapshotIdentifier": "sark-db-final", "caCertIdentifier": "rds-ca-rsa2048-g1",
    "enabledCloudwatchLogsExports": ["postgresql", "upgrade"], "performanceInsightsEnabled": True,
    "performanceInsightsKmsKeyId": KEY, "monitoringInterval": 60, "monitoringRoleArn": ROLE,
    "iamDatabaseAuthenticationEnabled": True, "autoMinorVersionUpgrade": True, "copyTagsToSnapshot": True,
    "parameterGroupName": "sark-db-params", "password": "generated-elsewhere",
}


def check(name: str, changes: dict[str, Any] | None = None, drop: tuple[str, ...] = (),
          config: dict[str, Any] | None = None) -> list[str]:
    props = {k: v for k, v in {**COMPLIANT, **(changes or {})}.items() if k not in drop}
    return check_resource(by_name(rds.POLICIES, name), rds.INSTANCE, props, config=config).messages


def test_metadata() -> None:
    mandatory = {p.name for p in rds.POLICIES if p.enforcement_level == EnforcementLevel.MANDATORY}
    assert {"aws-rds-instance-disallow-public-access", "aws-rds-instance-disallow-unencrypted-storage",
            "aws-rds-instance-configure-backup-retention", "aws-rds-instance-enable-deletion-protection",
            "aws-rds-instance-require-tls", "aws-rds-instance-disallow-literal-password"} <= mandatory
    advisory = {p.name for p in rds.POLICIES if p.enforcement_level == EnforcementLevel.ADVISORY}
    assert advisory == {"aws-rds-instance-enable-performance-insights", "aws-rds-instance-enable-enhanced-monitoring",
                        "aws-rds-instance-enable-iam-authentication", "aws-rds-instance-enable-copy-tags-to-snapshot"}
    for policy in rds.POLICIES:
        assert policy.remediation_steps
        assert policy.tags, policy.name
    assert by_name(rds.POLICIES, "aws-rds-instance-disallow-public-access").severity == Severity.CRITICAL
    assert "checkov:CKV2_AWS_69" in by_name(rds.POLICIES, "aws-rds-instance-require-tls").tags


@pytest.mark.parametrize("policy", [p.name for p in rds.POLICIES if isinstance(p, ResourceValidationPolicy)])
def test_compliant_instance_passes_every_resource_rule(policy: str) -> None:
    assert check(policy) == []


@pytest.mark.parametrize(("policy", "changes", "drop", "message"), [
    ("aws-rds-instance-disallow-public-access", {"publiclyAccessible": True}, (),
     "publiclyAccessible is true; the database must only be reachable from inside the VPC."),
    ("aws-rds-instance-disallow-public-access", {"publiclyAccessible": "true"}, (),
     "publiclyAccessible is true; the database must only be reachable from inside the VPC."),
    ("aws-rds-instance-disallow-unencrypted-storage", {"storageEncrypted": False}, (),
     "storageEncrypted is not true; data, backups and snapshots would be stored unencrypted."),
    ("aws-rds-instance-disallow-unencrypted-storage", {}, ("kmsKeyId",),
     "kmsKeyId is not set; storage would use the AWS-managed key, not the stack's customer-managed key."),
    ("aws-rds-instance-disallow-unencrypted-storage", {"kmsKeyId": "alias/aws/rds"}, (),
     "kmsKeyId is the AWS-managed alias/aws/rds; use the stack's customer-managed key."),
    ("aws-rds-instance-configure-backup-retention", {"backupRetentionPeriod": 7}, (),
     "backupRetentionPeriod is 7 days; it must be at least 30 days."),
    ("aws-rds-instance-configure-backup-retention", {}, ("backupRetentionPeriod",),
     "backupRetentionPeriod is not set (RDS keeps 1 day); it must be at least 30 days."),
    ("aws-rds-instance-enable-multi-az", {"multiAz": False}, (),
     "multiAz is not true; losing one availability zone would take the database down."),
    ("aws-rds-instance-enable-deletion-protection", {"deletionProtection": False}, (),
     "deletionProtection is not true; one API call could delete the database."),
    ("aws-rds-instance-enable-deletion-protection", {"skipFinalSnapshot": True}, (),
     "skipFinalSnapshot is true; deleting the instance would leave no final snapshot."),
    ("aws-rds-instance-enable-deletion-protection", {}, ("skipFinalSnapshot",),
     "skipFinalSnapshot is not set (the provider's default is true); deleting the instance would leave no final "
     "snapshot."),
    ("aws-rds-instance-enable-deletion-protection", {}, ("finalSnapshotIdentifier",),
     "finalSnapshotIdentifier is not set; RDS cannot take the final snapshot without a name."),
    ("aws-rds-instance-configure-engine-version", {"engineVersion": "13.4"}, (),
     "engineVersion 13.4 is PostgreSQL 13; it must be 14 or newer."),
    ("aws-rds-instance-configure-engine-version", {"engine": "mysql"}, (), "engine is mysql; it must be postgres."),
    ("aws-rds-instance-configure-engine-version", {}, ("engineVersion",),
     "engineVersion is not set; pin PostgreSQL 14 or newer."),
    ("aws-rds-instance-configure-engine-version", {"engineVersion": "latest"}, (),
     "engineVersion latest is not a PostgreSQL version such as 15 or 15.7."),
    ("aws-rds-instance-configure-ca-certificate", {"caCertIdentifier": "rds-ca-2019"}, (),
     "caCertIdentifier is rds-ca-2019; it must be one of rds-ca-rsa2048-g1, rds-ca-rsa4096-g1, rds-ca-ecc384-g1."),
    ("aws-rds-instance-configure-ca-certificate", {}, ("caCertIdentifier",),
     "caCertIdentifier is not set; choose one of rds-ca-rsa2048-g1, rds-ca-rsa4096-g1, rds-ca-ecc384-g1 so the "
     "server certificate does not depend on the region's default CA."),
    ("aws-rds-instance-enable-log-exports", {"enabledCloudwatchLogsExports": ["upgrade"]}, (),
     "enabledCloudwatchLogsExports lacks postgresql; the database's logs would stay on the instance."),
    ("aws-rds-instance-disallow-unencrypted-performance-insights", {}, ("performanceInsightsKmsKeyId",),
     "performanceInsightsKmsKeyId is not set; Performance Insights data (query text) would use the AWS-managed "
     "key, not the stack's customer-managed key."),
    ("aws-rds-instance-enable-performance-insights", {"performanceInsightsEnabled": False}, (),
     "performanceInsightsEnabled is not true; slow queries and waits cannot be analysed."),
    ("aws-rds-instance-enable-enhanced-monitoring", {"monitoringInterval": 0}, (),
     "monitoringInterval is 0 or not set; enhanced monitoring (OS metrics) is off."),
    ("aws-rds-instance-enable-enhanced-monitoring", {}, ("monitoringRoleArn",),
     "monitoringRoleArn is not set; enhanced monitoring needs a role to publish with."),
    ("aws-rds-instance-enable-iam-authentication", {"iamDatabaseAuthenticationEnabled": False}, (),
     "iamDatabaseAuthenticationEnabled is not true; database logins can only use passwords."),
    ("aws-rds-instance-enable-auto-minor-version-upgrade", {"autoMinorVersionUpgrade": False}, (),
     "autoMinorVersionUpgrade is false; PostgreSQL security fixes would not be applied."),
    ("aws-rds-instance-enable-copy-tags-to-snapshot", {"copyTagsToSnapshot": False}, (),
     "copyTagsToSnapshot is not true; snapshots would lose the owner and environment tags."),
])
def test_one_mutation_one_exact_message(policy: str, changes: dict[str, Any], drop: tuple[str, ...],
                                        message: str) -> None:
    assert check(policy, changes, drop) == [message]


def test_thresholds_come_from_config() -> None:
    assert check("aws-rds-instance-configure-backup-retention", config={"minDays": 35}) == [
        "backupRetentionPeriod is 30 days; it must be at least 35 days."]
    assert check("aws-rds-instance-configure-engine-version", {"engineVersion": "14.9"},
                 config={"minMajorVersion": 15}) == ["engineVersion 14.9 is PostgreSQL 14; it must be 15 or newer."]
    assert check("aws-rds-instance-enable-enhanced-monitoring", config={"maxIntervalSeconds": 30}) == [
        "monitoringInterval is 60 s; it must be at most 30 s."]
    assert check("aws-rds-instance-enable-log-exports", {"enabledCloudwatchLogsExports": ["postgresql"]},
                 config={"requiredExports": ["postgresql"]}) == []


def test_unset_auto_minor_upgrade_is_the_safe_default() -> None:
    assert check("aws-rds-instance-enable-auto-minor-version-upgrade", drop=("autoMinorVersionUpgrade",)) == []


def test_key_unknown_during_first_preview_passes() -> None:
    result = check_resource(by_name(rds.POLICIES, "aws-rds-instance-disallow-unencrypted-storage"), rds.INSTANCE,
                            {**COMPLIANT, "kmsKeyId": UNKNOWN})
    assert result.violations == []
    assert result.advisories == []


# --- TLS through the parameter group (stack rule) ------------------------------------------------------

TLS = by_name(rds.POLICIES, "aws-rds-instance-require-tls")
PARAMS_TLS = by_name(rds.POLICIES, "aws-rds-parameter-group-require-tls")


def _tls_stack(parameters: list[dict[str, str]] | None = None, family: str = "postgres15",
               linked: bool = True) -> list[Res]:
    params = Res(rds.PARAMETER_GROUP, "sark-db-params", {
        "name": "sark-db-params-1a2b3c", "family": family,
        "parameters": parameters if parameters is not None else [
            {"name": "rds.force_ssl", "value": "1", "applyMethod": "immediate"},
            {"name": "ssl_min_protocol_version", "value": "TLSv1.2", "applyMethod": "immediate"},
            {"name": "max_connections", "value": "400", "applyMethod": "pending-reboot"}]})
    group_name = "sark-db-params-1a2b3c" if linked else "default.postgres15"
    instance = Res(rds.INSTANCE, "sark-db", {"engine": "postgres", "engineVersion": "15",
                                             "parameterGroupName": group_name},
                   property_dependencies={"parameterGroupName": [params.urn]} if linked else {})
    return [params, instance]


def test_instance_with_a_tls_forcing_parameter_group_passes() -> None:
    assert check_stack(TLS, _tls_stack()).violations == []


def test_parameter_group_found_by_name_without_dependency() -> None:
    resources = _tls_stack()
    resources[1].property_dependencies = {}
    assert check_stack(TLS, resources).violations == []


def test_default_parameter_group_fails() -> None:
    result = check_stack(TLS, _tls_stack(linked=False))
    assert result.violations == [(urn(rds.INSTANCE, "sark-db"),
                                  "RDS instance 'sark-db' uses default.postgres15, which this stack does not define, "
                                  "so nothing forces TLS (rds.force_ssl=1).")]


def _params(parameters: list[dict[str, Any]] | None = None, family: str = "postgres15") -> dict[str, Any]:
    return dict(_tls_stack(parameters, family)[0].props)


def test_force_ssl_0_fails_on_the_parameter_group_itself() -> None:
    result = check_resource(PARAMS_TLS, rds.PARAMETER_GROUP, _params([{"name": "rds.force_ssl", "value": "0"},
                                                                      {"name": "ssl_min_protocol_version",
                                                                       "value": "TLSv1"}]), name="sark-db-params")
    assert result.violations == [
        (urn(rds.PARAMETER_GROUP, "sark-db-params"),
         "rds.force_ssl is 0; it must be 1, or clients may connect without TLS."),
        (urn(rds.PARAMETER_GROUP, "sark-db-params"),
         "ssl_min_protocol_version is TLSv1; it must be one of TLSv1.2, TLSv1.3.")]


def test_parameter_group_without_tls_parameters_fails() -> None:
    assert check_resource(PARAMS_TLS, rds.PARAMETER_GROUP, _params([])).messages == [
        "rds.force_ssl is not set (default 0); it must be 1, or clients may connect without TLS.",
        "ssl_min_protocol_version is not set; it must be one of TLSv1.2, TLSv1.3."]


def test_force_ssl_as_a_number_passes() -> None:
    props = _params([{"name": "rds.force_ssl", "value": 1}, {"name": "ssl_min_protocol_version", "value": "TLSv1.3"}])
    assert check_resource(PARAMS_TLS, rds.PARAMETER_GROUP, props).violations == []


def test_parameter_group_of_another_engine_is_not_checked() -> None:
    assert check_resource(PARAMS_TLS, rds.PARAMETER_GROUP, _params([], family="mysql8.0")).violations == []


def test_parameter_group_linked_by_dependency_decides_with_unknown_name() -> None:
    resources = _tls_stack(family="postgres14")
    resources[1].props = {**resources[1].props, "parameterGroupName": UNKNOWN}
    result = check_stack(TLS, resources)
    assert (result.messages, result.advisories) == (
        ["Parameter group 'sark-db-params' has family postgres14, but RDS instance 'sark-db' runs PostgreSQL 15 "
         "(family postgres15)."], [])


def test_parameter_group_of_another_family_fails() -> None:
    result = check_stack(TLS, _tls_stack(family="postgres14"))
    assert result.messages == ["Parameter group 'sark-db-params' has family postgres14, but RDS instance 'sark-db' "
                               "runs PostgreSQL 15 (family postgres15)."]


def test_minimum_tls_version_from_config() -> None:
    result = check_resource(PARAMS_TLS, rds.PARAMETER_GROUP, _params(), config={"minTlsVersion": "TLSv1.3"})
    assert result.messages == ["ssl_min_protocol_version is TLSv1.2; it must be one of TLSv1.3."]


# --- where the password comes from (stack rule) --------------------------------------------------------

PASSWORD = by_name(rds.POLICIES, "aws-rds-instance-disallow-literal-password")


def _password_stack(source: str | None = "random:index/randomPassword:RandomPassword", **props: Any) -> list[Res]:
    resources = []
    dependencies: dict[str, list[str]] = {}
    if source is not None:
        generator = Res(source, "pw", {"result": "generated", "length": 40})
        resources.append(generator)
        dependencies["password"] = [generator.urn]
    resources.append(Res(rds.INSTANCE, "sark-db", {"engine": "postgres", "password": "generated", **props},
                         property_dependencies=dependencies))
    return resources


def test_generated_password_passes() -> None:
    assert check_stack(PASSWORD, _password_stack()).violations == []


def test_rds_managed_password_passes() -> None:
    resources = [Res(rds.INSTANCE, "sark-db", {"engine": "postgres", "manageMasterUserPassword": True})]
    assert check_stack(PASSWORD, resources).violations == []


def test_literal_password_fails() -> None:
    result = check_stack(PASSWORD, _password_stack(source=None))
    assert result.violations == [(urn(rds.INSTANCE, "sark-db"),
                                  "RDS instance 'sark-db' gets its password from a literal or from stack config, not "
                                  "from a generated value (random.RandomPassword) or RDS (manageMasterUserPassword).")]


def test_password_from_a_random_string_fails() -> None:
    # RandomString's result is not a secret; only RandomPassword is.
    result = check_stack(PASSWORD, _password_stack(source="random:index/randomString:RandomString"))
    assert len(result.violations) == 1


def test_no_password_at_all_fails() -> None:
    result = check_stack(PASSWORD, [Res(rds.INSTANCE, "sark-db", {"engine": "postgres"})])
    assert result.messages == ["RDS instance 'sark-db' has neither manageMasterUserPassword nor a password."]
