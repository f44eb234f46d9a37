"""R-POST-1 (contract §7 step 6 post)."""

from __future__ import annotations

import pytest
from core_events import POSTAL, SISTER, consent, final, order, reason, send, signup

POST = {"contact": POSTAL, "channel": "post"}


def test_customer_legitimate_interest() -> None:
    """T102: no unsubscribe link needed on paper."""
    decision = final([order(contact=POSTAL), send(unsubscribe_link=False, **POST)])
    assert (decision.reason_code, decision.legal_basis) == (
        "ALLOW_POST_LEGIT_INTEREST",
        "GDPR_6_1_F",
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"optout_method": "none"}, "BLOCK_NO_OPTOUT_AT_COLLECTION"),
        ({"obtained_at_sale": False}, "BLOCK_CONTACT_NOT_FROM_SALE"),
        ({"entity": SISTER}, "BLOCK_OTHER_LEGAL_ENTITY"),
        ({"at": "2023-01-01T10:00:00+01:00"}, "BLOCK_RELATION_EXPIRED"),
        ({"categories": ["iets-anders"]}, "ALLOW_POST_LEGIT_INTEREST"),
    ],
)
def test_relation_conditions(given: dict[str, object], expected: str) -> None:
    """T109; no similarity test on post."""
    assert reason([order(contact=POSTAL, **given), send(**POST)]) == expected  # type: ignore[arg-type]


def test_postfilter_before_no_basis() -> None:
    """T103: Postfilter, not the list-import miss."""
    assert reason([signup("list_import", contact=POSTAL), send(postfilter=True, **POST)]) == (
        "BLOCK_POST_POSTFILTER"
    )
    assert reason([send(**POST)]) == "BLOCK_NO_LEGAL_BASIS"


def test_post_consent() -> None:
    decision = final([consent(contact=POSTAL, channels=["post"]), send(**POST)])
    assert (decision.reason_code, decision.legal_basis) == ("ALLOW_CONSENT", "GDPR_6_1_A")


def test_post_needs_sender_identity() -> None:
    assert reason([order(contact=POSTAL), send(identity=False, **POST)]) == (
        "BLOCK_MISSING_SENDER_IDENTITY"
    )
