"""Issues 15 §8 / 16 §4: the codec's fast path (cavro + compiled finish, compiled writer)
gives exactly what the former path (`fast=False`: fastavro, enum mapper, shaper) gives:
the same decoded record, or the same `DecodeError` reason, field and message; the same
bytes, or the same `EncodeError`. It never accepts a record the former path refuses."""

from __future__ import annotations

import io
import json
import random
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings

from streams.codecs.avro import AvroCodec, ConfluentAvroCodec
from streams.codecs.fast import FastReader, Refused, _long, fast_reader, fast_writer
from streams.codecs.schemas import load_schema_store
from streams.config import DEFAULT_SCENARIO_DIR
from streams.core.errors import RejectedRecord
from streams.core.parse import event_to_dict
from streams.topics import RECORD_FOR_EVENT_TYPE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
import strategies as gen

STORE = load_schema_store()
FAST = AvroCodec(STORE)
SLOW = AvroCodec(STORE, fast=False)
HEADER = 10
_ADDRESS = re.compile(r"0x[0-9a-f]+")
INPUTS = ("Order", "Signup", "Unsubscribe", "SendRequest")


def _scenario_events() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(DEFAULT_SCENARIO_DIR.glob("T*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            obj.pop("expect", None)
            record = RECORD_FOR_EVENT_TYPE.get(obj.get("type", ""))
            if record is None:
                continue
            try:
                SLOW.encode(record, obj)
            except RejectedRecord:
                continue  # scenario lines that are meant to be refused
            out.append((record, obj))
    return out


SCENARIO_EVENTS = _scenario_events()
SCENARIO_BODIES = [(record, SLOW.encode(record, obj)) for record, obj in SCENARIO_EVENTS]


def outcome(codec: AvroCodec, data: bytes, expected: str) -> tuple[Any, ...]:
    """The answer, with the record's repr: `True == 1`, but a bool must stay a bool and
    the keys keep their order."""
    try:
        name, record = codec.decode(data, expected)
        return ("ok", name, repr(record))
    except RejectedRecord as exc:  # fastavro's messages may name an object's address
        return ("refused", exc.reason, exc.field, _ADDRESS.sub("0x?", exc.message))


def encoded(codec: AvroCodec, record: str, obj: Any) -> tuple[Any, ...]:
    try:
        return ("ok", codec.encode(record, obj))
    except RejectedRecord as exc:
        return ("refused", exc.reason, exc.field, exc.message)


def fast_of(record: str) -> FastReader:
    reader = fast_reader(STORE.get(record))
    assert reader is not None
    return reader


def test_every_input_schema_and_the_outputs_have_a_fast_reader_and_writer() -> None:
    for name in (*INPUTS, "Decision", "ApprovedSend"):
        assert fast_reader(STORE.get(name)) is not None, name
        assert fast_writer(STORE.get(name)) is not None, name


def test_scenario_events_decode_on_the_fast_path_to_what_the_former_path_gave() -> None:
    assert len(SCENARIO_BODIES) > 200
    for record, data in SCENARIO_BODIES:
        fast = fast_of(record).read(data, HEADER)  # raises if the fast path were unsure
        assert repr(fast) == repr(SLOW.decode(data, record)[1])
        assert outcome(FAST, data, record) == outcome(SLOW, data, record)


def test_scenario_events_encode_to_the_same_bytes_from_both_shapes() -> None:
    for record, obj in SCENARIO_EVENTS:
        data = SLOW.encode(record, obj)
        decoded = SLOW.decode(data, record)[1]
        write = fast_writer(STORE.get(record))
        assert write is not None
        assert write(decoded) == data[HEADER:]  # the decoded shape takes the fast writer
        assert FAST.encode(record, decoded) == data
        assert FAST.encode(record, obj) == data  # the JSON shape falls back to the shaper


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gen.events)
def test_random_valid_events_decode_and_encode_like_the_former_path(event: Any) -> None:
    obj = event_to_dict(event)
    record = RECORD_FOR_EVENT_TYPE[obj["type"]]
    data = SLOW.encode(record, obj)
    assert outcome(FAST, data, record) == outcome(SLOW, data, record)
    decoded = SLOW.decode(data, record)[1]
    assert FAST.encode(record, decoded) == data


# ---------------------------------------------------------------------- forged bodies


def _as_ints(record: str, body: bytes) -> tuple[Any, dict[str, Any]]:
    """The body read with enums as long (what the wire holds), and that schema."""
    source = fast_of(record).source
    schema = fastavro.parse_schema(source)
    return schema, fastavro.schemaless_reader(io.BytesIO(body), schema, None)


def _rewrite(record: str, data: bytes, **fields: Any) -> bytes:
    schema, datum = _as_ints(record, data[HEADER:])
    datum.update(fields)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, datum)
    return data[:HEADER] + buf.getvalue()


