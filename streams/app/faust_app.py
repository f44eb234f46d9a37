"""The faust-streaming app: two agents and one changelog-backed table.

`ingest` consumes the four input topics, `gate` consumes the internal topic re-keyed by
contact key and is the only writer of the `contact-state` table. Both run at
concurrency 1: ordering per partition is part of the contract (§7, arrival order), and
faust loses in-flight events of stateful agents at higher concurrency.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust

from streams.app import topics as T
from streams.app.faust_patches import apply_patches
from streams.app.pipeline import (
    Gate,
    Ingestor,
    OutRecord,
    decode_state,
    encode_state,
    headers_as_list,
)
from streams.app.telemetry import Telemetry
from streams.app.view import StatusView
from streams.codecs.registry import get_codec
from streams.config import Settings, hmac_key
from streams.core.errors import RejectedRecord, Rejection
from streams.core.policy import PolicyBook, load_policy_book

log = logging.getLogger("sendgate.worker")

STATE_TABLE = "contact-state"


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


def create_app(opts: WorkerOptions) -> faust.App:
    apply_patches()
    s = opts.settings
    prefix = opts.topic_prefix
    data_dir = opts.data_dir or s.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    codec = get_codec(s)
    secret = opts.secret if opts.secret is not None else hmac_key()
    policies = opts.policies or (
        load_policy_book(s.policy_file) if s.policy_file else PolicyBook.default()
    )
    telemetry = opts.telemetry or Telemetry.from_env(s)

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
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=6 * 1024 * 1024,
        consumer_max_fetch_size=8 * 1024 * 1024,
        producer_acks=-1,
        broker_commit_every=1000,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        worker_redirect_stdouts=False,
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
        STATE_TABLE, partitions=s.partitions, key_type=bytes, value_type=bytes
    )

    ingestor = Ingestor(codec, secret, topic_prefix=prefix)
    gate = Gate(codec, policies, topic_prefix=prefix)
    view: StatusView | None = (
        StatusView.from_env(s.redis_url, policies) if opts.status_view else None
    )
    if view is not None:
        status_view = view

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]
        async def _flush_view(sender: Any, revoked: Any, **kwargs: Any) -> None:
            await status_view.flush(timeout=2.0)

        @app.on_before_shutdown.connect  # type: ignore[arg-type]
        async def _close_view(sender: Any, **kwargs: Any) -> None:
            await status_view.aclose(flush_timeout=2.0)

    async def send(rec: OutRecord) -> None:
        await out_topic(rec.topic).send(key=rec.key, value=rec.value, headers=rec.headers)

    @app.agent(inputs, concurrency=1, name="ingest")
    async def ingest(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            outcome = ingestor.ingest(
                msg.topic, msg.partition, msg.offset, msg.key, msg.value, msg.headers
            )
            telemetry.on_ingest(msg.topic, outcome)
            for rec in outcome.forwards:
                await send(rec)
            if outcome.dead_letter is not None:
                log.warning(
                    "dead-lettered %s:%s:%s reason=%s field=%s",
                    msg.topic, msg.partition, msg.offset,
                    outcome.rejection.reason.value if outcome.rejection else "?",
                    outcome.rejection.field if outcome.rejection else "",
                )
                await send(outcome.dead_letter)

    @app.agent(contact_events, concurrency=1, name="gate")
    async def gate_agent(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            key: bytes = msg.key
            with telemetry.decision_span(msg) as span:
                try:
                    state = decode_state(state_table.get(key))
                    outcome = gate.process(state, key, msg.value, msg.headers)
                except Exception as exc:
                    log.exception("gate failed on %s:%s:%s", msg.topic, msg.partition, msg.offset)
                    rejected = (
                        exc if isinstance(exc, RejectedRecord)
                        else RejectedRecord(Rejection.PROCESSING_ERROR, type(exc).__name__)
                    )
                    telemetry.metrics.dead_letters.labels(reason=rejected.reason.value).inc()
                    await send(ingestor.dead_letter(
                        msg.topic, msg.partition, msg.offset, key, msg.value,
                        headers_as_list(msg.headers), rejected,
                    ))
                    continue
                state_table[key] = encode_state(outcome.state)
                if view is not None:
                    await view.apply(
                        key, outcome.state, outcome.decisions, outcome.event.tenant,
                        outcome.event.occurred_at, contact_type=outcome.contact.type,
                    )
                telemetry.on_gate(outcome, span, msg)
                for rec in outcome.outputs:
                    await send(telemetry.inject(rec, span))

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
