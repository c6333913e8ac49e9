"""The AWS mocks: realistic shapes, deterministic values, and no silent invoke answers."""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random
import pytest

from sarkops.plan.mock_aws import ACCOUNT_ID, AwsMocks, UnansweredInvokeError, render_policy_document
from sarkops.plan.runtime import Recording, is_secret, plain, run_program

ARN = re.compile(r"^arn:aws:[a-z0-9-]+:([a-z0-9-]*):(\d{12})?:.+$")


def network_and_data() -> None:
    vpc = aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/16")
    subnet = aws.ec2.Subnet("subnet", vpc_id=vpc.id, cidr_block="10.0.1.0/24")
    sg = aws.ec2.SecurityGroup("sg", vpc_id=vpc.id)
    aws.ec2.Instance("host", ami="ami-0123456789abcdef0", instance_type="t3.small", subnet_id=subnet.id,
                     vpc_security_group_ids=[sg.id])
    key = aws.kms.Key("key")
    aws.rds.Instance("db", engine="postgres", instance_class="db.t4g.small", allocated_storage=20,
                     kms_key_id=key.arn, manage_master_user_password=True, username="app")
    aws.elasticache.ReplicationGroup("cache", description="cache", node_type="cache.t4g.small",
                                     num_cache_clusters=2)
    lb = aws.lb.LoadBalancer("web", load_balancer_type="application", subnets=[subnet.id])
    tg = aws.lb.TargetGroup("app", port=8000, protocol="HTTP", vpc_id=vpc.id)
    aws.lb.Listener("https", load_balancer_arn=lb.arn, port=443,
                    default_actions=[{"type": "forward", "target_group_arn": tg.arn}])
    aws.acm.Certificate("cert", domain_name="sark.example.com", subject_alternative_names=["*.sark.example.com"],
                        validation_method="DNS")
    aws.s3.Bucket("logs")
    aws.iam.Role("role", assume_role_policy="{}")
    aws.cloudwatch.LogGroup("app-logs", name="/sark/app")
    aws.ec2.LaunchTemplate("lt", image_id="ami-0123456789abcdef0")
    aws.autoscaling.Group("asg", max_size=2, min_size=1, vpc_zone_identifiers=[subnet.id])
    random.RandomPassword("pw", length=20)
    aws.cloudtrail.Trail("trail", s3_bucket_name="logs")  # not in the table: generic outputs


@pytest.fixture(scope="module")
def rec() -> Recording:
    from tests.conftest import record_program

    return record_program(network_and_data, {"aws:region": "eu-central-1"})


def outputs(rec: Recording, token: str) -> dict[str, Any]:
    return plain(rec.one(token).outputs)


def test_ids_have_aws_prefixes(rec: Recording) -> None:
    for token, prefix in [("aws:ec2/vpc:Vpc", "vpc-0"), ("aws:ec2/subnet:Subnet", "subnet-0"),
                          ("aws:ec2/securityGroup:SecurityGroup", "sg-0"), ("aws:ec2/instance:Instance", "i-0"),
                          ("aws:ec2/launchTemplate:LaunchTemplate", "lt-0")]:
        assert re.fullmatch(rf"{prefix}[0-9a-f]{{16}}", outputs(rec, token)["id"]), token


def test_arns_are_in_the_region_and_account(rec: Recording) -> None:
    for resource in rec.resources:
        arn = resource.outputs.get("arn")
        if resource.type.startswith("aws:") and arn:
            match = ARN.match(arn)
            assert match, (resource.type, arn)
            assert match.group(1) in ("eu-central-1", ""), arn  # IAM and S3 ARNs have no region
    assert outputs(rec, "aws:iam/role:Role")["arn"].startswith(f"arn:aws:iam::{ACCOUNT_ID}:role/role-")
    bucket = outputs(rec, "aws:s3/bucket:Bucket")
    assert bucket["arn"] == f"arn:aws:s3:::{bucket['bucket']}"
    assert outputs(rec, "aws:cloudwatch/logGroup:LogGroup")["arn"] == \
        f"arn:aws:logs:eu-central-1:{ACCOUNT_ID}:log-group:/sark/app"
    generic = outputs(rec, "aws:cloudtrail/trail:Trail")
    assert generic["arn"] == f"arn:aws:cloudtrail:eu-central-1:{ACCOUNT_ID}:trail/trail"
    assert generic["id"] == "trail-id"


