"""The hosts' user data in the production plan: headroom under EC2's limit, logs rotated, network retried.

EC2 refuses user data over 16,384 bytes (counted before base64). Both documents are sent
gzip-compressed; the test keeps 4 KiB free so the next addition cannot silently break a
launch. It also reads what the hosts will run: the logrotate policy for the file the rsyslog
drop-in writes, and every network step of every bootstrap script wrapped in a retry.
"""

from __future__ import annotations

import base64
import gzip
import re
import shlex
from typing import Any

import yaml

from components.app_hosts import TEMPLATES as APP_TEMPLATES
from components.timescale import TEMPLATES as TIMESCALE_TEMPLATES
from tests.app_tier_plans import plan

LIMIT = 16384
HEADROOM = 4096


def _documents() -> dict[str, tuple[bytes, str]]:
    rec = plan()
    (template,) = rec.by_type("aws:ec2/launchTemplate:LaunchTemplate")
    instance = rec.one("aws:ec2/instance:Instance")
    found = {}
    for label, encoded in (("app", template.inputs["userData"]), ("timescale", instance.inputs["userDataBase64"])):
        raw = base64.b64decode(encoded)
        found[label] = (raw, gzip.decompress(raw).decode())
    return found


def test_both_hosts_user_data_is_compressed_with_headroom() -> None:
    for label, (raw, text) in _documents().items():
        assert raw[:2] == b"\x1f\x8b", label
        assert text.startswith("#cloud-config\n"), label
        assert len(raw) <= LIMIT - HEADROOM, f"{label}: {len(raw)} bytes compressed"
        # Uncompressed, both would already be at or over the limit: the compression is what makes room.
        assert len(text.encode()) > LIMIT - HEADROOM, label


def _cloud_config(label: str) -> dict[str, Any]:
    return yaml.safe_load(_documents()[label][1])


def _logrotate_blocks(text: str) -> dict[str, list[str]]:
    """``path { directives }`` blocks of a logrotate file (comments dropped)."""
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    for line in filter(None, lines):
        if line.endswith("{"):
            current = line[:-1].strip()
            blocks[current] = []
        elif line == "}":
            current = None
        elif current is not None:
            blocks[current].append(line)
    return blocks


def test_logrotate_ships_for_the_file_rsyslog_writes() -> None:
    files = {f["path"]: f for f in _cloud_config("app")["write_files"]}
    rsyslog = files["/etc/rsyslog.d/30-sark.conf"]["content"]
    (target,) = re.findall(r'isequal, "sark" (\S+)', rsyslog)
    rotate = files["/etc/logrotate.d/sark"]
    assert (rotate["owner"], rotate["permissions"]) == ("root:root", "0644")  # logrotate skips writable files
    blocks = _logrotate_blocks(rotate["content"])
    assert list(blocks) == [target]
    directives = blocks[target]
    assert "daily" in directives
    assert "compress" in directives
    assert any(d.startswith("rotate ") and int(d.split()[1]) >= 1 for d in directives)
    # rsyslog must reopen the file after rotation, or it writes into the rotated one.
    assert "postrotate" in directives
    assert "/usr/lib/rsyslog/rsyslog-rotate" in directives


_NETWORK = re.compile(r"^(curl|apt-get (update|install)|git .*fetch|\S*pip install|\S*amazon-cloudwatch-agent-ctl)")


def _commands(script: str) -> list[str]:
    """Each simple command line of a shell script, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", script)
    stripped = (line.strip() for line in joined.splitlines())
    return [line for line in stripped if line and not line.startswith("#")]


def test_every_network_step_of_every_bootstrap_script_is_retried() -> None:
    scripts = {path.name: path.read_text() for path in (
        APP_TEMPLATES / "install_sark.sh", APP_TEMPLATES / "install_agent.sh",
        TIMESCALE_TEMPLATES / "sark-timescale-setup.sh")}
    checked = 0
    for name, script in scripts.items():
        assert re.search(r"^retry\(\) \{", script, re.MULTILINE), name
        for command in _commands(script):
            words = shlex.split(command.replace('"$@"', "").replace("$(", "( "), comments=True) or [""]
            if words[0] == "retry":
                checked += 1
                continue
            if re.match(r"^\w+=", words[0]):  # a variable assignment, not a command
                continue
            text = " ".join(words).replace('"', "")
            # Instance metadata (169.254.169.254) is on the host itself: nothing to retry.
            if _NETWORK.match(text) and "169.254.169.254" not in text:
                raise AssertionError(f"{name}: network step without retry: {command}")
    assert checked >= 10
