"""The worker's default status view: a `sendgate view follow` child process.

It writes the view outside the worker's interpreter (the projection no longer takes the
worker's GIL) and must never outlive the worker: a SIGKILL of the worker alone, not of its
process group, still ends the child (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from streamkit import make_topics, process_alive, running, worker

from streams.compose import view_mode

pytestmark = pytest.mark.timeout(180)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_view_modes_from_the_environment_value() -> None:
    assert view_mode("1") == view_mode("process") == "process"
    assert view_mode("0") == view_mode("OFF") == "off"
    assert view_mode("thread") == "thread"
    with pytest.raises(ValueError):
        view_mode("yes please")


def test_the_view_child_dies_with_a_killed_worker(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    prefix = unique_name + "."  # the session deletes its own topics at the end
    make_topics(kafka_bootstrap, prefix)
    w = worker(kafka_bootstrap, prefix, tmp_path)
    with running([w], kafka_bootstrap):
        assert w.proc is not None
        deadline = time.monotonic() + 30
        followers: list[int] = []
        while not followers and time.monotonic() < deadline:
            followers = [c for c in _children(w.proc.pid) if "view follow" in _cmdline(c)]
            time.sleep(0.2)
        assert followers, f"no `view follow` child of the worker:\n{w.log_tail()}"
        child = followers[0]
        assert f"--topic-prefix {prefix}" in _cmdline(child)
        os.kill(w.proc.pid, signal.SIGKILL)  # the worker alone, not its process group
        w.proc.wait(10)
        deadline = time.monotonic() + 15
        while process_alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not process_alive(child), "the view follower outlived its worker"
