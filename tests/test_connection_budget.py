"""Issue #11 item 5: the config refuses a fleet that can open more connections than a database allows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack_config import ConfigError, StackConfig, connection_budget, parse_config

ROOT = Path(__file__).resolve().parent.parent
BASE = {
    "corsOrigins": '["https://sark.example.com"]',
    "domainName": "sark.example.com",
    "hostedZoneId": "Z0123456789ABCDEFGHIJ",
    "splunkHecUrl": "https://splunk.example.com:8088/services/collector",
    "appImageId": "ami-0fedcba9876543210",
    "timescaleImageId": "ami-0fedcba9876543210",
}


def parse(**overrides: Any) -> StackConfig:
    raw = {**BASE, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in overrides.items()}}
    return parse_config(raw.get, project="sark-infra", stack="production", region="us-east-1")


def errors(**overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(**overrides)
    return str(info.value).splitlines()[1:]


def production_file() -> dict[str, str]:
    config = yaml.safe_load((ROOT / "Pulumi.production.yaml").read_text())["config"]
    return {k.split(":", 1)[1]: v if isinstance(v, str) else json.dumps(v)
            for k, v in config.items() if k.startswith("sark-infra:")}


def test_the_issue_numbers_are_refused_with_the_arithmetic() -> None:
    # The review's numbers: 17 workers x pool 20, 2 hosts (4 at most), max_connections 400.
    lines = errors(postgresPoolSize=20, postgresMaxOverflow=0, dbMaxConnections=400, timescaleMaxConnections=400)
    db = next(line for line in lines if "dbMaxConnections" in line)
    assert db.strip() == (
        "sark-infra:dbMaxConnections: 400 is too small for the app's worst case: appMaxSize 4 hosts x 2 releases "
        "during a canary x 17 workers (m6i.2xlarge: 2 x 8 vCPU + 1) x (postgresPoolSize 20 + postgresMaxOverflow 0) "
        "= 2720 connections + dbConnectionReserve 30 = 2750 > 400; lower postgresPoolSize, postgresMaxOverflow or "
        "appMaxSize, or raise dbMaxConnections (and dbInstanceClass)")
    assert any(line.strip().startswith("sark-infra:timescaleMaxConnections: 400 is too small") for line in lines)


def test_overflow_counts_as_much_as_the_pool() -> None:
    # 4 x 2 x 17 x (4 + 1) + 30 = 710 fits 720; one more overflow connection (4 + 2) is 846.
    parse()
    lines = errors(postgresMaxOverflow=2)
    assert any("(postgresPoolSize 4 + postgresMaxOverflow 2) = 816 connections + dbConnectionReserve 30 = 846 > 720"
               in line for line in lines)


def test_both_releases_of_a_canary_are_counted() -> None:
    cfg = parse()
    budget = connection_budget(cfg.app, cfg.database.connection_reserve)
    assert budget.hosts == 2 * cfg.app.max_size
    assert budget.needed == 710


def test_the_reserve_is_part_of_the_budget() -> None:
    lines = errors(dbConnectionReserve=50)
    assert any("dbConnectionReserve 50 = 730 > 720" in line for line in lines)


def test_max_connections_stays_within_rds_limit_for_the_class() -> None:
    lines = errors(dbMaxConnections=1000)
    assert any(line.strip() == "sark-infra:dbMaxConnections: 1000 is not allowed; expected at most 901, RDS's own "
               "limit for db.m6i.large (memory / 9531392 bytes per connection); choose a larger dbInstanceClass for "
               "more" for line in lines)
    # A larger class lifts that limit.
    parse(dbMaxConnections=1000, dbInstanceClass="db.m6i.xlarge")


def test_production_file_fits_its_budget() -> None:
    raw = production_file()
    cfg = parse_config(raw.get, project="sark-infra", stack="production", region="us-east-1")
    budget = connection_budget(cfg.app, cfg.database.connection_reserve)
    assert budget.needed <= cfg.database.max_connections
    assert budget.needed <= cfg.timescale.max_connections
