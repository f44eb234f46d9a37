"""R-RELAY-1/-2/-3: marketplace relay contacts (contract §7 step 1)."""

from __future__ import annotations

import pytest
from core_events import (
    POSTAL,
    SISTER,
    consent,
    final,
    order,
    reason,
    send,
    service,
    unsubscribe,
)

RELAY = "marketplace_relay"


@pytest.mark.parametrize(
    "kind",
    [
        "order_confirmation",
        "payment_confirmation",
        "delivery_appointment",
        "delivery_problem",
        "invoice",
        "return_or_warranty",
        "customer_question_reply",
        "recall",
        "legal_notice",
    ],
)
def test_order_execution_is_allowed(kind: str) -> None:
    decision = final([order(address_type=RELAY), service(kind)])
    assert decision.reason_code == "ALLOW_RELAY_ORDER_EXECUTION"
    assert decision.legal_basis == "MARKETPLACE_TERMS"


@pytest.mark.parametrize("kind", ["shipping_update", "account_notice", "broadcast"])
def test_other_service_kinds_are_blocked(kind: str) -> None:
    assert reason([order(address_type=RELAY), service(kind)]) == "BLOCK_RELAY_ADDRESS_NON_ORDER"


def test_shipping_update_the_buyer_asked_for_is_allowed() -> None:
    events = [order(address_type=RELAY), service("shipping_update", requested_by_recipient=True)]
    assert reason(events) == "ALLOW_RELAY_ORDER_EXECUTION"


def test_review_link_inside_the_invoice_is_allowed() -> None:
    """R-RELAY-2 (T68)."""
    assert reason([order(address_type=RELAY), service("invoice", review=True)]) == (
        "ALLOW_RELAY_ORDER_EXECUTION"
    )


@pytest.mark.parametrize(
    "request_event",
    [
        service("invoice", review=True, incentive=True),
        service("delivery_problem", review=True),
        service(None, review=True),
    ],
)
def test_separate_or_incentivised_review_is_blocked(request_event: dict[str, object]) -> None:
    assert reason([order(address_type=RELAY), request_event]) == (
        "BLOCK_RELAY_REVIEW_REQUEST_SEPARATE"
    )


@pytest.mark.parametrize(
    "request_event",
    [
        send(),
        send(channel="custom_audience", scope="custom_audience", platform="meta"),
        service("order_confirmation", promo=True),
    ],
)
def test_marketing_to_a_relay_address_is_blocked(request_event: dict[str, object]) -> None:
    """R-RELAY-1/-3 (T66, T71, T73): soft-opt-in facts do not help."""
    assert reason([order(address_type=RELAY), request_event]) == "BLOCK_RELAY_ADDRESS_NON_ORDER"


def test_relay_postal_address_gets_no_folder() -> None:
    """T70."""
    events = [order(address_type=RELAY, contact=POSTAL), send(contact=POSTAL, channel="post")]
    assert reason(events) == "BLOCK_RELAY_ADDRESS_NON_ORDER"


def test_relay_flag_is_per_entity() -> None:
    assert reason([order(address_type=RELAY), service(entity=SISTER)]) == "ALLOW_SERVICE_MESSAGE"


def test_direct_order_of_the_entity_clears_the_flag() -> None:
    events = [order(address_type=RELAY), order(), send()]
    assert reason(events) == "ALLOW_SOFT_OPT_IN"


def test_valid_own_form_consent_clears_the_flag() -> None:
    assert reason([order(address_type=RELAY), consent(), send()]) == "ALLOW_CONSENT"


def test_invalid_consent_does_not_clear_the_flag() -> None:
    events = [order(address_type=RELAY), consent(mechanism="pre_ticked"), send()]
    assert reason(events) == "BLOCK_RELAY_ADDRESS_NON_ORDER"


def test_relay_flag_survives_erasure() -> None:
    erased = unsubscribe(kind="erasure_completed", source="gdpr_art17_request", channels=None)
    relay_order = order(address_type=RELAY)
    assert reason([relay_order, erased, service("delivery_problem")]) == (
        "ALLOW_RELAY_ORDER_EXECUTION"
    )
    assert reason([relay_order, erased, service("shipping_update")]) == (
        "BLOCK_RELAY_ADDRESS_NON_ORDER"
    )
