"""R-OBJECT-1/-2/-5, R-CONSENT-7, R-DSR-2, R-RESUB-1, R-SOFTOPTIN-4 (contract §4, §7 step 4)."""

from __future__ import annotations

import pytest
from core_events import (
    EMAIL,
    PHONE,
    POSTAL,
    SISTER,
    consent,
    order,
    reason,
    send,
    unsubscribe,
)

SMS_CONSENT = consent(
    contact=PHONE, channels=["sms", "phone_live"], scope=["offers", "telemarketing"]
)
SMS = {"contact": PHONE, "channel": "sms"}
CALL = {"contact": PHONE, "channel": "phone_live", "scope": "telemarketing"}


def test_stop_reply_covers_the_listed_channel_only() -> None:
    """R-OBJECT-1, OQ-9: an unsubscribe covers the listed channels of that entity."""
    stop = unsubscribe(contact=PHONE, channels=["sms"], source="reply_stop")
    assert reason([SMS_CONSENT, stop, send(**SMS)]) == "BLOCK_OBJECTION"
    assert reason([SMS_CONSENT, stop, send(**CALL)]) == "ALLOW_CONSENT"


@pytest.mark.parametrize(
    ("kind", "source"),
    [
        ("objection", "reply_stop"),
        ("unsubscribe", "customer_service"),
        ("unsubscribe", "complaint"),
        ("unsubscribe", "gdpr_art21_request"),
    ],
)
def test_objections_and_escalated_sources_cover_every_channel(kind: str, source: str) -> None:
    """Contract §4 (T107, T108): whatever `channels` says."""
    objection = unsubscribe(kind=kind, contact=PHONE, channels=["sms"], source=source)
    assert reason([SMS_CONSENT, objection, send(**CALL)]) == "BLOCK_OBJECTION"


def test_phone_rvv_covers_calls_not_sms() -> None:
    rvv = unsubscribe(contact=PHONE, channels=["phone_live"], source="phone_rvv")
    both = consent(contact=PHONE, channels=["sms", "phone_automated"], scope=["offers"])
    robocall = send(contact=PHONE, channel="phone_automated", unsubscribe_link=False)
    assert reason([both, rvv, robocall]) == "BLOCK_OBJECTION"
    assert reason([both, rvv, send(**SMS)]) == "ALLOW_CONSENT"


def test_absent_channels_mean_every_channel_of_the_contact_type() -> None:
    everything = unsubscribe(contact=PHONE, channels=None, source="unsubscribe_link")
    assert reason([SMS_CONSENT, everything, send(**CALL)]) == "BLOCK_OBJECTION"


def test_suppression_binds_only_the_receiving_entity() -> None:
    sister_consent = consent(entity=SISTER)
    objection = unsubscribe(kind="objection", channels=["all"], source="gdpr_art21_request")
    assert reason([sister_consent, objection, send(entity=SISTER)]) == "ALLOW_CONSENT"


def test_linked_contacts_get_the_objection() -> None:
    """T56, T60."""
    objection = unsubscribe(
        kind="objection", channels=["all"], source="gdpr_art21_request", linked=[PHONE, POSTAL]
    )
    assert reason([SMS_CONSENT, objection, send(**SMS)]) == "BLOCK_OBJECTION"
    post = send(contact=POSTAL, channel="post")
    assert reason([order(contact=POSTAL), objection, post]) == "BLOCK_OBJECTION"


def test_every_unsubscribe_is_in_scope_for_audiences() -> None:
    """R-AUDIENCE-2 (T77)."""
    audience_consent = consent(
        channels=["custom_audience"], scope=["custom_audience"], platforms=["meta"]
    )
    audience = send(channel="custom_audience", scope="custom_audience", platform="meta")
    assert reason([audience_consent, unsubscribe(), audience]) == "BLOCK_OBJECTION"


def test_later_own_consent_lifts_an_unsubscribe_for_its_scope_only() -> None:
    """R-RESUB-1 (T51)."""
    base = [order(), unsubscribe(), consent(at="2026-11-01T10:00:00+01:00", scope=["newsletter"])]
    assert reason([*base, send(scope="newsletter")]) == "ALLOW_CONSENT"
    assert reason([*base, send(scope="offers")]) == "BLOCK_OBJECTION"


@pytest.mark.parametrize(
    "relift",
    [
        consent(at="2026-11-01T10:00:00+01:00", source="import"),
        consent(at="2026-11-01T10:00:00+01:00", mechanism="inferred", source="customer_service"),
        consent(at="2026-09-01T10:00:00+02:00"),
        order(at="2026-11-01T10:00:00+01:00"),
    ],
)
def test_imports_invalid_or_earlier_consents_and_purchases_never_lift(
    relift: dict[str, object],
) -> None:
    """R-OBJECT-2, R-RESUB-1 (T50, T52)."""
    assert reason([unsubscribe(), relift, send(scope="newsletter")]) == "BLOCK_OBJECTION"


