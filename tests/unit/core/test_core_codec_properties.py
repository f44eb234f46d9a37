"""Issue 16 proofs: random valid events survive the Avro and JSON codecs and the state
codec unchanged, and `decide` over a file equals the worker's per-contact fold."""

from __future__ import annotations

import json

import msgspec
import strategies as gen
from core_events import TEST_SECRET
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from streams.codecs.avro import AvroCodec
from streams.codecs.json import JsonCodec
from streams.codecs.schemas import load_schema_store
from streams.core.engine import ContactState, DecisionEngine, contact_points, step
from streams.core.enums import Channel, ContactType
from streams.core.errors import RejectedRecord
from streams.core.jsonl import LineRejection, decide_lines
from streams.core.keys import normalised_contact_key
from streams.core.model import ContactPoint, Decision, Event, Order, SendRequest
from streams.core.parse import event_to_dict, parse_event
from streams.core.policy import PolicyBook
from streams.gate.state_codec import decode_state, encode_state
from streams.topics import RECORD_FOR_EVENT_TYPE

STORE = load_schema_store()
AVRO = AvroCodec(STORE)
JSON = JsonCodec(STORE)
CODEC_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@CODEC_SETTINGS
@given(gen.events)
def test_random_events_round_trip_through_avro_and_json(event: Event) -> None:
    """Equal as typed events: instants compare as instants (Avro keeps no offset)."""
    record = RECORD_FOR_EVENT_TYPE[str(event.type)]
    written = event_to_dict(event)
    for codec in (AVRO, JSON):
        name, decoded = codec.decode(codec.encode(record, written), record)
        assert name == record
        assert parse_event(decoded) == event
    assert parse_event(json.loads(json.dumps(written))) == event


@CODEC_SETTINGS
@given(st.lists(gen.events, max_size=12))
def test_random_states_round_trip_through_the_state_codec(history: list[Event]) -> None:
    engine = DecisionEngine(PolicyBook(), TEST_SECRET)
    for event in history:
        try:
            engine.feed(event)
        except RejectedRecord:  # a conflicting repeat; the states are what matters here
            continue
    for state in engine.states.values():
        assert decode_state(encode_state(state)) == state


EMAILS = [
    ContactPoint(ContactType.EMAIL, "jan@Bücher.de"),
    ContactPoint(ContactType.EMAIL, "JAN@xn--bcher-kva.de"),
]
PHONES = [ContactPoint(ContactType.PHONE, "06 12345678")]


@st.composite
def streams_of_events(draw: st.DrawFn) -> list[Event]:
    """A history on few contact points and ids, with exact repeats and conflicting ones.
    Orders list one contact and keep it across versions (a replaced order dropping a
    contact is a documented difference between `decide` and the worker)."""
    pool = draw(
        st.lists(
            st.one_of(
                gen.orders,
                gen.signups(),
                gen.unsubscribes().map(lambda u: replace(u, linked_contacts=())),
                gen.send_requests([Channel.EMAIL, Channel.SMS, Channel.WHATSAPP]),
            ),
            min_size=1,
            max_size=10,
        )
    )
    history: list[Event] = []
    for event in pool:
        if isinstance(event, SendRequest):
            points = EMAILS if event.channel is Channel.EMAIL else PHONES
            event = replace(event, contact=draw(st.sampled_from(points)))
        elif isinstance(event, Order):
            point = draw(st.sampled_from(EMAILS + PHONES))
            fact = replace(event.contacts[0], contact=point)
            event = replace(event, contacts=(fact,), order_id=str(point.type))
        else:
            event = replace(event, contact=draw(st.sampled_from(EMAILS + PHONES)))
        history.append(event)
        repeat = draw(st.sampled_from(["none", "same", "other content"]))
        if repeat != "none":
            again = event if repeat == "same" else replace(event, legal_entity="Ander BV")
            history.insert(draw(st.integers(0, len(history))), again)
    return history


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams_of_events())
def test_decide_equals_the_workers_fold_per_contact_point(history: list[Event]) -> None:
    """`sendgate decide` (JSONL lines through `decide_lines`) against the worker's way:
    every fanned-out contact point stepped on its own state, a conflicting repeat
    dropped (dead letter) without touching the state."""
    lines = [json.dumps(event_to_dict(e)) for e in history]
    decided = [
        item
        for item in decide_lines(lines, DecisionEngine(PolicyBook(), TEST_SECRET))
        if isinstance(item, Decision)
    ]
    states: dict[str, ContactState] = {}
    folded: list[Decision] = []
    policy = PolicyBook().default_policy
    for event in history:
        for point in contact_points(event):
            key = normalised_contact_key(TEST_SECRET, event.tenant, point)
            result = step(states.get(key, ContactState.empty()), event, policy, point)
            if result.conflicting:
                continue
            states[key] = result.state
            folded.extend(result.decisions)
    assert decided == folded
    rejected = [
        item
        for item in decide_lines(lines, DecisionEngine(PolicyBook(), TEST_SECRET))
        if isinstance(item, LineRejection)
    ]
    assert all(r.reason == "conflicting_duplicate" for r in rejected)


def _defaults_as_none(event: Event, written: dict[str, object]) -> dict[str, object]:
    """The record with every top-level field that holds its (non-None) default written as
    None: the shape an Avro-decoded record has, which the direct conversion refuses."""
    out = dict(written)
    for info in msgspec.structs.fields(type(event)):
        default = info.default
        if default is msgspec.NODEFAULT or default is None or info.name not in out:
            continue
        if getattr(event, info.name) == default:
            out[info.name] = None
    return out


@CODEC_SETTINGS
@given(gen.events)
def test_direct_conversion_and_pre_pass_give_the_same_event(event: Event) -> None:
    """`parse_event` converts a plain record directly and falls back to the pre-pass
    (None = absent) when that fails: both paths build the same event."""
    written = event_to_dict(event)
    nulled = _defaults_as_none(event, written)
    assert parse_event(written) == event
    assert parse_event(nulled) == event
