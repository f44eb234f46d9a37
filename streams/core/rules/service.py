"""Service messages (contract §7 step 3).

R-SERVICE-1 (allowed without consent, also to suppressed contacts), R-SERVICE-3 (a
broadcast needs a live relationship, else it must stand as marketing), R-OBJECT-4
(objections never block service), R-PHONE-7 (a phone-sold contract needs written
confirmation before welcome/invoice mails), R-PLATFORM-1 (WhatsApp opt-in, also for
service).
"""

from __future__ import annotations

from streams.core.enums import Channel, OrderKind, Reason, ServiceKind, SignupKind
from streams.core.eventtime import add_days
from streams.core.rules.consent import PLATFORM_OPT_IN_MISSING, whatsapp_opt_in
from streams.core.rules.context import RequestContext, Verdict

RULE_IDS = ("R-SERVICE-1", "R-SERVICE-3", "R-OBJECT-4", "R-PHONE-7", "R-PLATFORM-1")
REASON_CODES = (
    Reason.ALLOW_SERVICE_MESSAGE,
    Reason.BLOCK_SERVICE_NO_ACTIVE_RELATIONSHIP,
    Reason.BLOCK_CONTRACT_NEEDS_WRITTEN_CONFIRMATION,
    Reason.BLOCK_PLATFORM_OPT_IN_MISSING,
)

_ALLOW_SERVICE_MESSAGE = Reason.ALLOW_SERVICE_MESSAGE
_BLOCK_CONTRACT_NEEDS_WRITTEN_CONFIRMATION = Reason.BLOCK_CONTRACT_NEEDS_WRITTEN_CONFIRMATION
_BLOCK_SERVICE_NO_ACTIVE_RELATIONSHIP = Reason.BLOCK_SERVICE_NO_ACTIVE_RELATIONSHIP
_WHATSAPP = Channel.WHATSAPP

SERVICE_RULES = ("R-SERVICE-1", "R-OBJECT-4")
BROADCAST_RULES = ("R-SERVICE-1", "R-SERVICE-3", "R-OBJECT-4")
NO_RELATIONSHIP_RULES = ("R-SERVICE-3",)
CONFIRMATION_RULES = ("R-PHONE-7",)
CONFIRMATION_KINDS = frozenset({ServiceKind.CONTRACT_WELCOME, ServiceKind.INVOICE})

_BROADCAST = ServiceKind.BROADCAST
_SUBSCRIPTION = OrderKind.SUBSCRIPTION
_ACCOUNT = SignupKind.ACCOUNT_CREATED


def active_relationship(ctx: RequestContext) -> tuple[str, ...] | None:
    """R-SERVICE-3 (contract §7 step 3): an account of the sender, a current subscription
    with the sender, or a paid order with the sender in the last N days (policy). Returns
    the evidence, None when there is no such relationship."""
    sender = ctx.sender
    for touchpoint in ctx.touchpoints:
        if touchpoint.kind is _ACCOUNT and touchpoint.legal_entity == sender:
            return (touchpoint.event_id,)
    days = ctx.policy.broadcast_active_days
    for order in ctx.orders:
        if order.legal_entity != sender or order.relation is None:
            continue
        if order.kind is _SUBSCRIPTION and (
            order.contract_end_at is None or order.contract_end_at > ctx.as_of
        ):
            return order.evidence
        if order.first_paid_at is not None and ctx.as_of < add_days(order.first_paid_at, days):
            return order.evidence
    return None


def _related_order_evidence(ctx: RequestContext) -> tuple[str, ...]:
    order_id = ctx.request.relates_to_order_id
    if order_id is None:
        return ()
    return tuple(o.event_id for o in ctx.state.orders if o.order_id == order_id)


def service_verdict(ctx: RequestContext) -> Verdict | None:
    """Contract §7 step 3. None means: a broadcast without an active relationship, to be
    evaluated from step 4 as marketing (R-SERVICE-3)."""
    request = ctx.request
    if (
        request.channel is _WHATSAPP
        and not request.requested_by_recipient
        and whatsapp_opt_in(ctx) is None
    ):
        return PLATFORM_OPT_IN_MISSING
    kind = request.service_kind
    if kind in CONFIRMATION_KINDS and request.relates_to_order_id is not None:
        for order in ctx.state.orders:
            if (
                order.order_id == request.relates_to_order_id
                and order.sold_by_phone
                and not order.confirmed_in_writing
            ):
                return Verdict(
                    _BLOCK_CONTRACT_NEEDS_WRITTEN_CONFIRMATION,
                    CONFIRMATION_RULES,
                    (order.event_id,),
                )
    if kind is _BROADCAST:
        evidence = active_relationship(ctx)
        if evidence is None:
            return None
        return Verdict(_ALLOW_SERVICE_MESSAGE, BROADCAST_RULES, evidence)
    return Verdict(_ALLOW_SERVICE_MESSAGE, SERVICE_RULES, _related_order_evidence(ctx))


def no_active_relationship(marketing: Verdict) -> Verdict:
    """R-SERVICE-3: a broadcast without relationship nor marketing basis."""
    return Verdict(_BLOCK_SERVICE_NO_ACTIVE_RELATIONSHIP, NO_RELATIONSHIP_RULES, marketing.evidence)
