"""Config map building from Pulumi.yaml and Pulumi.<stack>.yaml, as the Pulumi CLI builds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sarkops.errors import ConfigFileError
from sarkops.plan.project import load_project, parse_override, resolve_config
from tests.conftest import FIXTURES

WEBAPP = FIXTURES / "projects" / "webapp"


def write_project(tmp_path: Path, project: str, stack: str) -> Path:
    (tmp_path / "Pulumi.yaml").write_text(project)
    (tmp_path / "Pulumi.dev.yaml").write_text(stack)
    (tmp_path / "__main__.py").write_text("")
    return tmp_path


def test_fixture_config_as_the_cli_passes_it() -> None:
    config = resolve_config(load_project(WEBAPP), "test")
    assert config.values == {
        "aws:region": "eu-west-1",
        "aws:defaultTags": '{"tags":{"Project":"webapp"}}',  # objects are JSON text
        "webapp:environment": "test",
        "webapp:backupRetentionDays": "14",  # numbers too
        "webapp:publiclyAccessible": "false",  # a Pulumi.yaml default, JSON-encoded
        "webapp:dbInstanceClass": "db.t4g.small",  # a Pulumi.yaml default
        "webapp:apiToken": "mock-secret-apiToken",  # secure: cannot be decrypted offline
    }
    assert config.secret_keys == ["webapp:apiToken"]


def test_overrides_win_and_default_to_the_project_namespace() -> None:
    config = resolve_config(load_project(WEBAPP), "test",
                            [("backupRetentionDays", "30"), ("aws:region", "us-east-2")])
    assert config.values["webapp:backupRetentionDays"] == "30"
    assert config.values["aws:region"] == "us-east-2"


def test_override_of_a_secret_key_stays_secret() -> None:
    config = resolve_config(load_project(WEBAPP), "test", [("apiToken", "typed-in")])
    assert config.values["webapp:apiToken"] == "typed-in"
    assert "webapp:apiToken" in config.secret_keys


def test_plain_text_secret_is_refused() -> None:
    with pytest.raises(ConfigFileError, match=r"Pulumi\.plaintext\.yaml: configuration key 'webapp:apiToken' is "
                                              r"declared `secret: true` in Pulumi\.yaml but is stored in plain text"):
        resolve_config(load_project(WEBAPP), "plaintext")


def test_wrong_type_is_refused() -> None:
    with pytest.raises(ConfigFileError, match=r"Pulumi\.badtype\.yaml: configuration key "
                                              r"'webapp:backupRetentionDays' must be of type 'integer'.*'two weeks'"):
        resolve_config(load_project(WEBAPP), "badtype")


def test_wrong_type_from_an_override_names_the_override() -> None:
    with pytest.raises(ConfigFileError, match=r"^-c publiclyAccessible: .* must be of type 'boolean'"):
        resolve_config(load_project(WEBAPP), "test", [("publiclyAccessible", "yes")])


def test_missing_stack_file_is_named() -> None:
    with pytest.raises(ConfigFileError, match=r"Pulumi\.staging\.yaml: stack file not found"):
        resolve_config(load_project(WEBAPP), "staging")


def test_missing_required_value(tmp_path: Path) -> None:
    project = write_project(tmp_path, "name: p\nruntime: python\nconfig:\n  owner:\n    type: string\n",
                            "config: {}\n")
    with pytest.raises(ConfigFileError, match="stack 'dev' is missing configuration value 'p:owner'"):
        resolve_config(load_project(project), "dev")


def test_short_form_defaults_and_nested_secure_values(tmp_path: Path) -> None:
    project = write_project(
        tmp_path,
        "name: p\nruntime: python\nmain: app/\nconfig:\n  size: 3\n  aws:region: eu-north-1\n"
        "  db:\n    description: connection settings\n",
        "config:\n  p:db:\n    user: app\n    password:\n      secure: v1:abc\n",
    )
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__main__.py").write_text("")
    loaded = load_project(project)
    assert loaded.main == tmp_path / "app" / "__main__.py"
    config = resolve_config(loaded, "dev")
    assert config.values == {"p:size": "3", "aws:region": "eu-north-1",
                             "p:db": '{"user":"app","password":"mock-secret-db"}'}
    assert config.secret_keys == ["p:db"]


def test_unprefixed_stack_key_is_refused(tmp_path: Path) -> None:
    project = write_project(tmp_path, "name: p\nruntime: python\n", "config:\n  region: x\n")
    with pytest.raises(ConfigFileError, match="configuration key 'region' must be of the form <namespace>:<name>"):
        resolve_config(load_project(project), "dev")


def test_esc_environment_is_a_warning(tmp_path: Path) -> None:
    project = write_project(tmp_path, "name: p\nruntime: python\n", "environment:\n  - shared\nconfig: {}\n")
    assert "Pulumi ESC" in resolve_config(load_project(project), "dev").warnings[0]


def test_project_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="no Pulumi project file"):
        load_project(tmp_path)
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    with pytest.raises(ConfigFileError, match=r"program file .*__main__\.py does not exist"):
        load_project(tmp_path)


@pytest.mark.parametrize("text", ["no-equals-sign", "=value"])
def test_malformed_override(text: str) -> None:
    with pytest.raises(ConfigFileError, match="expected KEY=VALUE"):
        parse_override(text)


def test_override_value_may_contain_equals() -> None:
    assert parse_override("aws:profile=a=b") == ("aws:profile", "a=b")
