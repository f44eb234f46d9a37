"""Issue 5 §1 on a real worker: with Redis down the stream job goes on deciding, and the
status view catches up when Redis returns."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
from streamkit import (
    TEST_SECRET,
    codec,
    make_topics,
    reference_decisions,
    running,
    scenario_dir,
    worker,
)

from streams.core.engine import contact_points
from streams.core.keys import contact_key
from streams.core.parse import parse_event
from streams.testing.feeder import BarrierFeeder, load_jsonl
from streams.testing.observe import OutputReader
from streams.testing.supervisor import free_port

pytestmark = pytest.mark.timeout(600)


def start_redis(port: int, tmp: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            if client.ping():
                return proc
        except redis.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("private redis-server did not start")


def test_worker_decides_through_a_redis_outage_and_the_view_catches_up(
    kafka_bootstrap: str, redis_url: str, unique_name: str, tmp_path: Path
) -> None:
    prefix = unique_name + "."
    make_topics(kafka_bootstrap, prefix)
    port = free_port()
    server = start_redis(port, tmp_path)
    files = [load_jsonl(f) for f in sorted(scenario_dir().glob("T*.jsonl"))]
    first, second = files[:55], files[55:]
    expected = reference_decisions([e for f in files for e in f])
    c = codec()
    w = worker(kafka_bootstrap, prefix, tmp_path, "view",
               env={"SENDGATE_REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    reader = OutputReader(kafka_bootstrap, c, topic_prefix=prefix)
    try:
        with running([w], kafka_bootstrap):
            feeder = BarrierFeeder(kafka_bootstrap, c, topic_prefix=prefix, timeout=120)
            feeder.feed(first)
            reader.wait_for_requests(
                [e["request_id"] for f in first for e in f if e["type"] == "send_request"],
                timeout=120,
            )
            time.sleep(1.5)
            before = len(list(redis.Redis(port=port).scan_iter(match="sg:view:*")))
            assert before > 0, "the view was not written while Redis was up"

            server.kill()
            server.wait(10)
            feeder.feed(second)
            observed = reader.wait_for_requests(expected, timeout=180, settle=2.0)
            assert w.alive(), "the worker must keep deciding while Redis is down"
            finals = observed.finals()
            assert all(finals[r]["reason_code"] == expected[r]["reason_code"] for r in expected)

            server = start_redis(port, tmp_path)  # a new, empty Redis on the same port
            client = redis.Redis(port=port)
            touched = {
                f"sg:view:{contact_key(TEST_SECRET.encode(), e['tenant'], cp)}".encode()
                for f in second for e in f for cp in contact_points(parse_event(e))
            }
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                missing = touched - set(client.scan_iter(match="sg:view:*"))
                if not missing:
                    break
                time.sleep(0.5)
            assert not missing, f"{len(missing)} contacts decided during the outage not in the view"
            feeder.close()
    finally:
        reader.close()
        server.kill()
