"""R-IDENTITY-1, R-UNSUB-1, R-IDENTITY-3 (contract §7 step 7)."""

from __future__ import annotations

import pytest
from core_events import DEVICE, PHONE, consent, order, reason, send, service


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"identity": False}, "BLOCK_MISSING_SENDER_IDENTITY"),
        ({"display_name": ""}, "BLOCK_MISSING_SENDER_IDENTITY"),
        ({"unsubscribe_link": False}, "BLOCK_MISSING_UNSUBSCRIBE"),
        ({"requires_login": True}, "BLOCK_MISSING_UNSUBSCRIBE"),
        ({"identity": False, "unsubscribe_link": False}, "BLOCK_MISSING_SENDER_IDENTITY"),
    ],
)
def test_email_form(given: dict[str, object], expected: str) -> None:
    """T05, T61, T62."""
    assert reason([consent(), send(**given)]) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("contact", "channel"), [(PHONE, "fax"), (DEVICE, "push")])
def test_consent_only_channels_need_an_unsubscribe(contact: dict[str, str], channel: str) -> None:
    events = [
        consent(contact=contact, channels=[channel]),
        send(contact=contact, channel=channel, unsubscribe_link=False),
    ]
    assert reason(events) == "BLOCK_MISSING_UNSUBSCRIBE"


@pytest.mark.parametrize("channel", ["phone_live", "phone_automated"])
def test_calls_need_a_caller_id_not_an_unsubscribe_link(channel: str) -> None:
    """T84, R-IDENTITY-3."""
    call_consent = consent(contact=PHONE, channels=[channel], scope=["telemarketing", "offers"])
    scope = "telemarketing" if channel == "phone_live" else "offers"
    call = {"contact": PHONE, "channel": channel, "scope": scope, "unsubscribe_link": False}
    assert reason([call_consent, send(**call)]) == "ALLOW_CONSENT"  # type: ignore[arg-type]
    assert reason([call_consent, send(cli_withheld=True, **call)]) == "BLOCK_PHONE_ANONYMOUS_CLI"  # type: ignore[arg-type]


def test_form_does_not_apply_to_service() -> None:
    """T63."""
    assert reason([order(), service("invoice", identity=False)]) == "ALLOW_SERVICE_MESSAGE"


def test_form_only_after_a_basis() -> None:
    assert reason([send(identity=False)]) == "BLOCK_NO_LEGAL_BASIS"
