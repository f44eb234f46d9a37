"""The Kafka task runtime: confluent-kafka, one consumer, one producer, RocksDB per task.

A task is partition p of the four input topics, of the internal (forward) topic and of the
changelog; the range assignor gives one member all topics' partition p (co-partitioned).
The runtime knows nothing about consent law: it feeds records to the `Gate` in merge
order (`runtime.merge`) and keeps the gate's state in per-task `TaskStore`s.

Commit cycle (Kafka Streams' order, issue 15 §5), every `commit_interval_s`:
  1. produce the changelog records of the dirty states (outputs went out as produced)
  2. flush the producer (at least once) or, under exactly-once, send the consumed offsets
     to the transaction and commit it (outputs, forwards, changelog, offsets: all or none)
  3. commit the input offsets (at least once)
  4. write the RocksDB batch with the changelog offsets it reflects.
A crash anywhere replays from the last committed offset: the folds are idempotent by
event_id and a repeated request re-emits its stored decision, identical (contract §6).

Rebalance (eager, range): on revoke the cycle runs and the tasks are closed; on assign
each task's store restores the changelog after its stored offset before records flow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams import topics as T
from streams.core.model import Order
from streams.gate.gate import Admitted, Folded, Gate, Rejected
from streams.gate.records import Headers, InRecord, OutRecord, header
from streams.kafka_config import KafkaClientConfig
from streams.kafka_watermarks import watermarks
from streams.ordering import INTERNAL_RANK, TOPIC_RANK
from streams.runtime.merge import TP, Merge
from streams.runtime.store import (
    INDEX_PREFIX,
    META_CHANGELOG_NEXT,
    META_INDEX_NEXT,
    IndexEntry,
    RocksMemory,
    StateCache,
    StoreOptions,
    TaskStore,
)

log = logging.getLogger("sendgate.runtime")

H_FOLDED: Final = "sg-folded"
"""On a forward: the process that produced it folded it already (it owned the target);
a repeated request found by the forward then re-emits nothing (the origin did)."""

CHANGELOG_SUFFIX: Final = "-contact-state-changelog"
INDEX_SUFFIX: Final = "-order-index-changelog"
"""Compacted topic of the order index (which contacts an order's latest version lists)."""
PRODUCER_MAX_REQUEST = 6 * 1024 * 1024
FETCH_BATCH = 1000
RESTORE_BATCH = 10_000
IDLE_FLUSH_S = 0.002
ENCODE_AHEAD_MIN_S = 0.001
ENCODE_AHEAD_CHUNK = 16
LIVE_TICK_S = 0.005
"""Live records are taken in ticks: each wait for a grace also collects what arrives in
the next 5 ms, so a turn of the loop handles a batch, not one record."""


def _statistics(interval_ms: int, on_stats: Callable[[str, str], None] | None,
                client: str) -> dict[str, object]:
    """librdkafka's statistics every `interval_ms`, handed to `on_stats(client, json)` (from
    inside `consume`/`poll`, on the worker's thread); nothing when off. A failing `on_stats`
    is logged, not raised: confluent-kafka would raise it out of `consume`, and metrics must
    not stop the gate."""
    if interval_ms <= 0 or on_stats is None:
        return {}

    def stats_cb(stats_json: str) -> None:
        try:
            on_stats(client, stats_json)
        except Exception:
            log.warning("%s statistics not taken", client, exc_info=True)

    return {"statistics.interval.ms": interval_ms, "stats_cb": stats_cb}


def changelog_topic(app_id: str, topic_prefix: str = "") -> str:
    """`{prefix}{app_id}-contact-state-changelog` (the name faust gave it, so `view
    follow`, `view rebuild` and `export` read either runtime's changelog)."""
    return f"{topic_prefix}{app_id}{CHANGELOG_SUFFIX}"


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    kafka: KafkaClientConfig
    app_id: str
    data_dir: Path
    partitions: int
    topic_prefix: str = ""
    exactly_once: bool = False
    commit_interval_s: float = 1.0
    max_task_idle_s: float = 5.0
    merge_grace_ms: int = 20
    linger_ms: int = 100
    """Producer batching of a worker that does not wait (a drain, a saturated one; a
    caught-up worker flushes before it waits, `_flush_idle`). librdkafka sends one
    ProduceRequest per partition (librdkafka#1700), each a cost to the broker: at 20 ms a
    4k events/s drain sent ~600 requests/s of ~10 records to its ~50 output and changelog
    partitions and the broker used 76-93 µs of CPU per event; at 100 ms 57-72 µs, which
    leaves two workers on two cores more CPU (NOTES, eleventh session)."""
    max_dirty: int = 4096
    """Commit early once this many states are dirty: a decoded state is ~14 KB of Python
    objects, so at 6k events/s a full 1 s interval held ~90 MB until its commit."""
    buffer_max: int = 1000
    rejoin_after_s: float = 60.0
    """After partitions were lost (session timeout), subscribe again if no assignment came
    within this time: once, after a broker restart, librdkafka 2.16 sent no JoinGroup in
    5 minutes and the worker decided nothing (chaos test, sixth session)."""
    fetch_min_bytes: int = 65536
    fetch_max_wait_ms: int = 5
    stats_interval_ms: int = 0
    """librdkafka statistics of the consumer and the producer, handed to `on_stats` (0: off)."""
    store: StoreOptions = field(default_factory=StoreOptions)

    @property
    def group_id(self) -> str:
        return self.topic_prefix + self.app_id

    def order_warning(self) -> str | None:
        """Why the merge's order guarantee does not hold with these settings, if so: the
        grace must outlast one fetch cycle, and the broker may hold a fetch for
        `fetch_max_wait_ms` before it answers (issue 15 §4; 0 = best effort by choice)."""
        if 0 < self.merge_grace_ms <= self.fetch_max_wait_ms:
            return (f"merge grace {self.merge_grace_ms} ms <= fetch wait "
                    f"{self.fetch_max_wait_ms} ms: a live record may be folded before one "
                    "appended just before it to another partition; keep "
                    "SENDGATE_MERGE_GRACE_MS well above SENDGATE_FETCH_MAX_WAIT_MS")
        return None


class DeliveryFailed(RuntimeError):
    """A record could not be delivered after the producer's retries: stop, commit nothing
    past it (the records are read again by the next owner)."""


class TaskRuntime:
    def __init__(self, gate: Gate, cfg: RuntimeConfig,
                 on_lag: Callable[[str, int, int], None] | None = None,
                 on_late: Callable[[str], None] | None = None,
                 on_stats: Callable[[str, str], None] | None = None) -> None:
        self.gate = gate
        self.cfg = cfg
        self.on_lag = on_lag
        self.on_late = on_late
        prefix = cfg.topic_prefix
        self.inputs = tuple(prefix + t for t in T.INPUT_TOPICS)
        self.internal = prefix + T.CONTACT_EVENTS
        self.changelog = changelog_topic(cfg.app_id, prefix)
        self.index_topic = f"{prefix}{cfg.app_id}{INDEX_SUFFIX}"
        rank = {prefix + spec.name: TOPIC_RANK[str(spec.event_type)] for spec in T.INPUT_SPECS}
        rank[self.internal] = INTERNAL_RANK
        # a lagging internal partition holds the merge too (a forward appended but not yet
        # fetched); not under exactly-once, where transaction markers count in its high
        # watermark and would make it look behind for ever
        waits_for = frozenset(self.inputs) | (
            frozenset() if cfg.exactly_once else frozenset({self.internal}))
        self.merge = Merge(rank, cfg.max_task_idle_s, self._high_watermark, waits_for,
                           cfg.merge_grace_ms)
        self.stores: dict[int, TaskStore] = {}
        self.rocks_memory = RocksMemory(cfg.store)
        self.state_cache = StateCache(cfg.store.cache_states)
        self.processed: dict[TP, int] = {}  # next offset to commit per input partition
        self.assigned_hw: dict[TP, int] = {}
        self.paused: set[TP] = set()
        self.changelog_next: dict[int, int] = {}
        self.index_next: dict[int, int] = {}
        self.failure: BaseException | None = None
        self.stop_requested = threading.Event()
        self.in_txn = False
        self.records = 0
        self._last_commit = time.monotonic()
        self._last_lag = 0.0
        self._lost_at: float | None = None  # partitions lost, no assignment since
        self._drained_ms = 0  # wall time (ms) the fetch queue was last seen empty
        self.consumer = Consumer(cfg.kafka.consumer(cfg.group_id, {
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "isolation.level": "read_committed",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 2_000,
            "max.poll.interval.ms": 600_000,
            "fetch.min.bytes": cfg.fetch_min_bytes,
            "fetch.wait.max.ms": cfg.fetch_max_wait_ms,
            "queued.max.messages.kbytes": 32768,
            "enable.partition.eof": False,
            "on_commit": self._offsets_committed,
            **_statistics(cfg.stats_interval_ms, on_stats, "consumer"),
        }))
        extra: dict[str, object] = {
            "linger.ms": cfg.linger_ms,
            "acks": "all",
            "enable.idempotence": True,
            "message.max.bytes": PRODUCER_MAX_REQUEST,
            "compression.type": "lz4",
            **_statistics(cfg.stats_interval_ms, on_stats, "producer"),
        }
        if cfg.exactly_once:
            extra["transactional.id"] = f"{cfg.group_id}-{_stable_id(cfg.data_dir)}"
        self.producer = Producer(cfg.kafka.producer(extra))

    # -- set-up ------------------------------------------------------------------------

    def ensure_changelogs(self) -> None:
        """Create the compacted changelog topics (state, order index) if missing."""
        admin = AdminClient(self.cfg.kafka.admin())  # type: ignore[arg-type]
        wanted = [self.changelog, self.index_topic]
        existing = admin.list_topics(timeout=10).topics
        new = [NewTopic(name, num_partitions=self.cfg.partitions, replication_factor=1,
                        config={"cleanup.policy": "compact",
                                "max.message.bytes": str(PRODUCER_MAX_REQUEST)})
               for name in wanted if name not in existing]
        if not new:
            return
        for fut in admin.create_topics(new).values():
            try:
                fut.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        for _ in range(50):
            topics = admin.list_topics(timeout=10).topics
            if all(name in topics for name in wanted):
                return
            time.sleep(0.2)

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        self.ensure_changelogs()
        if self.cfg.exactly_once:
            self.producer.init_transactions(60)
        self._subscribe()
        try:
            while not self.stop_requested.is_set():
                self._check()
                wait, collect = 0.2, False
                if self.merge.buffered:
                    grace = self.merge.grace_left_s(int(time.time() * 1000))
                    if grace:
                        wait, collect = min(0.05, grace + LIVE_TICK_S), True
                    else:
                        # held by a lagging partition: wait for its records; else (a
                        # drain cut short by the commit, a grace passed since the last
                        # fetch) the merge can go on as soon as the queue is looked at
                        wait = 0.05 if self.merge.held(time.monotonic()) else 0.0
                for m in self._fetch(wait, collect):
                    self._buffer(m)
                self.merge.refresh_blocked()
                self._drain()
                self._resume_drained()
                now = time.monotonic()
                if (now - self._last_commit >= self.cfg.commit_interval_s
                        or self._dirty_count() >= self.cfg.max_dirty):
                    self.commit()
                if self.on_lag is not None and now - self._last_lag >= 5.0:
                    self._report_lag()
                if self._lost_at is not None:
                    self._rejoin_if_stuck(now)
            self.commit(final=True)
        finally:
            try:
                self.consumer.close()  # revokes: runs the commit cycle once more
            finally:
                for store in self.stores.values():
                    store.close()
                self.stores.clear()
                self.producer.flush(10)

    def _subscribe(self) -> None:
        self.consumer.subscribe(
            [*self.inputs, self.internal],
            on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost,
        )

    def _rejoin_if_stuck(self, now: float) -> None:
        """Subscribe again when lost partitions were not followed by an assignment (even
        an empty one) within `rejoin_after_s`: the group has forgotten this member and
        the client does not ask to join."""
        assert self._lost_at is not None
        if now - self._lost_at < self.cfg.rejoin_after_s:
            return
        log.warning("no assignment %.0fs after the partitions were lost: subscribing again",
                    now - self._lost_at)
        self._lost_at = now
        self.consumer.unsubscribe()
        self._subscribe()

    def _fetch(self, timeout_s: float, collect: bool = False) -> list[Message]:
        """What the fetch queue holds now, or the first record within `timeout_s`; with
        `collect`, every record that arrives within `timeout_s`.

        `consume(n, t)` waits until n records or t have passed (librdkafka's batch call), so
        at moderate load each batch waited the whole timeout: p50 latency ~250 ms at 1k/s.
        Here the wait ends with the first record and the rest of the queue is taken at once
        — unless the merge holds live records for their grace: then nothing can be taken
        before it ends, and waking for each arriving record cost a loop turn per record (a
        live worker spent 2.3 times the CPU per event of a draining one, sixth session), so the
        grace and one `LIVE_TICK_S` are waited out in one call.
        """
        consumer = self.consumer
        if collect:
            timeout_s -= self._flush_idle()
            timeout_s -= self._encode_ahead(timeout_s / 2)
            return self._drained(consumer.consume(FETCH_BATCH, max(0.0, timeout_s)),
                                 FETCH_BATCH)
        msgs = consumer.consume(FETCH_BATCH, 0)
        if msgs:
            return self._drained(msgs, FETCH_BATCH)
        timeout_s -= self._flush_idle()
        first = consumer.poll(max(0.0, timeout_s))
        if first is None:
            self._drained_ms = int(time.time() * 1000)
            return []
        return [first, *self._drained(consumer.consume(FETCH_BATCH - 1, 0), FETCH_BATCH - 1)]

    def _drained(self, msgs: list[Message], asked: int) -> list[Message]:
        """Note when the fetch queue was last seen empty: a batch call that returned fewer
        records than asked emptied it. The merge's grace counts from this time, not from
        the clock during a drain (see `_drain`)."""
        if len(msgs) < asked:
            self._drained_ms = int(time.time() * 1000)
        return msgs

    def _encode_ahead(self, budget_s: float) -> float:
        """Encode dirty states for the next commit within `budget_s` (see
        `TaskStore.encode_ahead`); the seconds it took."""
        if budget_s < ENCODE_AHEAD_MIN_S:
            return 0.0
        clock = time.monotonic
        started = clock()
        for store in self.stores.values():
            while store.unencoded:
                store.encode_ahead(ENCODE_AHEAD_CHUNK)
                if clock() - started >= budget_s:
                    return clock() - started
        return clock() - started

    def _flush_idle(self) -> float:
        """Send what was produced now, before the loop waits; the seconds it took.

        `linger_ms` batches the producer's records for throughput, and a draining worker
        never waits; a live one waits for every grace, so its decisions would leave up to
        `linger_ms` later than they could. `flush` ignores the linger for what is queued
        (librdkafka) and is bounded by `IDLE_FLUSH_S`: the records are sent now, not
        waited for."""
        if not len(self.producer):
            return 0.0
        started = time.monotonic()
        self.producer.flush(IDLE_FLUSH_S)
        return time.monotonic() - started

    def stop(self) -> None:
        self.stop_requested.set()

    def _check(self) -> None:
        if self.failure is not None:
            raise DeliveryFailed(str(self.failure)) from self.failure

    def _buffer(self, m: Message) -> None:
        err = m.error()
        if err is not None:
            if err.fatal():
                raise KafkaException(err)
            log.warning("consumer: %s", err)
            return
        ts_type, ts = m.timestamp()
        topic, partition = cast(str, m.topic()), cast(int, m.partition())
        rec = InRecord(topic, partition, cast(int, m.offset()), int(ts) if ts_type else 0,
                       m.key(), m.value(), cast(Headers, m.headers() or []))
        late = self.merge.add(rec)
        if late:
            log.warning("merge: %s[%d]@%d fetched after a record %d ms later was folded",
                        topic, partition, rec.offset, late)
            if self.on_late is not None:
                self.on_late(topic)
        tp = (topic, partition)
        if self.merge.size(tp) >= self.cfg.buffer_max and tp not in self.paused:
            self.consumer.pause([TopicPartition(topic, partition)])
            self.paused.add(tp)

    def _resume_drained(self) -> None:
        if not self.paused:
            return
        low = self.cfg.buffer_max // 2
        ready = [tp for tp in self.paused if self.merge.size(tp) <= low]
        if ready:
            self.consumer.resume([TopicPartition(t, p) for t, p in ready])
            self.paused.difference_update(ready)

    def _drain(self) -> None:
        """Fold records in merge order until the merge holds or the commit is due. The
        grace is judged against `_drained_ms`: records fetched while the drain runs wait
        in the fetch queue, unseen by the merge, so every 256 records the queue is taken
        into the merge (which moves `_drained_ms` on) and the drain goes on."""
        merge, process = self.merge, self._process
        deadline = time.monotonic() + self.cfg.commit_interval_s
        n = 0
        while True:
            rec = merge.pop(time.monotonic(), self._drained_ms)
            if rec is None:
                return
            process(rec)
            n += 1
            if n % 256 == 0:
                self.producer.poll(0)
                if (time.monotonic() >= deadline
                        or self._dirty_count() >= self.cfg.max_dirty):
                    return
                self._top_up()

    def _top_up(self) -> None:
        msgs = self._drained(self.consumer.consume(FETCH_BATCH, 0), FETCH_BATCH)
        for m in msgs:
            self._buffer(m)
        if msgs:
            self.merge.refresh_blocked()

    def _dirty_count(self) -> int:
        return sum(len(store.dirty) for store in self.stores.values())

    def _high_watermark(self, tp: TP) -> int:
        """The larger of librdkafka's cached high watermark and the one asked of the broker
        at assignment. The cache is updated by fetch responses only, not by that query: a
        partition this process owned before keeps its old value until its first fetch, so
        a backlog looked caught up and the merge did not wait for it (the SIGKILL chaos
        flake: a survivor folded a later order before an earlier request of the same
        contact). A high watermark never goes back, so the larger is the fresher.

        Unknown (-1, so the merge counts the partition as lagging, for at most
        `max_task_idle`) until the cache holds a value: until then the client has not
        fetched the partition at all — after assignment it first looks up the offset and
        the leader, which for one partition of just-created topics came late, and its first
        records were folded after later ones (the full-speed audit flake of the eighth
        session's last fresh-clone run)."""
        try:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
        except KafkaException:
            return -1
        if high is None or high < 0:
            return -1
        return max(int(high), self.assigned_hw.get(tp, -1))

    # -- one record --------------------------------------------------------------------

    def _process(self, rec: InRecord) -> None:
        gate = self.gate
        if rec.topic == self.internal:
            self._fold_forward(rec)
        else:
            adm = gate.admit(rec)
            if isinstance(adm, Rejected):
                log.warning("dead-lettered %s:%s:%s reason=%s field=%s", rec.topic,
                            rec.partition, rec.offset, adm.rejection.reason.value,
                            adm.rejection.field)
                self._send(adm.dead_letter)
            else:
                self._fold_admitted(adm)
        self.processed[(rec.topic, rec.partition)] = rec.offset + 1
        self.records += 1

    def _fold_admitted(self, adm: Admitted) -> None:
        gate, rec = self.gate, adm.record
        for route in adm.routes:
            store = self.stores.get(route.partition)
            here = route.index == 0 and route.partition == rec.partition
            if not here:
                fwd = gate.forward(adm, route)
                if store is not None:
                    fwd = OutRecord(fwd.topic, fwd.key, fwd.value,
                                    [*fwd.headers, (H_FOLDED, b"1")], fwd.partition,
                                    fwd.timestamp_ms)
                self._send(fwd)
            if store is not None:
                self._emit(gate.fold(store, gate.contact_event(adm, route), rec))
        if isinstance(adm.event, Order):
            self._reindex_order(adm)

    def _reindex_order(self, adm: Admitted) -> None:
        """Contract §2: a later version of an order replaces the earlier one as a whole, so
        a contact the new version no longer lists forgets the order. The index (order ->
        listed contacts) lives in the task of the partition the order's records land on;
        a forget goes to the dropped contact's owner like a forward."""
        rec = adm.record
        home = self.stores.get(rec.partition)
        if home is None:
            return
        order = cast(Order, adm.event)
        okey = f"{len(order.tenant)}:{order.tenant}|{order.order_id}".encode()
        listed: list[IndexEntry] = [
            (r.key.decode(), r.partition, str(r.contact.type)) for r in adm.routes]
        keys = {k for k, _, _ in listed}
        for key, partition, ctype in home.order_contacts(okey):
            if key in keys:
                continue
            fwd = self.gate.forget_forward(adm, key.encode(), partition, ctype)
            target = self.stores.get(partition)
            if target is not None:
                self.gate.fold(target, self.gate.forget_event(adm, key.encode(), ctype), rec)
                fwd = OutRecord(fwd.topic, fwd.key, fwd.value, [*fwd.headers, (H_FOLDED, b"1")],
                                fwd.partition, fwd.timestamp_ms)
            self._send(fwd)
        home.set_order_contacts(okey, listed)

    def _fold_forward(self, rec: InRecord) -> None:
        store = self.stores.get(rec.partition)
        if store is None:
            return
        ce = self.gate.open_forward(rec)
        if isinstance(ce, Rejected):
            self._send(ce.dead_letter)
            return
        folded = self.gate.fold(store, ce, rec)
        if folded.duplicate and header(rec.headers, H_FOLDED) == b"1":
            return  # the origin process folded it and emitted the decision
        self._emit(folded)

    def _emit(self, folded: Folded) -> None:
        if folded.dead_letter is not None:
            self._send(folded.dead_letter)
        for out in folded.outputs:
            self._send(out)

    def _send(self, out: OutRecord) -> None:
        if self.cfg.exactly_once:
            self._begin()
        partition = -1 if out.partition is None else out.partition  # -1: the partitioner
        timestamp = 0 if out.timestamp_ms is None else out.timestamp_ms  # 0: now
        while True:
            try:
                self.producer.produce(out.topic, out.value, out.key, partition=partition,
                                      on_delivery=self._delivered, timestamp=timestamp,
                                      headers=out.headers)  # type: ignore[arg-type]  # list invariance
                return
            except BufferError:
                self.producer.poll(0.1)

    def _begin(self) -> None:
        if self.cfg.exactly_once and not self.in_txn:
            self.producer.begin_transaction()
            self.in_txn = True

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            log.critical("could not deliver a record to %s: %s", msg.topic(), err)
            self.failure = KafkaException(err)

    def _produce_to(self, topic: str, key: bytes, value: bytes, partition: int,
                    on_delivery: Callable[[KafkaError | None, Message], None]) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, partition=partition,
                                      on_delivery=on_delivery)
                return
            except BufferError:
                self.producer.poll(0.1)

    def _changelog_delivered(self, err: KafkaError | None, msg: Message) -> None:
        self._track(err, msg, self.changelog_next)

    def _index_delivered(self, err: KafkaError | None, msg: Message) -> None:
        self._track(err, msg, self.index_next)

    def _track(self, err: KafkaError | None, msg: Message, nexts: dict[int, int]) -> None:
        if err is not None:
            self._delivered(err, msg)
            return
        p, off = msg.partition(), msg.offset()
        if p is None or off is None or off < 0:
            return
        if off + 1 > nexts.get(p, -1):
            nexts[p] = off + 1

    # -- commit cycle ------------------------------------------------------------------

    def commit(self, final: bool = False) -> None:
        """One commit cycle in Kafka Streams' order: produce the dirty states, flush, commit
        the offsets, write the local store. The periodic commit sends the offsets without
        waiting for the coordinator's answer (the store is written as soon as the records
        are flushed either way, and a commit that fails only means the records are read
        again: folds are idempotent and a repeated request re-emits its stored decision);
        a `final` one, on revocation or at the end, waits for it."""
        self._last_commit = started = time.monotonic()
        pending: dict[int, list[tuple[bytes, bytes | None]]] = {}
        records: list[tuple[bytes, bytes]]
        states = ahead = 0
        for p, store in self.stores.items():
            records = store.take_dirty()
            if not records:
                continue
            states += len(records)
            ahead += store.encoded_ahead_used
            self._begin()
            for key, value in records:
                self._produce_to(self.changelog, key, value, p, self._changelog_delivered)
            pending[p] = [(k, v) for k, v in records]
        pending_index: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for p, store in self.stores.items():
            entries = store.take_dirty_index()
            if not entries:
                continue
            self._begin()
            for key, value in entries:
                self._produce_to(self.index_topic, key, value, p, self._index_delivered)
            pending_index[p] = [(k, v) for k, v in entries]
        offsets = [TopicPartition(t, p, off) for (t, p), off in self.processed.items()]
        produced = time.monotonic()
        if self.cfg.exactly_once:
            if offsets:
                self._begin()  # records that produced nothing still move the offsets
            if self.in_txn:
                if offsets:
                    self.producer.send_offsets_to_transaction(
                        offsets, self.consumer.consumer_group_metadata(), 30)
                self.producer.commit_transaction(60)
                self.in_txn = False
        else:
            while self.producer.flush(1.0):
                log.warning("commit: waiting for the producer (%d records in flight)",
                            len(self.producer))
                if self.stop_requested.is_set() and self.failure is not None:
                    break
        self._check()
        flushed = time.monotonic()
        if offsets and log.isEnabledFor(logging.DEBUG):
            log.debug("commit: %s", " ".join(
                f"{o.topic}:{o.partition}@{o.offset}" for o in offsets))
        if not self.cfg.exactly_once and offsets:
            try:
                if final:
                    self.consumer.commit(offsets=offsets, asynchronous=False)
                else:
                    self.consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:
                # a rebalance or an outage: the records are read again, folds are
                # idempotent and a repeated request re-emits its stored decision
                log.warning("commit of offsets failed: %s", exc.args[0])
        self.processed.clear()
        committed = time.monotonic()
        for p, written in pending.items():
            task = self.stores.get(p)
            if task is not None:
                task.write(written, self.changelog_next.get(p))
        for p, written in pending_index.items():
            task = self.stores.get(p)
            if task is not None:
                task.write(written, self.index_next.get(p), meta=META_INDEX_NEXT,
                           prefix=INDEX_PREFIX)
        if states and log.isEnabledFor(logging.DEBUG):
            ms = [(b - a) * 1000 for a, b in zip(
                (started, produced, flushed, committed),
                (produced, flushed, committed, time.monotonic()), strict=True)]
            log.debug("commit: %d states (%d encoded ahead): produce %.1f ms, flush %.1f "
                      "ms, offsets %.1f ms, store %.1f ms", states, ahead, *ms)

    # -- rebalance ---------------------------------------------------------------------

    @staticmethod
    def _offsets_committed(err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None:
            log.warning("commit of offsets failed: %s (the records are read again)", err)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._lost_at = None
        tasks = sorted({tp.partition for tp in partitions})
        log.info("assigned tasks %s", tasks)
        started = time.monotonic()
        restored = self._open_tasks(tasks)
        if restored:
            secs = time.monotonic() - started
            log.info("restored %d changelog records in %.2fs (%.0f/s)", restored, secs,
                     restored / max(secs, 1e-6))
        committed = consumer.committed(partitions, timeout=30)
        for tp in committed:
            key = (tp.topic, tp.partition)
            low, high = watermarks(consumer, tp.topic, tp.partition)
            start = tp.offset if tp.offset is not None and tp.offset >= 0 else low
            self.assigned_hw[key] = high
            self.merge.assign(key, start)
            log.debug("assigned %s:%d from %d (committed %s, high %d)", tp.topic,
                      tp.partition, start, tp.offset, high)
        consumer.assign(partitions)
        consumer.resume(partitions)  # a partition paused before a rebalance must not stay so

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoking %d partitions", len(partitions))
        try:
            self.commit(final=True)
        finally:
            self._drop_tasks()

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %d partitions (session timed out); dropping their state",
                    len(partitions))
        self._lost_at = time.monotonic()
        self.processed.clear()
        if self.cfg.exactly_once and self.in_txn:
            self.producer.abort_transaction(30)
            self.in_txn = False
        for store in self.stores.values():
            store.dirty.clear()
            store.dirty_index.clear()
        self._drop_tasks()

    def _drop_tasks(self) -> None:
        self.merge.clear()
        self.paused.clear()
        self.assigned_hw.clear()
        for store in self.stores.values():
            store.close()
        self.stores.clear()

    def _open_tasks(self, tasks: list[int]) -> int:
        """Open the tasks' stores and restore both changelogs (states, order index) after
        each store's offsets, all partitions through one consumer in large fetches."""
        restorer = Consumer(self.cfg.kafka.consumer(f"{self.cfg.group_id}-restore", {
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.max.bytes": 64 << 20,
            "max.partition.fetch.bytes": 16 << 20,
            "fetch.wait.max.ms": 10,
        }))
        try:
            for p in tasks:
                path = self.cfg.data_dir / f"task-{p}"
                store = TaskStore(path, p, self.cfg.store, self.rocks_memory,
                                  self.state_cache)
                for topic, meta in ((self.changelog, META_CHANGELOG_NEXT),
                                    (self.index_topic, META_INDEX_NEXT)):
                    _, high = watermarks(restorer, topic, p)
                    start = store.changelog_next(meta)
                    if start is not None and start > high:
                        log.warning("task %d: local store is ahead of %s (%d > %d); "
                                    "rebuilding it", p, topic, start, high)
                        store.close()
                        TaskStore.wipe(path)
                        store = TaskStore(path, p, self.cfg.store, self.rocks_memory,
                                          self.state_cache)
                self.stores[p] = store
            return (self._restore(restorer, self.changelog, META_CHANGELOG_NEXT, b"",
                                  self.changelog_next, tasks)
                    + self._restore(restorer, self.index_topic, META_INDEX_NEXT,
                                    INDEX_PREFIX, self.index_next, tasks))
        finally:
            restorer.close()

    def _restore(self, restorer: Consumer, topic: str, meta: bytes, prefix: bytes,
                 nexts: dict[int, int], tasks: list[int]) -> int:
        todo: dict[int, int] = {}  # task -> the changelog's high watermark
        starts: list[TopicPartition] = []
        for p in tasks:
            store = self.stores[p]
            low, high = watermarks(restorer, topic, p)
            start = store.changelog_next(meta)
            begin = low if start is None else max(start, low)
            nexts[p] = high
            if begin < high:
                todo[p] = high
                starts.append(TopicPartition(topic, p, begin if begin > 0 else OFFSET_BEGINNING))
            else:
                store.write([], high, meta=meta)
        if not todo:
            return 0
        restorer.assign(starts)
        done, idle = 0, 0
        eof = KafkaError._PARTITION_EOF
        stores = self.stores
        while todo:
            msgs = restorer.consume(RESTORE_BATCH, 0) or restorer.consume(1, 1.0)
            idle = 0 if msgs else idle + 1
            batches: dict[int, list[tuple[bytes, bytes | None]]] = {}
            positions: dict[int, int] = {}
            finished: set[int] = set()
            for m in msgs:
                err = m.error()
                part = cast(int, m.partition())
                if err is not None:
                    if err.code() == eof:
                        finished.add(part)
                        continue
                    raise KafkaException(err)
                key = m.key()
                if key is not None:
                    batch = batches.get(part)
                    if batch is None:
                        batch = batches[part] = []
                    batch.append((key, m.value()))
                positions[part] = cast(int, m.offset()) + 1
            for p, batch in batches.items():
                done += len(batch)
                stores[p].write(batch, positions[p], meta=meta, prefix=prefix, wal=False)
            for p, pos in positions.items():
                if p in todo and pos >= todo[p]:
                    finished.add(p)
            for p in finished:
                if p in todo:
                    stores[p].write([], todo.pop(p), meta=meta)
                    stores[p].db.flush(True)  # the unlogged batches are durable before
                    # any logged write follows (a crash never keeps a later logged
                    # write without the restored states under it)
            if idle > 30:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT,
                                                f"restore of {topic} made no progress"))
        restorer.unassign()
        return done

    # -- metrics -----------------------------------------------------------------------

    def _report_lag(self) -> None:
        self._last_lag = time.monotonic()
        assert self.on_lag is not None
        for (topic, p), part in list(self.merge.parts.items()):
            high = self._high_watermark((topic, p))
            if high >= 0 and part.next_offset >= 0:
                self.on_lag(topic, p, max(0, high - part.next_offset + len(part.buffer)))


def _stable_id(path: Path) -> str:
    import hashlib

    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]

