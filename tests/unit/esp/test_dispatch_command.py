"""`sendgate dispatch` without a broker: the --exec contract, --print, registration, metrics."""

from __future__ import annotations

import io
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from streams.cli import build_parser
from streams.commands.dispatch import exec_sender, print_send, send_env
from streams.esp import DispatchError, DispatchMetrics, Send, SendFailed

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def a_send() -> Send:
    return Send(
        request_id="r-1", tenant="shop", legal_entity="Shop BV", channel="email",
        contact_type="email", contact_value="jan@example.nl", dispatch_at=T0, as_of=T0,
        reason_code="ALLOW_CONSENT", legal_basis="TW117_CONSENT", declared_purpose="commercial",
        service_kind=None, campaign_id="c-9", template_id="t-1", platform=None,
        contact_key="ab" * 32, partition=3, offset=17,
    )


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "esp.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_exec_gets_the_contact_on_stdin_and_the_rest_in_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = script(tmp_path, f'read addr\necho "$addr|$SG_REQUEST_ID|$SG_TEMPLATE_ID|'
                           f'$SG_CAMPAIGN_ID|$SG_SERVICE_KIND|$SG_DISPATCH_AT" > {out}\n')
    exec_sender(cmd)(a_send())
    assert out.read_text().strip() == "jan@example.nl|r-1|t-1|c-9||2026-12-01T10:00:00.000+00:00"
    assert "jan@example.nl" not in json.dumps(send_env(a_send()))


def test_exec_json_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "out"
    exec_sender(script(tmp_path, f"cat > {out}\n"), stdin="json")(a_send())
    assert json.loads(out.read_text())["contact"]["value"] == "jan@example.nl"


def test_exec_failure_and_timeout_raise_retryable_errors(tmp_path: Path) -> None:
    with pytest.raises(SendFailed, match="exit status 7"):
        exec_sender(script(tmp_path, "exit 7\n"))(a_send())
    with pytest.raises(SendFailed, match="timed out"):
        exec_sender(script(tmp_path, "sleep 5\n"), timeout=0.2)(a_send())
    with pytest.raises(SendFailed, match="could not start"):
        exec_sender(str(tmp_path / "missing"))(a_send())


def test_print_writes_one_json_line(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buf)
    print_send(a_send())
    [line] = buf.getvalue().splitlines()
    assert json.loads(line)["request_id"] == "r-1"


def test_print_to_a_closed_pipe_stops_instead_of_retrying(monkeypatch: pytest.MonkeyPatch) -> None:
    class Closed(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError

    monkeypatch.setattr(sys, "stdout", Closed())
    with pytest.raises(DispatchError):
        print_send(a_send())


def test_registered_with_print_or_exec_required() -> None:
    parser = build_parser()
    args = parser.parse_args(["dispatch", "--exec", "true", "--max-attempts", "2"])
    assert args.exec_ == "true" and args.max_attempts == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["dispatch"])
    with pytest.raises(SystemExit):
        parser.parse_args(["dispatch", "--print", "--exec", "true"])


def test_readme_names_only_metrics_that_exist() -> None:
    exposed = generate_latest(DispatchMetrics().registry).decode()
    names = set(re.findall(r"^# TYPE (\S+)", exposed, re.M))
    series = names | {n + "_total" for n in names}
    section = (REPO / "README.md").read_text().split("## For ESP workers", 1)[1]
    section = section.split("\n## ", 1)[0]
    mentioned = set(re.findall(r"`(sendgate_dispatch_[a-z_]+)", section))
    assert mentioned and mentioned <= series, mentioned - series
