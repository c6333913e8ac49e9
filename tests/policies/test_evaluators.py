"""Two evaluators, one answer.

The same insecure variant of the production stack is judged twice:

1. as the policy server judges it: the pack loaded from ``policies/__main__.py`` the way the
   analyzer loads it (``sarkops.plan.policy_runner.load_pack``, with ``PolicyPack`` construction
   captured), evaluated through the SDK's analyzer servicer (``Analyze`` per resource,
   ``AnalyzeStack`` once);
2. without the server: each rule's plain function (``sark_policies._base.RULES``) called
   directly, on arguments built the way the SDK builds them: properties marshalled through a
   protobuf Struct (numbers become floats, secrets are unwrapped), deserialised, and wrapped in
   ``pulumi_policy.proxy.unknown_checking_proxy`` (a value unknown in preview raises), with
   each rule's schema defaults as its config.

Both must report exactly the same violations, including the "can't run during preview"
advisories for the values the variant leaves unknown.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from sark_policies import POLICIES
from sark_policies._base import RESOURCE_TYPES, RULES
from sarkops.plan import PlanResult
from sarkops.plan.policy_runner import LoadedPack, evaluate, load_pack
from sarkops.plan.runtime import STACK_TYPE, UNKNOWN, RecordedResource, Recording

ROOT = Path(__file__).resolve().parents[2]
P = "sark-production"
Finding = tuple[str, str, str, str]
"""(policy, enforcement level, URN, message)"""


def _cidr_instead_of_group(props: dict[str, Any]) -> None:
    props.pop("referencedSecurityGroupId", None)
    props["cidrIpv4"] = "10.0.0.0/8"


CHANGES: dict[str, Callable[[dict[str, Any]], None]] = {
    f"{P}-app-v0-1-0-lt": lambda p: (p["metadataOptions"].update(httpTokens="optional"),
                                     p.update(userData=UNKNOWN)),
    f"{P}-sg-database-from-app": _cidr_instead_of_group,
    f"{P}-sg-app-https-out": lambda p: p.update(ipProtocol="-1"),
    f"{P}-db-instance": lambda p: p.update(publiclyAccessible=True, backupRetentionPeriod=3),
    f"{P}-key": lambda p: p.update(enableKeyRotation=False, description=""),
    f"{P}-lb-access-logs": lambda p: p.update(acl="public-read"),
    f"{P}-lb-access-logs-policy": lambda p: p.update(policy=UNKNOWN),
    f"{P}-monitoring-http-5xx-rate": lambda p: p.update(actionsEnabled=False),
    f"{P}-network-app-us-east-1a": lambda p: p.update(mapPublicIpOnLaunch="true"),
    f"{P}-secrets-secret-key": lambda p: (p.pop("kmsKeyId"), p.pop("description")),
}
CUT = {f"{P}-sg-database-from-app": "referencedSecurityGroupId", f"{P}-secrets-secret-key": "kmsKeyId"}


def insecure(recording: Recording) -> Recording:
    """The production recording with the changes above, in inputs and outputs alike."""
    resources = []
    for original in recording.resources:
        change = CHANGES.get(original.name) if original.custom else None
        if change is None:
            resources.append(original)
            continue
        resource = copy.deepcopy(original)
        change(resource.inputs)
        change(resource.outputs)
        resource.property_dependencies.pop(CUT.get(resource.name, ""), None)
        resources.append(resource)
    return dataclasses.replace(recording, resources=resources)


# --------------------------------------------------------------------------------------
# Evaluator 2: the plain rule functions
# --------------------------------------------------------------------------------------

def _wire(props: dict[str, Any]) -> dict[str, Any]:
    """Properties as a policy receives them: through a protobuf Struct, then deserialised."""
    struct = struct_pb2.Struct()
    struct.update(props)
    return deserialize_properties(json_format.MessageToDict(struct))


def _options(resource: RecordedResource | None) -> PolicyResourceOptions:
    if resource is None:
        return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    return PolicyResourceOptions(resource.protect, resource.ignore_changes, resource.delete_before_replace,
                                 resource.aliases, PolicyCustomTimeouts(0, 0, 0), resource.additional_secret_outputs,
                                 resource.parent)


def _config(policy: Policy) -> dict[str, Any]:
    properties = policy.config_schema.properties if policy.config_schema else {}
    return {key: spec["default"] for key, spec in properties.items() if spec.get("default") is not None}


def _stack_resources(recording: Recording) -> list[PolicyResource]:
    """Every resource's outputs as stack policies see them, linked to parent and dependencies."""
    root = PolicyResource(STACK_TYPE, unknown_checking_proxy(_wire(recording.outputs)), recording.stack_urn,
                          f"{recording.project}-{recording.stack}", _options(None), None, None, [], {})
    by_urn = {root.urn: root}
    for r in recording.resources:
        by_urn[r.urn] = PolicyResource(r.type, unknown_checking_proxy(_wire(r.outputs)), r.urn, r.name, _options(r),
                                       None, None, [], {})
    for r in recording.resources:
        resource = by_urn[r.urn]
        resource.parent = by_urn.get(r.parent or "")
        resource.dependencies = [by_urn[d] for d in r.dependencies if d in by_urn]
        resource.property_dependencies = {key: [by_urn[u] for u in urns if u in by_urn]
                                          for key, urns in r.property_dependencies.items()}
    return list(by_urn.values())


