"""R-CLASS-1/-2/-3, R-SERVICE-2: service or marketing (contract §7 step 2)."""

from __future__ import annotations

from typing import Any

import pytest
from core_events import consent, order, reason, send, service, unsubscribe

from streams.core.parse import parse_event
from streams.core.rules.classification import is_service


def _is_service(event: dict[str, Any]) -> bool:
    request = parse_event(event)
    assert request.type == "send_request"
    return is_service(request)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (service(), True),
        (service(review=True), True),
        (service(promo=True), False),
        (service(third_party_offer="Partner BV"), False),
        (service(consent_request=True), False),
        (service(review=True, incentive=True), False),
        (service(service_kind=None), False),
        (send(service_kind="order_confirmation", promo=False), False),
    ],
)
def test_is_service(event: dict[str, Any], expected: bool) -> None:
    assert _is_service(event) is expected


def test_promo_in_a_service_mail_to_an_objector_is_blocked() -> None:
    """R-SERVICE-2 (T03): the banner makes it marketing, the objection blocks it."""
    events = [order(), unsubscribe(), service("shipping_update", promo=True, scope="offers")]
    assert reason(events) == "BLOCK_OBJECTION"


def test_ideal_purpose_needs_a_basis_like_commercial() -> None:
    """R-CLASS-2."""
    assert reason([send(purpose="ideal", promo=False)]) == "BLOCK_NO_LEGAL_BASIS"


def test_asking_for_consent_needs_a_basis() -> None:
    """R-CLASS-3 (T21)."""
    assert reason([send(consent_request=True, promo=False)]) == "BLOCK_NO_LEGAL_BASIS"


def test_consent_request_with_a_basis_is_allowed() -> None:
    assert reason([consent(), send(consent_request=True)]) == "ALLOW_CONSENT"
