"""One moto server per test session, on 127.0.0.1, used as a real AWS API over HTTP.

Starting the server costs about 1 s and its first calls load moto's backends lazily, so the
server (and what every account shares: rotation Lambda, certificate, KMS keys) is session-scoped; each test builds its
own account under a fresh prefix (``account`` fixture), so tests never see each other's drift.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.verify.account import REGION, Account, Shared, build_account, create_shared

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of a moto server for this session."""
    # The server logs every request through werkzeug; pytest's log capture makes that cost ~10 ms a call.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # Secrets Manager calls the rotation Lambda's testSecret step; moto's docker-less Lambda answers it.
    request = urllib.request.Request(f"{endpoint}/moto-api/config", method="POST",  # noqa: S310 (our server)
                                     data=json.dumps({"lambda": {"use_docker": False}}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our server)
        assert json.loads(response.read())["lambda"]["use_docker"] is False
    yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def aws_session() -> Any:
    """A boto3 session with moto's dummy credentials (nothing read from the environment)."""
    return boto3.Session(region_name=REGION, **CREDENTIALS)


@pytest.fixture(scope="session")
def shared(aws_session: Any, moto_endpoint: str) -> Shared:
    """The rotation Lambda, certificate and KMS keys every account uses (slow for moto to make)."""
    return create_shared(aws_session, moto_endpoint)


@pytest.fixture(scope="session")
def client_cache() -> dict[str, Any]:
    """boto3 clients shared by every account's set-up (creating one costs 10-25 ms)."""
    return {}


@pytest.fixture(scope="session")
def verify_clients(aws_session: Any, moto_endpoint: str) -> Any:
    """The clients verify uses, shared by the in-process verify runs for the same reason."""
    from sarkops.verify.cli import AwsSettings, Clients

    return Clients(aws_session, AwsSettings(endpoint_url=moto_endpoint), REGION)


@pytest.fixture
def account(aws_session: Any, moto_endpoint: str, shared: Shared, client_cache: dict[str, Any],
            verify_clients: Any) -> Account:
    """A fresh compliant account."""
    built = build_account(aws_session, moto_endpoint, shared, client_cache)
    built.verify_clients = verify_clients
    return built
