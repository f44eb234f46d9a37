"""Hypothesis properties of the core over random event histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core_events import (
    EMAIL,
    PHONE,
    SHOP,
    SISTER,
    consent,
    engine,
    order,
    run,
    send,
    service,
    signup,
    unsubscribe,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.eventtime import AMSTERDAM
from streams.core.model import Decision
from streams.core.parse import parse_event
from streams.core.policy import Policy, PolicyBook
from streams.gate.state_codec import decode_state, encode_state

Event = dict[str, Any]

START = datetime(2024, 1, 1, tzinfo=UTC)
REQUEST_AT = "2026-11-23T10:00:00+01:00"
ENTITIES = st.sampled_from([SHOP, SISTER])
CONTACTS = st.sampled_from([EMAIL, PHONE])
CATEGORIES = st.lists(st.sampled_from(["koffie", "thee", "bonen"]), min_size=0, max_size=2)
CHANNELS_OF = {"email": ["email", "custom_audience"], "phone": ["sms", "whatsapp", "phone_live"]}
LONG_HORIZON = PolicyBook(Policy(idempotency_horizon_days=100_000))
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def instants(draw: st.DrawFn) -> str:
    """A time before the requests, written in UTC or Amsterdam local time."""
    moment = START + timedelta(minutes=draw(st.integers(0, 1_450_000)))
    if draw(st.booleans()):
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.astimezone(AMSTERDAM).isoformat()


@st.composite
def orders(draw: st.DrawFn, *, relay: bool = True) -> Event:
    contact = draw(CONTACTS)
    address_types = ["direct", "marketplace_relay"] if relay else ["direct"]
    return order(
        at=draw(instants()),
        entity=draw(ENTITIES),
        order_id=draw(st.sampled_from(["o-1", "o-2", "o-3"])),
        kind=draw(st.sampled_from(["purchase", "donation", "subscription"])),
        status=draw(st.sampled_from(["paid", "paid", "placed", "cancelled", "refunded"])),
        amount=draw(st.sampled_from([0, 1500])),
        categories=draw(CATEGORIES),
        address_type=draw(st.sampled_from(address_types)),
        contact=contact,
        obtained_at_sale=draw(st.booleans()),
        optout_offered=draw(st.booleans()),
        optout_method=draw(
            st.sampled_from(["separate_optout_box", "link", "none", "unticked_optin_box"])
        ),
        optout_exercised=draw(st.booleans()),
        informed_of_calls=draw(st.booleans()),
    )


@st.composite
def consents(draw: st.DrawFn) -> Event:
    contact = draw(CONTACTS)
    return consent(
        at=draw(instants()),
        entity=draw(ENTITIES),
        named=draw(ENTITIES),
        contact=contact,
        channels=draw(st.lists(st.sampled_from(CHANNELS_OF[contact["type"]]), min_size=1)),
        scope=draw(
            st.lists(
                st.sampled_from(["newsletter", "offers", "telemarketing", "custom_audience"]),
                min_size=1,
            )
        ),
        platforms=["meta"],
        mechanism=draw(st.sampled_from(["double_opt_in", "active_tick", "pre_ticked"])),
        source=draw(
            st.sampled_from(["own_form", "import", "third_party_list", "customer_service"])
        ),
        proof_ref=draw(st.sampled_from(["proof", None])),
        consent_id=draw(st.sampled_from(["c-1", "c-2"])),
    )


@st.composite
def suppressions(draw: st.DrawFn, kinds: list[str] | None = None) -> Event:
    contact = draw(CONTACTS)
    kind = draw(st.sampled_from(kinds or ["unsubscribe", "objection", "consent_withdrawal"]))
    return unsubscribe(
        kind=kind,
        at=draw(instants()),
        entity=draw(ENTITIES),
        contact=contact,
        channels=draw(st.sampled_from([None, ["all"], CHANNELS_OF[contact["type"]][:1]])),
        source=draw(
            st.sampled_from(["unsubscribe_link", "reply_stop", "phone_rvv", "customer_service"])
        ),
        consent_id=draw(st.sampled_from([None, "c-1"])),
        linked=draw(st.sampled_from([[], [PHONE] if contact is EMAIL else [EMAIL]])),
    )


@st.composite
def signups(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from(["account_created", "referral", "list_import", "info_request"]))
    return signup(kind, at=draw(instants()), entity=draw(ENTITIES), contact=draw(CONTACTS))


def facts(*, relay: bool = True) -> st.SearchStrategy[list[Event]]:
    return st.lists(
        st.one_of(orders(relay=relay), consents(), suppressions(), signups()), max_size=8
    )


@st.composite
def marketing_requests(draw: st.DrawFn) -> Event:
    contact = draw(CONTACTS)
    channel = draw(st.sampled_from(CHANNELS_OF[contact["type"]]))
    return send(
        at=REQUEST_AT,
        entity=draw(ENTITIES),
        contact=contact,
        channel=channel,
        purpose=draw(st.sampled_from(["commercial", "charitable"])),
        scope=draw(st.sampled_from(["offers", "newsletter", "telemarketing", "custom_audience"])),
        categories=draw(CATEGORIES),
        consent_request=draw(st.booleans()),
        platform="meta",
        recipient=draw(st.sampled_from(["consumer", "legal_entity"])),
    )


@st.composite
def service_requests(draw: st.DrawFn) -> Event:
    contact = draw(CONTACTS)
    channel = "email" if contact is EMAIL else "sms"
    kind = draw(
        st.sampled_from(
            ["order_confirmation", "shipping_update", "invoice", "recall", "security_notice"]
        )
    )
    return service(kind, at=REQUEST_AT, entity=draw(ENTITIES), contact=contact, channel=channel)


def _insert(draw: st.DrawFn, history: list[Event], extra: list[Event]) -> list[Event]:
    merged = list(history)
    for event in extra:
        merged.insert(draw(st.integers(0, len(merged))), event)
    return merged


def _final(decisions: list[Decision], request_id: str) -> Decision:
    return [d for d in decisions if d.request_id == request_id][-1]


@PROPERTY_SETTINGS
@given(st.data(), facts(relay=False), service_requests())
def test_objection_or_erasure_never_blocks_a_service_message(
    data: st.DataObject, history: list[Event], request: Event
) -> None:
    """R-OBJECT-4, R-SERVICE-1: suppression and erasure never block service."""
    kinds = ["objection", "unsubscribe", "erasure_request", "erasure_completed"]
    extra = data.draw(st.lists(suppressions(kinds), min_size=1, max_size=3))
    before = _final(run([*history, request]), request["request_id"])
    merged = _insert(data.draw, history, extra)
    after = _final(run([*merged, request]), request["request_id"])
    if before.allowed:
        assert after.allowed, (before, after)
    if not any(e["type"] == "order" for e in history):
        assert after.reason_code == "ALLOW_SERVICE_MESSAGE"


@PROPERTY_SETTINGS
@given(st.data(), facts(), marketing_requests())
def test_adding_an_objection_never_turns_a_block_into_an_allow(
    data: st.DataObject, history: list[Event], request: Event
) -> None:
    """R-OBJECT-1/-2: an objection only ever takes permission away."""
    objection = data.draw(suppressions(["objection", "unsubscribe"]))
    before = _final(run([*history, request]), request["request_id"])
    merged = _insert(data.draw, history, [objection])
    after = _final(run([*merged, request]), request["request_id"])
    if not before.allowed:
        assert not after.allowed, (before, after)


@PROPERTY_SETTINGS
@given(facts(), st.lists(st.one_of(marketing_requests(), service_requests()), min_size=1))
def test_same_events_same_decisions(history: list[Event], requests: list[Event]) -> None:
    """Contract §6: identical but for decided_at (which the core leaves unset)."""
    events = [*history, *requests]
    first = run(events)
    assert first == run(events)
    assert all(d.decided_at is None for d in first)


@PROPERTY_SETTINGS
@given(st.data(), facts(), st.lists(marketing_requests(), min_size=1, max_size=3))
def test_duplicated_events_change_nothing(
    data: st.DataObject, history: list[Event], requests: list[Event]
) -> None:
    """Contract §1: a repeated event_id is ignored (at-least-once delivery) within the
    idempotency horizon; these histories span years in random order, so the horizon here
    covers them (the bound itself is tested in test_core_engine)."""
    events = [*history, *requests]
    duplicated = list(events)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(events) - 1))
        position = duplicated.index(events[index])
        later = data.draw(st.integers(position + 1, len(duplicated)))
        duplicated.insert(later, events[index])
    assert run(duplicated, LONG_HORIZON) == run(events, LONG_HORIZON)


@PROPERTY_SETTINGS
@given(facts(), marketing_requests())
def test_state_survives_the_changelog_round_trip(history: list[Event], request: Event) -> None:
    feed = engine()
    for raw in history:
        feed.feed(parse_event(raw))
    restored = engine()
    restored.states = {
        key: decode_state(encode_state(state)) for key, state in feed.states.items()
    }
    assert restored.states == feed.states
    event = parse_event(request)
    assert restored.feed(event) == feed.feed(event)
