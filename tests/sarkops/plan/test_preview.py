"""Preview fidelity: first-preview unknowns, provider Check (names), prior state, baseline, strict config.

Small fixture programs pin each behaviour; the production tests at the end check what
``sarkops plan`` reports for the real stack.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from sarkops.errors import ConfigFileError, PolicyPackError
from sarkops.plan import PlanResult, render_text, run_plan, to_json
from sarkops.plan.provider import names
from sarkops.plan.render.markdown import render_summary
from sarkops.plan.runtime import UNKNOWN, Recording, is_unknown, masked
from sarkops.plan.state import StateFileError, parse_state
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[3]
STATEFUL = FIXTURES / "projects" / "stateful"
STATE = FIXTURES / "states" / "stateful.json"
WEBAPP = FIXTURES / "projects" / "webapp"
DEMO = FIXTURES / "packs" / "demo"
Record = Callable[..., Recording]


def sarkops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sarkops", *args], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=120)


# --- 1. unknowns ---------------------------------------------------------------------------

def _network(seen: list[Any]) -> Callable[[], None]:
    def program() -> None:
        vpc = aws.ec2.Vpc("net", cidr_block="10.0.0.0/16")
        vpc.id.apply(seen.append)
        group = aws.ec2.SecurityGroup("web", vpc_id=vpc.id, description="web")
        aws.vpc.SecurityGroupIngressRule("https", security_group_id=group.id, cidr_ipv4="10.0.0.0/16",
                                         ip_protocol="tcp", from_port=443, to_port=443)
        aws.ec2.get_subnet_output(id=aws.ec2.Subnet("a", vpc_id=vpc.id, cidr_block="10.0.1.0/24").id)
        aws.get_availability_zones()
        pulumi.export("vpcArn", vpc.arn)
        pulumi.export("cidr", vpc.cidr_block)
    return program


def test_first_preview_computed_outputs_are_unknown_and_flow_into_inputs(record: Record) -> None:
    seen: list[Any] = []
    rec = record(_network(seen), first_preview=True)
    vpc, group = rec.one("aws:ec2/vpc:Vpc"), rec.one("aws:ec2/securityGroup:SecurityGroup")
    rule = rec.one("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert is_unknown(vpc.outputs["id"])
    assert is_unknown(vpc.outputs["arn"])
    assert vpc.outputs["cidrBlock"] == "10.0.0.0/16"  # an input echoes back known
    assert is_unknown(group.inputs["vpcId"])  # derived from another new resource's id
    assert is_unknown(rule.inputs["securityGroupId"])
    assert rule.inputs["cidrIpv4"] == "10.0.0.0/16"
    assert seen == []  # the apply never ran on the unknown id
    assert masked(rec.outputs) == {"vpcArn": "[unknown]", "cidr": "10.0.0.0/16"}
    # Data sources still answer, unless an argument is unknown (then the SDK does not call them).
    assert [token for token, _ in rec.invokes] == ["aws:index/getAvailabilityZones:getAvailabilityZones"]


def test_known_outputs_keep_mock_values(record: Record) -> None:
    seen: list[Any] = []
    rec = record(_network(seen))
    assert rec.one("aws:ec2/securityGroup:SecurityGroup").inputs["vpcId"].startswith("vpc-0")
    assert len(seen) == 1
    assert seen[0].startswith("vpc-0")
    assert "aws:ec2/getSubnet:getSubnet" in [token for token, _ in rec.invokes]


def test_unknowns_print_as_unknown_and_secrets_stay_secret() -> None:
    result = run_plan(WEBAPP, "test", pack_dirs=[DEMO])
    document = to_json(result)
    by_name = {r["name"]: r for r in document["resources"]}
    assert by_name["app-db"]["outputs"]["endpoint"] == "[unknown]"
    assert by_name["app-db"]["inputs"]["password"] == "[secret]"  # unknown, but secret first
    assert document["outputs"]["dbPassword"] == "[secret]"
    assert document["outputs"]["dbEndpoint"] == "[unknown]"
    assert "dbEndpoint: [unknown]" in render_text(result)


# --- 2. policies that cannot run -------------------------------------------------------------

def test_policy_on_unknown_input_is_reported_as_not_run_with_the_cli_wording() -> None:
    result = run_plan(WEBAPP, "test", pack_dirs=[DEMO])
    document = to_json(result)
    assert document["notRun"] == [
        {"pack": "demo-policies", "policy": "demo-rds-password-length", "kind": "policy",
         "urn": "urn:pulumi:test::webapp::fixture:app:WebApp$aws:rds/instance:Instance::app-db",
         "reason": "string value at .password can't be known during preview"},
        {"pack": "demo-policies", "policy": "demo-ssm-parameter-secure", "kind": "policy",
         "urn": "urn:pulumi:test::webapp::fixture:app:WebApp$aws:ssm/parameter:Parameter::app-vpc-ipv6",
         "reason": "string value at .value can't be known during preview"},
    ]
    advisory = next(v for v in document["violations"] if v["policy"] == "demo-rds-password-length")
    assert advisory["enforcementLevel"] == "advisory"
    assert advisory["message"].endswith("can't run policy 'demo-rds-password-length' from policy pack "
                                        "'demo-policies@v0.2.0' during preview: string value at .password can't "
                                        "be known during preview")
    text = render_text(result)
    assert "Policies not run during the preview (2 policies, 2 results): these rules were NOT applied" in text
    assert document["summary"]["passed"] is True  # advisory only: exit 0


# --- 3. names ------------------------------------------------------------------------------

URN = "urn:pulumi:test::p::{type}::{name}"


def _check(type_: str, logical: str, **inputs: Any) -> names.NameCheck:
    return names.check(type_, logical, URN.format(type=type_, name=logical), inputs, is_unknown=is_unknown)


@pytest.mark.parametrize("type_", sorted(t for t, rule in names.RULES.items() if rule.generated))
def test_every_generated_name_is_known_and_within_the_aws_limit(type_: str) -> None:
    rule = names.RULES[type_]
    result = _check(type_, "app-a1")
    assert result.failures == []
    name = result.filled[rule.property]
    suffix = names.random_suffix(URN.format(type=type_, name="app-a1"))
    assert name.endswith(suffix)
    assert len(suffix) == 7
    assert names.limit_problems(rule, name) == []
    assert _check(type_, "app-a1").filled == result.filled  # deterministic


@pytest.mark.parametrize(("type_", "logical", "expected"), [
    ("aws:lb/targetGroup:TargetGroup", "web", "web-{s}"),
    ("aws:rds/instance:Instance", "orders", "orders{s}"),  # NewUniqueHex(name, 7, 255): no separator
    ("aws:s3/bucket:Bucket", "Assets", "assets-{s}"),  # lower-cased before the suffix
    ("aws:elasticache/replicationGroup:ReplicationGroup", "Cache", "cache-{s}"),
    ("aws:kms/alias:Alias", "key", "alias/key-{s}"),
    ("aws:iam/role:Role", "worker", "worker-{s}"),
])
def test_auto_name_shape_per_type(type_: str, logical: str, expected: str) -> None:
    suffix = names.random_suffix(URN.format(type=type_, name=logical))
    assert _check(type_, logical).filled == {names.RULES[type_].property: expected.format(s=suffix)}


def test_fifo_topic_name_gets_the_suffix() -> None:
    filled = _check("aws:sns/topic:Topic", "events", fifoTopic=True).filled["name"]
    assert re.fullmatch(r"events-[0-9a-f]{7}\.fifo", filled)


def test_generated_name_over_the_limit_fails_like_the_provider() -> None:
    result = _check("aws:lb/targetGroup:TargetGroup", "sark-production-lb-v0-1-0-tg")
    assert result.filled == {}
    assert [(f.property, f.message) for f in result.failures] == [(
        "name", "could not make instance of 'aws:lb/targetGroup:TargetGroup': name 'sark-production-lb-v0-1-0-tg-' "
                "plus 7 random chars is longer than maximum length 32")]


def test_explicit_name_breaking_aws_limits_fails_with_the_validator_message() -> None:
    result = _check("aws:lb/loadBalancer:LoadBalancer", "alb", name="internal-" + "x" * 30)
    assert [f.message for f in result.failures] == [
        f'"name" cannot be longer than 32 characters: "internal-{"x" * 30}". Examine values at \'alb.name\'.',
        f'"name" cannot begin with "internal-": "internal-{"x" * 30}". Examine values at \'alb.name\'.']
    result = _check("aws:rds/instance:Instance", "db", identifier="Orders_DB")
    assert [f.message.split(". Examine")[0] for f in result.failures] == [
        '"identifier" may only contain characters matching [0-9a-z-]+: "Orders_DB"',
        '"identifier" must begin with a lowercase letter: "Orders_DB"']


def test_unknown_explicit_name_is_not_checked() -> None:
    assert _check("aws:lb/targetGroup:TargetGroup", "tg", name=UNKNOWN).failures == []


def test_names_are_known_in_a_first_preview_and_become_inputs(record: Record) -> None:
    rec = record(lambda: aws.s3.Bucket("Logs"), first_preview=True)
    bucket = rec.one("aws:s3/bucket:Bucket")
    assert re.fullmatch(r"logs-[0-9a-f]{7}", bucket.inputs["bucket"])
    assert bucket.outputs["bucket"] == bucket.inputs["bucket"]
    assert is_unknown(bucket.outputs["arn"])


def test_check_failure_fails_the_plan(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: tg\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  aws:region: us-east-1\n")
    (tmp_path / "__main__.py").write_text(
        "import pulumi_aws as aws\naws.lb.TargetGroup('a-target-group-with-a-long-name', port=80, protocol='HTTP')\n")
    result = sarkops("plan", "--project", str(tmp_path), "--stack", "dev", "--json")
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert [(f["type"], f["property"]) for f in document["checkFailures"]] == [
        ("aws:lb/targetGroup:TargetGroup", "name")]
    assert document["summary"]["passed"] is False


# --- 4. prior state ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stateful() -> PlanResult:
    return run_plan(STATEFUL, "test", state_file=STATE)


def test_state_gives_each_resource_its_operation(stateful: PlanResult) -> None:
    ops = {c.urn.rsplit("::", 1)[-1]: (c.op, c.changed_inputs, c.replace_keys) for c in stateful.changes}
    assert ops == {
        "data-key": ("same", (), ()),
        "orders-db": ("replace", ("username",), ("username",)),
        "assets": ("update", ("tags",), ()),
        "worker": ("same", (), ()),
        "feature-flag": ("create", (), ()),
        "old-alerts": ("delete", (), ()),
        "scratch": ("delete", (), ()),
    }


def test_existing_resources_keep_their_recorded_outputs(stateful: PlanResult) -> None:
    rec = stateful.recording
    state = json.loads(STATE.read_text())["deployment"]["resources"]
    key_state = next(r for r in state if r["type"] == "aws:kms/key:Key")
    assert rec.one("aws:kms/key:Key").outputs["arn"] == key_state["outputs"]["arn"]
    assert rec.one("aws:kms/key:Key").outputs["id"] == key_state["id"]
    assert is_unknown(rec.one("aws:ssm/parameter:Parameter").outputs["arn"])  # created
    assert is_unknown(rec.one("aws:rds/instance:Instance").outputs["endpoint"])  # replaced: a create


def test_replacing_or_deleting_protected_resources_are_errors(stateful: PlanResult) -> None:
    errors = [(e.urn.rsplit("::", 1)[-1], e.op, e.when) for e in stateful.state_errors]
    assert errors == [("orders-db", "replace", "preview"), ("scratch", "delete", "update")]
    assert stateful.state_errors[0].message.startswith(
        'unable to replace resource "urn:pulumi:test::stateful::aws:rds/instance:Instance::orders-db"\n'
        "as it is currently marked for protection.")
    assert "cannot be deleted\nbecause it is protected" in stateful.state_errors[1].message
    assert stateful.failed


def test_state_in_json_and_text(stateful: PlanResult) -> None:
    document = to_json(stateful)
    by_name = {r["name"]: r for r in document["resources"]}
    assert by_name["assets"]["op"] == "update"
    assert by_name["assets"]["changedInputs"] == ["tags"]
    assert by_name["orders-db"]["replaceKeys"] == ["username"]
    assert by_name["old-alerts"]["op"] == "delete"
    assert document["summary"]["changes"] == {"create": 1, "delete": 2, "replace": 1, "same": 2, "update": 1}
    text = render_text(stateful)
    # The operation column, then the mark of a resource with a finding (x: fails the plan).
    assert "+-x aws:rds/instance:Instance orders-db [protected] (replace: username; replacement forced by " \
           "username)  <- 1 error\n" in text
    assert " ~  aws:s3/bucket:Bucket assets (update: tags)\n" in text
    assert " -  aws:sns/topic:Topic old-alerts (delete: in the state, not in the program)\n" in text
    assert " -x aws:ebs/volume:Volume scratch (delete: in the state, not in the program)  <- 1 error\n" in text


def test_changing_the_username_back_makes_the_database_same() -> None:
    result = run_plan(STATEFUL, "test", state_file=STATE, overrides=["dbUsername=admin"])
    assert {c.urn.rsplit("::", 1)[-1]: c.op for c in result.changes}["orders-db"] == "same"
    assert [e.op for e in result.state_errors] == ["delete"]


@pytest.mark.parametrize(("document", "message"), [
    ({"version": 2, "deployment": {}}, "deployment version 2 is not supported (allowed: 3"),
    ({"version": 3}, "no `deployment` object"),
    ({"version": 3, "deployment": {"resources": [{"type": "x"}]}}, "resources[0] needs a string `urn` and `type`"),
])
def test_bad_state_file(document: dict[str, Any], message: str) -> None:
    with pytest.raises(StateFileError, match=re.escape(message)):
        parse_state(document, "stack.json")


def test_bad_state_file_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    path.write_text("{not json")
    result = sarkops("plan", "--project", str(STATEFUL), "--stack", "test", "--state", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}: not valid JSON")


# --- 5. baseline ---------------------------------------------------------------------------

def test_baseline_against_a_changed_config(tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    before = sarkops("plan", "--project", str(WEBAPP), "--stack", "test", "--policy-pack", str(DEMO), "--json")
    base.write_text(before.stdout)
    after = sarkops("plan", "--project", str(WEBAPP), "--stack", "test", "--policy-pack", str(DEMO), "--json",
                    "-c", "publiclyAccessible=true", "-c", "backupRetentionDays=3", "--baseline", str(base))
    assert after.returncode == 1, after.stderr  # the new violations are mandatory
    baseline = json.loads(after.stdout)["baseline"]
    db = "urn:pulumi:test::webapp::fixture:app:WebApp$aws:rds/instance:Instance::app-db"
    assert baseline["file"] == str(base)
    assert (baseline["added"], baseline["removed"]) == ([], [])
    assert baseline["changed"] == [{"urn": db, "inputs": ["backupRetentionPeriod", "publiclyAccessible"]}]
    assert [(v["policy"], v["message"].rsplit("\n", 1)[-1]) for v in baseline["newViolations"]] == [
        ("demo-rds-hardening", "RDS instance must not be publicly accessible."),
        ("demo-rds-hardening", "backupRetentionPeriod must be at least 7 days, got 3.")]
    assert baseline["fixedViolations"] == []
    text = sarkops("plan", "--project", str(WEBAPP), "--stack", "test", "--policy-pack", str(DEMO),
                   "-c", "publiclyAccessible=true", "--baseline", str(base)).stdout
    assert text.index("Compared with") < text.index("Resources (")
    assert "  ~ aws:rds/instance:Instance app-db: publiclyAccessible\n" in text
    markdown = render_summary(json.loads(after.stdout))
    assert "**Against the baseline**: 0 added, 0 removed, 1 changed; 2 new and 0 fixed violations." in markdown
    assert "| changed | app-db | backupRetentionPeriod, publiclyAccessible |" in markdown


def test_baseline_that_is_not_a_plan_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    path.write_text('{"hello": 1}')
    result = sarkops("plan", "--project", str(WEBAPP), "--stack", "test", "--baseline", str(path))
    assert result.returncode == 2
    assert "not a `sarkops plan --json` document" in result.stderr


# --- 6. strict configuration -----------------------------------------------------------------

def test_misspelled_stack_key_override_is_exit_2_with_the_closest_key() -> None:
    result = sarkops("plan", "-c", "sark-infra:appMinSise=3")
    assert result.returncode == 2
    assert result.stderr == ("error: -c sark-infra:appMinSise: configuration key 'sark-infra:appMinSise' is not "
                             "declared in Pulumi.yaml (did you mean 'sark-infra:appMinSize'?); declare it there or "
                             "fix the spelling\n")


def test_misspelled_key_in_a_stack_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\nconfig:\n  logLevel:\n    default: INFO\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  p:loglevel: DEBUG\n")
    (tmp_path / "__main__.py").write_text("")
    with pytest.raises(ConfigFileError, match=re.escape(
            f"{tmp_path / 'Pulumi.dev.yaml'}: configuration key 'p:loglevel' is not declared in Pulumi.yaml "
            "(did you mean 'p:logLevel'?)")):
        run_plan(tmp_path, "dev")


def test_other_namespaces_are_not_checked(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  aws:region: us-east-1\n  aws:profile: x\n")
    (tmp_path / "__main__.py").write_text("")
    assert run_plan(tmp_path, "dev").recording.resources == []


def test_misspelled_policy_setting_is_exit_2_naming_file_policy_and_key(tmp_path: Path) -> None:
    path = tmp_path / "policy-config.json"
    path.write_text(json.dumps({"aws-rds-instance-configure-backup-retention": {"minDay": 35}}))
    result = sarkops("plan", "--policy-pack", "policies", "--policy-pack-config", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: {path}: policy pack 'sark-policies', policy 'aws-rds-instance-configure-backup-retention': "
        "invalid config: key 'minDay' is not a setting of this policy (did you mean 'minDays'? settings: ")


def test_policy_setting_of_the_wrong_type_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "policy-config.json"
    path.write_text(json.dumps({"aws-rds-instance-configure-backup-retention": {"minDays": "35"}}))
    with pytest.raises(PolicyPackError, match=re.escape(
            f"{path}: policy pack 'sark-policies', policy 'aws-rds-instance-configure-backup-retention': "
            "invalid config: key 'minDays': '35' is not of type 'integer'")):
        run_plan(ROOT, "production", pack_config_files=[path])


# --- production ----------------------------------------------------------------------------

def test_production_first_preview(production_preview: PlanResult) -> None:
    document = to_json(production_preview)
    assert document["checkFailures"] == []
    assert document["summary"]["mandatory"] == 0
    assert document["outputs"]["loadBalancerDnsName"] == "[unknown]"
    ingress = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
    rules = [r for r in document["resources"] if r["type"] == ingress]
    assert rules
    assert all(r["inputs"]["securityGroupId"] == "[unknown]" for r in rules)
    # Every policy that could not decide is listed, as an advisory with the SDK's wording.
    # Some resource rules wait for a value another new resource creates (an ARN in a policy
    # document or a parameter); in `pulumi up` they run before create, with the value known.
    assert document["notRun"], "first preview of production: some resource rules wait for created values"
    messages = {(v["policy"], v["urn"]): v for v in document["violations"]}
    for entry in document["notRun"]:
        violation = messages[(entry["policy"], entry["urn"])]
        assert violation["enforcementLevel"] == "advisory"
        assert "during preview: " + entry["reason"] in violation["message"]
    # Issue #13: no stack rule is left unable to decide; they run once, after every resource
    # exists, so one that could not decide in a preview would protect nothing before create.
    kinds = {name: info.kind for infos in production_preview.report.policies.values() for name, info in infos.items()}
    assert {kinds[entry["policy"]] for entry in document["notRun"]} == {"resource"}
    assert all(r["op"] == "create" for r in document["resources"])


def test_production_exit_status_and_known_outputs_reproduce_the_previous_results() -> None:
    default = sarkops("plan", "--json")
    assert default.returncode == 0, default.stderr
    known = sarkops("plan", "--json", "--known-outputs")
    assert known.returncode == 0, known.stderr
    document = json.loads(known.stdout)
    # What the plan reported before first-preview semantics: no violation, nothing not run.
    assert (document["violations"], document["notRun"], document["notApplicable"]) == ([], [], [])
    assert document["checkFailures"] == []
    assert not any("[unknown]" in json.dumps(r.get("outputs", {})) for r in document["resources"]
                   if r["type"] != "aws:lb/targetGroup:TargetGroup")


def test_findings_model_puts_deployment_errors_first(stateful: PlanResult) -> None:
    from sarkops.plan.findings import findings

    found = findings(stateful)
    assert [(f.source, f.level, f.rule, f.urn.rsplit("::", 1)[-1]) for f in found] == [
        ("state", "error", "replace", "orders-db"), ("state", "error", "delete", "scratch")]
