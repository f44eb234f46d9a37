"""Avro single-object codec: framing, fingerprints, decoded shape, encode-time validation."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint

from streams.codecs.avro import AvroCodec
from streams.codecs.base import CONTENT_TYPE_AVRO_SINGLE_OBJECT, Codec, EncodeError
from streams.codecs.schemas import SchemaStore, crc64_avro, expand, fingerprint_of
from streams.config import SCHEMA_DIR
from streams.core.errors import ContractError, Rejection

RECORDS = (
    "Order", "Signup", "Unsubscribe", "SendRequest",
    "Decision", "ApprovedSend", "DeadLetter", "AuditFinding",
)

# Changing a schema changes its fingerprint: old records then need the old schema in
# schemas/history/ (see streams/codecs/schemas.py). Update these on purpose, never casually.
PINNED_FINGERPRINTS = {
    "ApprovedSend": "505fb70019faf8ef",
    "AuditFinding": "9ee173d98f5debdf",
    "DeadLetter": "85785df14012da81",
    "Decision": "e8cff883db1b34cf",
    "Order": "ac99901fa4fec3af",
    "SendRequest": "2c08cf71d75dc308",
    "Signup": "96178d845c0c3e0f",
    "Unsubscribe": "dc90d58ba196a13b",
}


def encode_error(codec: AvroCodec, name: str, obj: Any) -> EncodeError:
    with pytest.raises(EncodeError) as info:
        codec.encode(name, obj)
    return info.value


def test_is_a_codec(avro: AvroCodec) -> None:
    assert isinstance(avro, Codec)
    assert avro.content_type == CONTENT_TYPE_AVRO_SINGLE_OBJECT


def test_crc64_avro_reference_value() -> None:
    # fingerprint of the schema "null" (Avro spec test vector)
    assert crc64_avro(b'"null"') == 0x63DD24E7CC258F8A


def test_single_object_header(avro: AvroCodec, store: SchemaStore, order: dict[str, Any]) -> None:
    data = avro.encode("Order", order)
    loaded = store.get("Order")
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == loaded.fingerprint == fingerprint_of(loaded.canonical_form)
    assert int.from_bytes(data[2:10], "little") == crc64_avro(loaded.canonical_form.encode())
    # fastavro agrees on the fingerprint and the body
    assert fastavro_fingerprint(loaded.canonical_form, "CRC-64-AVRO") == loaded.fingerprint_hex


def test_every_record_schema_is_loaded(store: SchemaStore) -> None:
    assert set(RECORDS) <= set(store.names)
    for name in RECORDS:
        assert store.get(name).fullname == f"nl.sendgate.v1.{name}"
        assert store.get(f"nl.sendgate.v1.{name}") is store.get(name)


def test_fingerprints_are_pinned(store: SchemaStore) -> None:
    assert {n: store.get(n).fingerprint_hex for n in RECORDS} == PINNED_FINGERPRINTS


def test_fingerprints_do_not_depend_on_load_order(store: SchemaStore, tmp_path: Path) -> None:
    raw = {
        f"nl.sendgate.v1.{p.stem}": json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.avsc")
    }
    for order in (sorted(raw), sorted(raw, reverse=True)):
        index = {name: raw[name] for name in order}
        for name in RECORDS:
            expanded = expand(raw[f"nl.sendgate.v1.{name}"], index)
            assert expanded == store.get(name).schema
    # and a copy of the directory loads to the same fingerprints
    for p in SCHEMA_DIR.glob("*.avsc"):
        shutil.copy(p, tmp_path / f"zz-{p.name}")
    copy = SchemaStore.load(tmp_path)
    assert {n: copy.get(n).fingerprint for n in RECORDS} == {
        n: store.get(n).fingerprint for n in RECORDS
    }


def test_expanded_schema_is_self_contained(store: SchemaStore) -> None:
    for name in RECORDS:
        fastavro.parse_schema(store.get(name).schema, named_schemas={})  # no outside names


@pytest.mark.parametrize(
    "name", ["Order", "Decision", "ApprovedSend", "DeadLetter", "AuditFinding"]
)
def test_roundtrip_samples(
    avro: AvroCodec, samples: dict[str, dict[str, Any]], name: str
) -> None:
    got_name, record = avro.decode(avro.encode(name, samples[name]), name)
    assert got_name == name
    assert set(record) == {f["name"] for f in avro.store.get(name).schema["fields"]}
    for key, value in samples[name].items():
        if (isinstance(value, str) and key.endswith("_at")) or key == "as_of":
            assert record[key] == datetime.fromisoformat(value)
        else:
            assert record[key] == value, key


def test_timestamps_decode_as_aware_utc(avro: AvroCodec, order: dict[str, Any]) -> None:
    _, record = avro.decode(avro.encode("Order", order))
    occurred = record["occurred_at"]
    assert occurred.tzinfo is UTC
    # the instant survives, the +01:00 offset does not
    assert occurred == datetime(2026, 11, 23, 8, 41, tzinfo=UTC)
    assert occurred.isoformat() == "2026-11-23T08:41:00+00:00"


def test_datetimes_and_strings_encode_alike(avro: AvroCodec, order: dict[str, Any]) -> None:
    by_string = avro.encode("Order", order)
    order["occurred_at"] = datetime(2026, 11, 23, 9, 41, tzinfo=timezone(timedelta(hours=1)))
    assert avro.encode("Order", order) == by_string


def test_sub_millisecond_digits_are_dropped(avro: AvroCodec, order: dict[str, Any]) -> None:
    order["occurred_at"] = "2026-11-23T09:41:00.123987+01:00"
    _, record = avro.decode(avro.encode("Order", order))
    assert record["occurred_at"].microsecond == 123000


def test_defaults_filled_and_nullables_none(avro: AvroCodec) -> None:
    minimal = {
        "type": "unsubscribe", "event_id": "e1", "occurred_at": "2026-11-23T10:00:00+01:00",
        "legal_entity": "Shop BV", "kind": "unsubscribe",
        "contact": {"type": "email", "value": "a@b.nl"}, "source": "one_click",
        "consent_id": None, "list_id": None,
    }
    _, record = avro.decode(avro.encode("Unsubscribe", minimal), "Unsubscribe")
    assert record["tenant"] == "default"
    assert record["channels"] is None  # every channel of the contact's type
    assert record["received_at"] is None  # = occurred_at
    assert record["linked_contacts"] == []


def test_all_channels_marker(avro: AvroCodec) -> None:
    event = {
        "type": "unsubscribe", "event_id": "e1", "occurred_at": "2026-11-23T10:00:00Z",
        "legal_entity": "Shop BV", "kind": "objection", "channels": ["all"],
        "contact": {"type": "email", "value": "a@b.nl"}, "source": "complaint",
        "consent_id": None, "list_id": None,
    }
    assert avro.decode(avro.encode("Unsubscribe", event))[1]["channels"] == ["all"]


def test_enum_values_may_be_str_enums(avro: AvroCodec, samples: dict[str, Any]) -> None:
    from enum import StrEnum

    class Verdict(StrEnum):
        ALLOW = "ALLOW"

    decision = samples["Decision"]
    decision["decision"] = Verdict.ALLOW
    _, record = avro.decode(avro.encode("Decision", decision))
    assert type(record["decision"]) is str and record["decision"] == "ALLOW"


def test_dead_letter_may_exceed_the_input_limit(avro: AvroCodec, samples: dict[str, Any]) -> None:
    letter = samples["DeadLetter"]
    letter["original_value"] = b"\x00" * ((1 << 20) + 100)
    data = avro.encode("DeadLetter", letter)
    assert len(data) > 1 << 20
    assert avro.decode(data, "DeadLetter")[1]["original_value"] == letter["original_value"]


def test_decode_does_not_reparse_schemas(
    avro: AvroCodec, order: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = avro.encode("Order", order)
    avro.decode(data, "Order")

    def no_parsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("schema parsed on the hot path")

    monkeypatch.setattr(fastavro, "parse_schema", no_parsing)
    monkeypatch.setattr("streams.codecs.schemas.fastavro.parse_schema", no_parsing)
    for _ in range(3):
        assert avro.decode(data, "Order")[0] == "Order"
        avro.encode("Order", order)


# ------------------------------------------------------------------ encode-time validation


def test_encode_error_is_a_contract_error(avro: AvroCodec, order: dict[str, Any]) -> None:
    del order["order_id"]
    error = encode_error(avro, "Order", order)
    assert isinstance(error, ContractError)
    assert (error.reason, error.field) == (Rejection.MISSING_FIELD, "order_id")
    assert str(error) == "missing_field: order_id: required field is missing"


def test_encode_unknown_field(avro: AvroCodec, order: dict[str, Any]) -> None:
    order["expect"] = {"decision": "ALLOW"}
    error = encode_error(avro, "Order", order)
    assert (error.reason, error.field) == (Rejection.UNKNOWN_FIELD, "expect")


def test_encode_invalid_enum_names_the_path(avro: AvroCodec, order: dict[str, Any]) -> None:
    order["contacts"][0]["contact"]["type"] = "pigeon"
    error = encode_error(avro, "Order", order)
    assert (error.reason, error.field) == (Rejection.INVALID_ENUM, "contacts[0].contact.type")
    assert "'pigeon' is not a ContactType" in error.message


def test_encode_record_cannot_claim_another_type(avro: AvroCodec, order: dict[str, Any]) -> None:
    order["type"] = "signup"
    assert encode_error(avro, "Order", order).reason is Rejection.INVALID_ENUM


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("paid_amount_cents", "4995", Rejection.INVALID_VALUE),
        ("paid_amount_cents", True, Rejection.INVALID_VALUE),
        ("sold_by_phone", 0, Rejection.INVALID_VALUE),
        ("product_categories", "bikes", Rejection.INVALID_VALUE),
        ("occurred_at", "2026-11-23 09:41", Rejection.BAD_TIMESTAMP),
        ("occurred_at", "2026-11-23T09:41:00", Rejection.BAD_TIMESTAMP),  # no offset
        ("occurred_at", datetime(2026, 11, 23, 9, 41), Rejection.BAD_TIMESTAMP),  # naive
        ("occurred_at", "1969-12-31T23:59:59Z", Rejection.BAD_TIMESTAMP),
        ("occurred_at", 1764000000000, Rejection.INVALID_VALUE),
        ("marketplace", 7, Rejection.INVALID_VALUE),
    ],
)
def test_encode_rejects_bad_values(
    avro: AvroCodec, order: dict[str, Any], field: str, value: Any, reason: Rejection
) -> None:
    order[field] = value
    error = encode_error(avro, "Order", order)
    assert (error.reason, error.field) == (reason, field)


def test_encode_unknown_record(avro: AvroCodec, order: dict[str, Any]) -> None:
    error = encode_error(avro, "Invoice", order)
    assert error.reason is Rejection.SCHEMA_MISMATCH
    assert "Invoice" in error.message


def test_encode_oversize(avro: AvroCodec, order: dict[str, Any]) -> None:
    order["product_categories"] = ["x" * 1024] * 1025
    assert encode_error(avro, "Order", order).reason is Rejection.OVERSIZE


def test_dead_letter_reason_is_a_documented_string(store: SchemaStore) -> None:
    from streams.core.errors import Rejection as R

    reason = next(f for f in store.get("DeadLetter").schema["fields"] if f["name"] == "reason")
    assert reason["type"] == "string"  # not an enum: new reasons never break old readers
    missing = [r.value for r in R if r.value not in reason["doc"]]
    assert not missing, f"document the new reasons in schemas/DeadLetter.avsc: {missing}"


def test_tombstone_is_truncated(avro: AvroCodec) -> None:
    from streams.core.errors import DecodeError

    for data in (b"", None):
        with pytest.raises(DecodeError) as info:
            avro.decode(data, "Order")  # type: ignore[arg-type]
        assert info.value.reason is Rejection.TRUNCATED
