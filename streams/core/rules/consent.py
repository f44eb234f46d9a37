"""Consent on electronic channels (contract §3, §7 step 6 (a)).

R-CONSENT-1 (opt-in by default), R-CONSENT-2 (affirmative act), R-CONSENT-3 (specific:
entity, channel, content, partners), R-CONSENT-4 (per channel and contact point),
R-CONSENT-5 (provable), R-CONSENT-6 (unbundled), R-CONSENT-7 (withdrawal),
R-CONSENT-8 (expiry), R-CONSENT-9 (given by the addressee, age 16), R-IDENTITY-2 (the
consent must name the sending entity), R-PLATFORM-1 (rulebook §2 platform rule, P5:
WhatsApp needs the business's own opt-in; the rulebook gives it no number).

A consent's *stage* is the index of the first nearest-miss check it fails (9 = it covers
the request). Walking the contract's nearest-miss list as a filter over all consents
stops at the largest stage any consent reached, so the miss is `STAGE_REASONS[max]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from streams.core.enums import (
    Channel,
    ChannelFamily,
    Mechanism,
    Reason,
    RecipientKind,
    Scope,
    UnsubscribeKind,
)
from streams.core.model import ConsentFact
from streams.core.rules.context import RequestContext, Verdict, counts_for
from streams.core.rules.third_party import LIST_RULES, list_consent_fails

RULE_IDS = (
    "R-CONSENT-1",
    "R-CONSENT-2",
    "R-CONSENT-3",
    "R-CONSENT-4",
    "R-CONSENT-5",
    "R-CONSENT-6",
    "R-CONSENT-7",
    "R-CONSENT-8",
    "R-CONSENT-9",
    "R-IDENTITY-2",
    "R-PLATFORM-1",
)
REASON_CODES = (
    Reason.ALLOW_CONSENT,
    Reason.BLOCK_SENDER_MISMATCH,
    Reason.BLOCK_CONSENT_INVALID_MECHANISM,
    Reason.BLOCK_CONSENT_BY_OTHER_PERSON,
    Reason.BLOCK_MINOR_NO_PARENTAL_CONSENT,
    Reason.BLOCK_CONSENT_UNPROVABLE,
    Reason.BLOCK_CONSENT_EXPIRED,
    Reason.BLOCK_CONSENT_WITHDRAWN,
    Reason.BLOCK_CONSENT_SCOPE,
    Reason.BLOCK_PLATFORM_OPT_IN_MISSING,
    Reason.BLOCK_NO_LEGAL_BASIS,
)

VALID_MECHANISMS = frozenset(
    {
        Mechanism.ACTIVE_TICK,
        Mechanism.TYPED_YES,
        Mechanism.DOUBLE_OPT_IN,
        Mechanism.RECORDED_VERBAL_YES,
    }
)

_ALLOW_CONSENT = Reason.ALLOW_CONSENT
_BLOCK_NO_LEGAL_BASIS = Reason.BLOCK_NO_LEGAL_BASIS
_LEGAL_ENTITY = RecipientKind.LEGAL_ENTITY
_PHONE_AUTOMATED = Channel.PHONE_AUTOMATED

STAGE_THIRD_PARTY_LIST = 0
STAGE_SENDER = 1
STAGE_MECHANISM = 2
STAGE_SUBJECT = 3
STAGE_MINOR = 4
STAGE_PROOF = 5
STAGE_EXPIRY = 6
STAGE_WITHDRAWN = 7
STAGE_SCOPE = 8
"""Reaching STAGE_SCOPE means: a valid consent naming the sender (whatever it covers)."""
COVERS = 9

STAGE_VERDICTS: tuple[tuple[Reason, tuple[str, ...]], ...] = (
    (Reason.BLOCK_THIRD_PARTY_LIST, LIST_RULES),
    (Reason.BLOCK_SENDER_MISMATCH, ("R-IDENTITY-2", "R-CONSENT-3")),
    (Reason.BLOCK_CONSENT_INVALID_MECHANISM, ("R-CONSENT-2", "R-CONSENT-6")),
    (Reason.BLOCK_CONSENT_BY_OTHER_PERSON, ("R-CONSENT-9",)),
    (Reason.BLOCK_MINOR_NO_PARENTAL_CONSENT, ("R-CONSENT-9",)),
    (Reason.BLOCK_CONSENT_UNPROVABLE, ("R-CONSENT-5",)),
    (Reason.BLOCK_CONSENT_EXPIRED, ("R-CONSENT-8",)),
    (Reason.BLOCK_CONSENT_WITHDRAWN, ("R-CONSENT-7",)),
    (Reason.BLOCK_CONSENT_SCOPE, ("R-CONSENT-3", "R-CONSENT-4")),
)
CONSENT_RULES = ("R-CONSENT-1", "R-CONSENT-2", "R-CONSENT-3", "R-CONSENT-5")
PLATFORM_RULES = ("R-PLATFORM-1",)

_WITHDRAWAL = UnsubscribeKind.CONSENT_WITHDRAWAL
_PARTNER_OFFERS = Scope.PARTNER_OFFERS
_TELEMARKETING = Scope.TELEMARKETING
_CUSTOM_AUDIENCE = Scope.CUSTOM_AUDIENCE
_LIVE_CALL = ChannelFamily.LIVE_CALL
_AUDIENCE = ChannelFamily.AUDIENCE
_WHATSAPP = Channel.WHATSAPP

Staged = Sequence[tuple[int, ConsentFact]]


def is_withdrawn(consent: ConsentFact, ctx: RequestContext) -> bool:
    """R-CONSENT-7 (contract §4): withdrawn by a withdrawal naming it, or, without a
    consent_id, by a withdrawal of the named entity on one of its channels given after it."""
    for suppression in ctx.state.suppressions:
        if suppression.kind is not _WITHDRAWAL or not counts_for(suppression, ctx):
            continue
        if suppression.consent_id is not None:
            if suppression.consent_id == consent.consent_id:
                return True
        elif (
            suppression.legal_entity == consent.named_legal_entity
            and suppression.occurred_at >= consent.occurred_at
            and not suppression.channels.isdisjoint(consent.channels)
        ):
            return True
    return False


def covers_request(consent: ConsentFact, ctx: RequestContext) -> bool:
    """R-CONSENT-3, R-CONSENT-4 (contract §3 "covers"): channel, content scope, promoted
    categories, named partner; live calls need scope `telemarketing`, audiences scope
    `custom_audience` and the request's platform (R-AUDIENCE-1)."""
    if ctx.channel not in consent.channels or ctx.scope not in consent.scope:
        return False
    content = ctx.request.content
    if consent.product_categories and not consent.product_categories.issuperset(
        content.promo_categories
    ):
        return False
    offer = content.third_party_offer
    if offer is not None and (
        _PARTNER_OFFERS not in consent.scope or offer not in consent.partners_named
    ):
        return False
    if ctx.family is _LIVE_CALL:
        return _TELEMARKETING in consent.scope
    if ctx.family is _AUDIENCE:
        return _CUSTOM_AUDIENCE in consent.scope and ctx.request.platform in consent.platforms
    return True


