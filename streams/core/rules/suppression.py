"""Objections, unsubscribes, withdrawals and erasure (contract §4, §7 step 4).

R-OBJECT-1 (absolute objection, scope mapping OQ-9), R-OBJECT-2 (purchases never lift
it), R-OBJECT-3 (timing and re-check at dispatch), R-OBJECT-5 (no re-permission mail to
suppressed contacts), R-CONSENT-7 (withdrawal), R-DSR-2 (erasure: block at once, keep a
hashed suppression record), R-RESUB-1 (only a later valid consent of the subject lifts a
suppression, for that consent's channels and scope), R-UNSUB-2 (every opt-out route,
checkout opt-outs included), R-SOFTOPTIN-4 (an opt-out used at checkout is an objection).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from streams.core.enums import (
    ALL_CHANNELS,
    AUDIENCE_CHANNELS,
    CHANNELS_OF_CONTACT_TYPE,
    PHONE_CALL_CHANNELS,
    Channel,
    ConsentSource,
    ContactType,
    Reason,
    UnsubscribeKind,
    UnsubscribeSource,
)
from streams.core.model import SuppressionFact
from streams.core.rules.consent import STAGE_SCOPE, consent_stage
from streams.core.rules.context import RequestContext, Verdict, counts_for

RULE_IDS = (
    "R-OBJECT-1",
    "R-OBJECT-2",
    "R-OBJECT-3",
    "R-OBJECT-5",
    "R-CONSENT-7",
    "R-DSR-2",
    "R-RESUB-1",
    "R-UNSUB-2",
    "R-SOFTOPTIN-4",
)
REASON_CODES = (
    Reason.BLOCK_ERASED,
    Reason.BLOCK_REPERMISSION_TO_SUPPRESSED,
    Reason.BLOCK_OBJECTION,
    Reason.BLOCK_CONSENT_WITHDRAWN,
    Reason.BLOCK_LATE_OBJECTION,
)

ALL_CHANNEL_SOURCES = frozenset(
    {
        UnsubscribeSource.CUSTOMER_SERVICE,
        UnsubscribeSource.COMPLAINT,
        UnsubscribeSource.GDPR_ART21_REQUEST,
        UnsubscribeSource.GDPR_ART17_REQUEST,
    }
)
ALL_CHANNEL_KINDS = frozenset(
    {
        UnsubscribeKind.OBJECTION,
        UnsubscribeKind.ERASURE_REQUEST,
        UnsubscribeKind.ERASURE_COMPLETED,
    }
)

_BLOCK_CONSENT_WITHDRAWN = Reason.BLOCK_CONSENT_WITHDRAWN
_BLOCK_ERASED = Reason.BLOCK_ERASED
_BLOCK_LATE_OBJECTION = Reason.BLOCK_LATE_OBJECTION
_BLOCK_OBJECTION = Reason.BLOCK_OBJECTION
_BLOCK_REPERMISSION_TO_SUPPRESSED = Reason.BLOCK_REPERMISSION_TO_SUPPRESSED
_PHONE_RVV = UnsubscribeSource.PHONE_RVV
ERASURE_KINDS = frozenset({UnsubscribeKind.ERASURE_REQUEST, UnsubscribeKind.ERASURE_COMPLETED})
OBJECTION_KINDS = frozenset({UnsubscribeKind.UNSUBSCRIBE, UnsubscribeKind.OBJECTION})
LIFTING_SOURCES = frozenset({ConsentSource.OWN_FORM, ConsentSource.CUSTOMER_SERVICE})

ERASED_RULES = ("R-DSR-2",)
REPERMISSION_RULES = ("R-OBJECT-5", "R-CLASS-3")
OBJECTION_RULES = ("R-OBJECT-1", "R-OBJECT-2")
WITHDRAWN_RULES = ("R-CONSENT-7",)
LATE_RULES = ("R-OBJECT-3",)

_WITHDRAWAL = UnsubscribeKind.CONSENT_WITHDRAWAL


def suppression_scope(
    kind: UnsubscribeKind,
    source: UnsubscribeSource,
    channels: Iterable[Channel] | None,
    contact_type: ContactType,
) -> frozenset[Channel]:
    """R-OBJECT-1 / OQ-9 (contract §4): objections, erasures and anything via customer
    service, a complaint or a GDPR request cover every channel; `phone_rvv` covers live and
    automated calls; otherwise the listed channels (absent = every channel of the
    contact's type)."""
    if kind in ALL_CHANNEL_KINDS or source in ALL_CHANNEL_SOURCES:
        return ALL_CHANNELS
    listed = CHANNELS_OF_CONTACT_TYPE[contact_type] if channels is None else frozenset(channels)
    if source is _PHONE_RVV:
        return listed | PHONE_CALL_CHANNELS
    return listed


def is_lifted(suppression: SuppressionFact, ctx: RequestContext) -> bool:
    """R-RESUB-1 (contract §4): a later valid consent of the subject, from an own form or
    customer service, naming the suppression's entity, lifts it for that consent's
    channels and scope only. Purchases, imports and lists never lift it (R-OBJECT-2)."""
    for consent in ctx.consents:
        if consent.source not in LIFTING_SOURCES:
            continue
        if consent.named_legal_entity != suppression.legal_entity:
            continue
        later = consent.occurred_at > suppression.occurred_at or (
            suppression.lifted_by_same_instant and consent.occurred_at == suppression.occurred_at
        )
        if not later or ctx.channel not in consent.channels or ctx.scope not in consent.scope:
            continue
        if consent_stage(consent, ctx) >= STAGE_SCOPE:
            return True
    return False


def in_force(ctx: RequestContext) -> list[SuppressionFact]:
    """Suppressions of the sending entity that count for this request and are not lifted,
    on any channel (contract §7: "suppressed")."""
    sender = ctx.sender
    return [
        s
        for s in ctx.state.suppressions
        if s.legal_entity == sender and counts_for(s, ctx) and not is_lifted(s, ctx)
    ]


def _ids(suppressions: Iterable[SuppressionFact]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.event_id for s in suppressions))


