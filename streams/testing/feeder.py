"""Publish scenario files to the input topics in a reproducible arrival order.

Kafka orders records within a partition, not across the four input topics, so two
events of one contact published to `orders` and `unsubscribes` can reach the gate in
either order. Production relies on R-OBJECT-3 (re-check at dispatch, late objections
revoke) for that race. To replay a scenario *exactly* in its file order — the demo and
the end-to-end scenario test — the feeder publishes in rounds: line k of every file,
then waits until each of those records has reached the gate: seen on the faust adapter's
internal re-keyed topic (its `sg-source` header) or the dead-letter topic, or passed by
the worker group's committed offsets (the Kafka runtime commits after processing and
forwards only extra contacts).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from streams import topics as T
from streams.codecs.base import Codec
from streams.config import kafka_for
from streams.core.engine import contact_points
from streams.core.keys import input_key
from streams.core.parse import parse_event
from streams.gate.records import H_SOURCE, header, headers_as_list
from streams.testing.observe import wait_for_topics


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        if line.strip():
            obj = json.loads(line)
            obj.pop("expect", None)
            out.append(obj)
    return out


def retenant(events: Iterable[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    """Give a file its own tenant per run so that re-runs are not ignored as duplicates."""
    return [{**e, "tenant": f"{e.get('tenant', 'default')}{suffix}"} for e in events]


class Publisher:
    """Encodes contract-shaped dicts and produces them with the catalogue's key."""

    def __init__(self, bootstrap: str, codec: Codec, *, topic_prefix: str = "") -> None:
        self.codec = codec
        self.prefix = topic_prefix
        self.producer = Producer(kafka_for(bootstrap).producer({
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.max.bytes": 4 * 1024 * 1024,
        }))

    def encode(self, event: dict[str, Any]) -> tuple[str, bytes, bytes]:
        parsed = parse_event(event)
        etype = str(getattr(parsed.type, "value", parsed.type))
        topic = self.prefix + T.input_topic_for(etype).name
        record = T.RECORD_FOR_EVENT_TYPE[etype]
        key = input_key(parsed.tenant, contact_points(parsed)[0]).encode()
        return topic, key, self.codec.encode(record, event, topic=topic)

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: Any = None,
    ) -> None:
        hdrs: list[tuple[str, str | bytes | None]] = list(headers or [])
        while True:
            try:
                self.producer.produce(
                    topic, key=key, value=value, headers=hdrs, on_delivery=on_delivery
                )
                return
            except BufferError:
                self.producer.poll(0.05)

    def publish(self, event: dict[str, Any], headers: list[tuple[str, bytes]] | None = None,
                on_delivery: Any = None) -> None:
        topic, key, value = self.encode(event)
        self.produce(topic, key, value, headers, on_delivery)

    def flush(self, timeout: float = 30.0) -> None:
        if self.producer.flush(timeout) != 0:
            raise KafkaException("producer flush timed out")


class BarrierFeeder:
    """Publish files in lock-step rounds (see module docstring)."""

    def __init__(self, bootstrap: str, codec: Codec, *, topic_prefix: str = "",
                 timeout: float = 60.0, group_id: str | None = None) -> None:
        self.publisher = Publisher(bootstrap, codec, topic_prefix=topic_prefix)
        self.timeout = timeout
        # reads the worker group's committed offsets; never joins the group or commits
        self.offsets = Consumer(kafka_for(bootstrap).consumer(
            group_id or f"{topic_prefix}sendgate", {"enable.auto.commit": False}
        ))
        self.watch = Consumer(kafka_for(bootstrap).consumer(
            f"feeder-{time.time_ns()}", {"enable.auto.commit": False}
        ))
        assign_at_end(self.watch, [topic_prefix + T.CONTACT_EVENTS, topic_prefix + T.DEAD_LETTER])
        self.seen: set[bytes] = set()

    def _wait_for(self, sources: set[bytes]) -> None:
        deadline = time.monotonic() + self.timeout
        missing = sources - self.seen
        while missing:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(missing)} records did not reach the gate")
            for msg in self.watch.consume(500, 0.2):
                if msg.error():
                    continue
                source = header(headers_as_list(msg.headers()), H_SOURCE)
                if source is not None:
                    self.seen.add(source)
            missing = sources - self.seen
            if missing:
                missing -= self._committed_past(missing)

    def _committed_past(self, sources: set[bytes]) -> set[bytes]:
        wanted: dict[tuple[str, int], list[tuple[int, bytes]]] = {}
        for src in sources:
            topic, partition, at = src.decode().rsplit(":", 2)
            wanted.setdefault((topic, int(partition)), []).append((int(at), src))
        try:
            committed = self.offsets.committed(
                [TopicPartition(t, p) for t, p in wanted], timeout=5)
        except KafkaException:
            return set()
        done: set[bytes] = set()
        for tp in committed:
            for offset, src in wanted.get((tp.topic, tp.partition), []):
                if tp.offset is not None and tp.offset > offset:
                    done.add(src)
        self.seen |= done
        return done

    def feed(self, files: Sequence[Sequence[dict[str, Any]]]) -> int:
        rounds = max((len(f) for f in files), default=0)
        published = 0
        for k in range(rounds):
            sources: set[bytes] = set()
            delivered = _record_source_into(sources)
            for events in files:
                if k < len(events):
                    self.publisher.publish(dict(events[k]), on_delivery=delivered)
                    published += 1
            self.publisher.flush()
            self._wait_for(sources)
        return published

    def close(self) -> None:
        self.watch.close()
        self.offsets.close()


def _record_source_into(sources: set[bytes]) -> Any:
    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            sources.add(f"{msg.topic()}:{msg.partition()}:{msg.offset()}".encode())

    return delivered


def assign_at_end(consumer: Consumer, topics: Sequence[str]) -> None:
    """Assign every partition at its current end offset, resolved now.

    `OFFSET_END` would be resolved only at the first fetch, after records produced in
    the meantime, which a watcher must not miss.
    """
    meta = wait_for_topics(consumer, topics)
    tps = []
    for name in topics:
        for p in meta.topics[name].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
            tps.append(TopicPartition(name, p, high))
    consumer.assign(tps)
