"""Fold, step, re-check at dispatch (R-OBJECT-3), idempotency, state round trip, status."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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

from streams.core.apply import apply
from streams.core.engine import (
    contact_points,
    dump_state,
    load_state,
    release_due,
    status_view,
    step,
)
from streams.core.enums import Channel, ContactType
from streams.core.jsonl import decide_lines
from streams.core.keys import contact_key
from streams.core.model import ContactPoint, ContactState, Decision, SendRequest
from streams.core.parse import parse_event
from streams.core.policy import DEFAULT_POLICY

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


def test_fold_is_idempotent_on_event_id() -> None:
    event = parse_event(consent())
    once = apply(ContactState.empty(), event)
    assert apply(once, event) is once
    result = step(once, event, DEFAULT_POLICY, EMAIL_POINT)
    assert result.state is once and not result.decisions


def test_same_request_id_is_decided_once() -> None:
    request = send(request_id="r-once")
    again = send(request_id="r-once")
    decisions = run([consent(), request, again])
    assert [d.request_id for d in decisions] == ["r-once"]
    state, _ = _fold([consent(), request])
    result = step(state, parse_event(again), DEFAULT_POLICY, EMAIL_POINT)
    assert result.decisions == () and result.duplicate is not None
    assert result.duplicate.request_id == "r-once"


def test_request_id_is_decided_once_across_contact_points() -> None:
    first = send(request_id="r-x")
    other = send(request_id="r-x", contact=PHONE, channel="sms")
    assert len(run([first, other])) == 1


def test_repeated_event_id_is_ignored_whatever_it_carries() -> None:
    request = send(event_id="e-dup")
    clash = send(event_id="e-dup")
    assert len(run([request, clash])) == 1


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


def test_state_round_trips_through_json(scenario_dir: Path) -> None:
    for path in sorted(scenario_dir.glob("T*.jsonl")):
        feed = engine()
        list(decide_lines(path.read_text(encoding="utf-8").splitlines(), feed))
        for state in feed.states.values():
            assert load_state(json.loads(json.dumps(dump_state(state)))) == state


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
