"""Issue 12 §4: `last_decision.decided_at` is filled — the gate stamps it in the state, so
the status view has it and a re-emitted duplicate carries the original time."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streams.app.pipeline import Gate, Ingestor
from streams.codecs.avro import AvroCodec
from streams.core.policy import PolicyBook
from streams.view.projection import answer_from_fields, project

sys.path.insert(0, str(Path(__file__).parent / "codecs"))
from test_registry_subjects import ORDER, _request

SECRET = b"decided-at-test"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_decided_at_in_state_view_and_duplicates() -> None:
    codec = AvroCodec()
    now = [T0]
    ingestor = Ingestor(codec, SECRET)
    gate = Gate(codec, PolicyBook.default(), clock=lambda: now[0])
    key = b"t|email|jan@example.nl"
    state = None
    outcomes = []
    request = _request("r1", "service", "order_confirmation")
    for offset, (topic, event) in enumerate(
        [("orders", ORDER), ("send-requests", request), ("send-requests", request)]
    ):
        value = codec.encode((topic == "orders" and "Order") or "SendRequest", event, topic=topic)
        fwd = ingestor.ingest(topic, 0, offset, key, value, []).forwards[0]
        outcome = gate.process(state, fwd.key or b"", fwd.value, fwd.headers)
        state = outcome.state
        outcomes.append(outcome)
        now[0] += timedelta(seconds=5)
    assert state is not None
    decided = state.decided["r1"]
    assert decided.decided_at == T0 + timedelta(seconds=5)
    first, again = outcomes[1], outcomes[2]
    assert not first.duplicate and again.duplicate
    assert first.outputs[0].value == again.outputs[0].value  # identical copies
    fields = project(state, "t", decided.as_of, PolicyBook.default())
    answer = answer_from_fields(
        "Shop BV", "email", fields["_"], fields.get("Shop BV|email"), fields["*|email"],
        fields["Shop BV|email|d"], None,
    )
    assert answer.last_decision is not None
    assert answer.last_decision["decided_at"] == "2026-11-23T09:00:05Z"
