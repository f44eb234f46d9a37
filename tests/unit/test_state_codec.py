"""The changelog value: every scenario state round-trips through the worker's codec, the view
hint rides along without changing the state, states stored as JSON by older workers still
load (migration), and a corrupt stored state is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from unit.view.viewkit import feed_file, scenario_files

from streams.core.engine import STATE_FORMAT, step
from streams.core.enums import ContactType
from streams.core.model import ContactPoint, ContactState
from streams.core.parse import parse_event
from streams.core.policy import DEFAULT_POLICY
from streams.core.serial import state_to_dict
from streams.gate.state_codec import ViewHint, decode_changelog_value, decode_state, encode_state


def _states() -> list[ContactState]:
    return [a.state for path in scenario_files() for a in feed_file(path)]


def _legacy(state: ContactState, hint: dict[str, object] | None = None) -> bytes:
    """A value as the format-1 (JSON) codec wrote it."""
    data = state_to_dict(state)
    data["format"] = 1
    if hint is not None:
        data["view"] = hint
    return orjson.dumps(data)


def test_every_scenario_state_round_trips() -> None:
    states = _states()
    assert len(states) > 250
    for state in states:
        raw = encode_state(state)
        assert raw[0] == STATE_FORMAT
        assert decode_state(raw) == state


def test_stored_state_holds_no_field_names() -> None:
    state = next(s for s in _states() if s.decided and s.consents and not s.open_approvals)
    raw = encode_state(state)
    for name in (b"request_id", b"reason_code", b"consent_id", b"seen_event_ids"):
        assert name not in raw


def test_format_1_json_states_still_load() -> None:
    """Migration: facts and decisions load unchanged; each bare seen event id is kept a
    horizon from the latest instant the state knows, with unknown content, so a repeat
    is still ignored and never taken for a conflicting duplicate."""
    migrated = 0
    for state in _states():
        old = decode_state(_legacy(state))
        assert old is not None
        assert old.decided == state.decided and old.orders == state.orders
        assert old.consents == state.consents and old.suppressions == state.suppressions
        assert set(old.seen_event_ids) <= set(state.seen_event_ids)
        assert all(s.digest == 0 for s in old.seen_event_ids.values())
        migrated += bool(old.seen_event_ids)
    assert migrated > 100
    state = next(s for s in _states() if s.decided and s.consents)
    old = decode_state(_legacy(state))
    assert old is not None
    event_id = next(iter(old.seen_event_ids))
    seen_at = old.seen_event_ids[event_id].at
    assert seen_at == max(
        [d.as_of for d in state.decided.values()]
        + [f.occurred_at for f in state.suppressions]
        + ([state.facts_until] if state.facts_until else [])
    )


def test_a_migrated_seen_id_ignores_a_repeat_with_any_content() -> None:
    raw = {
        "type": "signup",
        "event_id": "e-old",
        "occurred_at": "2026-05-01T12:00:00Z",
        "legal_entity": "Shop BV",
        "kind": "account_created",
        "contact": {"type": "email", "value": "a@b.nl"},
        "subject_age": None,
    }
    event = parse_event(raw)
    point = ContactPoint(ContactType.EMAIL, "a@b.nl")
    state = step(ContactState.empty(), event, DEFAULT_POLICY, point).state
    old = decode_state(_legacy(state))
    assert old is not None
    changed = parse_event({**raw, "kind": "referral"})
    result = step(old, changed, DEFAULT_POLICY, point)
    assert result.state is old and not result.conflicting


def test_view_hint_rides_along_and_old_values_have_none() -> None:
    state = next(s for s in _states() if s.decided)
    hint = ViewHint("shop-1", datetime(2026, 11, 27, 9, 30, tzinfo=UTC), "email")
    got_state, got_hint = decode_changelog_value(encode_state(state, hint))
    assert got_state == state and got_hint == hint
    assert decode_state(encode_state(state, hint)) == state
    assert decode_changelog_value(encode_state(state))[1] is None
    at = "2026-11-27T09:30:00Z"
    legacy = decode_changelog_value(_legacy(state, {"t": "shop-1", "at": at, "ct": "email"}))
    assert legacy[1] == hint
    assert decode_changelog_value(_legacy(state, {"t": "shop-1", "at": "yesterday"}))[1] is None


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda d: d["decision"].update(channel="carrier-pigeon"),
        lambda d: d["decision"].update(as_of="2026-11-27 09:00"),
        lambda d: d["decision"].update(revokes="no"),
        lambda d: d["decision"].update(surprise=1),
        lambda d: d["decision"].pop("reason_code"),
    ],
    ids=["unknown enum value", "malformed instant", "non-boolean flag", "unknown field",
         "missing field"],
)
def test_a_corrupt_legacy_stored_decision_is_refused(corrupt: object) -> None:
    state = next(s for s in _states() if s.decided)
    data = orjson.loads(_legacy(state))
    rid = next(iter(data["decided"]))
    holder = {"decision": data["decided"][rid]}
    corrupt(holder)  # type: ignore[operator]
    with pytest.raises((ValueError, KeyError)):
        decode_state(orjson.dumps(data))


def test_a_corrupt_binary_state_is_refused() -> None:
    state = next(s for s in _states() if s.decided)
    raw = encode_state(state)
    for bad in (raw[:-3], raw[:1] + b"\xc1" + raw[2:], bytes([9]) + raw[1:], b""):
        with pytest.raises(ValueError):
            decode_state(bad)


def test_seen_ids_and_decisions_stay_within_the_horizon() -> None:
    """Issue 16 slim state: a contact sending every day keeps about a horizon of ids."""
    point = ContactPoint(ContactType.EMAIL, "a@b.nl")
    state = ContactState.empty()
    start = datetime(2026, 1, 1, 9, tzinfo=UTC)
    for day in range(90):
        at = (start + timedelta(days=day)).isoformat().replace("+00:00", "Z")
        request = {
            "type": "send_request",
            "event_id": f"e-{day}",
            "occurred_at": at,
            "legal_entity": "Shop BV",
            "request_id": f"r-{day}",
            "contact": {"type": "email", "value": "a@b.nl"},
            "channel": "email",
            "declared_purpose": "commercial",
            "service_kind": None,
            "relates_to_order_id": None,
            "content": {"content_scope": "offers"},
            "sender": {"display_name": "Shop BV", "has_identity_block": True},
            "recipient": {},
            "platform": None,
            "campaign_id": None,
            "template_id": None,
        }
        state = step(state, parse_event(request), DEFAULT_POLICY, point).state
    assert len(state.decided) == 30 and len(state.seen_event_ids) == 30
    assert min(state.decided) == "r-60"
