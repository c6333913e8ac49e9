"""Policy evaluation through the SDK's analyzer servicer, in the engine's order and config rules."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi_policy
import pytest

from sarkops.errors import PolicyPackError
from sarkops.plan.policy_runner import LoadedPack, PolicyReport, evaluate, load_pack
from sarkops.plan.project import load_project, resolve_config
from sarkops.plan.runtime import Recording, plain, run_program
from tests.conftest import FIXTURES

DEMO = FIXTURES / "packs" / "demo"
PACK = "demo-policies"


def recording(name: str) -> tuple[Recording, dict[str, str]]:
    project = load_project(FIXTURES / "projects" / name)
    config = resolve_config(project, "test")
    rec = run_program(project.dir, project=project.name, stack="test", config=config.values,
                      secret_keys=config.secret_keys)
    return rec, config.values


@pytest.fixture(scope="module")
def demo() -> LoadedPack:
    return load_pack(DEMO)


@pytest.fixture(scope="module")
def webapp() -> tuple[Recording, dict[str, str]]:
    return recording("webapp")


@pytest.fixture(scope="module")
def insecure() -> tuple[Recording, dict[str, str]]:
    return recording("insecure")


def run(target: tuple[Recording, dict[str, str]], pack: LoadedPack,
        pack_config: Mapping[str, Any] | None = None) -> PolicyReport:
    rec, config = target
    return evaluate(rec, [pack], [pack_config], config=config)


def found(report: PolicyReport, policy: str) -> list[tuple[str, str, str]]:
    """(level, resource name, detail) of one policy's violations."""
    return [(v.enforcement_level, v.urn.rsplit("::", 1)[-1], v.detail) for v in report.violations if v.policy == policy]


# --- loading ------------------------------------------------------------------------------

def test_load_pack_captures_the_pack_without_serving(demo: LoadedPack) -> None:
    assert demo.name == PACK
    assert demo.version == "0.2.0"  # from PulumiPolicy.yaml
    assert [p.name for p in demo.policies] == [
        "demo-rds-hardening", "demo-resources-in-components", "demo-bucket-managed-by-tag",
        "demo-ssm-parameter-secure", "demo-rds-password-length"]
    assert demo.enforcement_level == pulumi_policy.EnforcementLevel.ADVISORY
    assert pulumi_policy.PolicyPack.__module__ == "pulumi_policy.policy"  # the real one is back


def write_pack(tmp_path: Path, main: str) -> Path:
    (tmp_path / "__main__.py").write_text(textwrap.dedent(main))
    return tmp_path


def test_load_pack_errors_name_the_dir(tmp_path: Path) -> None:
    with pytest.raises(PolicyPackError, match=rf"{tmp_path}: not a policy pack \(no __main__.py\)"):
        load_pack(tmp_path)
    write_pack(tmp_path, "x = 1\n")
    with pytest.raises(PolicyPackError, match=rf"policy pack {tmp_path}: __main__.py never constructs a PolicyPack"):
        load_pack(tmp_path)
    write_pack(tmp_path, "import missing_rules_module\n")
    with pytest.raises(PolicyPackError, match=r"__main__.py failed: ModuleNotFoundError: .*missing_rules_module.*"
                                              r"__main__.py:1\)"):
        load_pack(tmp_path)


# --- engine order -------------------------------------------------------------------------

def test_remediation_runs_before_validation(webapp: tuple[Recording, dict[str, str]], demo: LoadedPack) -> None:
    report = run(webapp, demo)
    bucket = webapp[0].one("aws:s3/bucket:Bucket")
    assert found(report, "demo-bucket-managed-by-tag") == [("remediate", "app-assets", "remediated: tags")]
    assert report.remediations[0].changed == {
        "tags": ({"Environment": "test"}, {"Environment": "test", "ManagedBy": "pulumi"})}
    assert report.inputs[bucket.urn]["tags"]["ManagedBy"] == "pulumi"
    # The same rule as plain validation (no remediation) fails on the program's own inputs.
    report = run(webapp, demo, {"demo-bucket-managed-by-tag": "mandatory"})
    assert found(report, "demo-bucket-managed-by-tag") == [
        ("mandatory", "app-assets", "Bucket must be tagged ManagedBy=pulumi.")]
    assert report.remediations == []


