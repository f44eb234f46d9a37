"""R-B2B-1/-2/-3 (contract §7 step 6 messaging)."""

from __future__ import annotations

import pytest
from core_events import final, reason, send


@pytest.mark.parametrize(
    ("given", "code", "basis"),
    [
        ({"published": True}, "ALLOW_B2B_PUBLISHED_ADDRESS", "TW117_B2B_PUBLISHED"),
        ({"outside_eea": True}, "ALLOW_B2B_NON_EEA", "TW117_B2B_NON_EEA"),
        ({}, "BLOCK_NO_LEGAL_BASIS", "NONE"),
    ],
)
def test_legal_entity_recipients(given: dict[str, bool], code: str, basis: str) -> None:
    """T91-T93."""
    decision = final([send(recipient="legal_entity", **given)])
    assert (decision.reason_code, decision.legal_basis) == (code, basis)


@pytest.mark.parametrize("kind", ["consumer", "natural_person_business"])
def test_natural_persons_get_no_b2b_exception(kind: str) -> None:
    """R-B2B-1: self-employed persons are natural persons."""
    assert reason([send(recipient=kind, published=True, outside_eea=True)]) == (
        "BLOCK_NO_LEGAL_BASIS"
    )


def test_b2b_exceptions_are_for_messaging_only() -> None:
    push = send(
        contact={"type": "device", "value": "d-1"}, channel="push", recipient="legal_entity"
    )
    push["recipient"]["address_published_for_purpose"] = True
    assert reason([push]) == "BLOCK_NO_LEGAL_BASIS"
