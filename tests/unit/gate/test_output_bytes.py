"""Issue 16 §4: `Gate.output_for` encodes the `Decision` Struct without the RFC 3339 round
trip, byte for byte what the former body (`decision_to_dict`, then the shaper) produced,
for blocked, approved and revoked records, with single-object and Confluent framing."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams import topics as T
from streams.codecs.avro import AvroCodec, ConfluentAvroCodec
from streams.codecs.base import Codec
from streams.codecs.json import JsonCodec
from streams.codecs.schemas import load_schema_store
from streams.config import DEFAULT_SCENARIO_DIR
from streams.core.engine import contact_points
from streams.core.errors import RejectedRecord
from streams.core.model import ContactPoint, Decision, Event
from streams.core.parse import parse_event
from streams.core.policy import PolicyBook
from streams.gate.gate import ContactEvent, Gate, MemoryStore
from streams.gate.records import Headers, InRecord
from streams.testing.reference_output import former_output

SECRET = b"output-bytes-test-secret-0123456"
NOW = datetime(2026, 12, 7, 6, 30, 15, 987000, tzinfo=UTC)
STORE = load_schema_store()


Fold = tuple[Decision, Event, bytes, ContactPoint, Headers]


def _lines() -> list[dict[str, Any]]:
    out = []
    for path in sorted(DEFAULT_SCENARIO_DIR.glob("T*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def _revocation(gate: Gate, store: MemoryStore) -> list[Fold]:
    """A consent, an ALLOW dispatched a week later, then a withdrawal before dispatch."""
    at = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    contact = {"type": "email", "value": "revoke@example.nl"}
    common = {"tenant": "t-revoke", "legal_entity": "Bergop BV", "contact": contact}
    lines = [
        {"type": "signup", "event_id": "rv-1", "occurred_at": at.isoformat(), **common,
         "kind": "consent", "subject_age": None, "consent": {
             "consent_id": "c-1", "channels": ["email"], "scope": ["offers"],
             "product_categories": [], "partners_named": [], "platforms": [],
             "named_legal_entity": "Bergop BV", "mechanism": "double_opt_in",
             "source": "own_form", "wording_version": "v1", "proof_ref": "proof-1",
             "period_end": None}},
        {"type": "send_request", "event_id": "rv-2", "request_id": "rv-r",
         "occurred_at": (at + timedelta(hours=1)).isoformat(), **common, "channel": "email",
         "declared_purpose": "commercial", "service_kind": None, "relates_to_order_id": None,
         "platform": None, "campaign_id": "c", "template_id": None,
         "dispatch_at": (at + timedelta(days=7)).isoformat(),
         "content": {"content_scope": "offers", "has_promo": True},
         "sender": {"display_name": "Bergop", "has_identity_block": True,
                    "has_unsubscribe": True}, "recipient": {}},
        {"type": "unsubscribe", "event_id": "rv-3", "occurred_at":
         (at + timedelta(days=1)).isoformat(), **common, "kind": "unsubscribe",
         "channels": ["email"], "source": "unsubscribe_link", "consent_id": None,
         "list_id": None},
    ]
    return _fold(gate, store, lines)


def _fold(gate: Gate, store: MemoryStore, lines: list[dict[str, Any]]) -> list[Fold]:
    out: list[Fold] = []
    for i, obj in enumerate(lines):
        obj = {k: v for k, v in obj.items() if k != "expect"}
        try:
            event = parse_event(obj)
        except RejectedRecord:
            continue
        source = InRecord("test", 0, i, 0, None, b"", [])
        for route in gate.routes(event, contact_points(event)):
            folded = gate.fold(store, ContactEvent(event, route.contact, route.key, []), source)
            out.extend((d, event, route.key, route.contact, []) for d in folded.decisions)
    return out


def _decisions(gate: Gate) -> list[Fold]:
    store = MemoryStore()
    return _fold(gate, store, _lines()) + _revocation(gate, store)


def _codecs() -> list[tuple[Codec, Codec]]:
    """(new, former) pairs; the Confluent pair shares one registry, so one schema id."""
    confluent = ConfluentAvroCodec(f"mock://{uuid.uuid4().hex}", store=STORE)
    return [
        (AvroCodec(STORE), AvroCodec(STORE, fast=False)),
        (confluent, ConfluentAvroCodec(client=confluent.client, store=STORE, fast=False)),
        (JsonCodec(), JsonCodec()),
    ]


@pytest.mark.parametrize("codecs", _codecs(), ids=["single-object", "confluent", "json"])
def test_output_records_are_byte_identical_to_the_former_ones(codecs: tuple[Codec, Codec]) -> None:
    gate = Gate(codecs[0], PolicyBook.default(), SECRET, clock=lambda: NOW)
    former = Gate(codecs[1], PolicyBook.default(), SECRET, clock=lambda: NOW)
    folds = _decisions(gate)
    topics: Counter[str] = Counter()
    for decision, event, key, contact, passthrough in folds:
        out = gate.output_for(decision, event, key, contact, passthrough)
        assert out.value == former_output(former, decision, event, contact), decision
        topics[out.topic] += 1
    assert topics[gate.blocked_topic] > 50
    assert topics[gate.approved_topic] > 20
    assert topics[gate.revoked_topic] >= 2  # T-scenario one + the constructed one


def test_output_records_decode_back_to_the_decision() -> None:
    codec = AvroCodec(STORE)
    gate = Gate(codec, PolicyBook.default(), SECRET, clock=lambda: NOW)
    for decision, event, key, contact, passthrough in _decisions(gate)[:200]:
        out = gate.output_for(decision, event, key, contact, passthrough)
        name, record = codec.decode(out.value)
        assert record["request_id"] == decision.request_id
        assert record["decided_at"] == NOW
        assert record["as_of"] == decision.as_of
        assert (name == T.APPROVED_RECORD) == (out.topic == gate.approved_topic)
        if name == T.APPROVED_RECORD:
            assert record["contact"] == {"type": str(contact.type), "value": contact.value}
