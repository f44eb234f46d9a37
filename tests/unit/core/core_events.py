"""Builders of contract-shaped event dicts for the core tests, and a runner that feeds them
through `parse_event` and the in-memory engine (the `sendgate decide` path)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from streams.core.engine import DecisionEngine
from streams.core.jsonl import LineRejection, decide_lines
from streams.core.model import Decision
from streams.core.policy import PolicyBook

TEST_SECRET = b"sendgate-unit-test-key"
TENANT = "t-unit"
SHOP = "Shop BV"
SISTER = "Shop Outlet BV"
CHARITY = "Stichting Goed"
EMAIL = {"type": "email", "value": "klant@example.nl"}
PHONE = {"type": "phone", "value": "+31612345678"}
POSTAL = {"type": "postal", "value": "Dorpsstraat 1, 1234 AB Ergens"}
DEVICE = {"type": "device", "value": "ios-apns:abc123"}
NOW = "2026-11-23T10:00:00+01:00"

_ids = itertools.count(1)


def _next_event_id() -> str:
    return f"u-e{next(_ids)}"


def order(
    *,
    at: str = "2026-09-01T12:00:00+02:00",
    entity: str = SHOP,
    order_id: str | None = None,
    kind: str = "purchase",
    status: str = "paid",
    amount: int = 2500,
    categories: Iterable[str] = ("koffie",),
    contract_end_at: str | None = None,
    address_type: str = "direct",
    contacts: Iterable[dict[str, Any]] | None = None,
    contact: dict[str, Any] = EMAIL,
    sold_by_phone: bool = False,
    confirmed_in_writing: bool = False,
    recipient_kind: str = "consumer",
    event_id: str | None = None,
    **fact: Any,
) -> dict[str, Any]:
    """A paid order listing one contact with a valid opt-out, unless told otherwise."""
    contact_fact = {
        "contact": contact,
        "obtained_at_sale": True,
        "optout_offered": True,
        "optout_method": "separate_optout_box",
    } | fact
    return {
        "type": "order",
        "event_id": event_id or _next_event_id(),
        "occurred_at": at,
        "tenant": TENANT,
        "legal_entity": entity,
        "order_id": order_id or f"o-{next(_ids)}",
        "kind": kind,
        "status": status,
        "paid_amount_cents": amount,
        "product_categories": list(categories),
        "contract_end_at": contract_end_at,
        "recipient_kind": recipient_kind,
        "address_type": address_type,
        "marketplace": "bol.com" if address_type == "marketplace_relay" else None,
        "sold_by_phone": sold_by_phone,
        "confirmed_in_writing": confirmed_in_writing,
        "contacts": list(contacts) if contacts is not None else [contact_fact],
    }


def consent(
    *,
    at: str = "2026-05-01T12:00:00+02:00",
    entity: str = SHOP,
    named: str | None = None,
    contact: dict[str, Any] = EMAIL,
    channels: Iterable[str] = ("email",),
    scope: Iterable[str] = ("newsletter", "offers"),
    categories: Iterable[str] = (),
    partners: Iterable[str] = (),
    platforms: Iterable[str] = (),
    mechanism: str = "double_opt_in",
    source: str = "own_form",
    proof_ref: str | None = "proof-1",
    wording_version: str | None = "wording-v1",
    period_end: str | None = None,
    subject_age: int | None = None,
    consent_id: str | None = None,
    event_id: str | None = None,
    **flags: Any,
) -> dict[str, Any]:
    """A valid consent of the subject for e-mail newsletters and offers of `entity`."""
    return {
        "type": "signup",
        "event_id": event_id or _next_event_id(),
        "occurred_at": at,
        "tenant": TENANT,
        "legal_entity": entity,
        "kind": "consent",
        "contact": contact,
        "subject_age": subject_age,
        "consent": {
            "consent_id": consent_id or f"c-{next(_ids)}",
            "channels": list(channels),
            "scope": list(scope),
            "product_categories": list(categories),
            "partners_named": list(partners),
            "platforms": list(platforms),
            "named_legal_entity": named or entity,
            "mechanism": mechanism,
            "source": source,
            "wording_version": wording_version,
            "proof_ref": proof_ref,
            "period_end": period_end,
        }
        | flags,
    }


def signup(
    kind: str,
    *,
    at: str = "2026-05-01T12:00:00+02:00",
    entity: str = SHOP,
    contact: dict[str, Any] = EMAIL,
) -> dict[str, Any]:
    return {
        "type": "signup",
        "event_id": _next_event_id(),
        "occurred_at": at,
        "tenant": TENANT,
        "legal_entity": entity,
        "kind": kind,
        "contact": contact,
        "subject_age": None,
    }


def unsubscribe(
    *,
    kind: str = "unsubscribe",
    at: str = "2026-10-01T12:00:00+02:00",
    entity: str = SHOP,
    contact: dict[str, Any] = EMAIL,
    channels: Iterable[str] | None = ("email",),
    source: str = "unsubscribe_link",
    consent_id: str | None = None,
    received_at: str | None = None,
    linked: Iterable[dict[str, Any]] = (),
    event_id: str | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "unsubscribe",
        "event_id": event_id or _next_event_id(),
        "occurred_at": at,
        "tenant": TENANT,
        "legal_entity": entity,
        "kind": kind,
        "contact": contact,
        "source": source,
        "consent_id": consent_id,
        "list_id": None,
        "linked_contacts": list(linked),
    }
    if channels is not None:
        event["channels"] = list(channels)
    if received_at is not None:
        event["received_at"] = received_at
    return event


def send(
    *,
    at: str = NOW,
    entity: str = SHOP,
    contact: dict[str, Any] = EMAIL,
    channel: str = "email",
    purpose: str = "commercial",
    service_kind: str | None = None,
    relates_to: str | None = None,
    requested_by_recipient: bool = False,
    scope: str = "offers",
    promo: bool = True,
    categories: Iterable[str] = ("koffie",),
    third_party_offer: str | None = None,
    consent_request: bool = False,
    review: bool = False,
    incentive: bool = False,
    display_name: str = SHOP,
    identity: bool = True,
    unsubscribe_link: bool = True,
    requires_login: bool = False,
    cli_withheld: bool = False,
    sector: str = "other",
    recipient: str = "consumer",
    published: bool = False,
    outside_eea: bool = False,
    postfilter: bool = False,
    platform: str | None = None,
    dispatch_at: str | None = None,
    request_id: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A compliant commercial e-mail promoting `koffie`, unless told otherwise."""
    event: dict[str, Any] = {
        "type": "send_request",
        "event_id": event_id or _next_event_id(),
        "occurred_at": at,
        "tenant": TENANT,
        "legal_entity": entity,
        "request_id": request_id or f"r-{next(_ids)}",
        "contact": contact,
        "channel": channel,
        "declared_purpose": purpose,
        "service_kind": service_kind,
        "relates_to_order_id": relates_to,
        "requested_by_recipient": requested_by_recipient,
        "content": {
            "content_scope": scope,
            "has_promo": promo,
            "promo_categories": list(categories),
            "third_party_offer": third_party_offer,
            "is_consent_request": consent_request,
            "is_review_request": review,
            "review_incentive": incentive,
        },
        "sender": {
            "display_name": display_name,
            "has_identity_block": identity,
            "has_unsubscribe": unsubscribe_link,
            "unsubscribe_requires_login": requires_login,
            "cli_withheld": cli_withheld,
            "sector": sector,
        },
        "recipient": {
            "kind": recipient,
            "established_outside_eea": outside_eea,
            "address_published_for_purpose": published,
            "postfilter_registered": postfilter,
        },
        "platform": platform,
        "campaign_id": None,
        "template_id": None,
    }
    if dispatch_at is not None:
        event["dispatch_at"] = dispatch_at
    return event


