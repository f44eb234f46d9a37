"""The ESP dispatcher (streams.esp, `sendgate dispatch`) on the real broker (issue 14).

Approved and revoked records are produced the way the worker writes them: the wire codec
of `streams.codecs.registry.get_codec`, keyed by the HMAC contact key, Java-compatible
partitioning. Time is a ManualClock: no test sleeps until a `dispatch_at`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams import topics as T
from streams.codecs.base import Codec
from streams.codecs.registry import get_codec
from streams.commands.dispatch import exec_sender
from streams.commands.topics import create_topics
from streams.config import Settings
from streams.core.enums import ContactType
from streams.core.keys import contact_key
from streams.core.model import ContactPoint
from streams.esp import DispatchConsumer, DispatchMetrics, ManualClock, RetryPolicy, Send

PARTITIONS = 4
SECRET = b"dispatch-test-secret"
REPO = Path(__file__).resolve().parents[2]


def value(metric: Any) -> float:
    return float(metric._value.get())


class Broker:
    """Topics under a test prefix, a producer writing like the worker, consumers to build."""

    def __init__(self, settings: Settings, prefix: str, codec: Codec) -> None:
        from confluent_kafka import Producer

        self.settings = settings
        self.prefix = prefix
        self.codec = codec
        self.producer = Producer(settings.kafka.producer({"acks": "all"}))
        self.consumers: list[DispatchConsumer] = []

    def key(self, address: str) -> str:
        return contact_key(SECRET, "shop", ContactPoint(ContactType.EMAIL, address))

    def approve(
        self, address: str, rid: str, dispatch_at: datetime, as_of: datetime | None = None
    ) -> None:
        as_of = as_of or dispatch_at - timedelta(hours=1)
        record = {
            **self._decision(rid, as_of, revokes=False),
            "decision": "ALLOW", "reason_code": "ALLOW_CONSENT", "legal_basis": "TW117_CONSENT",
            "contact": {"type": "email", "value": address}, "dispatch_at": dispatch_at,
            "platform": None, "campaign_id": "c-1", "template_id": "t-welcome",
            "declared_purpose": "commercial", "service_kind": None,
        }
        topic = self.prefix + T.APPROVED
        data = self.codec.encode(T.APPROVED_RECORD, record, topic=topic)
        self.producer.produce(topic, value=data, key=self.key(address).encode())
        assert self.producer.flush(30) == 0

    def revoke(self, address: str, rid: str, as_of: datetime) -> None:
        record = {
            **self._decision(rid, as_of, revokes=True),
            "decision": "BLOCK", "reason_code": "BLOCK_LATE_OBJECTION", "legal_basis": "NONE",
        }
        topic = self.prefix + T.REVOKED
        data = self.codec.encode(T.DECISION_RECORD, record, topic=topic)
        self.producer.produce(topic, value=data, key=self.key(address).encode())
        assert self.producer.flush(30) == 0

    @staticmethod
    def _decision(rid: str, as_of: datetime, *, revokes: bool) -> dict[str, Any]:
        return {
            "request_id": rid, "tenant": "shop", "legal_entity": "Shop BV", "channel": "email",
            "rule_ids": ["R-CONSENT-1"], "evidence": ["e-1"], "rulebook_version": "test",
            "as_of": as_of, "decided_at": datetime.now(UTC), "revokes": revokes,
        }

    def dispatcher(
        self, send: Callable[[Send], None], group: str, clock: ManualClock, **kw: Any
    ) -> DispatchConsumer:
        kw.setdefault("config", {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        d = DispatchConsumer(
            send, group_id=group, settings=self.settings, codec=self.codec,
            topic_prefix=self.prefix, clock=clock, poll_timeout=0.1, **kw,
        )
        self.consumers.append(d)
        return d

    def read(self, topic: str, count: int, timeout: float = 20.0) -> list[Any]:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        c = Consumer(self.settings.kafka.consumer(f"{self.prefix}reader-{time.monotonic_ns()}",
                                                  {"enable.auto.commit": False}))
        try:
            c.assign([TopicPartition(self.prefix + topic, p, OFFSET_BEGINNING)
                      for p in range(PARTITIONS)])
            out: list[Any] = []
            deadline = time.monotonic() + timeout
            while len(out) < count and time.monotonic() < deadline:
                out += [m for m in c.consume(10, 0.5) if m.error() is None]
            return out
        finally:
            c.close()


@pytest.fixture
def broker(kafka_bootstrap: str, kafka_admin: Any, unique_name: str) -> Iterator[Broker]:
    settings = dataclasses.replace(Settings.from_env(), kafka_bootstrap=kafka_bootstrap)
    prefix = f"{unique_name}."
    specs = T.catalogue(prefix=prefix, partitions=PARTITIONS, specs=(
        T.APPROVED_TOPIC, T.REVOKED_TOPIC, T.DISPATCH_DEAD_LETTER_TOPIC))
    create_topics(kafka_admin, specs=specs)
    b = Broker(settings, prefix, get_codec(settings))
    yield b
    for d in b.consumers:
        d.close()
    for future in kafka_admin.delete_topics([s.name for s in specs], operation_timeout=30).values():
        future.result(timeout=30)


def drive(*dispatchers: DispatchConsumer, until: Callable[[], bool], timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "condition not reached in time"
        for d in dispatchers:
            d.poll_once()


def settle(*dispatchers: DispatchConsumer, seconds: float = 2.0) -> None:
    """Keep polling a while (to show that nothing more happens)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for d in dispatchers:
            d.poll_once()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def test_revocation_before_dispatch_at_suppresses_the_send(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "sendgate.esp")
    clock = ManualClock(now())
    due = clock.now() + timedelta(hours=2)
    sent: list[Send] = []
    d = broker.dispatcher(sent.append, "g-suppress", clock)
    broker.approve("jan@example.nl", "r-objected", due)
    broker.approve("piet@example.nl", "r-fine", due)
    drive(d, until=lambda: len(list(d.pending())) == 2)
    settle(d, seconds=1)
    assert sent == []  # not before dispatch_at
    # the race: the revocation is on the broker before dispatch_at but not yet fetched
    from confluent_kafka import TopicPartition

    revoked = [TopicPartition(d.revoked_topic, p) for p in range(PARTITIONS)]
    d.consumer.pause(revoked)
    broker.revoke("jan@example.nl", "r-objected", due - timedelta(hours=3))
    clock.advance(timedelta(hours=2, seconds=1))
    settle(d)
    assert sent == []  # due, but the revoked partitions are not read up to their watermark
    d.consumer.resume(revoked)
    drive(d, until=lambda: len(sent) == 1)
    settle(d)
    assert [s.request_id for s in sent] == ["r-fine"]
    assert sent[0].contact_value == "piet@example.nl"
    assert value(d.metrics.suppressed) == 1
    assert value(d.metrics.delivered) == 1
    assert value(d.metrics.pending) == 0
    assert "jan@example.nl" not in caplog.text and "piet@example.nl" not in caplog.text


