"""Measure the worker's `at_least_once` against `exactly_once` (issue 4 §4, issue 15 §5).

For each guarantee, in one run: pre-load N events, start one worker, time the drain
(events/s); then a crash run: start, SIGKILL the worker a third of the way through,
restart it, and count requests whose decision was emitted more than once (duplicates)
and whether every request ended with exactly one final decision.

    .venv/bin/python bench/bench_guarantee.py [--events 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from streams.codecs.registry import get_codec
from streams.commands.topics import create_topics
from streams.config import Settings
from streams.testing.feeder import Publisher
from streams.testing.observe import OutputReader
from streams.testing.supervisor import WorkerProcess, wait_group_ready
from streams.workload import Workload

RESULTS = Path(__file__).resolve().parent / "results"


def preload(bootstrap: str, prefix: str, events: list[dict[str, Any]]) -> None:
    create_topics(AdminClient({"bootstrap.servers": bootstrap}), prefix=prefix)
    pub = Publisher(bootstrap, get_codec(), topic_prefix=prefix)
    for e in events:
        pub.publish(e)
    pub.flush(120)


def run_one(bootstrap: str, guarantee: str, events: list[dict[str, Any]], crash: bool,
            tmp: Path) -> dict[str, Any]:
    prefix = f"bg-{guarantee}-{'crash' if crash else 'clean'}-{time.time_ns() % 10**8}."
    preload(bootstrap, prefix, events)
    requests = {e["request_id"] for e in events if e["type"] == "send_request"}
    w = WorkerProcess(bootstrap=bootstrap, data_dir=tmp / f"{prefix}data",
                      log_path=tmp / f"{prefix}log", topic_prefix=prefix,
                      env={"SENDGATE_DEV_MODE": "1",
                           "SENDGATE_PROCESSING_GUARANTEE": guarantee})
    reader = OutputReader(bootstrap, get_codec(), topic_prefix=prefix)
    w.start()
    ready = wait_group_ready(bootstrap, w.group_id, workers=[w], timeout=180)
    start = time.monotonic()
    restarts = 0
    if crash:
        reader.wait_until(lambda o: len(o.decisions) >= len(requests) // 3, timeout=600)
        w.kill()
        w.start()
        restarts = 1
    observed = reader.wait_for_requests(requests, timeout=900, settle=3.0)
    elapsed = time.monotonic() - start
    w.stop()
    reader.close()
    dupes = sum(
        1 for emitted in observed.decisions.values()
        if sum(1 for e in emitted if not e.record["revokes"]) > 1
    )
    conflicting = sum(
        1 for emitted in observed.decisions.values()
        if len({(e.record["decision"], e.record["reason_code"]) for e in emitted
                if not e.record["revokes"]}) > 1
    )
    return {
        "guarantee": guarantee, "crash": crash, "events": len(events),
        "requests": len(requests), "ready_s": round(ready, 2),
        "seconds": round(elapsed, 2), "events_per_s": round(len(events) / elapsed),
        "missing": len(requests - observed.decisions.keys()),
        "duplicate_requests": dupes, "conflicting_requests": conflicting,
        "restarts": restarts,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=20_000)
    args = ap.parse_args()
    os.environ.setdefault("SENDGATE_DEV_MODE", "1")
    bootstrap = Settings.from_env().kafka_bootstrap
    events = list(Workload(contacts=5_000, tenants=4, run_id="bg").events(args.events))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-guarantee-") as d:
        for guarantee in ("at_least_once", "exactly_once"):
            for crash in (False, True):
                row = run_one(bootstrap, guarantee, events, crash, Path(d))
                print(json.dumps(row), flush=True)
                rows.append(row)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"guarantee-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"machine": os.uname().nodename, "cpus": os.cpu_count(),
                               "runs": rows}, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
