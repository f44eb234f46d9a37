"""Issue 12 §4: `last_decision.decided_at` is filled — the gate stamps it in the state, so
the status view has it and a re-emitted duplicate carries the original time."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streams.codecs.avro import AvroCodec
from streams.core.policy import PolicyBook
from streams.gate.gate import Admitted, Folded, Gate, MemoryStore
from streams.gate.records import InRecord
from streams.view.projection import answer_from_fields, project

sys.path.insert(0, str(Path(__file__).parent / "codecs"))
from test_registry_subjects import ORDER, _request

SECRET = b"decided-at-test"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_decided_at_in_state_view_and_duplicates() -> None:
    codec = AvroCodec()
    now = [T0]
    gate = Gate(codec, PolicyBook.default(), SECRET, clock=lambda: now[0])
    store = MemoryStore()
    key = b"t|email|jan@example.nl"
    outcomes: list[Folded] = []
    request = _request("r1", "service", "order_confirmation")
    for offset, (topic, event) in enumerate(
        [("orders", ORDER), ("send-requests", request), ("send-requests", request)]
    ):
        value = codec.encode((topic == "orders" and "Order") or "SendRequest", event, topic=topic)
        adm = gate.admit(InRecord(topic, 0, offset, 0, key, value))
        assert isinstance(adm, Admitted), adm
        (route,) = adm.routes
        outcomes.append(gate.fold(store, gate.contact_event(adm, route), adm.record))
        now[0] += timedelta(seconds=5)
    state = store.get(route.key)  # what the changelog and the status view get
    assert state is not None and state == outcomes[-1].state
    decided = state.decided["r1"]
    assert decided.decided_at == T0 + timedelta(seconds=5)
    first, again = outcomes[1], outcomes[2]
    assert not first.duplicate and again.duplicate
    assert first.outputs[0].value == again.outputs[0].value  # identical copies
    _, record = codec.decode(first.outputs[0].value)
    assert record["decided_at"] == T0 + timedelta(seconds=5)  # the output carries it too
    fields = project(state, "t", decided.as_of, PolicyBook.default())
    answer = answer_from_fields(
        "Shop BV", "email", fields["_"], fields.get("Shop BV|email"), fields["*|email"],
        fields["Shop BV|email|d"], None,
    )
    assert answer.last_decision is not None
    assert answer.last_decision["decided_at"] == "2026-11-23T09:00:05Z"