def test_revocation_after_dispatch_is_reported(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "sendgate.esp")
    clock = ManualClock(now())
    sent: list[Send] = []
    d = broker.dispatcher(sent.append, "g-late", clock)
    broker.approve("jan@example.nl", "r-1", clock.now())
    drive(d, until=lambda: len(sent) == 1)
    broker.revoke("jan@example.nl", "r-1", clock.now() - timedelta(hours=1))
    drive(d, until=lambda: value(d.metrics.revoked_after_dispatch) == 1)
    assert "revoked after dispatch: r-1" in caplog.text
    assert value(d.metrics.suppressed) == 0
    assert "jan@example.nl" not in caplog.text


def test_restart_while_waiting_loses_nothing_and_repeats_nothing(broker: Broker) -> None:
    clock = ManualClock(now())
    later = clock.now() + timedelta(hours=1)
    sent: list[str] = []

    def record(s: Send) -> None:
        sent.append(s.request_id)

    first = broker.dispatcher(record, "g-restart", clock)
    # one contact: one partition; the waiting approval holds the committed offset back
    broker.approve("jan@example.nl", "r-waiting", later)
    broker.approve("jan@example.nl", "r-now-1", clock.now())
    broker.approve("jan@example.nl", "r-now-2", clock.now())
    drive(first, until=lambda: len(sent) == 2)
    assert sorted(sent) == ["r-now-1", "r-now-2"]
    first.close()

    broker.approve("jan@example.nl", "r-after-restart", clock.now())
    clock.advance(timedelta(hours=1, seconds=1))
    second = broker.dispatcher(record, "g-restart", clock)
    drive(second, until=lambda: len(sent) == 4)
    settle(second)
    # the waiting approval survived; the two delivered before the restart did not repeat
    assert sorted(sent[2:]) == ["r-after-restart", "r-waiting"]
    # a repeated approval within the horizon (the gate re-emits a duplicate request's
    # decision) is skipped, also after the restart
    broker.approve("jan@example.nl", "r-now-1", clock.now(), as_of=later - timedelta(hours=1))
    drive(second, until=lambda: value(second.metrics.duplicates) == 1)
    second.close()

    # a repeat of a request settled below the committed offset: known from the lookback
    broker.approve("jan@example.nl", "r-waiting", later)
    third = broker.dispatcher(record, "g-restart", clock)
    drive(third, until=lambda: value(third.metrics.duplicates) == 1)
    settle(third, seconds=3)
    assert len(sent) == 4
    assert value(third.metrics.delivered) == 0