def suppression_verdict(ctx: RequestContext) -> Verdict | None:
    """Contract §7 step 4, in order: erasure (R-DSR-2), consent request to a suppressed
    contact (R-OBJECT-5), objection/unsubscribe/checkout opt-out in scope (R-OBJECT-1),
    consent withdrawal in scope (R-CONSENT-7). For audiences every suppression of the
    contact is in scope (R-AUDIENCE-2)."""
    if not ctx.state.suppressions:
        return None
    active = in_force(ctx)
    if not active:
        return None
    erasures = [s for s in active if s.kind in ERASURE_KINDS]
    if erasures:
        return Verdict(_BLOCK_ERASED, ERASED_RULES, _ids(erasures))
    if ctx.request.content.is_consent_request:
        return Verdict(_BLOCK_REPERMISSION_TO_SUPPRESSED, REPERMISSION_RULES, _ids(active))
    audience = ctx.channel in AUDIENCE_CHANNELS
    scoped = [s for s in active if audience or ctx.channel in s.channels]
    objections = [s for s in scoped if s.kind in OBJECTION_KINDS]
    if objections:
        rule_ids = OBJECTION_RULES + (("R-AUDIENCE-2",) if audience else ())
        return Verdict(_BLOCK_OBJECTION, rule_ids, _ids(objections))
    withdrawals = [s for s in scoped if s.kind is _WITHDRAWAL]
    if withdrawals:
        return Verdict(_BLOCK_CONSENT_WITHDRAWN, WITHDRAWN_RULES, _ids(withdrawals))
    return None


def triggers_recheck(
    suppression: SuppressionFact, occurred_at: datetime, dispatch_at: datetime
) -> bool:
    """R-OBJECT-3 (contract §7 re-check): a suppression arriving after an ALLOW re-opens it
    when its entity received it before the dispatch, or it occurred before the request."""
    return suppression.received_at < dispatch_at or suppression.occurred_at < occurred_at


def late_objection(reblock: Verdict) -> Verdict:
    """R-OBJECT-3: the revoking verdict carries the re-evaluation's rules and evidence."""
    rule_ids = LATE_RULES + tuple(r for r in reblock.rule_ids if r not in LATE_RULES)
    return Verdict(_BLOCK_LATE_OBJECTION, rule_ids, reblock.evidence)
