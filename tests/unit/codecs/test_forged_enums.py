"""Issue 12 §1: a forged Avro enum index (negative included) is `invalid_enum` naming the
field, never a symbol counted from the end of the list."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest

from streams.codecs.avro import AvroCodec
from streams.codecs.avro_enums import compile_enum_plan
from streams.codecs.schemas import SchemaStore, build, strip_timestamps
from streams.core.errors import DecodeError, Rejection
from streams.core.parse import parse_event

HEADER = 10


SEND_REQUEST = (  # T01's send request
    '{"type": "send_request", "event_id": "T01-e02", "occurred_at": "2026-11-23T09:42:00+01:00",'
    ' "tenant": "t-T01", "legal_entity": "Fietsenwinkel Noord BV", "request_id": "T01-r01",'
    ' "contact": {"type": "email", "value": "m.huisman@ziggo.nl"}, "channel": "email",'
    ' "declared_purpose": "service", "service_kind": "order_confirmation",'
    ' "relates_to_order_id": "FN-2026-118342", "requested_by_recipient": false,'
    ' "content": {"content_scope": "updates", "has_promo": false, "promo_categories": [],'
    ' "third_party_offer": null, "is_consent_request": false, "is_review_request": false,'
    ' "review_incentive": false}, "sender": {"display_name": "Fietsenwinkel Noord BV",'
    ' "has_identity_block": true, "has_unsubscribe": false, "unsubscribe_requires_login": false,'
    ' "cli_withheld": false, "sector": "other"}, "recipient": {"kind": "consumer",'
    ' "established_outside_eea": false, "address_published_for_purpose": false,'
    ' "postfilter_registered": false}, "platform": null, "campaign_id": null,'
    ' "template_id": "orderbevestiging-v7"}'
)


def _send_request() -> dict[str, Any]:
    event: dict[str, Any] = json.loads(SEND_REQUEST)
    return event


def forge(codec: AvroCodec, record: str, obj: dict[str, Any], **raw: Any) -> bytes:
    """Encode `obj`, then rewrite top-level enum fields with raw wire indexes."""
    good = codec.encode(record, obj)
    loaded = codec.schema(record)
    plan = compile_enum_plan(strip_timestamps(loaded.schema))
    as_ints = fastavro.parse_schema(plan.schema)
    datum = fastavro.schemaless_reader(io.BytesIO(good[HEADER:]), as_ints, None)
    datum.update(raw)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, as_ints, datum)
    return good[:HEADER] + buf.getvalue()


def reject(codec: AvroCodec, data: bytes, expected: str) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        codec.decode(data, expected)
    return info.value


@pytest.mark.parametrize("index", [-1, -2, -12, 12, 1000, -(2**31)])
def test_forged_channel_index_is_invalid_enum_naming_the_field(
    avro: AvroCodec, index: int
) -> None:
    data = forge(avro, "SendRequest", _send_request(), channel=index)
    error = reject(avro, data, "SendRequest")
    assert (error.reason, error.field) == (Rejection.INVALID_ENUM, "channel")
    assert str(index) in error.message


def test_minus_one_used_to_decode_as_the_last_channel(avro: AvroCodec) -> None:
    """What the forgery did before: fastavro's own reader picks a symbol from the end."""
    data = forge(avro, "SendRequest", _send_request(), channel=-1)
    loaded = avro.schema("SendRequest")
    naive = fastavro.schemaless_reader(io.BytesIO(data[HEADER:]), loaded.wire, None)
    assert naive["channel"] == "lookalike_audience"  # the last Channel symbol


def test_valid_indexes_still_decode(avro: AvroCodec) -> None:
    event = _send_request()
    data = forge(avro, "SendRequest", event, channel=0)
    _, obj = avro.decode(data, "SendRequest")
    assert obj["channel"] == "email"
    parse_event(obj)  # still a contract-valid event


def test_nested_enum_path_is_named(avro: AvroCodec) -> None:
    loaded = build({
        "type": "record", "name": "Outer", "namespace": "t", "fields": [
            {"name": "items", "type": {"type": "array", "items": {
                "type": "record", "name": "Item", "fields": [
                    {"name": "kind", "type": {"type": "enum", "name": "Kind",
                                              "symbols": ["a", "b"]}},
                    {"name": "again", "type": ["null", "Kind"], "default": None},
                ]}}},
        ]})
    codec = AvroCodec(SchemaStore([loaded]))
    as_ints = fastavro.parse_schema(compile_enum_plan(strip_timestamps(loaded.schema)).schema)
    buf = io.BytesIO()
    fastavro.schemaless_writer(
        buf, as_ints, {"items": [{"kind": 1, "again": None}, {"kind": 0, "again": -1}]}
    )
    data = b"\xc3\x01" + loaded.fingerprint + buf.getvalue()
    error = reject(codec, data, "Outer")
    assert (error.reason, error.field) == (Rejection.INVALID_ENUM, "items[1].again")


def test_one_symbol_enum_forged_negative(avro: AvroCodec, order: dict[str, Any]) -> None:
    data = avro.encode("Order", order)
    assert data[HEADER] == 0  # `type`: a one-symbol enum, index 0
    forged = data[:HEADER] + b"\x01" + data[HEADER + 1:]  # zigzag -1
    error = reject(avro, forged, "Order")
    assert (error.reason, error.field) == (Rejection.INVALID_ENUM, "type")