def _send_request() -> bytes:
    return next(data for record, data in SCENARIO_BODIES if record == "SendRequest")


def _assert_same(data: bytes, record: str = "SendRequest") -> tuple[Any, ...]:
    fast, slow = outcome(FAST, data, record), outcome(SLOW, data, record)
    assert fast == slow
    return fast


@pytest.mark.parametrize("index", [-1, -13, 13, 2**31, 2**32, 2**32 + 1, 2**40, -(2**40)])
def test_forged_enum_index_is_refused_as_before(index: int) -> None:
    """cavro reads a forged negative index from the end and truncates an `int` to 32 bits
    (2**32 + 1 would be a valid 1): the fast path reads enums as long and maps by dict."""
    result = _assert_same(_rewrite("SendRequest", _send_request(), channel=index))
    assert result[:3] == ("refused", "invalid_enum", "channel")


@pytest.mark.parametrize("index", [2, 3, 64, -2, -3])
def test_union_branch_out_of_range_goes_the_former_way(index: int) -> None:
    data = _send_request()
    _, datum = _as_ints("SendRequest", data[HEADER:])
    # `service_kind` is ["null", ServiceKind]: write the branch index by hand
    head = io.BytesIO()
    fields = [f["name"] for f in fast_of("SendRequest").source["fields"]]
    before = {k: datum[k] for k in fields[: fields.index("service_kind")]}
    fastavro.schemaless_writer(head, {"type": "record", "name": "P", "fields": [
        f for f in fast_of("SendRequest").source["fields"] if f["name"] in before
    ]}, before)
    body = data[HEADER:]
    prefix = head.getvalue()
    assert body.startswith(prefix)
    rest = body[len(prefix):]
    forged = data[:HEADER] + prefix + _long(index) + rest[1:]
    with pytest.raises(Exception):  # noqa: B017 - cavro refuses it, whatever the type
        fast_of("SendRequest").read(forged, HEADER)
    _assert_same(forged)


@pytest.mark.parametrize("extra", [b"\x00", b"\x01", b"\x01\x00\x00", b"\x01" + bytes(63),
                                   b"\x01" + bytes(600)])
def test_trailing_bytes_are_refused_as_before(extra: bytes) -> None:
    data = _send_request() + extra
    with pytest.raises(Refused):
        fast_of("SendRequest").read(data, HEADER)
    result = _assert_same(data)
    assert result[:2] == ("refused", "invalid_value")


@pytest.mark.parametrize("cut", [1, 2, 7, 30])
def test_truncated_bodies_are_refused_as_before(cut: int) -> None:
    result = _assert_same(_send_request()[:-cut])
    assert result[0] == "refused"