def test_unknown_during_preview_is_advisory(webapp: tuple[Recording, dict[str, str]], demo: LoadedPack) -> None:
    assert found(run(webapp, demo), "demo-ssm-parameter-secure") == [(
        "advisory", "app-vpc-ipv6",
        "can't run policy 'demo-ssm-parameter-secure' from policy pack 'demo-policies@v0.2.0' during preview: "
        "string value at .value can't be known during preview")]


def test_resource_rule_sees_unwrapped_secret_inputs(webapp: tuple[Recording, dict[str, str]],
                                                    demo: LoadedPack) -> None:
    password = plain(webapp[0].one("random:index/randomPassword:RandomPassword").outputs["result"])
    assert found(run(webapp, demo), "demo-rds-password-length") == [
        ("advisory", "app-db", f"master password {password!r} is shorter than 32 characters.")]


def test_secure_program_has_no_mandatory_violation(webapp: tuple[Recording, dict[str, str]],
                                                   demo: LoadedPack) -> None:
    report = run(webapp, demo)
    assert report.mandatory == []
    assert found(report, "demo-resources-in-components") == []


def test_insecure_program(insecure: tuple[Recording, dict[str, str]], demo: LoadedPack) -> None:
    report = run(insecure, demo)
    assert found(report, "demo-rds-hardening") == [
        ("mandatory", "public-db", "RDS instance must not be publicly accessible."),
        ("mandatory", "public-db", "backupRetentionPeriod must be at least 7 days, got 0."),
    ]
    assert report.mandatory[0].severity == "high"
    assert report.mandatory[0].message.startswith("RDS instances are private and keep backups.\n")
    # The stack rule follows parent links: the db's parent is the root stack, as under the engine.
    assert found(report, "demo-resources-in-components") == [
        ("advisory", "public-db", "public-db is not inside a component.")]


# --- config -------------------------------------------------------------------------------

def test_effective_config_starts_from_schema_defaults(webapp: tuple[Recording, dict[str, str]],
                                                      demo: LoadedPack) -> None:
    config = run(webapp, demo).config[PACK]
    assert config["demo-rds-hardening"] == {"enforcementLevel": "mandatory",
                                            "properties": {"minBackupDays": 7, "exempt": []}}
    assert config["demo-rds-password-length"]["properties"] == {"minLength": 32}


def test_threshold_and_levels_from_pack_config(webapp: tuple[Recording, dict[str, str]],
                                               demo: LoadedPack) -> None:
    report = run(webapp, demo, {
        "demo-rds-hardening": {"minBackupDays": 30},
        "demo-rds-password-length": {"enforcementLevel": "disabled"},
    })
    assert found(report, "demo-rds-hardening") == [
        ("mandatory", "app-db", "backupRetentionPeriod must be at least 30 days, got 14.")]
    assert found(report, "demo-rds-password-length") == []


def test_all_sets_every_level_before_per_policy_entries(webapp: tuple[Recording, dict[str, str]],
                                                        demo: LoadedPack) -> None:
    report = run(webapp, demo, {"all": "mandatory", "demo-ssm-parameter-secure": "advisory"})
    levels = {name: entry["enforcementLevel"] for name, entry in report.config[PACK].items()}
    assert levels == {"demo-rds-hardening": "mandatory", "demo-resources-in-components": "mandatory",
                      "demo-bucket-managed-by-tag": "mandatory", "demo-ssm-parameter-secure": "advisory",
                      "demo-rds-password-length": "mandatory"}
    assert [v.policy for v in report.mandatory] == ["demo-rds-password-length", "demo-bucket-managed-by-tag"]


