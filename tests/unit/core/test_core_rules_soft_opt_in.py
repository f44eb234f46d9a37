"""R-SOFTOPTIN-1..9 (contract §2, §7 step 6 messaging (b), (c))."""

from __future__ import annotations

import pytest
from core_events import (
    CHARITY,
    DEVICE,
    PHONE,
    SISTER,
    final,
    order,
    reason,
    send,
    signup,
)

from streams.core.policy import Policy, PolicyBook


def test_soft_opt_in_basis() -> None:
    decision = final([order(), send()])
    assert (decision.reason_code, decision.legal_basis) == ("ALLOW_SOFT_OPT_IN", "TW117_CUSTOMER")
    assert decision.evidence


@pytest.mark.parametrize(
    "given",
    [
        {"status": "placed", "amount": 0},
        {"status": "cancelled"},
        {"status": "refunded"},
        {"status": "abandoned", "amount": 0},
        {"amount": 0},
    ],
)
def test_no_paid_sale_is_not_a_customer(given: dict[str, object]) -> None:
    """R-SOFTOPTIN-2, OQ-4 (T31, T37, T38)."""
    assert reason([order(**given), send()]) == "BLOCK_NOT_A_CUSTOMER"


@pytest.mark.parametrize(
    "kind", ["account_created", "info_request", "quote_request", "free_trial", "petition"]
)
def test_signups_are_not_customers(kind: str) -> None:
    """R-SOFTOPTIN-2, OQ-2, OQ-3, R-SOFTOPTIN-9 (T34, T35, T99)."""
    assert reason([signup(kind), send()]) == "BLOCK_NOT_A_CUSTOMER"


def test_refund_replaces_the_paid_record() -> None:
    paid = order(order_id="o-r")
    refunded = order(order_id="o-r", status="refunded", at="2026-09-10T12:00:00+02:00")
    assert reason([paid, refunded, send()]) == "BLOCK_NOT_A_CUSTOMER"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"obtained_at_sale": False}, "BLOCK_CONTACT_NOT_FROM_SALE"),
        ({"optout_offered": False}, "BLOCK_NO_OPTOUT_AT_COLLECTION"),
        ({"optout_method": "terms_or_privacy_only"}, "BLOCK_NO_OPTOUT_AT_COLLECTION"),
        ({"optout_method": "none"}, "BLOCK_NO_OPTOUT_AT_COLLECTION"),
        ({"optout_method": "pre_ticked_box_removable"}, "ALLOW_SOFT_OPT_IN"),
        ({"optout_method": "link"}, "ALLOW_SOFT_OPT_IN"),
    ],
)
def test_collection_conditions(given: dict[str, object], expected: str) -> None:
    """R-SOFTOPTIN-4, -7 (T27, T28, T30, T42)."""
    assert reason([order(**given), send()]) == expected


def test_obtained_and_optout_must_hold_on_the_same_order() -> None:
    no_optout = order(optout_offered=False)
    not_from_sale = order(obtained_at_sale=False)
    assert reason([no_optout, not_from_sale, send()]) == "BLOCK_NO_OPTOUT_AT_COLLECTION"


def test_other_entity_and_third_party_content() -> None:
    """R-SOFTOPTIN-6 (T43), R-THIRDPARTY-2 (T44)."""
    assert reason([order(), send(entity=SISTER)]) == "BLOCK_OTHER_LEGAL_ENTITY"
    assert reason([order(), send(third_party_offer="Merk BV")]) == "BLOCK_THIRD_PARTY_CONTENT"


@pytest.mark.parametrize(
    ("request_at", "expected"),
    [
        ("2026-11-23T09:59:59+01:00", "ALLOW_SOFT_OPT_IN"),
        ("2026-11-23T10:00:00+01:00", "BLOCK_RELATION_EXPIRED"),
    ],
)
def test_window_is_24_calendar_months(request_at: str, expected: str) -> None:
    """R-SOFTOPTIN-5, contract §8: holds while as_of is before end + 24 months."""
    assert reason([order(at="2024-11-23T10:00:00+01:00"), send(at=request_at)]) == expected


def test_window_end_is_independent_of_the_written_offset() -> None:
    """Contract §8, Amsterdam calendar: the same instants written in UTC."""
    events = [order(at="2024-11-23T09:00:00Z"), send(at="2026-11-23T08:59:59Z")]
    assert reason(events) == "ALLOW_SOFT_OPT_IN"
    events = [order(at="2024-11-23T09:00:00Z"), send(at="2026-11-23T09:00:00Z")]
    assert reason(events) == "BLOCK_RELATION_EXPIRED"


