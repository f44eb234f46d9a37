"""R-SERVICE-1/-3, R-OBJECT-4, R-PHONE-7, platform rule (contract §7 step 3)."""

from __future__ import annotations

import pytest
from core_events import (
    PHONE,
    consent,
    final,
    order,
    reason,
    send,
    service,
    signup,
    unsubscribe,
)

OBJECTION = unsubscribe(kind="objection", source="gdpr_art21_request", channels=["all"])
ERASURE = unsubscribe(kind="erasure_request", source="gdpr_art17_request", channels=["all"])


@pytest.mark.parametrize("suppression", [OBJECTION, ERASURE])
def test_suppression_never_blocks_service(suppression: dict[str, object]) -> None:
    """R-OBJECT-4, R-DSR-2 (T02, T10)."""
    assert reason([order(), suppression, service("shipping_update")]) == "ALLOW_SERVICE_MESSAGE"


@pytest.mark.parametrize(
    ("kind", "basis"),
    [("recall", "GDPR_6_1_C"), ("legal_notice", "GDPR_6_1_C"), ("invoice", "GDPR_6_1_B")],
)
def test_legal_basis_of_service(kind: str, basis: str) -> None:
    assert final([order(), service(kind)]).legal_basis == basis


def test_free_account_gets_service_mail() -> None:
    """T08: no customer relation needed."""
    events = [signup("account_created"), service("account_notice")]
    assert reason(events) == "ALLOW_SERVICE_MESSAGE"


def test_whatsapp_service_needs_the_platform_opt_in() -> None:
    whatsapp = {"contact": PHONE, "channel": "whatsapp"}
    assert reason([order(contact=PHONE), service(**whatsapp)]) == "BLOCK_PLATFORM_OPT_IN_MISSING"
    asked = service(requested_by_recipient=True, **whatsapp)
    assert reason([order(contact=PHONE), asked]) == "ALLOW_SERVICE_MESSAGE"
    opt_in = consent(contact=PHONE, channels=["whatsapp"], scope=["updates"])
    assert reason([opt_in, service(**whatsapp)]) == "ALLOW_SERVICE_MESSAGE"


@pytest.mark.parametrize("kind", ["contract_welcome", "invoice"])
def test_phone_sale_needs_written_confirmation(kind: str) -> None:
    """R-PHONE-7 (T90)."""
    sold = order(order_id="tel-1", kind="subscription", status="placed", sold_by_phone=True)
    assert reason([sold, service(kind, relates_to="tel-1")]) == (
        "BLOCK_CONTRACT_NEEDS_WRITTEN_CONFIRMATION"
    )
    confirmed = order(order_id="tel-2", sold_by_phone=True, confirmed_in_writing=True)
    assert reason([confirmed, service(kind, relates_to="tel-2")]) == "ALLOW_SERVICE_MESSAGE"


def test_broadcast_with_an_account() -> None:
    assert reason([signup("account_created"), service("broadcast")]) == "ALLOW_SERVICE_MESSAGE"


def test_broadcast_with_a_current_subscription() -> None:
    """T07."""
    subscription = order(kind="subscription", at="2020-01-01T10:00:00+01:00")
    assert reason([subscription, service("broadcast")]) == "ALLOW_SERVICE_MESSAGE"


@pytest.mark.parametrize(
    ("paid_at", "expected"),
    [
        ("2026-09-01T12:00:00+02:00", "ALLOW_SERVICE_MESSAGE"),
        ("2026-08-01T12:00:00+02:00", "BLOCK_SERVICE_NO_ACTIVE_RELATIONSHIP"),
    ],
)
def test_broadcast_needs_a_recent_paid_order(paid_at: str, expected: str) -> None:
    """R-SERVICE-3: 90 days (policy)."""
    assert reason([order(at=paid_at), service("broadcast")]) == expected


def test_broadcast_without_relationship_may_go_as_marketing() -> None:
    """R-SERVICE-3 (T09): a marketing basis turns it into a marketing ALLOW."""
    events = [consent(scope=["updates"]), service("broadcast", unsubscribe_link=True)]
    decision = final(events)
    assert (decision.reason_code, decision.legal_basis) == ("ALLOW_CONSENT", "TW117_CONSENT")


def test_broadcast_as_marketing_blocked_by_form_is_no_relationship() -> None:
    events = [consent(scope=["updates"]), service("broadcast", unsubscribe_link=False)]
    assert reason(events) == "BLOCK_SERVICE_NO_ACTIVE_RELATIONSHIP"


def test_broadcast_with_promo_is_plain_marketing() -> None:
    """T06."""
    assert reason([service("broadcast", promo=True)]) == "BLOCK_NO_LEGAL_BASIS"


def test_service_without_kind_is_marketing() -> None:
    events = [order(), send(purpose="service", promo=False, categories=())]
    assert reason(events) == "BLOCK_NOT_SIMILAR"
