"""Shared samples for the codec tests: one valid record of every schema."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from streams.codecs.avro import AvroCodec
from streams.codecs.json import JsonCodec
from streams.codecs.schemas import SchemaStore, load_schema_store

ORDER: dict[str, Any] = json.loads(
    '{"type": "order", "event_id": "T01-e01", "occurred_at": "2026-11-23T09:41:00+01:00",'
    ' "tenant": "t-T01", "legal_entity": "Fietsenwinkel Noord BV", "order_id": "FN-1",'
    ' "kind": "purchase", "status": "paid", "paid_amount_cents": 4995,'
    ' "product_categories": ["fietsaccessoires"], "contract_end_at": null,'
    ' "recipient_kind": "consumer", "address_type": "direct", "marketplace": null,'
    ' "sold_by_phone": false, "confirmed_in_writing": false,'
    ' "contacts": [{"contact": {"type": "email", "value": "m.huisman@ziggo.nl"},'
    ' "obtained_at_sale": true, "optout_offered": true, "optout_method": "separate_optout_box",'
    ' "optout_exercised": false, "informed_of_calls": false}]}'
)

DECISION: dict[str, Any] = {
    "request_id": "T01-r01",
    "tenant": "t-T01",
    "legal_entity": "Fietsenwinkel Noord BV",
    "channel": "email",
    "decision": "ALLOW",
    "reason_code": "ALLOW_SERVICE_MESSAGE",
    "legal_basis": "GDPR_6_1_B",
    "rule_ids": ["R-SERVICE-1"],
    "evidence": ["T01-e01"],
    "rulebook_version": "1.3",
    "as_of": "2026-11-23T09:42:00+01:00",
    "decided_at": datetime(2026, 11, 23, 8, 42, 0, 123000, tzinfo=UTC),
    "revokes": False,
}

APPROVED: dict[str, Any] = {
    **DECISION,
    "contact": {"type": "email", "value": "m.huisman@ziggo.nl"},
    "dispatch_at": "2026-11-23T09:42:00+01:00",
    "platform": None,
    "campaign_id": None,
    "template_id": "orderbevestiging-v7",
    "declared_purpose": "service",
    "service_kind": "order_confirmation",
}

DEAD_LETTER: dict[str, Any] = {
    "source_topic": "orders",
    "partition": 3,
    "offset": 42,
    "reason": "bad_magic",
    "field": None,
    "message": "starts with 7b22",
    "original_key": b"t|email|x@y.nl",
    "original_value": b'{"not": "avro"}',
    "headers": {"content-type": b"application/json"},
    "detected_at": datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
}

AUDIT_FINDING: dict[str, Any] = {
    "audit_run_id": "run-1",
    "request_id": "T01-r01",
    "tenant": "t-T01",
    "legal_entity": "Fietsenwinkel Noord BV",
    "channel": "email",
    "kind": "allow_to_block",
    "emitted_decision": "ALLOW",
    "emitted_reason_code": "ALLOW_CONSENT",
    "audited_decision": "BLOCK",
    "audited_reason_code": "BLOCK_OBJECTION",
    "detected_at": "2026-11-24T00:00:00Z",
}


@pytest.fixture
def order() -> dict[str, Any]:
    return copy.deepcopy(ORDER)


@pytest.fixture
def samples() -> dict[str, dict[str, Any]]:
    """One valid record per non-input record schema (inputs come from the scenarios)."""
    return copy.deepcopy(
        {
            "Order": ORDER,
            "Decision": DECISION,
            "ApprovedSend": APPROVED,
            "DeadLetter": DEAD_LETTER,
            "AuditFinding": AUDIT_FINDING,
        }
    )


@pytest.fixture(scope="session")
def store() -> SchemaStore:
    return load_schema_store()


@pytest.fixture
def avro(store: SchemaStore) -> AvroCodec:
    return AvroCodec(store)


@pytest.fixture
def json_codec(store: SchemaStore) -> JsonCodec:
    return JsonCodec(store)


@pytest.fixture
def fresh_store() -> Callable[[], SchemaStore]:
    """A new store from schemas/ (tests that add writer schemas must not touch the shared one)."""
    return SchemaStore.load
