"""`decide(state, request, policy) -> Decision`: contract §7, step by step. Pure.

The first matching step decides. Each rule family lives in `streams.core.rules`; this
module only orders them and turns the winning verdict into a contract §6 decision.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from streams.core.enums import Channel, ChannelFamily, Outcome, Purpose, Reason, ServiceKind
from streams.core.eventtime import to_utc
from streams.core.model import RULEBOOK_VERSION, ContactState, Decision, LegalBasis, SendRequest
from streams.core.policy import Policy
from streams.core.rules.audience import audience_verdict
from streams.core.rules.b2b import b2b_basis
from streams.core.rules.classification import is_service
from streams.core.rules.consent import (
    PLATFORM_OPT_IN_MISSING,
    consent_basis,
    consent_miss,
    consent_stages,
    no_legal_basis,
    whatsapp_opt_in,
)
from streams.core.rules.context import RequestContext, Verdict
from streams.core.rules.form import form_verdict
from streams.core.rules.phone import (
    PHONE_NO_CONSENT,
    b2b_phone_basis,
    phone_relation_basis,
    phone_relation_miss,
    phone_relations,
)
from streams.core.rules.post import post_basis, post_miss, post_relations
from streams.core.rules.relay import is_relay_contact, relay_verdict
from streams.core.rules.service import no_active_relationship, service_verdict
from streams.core.rules.soft_opt_in import (
    messaging_relations,
    not_a_customer_miss,
    relation_miss,
    soft_opt_in_basis,
)
from streams.core.rules.suppression import suppression_verdict
from streams.core.rules.third_party import prospect_source_miss

_ALLOW_CONSENT = Reason.ALLOW_CONSENT
_ALLOW_DONOR_RELATION = Reason.ALLOW_DONOR_RELATION
_ALLOW_SERVICE_MESSAGE = Reason.ALLOW_SERVICE_MESSAGE
_CHARITABLE = Purpose.CHARITABLE
_GDPR_6_1_B = LegalBasis.GDPR_6_1_B
_GDPR_6_1_C = LegalBasis.GDPR_6_1_C
_LIVE_CALL = ChannelFamily.LIVE_CALL
_NONE = LegalBasis.NONE
_TW117_CUSTOMER = LegalBasis.TW117_CUSTOMER
_TW117_TM_CUSTOMER = LegalBasis.TW117_TM_CUSTOMER
_WHATSAPP = Channel.WHATSAPP


def messaging_basis(ctx: RequestContext) -> Verdict:
    """Step 6, messaging (email, sms, whatsapp): consent, soft opt-in, donor relation,
    B2B; nearest miss (a) consents, (b) relations, (c) signups and unpaid orders, (d)."""
    staged_consents = consent_stages(ctx)
    allowed = consent_basis(staged_consents)
    if allowed is not None:
        return allowed
    staged_relations = messaging_relations(ctx)
    charitable = ctx.request.declared_purpose is _CHARITABLE
    return (
        soft_opt_in_basis(staged_relations)
        or b2b_basis(ctx)
        or consent_miss(staged_consents)
        or relation_miss(staged_relations)
        or prospect_source_miss(ctx)
        or not_a_customer_miss(ctx, donations_count=not charitable)
        or no_legal_basis(ctx)
    )


def consent_only_basis(ctx: RequestContext) -> Verdict:
    """Step 6, consent-only channels (automated calls, fax, push, in-app, social DM): a
    relation does not help; nearest miss (a), (c), (d)."""
    staged = consent_stages(ctx)
    return (
        consent_basis(staged)
        or consent_miss(staged)
        or prospect_source_miss(ctx)
        or not_a_customer_miss(ctx, donations_count=False)
        or no_legal_basis(ctx)
    )


def live_call_basis(ctx: RequestContext) -> Verdict:
    """Step 6, live calls: telemarketing consent, B2B opt-out, customer or donor relation;
    nearest miss (a), the relation checks, else BLOCK_PHONE_NO_CONSENT."""
    staged_consents = consent_stages(ctx)
    allowed = consent_basis(staged_consents) or b2b_phone_basis(ctx)
    if allowed is not None:
        return allowed
    staged_relations = phone_relations(ctx)
    return (
        phone_relation_basis(staged_relations)
        or phone_relation_basis(staged_relations)
        or consent_miss(staged_consents)
        or phone_relation_miss(staged_relations)
        or PHONE_NO_CONSENT
    )


def post_channel_basis(ctx: RequestContext) -> Verdict:
    """Step 6, post: consent, customer legitimate interest; nearest miss: the relation's
    failing check, Postfilter, else no legal basis."""
    staged = post_relations(ctx)
    return (
        consent_basis(consent_stages(ctx))
        or post_basis(staged)
        or post_miss(ctx, staged)
        or no_legal_basis(ctx)
    )


def audience_basis(ctx: RequestContext) -> Verdict:
    """Step 6, audiences: R-AUDIENCE only."""
    return audience_verdict(consent_stages(ctx))


BASIS_BY_FAMILY: dict[ChannelFamily, Callable[[RequestContext], Verdict]] = {
    ChannelFamily.MESSAGING: messaging_basis,
    ChannelFamily.CONSENT_ONLY: consent_only_basis,
    ChannelFamily.LIVE_CALL: live_call_basis,
    ChannelFamily.POST: post_channel_basis,
    ChannelFamily.AUDIENCE: audience_basis,
}


def evaluate_marketing(ctx: RequestContext) -> Verdict:
    """Steps 4 to 8 for a message that is (or is tried as) marketing."""
    suppressed = suppression_verdict(ctx)
    if suppressed is not None:
        return suppressed
    if ctx.channel is _WHATSAPP and whatsapp_opt_in(ctx) is None:
        return PLATFORM_OPT_IN_MISSING
    basis = BASIS_BY_FAMILY[ctx.family](ctx)
    if not basis.allowed:
        return basis
    return form_verdict(ctx) or basis


def evaluate(ctx: RequestContext) -> Verdict:
    """Contract §7: relay (1), classify (2), service (3), then marketing (4-8)."""
    service = is_service(ctx.request)
    if ctx.state.relay_entities and is_relay_contact(ctx):
        return relay_verdict(ctx, service)
    if not service:
        return evaluate_marketing(ctx)
    verdict = service_verdict(ctx)
    if verdict is not None:
        return verdict
    marketing = evaluate_marketing(ctx)
    return marketing if marketing.allowed else no_active_relationship(marketing)


_FIXED_BASIS = {
    Reason.ALLOW_RELAY_ORDER_EXECUTION: LegalBasis.MARKETPLACE_TERMS,
    Reason.ALLOW_SOFT_OPT_IN: LegalBasis.TW117_CUSTOMER,
    Reason.ALLOW_PHONE_CUSTOMER_RELATION: LegalBasis.TW117_TM_CUSTOMER,
    Reason.ALLOW_B2B_PHONE_OPT_OUT: LegalBasis.TW117_TM_LEGAL_ENTITY,
    Reason.ALLOW_B2B_PUBLISHED_ADDRESS: LegalBasis.TW117_B2B_PUBLISHED,
    Reason.ALLOW_B2B_NON_EEA: LegalBasis.TW117_B2B_NON_EEA,
    Reason.ALLOW_POST_LEGIT_INTEREST: LegalBasis.GDPR_6_1_F,
}
_CONSENT_BASIS = {
    ChannelFamily.MESSAGING: LegalBasis.TW117_CONSENT,
    ChannelFamily.CONSENT_ONLY: LegalBasis.TW117_CONSENT,
    ChannelFamily.LIVE_CALL: LegalBasis.TW117_TM_CONSENT,
    ChannelFamily.POST: LegalBasis.GDPR_6_1_A,
    ChannelFamily.AUDIENCE: LegalBasis.GDPR_6_1_A,
}
_LEGAL_OBLIGATION_KINDS = frozenset({ServiceKind.RECALL, ServiceKind.LEGAL_NOTICE})


def legal_basis(reason: Reason, family: ChannelFamily, request: SendRequest) -> LegalBasis:
    """Contract §7 "Legal basis per ALLOW reason"; every BLOCK → NONE."""
    fixed = _FIXED_BASIS.get(reason)
    if fixed is not None:
        return fixed
    if reason is _ALLOW_CONSENT:
        return _CONSENT_BASIS[family]
    if reason is _ALLOW_SERVICE_MESSAGE:
        if request.service_kind in _LEGAL_OBLIGATION_KINDS:
            return _GDPR_6_1_C
        return _GDPR_6_1_B
    if reason is _ALLOW_DONOR_RELATION:
        if family is _LIVE_CALL:
            return _TW117_TM_CUSTOMER
        return _TW117_CUSTOMER
    return _NONE


_ALLOW = Outcome.ALLOW
_BLOCK = Outcome.BLOCK
_NO_BASIS = LegalBasis.NONE


def to_decision(request: SendRequest, verdict: Verdict, family: ChannelFamily) -> Decision:
    reason = verdict.reason
    allowed = verdict.allowed
    return Decision(
        request.request_id,
        request.tenant,
        request.legal_entity,
        request.channel,
        _ALLOW if allowed else _BLOCK,
        reason,
        legal_basis(reason, family, request) if allowed else _NO_BASIS,
        verdict.rule_ids,
        verdict.evidence,
        RULEBOOK_VERSION,
        request.occurred_at,
    )


def request_context(
    state: ContactState,
    request: SendRequest,
    policy: Policy,
    as_of: datetime | None = None,
    dispatch_at: datetime | None = None,
) -> RequestContext:
    if as_of is None:
        as_of = to_utc(request.occurred_at)
    if dispatch_at is None:
        same = request.dispatch_at is request.occurred_at
        dispatch_at = as_of if same else to_utc(request.dispatch_at)
    return RequestContext.build(state, request, policy, as_of, dispatch_at)


def decide(state: ContactState, request: SendRequest, policy: Policy) -> Decision:
    """The decision for one send request against the state of its contact point."""
    ctx = request_context(state, request, policy)
    return to_decision(request, evaluate(ctx), ctx.family)
