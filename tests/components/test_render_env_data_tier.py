"""What the data tier needs from sark-render-env (the app hosts' env renderer, app tier's file):
the alternating database logins' user names, and the TimescaleDB CA for verify-full."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_env", ROOT / "components/templates/app/render_env.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


render_env = load()
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class Ssm:
    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = parameters

    def get_paginator(self, _name: str) -> Any:
        parameters = self.parameters

        class Paginator:
            def paginate(self, Path: str, Recursive: bool) -> list[dict[str, Any]]:  # noqa: N803 (boto3's names)
                return [{"Parameters": [{"Name": k, "Value": v} for k, v in parameters.items()
                                        if k.rsplit("/", 1)[0] == Path]}]
        return Paginator()


class Secrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get_secret_value(self, SecretId: str) -> dict[str, str]:  # noqa: N803
        return {"SecretString": self.values[SecretId]}


SETTINGS = {name: "x" for name in render_env.REQUIRED_SETTINGS} | {"POSTGRES_USER": "sark", "TIMESCALE_USER": "sark"}


def parameters(**extra: str) -> dict[str, str]:
    found = {f"/s/env/{k}": v for k, v in SETTINGS.items()}
    found |= {f"/s/secret-arns/{k}": f"arn:{k}" for k in render_env.REQUIRED_SECRETS}
    return found | extra


def test_the_login_secrets_set_user_and_password() -> None:
    secrets = Secrets({"arn:SECRET_KEY": "k" * 64, "arn:VALKEY_PASSWORD": "v" * 64,
                       "arn:POSTGRES_PASSWORD": json.dumps({"username": "sark_app_user_clone", "password": "p1"}),
                       "arn:TIMESCALE_PASSWORD": json.dumps({"username": "sark_clone", "password": "p2"})})
    values, _missing = render_env.collect(Ssm(parameters()), secrets, "/s")
    # The alternating logins win over the static setting (which names the master / owner).
    assert (values["POSTGRES_USER"], values["POSTGRES_PASSWORD"]) == ("sark_app_user_clone", "p1")
    assert (values["TIMESCALE_USER"], values["TIMESCALE_PASSWORD"]) == ("sark_clone", "p2")
    assert values["SECRET_KEY"] == "k" * 64


def test_the_timescale_ca_is_waited_for_then_written(tmp_path: Path) -> None:
    with pytest.raises(render_env.NotReadyError, match=r"waiting for the certificate in /s/tls/timescale-ca\.pem"):
        render_env.tls_files(Ssm(parameters(**{"/s/tls/timescale-ca.pem": "not published yet"})), "/s")
    files = render_env.tls_files(Ssm(parameters(**{"/s/tls/timescale-ca.pem": PEM})), "/s")
    assert files == {"timescale-ca.pem": PEM}
    render_env.write_certificates(files, str(tmp_path))
    written = tmp_path / "timescale-ca.pem"
    assert written.read_text() == PEM
    assert oct(written.stat().st_mode & 0o777) == "0o644"


def test_the_master_login_never_reaches_sarks_environment_only_the_migration_file() -> None:
    secrets = Secrets({"arn:SECRET_KEY": "k" * 64, "arn:VALKEY_PASSWORD": "v" * 64,
                       "arn:POSTGRES_PASSWORD": json.dumps({"username": "sark_app_user", "password": "app"}),
                       "arn:TIMESCALE_PASSWORD": json.dumps({"username": "sark", "password": "ts"}),
                       "arn:POSTGRES_MASTER": json.dumps({"username": "sark", "password": "master"})})
    ssm = Ssm(parameters(**{"/s/secret-arns/POSTGRES_MASTER": "arn:POSTGRES_MASTER"}))
    values, _missing = render_env.collect(ssm, secrets, "/s")
    assert "master" not in values.values()
    assert not any(name.startswith("POSTGRES_MASTER") for name in values)
    assert (values["POSTGRES_USER"], values["POSTGRES_PASSWORD"]) == ("sark_app_user", "app")
    assert render_env.migration_values(ssm, secrets, "/s") == {"POSTGRES_USER": "sark", "POSTGRES_PASSWORD": "master"}
