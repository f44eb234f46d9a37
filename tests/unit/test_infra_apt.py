"""Issue 12 §7: apt steps wait for the dpkg/apt lock (bounded retry) instead of failing
at once. `infra/apt.sh` against a stand-in `apt-get` on PATH (the real lock is shared by
the whole machine and is not touched here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APT_SH = REPO / "infra" / "apt.sh"

STUB = """#!/usr/bin/env bash
# fails with a lock message until $COUNT reaches $LOCKED_FOR, then behaves per $THEN
n=$(( $(cat "$COUNT") + 1 )); echo "$n" > "$COUNT"; echo "$*" >> "$CALLS"
if (( n <= LOCKED_FOR )); then
  echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)" >&2
  exit 100
fi
if [[ "$THEN" == fail ]]; then echo "E: Unable to locate package nosuchpackage" >&2; exit 100; fi
echo "installed"
"""


def run(tmp_path: Path, locked_for: int, then: str = "ok", wait: int = 30,
        ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    if os.geteuid() != 0:
        pytest.skip("apt.sh uses sudo when not root")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "apt-get"
    stub.write_text(STUB)
    stub.chmod(0o755)
    count, calls = tmp_path / "count", tmp_path / "calls"
    count.write_text("0")
    calls.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "COUNT": str(count),
           "CALLS": str(calls), "LOCKED_FOR": str(locked_for), "THEN": then,
           "APT_LOCK_RETRY_SECONDS": "0.1", "APT_LOCK_WAIT_SECONDS": str(wait)}
    done = subprocess.run(["bash", str(APT_SH), "install", "somepkg"], env=env,
                          capture_output=True, text=True, timeout=60)
    return done, calls.read_text().splitlines()


def test_waits_while_the_lock_is_held_then_installs(tmp_path: Path) -> None:
    done, calls = run(tmp_path, locked_for=3)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("lock held by another process") == 3
    assert calls[:3] == [calls[0]] * 3 and "update" in calls[0]
    assert "install" in calls[-1] and "somepkg" in calls[-1]
    assert all("DPkg::Lock::Timeout=" in c for c in calls)


def test_gives_up_after_the_bounded_wait(tmp_path: Path) -> None:
    done, calls = run(tmp_path, locked_for=10_000, wait=2)
    assert done.returncode != 0
    assert "still held after 2s" in done.stderr
    assert 2 <= len(calls) < 100


def test_other_errors_fail_at_once(tmp_path: Path) -> None:
    done, calls = run(tmp_path, locked_for=0, then="fail")
    assert done.returncode != 0
    assert "Unable to locate package" in done.stderr
    assert len(calls) == 1