def service(kind: str = "order_confirmation", **kwargs: Any) -> dict[str, Any]:
    """A pure service message (no promotion)."""
    defaults: dict[str, Any] = {
        "purpose": "service",
        "service_kind": kind,
        "scope": "updates",
        "promo": False,
        "categories": (),
        "unsubscribe_link": False,
    }
    return send(**(defaults | kwargs))


def engine(policies: PolicyBook | None = None) -> DecisionEngine:
    return DecisionEngine(policies or PolicyBook(), TEST_SECRET)


def run(events: Iterable[dict[str, Any]], policies: PolicyBook | None = None) -> list[Decision]:
    """Every decision emitted, in order, through parse_event and the engine."""
    import json

    lines = [json.dumps(e) for e in events]
    out: list[Decision] = []
    for item in decide_lines(lines, engine(policies)):
        if isinstance(item, LineRejection):
            raise AssertionError(item.describe())
        out.append(item)
    return out


def final(events: Iterable[dict[str, Any]], policies: PolicyBook | None = None) -> Decision:
    """The final decision of the last send request in `events`."""
    events = list(events)
    last = [e for e in events if e["type"] == "send_request"][-1]["request_id"]
    decisions = [d for d in run(events, policies) if d.request_id == last]
    assert decisions, f"no decision for {last}"
    return decisions[-1]


def reason(events: Iterable[dict[str, Any]], policies: PolicyBook | None = None) -> str:
    return str(final(events, policies).reason_code)
