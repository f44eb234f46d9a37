"""Shared set-up for the tests that run real `sendgate worker` processes on the broker."""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from streams.codecs.base import Codec
from streams.codecs.registry import get_codec
from streams.commands.topics import create_topics
from streams.config import DEFAULT_SCENARIO_DIR, Settings
from streams.core.engine import DecisionEngine
from streams.core.parse import decision_to_dict, parse_event
from streams.core.policy import PolicyBook
from streams.testing.observe import wait_for_topics
from streams.testing.supervisor import WorkerProcess, wait_group_ready

TEST_SECRET = "integration-test-key"
COMPARED = ("request_id", "tenant", "legal_entity", "channel", "decision", "reason_code",
            "legal_basis", "rule_ids", "evidence", "rulebook_version", "revokes")


def scenario_dir() -> Path:
    return Path(os.environ.get("SENDGATE_SCENARIOS", str(DEFAULT_SCENARIO_DIR)))


def codec() -> Codec:
    return get_codec(Settings.from_env())


def process_alive(pid: int) -> bool:
    """Running, i.e. neither gone nor a zombie waiting for its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def make_topics(bootstrap: str, prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    created = create_topics(admin, prefix=prefix)
    wait_for_topics(admin, [r.name for r in created])


def worker(bootstrap: str, prefix: str, tmp: Path, name: str = "w1",
           env: dict[str, str] | None = None) -> WorkerProcess:
    return WorkerProcess(
        bootstrap=bootstrap,
        data_dir=tmp / f"{name}-data",
        log_path=tmp / f"{name}.log",
        topic_prefix=prefix,
        env={"SENDGATE_HMAC_KEY": TEST_SECRET, "SENDGATE_LOGLEVEL": "info",
             # the lock-step feeder waits for committed offsets
             "SENDGATE_COMMIT_INTERVAL_MS": "200",
             # the tests check the merge's order, not its latency trade-off: on a loaded
             # 2-core CI machine a fetch can come later than the 20 ms default grace, or a
             # partition of just-created topics can start fetching after 5 s
             "SENDGATE_MERGE_GRACE_MS": "200", "SENDGATE_MAX_TASK_IDLE_MS": "30000",
             **(env or {})},
    )


@contextmanager
def running(workers: Sequence[WorkerProcess], bootstrap: str,
            timeout: float = 120.0) -> Iterator[Sequence[WorkerProcess]]:
    for w in workers:
        w.start()
    try:
        wait_group_ready(bootstrap, workers[0].group_id, members=len(workers),
                         timeout=timeout, workers=list(workers))
        yield workers
    finally:
        for w in workers:
            w.stop()


def reference_decisions(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Final decision per request_id from the core alone (the `sendgate decide` path)."""
    engine = DecisionEngine(PolicyBook.default(), TEST_SECRET.encode())
    finals: dict[str, dict[str, Any]] = {}
    for obj in events:
        for decision in engine.feed(parse_event(obj)):
            finals[decision.request_id] = decision_to_dict(decision)
    return finals


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: record.get(k) for k in COMPARED}
    out["rule_ids"] = list(out["rule_ids"] or [])
    out["evidence"] = list(out["evidence"] or [])
    out["revokes"] = bool(out["revokes"])
    return out


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def scrape_until(port: int, done: Callable[[dict[str, float]], bool],
                 timeout: float = 30.0) -> dict[str, float]:
    """The metrics once `done` holds (or the last scrape after `timeout`): counters of the
    last records may trail the outputs a test already saw by a commit cycle."""
    deadline = time.monotonic() + timeout
    metrics = scrape(port)
    while not done(metrics) and time.monotonic() < deadline:
        time.sleep(0.5)
        metrics = scrape(port)
    return metrics


def publish_serially(bootstrap: str, prefix: str, events: Iterable[dict[str, Any]],
                     config: dict[str, Any] | None = None) -> int:
    """Publish with the SDK, each event acknowledged before the next (a shop publishing
    serially): the gate's merge order is then the publishing order."""
    from streams.client import SendgateProducer

    n = 0
    with SendgateProducer(bootstrap, codec(), topic_prefix=prefix, config=config) as sdk:
        for event in events:
            sdk.publish({k: v for k, v in event.items() if k != "expect"})
            assert sdk.flush(120) == 0, "an event was not acknowledged: the order is broken"
            n += 1
    return n


INPUT_POSITIONS: dict[str, tuple[str, int, int, int]] = {}
"""event_id -> (topic, partition, offset, append time ms) of the last `inputs_in_merge_order`
read (diagnostics of a failed comparison)."""


def records_to_end(bootstrap: str, topics: list[str], timeout: float = 60.0) -> list[Any]:
    """Every record of `topics`, from the start of each partition to its high watermark at
    the call (read with an assignment, no group); fails unless all were read in time."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap,
                         "group.id": f"read-{time.time_ns()}", "enable.auto.commit": False})
    try:
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    ends[(topic, p)] = high
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            for m in consumer.consume(1000, 1.0):
                if m.error():
                    continue
                out.append(m)
                tp = (str(m.topic()), int(m.partition() or 0))
                if int(m.offset() or 0) >= ends.get(tp, 0) - 1:
                    ends.pop(tp, None)
        assert not ends, f"partitions not read to the end: {sorted(ends)[:5]}"
        return out
    finally:
        consumer.close()


def inputs_in_merge_order(bootstrap: str, prefix: str, c: Any) -> list[dict[str, Any]]:
    """Decoded records of the four input topics in the gate's merge order
    (`streams.ordering.merge_key`): the order the worker folds a contact's events in,
    and the audit replays. Undecodable records (dead letters) are left out."""
    import heapq

    from streams import topics as T
    from streams.ordering import TOPIC_RANK, merge_key, sequence_of

    keyed: list[tuple[tuple[int, int, int, int, int], bytes]] = []
    position: dict[bytes, tuple[str, int, int, int]] = {}
    INPUT_POSITIONS.clear()
    rank = {prefix + spec.name: TOPIC_RANK[str(spec.event_type)] for spec in T.INPUT_SPECS}
    for m in records_to_end(bootstrap, list(rank), timeout=120):
        topic, p, off = str(m.topic()), int(m.partition() or 0), int(m.offset() or 0)
        _, ts = m.timestamp()
        keyed.append((merge_key(ts, sequence_of(m.headers()), rank[topic], p, off),
                      m.value() or b""))
        position[m.value() or b""] = (topic, p, off, ts)
    events: list[dict[str, Any]] = []
    for _, value in heapq.nsmallest(len(keyed), keyed):
        try:
            _, rec = c.decode(value)
        except Exception:
            continue
        events.append(rec)
        if isinstance(rec.get("event_id"), str):
            INPUT_POSITIONS.setdefault(rec["event_id"], position[value])
    return events
