"""Customer exception ("soft opt-in") on messaging channels (contract §2, §7 step 6).

R-SOFTOPTIN-1 (cumulative conditions), -2 (no paid sale, no customer: abandoned carts,
info requests, free accounts, cancelled or refunded orders), -3 (similar products only,
policy similarity map), -4 (opt-out validly offered at collection), -5 (relationship
window), -6 (same legal entity), -7 (address obtained in the sale), -8 (business
customers alike), -9 (donors, for charitable messages only).

The relation helpers here (window, similarity, nearest-miss walk) are shared with the
phone and post families. As for consents, a relation record's *stage* is the first
nearest-miss check it fails; the miss is the check at the largest stage reached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from msgspec import Struct

from streams.core.enums import Purpose, Reason
from streams.core.eventtime import add_months
from streams.core.model import OrderFact, Relation
from streams.core.rules.context import RequestContext, Verdict
from streams.core.rules.third_party import CONTENT_RULES

RULE_IDS = (
    "R-SOFTOPTIN-1",
    "R-SOFTOPTIN-2",
    "R-SOFTOPTIN-3",
    "R-SOFTOPTIN-4",
    "R-SOFTOPTIN-5",
    "R-SOFTOPTIN-6",
    "R-SOFTOPTIN-7",
    "R-SOFTOPTIN-8",
    "R-SOFTOPTIN-9",
)
REASON_CODES = (
    Reason.ALLOW_SOFT_OPT_IN,
    Reason.ALLOW_DONOR_RELATION,
    Reason.BLOCK_NOT_A_CUSTOMER,
    Reason.BLOCK_OTHER_LEGAL_ENTITY,
    Reason.BLOCK_CONTACT_NOT_FROM_SALE,
    Reason.BLOCK_NO_OPTOUT_AT_COLLECTION,
    Reason.BLOCK_RELATION_EXPIRED,
    Reason.BLOCK_NOT_SIMILAR,
)

OTHER_ENTITY = (Reason.BLOCK_OTHER_LEGAL_ENTITY, ("R-SOFTOPTIN-6",))
NOT_FROM_SALE = (Reason.BLOCK_CONTACT_NOT_FROM_SALE, ("R-SOFTOPTIN-7",))
NO_OPTOUT = (Reason.BLOCK_NO_OPTOUT_AT_COLLECTION, ("R-SOFTOPTIN-4",))
EXPIRED = (Reason.BLOCK_RELATION_EXPIRED, ("R-SOFTOPTIN-5",))
THIRD_PARTY_CONTENT = (Reason.BLOCK_THIRD_PARTY_CONTENT, CONTENT_RULES)
NOT_SIMILAR = (Reason.BLOCK_NOT_SIMILAR, ("R-SOFTOPTIN-3",))

STAGE_VERDICTS: tuple[tuple[Reason, tuple[str, ...]], ...] = (
    OTHER_ENTITY,
    NOT_FROM_SALE,
    NO_OPTOUT,
    EXPIRED,
    THIRD_PARTY_CONTENT,
    NOT_SIMILAR,
)

_ALLOW_DONOR_RELATION = Reason.ALLOW_DONOR_RELATION
_ALLOW_SOFT_OPT_IN = Reason.ALLOW_SOFT_OPT_IN
_BLOCK_NOT_A_CUSTOMER = Reason.BLOCK_NOT_A_CUSTOMER
_CHARITABLE = Purpose.CHARITABLE
_CUSTOMER = Relation.CUSTOMER
_DONOR = Relation.DONOR
SOFT_OPT_IN_HOLDS = len(STAGE_VERDICTS)
SOFT_OPT_IN_RULES = ("R-SOFTOPTIN-1", "R-SOFTOPTIN-3", "R-SOFTOPTIN-4", "R-SOFTOPTIN-7")
DONOR_RULES = ("R-SOFTOPTIN-9", "R-SOFTOPTIN-1")
NOT_A_CUSTOMER_RULES = ("R-SOFTOPTIN-2",)

CUSTOMER_ONLY = (Relation.CUSTOMER,)
CUSTOMER_OR_DONOR = (Relation.CUSTOMER, Relation.DONOR)


class RelationView(Struct, frozen=True, gc=False):
    """The sender's relation of one kind with this contact, as of the request.

    `within_window`: the relation's end (latest over its paid orders; a current
    subscription counts as now) is within N months. `bought`: categories (for donors:
    causes) of the paid orders whose own end is within the window (R-SOFTOPTIN-3).
    """

    within_window: bool
    bought: frozenset[str]


def relation_view(ctx: RequestContext, relation: Relation, months: int) -> RelationView:
    """R-SOFTOPTIN-5 window and R-SOFTOPTIN-3 categories for the sender's relation."""
    within = False
    bought: set[str] = set()
    for order in ctx.orders:
        if order.relation is not relation or order.legal_entity != ctx.sender:
            continue
        end = order.relation_end
        if end is None or ctx.as_of < add_months(end, months):
            within = True
            bought.update(order.product_categories)
    return RelationView(within, frozenset(bought))


