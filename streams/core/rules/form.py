"""Message form for marketing (contract §7 step 7).

R-IDENTITY-1 (the principal's real identity and a stop address), R-UNSUB-1 (a free,
working opt-out without login in every marketing message on messaging and consent-only
channels), R-IDENTITY-3 (no withheld caller ID on calls).
"""

from __future__ import annotations

from streams.core.enums import (
    AUDIENCE_CHANNELS,
    PHONE_CALL_CHANNELS,
    ChannelFamily,
    Reason,
)
from streams.core.rules.context import RequestContext, Verdict

RULE_IDS = ("R-IDENTITY-1", "R-UNSUB-1", "R-IDENTITY-3")
REASON_CODES = (
    Reason.BLOCK_MISSING_SENDER_IDENTITY,
    Reason.BLOCK_MISSING_UNSUBSCRIBE,
    Reason.BLOCK_PHONE_ANONYMOUS_CLI,
)

MISSING_IDENTITY = Verdict(Reason.BLOCK_MISSING_SENDER_IDENTITY, ("R-IDENTITY-1",))
MISSING_UNSUBSCRIBE = Verdict(Reason.BLOCK_MISSING_UNSUBSCRIBE, ("R-UNSUB-1",))
ANONYMOUS_CLI = Verdict(Reason.BLOCK_PHONE_ANONYMOUS_CLI, ("R-IDENTITY-3",))
UNSUBSCRIBE_FAMILIES = frozenset({ChannelFamily.MESSAGING, ChannelFamily.CONSENT_ONLY})


def form_verdict(ctx: RequestContext) -> Verdict | None:
    """R-IDENTITY-1 on every channel but audiences; R-UNSUB-1 on messaging and consent-only
    channels except calls; R-IDENTITY-3 on live and automated calls."""
    sender = ctx.request.sender
    channel = ctx.channel
    if channel not in AUDIENCE_CHANNELS and not (sender.display_name and sender.has_identity_block):
        return MISSING_IDENTITY
    if channel in PHONE_CALL_CHANNELS:
        return ANONYMOUS_CLI if sender.cli_withheld else None
    if ctx.family in UNSUBSCRIBE_FAMILIES and (
        not sender.has_unsubscribe or sender.unsubscribe_requires_login
    ):
        return MISSING_UNSUBSCRIBE
    return None
