"""The changelog value: every scenario state round-trips through the worker's codec, the view
hint rides along without changing the state, states stored as JSON by older workers still
load (migration), and a corrupt stored state is refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lz4.block
import msgspec
import orjson
import pytest
from unit.view.viewkit import feed_file, load, scenario_files

from streams.core.engine import STATE_FORMAT, DecisionEngine, step
from streams.core.enums import Channel, ContactType, LegalBasis, Outcome, Reason
from streams.core.model import (
    KEPT_BASES,
    KEPT_CHANNELS,
    KEPT_OUTCOMES,
    KEPT_REASONS,
    KEPT_RULE_IDS,
    KEPT_VERSIONS,
    RULEBOOK_VERSION,
    ContactPoint,
    ContactState,
    Decision,
    keep,
)
from streams.core.parse import parse_event
from streams.core.policy import DEFAULT_POLICY, PolicyBook
from streams.core.serial import state_to_dict
from streams.gate.state_codec import (
    COMPRESS_FROM,
    MAX_STATE_BYTES,
    ViewHint,
    decode_changelog_value,
    decode_state,
    encode_state,
)

FORMAT_LZ4 = 4


def _states() -> list[ContactState]:
    return [a.state for path in scenario_files() for a in feed_file(path)]


def _legacy(state: ContactState, hint: dict[str, object] | None = None) -> bytes:
    """A value as the format-1 (JSON) codec wrote it."""
    data = state_to_dict(state)
    data["format"] = 1
    if hint is not None:
        data["view"] = hint
    return orjson.dumps(data)


def _packed(raw: bytes) -> bytes:
    """The msgpack inside a stored value (format 3 as is, format 4 decompressed)."""
    return lz4.block.decompress(raw[1:]) if raw[0] == FORMAT_LZ4 else raw[1:]


def test_every_scenario_state_round_trips() -> None:
    states = _states()
    assert len(states) > 250
    formats = set()
    for state in states:
        raw = encode_state(state)
        formats.add(raw[0])
        assert raw[0] == (FORMAT_LZ4 if len(_packed(raw)) >= COMPRESS_FROM else STATE_FORMAT)
        assert decode_state(raw) == state
    assert formats == {STATE_FORMAT, FORMAT_LZ4}


def test_a_large_state_is_stored_compressed() -> None:
    """Issue 16 §3/§4: ids repeat inside a state (seen ids, evidence, orders), so format 4
    is well under the msgpack it holds."""
    state = max(_states(), key=lambda s: len(s.seen_event_ids) + len(s.decided))
    raw = encode_state(state)
    assert raw[0] == FORMAT_LZ4
    assert len(raw) < 0.8 * len(_packed(raw))


def test_format_3_states_still_load() -> None:
    """Migration: values the workers of sessions 5-7 wrote (format byte 3 + msgpack, never
    compressed) load unchanged, with their view hint."""
    hint = ViewHint("shop", datetime(2026, 11, 1, tzinfo=UTC), "email")
    for state in _states():
        v3 = bytes([STATE_FORMAT]) + _packed(encode_state(state, hint))
        assert decode_changelog_value(v3) == (state, hint)


def test_stored_state_holds_no_field_names() -> None:
    state = next(s for s in _states() if s.decided and s.consents and not s.open_approvals)
    raw = _packed(encode_state(state))
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
    raw = bytes([STATE_FORMAT]) + _packed(encode_state(state))
    for bad in (raw[:-3], raw[:1] + b"\xc1" + raw[2:], bytes([9]) + raw[1:], b""):
        with pytest.raises(ValueError):
            decode_state(bad)


def test_a_corrupt_compressed_state_is_refused() -> None:
    state = max(_states(), key=lambda s: len(s.seen_event_ids) + len(s.decided))
    raw = encode_state(state)
    assert raw[0] == FORMAT_LZ4
    huge = (MAX_STATE_BYTES + 1).to_bytes(4, "little")
    inner = lz4.block.compress(b"\xc1" * 300, store_size=True)  # valid LZ4, not msgpack
    for bad in (raw[:-3], raw[:4], raw[:1] + huge + raw[5:], raw[:1] + inner, raw[:9] + b"x" * 9):
        with pytest.raises(ValueError, match="corrupt"):
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


FORMAT_3_CODES = [
    "email", "sms", "whatsapp", "social_dm", "push", "in_app", "phone_live", "phone_automated",
    "fax", "post", "custom_audience", "lookalike_audience", "ALLOW_SERVICE_MESSAGE",
    "ALLOW_CONSENT", "ALLOW_SOFT_OPT_IN", "ALLOW_DONOR_RELATION",
    "ALLOW_RELAY_ORDER_EXECUTION", "ALLOW_B2B_PUBLISHED_ADDRESS", "ALLOW_B2B_NON_EEA",
    "ALLOW_B2B_PHONE_OPT_OUT", "ALLOW_PHONE_CUSTOMER_RELATION", "ALLOW_POST_LEGIT_INTEREST",
    "BLOCK_NO_LEGAL_BASIS", "BLOCK_OBJECTION", "BLOCK_LATE_OBJECTION",
    "BLOCK_CONSENT_WITHDRAWN", "BLOCK_CONSENT_INVALID_MECHANISM", "BLOCK_CONSENT_SCOPE",
    "BLOCK_CONSENT_UNPROVABLE", "BLOCK_CONSENT_EXPIRED", "BLOCK_CONSENT_BY_OTHER_PERSON",
    "BLOCK_MINOR_NO_PARENTAL_CONSENT", "BLOCK_NOT_A_CUSTOMER", "BLOCK_NOT_SIMILAR",
    "BLOCK_NO_OPTOUT_AT_COLLECTION", "BLOCK_CONTACT_NOT_FROM_SALE", "BLOCK_RELATION_EXPIRED",
    "BLOCK_OTHER_LEGAL_ENTITY", "BLOCK_THIRD_PARTY_CONTENT", "BLOCK_THIRD_PARTY_LIST",
    "BLOCK_MISSING_UNSUBSCRIBE", "BLOCK_MISSING_SENDER_IDENTITY", "BLOCK_SENDER_MISMATCH",
    "BLOCK_RELAY_ADDRESS_NON_ORDER", "BLOCK_RELAY_REVIEW_REQUEST_SEPARATE",
    "BLOCK_AUDIENCE_NO_SPECIFIC_CONSENT", "BLOCK_PHONE_NO_CONSENT",
    "BLOCK_PHONE_CUSTOMER_EXCEPTION_ENDED", "BLOCK_PHONE_ANONYMOUS_CLI",
    "BLOCK_CONTRACT_NEEDS_WRITTEN_CONFIRMATION", "BLOCK_POST_POSTFILTER", "BLOCK_ERASED",
    "BLOCK_REPERMISSION_TO_SUPPRESSED", "BLOCK_PLATFORM_OPT_IN_MISSING",
    "BLOCK_SERVICE_NO_ACTIVE_RELATIONSHIP", "TW117_CONSENT", "TW117_CUSTOMER",
    "TW117_B2B_PUBLISHED", "TW117_B2B_NON_EEA", "TW117_TM_CONSENT", "TW117_TM_CUSTOMER",
    "TW117_TM_LEGAL_ENTITY", "GDPR_6_1_A", "GDPR_6_1_B", "GDPR_6_1_C", "GDPR_6_1_F",
    "MARKETPLACE_TERMS", "NONE",
]
"""Channels, reasons and legal bases in their format-3 code order (stored positions)."""


def _format_2_fixture() -> list[dict[str, str]]:
    path = Path(__file__).parent / "data" / "state_format2.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_format_2_states_still_load() -> None:
    """Migration 2 → 3: values written by the format-2 worker (sessions 2-4; captured
    with that code, every decision stamped `decided_at` = `as_of` + 1 s, every other one
    with a view hint) load as the state today's engine folds from the same scenario
    events, with the same stamps, and their decisions rebuild field for field."""
    fixture = _format_2_fixture()
    assert len(fixture) > 50
    states: dict[tuple[str, int], tuple[ContactState, str, str]] = {}
    for path in scenario_files():
        for i, applied in enumerate(feed_file(path)):
            states[path.name, i] = (applied.state, applied.tenant, applied.contact_type)
    revoked = approvals = hinted = 0
    for item in fixture:
        raw = base64.b64decode(item["value"])
        assert raw[0] == 2
        state, tenant, _ = states[item["scenario"], int(item["apply"])]
        stamped = {
            rid: msgspec.structs.replace(d, decided_at=d.as_of + timedelta(seconds=1))
            for rid, d in state.decided.items()
        }
        got, hint = decode_changelog_value(raw)
        assert got == msgspec.structs.replace(state, decided=stamped)
        assert encode_state(got)[0] in (STATE_FORMAT, FORMAT_LZ4)
        for rid, kept in got.decided.items():
            again = kept.rebuild(rid, tenant)
            assert again.request_id == rid and again.rulebook_version == RULEBOOK_VERSION
            assert keep(again) == kept
        revoked += any(d.revokes for d in got.decided.values())
        approvals += bool(got.open_approvals)
        hinted += hint is not None and hint.tenant == tenant
    assert revoked and approvals and hinted


def test_a_kept_decision_rebuilds_the_emitted_one() -> None:
    """Issue 16 §3: what the state keeps of a decision gives it back field for field, and
    takes well under half the bytes."""
    seen = 0
    for path in scenario_files():
        engine = DecisionEngine(PolicyBook.default(), b"k")
        for obj in load(path):
            for d in engine.feed(parse_event(obj)):
                d = msgspec.structs.replace(d, decided_at=d.as_of)
                kept = keep(d)
                assert kept.rebuild(d.request_id, d.tenant) == d
                assert len(msgspec.msgpack.encode(kept)) * 2 < len(msgspec.msgpack.encode(d))
                seen += 1
    assert seen > 100


def test_an_unknown_rule_id_or_version_is_kept_as_text() -> None:
    d = Decision(
        "r1", "shop", "Shop BV", Channel.SMS, Outcome.BLOCK, Reason.BLOCK_NO_LEGAL_BASIS,
        LegalBasis.NONE, ("R-CONSENT-1", "R-NEW-9"), ("e1",), "contract-9/rules-1",
        datetime(2026, 11, 27, 9, 30, 0, 123000, tzinfo=UTC),
    )
    kept = keep(d)
    assert kept.rules == (KEPT_RULE_IDS.index("R-CONSENT-1"), "R-NEW-9")
    assert kept.version == "contract-9/rules-1"
    state = ContactState(decided={"r1": kept})
    assert decode_state(encode_state(state)) == state
    assert kept.rebuild("r1", "shop") == d


def test_the_format_3_code_tables_only_grow_at_their_end() -> None:
    """A stored decision holds positions in these tables: reordering one would change
    every stored decision's meaning. Append new members; never insert or remove."""
    assert KEPT_OUTCOMES[:2] == (Outcome.ALLOW, Outcome.BLOCK)
    assert KEPT_VERSIONS[0] == "contract-1.4/rules-2"
    assert KEPT_RULE_IDS[:3] == ("R-AUDIENCE-1", "R-AUDIENCE-2", "R-B2B-1")
    assert KEPT_RULE_IDS[58] == "R-PLATFORM-1"
    assert len(set(KEPT_RULE_IDS)) == len(KEPT_RULE_IDS)
    assert len(KEPT_CHANNELS) >= 12 and len(KEPT_REASONS) >= 43 and len(KEPT_BASES) >= 13
    assert [str(m) for m in KEPT_CHANNELS[:12]] == FORMAT_3_CODES[:12]
    assert [str(m) for m in KEPT_REASONS[:43]] == FORMAT_3_CODES[12:55]
    assert [str(m) for m in KEPT_BASES[:13]] == FORMAT_3_CODES[55:]


def test_every_rule_id_a_rule_module_declares_has_a_code() -> None:
    import importlib
    import pkgutil

    import streams.core.rules as rules

    for info in pkgutil.iter_modules(rules.__path__):
        module = importlib.import_module(f"streams.core.rules.{info.name}")
        for rule_id in getattr(module, "RULE_IDS", ()):
            assert rule_id in KEPT_RULE_IDS, (info.name, rule_id)


def test_a_kept_decision_with_a_code_out_of_its_table_is_refused() -> None:
    state = next(s for s in _states() if s.decided)
    rid, kept = next(iter(state.decided.items()))
    bad = ContactState(decided={rid: msgspec.structs.replace(kept, reason_code_code=250)})
    with pytest.raises(ValueError, match="corrupt"):
        decode_state(encode_state(bad))
