"""R-AUDIENCE-1/-2 (contract §7 step 6 audiences)."""

from __future__ import annotations

import pytest
from core_events import PHONE, consent, final, order, reason, send, signup

AUDIENCE_CONSENT = consent(
    channels=["custom_audience", "lookalike_audience"],
    scope=["custom_audience"],
    platforms=["meta"],
)


def upload(channel: str = "custom_audience", **given: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "channel": channel,
        "scope": "custom_audience",
        "platform": "meta",
        "identity": False,
        "unsubscribe_link": False,
    }
    return send(**(fields | given))  # type: ignore[arg-type]


@pytest.mark.parametrize("channel", ["custom_audience", "lookalike_audience"])
def test_specific_consent_allows_upload(channel: str) -> None:
    """T75: GDPR consent; no identity block or unsubscribe link applies."""
    decision = final([AUDIENCE_CONSENT, upload(channel)])
    assert (decision.reason_code, decision.legal_basis) == ("ALLOW_CONSENT", "GDPR_6_1_A")


def test_phone_numbers_can_be_uploaded_too() -> None:
    phone_consent = consent(
        contact=PHONE, channels=["custom_audience"], scope=["custom_audience"], platforms=["meta"]
    )
    assert reason([phone_consent, upload(contact=PHONE)]) == "ALLOW_CONSENT"


@pytest.mark.parametrize(
    ("facts", "request_event"),
    [
        ([consent()], upload()),
        ([order(optout_method="terms_or_privacy_only")], upload()),
        ([order()], upload()),
        ([signup("list_import")], upload()),
        ([AUDIENCE_CONSENT], upload(platform="tiktok")),
        ([AUDIENCE_CONSENT], upload(platform=None)),
    ],
)
def test_anything_else_has_no_specific_consent(
    facts: list[dict[str, object]], request_event: dict[str, object]
) -> None:
    """T74, T76, T78: no nearest-miss chain on audiences; the platform must be named."""
    assert reason([*facts, request_event]) == "BLOCK_AUDIENCE_NO_SPECIFIC_CONSENT"
