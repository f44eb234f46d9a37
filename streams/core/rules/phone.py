"""Live telemarketing calls (contract §7 step 6, live calls).

R-PHONE-1 (consent, or a customer/donor relation: number from the sale, informed and
opt-out offered, similar product, within 36 months), R-PHONE-2 (from the policy date
consumers need consent unless the sender's sector keeps the exception), R-PHONE-3
(legal entities: opt-out regime), R-PHONE-6 (donor calls need the same conditions).
"""

from __future__ import annotations

from streams.core.enums import Purpose, Reason, RecipientKind
from streams.core.model import OrderFact
from streams.core.rules.context import RequestContext, Verdict
from streams.core.rules.soft_opt_in import (
    CUSTOMER_ONLY,
    CUSTOMER_OR_DONOR,
    EXPIRED,
    NOT_FROM_SALE,
    NOT_SIMILAR,
    OTHER_ENTITY,
    RelationViews,
    Staged,
    furthest_miss,
    holding,
    promo_is_similar,
    stage_relations,
)

RULE_IDS = ("R-PHONE-1", "R-PHONE-2", "R-PHONE-3", "R-PHONE-6")
REASON_CODES = (
    Reason.ALLOW_PHONE_CUSTOMER_RELATION,
    Reason.ALLOW_DONOR_RELATION,
    Reason.ALLOW_B2B_PHONE_OPT_OUT,
    Reason.BLOCK_PHONE_NO_CONSENT,
    Reason.BLOCK_PHONE_CUSTOMER_EXCEPTION_ENDED,
)

STAGE_VERDICTS: tuple[tuple[Reason, tuple[str, ...]], ...] = (
    OTHER_ENTITY,
    (Reason.BLOCK_PHONE_CUSTOMER_EXCEPTION_ENDED, ("R-PHONE-2",)),
    NOT_FROM_SALE,
    (Reason.BLOCK_NO_OPTOUT_AT_COLLECTION, ("R-PHONE-1", "R-PHONE-6")),
    (EXPIRED[0], ("R-PHONE-1",)),
    (NOT_SIMILAR[0], ("R-PHONE-1", "R-PHONE-6")),
)

_ALLOW_DONOR_RELATION = Reason.ALLOW_DONOR_RELATION
_ALLOW_PHONE_CUSTOMER_RELATION = Reason.ALLOW_PHONE_CUSTOMER_RELATION
_CHARITABLE = Purpose.CHARITABLE
_LEGAL_ENTITY = RecipientKind.LEGAL_ENTITY
PHONE_RELATION_HOLDS = len(STAGE_VERDICTS)

B2B_PHONE_OPT_OUT = Verdict(Reason.ALLOW_B2B_PHONE_OPT_OUT, ("R-PHONE-3",))
PHONE_NO_CONSENT = Verdict(Reason.BLOCK_PHONE_NO_CONSENT, ("R-PHONE-1", "R-PHONE-2"))


def customer_exception_ended(ctx: RequestContext) -> bool:
    """R-PHONE-2: from the policy date, only the policy's sectors keep the exception."""
    policy = ctx.policy
    return (
        ctx.as_of >= policy.phone_consent_required_from
        and ctx.request.sender.sector not in policy.phone_exception_sectors
    )


def phone_relation_stage(order: OrderFact, ctx: RequestContext, views: RelationViews) -> int:
    """R-PHONE-1/-2/-6 checks in the contract's order; number obtained in the sale, opt-out
    offered and informed of calls on the same order's fact."""
    if order.legal_entity != ctx.sender:
        return 0
    if customer_exception_ended(ctx):
        return 1
    if not order.obtained_at_sale:
        return 2
    if not (order.optout_offered and order.informed_of_calls):
        return 3
    relation = views.of_order(order)
    if not relation.within_window:
        return 4
    if not promo_is_similar(ctx, relation):
        return 5
    return PHONE_RELATION_HOLDS


def b2b_phone_basis(ctx: RequestContext) -> Verdict | None:
    """R-PHONE-3: calls to legal entities stay opt-out."""
    if ctx.request.recipient.kind is _LEGAL_ENTITY:
        return B2B_PHONE_OPT_OUT
    return None


def phone_relations(ctx: RequestContext) -> Staged:
    """Customer relations; donor relations only for charitable calls (conservative, as
    on messaging channels)."""
    charitable = ctx.request.declared_purpose is _CHARITABLE
    relations = CUSTOMER_OR_DONOR if charitable else CUSTOMER_ONLY
    return stage_relations(ctx, relations, ctx.policy.phone_relation_months, phone_relation_stage)


def phone_relation_basis(staged: Staged) -> Verdict | None:
    """R-PHONE-1 (b) → ALLOW_PHONE_CUSTOMER_RELATION, (c)/R-PHONE-6 → ALLOW_DONOR_RELATION."""
    customer, donor = holding(staged, PHONE_RELATION_HOLDS)
    if customer:
        return Verdict(_ALLOW_PHONE_CUSTOMER_RELATION, ("R-PHONE-1",), customer)
    if donor:
        return Verdict(_ALLOW_DONOR_RELATION, ("R-PHONE-1", "R-PHONE-6"), donor)
    return None


def phone_relation_miss(staged: Staged) -> Verdict | None:
    """Contract §7 step 6, live calls: the relation nearest miss."""
    return furthest_miss(staged, STAGE_VERDICTS)
