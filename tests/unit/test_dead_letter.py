"""Issue 12 §2: dead letters that help (field, hint) and do not leak (HMAC key)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from streams import topics as T
from streams.codecs.avro import AvroCodec
from streams.core.enums import ContactType
from streams.core.errors import ContractError, DecodeError, RejectedRecord, Rejection
from streams.core.keys import contact_key
from streams.core.model import ContactPoint
from streams.core.policy import PolicyBook
from streams.gate.dead_letter import dead_letter_record
from streams.gate.gate import Gate, Rejected
from streams.gate.records import InRecord

SECRET = b"dead-letter-test-key"
AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec()


def build(codec: AvroCodec, key: bytes | None, value: bytes, rejection: RejectedRecord,
          source: str = "orders") -> tuple[Any, dict[str, Any]]:
    out = dead_letter_record(
        codec, SECRET, dead_letter_topic="p." + T.DEAD_LETTER, source_topic=source,
        partition=3, offset=42, key=key, value=value, headers=[("traceparent", b"00-x")],
        rejection=rejection, detected_at=AT,
    )
    _, record = codec.decode(out.value, T.DEAD_LETTER_RECORD)
    return out, record


def test_key_is_the_hmac_contact_key_never_the_raw_input_key(codec: AvroCodec) -> None:
    raw = b"shop|email|Jan.Jansen@Example.nl"
    out, record = build(codec, raw, b"\x00", DecodeError(Rejection.TRUNCATED, "short"))
    want = contact_key(SECRET, "shop", ContactPoint(ContactType.EMAIL, "jan.jansen@example.nl"))
    assert out.key == want.encode()
    assert b"@" not in (out.key or b"") and b"shop" not in (out.key or b"")
    assert record["original_key"] == raw  # the value keeps the record as received
    assert out.topic == "p." + T.DEAD_LETTER


def test_tenant_and_value_with_bars_still_read(codec: AvroCodec) -> None:
    out, _ = build(codec, b"a|b|phone|+31612345678", b"\x00",
                   DecodeError(Rejection.TRUNCATED, "short"))
    assert out.key == contact_key(
        SECRET, "a|b", ContactPoint(ContactType.PHONE, "+31612345678")).encode()


@pytest.mark.parametrize("key", [None, b"", b"not-a-contact", b"shop|phone|not a number",
                                 b"\xff\xfe|email|x", b"|email|a@b.nl"])
def test_no_contact_no_key(codec: AvroCodec, key: bytes | None) -> None:
    out, record = build(codec, key, b"\x00", DecodeError(Rejection.TRUNCATED, "short"))
    assert out.key is None
    assert record["original_key"] == key


def test_a_contact_key_is_kept(codec: AvroCodec) -> None:
    ckey = contact_key(SECRET, "t", ContactPoint(ContactType.EMAIL, "a@b.nl")).encode()
    out, _ = build(codec, ckey, b"\x00", DecodeError(Rejection.PROCESSING_ERROR, "boom"),
                   source="p." + T.CONTACT_EVENTS)
    assert out.key == ckey


@pytest.mark.parametrize(("rejection", "field"), [
    (DecodeError(Rejection.TRUNCATED, "short"), "value"),
    (DecodeError(Rejection.BAD_MAGIC, "not c301"), "value"),
    (DecodeError(Rejection.UNKNOWN_FINGERPRINT, "?"), "value"),
    (DecodeError(Rejection.SCHEMA_MISMATCH, "Signup where Order"), "value"),
    (DecodeError(Rejection.OVERSIZE, "big"), "value"),
    (DecodeError(Rejection.PROCESSING_ERROR, "KeyError"), "value"),
    (DecodeError(Rejection.WRONG_TOPIC, "x"), "topic"),
    (ContractError(Rejection.WRONG_KEY, "key must be ...", "key"), "key"),
    (DecodeError(Rejection.INVALID_ENUM, "Channel index -1", "channel"), "channel"),
    (ContractError(Rejection.MISSING_FIELD, "required", "contacts[0].contact"),
     "contacts[0].contact"),
])
def test_every_reason_names_its_field(
    codec: AvroCodec, rejection: RejectedRecord, field: str
) -> None:
    out, record = build(codec, b"shop|email|a@b.nl", b"\x00", rejection)
    assert record["field"] == field
    assert record["reason"] == rejection.reason.value
    assert dict(out.headers)["sg-field"] == field.encode()


@pytest.mark.parametrize(("value", "what"), [
    (b'{"type": "order", "tenant": "shop"}', "JSON"),
    (b'  [1, 2]', "JSON"),
    (b"order shop paid 49.95", "text"),
])
def test_json_and_text_get_a_hint_to_use_the_schema_or_sdk(
    codec: AvroCodec, value: bytes, what: str
) -> None:
    _, record = build(codec, None, value, DecodeError(Rejection.BAD_MAGIC, "not c301"))
    assert f"looks like {what}, not Avro" in record["message"]
    assert "schemas/Order.avsc" in record["message"]
    assert "SendgateProducer" in record["message"]


def test_binary_gets_no_hint(codec: AvroCodec) -> None:
    _, record = build(codec, None, b"\x00\x01\xfe\xff", DecodeError(Rejection.BAD_MAGIC, "x"))
    assert "looks like" not in record["message"]


def test_the_message_never_quotes_the_contact(codec: AvroCodec) -> None:
    rejection = ContractError(Rejection.INVALID_VALUE, "bad address JAN@example.nl", "x")
    _, record = build(codec, b"shop|email|jan@example.nl", b"\x00", rejection)
    assert "example.nl" not in record["message"].lower()
    assert "<contact>" in record["message"]


def test_the_worker_gate_uses_it(codec: AvroCodec) -> None:
    gate = Gate(codec, PolicyBook.default(), SECRET, clock=lambda: AT, topic_prefix="p.")
    outcome = gate.admit(InRecord("p.orders", 0, 7, 0, b"shop|email|a@b.nl",
                                  b'{"type": "order"}'))
    assert isinstance(outcome, Rejected)
    dl = outcome.dead_letter
    assert dl.topic == "p." + T.DEAD_LETTER
    assert dl.key == contact_key(SECRET, "shop", ContactPoint(ContactType.EMAIL, "a@b.nl")).encode()
    _, record = codec.decode(dl.value, T.DEAD_LETTER_RECORD)
    assert (record["reason"], record["field"]) == ("bad_magic", "value")
    assert (record["source_topic"], record["partition"], record["offset"]) == ("p.orders", 0, 7)
    assert "looks like JSON" in record["message"]
    assert record["detected_at"] == AT
