"""Every way a record can fail to decode maps to one DecodeError with a Rejection reason."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import fastavro
import pytest

from streams.codecs.avro import AvroCodec
from streams.codecs.base import MAX_PAYLOAD_BYTES
from streams.codecs.schemas import LoadedSchema, SchemaStore, build
from streams.codecs.shape import MAX_MILLIS, Target, compile_shaper
from streams.core.errors import DecodeError, RejectedRecord, Rejection

HEADER = 10


def reject(codec: AvroCodec, data: bytes, expected: Any = None) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        codec.decode(data, expected)
    return info.value


def wire_datum(loaded: LoadedSchema, record: dict[str, Any]) -> dict[str, Any]:
    def error(reason: Rejection, message: str, field: str) -> RejectedRecord:
        return RejectedRecord(reason, message, field)

    datum: dict[str, Any] = compile_shaper(loaded.schema, Target.WIRE, error)(record, "")
    return datum


def frame(loaded: LoadedSchema, datum: dict[str, Any]) -> bytes:
    """Single-object bytes written straight with fastavro, bypassing the codec's checks."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, loaded.wire, datum)
    return b"\xc3\x01" + loaded.fingerprint + buf.getvalue()


def tiny_codec(fields: list[dict[str, Any]]) -> tuple[AvroCodec, LoadedSchema]:
    loaded = build({"type": "record", "name": "Tiny", "namespace": "test", "fields": fields})
    return AvroCodec(SchemaStore([loaded])), loaded


# ------------------------------------------------------------------------------ truncated


@pytest.mark.parametrize("cut", [0, 1, 5, 9])
def test_truncated_header(avro: AvroCodec, order: dict[str, Any], cut: int) -> None:
    data = avro.encode("Order", order)
    assert reject(avro, data[:cut]).reason is Rejection.TRUNCATED


def test_truncated_body(avro: AvroCodec, order: dict[str, Any]) -> None:
    data = avro.encode("Order", order)
    error = reject(avro, data[:-7], "Order")
    assert error.reason is Rejection.TRUNCATED


# ------------------------------------------------------------------------------ bad_magic


def test_bad_magic_json_payload(avro: AvroCodec) -> None:
    error = reject(avro, b'{"type": "order", "event_id": "e1"}')
    assert error.reason is Rejection.BAD_MAGIC


def test_bad_magic_confluent_framing_without_registry(avro: AvroCodec) -> None:
    error = reject(avro, b"\x00\x00\x00\x00\x01" + b"\x00" * 20)
    assert error.reason is Rejection.BAD_MAGIC
    assert "SENDGATE_SCHEMA_REGISTRY_URL" in error.message


# ---------------------------------------------------------------------- unknown_fingerprint


def test_unknown_fingerprint(avro: AvroCodec, order: dict[str, Any]) -> None:
    data = avro.encode("Order", order)
    forged = data[:2] + bytes(8) + data[HEADER:]
    error = reject(avro, forged)
    assert error.reason is Rejection.UNKNOWN_FINGERPRINT
    assert "0000000000000000" in error.message


# -------------------------------------------------------------------------- schema_mismatch


def test_schema_mismatch_known_record_on_wrong_topic(
    avro: AvroCodec, samples: dict[str, dict[str, Any]]
) -> None:
    data = avro.encode("Decision", samples["Decision"])
    error = reject(avro, data, "Order")
    assert error.reason is Rejection.SCHEMA_MISMATCH
    assert "Decision" in error.message
    # the same bytes are fine where a Decision is expected
    assert avro.decode(data, {"Decision", "ApprovedSend"})[0] == "Decision"


def test_schema_mismatch_writer_not_resolvable(
    fresh_store: Callable[[], SchemaStore], order: dict[str, Any]
) -> None:
    store = fresh_store()
    old = store.expanded("Order")
    for f in old["fields"]:
        if f["name"] == "paid_amount_cents":
            f["type"] = "string"  # string -> long does not resolve
            f["default"] = "0"
    writer = build(old)
    order["paid_amount_cents"] = "4995"
    data = AvroCodec(SchemaStore([writer])).encode("Order", order)
    store.add_writer(writer)
    assert reject(AvroCodec(store), data, "Order").reason is Rejection.SCHEMA_MISMATCH


# ----------------------------------------------------------------------------- invalid_enum


def test_invalid_enum_index_out_of_range(avro: AvroCodec, order: dict[str, Any]) -> None:
    data = avro.encode("Order", order)
    assert data[HEADER] == 0  # the first field is the one-symbol `type` enum, index 0
    forged = data[:HEADER] + b"\x0a" + data[HEADER + 1 :]  # zigzag 5: no symbol 5
    error = reject(avro, forged, "Order")
    assert error.reason is Rejection.INVALID_ENUM


def test_invalid_enum_symbol_unknown_to_reader(
    fresh_store: Callable[[], SchemaStore], order: dict[str, Any]
) -> None:
    store = fresh_store()
    newer = store.expanded("Order")
    kind = next(f for f in newer["fields"] if f["name"] == "kind")
    kind["type"]["symbols"].append("barter")
    writer = build(newer)
    order["kind"] = "barter"
    data = AvroCodec(SchemaStore([writer])).encode("Order", order)
    store.add_writer(writer)
    error = reject(AvroCodec(store), data)
    assert (error.reason, error.field) == (Rejection.INVALID_ENUM, "kind")


