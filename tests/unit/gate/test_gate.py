"""Issue 15 §6: the gate without Kafka, with the in-memory store."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from streamkit import comparable

from streams.codecs.registry import get_codec
from streams.config import DEFAULT_SCENARIO_DIR
from streams.core.engine import DecisionEngine
from streams.core.parse import decision_to_dict, parse_event
from streams.core.policy import PolicyBook
from streams.gate.gate import Admitted, Gate, MemoryStore, Rejected
from streams.gate.records import H_CONTACT_INDEX, H_FORGET, InRecord, OutRecord, header
from streams.gate.routing import murmur2, partition_for
from streams.testing.feeder import Publisher, load_jsonl

SECRET = b"unit-test-key"
CODEC = get_codec()


def _publisher() -> Publisher:
    pub = Publisher.__new__(Publisher)
    pub.codec, pub.prefix = CODEC, ""
    return pub


def _gate() -> Gate:
    return Gate(CODEC, PolicyBook.default(), SECRET)


def _record(event: dict[str, Any], offset: int = 0, *, partition: int | None = None,
            key: bytes | None = None) -> InRecord:
    topic, k, value = _publisher().encode(event)
    key = k if key is None else key
    p = partition_for(key, 12) if partition is None else partition
    return InRecord(topic, p, offset, 1_000 + offset, key, value, [])


def _fold_all(gate: Gate, store: MemoryStore, events: Iterable[dict[str, Any]]
              ) -> dict[str, dict[str, Any]]:
    finals: dict[str, dict[str, Any]] = {}
    for offset, event in enumerate(events):
        adm = gate.admit(_record(event, offset))
        assert isinstance(adm, Admitted), adm
        for route in adm.routes:
            folded = gate.fold(store, gate.contact_event(adm, route), adm.record)
            assert folded.dead_letter is None
            for d in folded.decisions:
                finals[d.request_id] = decision_to_dict(d)
    return finals


def _decide(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    engine = DecisionEngine(PolicyBook.default(), SECRET)
    finals: dict[str, dict[str, Any]] = {}
    for event in events:
        for d in engine.feed(parse_event(event)):
            finals[d.request_id] = decision_to_dict(d)
    return finals


def _scenarios() -> list[list[dict[str, Any]]]:
    folder = Path(os.environ.get("SENDGATE_SCENARIOS", str(DEFAULT_SCENARIO_DIR)))
    files = sorted(folder.glob("T*.jsonl"))
    assert len(files) == 110, f"expected the 110 shared scenarios in {folder}"
    return [load_jsonl(f) for f in files]


def test_every_scenario_through_the_gate_equals_decide() -> None:
    gate = _gate()
    for events in _scenarios():
        got = {r: comparable(d) for r, d in _fold_all(gate, MemoryStore(), events).items()}
        want = {r: comparable(d) for r, d in _decide(events).items()}
        assert got == want


def test_a_repeated_request_re_emits_the_stored_decision_identically() -> None:
    gate, store = _gate(), MemoryStore()
    events = next(f for f in _scenarios() if any(e["type"] == "send_request" for e in f))
    _fold_all(gate, store, events)
    request = next(e for e in events if e["type"] == "send_request")
    adm = gate.admit(_record(request, 99))
    assert isinstance(adm, Admitted)
    first_route = adm.routes[0]
    again = gate.fold(store, gate.contact_event(adm, first_route), adm.record)
    assert again.duplicate
    (out,) = again.outputs
    stored = store.get(first_route.key)
    assert stored is not None
    rid = request["request_id"]
    assert again.decisions[0] == stored.decided[rid].rebuild(rid, request["tenant"])
    assert header(out.headers, "sg-request-id") == request["request_id"].encode()


@pytest.mark.parametrize(
    ("mangle", "reason", "field"),
    [
        (lambda r: InRecord(r.topic, r.partition, r.offset, 0, r.key, b"\x00garbage"),
         "bad_magic", "value"),
        (lambda r: InRecord(r.topic, r.partition, r.offset, 0, b"shop|email|x@y.nl", r.value),
         "wrong_key", "key"),
        (lambda r: InRecord(r.topic, r.partition, r.offset, 0, r.key, None), "truncated", "value"),
        (lambda r: InRecord("elsewhere", r.partition, r.offset, 0, r.key, r.value),
         "wrong_topic", "topic"),
    ],
)
def test_bad_records_become_one_dead_letter_with_reason(
    mangle: Any, reason: str, field: str
) -> None:
    """Every reason names its field (issue 12 §2); the key is never the raw input key."""
    gate = _gate()
    event = _scenarios()[0][0]
    rec = mangle(_record(event, 7))
    out = gate.admit(rec)
    assert isinstance(out, Rejected)
    assert out.dead_letter.topic == "sendgate.dead-letter"
    _, dl = CODEC.decode(out.dead_letter.value)
    assert (dl["reason"], dl["field"], dl["offset"]) == (reason, field, 7)
    assert dl["original_value"] == (rec.value or b"")
    assert out.dead_letter.key != rec.key


def test_a_core_failure_dead_letters_the_record_and_keeps_the_state() -> None:
    class Broken(MemoryStore):
        def get(self, key: bytes) -> Any:
            raise RuntimeError("disk on fire")

    gate = _gate()
    adm = gate.admit(_record(_scenarios()[0][0]))
    assert isinstance(adm, Admitted)
    folded = gate.fold(Broken(), gate.contact_event(adm, adm.routes[0]), adm.record)
    assert folded.dead_letter is not None and folded.outputs == ()
    _, dl = CODEC.decode(folded.dead_letter.value)
    assert dl["reason"] == "processing_error"


def _multi_contact_order() -> dict[str, Any]:
    for events in _scenarios():
        for e in events:
            if e["type"] == "order" and len(e.get("contacts", [])) > 1:
                return e
    pytest.skip("no multi-contact order in the scenarios")


def test_forwards_carry_the_extra_contacts_to_their_partition() -> None:
    gate = _gate()
    order = _multi_contact_order()
    adm = gate.admit(_record(order, 3))
    assert isinstance(adm, Admitted) and len(adm.routes) > 1
    for route in adm.routes[1:]:
        fwd: OutRecord = gate.forward(adm, route)
        assert fwd.topic == "sendgate.contact-events"
        assert fwd.partition == route.partition
        assert fwd.timestamp_ms == adm.record.timestamp_ms  # sorts where its origin did
        rec = InRecord(fwd.topic, route.partition, 0, 0, fwd.key, fwd.value, fwd.headers)
        ce = gate.open_forward(rec)
        assert not isinstance(ce, Rejected)
        assert ce.contact == route.contact and ce.key == route.key
        assert header(fwd.headers, H_CONTACT_INDEX) == str(route.index).encode()


def test_a_forget_forward_drops_the_order_from_an_unlisted_contact() -> None:
    """Contract §2: a later version of an order replaces the earlier one as a whole."""
    gate, store = _gate(), MemoryStore()
    order = _multi_contact_order()
    adm = gate.admit(_record(order))
    assert isinstance(adm, Admitted)
    for route in adm.routes:
        gate.fold(store, gate.contact_event(adm, route), adm.record)
    dropped = adm.routes[-1]
    before = store.get(dropped.key)
    assert before is not None and before.orders
    later = {**order, "event_id": order["event_id"] + "-v2",
             "contacts": order["contacts"][:-1]}
    adm2 = gate.admit(_record(later, 1))
    assert isinstance(adm2, Admitted)
    fwd = gate.forget_forward(adm2, dropped.key, dropped.partition, str(dropped.contact.type))
    assert header(fwd.headers, H_FORGET) == b"1" and fwd.partition == dropped.partition
    ce = gate.open_forward(InRecord(fwd.topic, 0, 0, 0, fwd.key, fwd.value, fwd.headers))
    assert not isinstance(ce, Rejected) and ce.forget
    gate.fold(store, ce, adm2.record)
    after = store.get(dropped.key)
    assert after is not None and not after.orders
    kept = store.get(adm.routes[0].key)
    assert kept is not None and kept.orders  # the listed contact keeps it


def test_murmur2_is_kafkas() -> None:
    """Kafka's own test vectors (clients UtilsTest.testMurmur2), as signed ints."""
    vectors = {
        "21": -973932308,
        "foobar": -790332482,
        "a-little-bit-long-string": -985981536,
        "a-little-bit-longer-string": -1486304829,
        "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        "abc": 479470107,
    }
    for text, want in vectors.items():
        h = murmur2(text.encode())
        assert (h - (1 << 32) if h >= 1 << 31 else h) == want
