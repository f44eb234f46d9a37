"""Read back what the gate emitted: decisions per request and dead letters.

Used by the end-to-end tests, the chaos tests and the benchmark. The final decision of
a request (contract §6) is its revocation when one was emitted — only an open ALLOW
can be revoked, a BLOCK is final — else the last decision emitted for it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams import topics as T
from streams.codecs.base import Codec
from streams.config import kafka_for
from streams.gate.records import headers_as_list


def wait_for_topics(client: Any, names: Iterable[str], timeout: float = 60.0) -> Any:
    """Metadata once every topic in `names` is known to the broker with its partitions.

    A topic that was just created can be missing from a broker's metadata for a moment
    (seen right after a broker restart); callers that assign partitions must wait.
    """
    wanted = set(names)
    deadline = time.monotonic() + timeout
    while True:
        meta = client.list_topics(timeout=10)
        known = {n for n in wanted if n in meta.topics and meta.topics[n].partitions}
        if known == wanted or time.monotonic() > deadline:
            missing = wanted - known
            if missing:
                raise TimeoutError(f"topics not in the broker's metadata: {sorted(missing)}")
            return meta
        time.sleep(0.2)


@dataclass
class Emitted:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    record: dict[str, Any]
    headers: list[tuple[str, bytes]]
    timestamp_ms: int


@dataclass
class Observed:
    decisions: dict[str, list[Emitted]] = field(default_factory=lambda: defaultdict(list))
    dead_letters: list[Emitted] = field(default_factory=list)

    def final(self, request_id: str) -> dict[str, Any] | None:
        emitted = self.decisions.get(request_id)
        if not emitted:
            return None
        revocations = [e for e in emitted if e.record.get("revokes")]
        return (revocations or emitted)[-1].record

    def finals(self) -> dict[str, dict[str, Any]]:
        return {rid: rec for rid in self.decisions if (rec := self.final(rid)) is not None}

    def count(self) -> int:
        return sum(len(v) for v in self.decisions.values())


class OutputReader:
    """Consumes the output topics (approved, blocked, revoked, dead letters) from the start."""

    def __init__(self, bootstrap: str, codec: Codec, *, topic_prefix: str = "",
                 partitions: int | None = None) -> None:
        self.codec = codec
        self.observed = Observed()
        self.consumer = Consumer(kafka_for(bootstrap).consumer(f"observe-{time.time_ns()}", {
            "enable.auto.commit": False,
            "fetch.message.max.bytes": 8 * 1024 * 1024,
        }))
        self.dead_letter_topic = topic_prefix + T.DEAD_LETTER
        names = [topic_prefix + n for n in (T.APPROVED, T.BLOCKED, T.REVOKED, T.DEAD_LETTER)]
        meta = wait_for_topics(self.consumer, names)
        tps = []
        for name in names:
            count = partitions or len(meta.topics[name].partitions)
            tps += [TopicPartition(name, p, OFFSET_BEGINNING) for p in range(count)]
        self.consumer.assign(tps)

    def poll(self, seconds: float = 0.5) -> int:
        got = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = self.consumer.consume(1000, 0.1)
            for msg in batch:
                if msg.error():
                    continue
                got += 1
                topic = str(msg.topic())
                expected = T.DEAD_LETTER_RECORD if topic == self.dead_letter_topic else None
                _, record = self.codec.decode(msg.value() or b"", expected)
                e = Emitted(topic, int(msg.partition() or 0), int(msg.offset() or 0), msg.key(),
                            record, headers_as_list(msg.headers()), msg.timestamp()[1])
                if topic == self.dead_letter_topic:
                    self.observed.dead_letters.append(e)
                else:
                    self.observed.decisions[record["request_id"]].append(e)
            if not batch and got:
                break
        return got

    def wait_until(self, done: Callable[[Observed], bool], timeout: float = 120.0,
                   settle: float = 0.0) -> Observed:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(0.5)
            if done(self.observed):
                if settle:
                    end = time.monotonic() + settle
                    while time.monotonic() < end:
                        self.poll(0.5)
                return self.observed
        raise TimeoutError("outputs did not arrive in time")

    def wait_for_requests(self, request_ids: Iterable[str], *, dead_letters: int = 0,
                          timeout: float = 120.0, settle: float = 0.0) -> Observed:
        wanted = set(request_ids)
        return self.wait_until(
            lambda o: wanted.issubset(o.decisions.keys())
            and len(o.dead_letters) >= dead_letters,
            timeout, settle,
        )

    def close(self) -> None:
        self.consumer.close()