def direct(recording: Recording, pack: LoadedPack) -> list[Finding]:
    """Every rule's plain function on every resource it declares, on runtime-shaped arguments."""
    findings: list[Finding] = []
    for policy in POLICIES:
        level = policy.enforcement_level.value if policy.enforcement_level else "advisory"
        rule, types = RULES[policy.name], RESOURCE_TYPES[policy.name]
        config = _config(policy)
        cannot = (f"can't run policy '{policy.name}' from policy pack '{pack.name}@v{pack.version}' during "
                  "preview: ")
        if not types:
            found: list[Finding] = []
            args = StackValidationArgs(_stack_resources(recording), config)
            try:
                rule(args, lambda message, urn=None, found=found, name=policy.name, level=level:  # type: ignore[misc]
                     found.append((name, level, urn or "", message)))
            except UnknownValueError as error:
                found.append((policy.name, "advisory", "", cannot + error.message))
            findings.extend(found)
            continue
        for r in recording.resources:
            if not r.custom or r.type not in types:
                continue
            args = ResourceValidationArgs(r.type, unknown_checking_proxy(_wire(r.inputs)), r.urn, r.name,
                                          _options(r), None, config)
            try:
                rule(args, lambda message, urn=None, r=r, name=policy.name, level=level:  # type: ignore[misc]
                     findings.append((name, level, urn or r.urn, message)))
            except UnknownValueError as error:
                findings.append((policy.name, "advisory", r.urn, cannot + error.message))
    return findings


# --------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------

def test_the_pack_directory_builds_the_same_policies() -> None:
    pack = load_pack(ROOT / "policies")
    assert pack.name == "sark-policies"
    assert [p.name for p in pack.policies] == [p.name for p in POLICIES]
    assert set(RULES) == {p.name for p in POLICIES}


def test_servicer_and_plain_functions_agree_on_an_insecure_variant(production_plan: PlanResult) -> None:
    variant = insecure(production_plan.recording)
    assert sum(1 for r in variant.resources if r.name in CHANGES and r.custom) == len(CHANGES)
    pack = load_pack(ROOT / "policies")

    report = evaluate(variant, [pack], config=production_plan.config.values)
    served = sorted((v.policy, v.enforcement_level, v.urn, v.detail) for v in report.violations)
    called = sorted(direct(variant, pack))

    assert served == called
    policies = {finding[0] for finding in served}
    # Something to compare: mandatory and advisory findings, resource and stack rules, and the
    # preview unknowns reported (not crashed on) by both.
    assert {"aws-ec2-launchtemplate-require-imdsv2", "aws-rds-instance-disallow-public-access",
            "aws-rds-instance-configure-backup-retention", "aws-kms-key-enable-key-rotation",
            "aws-ec2-subnet-disallow-public-ip-on-launch", "aws-secretsmanager-secret-configure-customer-managed-key",
            "aws-ec2-security-group-require-app-source-for-data-ports", "aws-s3-bucket-disallow-public-acl",
            "aws-cloudwatch-metric-alarm-require-actions", "aws-kms-key-require-description",
            "aws-ec2-security-group-disallow-unrestricted-egress"} <= policies
    unknowns = [f for f in served if "during preview" in f[3]]
    assert {f[0] for f in unknowns} >= {"aws-ec2-launchtemplate-disallow-secrets-in-user-data",
                                        "aws-s3-bucket-require-tls-only-policy"}
    assert all(f[1] == "advisory" for f in unknowns)
