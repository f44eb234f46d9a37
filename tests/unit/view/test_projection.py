"""The projection written to Redis, without Redis: fidelity to the core's `status_view`,
erasure (R-DSR-2), and no raw contact in any field (non-negotiable 5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from unit.view.viewkit import (
    SECRET,
    Applied,
    feed,
    feed_file,
    known_addresses,
    leaks,
    load,
    scenario_files,
)

from streams.core.engine import DecisionEngine, status_view
from streams.core.enums import CHANNELS_OF_CONTACT_TYPE, Channel, ContactType
from streams.core.model import ContactState
from streams.core.policy import PolicyBook
from streams.view.projection import (
    ANY_ENTITY,
    META_FIELD,
    OTHER_ENTITY,
    answer_from_fields,
    contact_type_of,
    entities_of,
    project,
    state_event_time,
)

POLICIES = PolicyBook.default()


def _answer(fields: dict[str, str], entity: str, channel: str) -> dict[str, object]:
    return answer_from_fields(
        entity, channel, fields.get(META_FIELD), fields.get(f"{entity}|{channel}"),
        fields.get(f"{ANY_ENTITY}|{channel}"), fields.get(f"{entity}|{channel}|d"), None,
    ).to_dict()


@pytest.mark.parametrize("path", scenario_files()[::7], ids=lambda p: p.stem)
def test_projection_answers_like_status_view(path: object) -> None:
    """Every (entity, channel) answer read back from the fields equals the core's own
    `status_view` (the "*" fallback included)."""
    last = {}
    for applied in feed_file(path):  # type: ignore[arg-type]
        last[applied.key] = applied
    for applied in last.values():
        fields = project(applied.state, applied.tenant, applied.as_of, POLICIES,
                         applied.decisions, applied.contact_type)
        ctype = ContactType(applied.contact_type)
        policy = POLICIES.policy_for(applied.tenant)
        for channel in CHANNELS_OF_CONTACT_TYPE[ctype]:
            for entity in [*sorted(entities_of(applied.state)), "Some Other BV"]:
                got = _answer(fields, entity, str(channel))
                want = status_view(applied.state, applied.tenant, entity, channel,
                                   applied.as_of, policy)
                assert got["known"] is True
                assert got["marketing_allowed"] == want["allowed"], (entity, channel)
                assert got["reason_code"] == want["reason_code"], (entity, channel)
                assert got["legal_basis"] == want["legal_basis"]
                assert got["evidence"] == (want["evidence"] if want["allowed"] else [])
                assert got["suppressed"] == want["suppressed"]
                if want["suppressed"]:
                    assert got["suppression"]["reason_code"] == want["suppression"]["reason_code"]  # type: ignore[index]
                    assert got["suppression"]["kind"] == want["suppression"]["kind"]  # type: ignore[index]


def test_no_raw_address_in_any_projection() -> None:
    """Issue 5 §6 (view part, without Redis): every field name and value of every
    projection of every scenario is free of every raw form of every address."""
    files = scenario_files()
    forms = known_addresses(files)
    assert len(forms) > 100
    for path in files:
        for applied in feed_file(path):
            fields = project(applied.state, applied.tenant, applied.as_of, POLICIES,
                             applied.decisions, applied.contact_type)
            text = json.dumps(fields, ensure_ascii=False)
            assert not leaks(text, forms), (path.stem, leaks(text, forms))


def test_erasure_leaves_only_the_suppression() -> None:
    """R-DSR-2: after `erasure_completed` the projection holds the suppression and
    nothing derived from the deleted facts (no consent basis, no earlier decisions)."""
    path = next(p for p in scenario_files() if p.stem == "T100")
    objs = load(path)
    engine = DecisionEngine(POLICIES, SECRET)
    steps: list[tuple[str, Applied]] = []
    for obj in objs:
        steps.extend((obj["event_id"], a) for a in feed(engine, obj))
    # before the erasure: a consent basis was projected for the entity
    before = next(a for eid, a in steps if eid == "T100-e01")
    fields = project(before.state, before.tenant, before.as_of, POLICIES)
    assert json.loads(fields[f"{ANY_ENTITY}|email"])["ok"] == 0
    entity = "Sieradenwinkel Goudglans BV"
    assert json.loads(fields[f"{entity}|email"])["r"] == "ALLOW_CONSENT"
    erased = next(a for eid, a in steps if eid == "T100-e03")
    fields = project(erased.state, erased.tenant, erased.as_of, POLICIES,
                     erased.decisions, erased.contact_type)
    meta = json.loads(fields[META_FIELD])
    assert "x" in meta  # erased at
    assert not any(f.endswith("|d") for f in fields)
    own = json.loads(fields[f"{entity}|email"])
    assert own["r"] == "BLOCK_ERASED" and own["s"] == "BLOCK_ERASED" and own["ok"] == 0
    assert "e" not in own  # no evidence of deleted facts
    # the entity is the only one with fields of its own: the suppression record
    named = {f.split("|")[0] for f in fields if f != META_FIELD}
    assert named == {ANY_ENTITY, entity}
    # the import after the erasure and the blocked request: still BLOCK_ERASED
    final = steps[-1][1]
    assert final.decisions and final.decisions[0].reason_code == "BLOCK_ERASED"
    fields = project(final.state, final.tenant, final.as_of, POLICIES, final.decisions)
    assert json.loads(fields[f"{entity}|email"])["r"] == "BLOCK_ERASED"
    last = json.loads(fields[f"{entity}|email|d"])
    assert last == {"id": "T100-r01", "d": "BLOCK", "r": "BLOCK_ERASED",
                    "at": "2026-11-23T09:00:00Z"}


def test_unknown_contact_fails_closed() -> None:
    a = answer_from_fields("E", "email", None, None, None, None, None)
    assert a.known is False and a.marketing_allowed is False
    assert a.to_dict()["reason_code"] is None


def test_contact_type_inferred_from_state() -> None:
    path = next(p for p in scenario_files() if p.stem == "T107")
    for applied in feed_file(path):
        inferred = contact_type_of(applied.state)
        assert inferred in (None, ContactType(applied.contact_type))
    # unknown type projects all twelve channels
    fields = project(ContactState.empty(), "t", datetime(2026, 1, 1, tzinfo=UTC), POLICIES)
    assert {f.split("|")[1] for f in fields if f != META_FIELD} == {str(c) for c in Channel}


def test_state_event_time_and_placeholder_entity() -> None:
    path = next(p for p in scenario_files() if p.stem == "T01")
    applied = list(feed_file(path))[-1]
    assert state_event_time(applied.state) == applied.as_of.astimezone(UTC)
    assert OTHER_ENTITY not in entities_of(applied.state)
