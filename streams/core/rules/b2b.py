"""Business recipients on messaging channels (contract §7 step 6, messaging).

R-B2B-1 (the opt-in regime covers companies too), R-B2B-2 (an address the company
published for this kind of message), R-B2B-3 (a company established outside the EEA).
"""

from __future__ import annotations

from streams.core.enums import Reason, RecipientKind
from streams.core.rules.context import RequestContext, Verdict

_LEGAL_ENTITY = RecipientKind.LEGAL_ENTITY

RULE_IDS = ("R-B2B-1", "R-B2B-2", "R-B2B-3")
REASON_CODES = (Reason.ALLOW_B2B_PUBLISHED_ADDRESS, Reason.ALLOW_B2B_NON_EEA)

PUBLISHED_ADDRESS = Verdict(Reason.ALLOW_B2B_PUBLISHED_ADDRESS, ("R-B2B-2",))
NON_EEA = Verdict(Reason.ALLOW_B2B_NON_EEA, ("R-B2B-3",))


def b2b_basis(ctx: RequestContext) -> Verdict | None:
    """R-B2B-2, then R-B2B-3; only for `legal_entity` recipients (self-employed persons
    are natural persons, R-B2B-1)."""
    recipient = ctx.request.recipient
    if recipient.kind is not _LEGAL_ENTITY:
        return None
    if recipient.address_published_for_purpose:
        return PUBLISHED_ADDRESS
    if recipient.established_outside_eea:
        return NON_EEA
    return None