def consent_stage(consent: ConsentFact, ctx: RequestContext) -> int:
    """The first nearest-miss check of contract §7 step 6 (a) this consent fails."""
    if list_consent_fails(consent, ctx.sender):
        return STAGE_THIRD_PARTY_LIST
    if consent.named_legal_entity != ctx.sender:
        return STAGE_SENDER
    if consent.mechanism not in VALID_MECHANISMS or consent.bundled_with_purchase:
        return STAGE_MECHANISM
    if not consent.given_by_subject:
        return STAGE_SUBJECT
    age = consent.subject_age
    if age is not None and age < ctx.policy.min_consent_age and not consent.parental_consent:
        return STAGE_MINOR
    if not consent.proof_ref or not consent.wording_version:
        return STAGE_PROOF
    if consent.period_end is not None and consent.period_end <= ctx.as_of:
        return STAGE_EXPIRY
    if ctx.state.suppressions and is_withdrawn(consent, ctx):
        return STAGE_WITHDRAWN
    if not covers_request(consent, ctx):
        return STAGE_SCOPE
    return COVERS


def consent_stages(ctx: RequestContext) -> Staged:
    return [(consent_stage(consent, ctx), consent) for consent in ctx.consents]


def consent_basis(staged: Staged) -> Verdict | None:
    """R-CONSENT-1: a covering consent → ALLOW_CONSENT."""
    if not staged:
        return None
    evidence = tuple(consent.event_id for stage, consent in staged if stage == COVERS)
    if evidence:
        return Verdict(_ALLOW_CONSENT, CONSENT_RULES, evidence)
    return None


def consent_miss(staged: Staged) -> Verdict | None:
    """Contract §7 step 6 (a): when any consent exists, the first nearest-miss check that
    leaves none; evidence = the consents that got that far."""
    if not staged:
        return None
    furthest = max(stage for stage, _ in staged)
    if furthest == COVERS:
        return None
    reason, rule_ids = STAGE_VERDICTS[furthest]
    evidence = tuple(consent.event_id for stage, consent in staged if stage == furthest)
    return Verdict(reason, rule_ids, evidence)


def whatsapp_opt_in(ctx: RequestContext) -> ConsentFact | None:
    """R-PLATFORM-1 (contract §7 steps 3 and 5): a valid consent on the number naming the
    sender whose channels include `whatsapp`, any scope."""
    for consent in ctx.consents:
        if _WHATSAPP in consent.channels and consent_stage(consent, ctx) >= STAGE_SCOPE:
            return consent
    return None


PLATFORM_OPT_IN_MISSING = Verdict(Reason.BLOCK_PLATFORM_OPT_IN_MISSING, PLATFORM_RULES)


@cache
def _no_legal_basis(consent_request: bool, company: bool, robocall: bool) -> Verdict:
    rule_ids = ["R-CONSENT-1"]
    if consent_request:
        rule_ids.append("R-CLASS-3")
    if company:
        rule_ids.append("R-B2B-1")
    if robocall:
        rule_ids.append("R-PHONE-5")
    return Verdict(_BLOCK_NO_LEGAL_BASIS, tuple(rule_ids))


def no_legal_basis(ctx: RequestContext) -> Verdict:
    """Contract §7 step 6 (d): R-CONSENT-1, plus R-CLASS-3 for a consent request, R-B2B-1
    for a company and R-PHONE-5 for a robocall."""
    request = ctx.request
    return _no_legal_basis(
        request.content.is_consent_request,
        request.recipient.kind is _LEGAL_ENTITY,
        ctx.channel is _PHONE_AUTOMATED,
    )
