"""The 110 shared scenario files (../shared/scenarios, contract §9), through the same code
path as `sendgate decide`: each `expect` against the FINAL decision of its request_id."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streams.core.engine import DecisionEngine
from streams.core.jsonl import LineRejection, decide_lines
from streams.core.model import Decision
from streams.core.policy import PolicyBook

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = Path(os.environ.get("SENDGATE_SCENARIOS", REPO.parent / "shared" / "scenarios"))
TEST_KEY = "sendgate-scenario-test-key"


def _number(path: Path) -> int:
    return int(re.sub(r"\D", "", path.stem))


FILES = sorted(SCENARIOS.glob("T*.jsonl"), key=_number)


def _expectations(lines: list[str]) -> dict[str, dict[str, str]]:
    out = {}
    for line in lines:
        if line.strip():
            event = json.loads(line)
            if "expect" in event:
                out[event["request_id"]] = event["expect"]
    return out


def _mismatches(expected: dict[str, dict[str, str]], final: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for request_id, expect in expected.items():
        got = final.get(request_id)
        if got is None:
            problems.append(f"{request_id}: no decision")
            continue
        for key, value in expect.items():
            if got[key] != value:
                problems.append(f"{request_id}: {key} expected {value}, got {got[key]}")
    return problems


def test_all_scenario_files_are_present() -> None:
    assert [_number(p) for p in FILES] == list(range(1, 111)), SCENARIOS


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    engine = DecisionEngine(PolicyBook(), TEST_KEY.encode())
    final: dict[str, dict[str, Any]] = {}
    for item in decide_lines(lines, engine):
        assert not isinstance(item, LineRejection), item.describe()
        assert isinstance(item, Decision)
        final[item.request_id] = {
            "decision": str(item.decision),
            "reason_code": str(item.reason_code),
            "legal_basis": str(item.legal_basis),
        }
    expected = _expectations(lines)
    assert expected, "a scenario file states at least one expect"
    assert not _mismatches(expected, final)


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("SENDGATE_DEV_MODE", "SENDGATE_HMAC_KEY")
    }
    env["SENDGATE_HMAC_KEY"] = TEST_KEY
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "decide", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("name", ["T01", "T53", "T54", "T72", "T81"])
def test_cli_on_scenario_files(name: str) -> None:
    """The real `sendgate decide` command; revocations replace earlier decisions."""
    path = SCENARIOS / f"{name}.jsonl"
    done = _cli(str(path))
    assert done.returncode == 0, done.stderr
    final = {}
    for line in done.stdout.splitlines():
        decision = json.loads(line)
        assert decision["decided_at"] and decision["as_of"]
        final[decision["request_id"]] = decision
    lines = path.read_text(encoding="utf-8").splitlines()
    assert not _mismatches(_expectations(lines), final)


def test_cli_reads_stdin_reports_bad_lines_and_goes_on() -> None:
    lines = (SCENARIOS / "T11.jsonl").read_text(encoding="utf-8").splitlines()
    broken = json.loads(lines[1])
    broken["channel"] = "carrier_pigeon"
    feed = "\n".join([lines[0], "{not json", json.dumps(broken), lines[1]]) + "\n"
    done = _cli("-", stdin=feed)
    assert done.returncode == 1
    assert "line 2:" in done.stderr and "bad_json" in done.stderr
    assert "line 3: field channel: invalid_enum" in done.stderr
    decisions = [json.loads(line) for line in done.stdout.splitlines()]
    assert [d["reason_code"] for d in decisions] == ["ALLOW_CONSENT"]


def test_cli_requires_a_key_outside_dev_mode() -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("SENDGATE_DEV_MODE", "SENDGATE_HMAC_KEY")
    }
    path = str(SCENARIOS / "T01.jsonl")
    command = [sys.executable, "-m", "streams.cli", "decide", path]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    assert done.returncode == 2 and "SENDGATE_HMAC_KEY" in done.stderr
    done = subprocess.run(
        [*command, "--dev-key"], capture_output=True, text=True, cwd=REPO, env=env, check=False
    )
    assert done.returncode == 0 and done.stdout


def test_cli_policy_option(tmp_path: Path) -> None:
    policy = tmp_path / "short.toml"
    policy.write_text("[default]\nsoft_opt_in_months = 1\n")
    done = _cli("--policy", str(policy), str(SCENARIOS / "T25.jsonl"))
    assert json.loads(done.stdout.splitlines()[-1])["reason_code"] == "BLOCK_RELATION_EXPIRED"


def test_one_engine_for_all_files_gives_the_same_decisions() -> None:
    """Tenants are isolated: one engine fed every file in turn decides as fresh ones do."""
    shared = DecisionEngine(PolicyBook(), TEST_KEY.encode())
    for path in FILES:
        lines = path.read_text(encoding="utf-8").splitlines()
        alone = list(decide_lines(lines, DecisionEngine(PolicyBook(), TEST_KEY.encode())))
        assert list(decide_lines(lines, shared)) == alone, path.stem
