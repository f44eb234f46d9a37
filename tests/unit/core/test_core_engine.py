"""Fold, step, re-check at dispatch (R-OBJECT-3), idempotency, state round trip, status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from core_events import (
    EMAIL,
    PHONE,
    POSTAL,
    SHOP,
    TENANT,
    TEST_SECRET,
    consent,
    engine,
    order,
    run,
    send,
    unsubscribe,
)

from streams.core.engine import (
    ConflictingDuplicate,
    contact_points,
    dump_state,
    release_due,
    status_view,
    step,
)
from streams.core.enums import Channel, ContactType
from streams.core.jsonl import LineRejection, decide_lines
from streams.core.keys import contact_key
from streams.core.model import ContactPoint, ContactState, Decision, SendRequest
from streams.core.parse import parse_event
from streams.core.policy import DEFAULT_POLICY, Policy, PolicyBook
from streams.gate.state_codec import decode_state, encode_state

EMAIL_POINT = ContactPoint(ContactType.EMAIL, EMAIL["value"])


def _fold(events: list[dict[str, Any]]) -> tuple[ContactState, list[Decision]]:
    state = ContactState.empty()
    out: list[Decision] = []
    for raw in events:
        result = step(state, parse_event(raw), DEFAULT_POLICY, EMAIL_POINT)
        state = result.state
        out.extend(result.decisions)
    return state, out


def test_contact_points_fan_out_normalised_and_unique() -> None:
    listed = order(
        contacts=[
            {"contact": {"type": "email", "value": "A@B.nl"}},
            {"contact": {"type": "email", "value": "a@b.nl "}},
            {"contact": {"type": "phone", "value": "06 12345678"}},
        ]
    )
    assert contact_points(parse_event(listed)) == (
        ContactPoint(ContactType.EMAIL, "a@b.nl"),
        ContactPoint(ContactType.PHONE, "+31612345678"),
    )
    objection = parse_event(unsubscribe(linked=[PHONE, POSTAL, EMAIL]))
    assert [p.type for p in contact_points(objection)] == ["email", "phone", "postal"]


def test_step_is_idempotent_on_event_id() -> None:
    event = parse_event(consent())
    once = step(ContactState.empty(), event, DEFAULT_POLICY, EMAIL_POINT).state
    assert once.consents and event.event_id in once.seen_event_ids
    result = step(once, event, DEFAULT_POLICY, EMAIL_POINT)
    assert result.state is once and not result.decisions and not result.conflicting


def test_same_request_id_is_decided_once() -> None:
    request = send(request_id="r-once")
    again = send(request_id="r-once")
    decisions = run([consent(), request, again])
    assert [d.request_id for d in decisions] == ["r-once"]
    state, _ = _fold([consent(), request])
    result = step(state, parse_event(again), DEFAULT_POLICY, EMAIL_POINT)
    assert result.decisions == () and result.duplicate is not None
    assert result.duplicate.request_id == "r-once"


def test_request_id_reused_for_another_contact_point_is_a_separate_request() -> None:
    """Contract v1.4 §7: idempotency is per contact point."""
    first = send(request_id="r-x")
    other = send(request_id="r-x", contact=PHONE, channel="sms")
    assert [d.channel for d in run([first, other])] == ["email", "sms"]


def test_repeated_event_id_with_other_content_is_a_conflicting_duplicate() -> None:
    """Contract v1.4 §1: rejected as `conflicting_duplicate`, state unchanged."""
    request = send(event_id="e-dup", request_id="r-1")
    clash = send(event_id="e-dup", request_id="r-2")
    feed = engine()
    assert len(feed.feed(parse_event(request))) == 1
    before = dict(feed.states)
    with pytest.raises(ConflictingDuplicate) as caught:
        feed.feed(parse_event(clash))
    assert (caught.value.reason, caught.value.field) == ("conflicting_duplicate", "event_id")
    assert feed.states == before
    state = next(iter(before.values()))
    result = step(state, parse_event(clash), DEFAULT_POLICY, EMAIL_POINT)
    assert result.conflicting and result.state is state and not result.decisions


def test_repeat_differing_only_in_spelling_and_offset_is_the_same_event() -> None:
    """"After defaults and normalisation": another spelling of the address, the same
    instant written with another offset, an explicit default."""
    first = consent(at="2026-05-01T12:00:00+02:00")
    again = json.loads(json.dumps(first))
    again["contact"]["value"] = " " + again["contact"]["value"].upper()
    again["occurred_at"] = "2026-05-01T10:00:00.0004Z"
    again["recipient_kind"] = "consumer"
    feed = engine()
    feed.feed(parse_event(first))
    before = dict(feed.states)
    assert feed.feed(parse_event(again)) == [] and feed.states == before


def test_conflicting_on_one_contact_point_rejects_the_whole_order() -> None:
    first = order(event_id="e-o", order_id="o-9", contacts=[{"contact": EMAIL}])
    clash = order(
        event_id="e-o", order_id="o-9", contacts=[{"contact": EMAIL}, {"contact": PHONE}]
    )
    feed = engine()
    feed.feed(parse_event(first))
    before = dict(feed.states)
    with pytest.raises(ConflictingDuplicate):
        feed.feed(parse_event(clash))
    assert feed.states == before


def test_idempotency_horizon_bounds_request_and_event_ids() -> None:
    """Contract §7/§8: a request_id decided 30 days or more before is decided again, and
    the state forgets ids older than the horizon."""
    base = datetime(2026, 5, 1, 12, tzinfo=UTC)
    first = send(request_id="r-h", at="2026-05-01T12:00:00Z")
    within = send(request_id="r-h", at="2026-05-31T11:59:59.999Z")
    past = send(request_id="r-h", at="2026-05-31T12:00:00Z")
    state, decided = _fold([consent(), first])
    assert len(decided) == 1
    dup = step(state, parse_event(within), DEFAULT_POLICY, EMAIL_POINT)
    assert dup.duplicate == decided[0] and dup.state is state
    again = step(state, parse_event(past), DEFAULT_POLICY, EMAIL_POINT)
    assert len(again.decisions) == 1
    assert set(again.state.decided) == {"r-h"}
    assert again.state.decided["r-h"].as_of == base + timedelta(days=30)
    assert parse_event(first).event_id not in again.state.seen_event_ids
    short = PolicyBook(Policy(idempotency_horizon_days=1))
    assert step(state, parse_event(within), short.default_policy, EMAIL_POINT).decisions


def test_late_objection_revokes_an_open_approval() -> None:
    """T53: the unsubscribe happened before the request but arrived after it."""
    request = send(
        scope="newsletter", at="2026-11-23T10:00:02+01:00", dispatch_at="2026-11-23T10:00:10+01:00"
    )
    late = unsubscribe(at="2026-11-23T10:00:00+01:00")
    allow, revoke = run([consent(), request, late])
    assert (allow.reason_code, allow.revokes) == ("ALLOW_CONSENT", False)
    assert (revoke.decision, revoke.reason_code, revoke.legal_basis, revoke.revokes) == (
        "BLOCK",
        "BLOCK_LATE_OBJECTION",
        "NONE",
        True,
    )
    assert revoke.rule_ids[0] == "R-OBJECT-3"
    assert revoke.evidence == (late["event_id"],)
    assert revoke.as_of == allow.as_of


def test_objection_after_dispatch_does_not_revoke() -> None:
    """T54: a mail delivered before the objection was lawful."""
    request = send(
        scope="newsletter", at="2026-11-23T09:55:00+01:00", dispatch_at="2026-11-23T09:59:00+01:00"
    )
    after = unsubscribe(at="2026-11-23T10:00:00+01:00")
    assert [d.reason_code for d in run([consent(), request, after])] == ["ALLOW_CONSENT"]


def test_objection_received_before_dispatch_revokes() -> None:
    request = send(scope="newsletter", dispatch_at="2026-11-23T12:00:00+01:00")
    received = unsubscribe(at="2026-11-23T11:00:00+01:00")
    assert run([consent(), request, received])[-1].reason_code == "BLOCK_LATE_OBJECTION"


def test_objection_out_of_scope_does_not_revoke() -> None:
    request = send(scope="newsletter", dispatch_at="2026-11-23T12:00:00+01:00")
    sms_only = unsubscribe(at="2026-11-23T11:00:00+01:00", channels=["sms"])
    assert len(run([consent(), request, sms_only])) == 1


def test_partition_lag_objection_revokes_an_immediate_send_until_a_later_event() -> None:
    """R-OBJECT-3: an objection with an earlier event time revokes while the approval is
    open; an event on the contact past the dispatch time closes it."""
    request = send(scope="newsletter")
    lagging = unsubscribe(at="2026-11-23T09:00:00+01:00")
    assert run([consent(), request, lagging])[-1].revokes
    later = consent(at="2026-11-23T10:05:00+01:00", scope=["updates"])
    assert len(run([consent(), request, later, lagging])) == 1


def test_late_erasure_and_checkout_optout_revoke() -> None:
    request = send(dispatch_at="2026-11-23T12:00:00+01:00")
    erasure = unsubscribe(
        kind="erasure_request", source="gdpr_art17_request", at="2026-11-23T11:00:00+01:00"
    )
    assert run([consent(), request, erasure])[-1].reason_code == "BLOCK_LATE_OBJECTION"
    optout = order(at="2026-11-23T11:00:00+01:00", optout_exercised=True)
    assert run([order(), request, optout])[-1].reason_code == "BLOCK_LATE_OBJECTION"


def test_revocation_becomes_the_stored_decision() -> None:
    request = send(scope="newsletter", dispatch_at="2026-11-23T12:00:00+01:00")
    state, _ = _fold([consent(), request, unsubscribe(at="2026-11-23T11:00:00+01:00")])
    assert state.decided[request["request_id"]].revokes
    assert state.open_approvals == ()


def test_open_approvals_hold_no_contact_value() -> None:
    state, _ = _fold([consent(), send(dispatch_at="2026-11-23T12:00:00+01:00")])
    assert len(state.open_approvals) == 1
    assert EMAIL["value"] not in json.dumps(dump_state(state))


def test_release_due() -> None:
    state, _ = _fold([consent(), send(dispatch_at="2026-11-23T12:00:00+01:00")])
    same, none = release_due(state, datetime(2026, 11, 23, 10, 59, tzinfo=UTC))
    assert same is state and none == ()
    released, due = release_due(state, datetime(2026, 11, 23, 11, 0, tzinfo=UTC))
    assert len(due) == 1 and released.open_approvals == ()


def test_state_round_trips_through_the_stored_codec(scenario_dir: Path) -> None:
    for path in sorted(scenario_dir.glob("T*.jsonl")):
        feed = engine()
        list(decide_lines(path.read_text(encoding="utf-8").splitlines(), feed))
        for state in feed.states.values():
            assert decode_state(encode_state(state)) == state
            assert json.loads(json.dumps(dump_state(state)))["format"] == 3


def test_replaced_order_is_forgotten_on_contacts_it_no_longer_lists() -> None:
    first = order(order_id="o-1", contacts=[{"contact": EMAIL}, {"contact": PHONE}])
    second = order(order_id="o-1", contacts=[{"contact": PHONE}], at="2026-09-02T12:00:00+02:00")
    feed = engine()
    for raw in (first, second):
        feed.feed(parse_event(raw))
    key = contact_key(TEST_SECRET, TENANT, EMAIL_POINT)
    assert feed.states[key].orders == ()


def test_status_view() -> None:
    state, _ = _fold([order(), unsubscribe(channels=["email"])])
    as_of = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    email = status_view(state, TENANT, SHOP, Channel.EMAIL, as_of, DEFAULT_POLICY)
    assert (email["allowed"], email["reason_code"], email["suppressed"]) == (
        False,
        "BLOCK_OBJECTION",
        True,
    )
    assert email["suppression"]["kind"] == "unsubscribe"
    state, _ = _fold([order()])
    email = status_view(state, TENANT, SHOP, Channel.EMAIL, as_of, DEFAULT_POLICY)
    assert (email["allowed"], email["reason_code"], email["legal_basis"]) == (
        True,
        "ALLOW_SOFT_OPT_IN",
        "TW117_CUSTOMER",
    )
    assert email["suppressed"] is False and email["suppression"] is None
    json.dumps(email)


def test_decide_does_not_need_the_contact_value() -> None:
    state, _ = _fold([consent()])
    request = parse_event(send())
    assert isinstance(request, SendRequest)
    from streams.core.decide import decide
    from streams.core.engine import redact

    assert decide(state, request, DEFAULT_POLICY) == decide(state, redact(request), DEFAULT_POLICY)


def test_decide_reports_a_conflicting_duplicate_like_any_rejected_line() -> None:
    request = send(event_id="e-c", request_id="r-c1")
    clash = send(event_id="e-c", request_id="r-c2")
    lines = [json.dumps(request), json.dumps(clash), json.dumps(request)]
    out = list(decide_lines(lines, engine()))
    assert isinstance(out[0], Decision) and out[0].request_id == "r-c1"
    assert len(out) == 2 and isinstance(out[1], LineRejection)
    assert (out[1].line, out[1].reason, out[1].field) == (2, "conflicting_duplicate", "event_id")
    assert out[1].describe().startswith("line 2: field event_id: conflicting_duplicate")
