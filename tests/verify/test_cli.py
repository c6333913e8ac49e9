"""``python -m sarkops verify`` as a command: text and JSON reports, exit status 0/1/2.

The "cannot run" cases run as real processes with a clean environment (no AWS variables, a HOME
without ~/.aws, instance metadata off) so nothing on this machine can lend them credentials.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sarkops.__main__ import main
from sarkops.verify.items import ITEM_IDS
from tests.verify.account import Account

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials for the in-process CLI, and nothing else from this machine's AWS set-up."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def write_outputs(tmp_path: Path, outputs: dict[str, Any]) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs), encoding="utf-8")
    return path


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8",
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true", **extra}


def verify_process(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sarkops", "verify", *args], cwd=ROOT, capture_output=True,
                          text=True, check=False, timeout=60, env=clean_env(tmp_path, **env))


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# Exit 0 and 1, text and JSON
# ---------------------------------------------------------------------------------------------
def test_text_report_passes_with_skips_listed(account: Account, tmp_path: Path, aws_env: None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    outputs = write_outputs(tmp_path, account.outputs)

    status = main(["verify", "--stack", "production", "--outputs", str(outputs), "--endpoint-url", account.endpoint,
                   "--skip-http"])

    out = capsys.readouterr().out
    assert status == 0, out
    lines = out.splitlines()
    assert lines[0] == f"sarkops verify: stack production, account 123456789012, region us-east-1, endpoint " \
                       f"{account.endpoint}"
    item_lines = [line for line in lines if line[:4] in ("PASS", "FAIL", "SKIP")]
    assert [line.split()[1] for line in item_lines] == list(ITEM_IDS)
    skips = {line.split()[1]: line for line in item_lines if line.startswith("SKIP")}
    assert sorted(skips) == ["health-endpoint", "metrics-not-public", "security-headers"]
    assert skips["health-endpoint"].endswith("HTTP probes are off (--skip-http)")
    # https-redirect still checks the listener when probes are off.
    assert any(line.startswith("PASS  https-redirect") for line in item_lines)
    assert lines[-1] == "result: PASS (21 pass, 0 fail, 3 skip)"


def test_a_failure_exits_1_and_says_what_to_fix(account: Account, tmp_path: Path, aws_env: None,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    account.client("rds").modify_db_instance(DBInstanceIdentifier=account.outputs["dbInstanceIdentifier"],
                                             DeletionProtection=False, ApplyImmediately=True)
    outputs = write_outputs(tmp_path, account.outputs)

    status = main(["verify", "--outputs", str(outputs), "--endpoint-url", account.endpoint, "--skip-http"])

    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    index = next(i for i, line in enumerate(lines) if line.startswith("FAIL"))
    assert lines[index].split()[1] == "rds-deletion-protection"
    assert lines[index + 1].strip() == (
        "fix: set dbDeletionProtection: true and run `pulumi up --stack production` (or `aws rds modify-db-instance "
        f"--db-instance-identifier {account.outputs['dbInstanceIdentifier']} --deletion-protection "
        "--apply-immediately`)")
    assert lines[-1] == "result: FAIL (20 pass, 1 fail, 3 skip)"


def test_json_report(account: Account, tmp_path: Path, aws_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    account.client("logs").delete_retention_policy(logGroupName=account.outputs["logGroupNames"][0])
    outputs = write_outputs(tmp_path, account.outputs)

    status = main(["verify", "--stack", "staging", "--outputs", str(outputs), "--endpoint-url", account.endpoint,
                   "--skip-http", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert {k: document[k] for k in ("stack", "account", "region", "endpointUrl", "outputs", "status", "summary")} == {
        "stack": "staging", "account": "123456789012", "region": "us-east-1", "endpointUrl": account.endpoint,
        "outputs": str(outputs), "status": "FAIL", "summary": {"pass": 20, "fail": 1, "skip": 3}}
    assert [item["id"] for item in document["items"]] == list(ITEM_IDS)
    assert all(set(item) == {"id", "title", "checklist", "status", "evidence", "fix"} for item in document["items"])
    (failed,) = [item for item in document["items"] if item["status"] == "FAIL"]
    assert failed["id"] == "log-retention"
    assert failed["evidence"] == f"{account.outputs['logGroupNames'][0]} never expires"
    assert "pulumi up --stack staging" in failed["fix"]
    assert all(item["fix"] is None for item in document["items"] if item["status"] != "FAIL")


def test_only_runs_the_chosen_items(account: Account, tmp_path: Path, aws_env: None,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    account.client("cloudwatch").set_alarm_state(AlarmName=account.outputs["alarmNames"][0], StateValue="ALARM",
                                                 StateReason="test")
    outputs = write_outputs(tmp_path, account.outputs)

    status = main(["verify", "--outputs", str(outputs), "--endpoint-url", account.endpoint, "--json",
                   "--only", "alarms-quiet", "--only", "tls-policy"])

    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert [(i["id"], i["status"]) for i in document["items"]] == [("tls-policy", "PASS"), ("alarms-quiet", "FAIL")]


def test_outputs_from_the_pulumi_cli_when_no_file_is_given(account: Account, tmp_path: Path, aws_env: None,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_outputs(tmp_path, account.outputs)
    fake = bin_dir / "pulumi"
    fake.write_text(f"#!{sys.executable}\nimport sys\n"
                    f"open({str(tmp_path / 'argv')!r}, 'w').write(' '.join(sys.argv[1:]))\n"
                    f"sys.stdout.write(open({str(tmp_path / 'outputs.json')!r}).read())\n", encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    status = main(["verify", "--stack", "production", "--endpoint-url", account.endpoint, "--skip-http",
                   "--only", "dashboard"])

    out = capsys.readouterr().out
    assert status == 0, out
    assert (tmp_path / "argv").read_text() == "stack output --json --stack production"
    assert "outputs: `pulumi stack output --json --stack production`" in out


# ---------------------------------------------------------------------------------------------
# Exit 2: cannot run
# ---------------------------------------------------------------------------------------------
def test_missing_outputs_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"

    line = one_error_line(verify_process(tmp_path, "--outputs", str(missing)))

    assert line == (f"error: {missing}: outputs file not found; write it with "
                    f"`pulumi stack output --json --stack <stack> > {missing}`")


def test_outputs_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text("serviceUrl: https://x\n", encoding="utf-8")

    line = one_error_line(verify_process(tmp_path, "--outputs", str(path)))

    assert line.startswith(f"error: {path}: not valid JSON (Expecting value: line 1 column 1 (char 0)); expected the "
                           "output of `pulumi stack output --json`")


def test_outputs_with_a_wrong_type(tmp_path: Path) -> None:
    path = write_outputs(tmp_path, {"targetGroupArns": "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/a/b"})

    line = one_error_line(verify_process(tmp_path, "--outputs", str(path)))

    assert line == (f'error: {path}: output \'targetGroupArns\' is "arn:aws:elasticloadbalancing:us-east-1:1:'
                    'targetgroup/a/b"; expected a list of non-empty strings')


def test_no_credentials(pristine_outputs: Path, moto_endpoint: str, tmp_path: Path) -> None:
    line = one_error_line(verify_process(tmp_path, "--outputs", str(pristine_outputs), "--endpoint-url",
                                         moto_endpoint))

    assert line.startswith("error: no usable AWS credentials (Unable to locate credentials); set AWS_PROFILE or pass "
                           "--profile")


def test_unreachable_endpoint(pristine_outputs: Path, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"

    result = verify_process(tmp_path, "--outputs", str(pristine_outputs), "--endpoint-url", endpoint,
                            "--connect-timeout", "1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")

    line = one_error_line(result)
    assert line.startswith(f'error: cannot reach {endpoint}: Could not connect to the endpoint URL: "{endpoint}/"')
    assert line.endswith("check --endpoint-url / --region and the network")


def test_credentials_refused(pristine_outputs: Path, tmp_path: Path) -> None:
    """A ClientError on the first call: a tiny local server answering STS with InvalidClientTokenId."""
    import http.server
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = (b'<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>'
                    b'<Message>The security token included in the request is invalid.</Message></Error>'
                    b'<RequestId>1</RequestId></ErrorResponse>')
            self.send_response(403)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        result = verify_process(tmp_path, "--outputs", str(pristine_outputs), "--endpoint-url", endpoint,
                                AWS_ACCESS_KEY_ID="expired", AWS_SECRET_ACCESS_KEY="expired")
    finally:
        server.shutdown()

    assert one_error_line(result) == (
        f"error: {endpoint} refused the credentials: InvalidClientTokenId: The security token included in the "
        "request is invalid.; check that they are valid and not expired")


def test_unknown_profile(pristine_outputs: Path, tmp_path: Path) -> None:
    line = one_error_line(verify_process(tmp_path, "--outputs", str(pristine_outputs), "--profile", "prod-admin"))

    assert line == "error: --profile 'prod-admin': no such AWS profile in ~/.aws/config or ~/.aws/credentials"


def test_no_outputs_and_no_pulumi_cli(tmp_path: Path) -> None:
    result = verify_process(tmp_path, "--stack", "production", PATH=str(tmp_path))  # nothing on PATH

    assert one_error_line(result) == (
        "error: no --outputs FILE and no pulumi CLI on PATH to read the outputs of stack 'production'; run "
        "`pulumi stack output --json --stack production > outputs.json` where the CLI is, then pass "
        "--outputs outputs.json")


@pytest.fixture
def pristine_outputs(tmp_path: Path) -> Path:
    """Outputs of a plausible stack; the exit-2 cases never get as far as looking resources up."""
    return write_outputs(tmp_path, {
        "stackKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "dashboardName": "sark-production"})
