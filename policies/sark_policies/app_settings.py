"""The app's own security settings where they pass through infrastructure (anchors section J).

SARK reads DEBUG, ENVIRONMENT, CORS_ORIGINS and VERIFY_SSL from its environment. The stack
publishes them as SSM parameters (``<path>/env/<NAME>``, read by the hosts at service start);
a launch template or instance could also carry them in user data. No anchor rule set covers
them (the checklist's 3.1 does), so these rules are SARK's own:

- DEBUG must be false, ENVIRONMENT production, VERIFY_SSL true, and CORS_ORIGINS must not
  contain ``*``, in parameters and in user data;
- a plain (String) parameter must never hold a secret: names such as ``*_PASSWORD`` or
  ``*_TOKEN`` may only hold the ARN of the Secrets Manager secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity

from ._base import Anchors, policies_of, resource_rule
from .ec2 import INSTANCE, LAUNCH_CONFIGURATION, LAUNCH_TEMPLATE, user_data_text

SSM_PARAMETER = "aws:ssm/parameter:Parameter"

_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|SECRET_KEY|API_KEY|APIKEY|PRIVATE_KEY)$", re.IGNORECASE)
_SECRET_REFERENCE = re.compile(r"^arn:aws[a-z-]*:secretsmanager:")


def _expected(config: Mapping[str, Any]) -> dict[str, str]:
    return {"DEBUG": "false", "ENVIRONMENT": str(config["environment"]), "VERIFY_SSL": "true"}


def setting_problems(name: str, value: str, config: Mapping[str, Any]) -> list[str]:
    """What is wrong with one setting (empty if it is fine or not one of the checked ones)."""
    name = name.upper()
    expected = _expected(config)
    text = value.strip().strip("'\"")
    if name in expected and text.lower() != expected[name]:
        return [f"{name} is {text!r}; it must be {expected[name]!r}"]
    if name == "CORS_ORIGINS" and "*" in [o.strip().strip("'\"") for o in re.split(r"[,\s\[\]]+", text) if o]:
        return ["CORS_ORIGINS contains '*'; it must list trusted origins only"]
    return []


def _parameter_value(props: Mapping[str, Any]) -> str | None:
    for key in ("insecureValue", "value"):
        if isinstance(props.get(key), str):
            return props[key]
    return None


_ENVIRONMENT_CONFIG = {"environment": {"type": "string", "default": "production",
                                       "description": "The ENVIRONMENT value the stack must run with."}}


@resource_rule(
    "aws-ssm-parameter-configure-app-security-settings", [SSM_PARAMETER], Severity.HIGH,
    "Published app settings keep DEBUG off, ENVIRONMENT production, VERIFY_SSL on and CORS "
    "restricted.",
    fix="Publish DEBUG=false, ENVIRONMENT=production, VERIFY_SSL=true and explicit CORS_ORIGINS "
        "(config corsOrigins, never '*').",
    anchors=Anchors(checklist=["Pre-Deployment 2.2", "Pre-Deployment 3.1"]),
    config=_ENVIRONMENT_CONFIG,
)
def parameter_settings(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """SSM parameters named after an app setting hold a safe value."""
    name = args.props.get("name")
    value = _parameter_value(args.props)
    if not isinstance(name, str) or value is None:
        return
    for problem in setting_problems(name.rsplit("/", 1)[-1], value, args.get_config()):
        report_violation(f"Parameter {name}: {problem} (checklist 3.1).", None)


_USER_DATA_SETTING = re.compile(
    r"""['"]?\b(?P<name>DEBUG|ENVIRONMENT|VERIFY_SSL|CORS_ORIGINS)['"]?\s*(?:=|:)\s*(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s#]*)""")


@resource_rule(
    "aws-ec2-user-data-configure-app-security-settings", [INSTANCE, LAUNCH_TEMPLATE, LAUNCH_CONFIGURATION],
    Severity.HIGH,
    "App settings in user data keep DEBUG off, ENVIRONMENT production, VERIFY_SSL on and CORS "
    "restricted.",
    fix="Do not set app settings in user data; publish them as SSM parameters with safe values "
        "(AppHosts does).",
    anchors=Anchors(checklist=["Pre-Deployment 2.2", "Pre-Deployment 3.1"]),
    config=_ENVIRONMENT_CONFIG,
)
def user_data_settings(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """App settings written into user data are safe ones."""
    text = user_data_text(args.resource_type, args.props)
    if text is None:
        return
    seen: set[str] = set()
    for match in _USER_DATA_SETTING.finditer(text):
        for problem in setting_problems(match.group("name"), match.group("value"), args.get_config()):
            if problem not in seen:
                seen.add(problem)
                report_violation(f"userData sets {problem} (checklist 3.1).", None)


@resource_rule(
    "aws-ssm-parameter-disallow-plaintext-secrets", [SSM_PARAMETER], Severity.CRITICAL,
    "Plain SSM parameters never hold secrets; secret-named ones hold a Secrets Manager ARN.",
    fix="Move the value into a Secrets Manager secret (encrypted with the stack key) and publish "
        "the secret's ARN instead.",
    anchors=Anchors(checkov=["CKV_AWS_46"], checklist=["Pre-Deployment 2.1"]),
)
def no_plaintext_secret_parameters(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A String/StringList parameter named like a secret may only reference a secret by ARN."""
    name = args.props.get("name")
    if not isinstance(name, str) or args.props.get("type") == "SecureString":
        return
    if not _SECRET_NAME.search(name.rsplit("/", 1)[-1]):
        return
    value = _parameter_value(args.props)
    if value is not None and not _SECRET_REFERENCE.match(value):
        report_violation(f"Parameter {name} is a plain {args.props.get('type') or 'String'} parameter that looks like "
                         "it holds a secret; store the value in Secrets Manager and publish only its ARN.", None)



POLICIES = policies_of(__name__)