def test_two_consumers_in_one_group_split_the_partitions(broker: Broker) -> None:
    clock = ManualClock(now())
    a_sent: list[Send] = []
    b_sent: list[Send] = []
    a = broker.dispatcher(a_sent.append, "g-split", clock)
    b = broker.dispatcher(b_sent.append, "g-split", clock)
    drive(a, b, until=lambda: len(a.books) + len(b.books) == PARTITIONS
          and bool(a.books) and bool(b.books))
    addresses = [f"user{i}@example.nl" for i in range(24)]
    for i, addr in enumerate(addresses):
        broker.approve(addr, f"r-{i}", clock.now())
    drive(a, b, until=lambda: len(a_sent) + len(b_sent) == len(addresses))
    settle(a, b)
    assert a_sent and b_sent
    assert sorted(s.request_id for s in a_sent + b_sent) == sorted(
        f"r-{i}" for i in range(len(addresses)))
    assert not {s.partition for s in a_sent} & {s.partition for s in b_sent}
    # co-assignment: each member owns the same partition numbers of both topics
    for d in (a, b):
        owned = {(tp.topic, tp.partition) for tp in d.consumer.assignment()}
        numbers = {p for _, p in owned}
        assert owned == {(t, p) for p in numbers for t in (d.approved_topic, d.revoked_topic)}


def test_exec_failures_retry_with_backoff_then_dead_letter(
    broker: Broker, tmp_path: Path
) -> None:
    clock = ManualClock(now())
    script = tmp_path / "fail.sh"
    log_file = tmp_path / "calls"
    script.write_text(f'#!/bin/sh\nread addr\necho "$SG_REQUEST_ID $addr" >> {log_file}\nexit 3\n')
    script.chmod(0o755)
    metrics = DispatchMetrics()
    d = broker.dispatcher(
        exec_sender(str(script)), "g-dlt", clock, metrics=metrics,
        retry=RetryPolicy(max_attempts=3, base=timedelta(minutes=1)),
    )
    broker.approve("jan@example.nl", "r-bounce", clock.now())
    drive(d, until=lambda: value(metrics.callback_failures) == 1)
    settle(d, seconds=1)
    assert value(metrics.callback_failures) == 1  # waits for the backoff (1 min)
    clock.advance(timedelta(minutes=1))
    drive(d, until=lambda: value(metrics.callback_failures) == 2)
    clock.advance(timedelta(minutes=2))
    drive(d, until=lambda: value(metrics.callback_failures) == 3)
    assert value(metrics.dead_lettered.labels("callback_failed")) == 1
    assert log_file.read_text().splitlines() == ["r-bounce jan@example.nl"] * 3
    [msg] = broker.read(T.DISPATCH_DEAD_LETTER, 1)
    _, letter = broker.codec.decode(msg.value(), T.DISPATCH_DEAD_LETTER_RECORD)
    assert letter["request_id"] == "r-bounce"
    assert letter["reason"] == "callback_failed"
    assert letter["last_error"] == "exit status 3"
    assert letter["attempts"] == 3
    assert letter["source_topic"] == broker.prefix + T.APPROVED
    _, original = broker.codec.decode(letter["original_value"], T.APPROVED_RECORD)
    assert original["request_id"] == "r-bounce"
    assert msg.key() == broker.key("jan@example.nl").encode()
    assert list(d.pending()) == []


def test_cli_print_writes_due_sends_as_json_lines(broker: Broker) -> None:
    broker.approve("jan@example.nl", "r-print", now() - timedelta(seconds=1))
    broker.approve("piet@example.nl", "r-tomorrow", now() + timedelta(days=1))
    env = {**os.environ, "SENDGATE_KAFKA_BOOTSTRAP": broker.settings.kafka_bootstrap}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "dispatch", "--print",
         "--topic-prefix", broker.prefix, "--group", "g-cli", "--max-seconds", "20"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(x["request_id"], x["contact"]["value"]) for x in lines] == [
        ("r-print", "jan@example.nl")]
    assert "jan@example.nl" not in done.stderr and "piet@example.nl" not in done.stderr


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## For ESP workers", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README 'For ESP workers' has no python example"
    return match.group(1)