def test_not_applicable_channel(insecure: tuple[Recording, dict[str, str]], demo: LoadedPack) -> None:
    report = run(insecure, demo, {"demo-rds-hardening": {"exempt": ["public-db"]}})
    db = insecure[0].one("aws:rds/instance:Instance")
    assert [(n.pack, n.policy, n.urn, n.reason) for n in report.not_applicable] == [
        (PACK, "demo-rds-hardening", db.urn, "public-db is listed in exempt")]
    assert found(report, "demo-rds-hardening") == []


@pytest.mark.parametrize(("pack_config", "message"), [
    ({"demo-rds-hardening": {"minBackupDays": 0}},
     "policy pack 'demo-policies', policy 'demo-rds-hardening': invalid config: "
     "key 'minBackupDays': 0 is less than the minimum of 1"),
    ({"demo-rds-hardening": {"minBackupDays": "30"}},
     "key 'minBackupDays': '30' is not of type 'integer'"),
    ({"demo-rds-hardening": {"exempt": ["ok", 3]}},
     r"key 'exempt\[1\]': 3 is not of type 'string'"),
    ({"demo-rds-hardening": "strict"},
     "policy 'demo-rds-hardening': enforcement level 'strict' is not allowed "
     r"\(allowed: advisory, mandatory, remediate, disabled\)"),
    ({"demo-no-such-policy": "mandatory"},
     "policy pack 'demo-policies' has no policy 'demo-no-such-policy'"),
])
def test_invalid_pack_config(webapp: tuple[Recording, dict[str, str]], demo: LoadedPack,
                             pack_config: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyPackError, match=message):
        run(webapp, demo, pack_config)


INLINE_PACK = '''
from pulumi_policy import EnforcementLevel, PolicyConfigSchema, PolicyPack, ResourceValidationPolicy


def region(args, report_violation):
    if args.resource_type == "aws:rds/instance:Instance":
        config = args.get_config()
        provider = args.provider
        report_violation(f"{provider.resource_type} {provider.name} region={provider.props['region']} "
                         f"limit={config['limit']} parent={args.opts.parent.rsplit('::', 1)[-1]}")


def broken(args, report_violation):
    if args.resource_type == "aws:ec2/vpc:Vpc":
        raise KeyError("boom")


PolicyPack(
    name="inline",
    policies=[
        ResourceValidationPolicy(
            name="region", description="Region.", validate=region, enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=PolicyConfigSchema(properties={"limit": {"type": "integer", "default": 1}})),
        ResourceValidationPolicy(name="broken", description="Broken.", validate=broken),
    ],
    initial_config={"region": {"limit": 2}, "broken": EnforcementLevel.DISABLED},
)
'''


def test_initial_config_provider_and_options(tmp_path: Path, webapp: tuple[Recording, dict[str, str]]) -> None:
    pack = load_pack(write_pack(tmp_path, INLINE_PACK))
    report = run(webapp, pack)
    # Config travels as a protobuf Struct, so the policy gets 2.0, as it would from the engine.
    assert [v.detail for v in report.violations] == [
        "pulumi:providers:aws default_7_51_1 region=eu-west-1 limit=2.0 parent=app"]
    # An initial-config entry without a level reaches the engine as ADVISORY, which it applies.
    assert report.violations[0].enforcement_level == "advisory"
    assert report.warnings == ["policy pack 'inline': initial_config for 'region' sets no enforcementLevel, which "
                               "the engine applies as advisory; add the level to keep the policy's own"]
    # The file overrides the pack's initial config.
    report = run(webapp, pack, {"region": {"limit": 3}})
    assert "limit=3.0" in report.violations[0].detail


def test_a_policy_that_raises_is_a_pack_error(tmp_path: Path, webapp: tuple[Recording, dict[str, str]]) -> None:
    pack = load_pack(write_pack(tmp_path, INLINE_PACK))
    with pytest.raises(PolicyPackError, match=r"policy pack 'inline': a policy raised KeyError: 'boom' while "
                                              r"evaluating urn:.*::app-vpc \(.*__main__.py:\d+\)"):
        run(webapp, pack, {"broken": "mandatory"})
