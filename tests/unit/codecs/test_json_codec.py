"""JSON codec: contract JSON in, the same decoded shape as the Avro codec out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.codecs.avro import AvroCodec
from streams.codecs.base import EncodeError
from streams.codecs.json import JsonCodec
from streams.core.errors import DecodeError, Rejection


def test_encode_writes_every_field_utc_and_base64(
    json_codec: JsonCodec, samples: dict[str, Any]
) -> None:
    text = json.loads(json_codec.encode("DeadLetter", samples["DeadLetter"]))
    assert text["original_value"] == "eyJub3QiOiAiYXZybyJ9"  # base64 of {"not": "avro"}
    assert text["headers"] == {"content-type": "YXBwbGljYXRpb24vanNvbg=="}
    assert text["detected_at"] == "2026-11-23T09:00:00Z"
    assert text["field"] is None


def test_decode_matches_avro_decode(
    json_codec: JsonCodec, avro: AvroCodec, samples: dict[str, Any]
) -> None:
    for name, record in samples.items():
        from_json = json_codec.decode(json_codec.encode(name, record), name)
        from_avro = avro.decode(avro.encode(name, record), name)
        assert from_json == from_avro, name


def test_record_inferred_from_type(json_codec: JsonCodec, order: dict[str, Any]) -> None:
    name, record = json_codec.decode(json.dumps(order).encode())
    assert name == "Order"
    assert record["occurred_at"].isoformat() == "2026-11-23T08:41:00+00:00"


def test_record_inferred_from_shape(json_codec: JsonCodec, samples: dict[str, Any]) -> None:
    for name in ("Decision", "ApprovedSend", "AuditFinding"):
        assert json_codec.decode(json_codec.encode(name, samples[name]))[0] == name


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", Rejection.BAD_JSON),
        (b"\xff\xfe", Rejection.BAD_JSON),
        (b"[1, 2]", Rejection.BAD_JSON),
        (b'{"type": "order"}', Rejection.MISSING_FIELD),
        (b'{"hello": "world"}', Rejection.SCHEMA_MISMATCH),
    ],
)
def test_decode_rejections(json_codec: JsonCodec, data: bytes, reason: Rejection) -> None:
    with pytest.raises(DecodeError) as info:
        json_codec.decode(data)
    assert info.value.reason is reason


def test_decode_expected_mismatch(json_codec: JsonCodec, order: dict[str, Any]) -> None:
    with pytest.raises(DecodeError) as info:
        json_codec.decode(json.dumps(order).encode(), "Signup")
    assert info.value.reason is Rejection.SCHEMA_MISMATCH


def test_decode_oversize(json_codec: JsonCodec) -> None:
    with pytest.raises(DecodeError) as info:
        json_codec.decode(b" " * ((1 << 20) + 1))
    assert info.value.reason is Rejection.OVERSIZE


def test_encode_validates(json_codec: JsonCodec, order: dict[str, Any]) -> None:
    order["status"] = "shipped"
    with pytest.raises(EncodeError) as info:
        json_codec.encode("Order", order)
    assert (info.value.reason, info.value.field) == (Rejection.INVALID_ENUM, "status")
