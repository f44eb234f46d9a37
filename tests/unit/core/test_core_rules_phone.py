"""R-PHONE-1/-2/-3/-6 (contract §7 step 6 live calls)."""

from __future__ import annotations

from datetime import date

import pytest
from core_events import CHARITY, PHONE, SISTER, consent, final, order, reason, send

from streams.core.eventtime import amsterdam_midnight
from streams.core.policy import Policy, PolicyBook

BEFORE = "2026-03-01T10:00:00+01:00"
AFTER = "2026-11-23T10:00:00+01:00"


def call(at: str = BEFORE, **given: object) -> dict[str, object]:
    return send(at=at, contact=PHONE, channel="phone_live", scope="telemarketing", **given)  # type: ignore[arg-type]


def customer(**given: object) -> dict[str, object]:
    fact: dict[str, object] = {
        "contact": PHONE,
        "informed_of_calls": True,
        "at": "2025-06-01T10:00:00+02:00",
    }
    return order(**(fact | given))  # type: ignore[arg-type]


def test_customer_relation_before_the_phone_date() -> None:
    """R-PHONE-1 (T79)."""
    decision = final([customer(at="2025-01-01T10:00:00+01:00"), call()])
    assert (decision.reason_code, decision.legal_basis) == (
        "ALLOW_PHONE_CUSTOMER_RELATION",
        "TW117_TM_CUSTOMER",
    )


@pytest.mark.parametrize(
    ("sector", "expected"),
    [
        ("other", "BLOCK_PHONE_CUSTOMER_EXCEPTION_ENDED"),
        ("charity_lottery", "ALLOW_PHONE_CUSTOMER_RELATION"),
        ("press_publisher", "ALLOW_PHONE_CUSTOMER_RELATION"),
    ],
)
def test_exception_after_the_phone_date(sector: str, expected: str) -> None:
    """R-PHONE-2 (T80)."""
    assert reason([customer(), call(at=AFTER, sector=sector)]) == expected


def test_phone_date_is_exactly_midnight_amsterdam() -> None:
    assert reason([customer(), call(at="2026-06-30T23:59:59+02:00")]) == (
        "ALLOW_PHONE_CUSTOMER_RELATION"
    )
    assert reason([customer(), call(at="2026-06-30T22:00:00Z")]) == (
        "BLOCK_PHONE_CUSTOMER_EXCEPTION_ENDED"
    )


def test_phone_date_is_a_policy_setting() -> None:
    later = PolicyBook(
        default_policy=Policy(phone_consent_required_from=amsterdam_midnight(date(2027, 1, 1)))
    )
    assert reason([customer(), call(at=AFTER)], later) == "ALLOW_PHONE_CUSTOMER_RELATION"


def test_donor_call() -> None:
    """R-PHONE-6 (T81, T82)."""
    gift = customer(entity=CHARITY, kind="donation", categories=["zeehonden"])
    appeal = call(
        at=AFTER, entity=CHARITY, purpose="charitable", categories=["zeehonden"], sector="charity"
    )
    decision = final([gift, appeal])
    assert (decision.reason_code, decision.legal_basis) == (
        "ALLOW_DONOR_RELATION",
        "TW117_TM_CUSTOMER",
    )
    uninformed = customer(
        entity=CHARITY, kind="donation", categories=["zeehonden"], informed_of_calls=False
    )
    assert reason([uninformed, appeal]) == "BLOCK_NO_OPTOUT_AT_COLLECTION"


def test_donation_does_not_support_a_commercial_call() -> None:
    gift = customer(entity=CHARITY, kind="donation", categories=["zeehonden"])
    assert reason([gift, call(entity=CHARITY, categories=["zeehonden"])]) == (
        "BLOCK_PHONE_NO_CONSENT"
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"optout_offered": False}, "BLOCK_NO_OPTOUT_AT_COLLECTION"),
        ({"informed_of_calls": False}, "BLOCK_NO_OPTOUT_AT_COLLECTION"),
        ({"obtained_at_sale": False}, "BLOCK_CONTACT_NOT_FROM_SALE"),
        ({"entity": SISTER}, "BLOCK_OTHER_LEGAL_ENTITY"),
        ({"categories": ["internet"]}, "BLOCK_NOT_SIMILAR"),
        ({"at": "2022-12-01T10:00:00+01:00"}, "BLOCK_RELATION_EXPIRED"),
        ({"at": "2023-04-01T10:00:00+02:00"}, "ALLOW_PHONE_CUSTOMER_RELATION"),
    ],
)
def test_relation_conditions(given: dict[str, object], expected: str) -> None:
    """R-PHONE-1: 36-month window (T83)."""
    assert reason([customer(**given), call()]) == expected


def test_no_facts_no_call() -> None:
    """T16, T85."""
    assert reason([call(recipient="natural_person_business")]) == "BLOCK_PHONE_NO_CONSENT"


def test_legal_entities_are_opt_out() -> None:
    """R-PHONE-3 (T86)."""
    decision = final([call(recipient="legal_entity")])
    assert (decision.reason_code, decision.legal_basis) == (
        "ALLOW_B2B_PHONE_OPT_OUT",
        "TW117_TM_LEGAL_ENTITY",
    )


def test_consent_miss_comes_before_the_relation_miss() -> None:
    """T87: a consent on the number gives the (a) reason."""
    unprovable = consent(
        contact=PHONE, channels=["phone_live"], scope=["telemarketing"], wording_version=None
    )
    assert reason([unprovable, customer(optout_offered=False), call(at=AFTER)]) == (
        "BLOCK_CONSENT_UNPROVABLE"
    )
