"""Issue #11 item 18: verify never PASSes on absent evidence.

The outputs of a fully built account are checked against an empty account of the same moto
server (moto keeps one backend per account; an STS AssumeRole into another account id gives
credentials that see only that account): every resource the outputs name is missing there.
Each item must FAIL, or SKIP with a reason; none may PASS.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from sarkops.verify.cli import AwsSettings, verify
from sarkops.verify.core import FAIL, PASS, SKIP, parse_outputs
from sarkops.verify.items import ITEM_IDS, ITEMS
from tests.verify.account import Account, FakeSite

EMPTY_ACCOUNT = "210987654321"


@pytest.fixture(scope="module")
def empty_session(aws_session: Any, moto_endpoint: str) -> Any:
    """A session whose calls go to an account where nothing was ever created."""
    sts = aws_session.client("sts", endpoint_url=moto_endpoint)
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{EMPTY_ACCOUNT}:role/verify",
                                  RoleSessionName="empty")["Credentials"]
    return boto3.Session(region_name=aws_session.region_name, aws_access_key_id=credentials["AccessKeyId"],
                         aws_secret_access_key=credentials["SecretAccessKey"],
                         aws_session_token=credentials["SessionToken"])


def run_empty(account: Account, session: Any, **kwargs: Any) -> Any:
    outputs = parse_outputs(account.outputs, "outputs.json")
    return verify(outputs, stack="production", settings=AwsSettings(endpoint_url=account.endpoint),
                  session=session, http_get=None, **kwargs)


def test_no_item_passes_against_an_empty_account(account: Account, empty_session: Any) -> None:
    report = run_empty(account, empty_session)
    assert report.account_id == EMPTY_ACCOUNT
    statuses = {item.id: (item.status, item.evidence) for item in report.items}
    assert list(statuses) == list(ITEM_IDS)
    passing = {item_id: evidence for item_id, (status, evidence) in statuses.items() if status == PASS}
    assert passing == {}
    for item in report.items:
        assert item.status in (FAIL, SKIP)
        assert item.evidence  # a FAIL says what is missing, a SKIP says why
        if item.status == FAIL:
            assert item.fix


def test_alarms_quiet_fails_when_no_alarm_exists(account: Account, empty_session: Any) -> None:
    report = run_empty(account, empty_session, only=("alarms-quiet",))
    (item,) = report.items
    assert item.status == FAIL
    assert "none of 0 alarms in ALARM" not in item.evidence
    assert item.evidence == (f"0 of {len(account.outputs['alarmNames'])} alarms exist, so none could be seen in "
                             "ALARM or not")


def test_http_items_skip_with_the_reason_when_probes_are_off(account: Account, empty_session: Any) -> None:
    report = run_empty(account, empty_session)
    http_ids = {item.id for item in ITEMS if item.http}
    skips = {item.id: item.evidence for item in report.items if item.status == SKIP}
    assert http_ids <= set(skips)
    assert all(skips[item_id] == "HTTP probes are off (--skip-http)" for item_id in http_ids)
    # The one non-HTTP skip names why nothing could be checked.
    assert {k: v for k, v in skips.items() if k not in http_ids} == {
        "secrets-rotation": f"none of the {len(account.outputs['secretArns'])} secrets of secretArns exists, so no "
                            "schedule can be checked (see secrets-encryption)"}


def test_the_same_outputs_pass_against_their_own_account(account: Account) -> None:
    # The control: the outputs are good, only the account was empty.
    outputs = parse_outputs(account.outputs, "outputs.json")
    report = verify(outputs, stack="production", settings=AwsSettings(endpoint_url=account.endpoint),
                    session=account.session, http_get=FakeSite(account.outputs["serviceUrl"]))
    assert not report.failed