def test_type_specific_outputs(rec: Recording) -> None:
    db = outputs(rec, "aws:rds/instance:Instance")
    assert db["endpoint"] == f"{db['address']}:5432"
    assert db["address"].endswith(".eu-central-1.rds.amazonaws.com")
    assert db["masterUserSecrets"][0]["secretArn"].startswith("arn:aws:secretsmanager:eu-central-1:")
    cache = outputs(rec, "aws:elasticache/replicationGroup:ReplicationGroup")
    assert cache["primaryEndpointAddress"].startswith("master.")
    assert cache["primaryEndpointAddress"].endswith(".euc1.cache.amazonaws.com")
    assert len(cache["memberClusters"]) == 2
    lb = outputs(rec, "aws:lb/loadBalancer:LoadBalancer")
    assert lb["dnsName"].endswith(".eu-central-1.elb.amazonaws.com")
    assert lb["arn"].endswith(lb["arnSuffix"])
    assert lb["arnSuffix"].startswith("app/web-")
    assert lb["zoneId"] == "Z215JYRZR1TBD5"
    assert outputs(rec, "aws:lb/targetGroup:TargetGroup")["arnSuffix"].startswith("targetgroup/app-")
    listener = outputs(rec, "aws:lb/listener:Listener")
    assert f":listener/{lb['arnSuffix']}/" in listener["arn"]
    key = outputs(rec, "aws:kms/key:Key")
    assert key["arn"].endswith(f":key/{key['keyId']}")
    cert = outputs(rec, "aws:acm/certificate:Certificate")
    assert [o["domainName"] for o in cert["domainValidationOptions"]] == ["sark.example.com", "*.sark.example.com"]
    host = outputs(rec, "aws:ec2/instance:Instance")
    assert host["privateDns"] == f"ip-{host['privateIp'].replace('.', '-')}.eu-central-1.compute.internal"
    assert outputs(rec, "aws:ec2/launchTemplate:LaunchTemplate")["latestVersion"] == 1
    assert outputs(rec, "aws:autoscaling/group:Group")["name"].startswith("asg-")


def test_inputs_win_over_computed_values(rec: Recording) -> None:
    assert outputs(rec, "aws:cloudwatch/logGroup:LogGroup")["name"] == "/sark/app"


def test_random_password_is_fake_secret_and_sized(rec: Recording) -> None:
    result = rec.one("random:index/randomPassword:RandomPassword").outputs["result"]
    assert is_secret(result)
    assert len(plain(result)) == 20
    assert plain(result).startswith("mock")


def test_values_depend_only_on_type_and_name() -> None:
    from tests.conftest import record_program

    first = record_program(lambda: aws.ec2.Vpc("same", cidr_block="10.0.0.0/16"))
    second = record_program(lambda: [aws.s3.Bucket("other"), aws.ec2.Vpc("same", cidr_block="10.1.0.0/16")])
    assert first.one("aws:ec2/vpc:Vpc").id == second.one("aws:ec2/vpc:Vpc").id


# --- invokes ------------------------------------------------------------------------------

def call(token: str, args: dict[str, Any], region: str = "us-east-1") -> dict[str, Any]:
    return AwsMocks(region=region).call(pulumi.runtime.MockCallArgs(token=token, args=args, provider=""))


def test_availability_zones_follow_the_region() -> None:
    zones = call("aws:index/getAvailabilityZones:getAvailabilityZones", {}, region="eu-west-1")
    assert zones["names"] == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    assert zones["zoneIds"] == ["euw1-az1", "euw1-az2", "euw1-az3"]


def test_region_identity_and_partition() -> None:
    region = call("aws:index/getRegion:getRegion", {}, region="us-west-2")
    assert (region["name"], region["region"], region["description"]) == ("us-west-2", "us-west-2", "US West (Oregon)")
    assert call("aws:index/getCallerIdentity:getCallerIdentity", {})["accountId"] == ACCOUNT_ID
    assert call("aws:index/getPartition:getPartition", {})["dnsSuffix"] == "amazonaws.com"


