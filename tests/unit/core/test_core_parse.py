"""Contract validation (`parse_event`) and the JSON shapes of events and decisions."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from core_events import consent, final, order, send, signup, unsubscribe

from streams.core.enums import Channel, ContactType
from streams.core.errors import ContractError, Rejection
from streams.core.eventtime import parse_rfc3339
from streams.core.model import Decision, Order, SendRequest, Unsubscribe
from streams.core.parse import decision_from_dict, decision_to_dict, event_to_dict, parse_event


def _scenario_lines(scenario_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(scenario_dir.glob("T*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def test_every_scenario_line_parses_and_round_trips(scenario_dir: Path) -> None:
    lines = _scenario_lines(scenario_dir)
    assert len(lines) > 200
    for line in lines:
        event = parse_event(line)
        assert parse_event(event_to_dict(event)) == event


def _avro_shape(value: Any) -> Any:
    """What fastavro hands back: timestamps as aware datetimes (UTC)."""
    if isinstance(value, dict):
        return {k: _avro_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_avro_shape(v) for v in value]
    if isinstance(value, str) and len(value) >= 20 and value[4:5] == "-" and value[10:11] == "T":
        try:
            return parse_rfc3339(value).astimezone(UTC)
        except ValueError:
            return value
    return value


def test_avro_shape_is_accepted(scenario_dir: Path) -> None:
    for line in _scenario_lines(scenario_dir):
        event = parse_event(line)
        assert parse_event(_avro_shape(event_to_dict(event))) == event


def test_avro_shape_optional_fields_present_as_none() -> None:
    record = _avro_shape(unsubscribe(channels=None))
    record |= {"received_at": None, "linked_contacts": None, "channels": None, "tenant": "t"}
    event = parse_event(record)
    assert isinstance(event, Unsubscribe)
    assert event.channels is None
    assert event.received_at == event.occurred_at
    assert event.linked_contacts == ()
    request = send()
    request["dispatch_at"] = None
    request["requested_by_recipient"] = None
    request["content"] |= {"content_scope": None, "has_promo": None}
    parsed = parse_event(request)
    assert isinstance(parsed, SendRequest)
    assert parsed.dispatch_at == parsed.occurred_at
    assert str(parsed.content.content_scope) == "offers"
    assert parsed.content.has_promo is False


def test_defaults_apply_when_absent() -> None:
    minimal = order()
    for name in ("paid_amount_cents", "recipient_kind", "address_type", "sold_by_phone"):
        del minimal[name]
    minimal["contacts"] = [{"contact": {"type": "email", "value": "a@b.nl"}}]
    event = parse_event(minimal)
    assert isinstance(event, Order)
    assert event.paid_amount_cents == 0
    fact = event.contacts[0]
    assert (fact.obtained_at_sale, fact.optout_offered, str(fact.optout_method)) == (
        True,
        False,
        "none",
    )
    assert parse_event(unsubscribe(channels=["all"])).channels == tuple(Channel)  # type: ignore[union-attr]


def test_expect_is_ignored_on_send_requests_only() -> None:
    request = send() | {"expect": {"decision": "ALLOW"}}
    assert parse_event(request) == parse_event(
        send(event_id=request["event_id"], request_id=request["request_id"])
    )
    with pytest.raises(ContractError) as err:
        parse_event(order() | {"expect": {}})
    assert err.value.reason is Rejection.UNKNOWN_FIELD


def _drop(path: str) -> Any:
    def mutate(event: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = event
        for name in parents:
            target = target[int(name)] if name.isdigit() else target[name]
        del target[leaf]

    return mutate


def _set(path: str, value: Any) -> Any:
    def mutate(event: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = event
        for name in parents:
            target = target[int(name)] if name.isdigit() else target[name]
        target[int(leaf) if leaf.isdigit() else leaf] = value

    return mutate


REJECTIONS = [
    (order(), _drop("order_id"), Rejection.MISSING_FIELD, "order_id"),
    (order(), _drop("contract_end_at"), Rejection.MISSING_FIELD, "contract_end_at"),
    (order(), _set("status", "lost"), Rejection.INVALID_ENUM, "status"),
    (order(), _set("paid_amount_cents", -1), Rejection.INVALID_VALUE, "paid_amount_cents"),
    (order(), _set("paid_amount_cents", True), Rejection.INVALID_VALUE, "paid_amount_cents"),
    (order(), _set("contacts", []), Rejection.INVALID_VALUE, "contacts"),
    (order(), _set("contacts.0.colour", "red"), Rejection.UNKNOWN_FIELD, "contacts[0].colour"),
    (
        order(),
        _set("contacts.0.contact.type", "fax"),
        Rejection.INVALID_ENUM,
        "contacts[0].contact.type",
    ),
    (order(), _set("occurred_at", "2026-11-23T10:00:00"), Rejection.BAD_TIMESTAMP, "occurred_at"),
    (order(), _set("occurred_at", "23-11-2026"), Rejection.BAD_TIMESTAMP, "occurred_at"),
    (order(), _set("occurred_at", 1700000000), Rejection.BAD_TIMESTAMP, "occurred_at"),
    (order(), _set("occurred_at", datetime(2026, 1, 1)), Rejection.BAD_TIMESTAMP, "occurred_at"),
    (order(), _set("event_id", ""), Rejection.INVALID_VALUE, "event_id"),
    (order(), _set("tenant", 7), Rejection.INVALID_VALUE, "tenant"),
    (order(), _set("surprise", 1), Rejection.UNKNOWN_FIELD, "surprise"),
    (order(), _drop("type"), Rejection.MISSING_FIELD, "type"),
    (order(), _set("type", "refund"), Rejection.INVALID_ENUM, "type"),
    (
        signup("account_created"),
        _set("consent", consent()["consent"]),
        Rejection.INVALID_VALUE,
        "consent",
    ),
    (consent(), _drop("consent"), Rejection.MISSING_FIELD, "consent"),
    (
        consent(),
        _set("consent.channels", ["email", "pigeon"]),
        Rejection.INVALID_ENUM,
        "consent.channels[1]",
    ),
    (
        consent(),
        _set("consent.given_by_subject", "yes"),
        Rejection.INVALID_VALUE,
        "consent.given_by_subject",
    ),
    (signup("petition"), _set("subject_age", -3), Rejection.INVALID_VALUE, "subject_age"),
    (unsubscribe(), _set("channels", ["all", "email"]), Rejection.INVALID_VALUE, "channels"),
    (unsubscribe(), _set("received_at", "tomorrow"), Rejection.BAD_TIMESTAMP, "received_at"),
    (
        unsubscribe(),
        _set("linked_contacts", [{"type": "phone", "value": "12"}]),
        Rejection.INVALID_VALUE,
        "linked_contacts[0].value",
    ),
    (
        send(),
        _set("contact", {"type": "phone", "value": "+31612345678"}),
        Rejection.INVALID_VALUE,
        "contact.type",
    ),
    (send(), _set("content.has_promo", "true"), Rejection.INVALID_VALUE, "content.has_promo"),
    (send(), _set("sender.sector", "bank"), Rejection.INVALID_ENUM, "sender.sector"),
    (send(), _drop("sender.display_name"), Rejection.MISSING_FIELD, "sender.display_name"),
    (send(), _drop("platform"), Rejection.MISSING_FIELD, "platform"),
    (send(), _set("recipient.vip", True), Rejection.UNKNOWN_FIELD, "recipient.vip"),
    (send(), _set("content", []), Rejection.INVALID_VALUE, "content"),
    (send(), _set("contact.value", "   "), Rejection.INVALID_VALUE, "contact.value"),
]


@pytest.mark.parametrize(
    ("event", "mutate", "rejection", "field"),
    REJECTIONS,
    ids=[f"{r[0]['type']}:{r[3]}:{r[2].value}" for r in REJECTIONS],
)
def test_contract_breaches_are_rejected(
    event: dict[str, Any], mutate: Any, rejection: Rejection, field: str
) -> None:
    broken = copy.deepcopy(event)
    mutate(broken)
    with pytest.raises(ContractError) as err:
        parse_event(broken)
    assert (err.value.reason, err.value.field) == (rejection, field)


def test_not_an_object() -> None:
    with pytest.raises(ContractError) as err:
        parse_event([1, 2])  # type: ignore[arg-type]
    assert err.value.reason is Rejection.INVALID_VALUE


def test_contacts_keep_their_written_value() -> None:
    event = parse_event(send(contact={"type": "email", "value": " A@B.nl "}))
    assert isinstance(event, SendRequest)
    assert (event.contact.type, event.contact.value) == (ContactType.EMAIL, " A@B.nl ")


def test_decision_round_trip() -> None:
    decision = Decision(
        request_id="r-1",
        tenant="t",
        legal_entity="Shop BV",
        channel=Channel.EMAIL,
        decision="ALLOW",  # type: ignore[arg-type]
        reason_code="ALLOW_CONSENT",  # type: ignore[arg-type]
        legal_basis="TW117_CONSENT",  # type: ignore[arg-type]
        rule_ids=("R-CONSENT-1",),
        evidence=("e-1",),
        rulebook_version="v",
        as_of=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
    )
    data = decision_to_dict(decision)
    assert data["as_of"] == "2026-11-23T09:00:00Z"
    assert data["decided_at"] is None
    assert set(data) == {
        "request_id", "tenant", "legal_entity", "channel", "decision", "reason_code",
        "legal_basis", "rule_ids", "evidence", "rulebook_version", "as_of", "decided_at",
        "revokes",
    }  # fmt: skip
    assert decision_from_dict(json.loads(json.dumps(data))) == decision


@pytest.mark.parametrize(
    ("written", "millis"),
    [
        ("2026-11-23T10:00:00.0009Z", 0),
        ("2026-11-23T10:00:00.1239+01:00", 123_000),
        ("2026-11-23T10:00:00.123456789Z", 123_000),
        ("2026-11-23T10:00:00.5Z", 500_000),
    ],
)
def test_timestamps_are_truncated_to_the_millisecond(written: str, millis: int) -> None:
    """Contract v1.4: a finer fraction is truncated, in JSON as in the Avro shape."""
    raw = send(at=written)
    event = parse_event(raw)
    assert event.occurred_at.microsecond == millis
    assert isinstance(event, SendRequest) and event.dispatch_at == event.occurred_at
    fine = datetime(2026, 11, 23, 9, 0, 0, millis + 999, tzinfo=UTC)
    assert parse_event(_avro_shape(raw) | {"occurred_at": fine}).occurred_at.microsecond == millis
    decision = final([consent(), send(at=written, dispatch_at=written)])
    assert decision.as_of.microsecond == millis