def test_readme_example_runs_as_written(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ten-line README example, executed with a stand-in mailer and this test's topics."""
    import streams.esp

    code = readme_example()
    assert len(code.strip().splitlines()) <= 10
    broker.approve("jan@example.nl", "r-readme", now() - timedelta(seconds=1))
    mails: list[dict[str, Any]] = []

    class Mailer:
        def send(self, **kw: Any) -> None:
            mails.append(kw)

    outer = broker

    class TestDispatcher(DispatchConsumer):
        def __init__(self, send: Callable[[Send], None], **kw: Any) -> None:
            super().__init__(send, settings=outer.settings, topic_prefix=outer.prefix,
                             poll_timeout=0.1, **kw)
            outer.consumers.append(self)

        def run(self, **kw: Any) -> None:
            drive(self, until=lambda: bool(mails))

    monkeypatch.setattr(streams.esp, "DispatchConsumer", TestDispatcher)
    exec(compile(code, "README.md", "exec"), {"mailer": Mailer()})
    assert mails and mails[0]["idempotency_key"] == "r-readme"
    assert "jan@example.nl" in mails[0].values()


def test_undecodable_revocation_is_dead_lettered_and_withholds_its_contact(
    broker: Broker,
) -> None:
    clock = ManualClock(now())
    sent: list[Send] = []
    d = broker.dispatcher(sent.append, "g-garbage", clock)
    due = clock.now() + timedelta(minutes=10)
    broker.approve("jan@example.nl", "r-jan", due)
    broker.approve("piet@example.nl", "r-piet", due)
    drive(d, until=lambda: len(list(d.pending())) == 2)
    broker.producer.produce(broker.prefix + T.REVOKED, value=b"\x00garbage",
                            key=broker.key("jan@example.nl").encode())
    assert broker.producer.flush(30) == 0
    clock.advance(timedelta(minutes=11))
    drive(d, until=lambda: len(sent) == 1)
    settle(d)
    assert [s.request_id for s in sent] == ["r-piet"]
    [msg] = broker.read(T.DISPATCH_DEAD_LETTER, 1)
    _, letter = broker.codec.decode(msg.value(), T.DISPATCH_DEAD_LETTER_RECORD)
    assert letter["reason"] == "undecodable"
    assert letter["source_topic"] == broker.prefix + T.REVOKED
    assert letter["original_value"] == b"\x00garbage"


def test_a_new_group_can_start_now_instead_of_at_the_beginning(broker: Broker) -> None:
    broker.approve("old@example.nl", "r-old", now() - timedelta(days=2))
    time.sleep(0.05)  # broker timestamps are milliseconds: r-old strictly before start_at
    clock = ManualClock(now() + timedelta(seconds=1))
    start = datetime.now(UTC)
    sent: list[Send] = []
    d = broker.dispatcher(sent.append, "g-start-now", clock, start_at=start)
    drive(d, until=lambda: len(d.books) == PARTITIONS)
    broker.approve("new@example.nl", "r-new", clock.now() - timedelta(seconds=1))
    drive(d, until=lambda: len(sent) == 1)
    settle(d)
    assert [s.request_id for s in sent] == ["r-new"]


def test_a_transactional_revoked_topic_does_not_stall_delivery(broker: Broker) -> None:
    """A worker with exactly_once writes revocations in transactions: the commit marker
    takes an offset that the application never sees; the revocation rule must get past it."""
    from confluent_kafka import Producer

    clock = ManualClock(now())
    sent: list[Send] = []
    d = broker.dispatcher(sent.append, "g-txn", clock)
    broker.approve("jan@example.nl", "r-objected", clock.now() + timedelta(minutes=5))
    broker.approve("jan@example.nl", "r-fine", clock.now() + timedelta(minutes=5))
    drive(d, until=lambda: len(list(d.pending())) == 2)
    txn = Producer(broker.settings.kafka.producer(
        {"transactional.id": f"{broker.prefix}txn", "acks": "all"}))
    txn.init_transactions(60)
    txn.begin_transaction()
    record = {
        **Broker._decision("r-objected", clock.now() - timedelta(hours=1), revokes=True),
        "decision": "BLOCK", "reason_code": "BLOCK_LATE_OBJECTION", "legal_basis": "NONE",
    }
    topic = broker.prefix + T.REVOKED
    txn.produce(topic, value=broker.codec.encode(T.DECISION_RECORD, record, topic=topic),
                key=broker.key("jan@example.nl").encode())
    txn.commit_transaction(60)
    clock.advance(timedelta(minutes=6))
    drive(d, until=lambda: len(sent) == 1, timeout=20)
    assert [s.request_id for s in sent] == ["r-fine"]
    assert value(d.metrics.suppressed) == 1
