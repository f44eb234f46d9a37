"""Issue 12 §5: with a schema registry every record the worker writes — outputs and dead
letters too — is registered under `<topic>-value` and reads back with confluent-kafka's
own deserializer (TopicNameStrategy)."""

from __future__ import annotations

import importlib
import json
import uuid
import warnings
from datetime import UTC, datetime
from typing import Any

with warnings.catch_warnings():  # authlib's import-time notice (it forces "always")
    importlib.import_module("authlib.deprecate")
    warnings.simplefilter("ignore")
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams import topics as T
from streams.codecs.avro import ConfluentAvroCodec
from streams.core.policy import PolicyBook
from streams.gate.gate import Admitted, Gate, MemoryStore, Rejected
from streams.gate.records import InRecord, OutRecord

SECRET = b"registry-subject-test"
AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ORDER = json.loads(
    '{"type": "order", "event_id": "e1", "occurred_at": "2026-11-23T09:41:00+01:00",'
    ' "tenant": "t", "legal_entity": "Shop BV", "order_id": "o-1", "kind": "purchase",'
    ' "status": "paid", "paid_amount_cents": 4995, "product_categories": ["bikes"],'
    ' "contract_end_at": null, "recipient_kind": "consumer", "address_type": "direct",'
    ' "marketplace": null, "sold_by_phone": false, "confirmed_in_writing": false,'
    ' "contacts": [{"contact": {"type": "email", "value": "jan@example.nl"},'
    ' "obtained_at_sale": true, "optout_offered": true, "optout_method": "link",'
    ' "optout_exercised": false, "informed_of_calls": false}]}'
)


def _request(rid: str, purpose: str, kind: str | None) -> dict[str, Any]:
    return {
        "type": "send_request", "event_id": f"e-{rid}",
        "occurred_at": "2026-11-23T09:42:00+01:00", "tenant": "t", "legal_entity": "Shop BV",
        "request_id": rid, "contact": {"type": "email", "value": "jan@example.nl"},
        "channel": "email", "declared_purpose": purpose, "service_kind": kind,
        "relates_to_order_id": "o-1", "requested_by_recipient": False,
        "content": {"content_scope": "updates", "has_promo": False, "promo_categories": [],
                    "third_party_offer": None, "is_consent_request": False,
                    "is_review_request": False, "review_incentive": False},
        "sender": {"display_name": "Shop BV", "has_identity_block": True,
                   "has_unsubscribe": False, "unsubscribe_requires_login": False,
                   "cli_withheld": False, "sector": "other"},
        "recipient": {"kind": "consumer", "established_outside_eea": False,
                      "address_published_for_purpose": False, "postfilter_registered": False},
        "platform": None, "campaign_id": None, "template_id": None,
    }


def test_outputs_and_dead_letters_use_topic_subjects() -> None:
    prefix = "p."
    codec = ConfluentAvroCodec(f"mock://{uuid.uuid4().hex}")
    gate = Gate(codec, PolicyBook.default(), SECRET, clock=lambda: AT, topic_prefix=prefix)
    store = MemoryStore()
    key = b"t|email|jan@example.nl"
    outputs: list[OutRecord] = []
    events = [("orders", ORDER), ("send-requests", _request("r1", "service", "order_confirmation")),
              ("send-requests", _request("r2", "commercial", None))]
    for offset, (topic, event) in enumerate(events):
        record = T.INPUT_RECORDS[topic]
        value = codec.encode(record, event, topic=prefix + topic)
        adm = gate.admit(InRecord(prefix + topic, 0, offset, 0, key, value))
        assert isinstance(adm, Admitted), adm
        for route in adm.routes:
            folded = gate.fold(store, gate.contact_event(adm, route), adm.record)
            assert folded.dead_letter is None
            outputs.extend(folded.outputs)
    bad = gate.admit(InRecord(prefix + "orders", 0, 9, 0, key, b'{"not": "avro"}'))
    assert isinstance(bad, Rejected)
    outputs.append(bad.dead_letter)

    topics = {o.topic for o in outputs}
    assert {prefix + T.APPROVED, prefix + T.BLOCKED, prefix + T.DEAD_LETTER} <= topics
    client = codec.client
    subjects = set(client.get_subjects())
    assert {f"{t}-value" for t in topics} <= subjects
    assert not any(s.startswith("nl.sendgate") for s in subjects), subjects
    for out in outputs:
        schema_id = int.from_bytes(out.value[1:5], "big")
        # the subject lookup: this exact schema is registered under <topic>-value ...
        registered = client.lookup_schema(
            f"{out.topic}-value", Schema(client.get_schema(schema_id).schema_str, "AVRO")
        )
        assert registered.schema_id == schema_id
        # ... and confluent-kafka's own deserializer reads the record
        record = AvroDeserializer(client)(
            out.value, SerializationContext(out.topic, MessageField.VALUE)
        )
        assert isinstance(record, dict)
        if out.topic.endswith(T.DEAD_LETTER):
            assert record["reason"] == "bad_magic"
        else:
            assert record["request_id"] in {"r1", "r2"}
