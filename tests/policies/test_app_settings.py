"""App settings that pass through infrastructure: parameters and user data, the exact messages."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from sark_policies import app_settings
from tests.policies.helpers import by_name, check_resource

PARAMETER = app_settings.SSM_PARAMETER
LT = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"

SETTINGS = by_name(app_settings.POLICIES, "aws-ssm-parameter-configure-app-security-settings")
USER_DATA = by_name(app_settings.POLICIES, "aws-ec2-user-data-configure-app-security-settings")
PLAINTEXT = by_name(app_settings.POLICIES, "aws-ssm-parameter-disallow-plaintext-secrets")


def parameter(name: str, value: str, key: str = "insecureValue") -> dict[str, Any]:
    return {"name": f"/sark/production/env/{name}", "type": "String", key: value}


@pytest.mark.parametrize(("name", "value"), [
    ("DEBUG", "false"), ("ENVIRONMENT", "production"), ("VERIFY_SSL", "true"),
    ("CORS_ORIGINS", "https://sark.example.com,https://admin.example.com"), ("LOG_LEVEL", "INFO"),
])
def test_safe_settings_pass(name: str, value: str) -> None:
    assert check_resource(SETTINGS, PARAMETER, parameter(name, value)).violations == []


@pytest.mark.parametrize(("name", "value", "key", "message"), [
    ("DEBUG", "true", "insecureValue", "DEBUG is 'true'; it must be 'false'"),
    ("DEBUG", "1", "value", "DEBUG is '1'; it must be 'false'"),
    ("ENVIRONMENT", "development", "insecureValue", "ENVIRONMENT is 'development'; it must be 'production'"),
    ("VERIFY_SSL", "false", "insecureValue", "VERIFY_SSL is 'false'; it must be 'true'"),
    ("CORS_ORIGINS", "https://a.example.com,*", "insecureValue",
     "CORS_ORIGINS contains '*'; it must list trusted origins only"),
    ("CORS_ORIGINS", '["*"]', "insecureValue", "CORS_ORIGINS contains '*'; it must list trusted origins only"),
])
def test_unsafe_settings_fail(name: str, value: str, key: str, message: str) -> None:
    result = check_resource(SETTINGS, PARAMETER, parameter(name, value, key))
    assert result.messages == [f"Parameter /sark/production/env/{name}: {message} (checklist 3.1)."]


def test_environment_comes_from_config() -> None:
    props = parameter("ENVIRONMENT", "staging")
    assert check_resource(SETTINGS, PARAMETER, props, config={"environment": "staging"}).violations == []


# --- user data ---------------------------------------------------------------------------------

def template(text: str) -> dict[str, Any]:
    return {"userData": base64.b64encode(text.encode()).decode()}


def test_user_data_without_settings_passes() -> None:
    assert check_resource(USER_DATA, LT, template("#cloud-config\npackages: [git]\n")).violations == []


def test_user_data_with_safe_settings_passes() -> None:
    text = "write_files:\n  - content: |\n      DEBUG=false\n      ENVIRONMENT=production\n      VERIFY_SSL=true\n"
    assert check_resource(USER_DATA, LT, template(text)).violations == []


@pytest.mark.parametrize(("text", "message"), [
    ("DEBUG=true\n", "userData sets DEBUG is 'true'; it must be 'false' (checklist 3.1)."),
    ('environment:\n  "ENVIRONMENT": "development"\n',
     "userData sets ENVIRONMENT is 'development'; it must be 'production' (checklist 3.1)."),
    ("export CORS_ORIGINS='*'\n", "userData sets CORS_ORIGINS contains '*'; it must list trusted origins only "
                                  "(checklist 3.1)."),
    ("VERIFY_SSL: false\n", "userData sets VERIFY_SSL is 'false'; it must be 'true' (checklist 3.1)."),
])
def test_unsafe_user_data_fails(text: str, message: str) -> None:
    assert check_resource(USER_DATA, LT, template(text)).messages == [message]


def test_instance_plain_user_data_is_checked() -> None:
    assert check_resource(USER_DATA, INSTANCE, {"userData": "DEBUG=1\n"}).messages == [
        "userData sets DEBUG is '1'; it must be 'false' (checklist 3.1)."]


# --- secrets in plain parameters -----------------------------------------------------------------

def test_secret_arn_in_plain_parameter_passes() -> None:
    props = {"name": "/sark/production/secret-arns/POSTGRES_PASSWORD", "type": "String",
             "insecureValue": "arn:aws:secretsmanager:us-east-1:123456789012:secret:sark/POSTGRES_PASSWORD-AbCdEf"}
    assert check_resource(PLAINTEXT, PARAMETER, props).violations == []


def test_secure_string_is_not_plaintext() -> None:
    props = {"name": "/legacy/DB_PASSWORD", "type": "SecureString", "value": "x"}
    assert check_resource(PLAINTEXT, PARAMETER, props).violations == []


def test_ordinary_setting_is_not_a_secret() -> None:
    assert check_resource(PLAINTEXT, PARAMETER, parameter("POSTGRES_HOST", "db.internal")).violations == []


@pytest.mark.parametrize("name", ["POSTGRES_PASSWORD", "SPLUNK_HEC_TOKEN", "DATADOG_API_KEY", "SECRET_KEY"])
def test_literal_secret_in_plain_parameter_fails(name: str) -> None:
    props = {"name": f"/sark/production/env/{name}", "type": "String", "value": "literal"}
    assert check_resource(PLAINTEXT, PARAMETER, props).messages == [
        f"Parameter /sark/production/env/{name} is a plain String parameter that looks like it holds a secret; store "
        "the value in Secrets Manager and publish only its ARN."]