def promo_is_similar(ctx: RequestContext, view: RelationView) -> bool:
    """R-SOFTOPTIN-3: promoted categories given, each similar to one bought in the window."""
    promo = ctx.request.content.promo_categories
    if not promo:
        return False
    bought = view.bought
    for category in promo:
        if category not in bought and not ctx.policy.is_similar(category, bought):
            return False
    return True


class RelationViews(Struct, gc=False):
    """The sender's relation views, computed once per relation kind and only on demand
    (a Struct: built in C, once per request with orders)."""

    ctx: RequestContext
    months: int
    views: dict[Relation, RelationView] = {}

    def of(self, relation: Relation) -> RelationView:
        view = self.views.get(relation)
        if view is None:
            view = self.views[relation] = relation_view(self.ctx, relation, self.months)
        return view

    def of_order(self, order: OrderFact) -> RelationView:
        if order.relation is None:
            raise ValueError(f"order {order.order_id} gives no relation")
        return self.of(order.relation)


StageOf = Callable[[OrderFact, RequestContext, RelationViews], int]
Staged = Sequence[tuple[int, OrderFact]]


def stage_relations(
    ctx: RequestContext, relations: tuple[Relation, ...], months: int, stage_of: StageOf
) -> Staged:
    """Stage every paid relation record (any entity) of the given kinds."""
    if not ctx.orders:
        return ()
    views = RelationViews(ctx, months)
    return [
        (stage_of(order, ctx, views), order)
        for order in ctx.orders
        if order.relation is not None and order.relation in relations
    ]


def furthest_miss(
    staged: Staged, verdicts: Sequence[tuple[Reason, tuple[str, ...]]]
) -> Verdict | None:
    """The nearest-miss check that leaves no record (contract §7 step 6: the list walked as
    a filter); None when there is no record or some record passes every check."""
    if not staged:
        return None
    furthest = max(stage for stage, _ in staged)
    if furthest >= len(verdicts):
        return None
    reason, rule_ids = verdicts[furthest]
    evidence = tuple(e for stage, o in staged if stage == furthest for e in o.evidence)
    return Verdict(reason, rule_ids, evidence)


def holding(staged: Staged, complete: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Evidence of the customer and of the donor records that pass every check."""
    customer: tuple[str, ...] = ()
    donor: tuple[str, ...] = ()
    for stage, order in staged:
        if stage == complete:
            if order.relation is _CUSTOMER:
                customer += order.evidence
            else:
                donor += order.evidence
    return customer, donor


def soft_opt_in_stage(order: OrderFact, ctx: RequestContext, views: RelationViews) -> int:
    """R-SOFTOPTIN-6, -7, -4, -5, R-THIRDPARTY-2, R-SOFTOPTIN-3, in the contract's order;
    obtained-in-sale and opt-out must hold on the same order's fact."""
    if order.legal_entity != ctx.sender:
        return 0
    if not order.obtained_at_sale:
        return 1
    if not order.optout_valid:
        return 2
    relation = views.of_order(order)
    if not relation.within_window:
        return 3
    if ctx.request.content.third_party_offer is not None:
        return 4
    if not promo_is_similar(ctx, relation):
        return 5
    return SOFT_OPT_IN_HOLDS


def messaging_relations(ctx: RequestContext) -> Staged:
    """Customer relations, and donor relations for charitable messages (R-SOFTOPTIN-9)."""
    charitable = ctx.request.declared_purpose is _CHARITABLE
    relations = CUSTOMER_OR_DONOR if charitable else CUSTOMER_ONLY
    return stage_relations(ctx, relations, ctx.policy.soft_opt_in_months, soft_opt_in_stage)


def soft_opt_in_basis(staged: Staged) -> Verdict | None:
    """R-SOFTOPTIN-1 → ALLOW_SOFT_OPT_IN; else R-SOFTOPTIN-9 → ALLOW_DONOR_RELATION."""
    if not staged:
        return None
    customer, donor = holding(staged, SOFT_OPT_IN_HOLDS)
    if customer:
        return Verdict(_ALLOW_SOFT_OPT_IN, SOFT_OPT_IN_RULES, customer)
    if donor:
        return Verdict(_ALLOW_DONOR_RELATION, DONOR_RULES, donor)
    return None


def relation_miss(staged: Staged) -> Verdict | None:
    """Contract §7 step 6 (b) for messaging."""
    return furthest_miss(staged, STAGE_VERDICTS)


def not_a_customer_miss(ctx: RequestContext, *, donations_count: bool) -> Verdict | None:
    """Contract §7 step 6 (c), last: any signup, or an unpaid, cancelled, refunded,
    abandoned or zero-amount order (R-SOFTOPTIN-2, OQ-2..4); on messaging channels a
    donation behind a non-charitable message too (R-SOFTOPTIN-9)."""
    if not ctx.touchpoints and not ctx.orders:
        return None
    evidence = [t.event_id for t in ctx.touchpoints]
    for order in ctx.orders:
        if order.relation is None or (donations_count and order.relation is _DONOR):
            evidence.append(order.event_id)
    if not evidence:
        return None
    return Verdict(_BLOCK_NOT_A_CUSTOMER, NOT_A_CUSTOMER_RULES, tuple(evidence))
