"""R-THIRDPARTY-1/-2/-3 (contract §3, §7 step 6 (a) and (c))."""

from __future__ import annotations

from core_events import SHOP, consent, order, reason, send, signup

from streams.core.apply import apply
from streams.core.model import ConsentFact, ContactState
from streams.core.parse import parse_event
from streams.core.rules.third_party import list_consent_fails


def _consent_fact(**given: object) -> ConsentFact:
    return apply(ContactState.empty(), parse_event(consent(**given))).consents[0]  # type: ignore[arg-type]


def test_list_consent_needs_the_sender_named_and_proof() -> None:
    assert not list_consent_fails(_consent_fact(source="third_party_list"), SHOP)
    assert list_consent_fails(_consent_fact(source="third_party_list"), "Ander BV")
    assert list_consent_fails(_consent_fact(source="third_party_list", proof_ref=None), SHOP)
    assert not list_consent_fails(_consent_fact(source="import", proof_ref=None), SHOP)


def test_bought_list_for_another_entity() -> None:
    """T94: the vendor's own consent, partners unnamed."""
    vendor = consent(entity="Lead BV", source="third_party_list", scope=["partner_offers"])
    assert reason([vendor, send()]) == "BLOCK_THIRD_PARTY_LIST"


def test_referral_and_list_import_explain_the_missing_basis() -> None:
    """R-THIRDPARTY-3 (T97), R-THIRDPARTY-1 (T106); a referral comes first."""
    assert reason([signup("referral"), send()]) == "BLOCK_CONSENT_BY_OTHER_PERSON"
    assert reason([signup("list_import"), send()]) == "BLOCK_THIRD_PARTY_LIST"
    both = [signup("list_import"), signup("referral"), send()]
    assert reason(both) == "BLOCK_CONSENT_BY_OTHER_PERSON"


def test_relation_beats_prospect_sources() -> None:
    """(b) before (c): a relation's miss explains it first."""
    events = [signup("referral"), order(optout_offered=False), send()]
    assert reason(events) == "BLOCK_NO_OPTOUT_AT_COLLECTION"


def test_partner_content_is_outside_the_customer_exception() -> None:
    assert reason([order(), send(third_party_offer="Partner BV")]) == "BLOCK_THIRD_PARTY_CONTENT"