def test_month_end_clamps_to_the_last_day() -> None:
    """Contract §8: 29 Feb 2024 + 24 months = 28 Feb 2026."""
    paid = order(at="2024-02-29T12:00:00+01:00")
    assert reason([paid, send(at="2026-02-28T11:59:59+01:00")]) == "ALLOW_SOFT_OPT_IN"
    assert reason([paid, send(at="2026-02-28T12:00:00+01:00")]) == "BLOCK_RELATION_EXPIRED"


def test_window_is_a_policy_setting() -> None:
    short = PolicyBook(default_policy=Policy(soft_opt_in_months=1))
    assert reason([order(), send()], short) == "BLOCK_RELATION_EXPIRED"


def test_subscription_is_current_until_it_ends() -> None:
    """Contract §2 (T41): age 0 while running; measured from contract_end_at after."""
    running = order(order_id="s-1", kind="subscription", at="2020-01-01T10:00:00+01:00")
    assert reason([running, send()]) == "ALLOW_SOFT_OPT_IN"
    ended = order(
        order_id="s-1",
        kind="subscription",
        at="2024-05-23T00:00:00+02:00",
        contract_end_at="2024-05-23T00:00:00+02:00",
    )
    assert reason([running, ended, send()]) == "BLOCK_RELATION_EXPIRED"


def test_first_paid_time_survives_replacement() -> None:
    """Contract §2: a later `paid` event of the same order does not renew the relation."""
    first = order(order_id="o-1", at="2023-06-01T10:00:00+02:00")
    again = order(order_id="o-1", at="2026-11-01T10:00:00+01:00")
    assert reason([first, again, send()]) == "BLOCK_RELATION_EXPIRED"


def test_similarity() -> None:
    """R-SOFTOPTIN-3, OQ-5: itself only, unless the policy adds a family."""
    events = [order(categories=["koffie"]), send(categories=["koffiefilters"])]
    assert reason(events) == "BLOCK_NOT_SIMILAR"
    family = PolicyBook(
        default_policy=Policy(similarity_families=(frozenset({"koffie", "koffiefilters"}),))
    )
    assert reason(events, family) == "ALLOW_SOFT_OPT_IN"
    assert reason([order(), send(categories=[])]) == "BLOCK_NOT_SIMILAR"
    assert reason([order(), send(categories=["koffie", "auto"])]) == "BLOCK_NOT_SIMILAR"


def test_similar_only_to_categories_bought_within_the_window() -> None:
    old = order(categories=["thee"], at="2023-01-10T10:00:00+01:00")
    assert reason([old, order(), send(categories=["thee"])]) == "BLOCK_NOT_SIMILAR"
    assert reason([old, order(), send(categories=["koffie"])]) == "ALLOW_SOFT_OPT_IN"


def test_donations() -> None:
    """R-SOFTOPTIN-9 (T98): donors for charitable messages only; a donation behind a
    commercial message is no customer relation."""
    gift = order(entity=CHARITY, kind="donation", categories=["bos"])
    appeal = send(entity=CHARITY, purpose="charitable", scope="appeals", categories=["bos"])
    decision = final([gift, appeal])
    assert (decision.reason_code, decision.legal_basis) == (
        "ALLOW_DONOR_RELATION",
        "TW117_CUSTOMER",
    )
    commercial = send(entity=CHARITY, categories=["bos"])
    assert reason([gift, commercial]) == "BLOCK_NOT_A_CUSTOMER"


def test_customer_relation_serves_charitable_messages_too() -> None:
    bought = order(entity=CHARITY, categories=["kaarten"])
    appeal = send(entity=CHARITY, purpose="charitable", categories=["kaarten"])
    assert reason([bought, appeal]) == "ALLOW_SOFT_OPT_IN"


def test_business_customers_alike() -> None:
    """R-SOFTOPTIN-8 (T49)."""
    assert reason([order(recipient_kind="legal_entity"), send(recipient="legal_entity")]) == (
        "ALLOW_SOFT_OPT_IN"
    )


def test_sms_soft_opt_in() -> None:
    """T46."""
    assert reason([order(contact=PHONE), send(contact=PHONE, channel="sms")]) == "ALLOW_SOFT_OPT_IN"


@pytest.mark.parametrize(("contact", "channel"), [(DEVICE, "push"), (PHONE, "phone_automated")])
def test_consent_only_channels_ignore_relations(contact: dict[str, str], channel: str) -> None:
    """Contract §7 step 6 consent-only (T89): a relation does not help."""
    events = [order(contact=contact), send(contact=contact, channel=channel)]
    assert reason(events) == "BLOCK_NO_LEGAL_BASIS"
