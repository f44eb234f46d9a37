"""`make run` / `sendgate demo` must not leave its worker running when it is stopped another
way than Ctrl-C: the worker runs in its own session (Ctrl-C reaches only the demo, which stops
it gracefully), so a SIGTERM from a supervisor or `timeout`, or a SIGKILL, used to orphan it —
still consuming, and holding the RocksDB lock the next `make run` needs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamkit import make_topics, process_alive

from streams.config import child_environment
from streams.testing.supervisor import free_port

pytestmark = pytest.mark.timeout(300)


def _start_demo(bootstrap: str, prefix: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes],
                                                                       int, Path]:
    make_topics(bootstrap, prefix)
    err = tmp_path / "demo.err"
    env = child_environment({
        "SENDGATE_KAFKA_BOOTSTRAP": bootstrap,
        "SENDGATE_VAR": str(tmp_path / "var"),
        "SENDGATE_METRICS_PORT": str(free_port()),
        "SENDGATE_DEV_MODE": "1",
        "SENDGATE_STATUS_VIEW": "off",
    })
    demo = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "demo", "--topic-prefix", prefix,
         "--rate", "20", "--duration", "240"],
        env=env, stdout=subprocess.DEVNULL, stderr=err.open("wb"),
    )
    deadline = time.monotonic() + 120
    text = ""
    while time.monotonic() < deadline and demo.poll() is None:
        text = err.read_text(errors="replace")
        if "worker ready" in text:
            break
        time.sleep(0.5)
    assert "worker ready" in text, f"the demo's worker did not get ready:\n{text[-3000:]}"
    found = re.search(r"worker pid (\d+)", text)
    assert found, text
    return demo, int(found.group(1)), err


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not process_alive(pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_the_demo_takes_its_worker_along(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path, sig: signal.Signals
) -> None:
    demo, worker_pid, err = _start_demo(kafka_bootstrap, unique_name + ".", tmp_path)
    try:
        assert process_alive(worker_pid)
        os.kill(demo.pid, sig)
        demo.wait(60)
        assert _gone_within(worker_pid, 60), (
            f"the worker outlived the demo ({sig.name}):\n"
            f"{err.read_text(errors='replace')[-2000:]}")
        if sig == signal.SIGTERM:  # stopped as by Ctrl-C: graceful, with the final tally
            assert "worker stopped" in err.read_text(errors="replace")
    finally:
        if demo.poll() is None:
            demo.kill()
        if process_alive(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)
