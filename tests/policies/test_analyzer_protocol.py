"""The pack started exactly as the Pulumi CLI starts it, spoken to over the analyzer protocol.

How the CLI starts a Python policy pack (pulumi/pulumi, read for this test):

- ``pkg/resource/plugin/analyzer_plugin.go`` (``NewPolicyAnalyzer``): loads
  ``<pack>/PulumiPolicy.yaml``; root and program directory are the pack directory; the plugin
  gets the engine's address as its argument;
- ``sdk/python/cmd/pulumi-language-python/main.go`` (``RunPlugin``): for an analyzer it runs
  ``python -u -m pulumi.policy <engine address> <program directory>`` with the working
  directory set to the pack directory, with the interpreter of the ``virtualenv`` option
  (``sdk/python/toolchain/pip.go``: a relative path is joined to the pack directory). The
  legacy ``pulumi-analyzer-policy-python`` shim passed ``.`` as the directory, the same place;
- ``sdk/python/lib/pulumi/policy/__main__.py`` runs the pack's ``__main__.py``, whose
  ``PolicyPack(...)`` starts the gRPC server and prints its port on stdout
  (pulumi-policy ``sdk/python/lib/pulumi_policy/policy.py``);
- the engine then calls GetAnalyzerInfo, Configure with every policy's config reconciled from
  the schema defaults (``pkg/resource/analyzer/config.go``, ``ReconcilePolicyPackConfig``),
  Analyze per resource (inputs, unknowns as the sentinel ``rpc.UNKNOWN``) and AnalyzeStack once.

A minimal fake engine serves the address the pack is given (``Log`` records what the pack would
print); the pack is killed at the end whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import proto, rpc

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "policies"
SG = "aws:ec2/securityGroup:SecurityGroup"
VPC_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
TIMEOUT = 20.0


def _interpreter() -> Path:
    """The python the language host would run: ``<pack>/<virtualenv>/bin/python``."""
    options = yaml.safe_load((PACK / "PulumiPolicy.yaml").read_text())["runtime"]["options"]
    venv = Path(options["virtualenv"])
    return (venv if venv.is_absolute() else PACK / venv) / "bin" / "python"


class _Engine(proto.EngineServicer):
    """Just enough of the engine for a policy pack: it may log."""

    def __init__(self) -> None:
        self.logged: list[str] = []

    def Log(self, request: Any, context: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        self.logged.append(request.message)
        return empty_pb2.Empty()


@pytest.fixture
def pack_channel() -> Iterator[tuple[grpc.Channel, _Engine]]:
    engine = _Engine()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    proto.add_EngineServicer_to_server(engine, server)
    engine_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    process = subprocess.Popen(
        [str(_interpreter()), "-u", "-m", "pulumi.policy", f"127.0.0.1:{engine_port}", "."],
        cwd=PACK, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    try:
        port = _read_port(process)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield channel, engine
        channel.close()
    finally:
        process.kill()
        process.wait(timeout=TIMEOUT)
        server.stop(0)


def _read_port(process: subprocess.Popen[bytes]) -> int:
    """The first line the pack prints: its port (with a timeout, and stderr if it dies)."""
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(TIMEOUT)
    if not line or not line[0].strip().isdigit():
        process.kill()
        _, stderr = process.communicate(timeout=TIMEOUT)
        raise AssertionError(f"the pack printed no port: {line!r}; stderr: {stderr.decode()[-2000:]}")
    return int(line[0])


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    json_format.ParseDict(props, struct)
    return struct


def _urn(type_: str, name: str) -> str:
    return f"urn:pulumi:production::sark-infra::{type_}::{name}"


def _configure_as_the_engine_does(stub: Any, info: Any) -> None:
    """Every policy at its own level, with its schema defaults (ReconcilePolicyPackConfig)."""
    request = proto.ConfigureAnalyzerRequest()
    for policy in info.policies:
        schema = json_format.MessageToDict(policy.configSchema.properties)
        defaults = {k: v["default"] for k, v in schema.items() if isinstance(v, dict) and "default" in v}
        request.policyConfig[policy.name].CopyFrom(proto.PolicyConfig(
            enforcementLevel=policy.enforcementLevel, properties=_struct(defaults)))
    stub.Configure(request, timeout=TIMEOUT)


def _mandatory(response: Any) -> list[tuple[str, str]]:
    return sorted((d.policyName, d.urn) for d in response.diagnostics if d.enforcementLevel == proto.MANDATORY)


def test_the_pack_boots_as_the_cli_starts_it_and_answers_the_analyzer_protocol(
        pack_channel: tuple[grpc.Channel, _Engine]) -> None:
    channel, engine = pack_channel
    stub = proto.AnalyzerStub(channel)

    info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=TIMEOUT)
    assert info.name == "sark-policies"
    names = {p.name for p in info.policies}
    assert {"aws-ec2-security-group-disallow-public-ingress", "aws-ec2-security-group-rule-require-group-role-tag",
            "aws-wafv2-web-acl-enable-logging"} <= names
    _configure_as_the_engine_does(stub, info)

    # Analyze, as in `pulumi up` before the rule is created: SSH from the internet, on a group
    # that does not exist yet (its id is the engine's unknown sentinel).
    ssh = proto.AnalyzeRequest(type=VPC_RULE, name="app-ssh-world", urn=_urn(VPC_RULE, "app-ssh-world"),
                               properties=_struct({"securityGroupId": rpc.UNKNOWN, "ipProtocol": "tcp",
                                                   "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0",
                                                   "tags": {"sark:role": "app"}, "description": "SSH"}))
    analyzed = stub.Analyze(ssh, timeout=TIMEOUT)
    assert _mandatory(analyzed) == [("aws-ec2-security-group-disallow-public-ingress", "")]
    assert [d.message for d in analyzed.diagnostics if "during preview" in d.message] == []

    # AnalyzeStack, as in a first preview: ids unknown, property dependencies known. A rule
    # claiming the load balancer's role on the app group is caught from the graph.
    stack = proto.AnalyzeStackRequest()
    app = stack.resources.add(type=SG, name="app-sg", urn=_urn(SG, "app-sg"), properties=_struct(
        {"id": rpc.UNKNOWN, "description": "SARK app", "tags": {"sark:role": "app"}}))
    liar = stack.resources.add(type=VPC_RULE, name="app-https-world", urn=_urn(VPC_RULE, "app-https-world"),
                               properties=_struct({"securityGroupId": rpc.UNKNOWN, "ipProtocol": "tcp",
                                                   "fromPort": 443, "toPort": 443, "cidrIpv4": "0.0.0.0/0",
                                                   "tags": {"sark:role": "load-balancer"}, "description": "x"}),
                               dependencies=[app.urn])
    liar.propertyDependencies["securityGroupId"].urns.append(app.urn)
    stacked = stub.AnalyzeStack(stack, timeout=TIMEOUT)
    assert ("aws-ec2-security-group-rule-require-group-role-tag", liar.urn) in _mandatory(stacked)
    assert [d.policyName for d in stacked.diagnostics if "during preview" in d.message] == []
    assert engine.logged == []