# ---------------------------------------------------------------------------- missing_field


def test_missing_field_writer_lacks_required_reader_field(
    fresh_store: Callable[[], SchemaStore], order: dict[str, Any]
) -> None:
    store = fresh_store()
    old = store.expanded("Order")
    old["fields"] = [f for f in old["fields"] if f["name"] != "order_id"]
    writer = build(old)
    del order["order_id"]
    data = AvroCodec(SchemaStore([writer])).encode("Order", order)
    store.add_writer(writer)
    error = reject(AvroCodec(store), data, "Order")
    assert error.reason is Rejection.MISSING_FIELD
    assert error.field == "order_id"


# ---------------------------------------------------------------------------- bad_timestamp


@pytest.mark.parametrize("millis", [-1, -86_400_000, MAX_MILLIS + 1, 2**62])
def test_bad_timestamp_out_of_range(
    avro: AvroCodec, store: SchemaStore, order: dict[str, Any], millis: int
) -> None:
    loaded = store.get("Order")
    datum = wire_datum(loaded, order)
    datum["occurred_at"] = millis
    error = reject(avro, frame(loaded, datum), "Order")
    assert error.reason is Rejection.BAD_TIMESTAMP
    assert error.field == "occurred_at"


def test_bad_timestamp_in_nested_nullable_field(avro: AvroCodec, store: SchemaStore) -> None:
    loaded = store.get("Order")
    record = {
        "type": "order", "event_id": "e", "occurred_at": "2026-01-01T00:00:00Z",
        "legal_entity": "X", "order_id": "o", "kind": "subscription", "status": "paid",
        "product_categories": [], "contract_end_at": "2026-06-01T00:00:00Z",
        "marketplace": None, "contacts": [{"contact": {"type": "email", "value": "a@b.nl"}}],
    }
    datum = wire_datum(loaded, record)
    datum["contract_end_at"] = -5
    error = reject(avro, frame(loaded, datum))
    assert (error.reason, error.field) == (Rejection.BAD_TIMESTAMP, "contract_end_at")


def test_edges_of_the_timestamp_range_are_fine(
    avro: AvroCodec, store: SchemaStore, order: dict[str, Any]
) -> None:
    loaded = store.get("Order")
    for millis in (0, MAX_MILLIS):
        datum = wire_datum(loaded, order)
        datum["occurred_at"] = millis
        _, record = avro.decode(frame(loaded, datum))
        assert record["occurred_at"].year in (1970, 9999)


# --------------------------------------------------------------------------------- oversize


def test_oversize_checked_before_decoding(avro: AvroCodec) -> None:
    # garbage that would be bad_magic: oversize wins, nothing was decoded
    error = reject(avro, b"\xff" * (MAX_PAYLOAD_BYTES + 1))
    assert error.reason is Rejection.OVERSIZE


def test_oversize_valid_record(avro: AvroCodec, order: dict[str, Any]) -> None:
    order["product_categories"] = ["x" * 1000] * 1100
    assert len(AvroCodec(avro.store, max_payload=4 << 20).encode("Order", order)) > 1 << 20
    data = AvroCodec(avro.store, max_payload=4 << 20).encode("Order", order)
    assert reject(avro, data, "Order").reason is Rejection.OVERSIZE


def test_exactly_the_limit_is_not_oversize(avro: AvroCodec) -> None:
    error = reject(avro, b"\xff" * MAX_PAYLOAD_BYTES)
    assert error.reason is Rejection.BAD_MAGIC


# ---------------------------------------------------------------------------- invalid_value


def test_union_branch_out_of_range_is_invalid_value() -> None:
    codec, loaded = tiny_codec([{"name": "u", "type": ["null", "string"]}])
    error = reject(codec, b"\xc3\x01" + loaded.fingerprint + b"\x0a")
    assert error.reason is Rejection.INVALID_VALUE
    assert "union" in error.message


def test_bad_utf8_is_invalid_value() -> None:
    codec, loaded = tiny_codec([{"name": "s", "type": "string"}])
    error = reject(codec, b"\xc3\x01" + loaded.fingerprint + b"\x04\xff\xfe")
    assert error.reason is Rejection.INVALID_VALUE


def test_negative_length_is_invalid_value() -> None:
    codec, loaded = tiny_codec([{"name": "s", "type": "string"}])
    error = reject(codec, b"\xc3\x01" + loaded.fingerprint + b"\x7f")
    assert error.reason is Rejection.INVALID_VALUE


def test_trailing_bytes_are_invalid_value(avro: AvroCodec, order: dict[str, Any]) -> None:
    data = avro.encode("Order", order) + b"\x00"
    assert reject(avro, data).reason is Rejection.INVALID_VALUE


def test_every_failure_is_one_typed_error(avro: AvroCodec) -> None:
    for data in (b"", b"\x00", b"\xc3\x01" + bytes(8), b"\xff" * (MAX_PAYLOAD_BYTES + 1)):
        error = reject(avro, data)
        assert isinstance(error, RejectedRecord)
        assert isinstance(error.reason, Rejection)
        assert str(error).startswith(error.reason.value)
