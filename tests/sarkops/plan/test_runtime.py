"""The harness: what a run records, in-process, for callables and for project directories."""

from __future__ import annotations

import contextlib
import gc
import json
import warnings
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random
import pytest
from pulumi.runtime import rpc

from sarkops.plan.mock_aws import UnansweredInvokeError
from sarkops.plan.project import load_project, resolve_config
from sarkops.plan.runtime import (
    UNKNOWN,
    Recording,
    contains_secret,
    is_secret,
    is_unknown,
    masked,
    plain,
    run_program,
)
from tests.conftest import FIXTURES

WEBAPP = FIXTURES / "projects" / "webapp"


def run_webapp(*overrides: tuple[str, str], preview: bool = True) -> Recording:
    project = load_project(WEBAPP)
    config = resolve_config(project, "test", list(overrides))
    return run_program(WEBAPP, project=project.name, stack="test", config=config.values,
                       secret_keys=config.secret_keys, preview=preview)


@pytest.fixture(scope="module")
def webapp() -> Recording:
    return run_webapp()


# --- a project directory ------------------------------------------------------------------

def test_records_every_resource_in_construction_order(webapp: Recording) -> None:
    assert [(r.type.split(":")[-1], r.name) for r in webapp.resources] == [
        ("WebApp", "app"), ("Vpc", "app-vpc"), ("Subnet", "app-subnet-eu-west-1a"),
        ("Subnet", "app-subnet-eu-west-1b"), ("SecurityGroup", "app-db-sg"), ("RandomPassword", "app-db-password"),
        ("SubnetGroup", "app-db-subnets"), ("Instance", "app-db"), ("Secret", "app-api-token"),
        ("SecretVersion", "app-api-token-value"), ("Bucket", "app-assets"), ("Instance", "app-web"),
        ("Parameter", "app-vpc-ipv6"),
    ]
    assert all(r.type != "pulumi:pulumi:Stack" for r in webapp.resources)


def test_inputs_are_camel_case_wire_values(webapp: Recording) -> None:
    db = webapp.one("aws:rds/instance:Instance")
    assert db.inputs["storageEncrypted"] is True
    assert db.inputs["backupRetentionPeriod"] == 14.0  # from Pulumi.test.yaml, a float on the wire
    assert db.inputs["instanceClass"] == "db.t4g.small"  # the Pulumi.yaml default
    web = webapp.one("aws:ec2/instance:Instance")
    assert web.inputs["metadataOptions"] == {"httpTokens": "required"}


def test_options_parent_dependencies_and_protect(webapp: Recording) -> None:
    component = webapp.one("fixture:app:WebApp")
    db = webapp.one("aws:rds/instance:Instance")
    password = webapp.one("random:index/randomPassword:RandomPassword")
    group = webapp.one("aws:rds/subnetGroup:SubnetGroup")
    assert component.custom is False
    assert component.parent == webapp.stack_urn
    assert db.parent == component.urn
    assert db.protect is True
    assert password.protect is False
    assert set(db.dependencies) >= {password.urn, group.urn}
    assert db.property_dependencies["password"] == [password.urn]
    assert password.additional_secret_outputs == ["bcryptHash", "result"]


def test_secrets_stay_wrapped(webapp: Recording) -> None:
    db = webapp.one("aws:rds/instance:Instance")
    password = webapp.one("random:index/randomPassword:RandomPassword")
    version = webapp.one("aws:secretsmanager/secretVersion:SecretVersion")
    # additionalSecretOutputs made the RandomPassword result secret, as the engine does.
    assert is_secret(password.outputs["result"])
    assert is_secret(db.inputs["password"])
    assert plain(db.inputs["password"]) == plain(password.outputs["result"])
    assert plain(version.inputs["secretString"]) == "mock-secret-apiToken"
    assert is_secret(webapp.outputs["dbPassword"])
    assert webapp.secret_strings() >= {plain(password.outputs["result"]), "mock-secret-apiToken"}


def test_preview_unknowns(webapp: Recording) -> None:
    # SSM parameter values are secret by schema, so the unknown arrives inside a secret.
    value = webapp.one("aws:ssm/parameter:Parameter").inputs["value"]
    assert is_secret(value)
    assert is_unknown(plain(value))


def unknown_topic_name() -> None:
    vpc = aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/16")
    aws.sns.Topic("topic", display_name=vpc.ipv6_cidr_block)  # the mocks return no ipv6CidrBlock


def test_outputs_the_mocks_do_not_return_are_unknown_in_preview(record: Callable[..., Recording]) -> None:
    topic = record(unknown_topic_name).one("aws:sns/topic:Topic")
    assert topic.inputs["displayName"] == UNKNOWN
    assert masked(topic.inputs)["displayName"] == "[unknown]"


def test_without_preview_they_are_absent(record: Callable[..., Recording]) -> None:
    topic = record(unknown_topic_name, preview=False).one("aws:sns/topic:Topic")
    assert "displayName" not in topic.inputs


def test_stack_outputs_and_component_outputs(webapp: Recording) -> None:
    db = webapp.one("aws:rds/instance:Instance")
    assert webapp.outputs["dbEndpoint"] == db.outputs["endpoint"]
    assert webapp.outputs["dbEndpoint"].endswith(".eu-west-1.rds.amazonaws.com:5432")
    assert webapp.one("fixture:app:WebApp").outputs == {"dbEndpoint": db.outputs["endpoint"]}


