"""`sendgate view follow`: keep the Redis status view from the changelog, outside the worker.

The projection costs the worker about a sixth of its CPU per event (bench/results). With
`SENDGATE_STATUS_VIEW=0` the worker writes no view and this process tails the
contact-state changelog instead: every state the worker stores carries a view hint (the
event's tenant, event time and contact type, `streams.gate.state_codec.ViewHint`), so the
follower writes the same projection the worker would have after that event. The one
difference: an event that leaves a state unchanged (a duplicate) writes no changelog
record, so the view's evaluation time moves on with the next change only.

Several followers share the changelog partitions as one consumer group. At least once:
offsets are committed after the Redis write; a record read again rewrites the same
projection. While Redis is down nothing is committed and the batch is retried; the
worker is not slowed down at all (it does not know the follower exists).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from streams.config import kafka_for
from streams.gate.state_codec import decode_changelog_value
from streams.view.projection import StatusView, ViewItem

log = logging.getLogger("sendgate.view.follow")


def changelog_holds_states(config: Mapping[str, Any], topic: str, timeout: float = 10.0) -> bool:
    """Does the changelog topic hold any record (low < high watermark on a partition)?

    Asked once when a view writer starts (issue 12 §3): only a writer that started on an
    empty (or not yet created) changelog may create the view marker without flagging the
    view stale. Kafka unreachable = "yes" (fail closed: a needless rebuild, never a view
    silently missing states). A retriable error (a topic just created whose partitions have
    no leader yet) is asked again until `timeout`. `config`: `Settings.kafka.consumer(...)`-
    style client config.
    """
    from confluent_kafka import Consumer, KafkaException

    from streams.kafka_watermarks import transient, watermarks

    consumer = Consumer({**config, "enable.auto.commit": False})
    deadline = time.monotonic() + timeout
    try:
        meta = consumer.list_topics(topic, timeout=timeout)
        tmeta = meta.topics.get(topic)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            return False
        for partition in tmeta.partitions:
            low, high = watermarks(consumer, topic, partition,
                                   patience_s=deadline - time.monotonic(),
                                   retry=transient, pause_s=0.2)
            if high > low:
                return True
        return False
    except KafkaException as exc:
        log.warning("view: cannot read the changelog's offsets (%s); assuming it holds "
                    "states", exc)
        return True
    finally:
        consumer.close()


@dataclass
class FollowStats:
    records: int = 0
    written: int = 0
    tombstones: int = 0
    unreadable: int = 0
    redis_failures: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "written": self.written,
            "tombstones": self.tombstones,
            "unreadable": self.unreadable,
            "redis_failures": self.redis_failures,
            "batches": self.batches,
            "seconds": round(time.monotonic() - self.started, 3),
        }


class ViewFollower:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        view: StatusView,
        group: str,
        *,
        batch: int = 1000,
        poll_timeout: float = 0.2,
    ) -> None:
        from confluent_kafka import Consumer

        self.topic = topic
        self.view = view
        self.batch = batch
        self.poll_timeout = poll_timeout
        self.stats = FollowStats()
        self.consumer = Consumer(kafka_for(bootstrap).consumer(group, {
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": False,
            "topic.metadata.refresh.interval.ms": 10_000,
        }))

    def _topic_exists(self) -> bool:
        meta = self.consumer.list_topics(self.topic, timeout=10)
        tmeta = meta.topics.get(self.topic)
        return tmeta is not None and tmeta.error is None and bool(tmeta.partitions)

    async def _subscribe(self, stop: asyncio.Event) -> bool:
        """Subscribe once the changelog exists (the worker creates it when it starts)."""
        waited = 0.0
        while not stop.is_set():
            if await asyncio.to_thread(self._topic_exists):
                self.consumer.subscribe([self.topic])
                return True
            if waited == 0.0:
                log.warning("view follow: waiting for %s (is the worker started?)", self.topic)
            await asyncio.sleep(1.0)
            waited += 1.0
        return False

    async def run(self, stop: asyncio.Event, *, idle_exit: float | None = None) -> FollowStats:
        """Follow until `stop` is set (or, with `idle_exit`, until nothing came for that
        many seconds: tests and one-off catch-ups)."""
        try:
            if not await self._subscribe(stop):
                return self.stats
            idle_since = time.monotonic()
            while not stop.is_set():
                msgs = await asyncio.to_thread(
                    self.consumer.consume, self.batch, self.poll_timeout
                )
                if not msgs:
                    if idle_exit is None:
                        continue
                    if not self.consumer.assignment():
                        # idle counts from the assignment: joining the group is not idling
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since > idle_exit:
                        break
                    continue
                idle_since = time.monotonic()
                await self._write(msgs, stop)
                if stop.is_set():
                    break
                await asyncio.to_thread(self._commit)
        finally:
            self.consumer.close()
        return self.stats

    def _commit(self) -> None:
        from confluent_kafka import KafkaError, KafkaException

        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError._NO_OFFSET:
                return  # nothing consumed since the last commit (only errors)
            # a rebalance took the partitions meanwhile: their new owner reads these
            # records again and rewrites the same projections (idempotent)
            log.warning("view follow: commit failed (%s); records will be read again",
                        exc.args[0].str())

    async def _write(self, msgs: list[Any], stop: asyncio.Event) -> None:
        latest: dict[str, bytes | None] = {}
        for msg in msgs:
            if msg.error():
                log.warning("view follow: consumer error %s", msg.error())
                continue
            key = msg.key()
            if key is None:
                continue
            self.stats.records += 1
            latest[key.decode()] = msg.value()  # the last state of the batch wins
        items: list[ViewItem] = []
        tombstones: list[str] = []
        for ckey, raw in latest.items():
            if raw is None:
                tombstones.append(ckey)
                continue
            try:
                state, hint = decode_changelog_value(raw)
            except Exception as exc:
                # fail closed: no answer rather than an old one
                self.stats.unreadable += 1
                tombstones.append(ckey)
                log.error("view follow: unreadable state for key %s…: %s", ckey[:12],
                          type(exc).__name__)
                continue
            item = await self.view.item_from_changelog(ckey, state, hint)
            if item is None:
                tombstones.append(ckey)
            else:
                items.append(item)
        delay = 0.05
        while True:
            try:
                self.stats.written += await self.view.write_now(items, tombstones)
                self.stats.tombstones += len(tombstones)
                self.stats.batches += 1
                return
            except (RedisError, OSError) as exc:
                self.stats.redis_failures += 1
                log.warning("view follow: Redis unavailable (%s); retrying in %.2fs",
                            type(exc).__name__, delay)
                if stop.is_set():
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
