"""Shared set-up for the tests that run real `sendgate worker` processes on the broker."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

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


def codec() -> Any:
    return get_codec(Settings.from_env())


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
        env={"SENDGATE_HMAC_KEY": TEST_SECRET, "SENDGATE_LOGLEVEL": "info", **(env or {})},
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


def publish_serially(bootstrap: str, prefix: str, events: Iterable[dict[str, Any]],
                     config: dict[str, Any] | None = None) -> int:
    """Publish with the SDK, each event acknowledged before the next (a shop publishing
    serially): the gate's merge order is then the publishing order."""
    from streams.client import SendgateProducer

    n = 0
    with SendgateProducer(bootstrap, codec(), topic_prefix=prefix, config=config) as sdk:
        for event in events:
            sdk.publish({k: v for k, v in event.items() if k != "expect"})
            sdk.flush()
            n += 1
    return n
