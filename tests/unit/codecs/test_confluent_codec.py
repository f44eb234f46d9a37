"""Confluent framing with confluent-kafka's in-memory `mock://` schema registry."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from streams.codecs.avro import AvroCodec, ConfluentAvroCodec
from streams.codecs.base import CONTENT_TYPE_AVRO_CONFLUENT
from streams.codecs.schemas import SchemaStore
from streams.core.errors import DecodeError, Rejection


@pytest.fixture
def confluent(store: SchemaStore) -> ConfluentAvroCodec:
    return ConfluentAvroCodec(f"mock://{uuid.uuid4().hex}", store=store)


class CountingClient:
    """Wraps the mock client to count registry round trips."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.registrations = 0
        self.fetches = 0

    def register_schema(self, subject: str, schema: Any) -> int:
        self.registrations += 1
        return int(self.inner.register_schema(subject, schema))

    def get_schema(self, schema_id: int) -> Any:
        self.fetches += 1
        return self.inner.get_schema(schema_id)


def test_framing_and_roundtrip(confluent: ConfluentAvroCodec, order: dict[str, Any]) -> None:
    assert confluent.content_type == CONTENT_TYPE_AVRO_CONFLUENT
    data = confluent.encode("Order", order, topic="orders")
    assert data[0] == 0
    schema_id = int.from_bytes(data[1:5], "big")
    registered = confluent.client.get_schema(schema_id)
    assert registered.schema_type == "AVRO"
    assert "orders-value" in confluent.client.get_subjects()
    name, record = confluent.decode(data, "Order")
    assert name == "Order"
    assert record["order_id"] == order["order_id"]
    # body identical to the single-object body
    single = AvroCodec(confluent.store).encode("Order", order)
    assert data[5:] == single[10:]


def test_subject_per_topic_and_no_topic_refused(
    confluent: ConfluentAvroCodec, samples: dict[str, Any]
) -> None:
    confluent.encode("Decision", samples["Decision"], topic="t1.sends.blocked")
    with pytest.raises(ValueError, match="topic"):
        confluent.encode("Decision", samples["Decision"])
    assert set(confluent.client.get_subjects()) == {"t1.sends.blocked-value"}


def test_ids_and_writer_schemas_are_cached(store: SchemaStore, order: dict[str, Any]) -> None:
    from streams.codecs.avro import _registry_client_class

    client = CountingClient(_registry_client_class().new_client({"url": "mock://cache"}))
    codec = ConfluentAvroCodec(client=client, store=store)
    data = [codec.encode("Order", order, topic="orders") for _ in range(5)]
    for d in data:
        codec.decode(d, "Order")
    assert (client.registrations, client.fetches) == (1, 1)


def test_reads_single_object_records_too(
    confluent: ConfluentAvroCodec, order: dict[str, Any]
) -> None:
    single = AvroCodec(confluent.store).encode("Order", order)
    assert confluent.decode(single, "Order")[0] == "Order"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", Rejection.TRUNCATED),
        (b"\x00\x00\x01", Rejection.TRUNCATED),
        (b"\x00\x00\x00\x03\xe7\x00", Rejection.UNKNOWN_FINGERPRINT),
        (b"\x7b\x22", Rejection.BAD_MAGIC),
    ],
)
def test_rejections(confluent: ConfluentAvroCodec, data: bytes, reason: Rejection) -> None:
    with pytest.raises(DecodeError) as info:
        confluent.decode(data)
    assert info.value.reason is reason


def test_schema_mismatch(confluent: ConfluentAvroCodec, samples: dict[str, Any]) -> None:
    data = confluent.encode("Decision", samples["Decision"], topic="sends.blocked")
    with pytest.raises(DecodeError) as info:
        confluent.decode(data, "Order")
    assert info.value.reason is Rejection.SCHEMA_MISMATCH


def test_foreign_record_in_registry_is_a_mismatch(confluent: ConfluentAvroCodec) -> None:
    from confluent_kafka.schema_registry import Schema

    foreign = (
        '{"type":"record","name":"Other","namespace":"x","fields":[{"name":"a","type":"int"}]}'
    )
    schema_id = confluent.client.register_schema("other-value", Schema(foreign, "AVRO"))
    with pytest.raises(DecodeError) as info:
        confluent.decode(b"\x00" + schema_id.to_bytes(4, "big") + b"\x02")
    assert info.value.reason is Rejection.SCHEMA_MISMATCH


def test_needs_a_url_or_client(store: SchemaStore) -> None:
    with pytest.raises(ValueError):
        ConfluentAvroCodec(store=store)