def test_bad_utf8_negative_length_and_bad_timestamps_are_refused_as_before() -> None:
    data = _send_request()
    # `event_id` follows the one-byte `type` enum: its length byte is at HEADER + 1
    length = data[HEADER + 1] >> 1
    bad_utf8 = data[: HEADER + 2] + b"\xff" + data[HEADER + 3:]
    assert _assert_same(bad_utf8)[:2] == ("refused", "invalid_value")
    negative = data[: HEADER + 1] + _long(-length) + data[HEADER + 2:]
    assert _assert_same(negative)[0] == "refused"
    for millis in (-1, -(2**40), 253_402_300_800_000, 2**62):
        forged = _rewrite("SendRequest", data, occurred_at=millis)
        assert _assert_same(forged)[:3] == ("refused", "bad_timestamp", "occurred_at")


def test_varints_longer_than_ten_bytes_take_the_former_path() -> None:
    data = _send_request()
    # an 11-byte varint for `type` (index 0): continuation bits, then a zero
    forged = data[:HEADER] + b"\x80" * 10 + b"\x00" + data[HEADER + 1:]
    with pytest.raises(Refused):
        fast_of("SendRequest").read(forged, HEADER)
    _assert_same(forged)


def test_negative_array_block_counts_are_read_by_the_former_path() -> None:
    """Valid Avro (a count < 0 is followed by the block's byte size): cavro cannot read
    it, so the fast path refuses and the former path decodes the same record."""
    record, data = next((r, d) for r, d in SCENARIO_BODIES if r == "Order")
    _, datum = _as_ints(record, data[HEADER:])
    categories = datum["product_categories"]
    assert categories
    good = SLOW.decode(data, record)[1]
    body = data[HEADER:]
    plain = io.BytesIO()
    fastavro.schemaless_writer(plain, {"type": "array", "items": "string"}, categories)
    items = b"".join(_long(len(c.encode())) + c.encode() for c in categories)
    blocked = _long(-len(categories)) + _long(len(items)) + items + b"\x00"
    at = body.index(plain.getvalue())
    forged = data[:HEADER] + body[:at] + blocked + body[at + len(plain.getvalue()):]
    assert _assert_same(forged, record) == ("ok", record, repr(good))


def test_wrong_record_and_oversize_are_refused_before_any_read() -> None:
    record, data = next((r, d) for r, d in SCENARIO_BODIES if r == "Order")
    assert _assert_same(data, "SendRequest")[:2] == ("refused", "schema_mismatch")
    big = data + bytes(1 << 20)
    assert _assert_same(big, record)[:2] == ("refused", "oversize")


def test_random_mutations_never_decode_differently() -> None:
    """Flipped, inserted, deleted and appended bytes on every scenario body: the new
    codec answers exactly as the former one (same record, or same error)."""
    rnd = random.Random(16)
    checked = 0
    for record, data in SCENARIO_BODIES:
        for _ in range(40):
            body = bytearray(data)
            for _ in range(rnd.randint(1, 3)):
                at = rnd.randrange(HEADER, len(body) + 1)
                op = rnd.random()
                if op < 0.5 and at < len(body):
                    body[at] = rnd.randrange(256)
                elif op < 0.7:
                    body[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4)))
                elif op < 0.9 and at < len(body):
                    del body[at : at + rnd.randint(1, 4)]
                else:
                    body += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 3)))
            mutated = bytes(body)
            assert outcome(FAST, mutated, record) == outcome(SLOW, mutated, record), mutated
            checked += 1
    assert checked > 8000


def test_confluent_framing_and_old_writer_schemas_keep_working() -> None:
    confluent = ConfluentAvroCodec(f"mock://{uuid.uuid4().hex}", store=STORE)
    slow = ConfluentAvroCodec(client=confluent.client, store=STORE, fast=False)
    for record, obj in SCENARIO_EVENTS[:60]:
        data = confluent.encode(record, obj, topic="t-in")
        assert data[0] == 0
        assert repr(confluent.decode(data, record)) == repr(slow.decode(data, record))
        assert confluent._plan_for(data)[0].fast is not None


# ------------------------------------------------------------------------------ writer


class _Sub(StrEnum):
    EMAIL = "email"


