"""scripts/newest_ami.py against moto's EC2: the newest matching image, and only a matching one."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from components.app_hosts import UBUNTU_JAMMY_AMD64

ROOT = Path(__file__).resolve().parents[2]
PREFIX = UBUNTU_JAMMY_AMD64.rstrip("*")


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("newest_ami", ROOT / "scripts" / "newest_ami.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    # moto's public images beside ours, as in a real region (tests/conftest.py turns them off elsewhere).
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "true")
    with mock_aws():
        yield boto3.client("ec2", region_name="eu-west-1")


def test_prints_the_newest_matching_image(ec2, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    # moto registers images under its own account, so the owner is that account here.
    ids = {}
    # Registered oldest first: moto stamps CreationDate at registration, as AWS would at publication.
    for name in (f"{PREFIX}20240101", f"{PREFIX}20241111", f"{PREFIX}20250315",
                 "ubuntu/images/hvm-ssd/ubuntu-noble-24.04-amd64-server-20260101",
                 "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-20260101"):
        ids[name] = ec2.register_image(Name=name, RootDeviceName="/dev/sda1")["ImageId"]
    code = load().main(["--owner", "123456789012"], ec2=ec2)
    out, err = capsys.readouterr()
    assert code == 0
    assert out == ids[f"{PREFIX}20250315"] + "\n"
    assert re.fullmatch(r"ami-[0-9a-f]{8,17}\n", out)  # what stack_config accepts for appImageId
    assert f"{PREFIX}20250315" in err


def test_no_match_is_an_error_not_a_guess(ec2, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    ec2.register_image(Name="ubuntu/images/hvm-ssd/ubuntu-focal-20.04-amd64-server-20240101",
                       RootDeviceName="/dev/sda1")
    assert load().main(["--owner", "123456789012"], ec2=ec2) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert f"no available image named {UBUNTU_JAMMY_AMD64} owned by 123456789012" in err
    # Canonical's images are not in this account: the default owner finds nothing either.
    assert load().main([], ec2=ec2) == 1


def test_a_region_is_required_without_a_client(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert load().main([]) == 2
    assert "pass --region" in capsys.readouterr().err
