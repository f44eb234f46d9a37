"""The faust-streaming app: two agents and one changelog-backed table.

`ingest` consumes the four input topics, `gate` consumes the internal topic re-keyed by
contact key and is the only writer of the `contact-state` table. Both run at
concurrency 1: ordering per partition is part of the contract (§7, arrival order), and
faust loses in-flight events of stateful agents at higher concurrency.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from faust.streams import _current_event

from streams import topics as T
from streams.app.faust_patches import apply_patches
from streams.app.telemetry import Telemetry
from streams.codecs.registry import get_codec
from streams.compose import WorkerSettings
from streams.config import Settings, hmac_key
from streams.core.engine import ContactState
from streams.core.policy import PolicyBook
from streams.gate.gate import Gate, Rejected
from streams.gate.records import InRecord, OutRecord, headers_as_list
from streams.gate.state_codec import ViewHint, decode_state, encode_state
from streams.policies import load_policy_book
from streams.view.follower import changelog_holds_states
from streams.view.metrics import expose_view_metrics
from streams.view.projection import StatusView

log = logging.getLogger("sendgate.worker")

STATE_TABLE = "contact-state"


class _TableStore:
    """The gate's `StateStore` over the faust table (bytes), with a cache of decoded states
    checked against the stored bytes."""

    def __init__(self, table: Any, size: int) -> None:
        self.table = table
        self.size = size
        self.states: OrderedDict[bytes, tuple[bytes, ContactState]] = OrderedDict()

    def get(self, key: bytes) -> ContactState | None:
        raw = self.table.get(key)
        if raw is None:
            return None
        cached = self.states.get(key)
        if cached is not None and cached[0] == raw:
            return cached[1]
        return decode_state(raw)

    def put(self, key: bytes, state: ContactState, hint: ViewHint) -> None:
        raw = encode_state(state, hint)
        self.table[key] = raw
        if self.size:
            self.states[key] = (raw, state)
            if len(self.states) > self.size:
                self.states.popitem(last=False)

    def clear(self) -> None:
        self.states.clear()
set_current_event = _current_event.set


@dataclass
class WorkerOptions:
    settings: Settings
    topic_prefix: str = ""
    data_dir: Path | None = None
    web_port: int | None = None
    secret: bytes | None = None
    policies: PolicyBook | None = None
    telemetry: Telemetry | None = None
    status_view: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    worker: WorkerSettings = field(default_factory=WorkerSettings)


def _tune_fetches(min_bytes: int = 65536, max_wait_ms: int = 10) -> None:
    """Let the broker hold a fetch until `SENDGATE_FETCH_MIN_BYTES` (64 KiB) are there or
    `SENDGATE_FETCH_MAX_WAIT_MS` (10 ms) have passed.

    faust builds its aiokafka consumer with fetch_min_bytes=1: under a steady trickle every
    fetch returns a handful of records and the consumer thread spends its time encoding
    and parsing fetch requests for ~60 partitions (a fifth of a core at 1k events/s, taken
    from the agents through the GIL). A 10 ms wait batches them; a backlog fills the
    fetch at once. faust exposes neither setting, so they are set on the consumer before
    it starts (guarded: without the hook, faust's defaults stay).
    """
    from faust.transport.drivers import aiokafka as driver

    cls: Any = getattr(driver, "AIOKafkaConsumerThread", None)
    create = getattr(cls, "_create_worker_consumer", None)
    if cls is None or create is None or getattr(cls, "_sendgate_fetch_tuned", False):
        return

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        if hasattr(consumer, "_fetch_min_bytes") and hasattr(consumer, "_fetch_max_wait_ms"):
            consumer._fetch_min_bytes = min_bytes
            consumer._fetch_max_wait_ms = max_wait_ms
        return consumer

    cls._create_worker_consumer = _create_worker_consumer
    cls._sendgate_fetch_tuned = True


STREAM_SETTINGS: dict[str, Any] = {
    "consumer_auto_offset_reset": "earliest",
    "producer_max_request_size": 6 * 1024 * 1024,
    "consumer_max_fetch_size": 8 * 1024 * 1024,
    "producer_acks": -1,
    "broker_commit_every": 1000,
    "broker_session_timeout": 10.0,
    "broker_heartbeat_interval": 2.0,
    "broker_commit_interval": 1.0,
    "stream_wait_empty": False,
    "worker_redirect_stdouts": False,
}
"""The worker's consumer, producer and commit settings (shared with bench/faust_null.py)."""


def rocksdb_options(write_buffer_mb: int = 8, block_cache_mb: int = 16) -> dict[str, int]:
    """Memory of the table's RocksDB, per partition (faust opens one DB per partition).

    faust's defaults (3 x 64 MiB write buffers and a 2 GiB block cache, per partition) let
    one worker with 12 partitions grow to ~2 GB RSS over a 1M-event run (bench/results).
    `SENDGATE_ROCKSDB_WRITE_BUFFER_MB` (8, two of them) and
    `SENDGATE_ROCKSDB_BLOCK_CACHE_MB` (16) bound it to ~32 MiB per partition; reads that
    miss the cache come from the OS page cache.
    """
    mib = 1024 * 1024
    return {
        "write_buffer_size": write_buffer_mb * mib,
        "max_write_buffer_number": 2,
        "block_cache_size": block_cache_mb * mib,
        "block_cache_compressed_size": 0,
    }


def create_app(opts: WorkerOptions) -> faust.App:
    apply_patches()
    _tune_fetches(opts.worker.fetch_min_bytes, opts.worker.fetch_max_wait_ms)
    s = opts.settings
    prefix = opts.topic_prefix
    data_dir = opts.data_dir or s.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    codec = get_codec(s)
    secret = opts.secret if opts.secret is not None else hmac_key()
    policies = opts.policies or (
        load_policy_book(s.policy_file) if s.policy_file else PolicyBook.default()
    )
    telemetry = opts.telemetry or Telemetry.from_settings(s)

    app = faust.App(
        prefix + s.app_id,
        broker=f"kafka://{s.kafka_bootstrap}",
        store="rocksdb://",
        datadir=str(data_dir),
        processing_guarantee=s.processing_guarantee,
        topic_partitions=s.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        web_enabled=opts.web_port is not None or s.web_port > 0,
        web_port=opts.web_port or s.web_port,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        **STREAM_SETTINGS,
        table_standby_replicas=int(opts.extra.get("standby_replicas", 0)),
        **{k: v for k, v in opts.extra.items() if k != "standby_replicas"},
    )

    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(*(prefix + name for name in T.INPUT_TOPICS), **raw)
    contact_events = app.topic(
        prefix + T.CONTACT_EVENTS, partitions=s.partitions, **raw
    )
    out_topics: dict[str, Any] = {}

    def out_topic(name: str) -> Any:
        topic = out_topics.get(name)
        if topic is None:
            topic = out_topics[name] = app.topic(name, **raw)
        return topic

    state_table = app.Table(
        STATE_TABLE, partitions=s.partitions, key_type=bytes, value_type=bytes,
        options=rocksdb_options(opts.worker.rocksdb_write_buffer_mb,
                                opts.worker.rocksdb_block_cache_mb),
    )

    # Partitions this worker owns right now. A batch may be taken before a rebalance; what
    # is left of it when the rebalance is seen is skipped, as faust's own stream skips a
    # message of an older consumer generation: this worker reads it again from the
    # committed offset, or the new owner does, so no state is written for a lost partition.
    owned: set[Any] = set()

    skipped: set[Any] = set()

    def stale(msg: Any) -> bool:
        if msg.tp in owned and msg.generation_id == app.consumer_generation_id:
            return False
        if (msg.tp, msg.generation_id) not in skipped:  # once per partition and generation
            skipped.add((msg.tp, msg.generation_id))
            log.warning("skipping records of %s:%s fetched in generation %s (now %s, %s)",
                        msg.tp.topic, msg.tp.partition, msg.generation_id,
                        app.consumer_generation_id,
                        "owned" if msg.tp in owned else f"not owned; {len(owned)} owned")
        return True

    # Batches: each agent handles up to `batch_max` events per wake-up (waiting at most
    # `batch_within` s for a batch to fill), so its output records, changelog records and
    # status-view writes leave in few produce requests and Redis pipelines instead of
    # one round trip per event. Events are acked after their batch: at least once.
    ws = opts.worker
    batch_max = ws.batch_max
    batch_within = ws.batch_within
    store = _TableStore(state_table, ws.state_cache)
    gate = Gate(codec, policies, secret, partitions=s.partitions, topic_prefix=prefix,
                telemetry=telemetry)
    view: StatusView | None = (
        StatusView.from_settings(
            s.view, s.redis_url, policies,
            # issue 12 §3: an empty changelog at start = a new view, nothing to lose
            source_had_states=changelog_holds_states(
                s.kafka.consumer(f"{prefix}{s.app_id}-view-probe"),
                f"{prefix}{s.app_id}-{STATE_TABLE}-changelog",
            ),
        ) if opts.status_view else None
    )
    if view is not None:
        status_view = view
        expose_view_metrics(telemetry.metrics.registry, view)

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]
        async def _flush_view(sender: Any, revoked: Any, **kwargs: Any) -> None:
            await status_view.flush(timeout=2.0)

        @app.on_before_shutdown.connect  # type: ignore[arg-type]
        async def _close_view(sender: Any, **kwargs: Any) -> None:
            await status_view.aclose(flush_timeout=2.0)

    # At least once: a record is handed to the producer before its source event is acked,
    # and faust flushes the producer before it commits offsets. With that guarantee the
    # records go straight to the producer, without faust's per-message FutureMessage,
    # callbacks and sensors (a third of the worker's CPU); under exactly_once they keep
    # going through the topic, which attaches them to the transaction.
    direct = s.processing_guarantee == "at_least_once"
    _crashing: list[Any] = []

    def _delivered(fut: Any) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:  # retries are exhausted: do not commit past a lost record
            log.critical("producer could not deliver a record: %r; stopping the worker", exc)
            _crashing.append(asyncio.ensure_future(app.crash(exc)))

    async def send(rec: OutRecord) -> None:
        if direct:
            fut: Any = await app.producer.send(
                rec.topic, rec.key, rec.value, rec.partition,
                None if rec.timestamp_ms is None else rec.timestamp_ms / 1000, rec.headers
            )
            fut.add_done_callback(_delivered)
        else:
            await out_topic(rec.topic).send(key=rec.key, value=rec.value, headers=rec.headers,
                                            partition=rec.partition)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        owned.clear()
        owned.update(assigned)
        store.clear()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        owned.difference_update(revoked)
        store.clear()

    def in_record(msg: Any) -> InRecord:
        return InRecord(msg.topic, msg.partition, msg.offset, int(msg.timestamp * 1000),
                        msg.key, msg.value, headers_as_list(msg.headers))

    @app.agent(inputs, concurrency=1, name="ingest")
    async def ingest(stream: Any) -> None:
        async for events in stream.take_events(batch_max, within=batch_within):
            for event in events:
                msg = event.message
                if stale(msg):
                    continue
                rec = in_record(msg)
                adm = gate.admit(rec)
                if isinstance(adm, Rejected):
                    log.warning("dead-lettered %s:%s:%s reason=%s field=%s", msg.topic,
                                msg.partition, msg.offset, adm.rejection.reason.value,
                                adm.rejection.field)
                    await send(adm.dead_letter)
                    continue
                # every contact point goes through the internal topic (this adapter has no
                # ordered merge; the table is partitioned like the internal topic)
                for route in adm.routes:
                    await send(gate.forward(adm, route))

    @app.agent(contact_events, concurrency=1, name="gate")
    async def gate_agent(stream: Any) -> None:
        async for events in stream.take_events(batch_max, within=batch_within):
            for event in events:
                msg = event.message
                if stale(msg):
                    continue
                # the table writes to the changelog partition of the current event
                set_current_event(weakref.ref(event))
                await fold(msg)

    async def fold(msg: Any) -> None:
        rec = in_record(msg)
        ce = gate.open_forward(rec)
        if isinstance(ce, Rejected):
            await send(ce.dead_letter)
            return
        folded = gate.fold(store, ce, rec)
        if folded.dead_letter is not None:
            log.error("gate failed on %s:%s:%s", msg.topic, msg.partition, msg.offset)
            await send(folded.dead_letter)
            return
        if view is not None and not ce.forget:
            await view.apply(
                ce.key, folded.state, folded.decisions, folded.event.tenant,
                folded.event.occurred_at, contact_type=folded.contact.type,
            )
        for out in folded.outputs:
            await send(out)

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def report_consumer_lag() -> None:
        """Records behind the log end per assigned partition (issue 5 §5)."""
        consumer = app.consumer
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = await consumer.position(tp)
            if highwater is not None and position is not None:
                telemetry.metrics.lag.labels(tp.topic, str(tp.partition)).set(
                    max(0, highwater - position)
                )

    app.sendgate_agents = (ingest, gate_agent)  # type: ignore[attr-defined]
    app.sendgate_table = state_table  # type: ignore[attr-defined]
    app.sendgate_view = view  # type: ignore[attr-defined]
    return app