def test_invokes_are_recorded(webapp: Recording) -> None:
    tokens = [token for token, _ in webapp.invokes]
    assert tokens == ["aws:index/getAvailabilityZones:getAvailabilityZones", "aws:ec2/getAmi:getAmi"]
    web = webapp.one("aws:ec2/instance:Instance")
    assert web.inputs["ami"].startswith("ami-0")


def test_two_runs_are_identical(webapp: Recording) -> None:
    again = run_webapp()

    def dump(rec: Recording) -> str:
        return json.dumps([[r.urn, masked(r.inputs), masked(r.outputs)] for r in rec.resources]
                          + [masked(rec.outputs)], sort_keys=True)

    assert dump(again) == dump(webapp)


def test_config_override_reaches_the_program() -> None:
    rec = run_webapp(("backupRetentionDays", "30"))
    assert rec.one("aws:rds/instance:Instance").inputs["backupRetentionPeriod"] == 30.0


def test_project_modules_do_not_leak_between_runs() -> None:
    run_program(FIXTURES / "projects" / "failing", project="failing", stack="test",
                config={"failing:mode": "ok", "aws:region": "us-west-2"})
    import sys

    assert "helpers" not in sys.modules


# --- callables ----------------------------------------------------------------------------

def test_callable_with_config_and_secret_keys(record: Callable[..., Recording]) -> None:
    def program() -> None:
        config = pulumi.Config()
        aws.ssm.Parameter("p", type="SecureString", value=config.require_secret("token"))
        aws.sns.Topic("q", display_name=config.require("plain"))

    rec = record(program, {"token": "s3cr3t-value", "plain": "hello"}, secret_keys=["token"])
    assert is_secret(rec.one("aws:ssm/parameter:Parameter", "p").inputs["value"])
    assert rec.one("aws:sns/topic:Topic", "q").inputs["displayName"] == "hello"
    assert rec.project == "sark-infra"
    assert rec.stack == "test"


def test_exports_do_not_leak_into_the_next_run(record: Callable[..., Recording]) -> None:
    first = record(lambda: pulumi.export("only-in-first", 1))
    second = record(lambda: pulumi.export("only-in-second", 2))
    assert first.outputs == {"only-in-first": 1.0}
    assert second.outputs == {"only-in-second": 2.0}


def test_region_comes_from_config(record: Callable[..., Recording]) -> None:
    rec = record(lambda: aws.sns.Topic("alerts"), {"aws:region": "ap-southeast-2"})
    assert rec.one("aws:sns/topic:Topic").outputs["arn"].startswith("arn:aws:sns:ap-southeast-2:123456789012:alerts-")


def test_unanswered_invoke_raises_even_if_swallowed(record: Callable[..., Recording]) -> None:
    def program() -> None:
        # A program hiding the failure must not hide it from the plan.
        with contextlib.suppress(Exception):
            aws.ec2.get_instance(instance_id="i-0123456789abcdef0")

    with pytest.raises(UnansweredInvokeError, match=r"aws:ec2/getInstance:getInstance .*i-0123456789abcdef0"):
        record(program)


def test_program_exceptions_propagate_unchanged(record: Callable[..., Recording]) -> None:
    def program() -> None:
        aws.s3.Bucket("b")
        raise pulumi.RunError("bad value for sark-infra:x")

    with pytest.raises(pulumi.RunError, match="bad value for sark-infra:x"):
        record(program)
    # ...and the next run starts clean.
    assert [r.name for r in record(lambda: aws.s3.Bucket("c")).resources] == ["c"]


def test_one_lists_what_exists(record: Callable[..., Recording]) -> None:
    rec = record(lambda: [aws.s3.Bucket(n) for n in ("a", "b")])
    with pytest.raises(LookupError, match="found 2; resources of that type: a, b"):
        rec.one("aws:s3/bucket:Bucket")
    with pytest.raises(LookupError, match="found 0; types registered: aws:s3/bucket:Bucket"):
        rec.one("aws:sns/topic:Topic")
    assert rec.one("aws:s3/bucket:Bucket", "b").name == "b"
    assert rec.get(rec.by_type("aws:s3/bucket:Bucket")[0].urn).name == "a"


def test_retain_ignore_changes_and_timeouts(record: Callable[..., Recording]) -> None:
    def program() -> None:
        random.RandomString("s", length=12, opts=pulumi.ResourceOptions(
            retain_on_delete=True, ignore_changes=["length"], delete_before_replace=True,
            custom_timeouts=pulumi.CustomTimeouts(create="30m")))

    res = record(program).one("random:index/randomString:RandomString")
    assert res.retain_on_delete is True
    assert res.ignore_changes == ["length"]
    assert res.delete_before_replace is True
    assert res.custom_timeouts == {"create": "30m"}
    assert len(plain(res.outputs["result"])) == 12


def test_value_helpers() -> None:
    secret = rpc.wrap_rpc_secret("hunter22")
    value: dict[str, Any] = {"a": [1.0, secret], "b": UNKNOWN, "c": 2.5}
    assert contains_secret(value)
    assert not is_secret(value)
    assert plain(value) == {"a": [1.0, "hunter22"], "b": UNKNOWN, "c": 2.5}
    assert masked(value) == {"a": [1, "[secret]"], "b": "[unknown]", "c": 2.5}


def test_runs_leave_no_event_loop_open(record: Callable[..., Recording]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        record(lambda: [aws.s3.Bucket(f"b{i}") for i in range(10)] + [aws.get_availability_zones()])
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
