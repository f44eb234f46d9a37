"""Test and bench harness: the decision record as `Gate.output_for` wrote it before issue 16
§4 (decision → RFC 3339 dict → shaper → fastavro), the reference the fast path's output is
compared with byte for byte (tests/unit/gate/test_output_bytes.py, bench/bench_codec.py)."""

from __future__ import annotations

from streams import topics as T
from streams.core.model import ContactPoint, Decision, Event, SendRequest
from streams.core.parse import decision_to_dict
from streams.gate.gate import Gate


def former_output(gate: Gate, decision: Decision, event: Event, contact: ContactPoint) -> bytes:
    """`gate` holds the former codec (`AvroCodec(fast=False)` or another reference codec)."""
    record = decision_to_dict(decision)
    record["as_of"] = decision.as_of
    record["decided_at"] = decision.decided_at
    if decision.revokes:
        return gate.codec.encode(T.DECISION_RECORD, record, topic=gate.revoked_topic)
    if str(decision.decision) == "ALLOW" and isinstance(event, SendRequest):
        record.update(
            contact={"type": str(contact.type), "value": contact.value},
            dispatch_at=event.dispatch_at or event.occurred_at,
            platform=event.platform,
            campaign_id=event.campaign_id,
            template_id=event.template_id,
            declared_purpose=str(event.declared_purpose),
            service_kind=None if event.service_kind is None else str(event.service_kind),
        )
        return gate.codec.encode(T.APPROVED_RECORD, record, topic=gate.approved_topic)
    return gate.codec.encode(T.DECISION_RECORD, record, topic=gate.blocked_topic)
