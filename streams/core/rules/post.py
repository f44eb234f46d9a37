"""Addressed postal marketing (contract §7 step 6, post).

R-POST-1: outside Tw 11.7; customers on legitimate interest when informed with an opt-out
at collection (R-OBJECT-6), others need consent; Postfilter registration is honoured
(OQ-10).
"""

from __future__ import annotations

from streams.core.enums import Reason
from streams.core.model import OrderFact, Relation
from streams.core.rules.context import RequestContext, Verdict
from streams.core.rules.soft_opt_in import (
    CUSTOMER_ONLY,
    EXPIRED,
    NO_OPTOUT,
    NOT_FROM_SALE,
    OTHER_ENTITY,
    RelationViews,
    Staged,
    furthest_miss,
    holding,
    stage_relations,
)

RULE_IDS = ("R-POST-1", "R-OBJECT-6")
REASON_CODES = (Reason.ALLOW_POST_LEGIT_INTEREST, Reason.BLOCK_POST_POSTFILTER)

STAGE_VERDICTS: tuple[tuple[Reason, tuple[str, ...]], ...] = (
    (OTHER_ENTITY[0], ("R-POST-1", "R-SOFTOPTIN-6")),
    (NOT_FROM_SALE[0], ("R-POST-1", "R-SOFTOPTIN-7")),
    (NO_OPTOUT[0], ("R-POST-1", "R-OBJECT-6")),
    (EXPIRED[0], ("R-POST-1", "R-SOFTOPTIN-5")),
)

_ALLOW_POST_LEGIT_INTEREST = Reason.ALLOW_POST_LEGIT_INTEREST
_CUSTOMER = Relation.CUSTOMER
POST_RELATION_HOLDS = len(STAGE_VERDICTS)
POSTFILTER = Verdict(Reason.BLOCK_POST_POSTFILTER, ("R-POST-1",))


def post_relation_stage(order: OrderFact, ctx: RequestContext, views: RelationViews) -> int:
    """R-POST-1: customer of the sender, address obtained in the sale, opt-out validly
    offered, within the soft-opt-in window."""
    if order.legal_entity != ctx.sender:
        return 0
    if not order.obtained_at_sale:
        return 1
    if not order.optout_valid:
        return 2
    if not views.of(_CUSTOMER).within_window:
        return 3
    return POST_RELATION_HOLDS


def post_relations(ctx: RequestContext) -> Staged:
    return stage_relations(ctx, CUSTOMER_ONLY, ctx.policy.soft_opt_in_months, post_relation_stage)


def post_basis(staged: Staged) -> Verdict | None:
    """R-POST-1 → ALLOW_POST_LEGIT_INTEREST."""
    evidence, _ = holding(staged, POST_RELATION_HOLDS)
    if evidence:
        return Verdict(_ALLOW_POST_LEGIT_INTEREST, ("R-POST-1", "R-OBJECT-6"), evidence)
    return None


def post_miss(ctx: RequestContext, staged: Staged) -> Verdict | None:
    """R-POST-1 nearest miss: a relation's first failing check, else Postfilter."""
    miss = furthest_miss(staged, STAGE_VERDICTS)
    if miss is not None:
        return miss
    if ctx.request.recipient.postfilter_registered:
        return POSTFILTER
    return None
