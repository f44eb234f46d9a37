"""Every reason code of rulebook §2 is reachable: one minimal event sequence per code,
decided through the `sendgate decide` path."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from core_events import (
    CHARITY,
    DEVICE,
    PHONE,
    POSTAL,
    SISTER,
    consent,
    final,
    order,
    send,
    service,
    signup,
    unsubscribe,
)

from streams.core.enums import Reason
from streams.core.rules import FAMILIES

RELAY = "marketplace_relay"
CALL = {"contact": PHONE, "channel": "phone_live", "scope": "telemarketing"}
BEFORE_PHONE_DATE = "2026-03-01T10:00:00+01:00"

CASES: dict[Reason, list[dict[str, Any]]] = {
    Reason.ALLOW_SERVICE_MESSAGE: [order(), service()],
    Reason.ALLOW_CONSENT: [consent(), send(scope="newsletter")],
    Reason.ALLOW_SOFT_OPT_IN: [order(), send()],
    Reason.ALLOW_DONOR_RELATION: [
        order(entity=CHARITY, kind="donation", categories=["bos"]),
        send(entity=CHARITY, purpose="charitable", scope="appeals", categories=["bos"]),
    ],
    Reason.ALLOW_RELAY_ORDER_EXECUTION: [order(address_type=RELAY), service("delivery_problem")],
    Reason.ALLOW_B2B_PUBLISHED_ADDRESS: [send(recipient="legal_entity", published=True)],
    Reason.ALLOW_B2B_NON_EEA: [send(recipient="legal_entity", outside_eea=True)],
    Reason.ALLOW_B2B_PHONE_OPT_OUT: [send(recipient="legal_entity", **CALL)],
    Reason.ALLOW_PHONE_CUSTOMER_RELATION: [
        order(contact=PHONE, informed_of_calls=True, at="2025-06-01T10:00:00+02:00"),
        send(at=BEFORE_PHONE_DATE, **CALL),
    ],
    Reason.ALLOW_POST_LEGIT_INTEREST: [order(contact=POSTAL), send(contact=POSTAL, channel="post")],
    Reason.BLOCK_NO_LEGAL_BASIS: [send()],
    Reason.BLOCK_OBJECTION: [consent(), unsubscribe(), send(scope="newsletter")],
    Reason.BLOCK_LATE_OBJECTION: [
        consent(),
        send(scope="newsletter", dispatch_at="2026-11-23T12:00:00+01:00"),
        unsubscribe(at="2026-11-23T11:00:00+01:00"),
    ],
    Reason.BLOCK_CONSENT_WITHDRAWN: [
        consent(consent_id="c-w"),
        unsubscribe(kind="consent_withdrawal", consent_id="c-w", source="preference_centre"),
        send(scope="newsletter"),
    ],
    Reason.BLOCK_CONSENT_INVALID_MECHANISM: [consent(mechanism="pre_ticked"), send()],
    Reason.BLOCK_CONSENT_SCOPE: [consent(scope=["updates"]), send()],
    Reason.BLOCK_CONSENT_UNPROVABLE: [consent(proof_ref=None), send()],
    Reason.BLOCK_CONSENT_EXPIRED: [consent(period_end="2026-06-01T00:00:00+02:00"), send()],
    Reason.BLOCK_CONSENT_BY_OTHER_PERSON: [consent(given_by_subject=False), send()],
    Reason.BLOCK_MINOR_NO_PARENTAL_CONSENT: [consent(subject_age=14), send()],
    Reason.BLOCK_NOT_A_CUSTOMER: [signup("account_created"), send()],
    Reason.BLOCK_NOT_SIMILAR: [order(), send(categories=["autolening"])],
    Reason.BLOCK_NO_OPTOUT_AT_COLLECTION: [order(optout_method="terms_or_privacy_only"), send()],
    Reason.BLOCK_CONTACT_NOT_FROM_SALE: [order(obtained_at_sale=False), send()],
    Reason.BLOCK_RELATION_EXPIRED: [order(at="2023-01-10T12:00:00+01:00"), send()],
    Reason.BLOCK_OTHER_LEGAL_ENTITY: [order(), send(entity=SISTER)],
    Reason.BLOCK_THIRD_PARTY_CONTENT: [order(), send(third_party_offer="Partner BV")],
    Reason.BLOCK_THIRD_PARTY_LIST: [
        consent(entity="Lijst BV", source="third_party_list"),
        send(),
    ],
    Reason.BLOCK_MISSING_UNSUBSCRIBE: [consent(), send(unsubscribe_link=False)],
    Reason.BLOCK_MISSING_SENDER_IDENTITY: [consent(), send(identity=False)],
    Reason.BLOCK_SENDER_MISMATCH: [consent(), send(entity=SISTER)],
    Reason.BLOCK_RELAY_ADDRESS_NON_ORDER: [order(address_type=RELAY), send()],
    Reason.BLOCK_RELAY_REVIEW_REQUEST_SEPARATE: [
        order(address_type=RELAY),
        service("customer_question_reply", review=True),
    ],
    Reason.BLOCK_AUDIENCE_NO_SPECIFIC_CONSENT: [
        consent(),
        send(channel="custom_audience", scope="custom_audience", platform="meta"),
    ],
    Reason.BLOCK_PHONE_NO_CONSENT: [send(**CALL)],
    Reason.BLOCK_PHONE_CUSTOMER_EXCEPTION_ENDED: [
        order(contact=PHONE, informed_of_calls=True),
        send(**CALL),
    ],
    Reason.BLOCK_PHONE_ANONYMOUS_CLI: [
        consent(contact=PHONE, channels=["phone_live"], scope=["telemarketing"]),
        send(cli_withheld=True, **CALL),
    ],
    Reason.BLOCK_CONTRACT_NEEDS_WRITTEN_CONFIRMATION: [
        order(order_id="o-tel", kind="subscription", status="placed", sold_by_phone=True),
        service("contract_welcome", relates_to="o-tel"),
    ],
    Reason.BLOCK_POST_POSTFILTER: [send(contact=POSTAL, channel="post", postfilter=True)],
    Reason.BLOCK_ERASED: [
        consent(),
        unsubscribe(kind="erasure_request", source="gdpr_art17_request", channels=["all"]),
        send(),
    ],
    Reason.BLOCK_REPERMISSION_TO_SUPPRESSED: [
        consent(),
        unsubscribe(kind="objection", source="gdpr_art21_request", channels=["all"]),
        send(consent_request=True, promo=False, categories=[]),
    ],
    Reason.BLOCK_PLATFORM_OPT_IN_MISSING: [
        order(contact=PHONE),
        send(contact=PHONE, channel="whatsapp"),
    ],
    Reason.BLOCK_SERVICE_NO_ACTIVE_RELATIONSHIP: [
        order(at="2020-11-20T12:00:00+01:00"),
        service("broadcast"),
    ],
}


def rulebook_reason_codes() -> set[str]:
    """The reason-code list of rulebook §2 (next to the shared scenarios)."""
    scenarios = Path(
        os.environ.get(
            "SENDGATE_SCENARIOS", Path(__file__).resolve().parents[4] / "shared" / "scenarios"
        )
    )
    text = (scenarios.parent / "spec" / "rulebook.md").read_text(encoding="utf-8")
    section = text.split("## 2. Reason codes", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`((?:ALLOW|BLOCK)_[A-Z0-9_]+)`", section))


def test_rulebook_list_matches_the_reason_enum() -> None:
    assert rulebook_reason_codes() == {r.value for r in Reason}


def test_every_reason_code_has_a_case() -> None:
    assert set(CASES) == set(Reason)


@pytest.mark.parametrize("code", list(CASES), ids=str)
def test_reason_code_is_reachable(code: Reason) -> None:
    assert final(CASES[code]).reason_code is code


def test_every_reason_code_belongs_to_a_rule_family() -> None:
    declared = {code for family in FAMILIES for code in family.REASON_CODES}
    assert declared == set(Reason)
    for family in FAMILIES:
        assert family.RULE_IDS, family.__name__


def test_consent_only_device_channel_is_consent_only() -> None:
    assert final([send(contact=DEVICE, channel="push")]).reason_code is Reason.BLOCK_NO_LEGAL_BASIS