def test_ami_lookup_for_ubuntu_jammy() -> None:
    ami = call("aws:ec2/getAmi:getAmi", {"mostRecent": True, "owners": ["099720109477"], "filters": [
        {"name": "name", "values": ["ubuntu/images/hvm-ssd-gp3/ubuntu-jammy-22.04-amd64-server-*"]}]})
    assert re.fullmatch(r"ubuntu/images/hvm-ssd-gp3/ubuntu-jammy-22\.04-amd64-server-\d{8}", ami["name"])
    assert ami["architecture"] == "x86_64"
    assert ami["imageId"] == ami["id"]
    assert ami["id"].startswith("ami-0")


def test_policy_document_renders_iam_json() -> None:
    args = {"statements": [
        {"sid": "Logs", "effect": "Allow", "actions": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "resources": ["*"], "principals": [{"type": "Service", "identifiers": ["vpc-flow-logs.amazonaws.com"]}],
         "conditions": [{"test": "StringEquals", "variable": "aws:SourceAccount", "values": [ACCOUNT_ID]}]},
        {"effect": "Deny", "actions": ["s3:*"], "resources": ["arn:aws:s3:::b/*"],
         "principals": [{"type": "*", "identifiers": ["*"]}],
         "conditions": [{"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}]},
    ]}
    document = json.loads(call("aws:iam/getPolicyDocument:getPolicyDocument", args)["json"])
    assert document == {"Version": "2012-10-17", "Statement": [
        {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*",
         "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
         "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*", "Principal": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]}


def test_policy_document_override_replaces_by_sid() -> None:
    override = json.dumps({"Statement": [{"Sid": "A", "Effect": "Deny", "Action": "x:*", "Resource": "*"}]})
    document = render_policy_document({"statements": [{"sid": "A", "actions": ["x:Get"], "resources": ["*"]}],
                                       "overridePolicyDocuments": [override]})
    assert document["Statement"] == [{"Sid": "A", "Effect": "Deny", "Action": "x:*", "Resource": "*"}]


def test_elb_service_account_per_region() -> None:
    answer = call("aws:elb/getServiceAccount:getServiceAccount", {}, region="eu-west-1")
    assert answer["arn"] == "arn:aws:iam::156460612806:root"
    with pytest.raises(UnansweredInvokeError, match="no ELB log-delivery account known for region mars-north-1"):
        call("aws:elb/getServiceAccount:getServiceAccount", {}, region="mars-north-1")


def test_vpc_subnet_and_parameter_lookups() -> None:
    assert call("aws:ec2/getVpc:getVpc", {"id": "vpc-0abc"})["id"] == "vpc-0abc"
    subnet = call("aws:ec2/getSubnet:getSubnet", {"id": "subnet-0abc"})
    assert subnet["id"] == "subnet-0abc"
    assert re.fullmatch(r"10\.0\.\d+\.0/24", subnet["cidrBlock"])
    assert call("aws:ssm/getParameter:getParameter", {"name": "/sark/x"})["value"] == "mock-parameter-value-sark-x"


def test_unknown_invoke_names_token_and_args() -> None:
    mocks = AwsMocks()
    with pytest.raises(UnansweredInvokeError) as info:
        mocks.call(pulumi.runtime.MockCallArgs(token="aws:rds/getEngineVersion:getEngineVersion",
                                               args={"engine": "postgres"}, provider=""))
    assert str(info.value) == ('no mock answer for invoke aws:rds/getEngineVersion:getEngineVersion '
                               '(args {"engine": "postgres"}): add one to sarkops/plan/mock_aws.py')
    assert mocks.unanswered == [info.value]


def test_extra_invokes_extend_the_table() -> None:
    mocks = AwsMocks(extra_invokes={"aws:rds/getEngineVersion:getEngineVersion": lambda ctx: {
        "version": "15.8", "engine": ctx.args["engine"]}})
    rec = run_program(lambda: pulumi.export("v", aws.rds.get_engine_version(engine="postgres").version),
                      project="p", stack="s", mocks=mocks)
    assert rec.outputs == {"v": "15.8"}
