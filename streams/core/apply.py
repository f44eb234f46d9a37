"""Folds: `apply(state, event, contact) -> state`, one function per event type.

Pure; idempotency on `event_id` is `engine.step`'s (it knows the horizon). `contact` is
the normalised contact point whose state this is (an order or an unsubscribe fans out to
several); it defaults to the event's first contact point. Send requests change no facts:
deciding them is `engine.step`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from msgspec.structs import replace

from streams.core.enums import (
    AddressType,
    OptoutMethod,
    OrderKind,
    OrderStatus,
    SignupKind,
    UnsubscribeKind,
    UnsubscribeSource,
)
from streams.core.eventtime import to_utc
from streams.core.keys import normalise
from streams.core.model import (
    ConsentFact,
    ContactFact,
    ContactPoint,
    ContactState,
    Event,
    Order,
    OrderFact,
    Relation,
    SendRequest,
    Signup,
    SuppressionFact,
    TouchpointFact,
    Unsubscribe,
)
from streams.core.rules.suppression import suppression_scope

VALID_OPTOUT_METHODS = frozenset(
    {
        OptoutMethod.SEPARATE_OPTOUT_BOX,
        OptoutMethod.PRE_TICKED_BOX_REMOVABLE,
        OptoutMethod.LINK,
    }
)
"""Contract §2 "validly offered" (R-SOFTOPTIN-4); `unticked_optin_box` left unticked is an
opt-out exercised instead, `none` and `terms_or_privacy_only` are no offer."""

_CUSTOMER_KINDS = frozenset({OrderKind.PURCHASE, OrderKind.SUBSCRIPTION})

_CHECKOUT_OPTOUT = UnsubscribeSource.CHECKOUT_OPTOUT
_CONSENT = SignupKind.CONSENT
_CUSTOMER = Relation.CUSTOMER
_DONOR = Relation.DONOR
_ERASURE_COMPLETED = UnsubscribeKind.ERASURE_COMPLETED
_MARKETPLACE_RELAY = AddressType.MARKETPLACE_RELAY
_NO_OPTOUT = OptoutMethod.NONE
_PAID = OrderStatus.PAID
_SUBSCRIPTION = OrderKind.SUBSCRIPTION
_UNSUBSCRIBE = UnsubscribeKind.UNSUBSCRIBE
_UNTICKED_OPTIN_BOX = OptoutMethod.UNTICKED_OPTIN_BOX


def _with(
    state: ContactState,
    *,
    orders: tuple[OrderFact, ...] | None = None,
    consents: tuple[ConsentFact, ...] | None = None,
    suppressions: tuple[SuppressionFact, ...] | None = None,
    touchpoints: tuple[TouchpointFact, ...] | None = None,
    relay_kept: frozenset[str] | None = None,
    fact_at: datetime | None = None,
) -> ContactState:
    """A copy with some fact collections replaced; `fact_at` is the time of an order,
    consent or touchpoint added (it raises `facts_until`)."""
    orders = state.orders if orders is None else orders
    facts_until = state.facts_until
    if fact_at is not None and (facts_until is None or fact_at > facts_until):
        facts_until = fact_at
    relay_kept = state.relay_kept if relay_kept is None else relay_kept
    relay_entities = state.relay_entities
    if orders is not state.orders or relay_kept is not state.relay_kept:
        relay = [o.legal_entity for o in orders if o.address_type is _MARKETPLACE_RELAY]
        relay_entities = relay_kept.union(relay) if relay else relay_kept
    return replace(
        state,
        orders=orders,
        consents=state.consents if consents is None else consents,
        suppressions=state.suppressions if suppressions is None else suppressions,
        touchpoints=state.touchpoints if touchpoints is None else touchpoints,
        relay_entities=relay_entities,
        relay_kept=relay_kept,
        facts_until=facts_until,
    )


def _merged_fact(facts: Sequence[ContactFact]) -> ContactFact:
    """One fact per contact point; if an order lists the same point twice, combine them
    conservatively (every positive fact must hold on all, an opt-out on any)."""
    if len(facts) == 1:
        return facts[0]
    return ContactFact(
        contact=facts[0].contact,
        obtained_at_sale=all(f.obtained_at_sale for f in facts),
        optout_offered=all(f.optout_offered for f in facts),
        optout_method=facts[0].optout_method
        if all(f.optout_method is facts[0].optout_method for f in facts)
        else _NO_OPTOUT,
        optout_exercised=any(
            f.optout_exercised or f.optout_method is _UNTICKED_OPTIN_BOX for f in facts
        ),
        informed_of_calls=all(f.informed_of_calls for f in facts),
    )


def forget_order(state: ContactState, order: Order) -> ContactState:
    """The order was replaced by a version that no longer lists this contact (contract §2:
    the later event replaces the record as a whole)."""
    orders = tuple(o for o in state.orders if o.order_id != order.order_id)
    return _with(state, orders=orders)


def apply_order(state: ContactState, order: Order, contact: ContactPoint) -> ContactState:
    """Contract §2: the record of `order_id` is replaced as a whole, except its first paid
    time; the relation (customer/donor) and its end are derived here once. An opt-out used
    at checkout becomes a suppression of every channel of the contact for the order's
    entity (R-SOFTOPTIN-4), which later order versions do not undo (R-OBJECT-2)."""
    facts = [f for f in order.contacts if normalise(f.contact) == contact]
    if not facts:
        return forget_order(state, order)
    fact = _merged_fact(facts)
    occurred_at = to_utc(order.occurred_at)
    previous = next((o for o in state.orders if o.order_id == order.order_id), None)
    first_paid_at = None if previous is None else previous.first_paid_at
    paid_event_id = None if previous is None else previous.paid_event_id
    if order.status is _PAID and (first_paid_at is None or occurred_at < first_paid_at):
        first_paid_at, paid_event_id = occurred_at, order.event_id
    contract_end_at = None if order.contract_end_at is None else to_utc(order.contract_end_at)

    relation: Relation | None = None
    relation_end = None
    if order.status is _PAID and order.paid_amount_cents > 0:
        relation = _CUSTOMER if order.kind in _CUSTOMER_KINDS else _DONOR
        if not (order.kind is _SUBSCRIPTION and contract_end_at is None):
            assert first_paid_at is not None
            relation_end = max(first_paid_at, contract_end_at or first_paid_at)

    record = OrderFact(
        order_id=order.order_id,
        legal_entity=order.legal_entity,
        event_id=order.event_id,
        occurred_at=occurred_at,
        kind=order.kind,
        status=order.status,
        paid_amount_cents=order.paid_amount_cents,
        product_categories=frozenset(order.product_categories),
        contract_end_at=contract_end_at,
        first_paid_at=first_paid_at,
        paid_event_id=paid_event_id,
        recipient_kind=order.recipient_kind,
        address_type=order.address_type,
        sold_by_phone=order.sold_by_phone,
        confirmed_in_writing=order.confirmed_in_writing,
        obtained_at_sale=fact.obtained_at_sale,
        optout_offered=fact.optout_offered,
        optout_method=fact.optout_method,
        optout_exercised=fact.optout_exercised,
        informed_of_calls=fact.informed_of_calls,
        relation=relation,
        relation_end=relation_end,
        optout_valid=fact.optout_offered and fact.optout_method in VALID_OPTOUT_METHODS,
    )
    orders = (*(o for o in state.orders if o.order_id != order.order_id), record)

    suppressions = state.suppressions
    unticked = fact.optout_method is _UNTICKED_OPTIN_BOX
    if fact.optout_exercised or unticked:
        suppressions += (
            SuppressionFact(
                event_id=order.event_id,
                legal_entity=order.legal_entity,
                kind=_UNSUBSCRIBE,
                source=_CHECKOUT_OPTOUT,
                channels=suppression_scope(
                    _UNSUBSCRIBE,
                    _CHECKOUT_OPTOUT,
                    None,
                    contact.type,
                ),
                occurred_at=occurred_at,
                received_at=occurred_at,
                consent_id=None,
                lifted_by_same_instant=unticked and not fact.optout_exercised,
            ),
        )
    return _with(state, orders=orders, suppressions=suppressions, fact_at=occurred_at)


def apply_signup(state: ContactState, signup: Signup, contact: ContactPoint) -> ContactState:
    """Contract §3: a consent is kept with its validity facts (checked when a request is
    decided, against the request's time); other signups are touchpoints."""
    occurred_at = to_utc(signup.occurred_at)
    consent = signup.consent
    if signup.kind is not _CONSENT or consent is None:
        touchpoint = TouchpointFact(
            event_id=signup.event_id,
            legal_entity=signup.legal_entity,
            kind=signup.kind,
            occurred_at=occurred_at,
            recipient_kind=signup.recipient_kind,
        )
        return _with(
            state,
            touchpoints=(*state.touchpoints, touchpoint),
            fact_at=occurred_at,
        )
    fact = ConsentFact(
        consent_id=consent.consent_id,
        event_id=signup.event_id,
        legal_entity=signup.legal_entity,
        occurred_at=occurred_at,
        named_legal_entity=consent.named_legal_entity,
        channels=frozenset(consent.channels),
        scope=frozenset(consent.scope),
        product_categories=frozenset(consent.product_categories),
        partners_named=frozenset(consent.partners_named),
        platforms=frozenset(consent.platforms),
        mechanism=consent.mechanism,
        bundled_with_purchase=consent.bundled_with_purchase,
        given_by_subject=consent.given_by_subject,
        parental_consent=consent.parental_consent,
        subject_age=signup.subject_age,
        source=consent.source,
        wording_version=consent.wording_version,
        proof_ref=consent.proof_ref,
        period_end=None if consent.period_end is None else to_utc(consent.period_end),
        recipient_kind=signup.recipient_kind,
    )
    return _with(state, consents=(*state.consents, fact), fact_at=occurred_at)


def apply_unsubscribe(
    state: ContactState, unsubscribe: Unsubscribe, contact: ContactPoint
) -> ContactState:
    """Contract §4: a suppression bound to the receiving entity, its channel scope resolved
    for this contact's type (R-OBJECT-1). `erasure_completed` deletes every entity's facts
    on this contact and keeps the suppression records and the relay flag (R-DSR-2)."""
    occurred_at = to_utc(unsubscribe.occurred_at)
    fact = SuppressionFact(
        event_id=unsubscribe.event_id,
        legal_entity=unsubscribe.legal_entity,
        kind=unsubscribe.kind,
        source=unsubscribe.source,
        channels=suppression_scope(
            unsubscribe.kind, unsubscribe.source, unsubscribe.channels, contact.type
        ),
        occurred_at=occurred_at,
        received_at=to_utc(unsubscribe.received_at),
        consent_id=unsubscribe.consent_id,
    )
    suppressions = (*state.suppressions, fact)
    if unsubscribe.kind is not _ERASURE_COMPLETED:
        return _with(state, suppressions=suppressions)
    return _with(
        state,
        orders=(),
        consents=(),
        touchpoints=(),
        suppressions=suppressions,
        relay_kept=state.relay_entities,
    )


def apply(state: ContactState, event: Event, contact: ContactPoint | None = None) -> ContactState:
    """Fold one event into the state of `contact` (default: the event's first contact)."""
    if isinstance(event, SendRequest):
        return state
    if isinstance(event, Order):
        point = contact if contact is not None else normalise(event.contacts[0].contact)
        return apply_order(state, event, point)
    point = contact if contact is not None else normalise(event.contact)
    if isinstance(event, Signup):
        return apply_signup(state, event, point)
    return apply_unsubscribe(state, event, point)
