"""R-CONSENT-1..9, R-IDENTITY-2, platform rule (contract §3, §7 step 6 (a))."""

from __future__ import annotations

from typing import Any

import pytest
from core_events import (
    DEVICE,
    EMAIL,
    PHONE,
    POSTAL,
    SISTER,
    consent,
    final,
    order,
    reason,
    send,
)

from streams.core.policy import Policy, PolicyBook


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"mechanism": "pre_ticked"}, "BLOCK_CONSENT_INVALID_MECHANISM"),
        ({"mechanism": "terms_clause"}, "BLOCK_CONSENT_INVALID_MECHANISM"),
        ({"mechanism": "inferred"}, "BLOCK_CONSENT_INVALID_MECHANISM"),
        ({"bundled_with_purchase": True}, "BLOCK_CONSENT_INVALID_MECHANISM"),
        ({"given_by_subject": False}, "BLOCK_CONSENT_BY_OTHER_PERSON"),
        ({"subject_age": 15}, "BLOCK_MINOR_NO_PARENTAL_CONSENT"),
        ({"subject_age": 15, "parental_consent": True}, "ALLOW_CONSENT"),
        ({"subject_age": 16}, "ALLOW_CONSENT"),
        ({"proof_ref": None}, "BLOCK_CONSENT_UNPROVABLE"),
        ({"wording_version": None}, "BLOCK_CONSENT_UNPROVABLE"),
        ({"period_end": "2026-11-23T10:00:00+01:00"}, "BLOCK_CONSENT_EXPIRED"),
        ({"period_end": "2026-11-23T10:00:01+01:00"}, "ALLOW_CONSENT"),
        ({"scope": ["newsletter"]}, "BLOCK_CONSENT_SCOPE"),
        ({"channels": ["sms"]}, "BLOCK_CONSENT_SCOPE"),
        ({"categories": ["thee"]}, "BLOCK_CONSENT_SCOPE"),
        ({"categories": ["koffie", "thee"]}, "ALLOW_CONSENT"),
        ({"source": "import"}, "ALLOW_CONSENT"),
        ({"source": "co_registration"}, "ALLOW_CONSENT"),
        ({"source": "third_party_list"}, "ALLOW_CONSENT"),
        ({"source": "third_party_list", "proof_ref": None}, "BLOCK_THIRD_PARTY_LIST"),
        ({"named": SISTER}, "BLOCK_SENDER_MISMATCH"),
    ],
)
def test_single_consent(given: dict[str, Any], expected: str) -> None:
    assert reason([consent(**given), send()]) == expected


def test_minimum_age_is_a_policy_setting() -> None:
    strict = PolicyBook(default_policy=Policy(min_consent_age=18))
    assert reason([consent(subject_age=17), send()], strict) == "BLOCK_MINOR_NO_PARENTAL_CONSENT"


def test_nearest_miss_is_the_furthest_check_any_consent_reached() -> None:
    """Contract §7 step 6: the list walked as a filter over all consents."""
    events = [consent(named=SISTER), consent(mechanism="pre_ticked"), send()]
    assert reason(events) == "BLOCK_CONSENT_INVALID_MECHANISM"
    events = [consent(entity="Lijst BV", source="third_party_list"), consent(named=SISTER), send()]
    assert reason(events) == "BLOCK_SENDER_MISMATCH"


def test_partner_offer_needs_the_partner_named() -> None:
    """R-CONSENT-3, R-THIRDPARTY-2 (T14)."""
    offer = send(scope="partner_offers", third_party_offer="Zon BV")
    unnamed = consent(scope=["partner_offers"])
    assert reason([unnamed, offer]) == "BLOCK_CONSENT_SCOPE"
    named = consent(scope=["partner_offers"], partners=["Zon BV"])
    assert reason([named, offer]) == "ALLOW_CONSENT"


def test_consent_is_per_contact_point() -> None:
    """R-CONSENT-4 (T15)."""
    assert reason([consent(), send(contact=PHONE, channel="sms")]) == "BLOCK_NO_LEGAL_BASIS"


def test_normalised_contact_matches() -> None:
    """Contract §1 (T46, T58): e-mail case and phone formats."""
    shouting = {"type": "email", "value": "  Klant@Example.NL "}
    assert reason([consent(contact=shouting), send(contact=EMAIL)]) == "ALLOW_CONSENT"
    national = {"type": "phone", "value": "06 12345678"}
    sms_consent = consent(contact=national, channels=["sms"])
    assert reason([sms_consent, send(contact=PHONE, channel="sms")]) == "ALLOW_CONSENT"


def test_consent_given_after_the_request_time_does_not_count() -> None:
    later = consent(at="2026-11-24T10:00:00+01:00")
    assert reason([later, send()]) == "BLOCK_NO_LEGAL_BASIS"


def test_live_call_consent_needs_telemarketing_scope() -> None:
    call = send(contact=PHONE, channel="phone_live", scope="offers")
    offers_only = consent(contact=PHONE, channels=["phone_live"], scope=["offers"])
    assert reason([offers_only, call]) == "BLOCK_CONSENT_SCOPE"
    both = consent(contact=PHONE, channels=["phone_live"], scope=["offers", "telemarketing"])
    decision = final([both, call])
    assert (decision.reason_code, decision.legal_basis) == ("ALLOW_CONSENT", "TW117_TM_CONSENT")


@pytest.mark.parametrize(
    ("contact", "channel", "basis"),
    [
        (EMAIL, "email", "TW117_CONSENT"),
        (PHONE, "sms", "TW117_CONSENT"),
        (PHONE, "fax", "TW117_CONSENT"),
        (DEVICE, "push", "TW117_CONSENT"),
        (POSTAL, "post", "GDPR_6_1_A"),
    ],
)
def test_consent_legal_basis_by_channel(contact: dict[str, str], channel: str, basis: str) -> None:
    events = [consent(contact=contact, channels=[channel]), send(contact=contact, channel=channel)]
    decision = final(events)
    assert (decision.reason_code, decision.legal_basis) == ("ALLOW_CONSENT", basis)


def test_whatsapp_marketing_needs_a_whatsapp_consent() -> None:
    """Platform rule (T47): the SMS consent does not do."""
    whatsapp = send(contact=PHONE, channel="whatsapp")
    assert reason([consent(contact=PHONE, channels=["sms"]), whatsapp]) == (
        "BLOCK_PLATFORM_OPT_IN_MISSING"
    )
    assert reason([consent(contact=PHONE, channels=["whatsapp"]), whatsapp]) == "ALLOW_CONSENT"


def test_whatsapp_opt_in_of_any_scope_still_needs_a_basis() -> None:
    platform_only = consent(contact=PHONE, channels=["whatsapp"], scope=["updates"])
    whatsapp = send(contact=PHONE, channel="whatsapp")
    assert reason([platform_only, whatsapp]) == "BLOCK_CONSENT_SCOPE"
    assert reason([platform_only, order(contact=PHONE), whatsapp]) == "ALLOW_SOFT_OPT_IN"
