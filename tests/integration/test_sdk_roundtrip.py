"""The SDK against the real broker: topics created idempotently, every event type
produced, consumed back, decoded and equal; keys co-partition across the input topics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams import client as sdk
from streams import topics as T
from streams.codecs.avro import AvroCodec, ConfluentAvroCodec
from streams.codecs.base import Codec
from streams.codecs.json import JsonCodec
from streams.commands.topics import CREATED, EXISTS, create_topics, describe_broker
from streams.config import DEFAULT_SCENARIO_DIR

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NOW = datetime(2026, 11, 23, 9, 41, tzinfo=UTC)


@pytest.fixture
def admin(kafka_bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def prefix(admin: Any, unique_name: str) -> Iterator[str]:
    """Catalogue topics under a prefix unique to the test; deleted afterwards."""
    prefix = f"{unique_name}."
    yield prefix
    names = [s.name for s in T.catalogue(prefix=prefix)]
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [n for n in names if n in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result(timeout=30)


def consume(bootstrap: str, topics: list[str], count: int, timeout: float = 60.0) -> list[Any]:
    """Read `count` records from the start of `topics` (assigned, no group rebalance)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"sdk-roundtrip-{time.monotonic_ns()}",
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(timeout=10)
        consumer.assign(
            [
                TopicPartition(t, p, OFFSET_BEGINNING)
                for t in topics
                for p in meta.topics[t].partitions
            ]
        )
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            out.append(msg)
        assert len(out) == count, f"consumed {len(out)} of {count} records"
        return out
    finally:
        consumer.close()


def one_of_each(tenant: str) -> list[dict[str, Any]]:
    mail = sdk.email(" Jan.Jansen@Example.NL ")
    return [
        sdk.order(
            legal_entity="Fietsenwinkel Noord BV", order_id="FN-1", tenant=tenant,
            paid_amount_cents=4995, product_categories=["fietsaccessoires"],
            contacts=[sdk.contact_fact(mail, optout_offered=True, optout_method="link"),
                      sdk.phone("06 12345678")],
            occurred_at=NOW,
        ),
        sdk.signup(
            legal_entity="Fietsenwinkel Noord BV", contact=mail, tenant=tenant,
            occurred_at=NOW + timedelta(minutes=1),
            consent=sdk.consent(
                consent_id="c1", channels=["email"], scope=["newsletter"],
                named_legal_entity="Fietsenwinkel Noord BV", mechanism="double_opt_in",
                source="own_form", wording_version="v1", proof_ref="doi:1",
                period_end=NOW + timedelta(days=365),
            ),
        ),
        sdk.unsubscribe(
            legal_entity="Fietsenwinkel Noord BV", contact=mail, source="one_click",
            channels=["email"], received_at=NOW + timedelta(minutes=3), tenant=tenant,
            occurred_at=NOW + timedelta(minutes=2),
        ),
        sdk.send_request(
            legal_entity="Fietsenwinkel Noord BV", contact=mail, channel="email",
            declared_purpose="commercial", tenant=tenant,
            content=sdk.content(content_scope="newsletter", has_promo=True,
                                promo_categories=["fietsaccessoires"]),
            sender=sdk.sender("Fietsenwinkel Noord", has_identity_block=True,
                              has_unsubscribe=True),
            occurred_at=NOW + timedelta(minutes=4), dispatch_at=NOW + timedelta(hours=1),
            campaign_id="week48",
        ),
    ]


def test_create_topics_twice_is_idempotent(admin: Any, prefix: str) -> None:
    first = create_topics(admin, prefix=prefix)
    assert {r.status for r in first} == {CREATED}, first
    second = create_topics(admin, prefix=prefix)
    assert [(r.status, r.detail) for r in second] == [(EXISTS, "")] * len(T.CATALOGUE)

    specs = T.catalogue(prefix=prefix)
    on_broker = describe_broker(admin, [s.name for s in specs])
    for spec in specs:
        actual = on_broker[spec.name]
        assert actual.partitions == spec.partitions == 12
        assert actual.config["cleanup.policy"] == "delete"
        assert actual.config["retention.ms"] == str(spec.retention_ms)
        if spec.max_message_bytes:
            assert actual.config["max.message.bytes"] == str(spec.max_message_bytes)


@pytest.mark.parametrize("codec_name", ["single-object", "confluent"])
def test_every_event_type_roundtrips(
    kafka_bootstrap: str, admin: Any, prefix: str, unique_name: str, codec_name: str
) -> None:
    codec: Codec = (
        AvroCodec()
        if codec_name == "single-object"
        else ConfluentAvroCodec(f"mock://{unique_name}")  # same instance reads back
    )
    create_topics(admin, prefix=prefix)
    events = one_of_each(tenant=unique_name)
    with sdk.SendgateProducer(kafka_bootstrap, codec=codec, topic_prefix=prefix) as producer:
        published = [producer.publish(e, traceparent=TRACEPARENT) for e in events]
    assert producer.delivered == len(events)

    inputs = [prefix + name for name in T.INPUT_TOPICS]
    records = {m.topic(): m for m in consume(kafka_bootstrap, inputs, len(events))}
    shape = JsonCodec()
    partitions = set()
    for event, sent in zip(events, published, strict=True):
        msg = records[sent.topic]
        record_name = T.INPUT_RECORDS[sent.topic.removeprefix(prefix)]
        name, decoded = codec.decode(msg.value(), record_name)
        assert name == record_name
        assert decoded == shape.normalise(record_name, event)
        assert msg.key() == sent.key == f"{unique_name}|email|jan.jansen@example.nl".encode()
        headers = dict(msg.headers())
        assert headers["content-type"] == codec.content_type.encode()
        assert headers["event-type"] == event["type"].encode()
        assert headers["traceparent"] == TRACEPARENT.encode()
        partitions.add(msg.partition())
    # one contact key -> the same partition on every (co-partitioned) input topic
    assert len(partitions) == 1


def test_publish_jsonl_keeps_file_order(
    kafka_bootstrap: str, admin: Any, prefix: str
) -> None:
    path = DEFAULT_SCENARIO_DIR / "T54.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not available")
    create_topics(admin, prefix=prefix)
    codec = AvroCodec()
    producer = sdk.SendgateProducer(kafka_bootstrap, codec=codec, topic_prefix=prefix)
    count = producer.publish_jsonl(path)
    messages = consume(kafka_bootstrap, [prefix + n for n in T.INPUT_TOPICS], count)
    by_partition: dict[tuple[str, int], list[str]] = {}
    for msg in messages:
        _, decoded = codec.decode(msg.value())
        by_partition.setdefault((msg.topic(), msg.partition()), []).append(decoded["event_id"])
    for ids in by_partition.values():
        assert ids == sorted(ids)  # T54-e01, T54-e02, ...: file order within a partition
    assert sum(len(ids) for ids in by_partition.values()) == count
