"""Marketplace relay addresses (contract §7 step 1): order execution only.

R-RELAY-1 (only messages needed for the order), R-RELAY-2 (review requests only inside
the invoice mail, never incentivised), R-RELAY-3 (no re-use on any channel, audiences
included).
"""

from __future__ import annotations

from streams.core.enums import AddressType, ConsentSource, Reason, ServiceKind
from streams.core.rules.consent import STAGE_SCOPE, consent_stage
from streams.core.rules.context import RequestContext, Verdict

RULE_IDS = ("R-RELAY-1", "R-RELAY-2", "R-RELAY-3")
REASON_CODES = (
    Reason.ALLOW_RELAY_ORDER_EXECUTION,
    Reason.BLOCK_RELAY_ADDRESS_NON_ORDER,
    Reason.BLOCK_RELAY_REVIEW_REQUEST_SEPARATE,
)

ORDER_EXECUTION_KINDS = frozenset(
    {
        ServiceKind.ORDER_CONFIRMATION,
        ServiceKind.PAYMENT_CONFIRMATION,
        ServiceKind.DELIVERY_APPOINTMENT,
        ServiceKind.DELIVERY_PROBLEM,
        ServiceKind.INVOICE,
        ServiceKind.RETURN_OR_WARRANTY,
        ServiceKind.CUSTOMER_QUESTION_REPLY,
        ServiceKind.RECALL,
        ServiceKind.LEGAL_NOTICE,
    }
)

_ALLOW_RELAY_ORDER_EXECUTION = Reason.ALLOW_RELAY_ORDER_EXECUTION
_BLOCK_RELAY_ADDRESS_NON_ORDER = Reason.BLOCK_RELAY_ADDRESS_NON_ORDER
_BLOCK_RELAY_REVIEW_REQUEST_SEPARATE = Reason.BLOCK_RELAY_REVIEW_REQUEST_SEPARATE
_RELAY = AddressType.MARKETPLACE_RELAY
_DIRECT = AddressType.DIRECT
_OWN_FORM = ConsentSource.OWN_FORM
_INVOICE = ServiceKind.INVOICE
_SHIPPING_UPDATE = ServiceKind.SHIPPING_UPDATE


def is_relay_contact(ctx: RequestContext) -> bool:
    """Contract §2 (R-RELAY-3): a relay order of the sender lists the contact, no direct
    order of the sender does, and no valid own-form consent of the subject names the sender
    for it. The flag survives erasure (`relay_kept`)."""
    sender = ctx.sender
    if sender not in ctx.state.relay_entities:
        return False
    for order in ctx.orders:
        if order.legal_entity == sender and order.address_type is _DIRECT:
            return False
    for consent in ctx.consents:
        if consent.source is _OWN_FORM and consent_stage(consent, ctx) >= STAGE_SCOPE:
            return False
    return True


def _relay_evidence(ctx: RequestContext) -> tuple[str, ...]:
    return tuple(
        o.event_id
        for o in ctx.state.orders
        if o.legal_entity == ctx.sender and o.address_type is _RELAY
    )


def relay_verdict(ctx: RequestContext, is_service: bool) -> Verdict:
    """R-RELAY-1, R-RELAY-2: review request outside the invoice or incentivised → blocked;
    order-execution service kinds (and a shipping update the buyer asked for) → allowed;
    anything else, on any channel → blocked."""
    request = ctx.request
    content = request.content
    evidence = _relay_evidence(ctx)
    if content.is_review_request and (
        request.service_kind is not _INVOICE or content.review_incentive
    ):
        return Verdict(_BLOCK_RELAY_REVIEW_REQUEST_SEPARATE, ("R-RELAY-2",), evidence)
    if is_service and (
        request.service_kind in ORDER_EXECUTION_KINDS
        or (request.service_kind is _SHIPPING_UPDATE and request.requested_by_recipient)
    ):
        return Verdict(_ALLOW_RELAY_ORDER_EXECUTION, ("R-RELAY-1", "R-RELAY-2"), evidence)
    return Verdict(_BLOCK_RELAY_ADDRESS_NON_ORDER, ("R-RELAY-1", "R-RELAY-3"), evidence)