def test_customer_service_consent_can_lift() -> None:
    relift = consent(at="2026-11-01T10:00:00+01:00", source="customer_service")
    assert reason([unsubscribe(), relift, send()]) == "ALLOW_CONSENT"


def test_withdrawal_blocks_the_entity_on_its_channels() -> None:
    """R-CONSENT-7 (T19), without consent_id: every consent on the listed channels."""
    withdrawal = unsubscribe(kind="consent_withdrawal", source="preference_centre")
    assert reason([consent(), withdrawal, send()]) == "BLOCK_CONSENT_WITHDRAWN"


def test_withdrawal_by_id_withdraws_that_consent_whoever_received_it() -> None:
    sister_consent = consent(entity=SISTER, consent_id="c-sister")
    withdrawal = unsubscribe(
        kind="consent_withdrawal", source="preference_centre", consent_id="c-sister"
    )
    assert reason([sister_consent, withdrawal, send(entity=SISTER)]) == "BLOCK_CONSENT_WITHDRAWN"


def test_erasure_request_blocks_all_marketing_at_once() -> None:
    """R-DSR-2 (T101)."""
    erasure = unsubscribe(kind="erasure_request", source="customer_service", channels=["all"])
    assert reason([consent(), erasure, send()]) == "BLOCK_ERASED"


def test_erasure_completed_deletes_every_entity_facts() -> None:
    erased = unsubscribe(kind="erasure_completed", source="gdpr_art17_request", channels=["all"])
    assert reason([consent(entity=SISTER), erased, send(entity=SISTER)]) == "BLOCK_NO_LEGAL_BASIS"
    imported = consent(at="2026-11-01T10:00:00+01:00", source="import")
    assert reason([consent(), erased, imported, send()]) == "BLOCK_ERASED"
    relift = consent(at="2026-11-01T10:00:00+01:00")
    assert reason([consent(), erased, relift, send()]) == "ALLOW_CONSENT"


def test_erasure_keeps_other_entities_objections() -> None:
    sister_objection = unsubscribe(
        entity=SISTER, kind="objection", source="gdpr_art21_request", channels=["all"]
    )
    erased = unsubscribe(kind="erasure_completed", source="gdpr_art17_request", channels=["all"])
    b2b = send(entity=SISTER, recipient="legal_entity", published=True)
    assert reason([sister_objection, erased, b2b]) == "BLOCK_OBJECTION"


def test_repermission_to_a_contact_suppressed_on_any_channel() -> None:
    """R-OBJECT-5: suppressed = any objection of the entity, whatever channel."""
    rvv = unsubscribe(contact=PHONE, channels=["phone_live"], source="phone_rvv")
    ask = send(contact=PHONE, channel="sms", consent_request=True, promo=False)
    assert reason([SMS_CONSENT, rvv, ask]) == "BLOCK_REPERMISSION_TO_SUPPRESSED"


def test_checkout_optout_is_an_objection_that_survives_order_updates() -> None:
    """R-SOFTOPTIN-4, R-OBJECT-2 (T29)."""
    used = order(order_id="o-x", optout_exercised=True)
    assert reason([used, send()]) == "BLOCK_OBJECTION"
    updated = order(order_id="o-x", at="2026-09-02T12:00:00+02:00")
    assert reason([used, updated, send()]) == "BLOCK_OBJECTION"


def test_unticked_optin_box_left_empty_is_an_optout() -> None:
    """Contract §2: unless a ticked box arrived as a consent with the order."""
    unticked = order(optout_method="unticked_optin_box", at="2026-09-01T12:00:00+02:00")
    assert reason([unticked, send()]) == "BLOCK_OBJECTION"
    ticked = consent(at="2026-09-01T12:00:00+02:00")
    assert reason([unticked, ticked, send()]) == "ALLOW_CONSENT"


@pytest.mark.parametrize(
    ("dispatch_at", "expected"),
    [("2026-11-23T11:00:00+01:00", "BLOCK_OBJECTION"), (None, "ALLOW_CONSENT")],
)
def test_suppression_received_before_dispatch_counts(
    dispatch_at: str | None, expected: str
) -> None:
    """Contract §7: counts when received before the request's dispatch."""
    later = unsubscribe(at="2026-11-23T10:30:00+01:00", contact=EMAIL)
    assert reason([consent(), later, send(dispatch_at=dispatch_at)]) == expected