def _decision() -> dict[str, Any]:
    return {
        "request_id": "r-1", "tenant": "t", "legal_entity": "Bergop BV", "channel": "email",
        "decision": "BLOCK", "reason_code": "BLOCK_NO_LEGAL_BASIS", "legal_basis": "NONE",
        "rule_ids": ("R-CONSENT-1",), "evidence": [], "rulebook_version": "1.3",
        "as_of": datetime(2026, 11, 23, 8, 42, tzinfo=UTC),
        "decided_at": datetime(2026, 12, 7, 6, 0, 0, 123456, tzinfo=UTC), "revokes": False,
    }


@pytest.mark.parametrize(
    "change",
    [
        {"channel": "nope"},
        {"channel": _Sub.EMAIL},
        {"request_id": 5},
        {"rule_ids": "R-1"},
        {"rule_ids": [1]},
        {"as_of": "2026-11-23T09:42:00+01:00"},
        {"as_of": datetime(2026, 11, 23, 8, 42)},  # naive
        {"as_of": datetime(1969, 12, 31, 23, 59, tzinfo=UTC)},
        {"decided_at": None},
        {"as_of": datetime(2026, 11, 23, 9, 42, tzinfo=timezone(timedelta(hours=1)))},
        {"revokes": 1},
        {"unknown": 1},
        {"request_id": "\ud800"},
        {"request_id": "é" * 100},
    ],
)
def test_the_fast_writer_refuses_what_it_is_unsure_of_and_the_shaper_answers(
    change: dict[str, Any],
) -> None:
    obj = {**_decision(), **change}
    assert encoded(FAST, "Decision", obj) == encoded(SLOW, "Decision", obj)


def test_missing_field_and_reader_defaults_go_through_the_shaper() -> None:
    obj = _decision()
    del obj["revokes"]  # has a default: the shaper fills it in
    assert encoded(FAST, "Decision", obj) == encoded(SLOW, "Decision", obj)
    del obj["tenant"]
    assert encoded(FAST, "Decision", obj)[:3] == ("refused", "missing_field", "tenant")


def test_long_encoding_matches_fastavro() -> None:
    rnd = random.Random(7)
    values = [0, 1, -1, 63, -64, 64, -65, 2**31, 2**35, 2**42 - 1, 2**42, 2**63 - 1, -(2**63)]
    values += [rnd.randint(-(2**63), 2**63 - 1) for _ in range(2000)]
    values += [rnd.randint(0, 253_402_300_799_999) for _ in range(2000)]
    for n in values:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, "long", n)
        assert _long(n) == buf.getvalue(), n


def test_checked_schema_reads_enums_and_ints_as_long() -> None:
    source = fast_of("Signup").source
    text = json.dumps(source)
    assert '"enum"' not in text and '"int"' not in text
    assert "logicalType" not in text


def test_the_fast_paths_are_wired_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the former reader and writer broken, a fresh fast codec still decodes every
    scenario body and re-encodes its decoded record: neither silently falls back."""
    codec = AvroCodec(STORE)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the former path ran")

    monkeypatch.setattr(AvroCodec, "_body", broken)
    monkeypatch.setattr(fastavro, "schemaless_writer", broken)
    for record, data in SCENARIO_BODIES:
        _, decoded = codec.decode(data, record)
        assert codec.encode(record, decoded) == data


def test_long_non_ascii_text_takes_the_former_path_and_reads_the_same() -> None:
    record, obj = next((r, o) for r, o in SCENARIO_EVENTS if r == "SendRequest")
    data = SLOW.encode(record, {**obj, "sender": {**obj["sender"], "display_name": "北京市朝阳区"}})
    with pytest.raises(Refused):
        fast_of(record).read(data, HEADER)
    assert outcome(FAST, data, record) == outcome(SLOW, data, record)
    assert FAST.decode(data, record)[1]["sender"]["display_name"] == "北京市朝阳区"
