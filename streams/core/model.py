"""Typed, frozen model of the contract: the four input events, the decision, the policy-free
per-contact state, as msgspec Structs (C-speed construction, comparison and encoding).

State types and the decision encode as arrays (`array_like`): the stored state
(`streams.gate.state_codec`) is msgpack of them without field names; within one state
format, fields may only be appended, with defaults.

Events keep their timestamps as written (aware, original offset) so that they round-trip;
state facts keep UTC instants. State never holds a raw contact value (non-negotiable 5):
it lives under a keyed hash of the contact point.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar

from msgspec import Meta, Struct, field

from streams.core.enums import (
    AddressType,
    Channel,
    ChannelFamily,
    ConsentSource,
    ContactType,
    EventType,
    LegalBasis,
    Mechanism,
    OptoutMethod,
    OrderKind,
    OrderStatus,
    Outcome,
    Purpose,
    Reason,
    RecipientKind,
    Scope,
    Sector,
    ServiceKind,
    SignupKind,
    UnsubscribeKind,
    UnsubscribeSource,
)

__all__ = [
    "RULEBOOK_VERSION",
    "AddressType",
    "Channel",
    "ChannelFamily",
    "ConsentFact",
    "ConsentSource",
    "ContactFact",
    "ContactPoint",
    "ContactState",
    "ContactType",
    "Content",
    "Decision",
    "Event",
    "EventType",
    "Instant",
    "KeptDecision",
    "LegalBasis",
    "Mechanism",
    "NonEmpty",
    "OpenApproval",
    "OptoutMethod",
    "Order",
    "OrderFact",
    "OrderKind",
    "OrderStatus",
    "Outcome",
    "Purpose",
    "Reason",
    "Recipient",
    "RecipientKind",
    "Relation",
    "Scope",
    "Sector",
    "SeenEvent",
    "SendRequest",
    "Sender",
    "ServiceKind",
    "Signup",
    "SignupConsent",
    "SignupKind",
    "SuppressionFact",
    "TouchpointFact",
    "Unsubscribe",
    "UnsubscribeKind",
    "UnsubscribeSource",
    "keep",
]

RULEBOOK_VERSION = "contract-1.4/rules-2"
"""Stamped on every decision: contract v1.4 with revision 2 of this rule implementation."""


class ContactPoint(Struct, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=True):
    type: ContactType
    value: str


# --- input events (contract §2-§5) -------------------------------------------------------

NonEmpty = Annotated[str, Meta(min_length=1)]
Count = Annotated[int, Meta(ge=0)]
Instant = Annotated[datetime, Meta(tz=True)]
"""An RFC 3339 timestamp with offset (contract §1)."""


class _Event(
    Struct,
    frozen=True,
    gc=False,
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    tag_field="type",
):
    """Common fields (contract §1); the `type` field is the tag of the four events.

    Input-side Structs are maps without unknown fields (parsed from the contract's JSON
    shape) and are written without their defaults (an open approval's request in state,
    the content digest: an explicit default is the same content as an absent field)."""

    event_id: NonEmpty
    occurred_at: Instant
    tenant: NonEmpty = "default"
    legal_entity: NonEmpty


class ContactFact(Struct, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=True):
    contact: ContactPoint
    obtained_at_sale: bool = True
    optout_offered: bool = False
    optout_method: OptoutMethod = OptoutMethod.NONE
    optout_exercised: bool = False
    informed_of_calls: bool = False


class Order(_Event, tag="order", kw_only=True, frozen=True):
    order_id: NonEmpty
    kind: OrderKind
    status: OrderStatus
    product_categories: tuple[str, ...]
    contract_end_at: Instant | None
    marketplace: str | None
    contacts: Annotated[tuple[ContactFact, ...], Meta(min_length=1)]
    paid_amount_cents: Count = 0
    recipient_kind: RecipientKind = RecipientKind.CONSUMER
    address_type: AddressType = AddressType.DIRECT
    sold_by_phone: bool = False
    confirmed_in_writing: bool = False
    type: ClassVar[EventType] = EventType.ORDER


class SignupConsent(Struct, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=True):
    consent_id: NonEmpty
    channels: tuple[Channel, ...]
    scope: tuple[Scope, ...]
    product_categories: tuple[str, ...]
    partners_named: tuple[str, ...]
    platforms: tuple[str, ...]
    named_legal_entity: NonEmpty
    mechanism: Mechanism
    source: ConsentSource
    wording_version: str | None
    proof_ref: str | None
    period_end: Instant | None
    bundled_with_purchase: bool = False
    given_by_subject: bool = True
    parental_consent: bool = False


class Signup(_Event, tag="signup", kw_only=True, frozen=True):
    kind: SignupKind
    contact: ContactPoint
    subject_age: Count | None
    consent: SignupConsent | None = None
    recipient_kind: RecipientKind = RecipientKind.CONSUMER
    type: ClassVar[EventType] = EventType.SIGNUP


class Unsubscribe(_Event, tag="unsubscribe", kw_only=True, frozen=True):
    """`channels` None = absent (every channel of each target contact's type, resolved when
    folded); `["all"]` is parsed to every channel. `received_at` absent = `occurred_at`."""

    kind: UnsubscribeKind
    contact: ContactPoint
    channels: tuple[Channel, ...] | None = None
    source: UnsubscribeSource
    consent_id: str | None
    list_id: str | None
    received_at: Instant
    linked_contacts: tuple[ContactPoint, ...] = ()
    type: ClassVar[EventType] = EventType.UNSUBSCRIBE


class Content(Struct, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=True):
    content_scope: Scope = Scope.OFFERS
    has_promo: bool = False
    promo_categories: tuple[str, ...] = ()
    third_party_offer: str | None = None
    is_consent_request: bool = False
    is_review_request: bool = False
    review_incentive: bool = False


class Sender(Struct, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=True):
    display_name: str
    has_identity_block: bool = False
    has_unsubscribe: bool = False
    unsubscribe_requires_login: bool = False
    cli_withheld: bool = False
    sector: Sector = Sector.OTHER


class Recipient(Struct, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=True):
    kind: RecipientKind = RecipientKind.CONSUMER
    established_outside_eea: bool = False
    address_published_for_purpose: bool = False
    postfilter_registered: bool = False


class SendRequest(_Event, tag="send_request", kw_only=True, frozen=True):
    """`dispatch_at` is resolved at parse time (absent = `occurred_at`)."""

    request_id: NonEmpty
    contact: ContactPoint
    channel: Channel
    declared_purpose: Purpose
    service_kind: ServiceKind | None
    relates_to_order_id: str | None
    content: Content
    sender: Sender
    recipient: Recipient
    platform: str | None
    dispatch_at: Instant
    campaign_id: str | None
    template_id: str | None
    requested_by_recipient: bool = False
    type: ClassVar[EventType] = EventType.SEND_REQUEST


Event = Order | Signup | Unsubscribe | SendRequest


# --- decision (contract §6) --------------------------------------------------------------


class Decision(Struct, frozen=True, array_like=True, gc=False):
    """`decided_at` is stamped by the shell at output; the core leaves it None."""

    request_id: str
    tenant: str
    legal_entity: str
    channel: Channel
    decision: Outcome
    reason_code: Reason
    legal_basis: LegalBasis
    rule_ids: tuple[str, ...]
    evidence: tuple[str, ...]
    rulebook_version: str
    as_of: datetime
    decided_at: datetime | None = None
    revokes: bool = False

    @property
    def allowed(self) -> bool:
        return self.decision is Outcome.ALLOW


# --- a decision as the state keeps it (issue 16 §3, state format 3) -----------------------

# Code tables of the kept decision: a stored code is a position in one of these, so each
# only ever grows at its end (tests/unit/test_state_codec.py pins the format-3 prefix).
KEPT_CHANNELS: tuple[Channel, ...] = tuple(Channel)
KEPT_OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
KEPT_REASONS: tuple[Reason, ...] = tuple(Reason)
KEPT_BASES: tuple[LegalBasis, ...] = tuple(LegalBasis)
KEPT_RULE_IDS: tuple[str, ...] = (
    "R-AUDIENCE-1", "R-AUDIENCE-2", "R-B2B-1", "R-B2B-2", "R-B2B-3", "R-CLASS-1",
    "R-CLASS-2", "R-CLASS-3", "R-CONSENT-1", "R-CONSENT-2", "R-CONSENT-3", "R-CONSENT-4",
    "R-CONSENT-5", "R-CONSENT-6", "R-CONSENT-7", "R-CONSENT-8", "R-CONSENT-9", "R-DSR-1",
    "R-DSR-2", "R-IDENTITY-1", "R-IDENTITY-2", "R-IDENTITY-3", "R-OBJECT-1", "R-OBJECT-2",
    "R-OBJECT-3", "R-OBJECT-4", "R-OBJECT-5", "R-OBJECT-6", "R-PHONE-1", "R-PHONE-2",
    "R-PHONE-3", "R-PHONE-4", "R-PHONE-5", "R-PHONE-6", "R-PHONE-7", "R-POST-1",
    "R-RELAY-1", "R-RELAY-2", "R-RELAY-3", "R-RESUB-1", "R-SCOPE-1", "R-SERVICE-1",
    "R-SERVICE-2", "R-SERVICE-3", "R-SOFTOPTIN-1", "R-SOFTOPTIN-2", "R-SOFTOPTIN-3",
    "R-SOFTOPTIN-4", "R-SOFTOPTIN-5", "R-SOFTOPTIN-6", "R-SOFTOPTIN-7", "R-SOFTOPTIN-8",
    "R-SOFTOPTIN-9", "R-THIRDPARTY-1", "R-THIRDPARTY-2", "R-THIRDPARTY-3", "R-UNSUB-1",
    "R-UNSUB-2", "R-PLATFORM-1",
)
KEPT_VERSIONS: tuple[str, ...] = ("contract-1.4/rules-2",)

_CHANNEL_CODE = {v: i for i, v in enumerate(KEPT_CHANNELS)}
_OUTCOME_CODE = {v: i for i, v in enumerate(KEPT_OUTCOMES)}
_REASON_CODE = {v: i for i, v in enumerate(KEPT_REASONS)}
_BASIS_CODE = {v: i for i, v in enumerate(KEPT_BASES)}
_RULE_CODE = {v: i for i, v in enumerate(KEPT_RULE_IDS)}
_VERSION_CODE = {v: i for i, v in enumerate(KEPT_VERSIONS)}
_RULES_OF: dict[tuple[int | str, ...], tuple[str, ...]] = {}


class KeptDecision(Struct, frozen=True, array_like=True, gc=False, omit_defaults=True):
    """A final decision as its contact's state keeps it for re-emission (contract §1,
    §8): only what the `decided` key (the request id), the contact's tenant and the code
    tables above do not already tell, ~50 bytes stored instead of ~140. `rebuild` gives
    back the Decision that was emitted, field for field; a rule id or rulebook version
    missing from its table is kept as text. The properties read like `Decision`'s."""

    legal_entity: str
    channel_code: Annotated[int, Meta(ge=0, lt=len(KEPT_CHANNELS))]
    outcome_code: Annotated[int, Meta(ge=0, lt=len(KEPT_OUTCOMES))]
    reason_code_code: Annotated[int, Meta(ge=0, lt=len(KEPT_REASONS))]
    basis_code: Annotated[int, Meta(ge=0, lt=len(KEPT_BASES))]
    rules: tuple[Annotated[int, Meta(ge=0, lt=len(KEPT_RULE_IDS))] | str, ...]
    evidence: tuple[str, ...]
    as_of: datetime
    decided_at: datetime | None = None
    revokes: bool = False
    version: Annotated[int, Meta(ge=0, lt=len(KEPT_VERSIONS))] | str = 0

    @property
    def channel(self) -> Channel:
        return KEPT_CHANNELS[self.channel_code]

    @property
    def decision(self) -> Outcome:
        return KEPT_OUTCOMES[self.outcome_code]

    @property
    def reason_code(self) -> Reason:
        return KEPT_REASONS[self.reason_code_code]

    @property
    def legal_basis(self) -> LegalBasis:
        return KEPT_BASES[self.basis_code]

    @property
    def rule_ids(self) -> tuple[str, ...]:
        known = _RULES_OF.get(self.rules)
        if known is None:
            known = tuple(KEPT_RULE_IDS[r] if type(r) is int else str(r) for r in self.rules)
            _RULES_OF[self.rules] = known
        return known

    @property
    def rulebook_version(self) -> str:
        version = self.version
        return KEPT_VERSIONS[version] if type(version) is int else str(version)

    def rebuild(self, request_id: str, tenant: str) -> Decision:
        """The decision as it was emitted for `request_id` (`tenant`: the contact's)."""
        return Decision(
            request_id, tenant, self.legal_entity, KEPT_CHANNELS[self.channel_code],
            KEPT_OUTCOMES[self.outcome_code], KEPT_REASONS[self.reason_code_code],
            KEPT_BASES[self.basis_code], self.rule_ids, self.evidence,
            self.rulebook_version, self.as_of, self.decided_at, self.revokes,
        )


def keep(d: Decision) -> KeptDecision:
    """What the state keeps of a final decision (see `KeptDecision`)."""
    rules = _KEPT_RULES.get(d.rule_ids)
    if rules is None:
        rules = tuple(_RULE_CODE.get(r, r) for r in d.rule_ids)
        _KEPT_RULES[d.rule_ids] = rules
    return KeptDecision(
        d.legal_entity, _CHANNEL_CODE[d.channel], _OUTCOME_CODE[d.decision],
        _REASON_CODE[d.reason_code], _BASIS_CODE[d.legal_basis], rules, d.evidence,
        d.as_of, d.decided_at, d.revokes, _VERSION_CODE.get(d.rulebook_version, d.rulebook_version),
    )


_KEPT_RULES: dict[tuple[str, ...], tuple[int | str, ...]] = {}


# --- per-contact state -------------------------------------------------------------------


class Relation(StrEnum):
    """What a paid order gives (contract §2): a customer relation, a donor relation."""

    CUSTOMER = "customer"
    DONOR = "donor"


class OrderFact(Struct, frozen=True, array_like=True, gc=False):
    """The latest record of one order as it concerns this contact (contract §2).

    `relation_end` is the end the relation's age is measured from; None with a relation
    means a current subscription (age 0). `first_paid_at` survives replacements.
    """

    order_id: str
    legal_entity: str
    event_id: str
    occurred_at: datetime
    kind: OrderKind
    status: OrderStatus
    paid_amount_cents: int
    product_categories: frozenset[str]
    contract_end_at: datetime | None
    first_paid_at: datetime | None
    paid_event_id: str | None
    recipient_kind: RecipientKind
    address_type: AddressType
    sold_by_phone: bool
    confirmed_in_writing: bool
    obtained_at_sale: bool
    optout_offered: bool
    optout_method: OptoutMethod
    optout_exercised: bool
    informed_of_calls: bool
    relation: Relation | None
    relation_end: datetime | None
    optout_valid: bool

    @property
    def evidence(self) -> tuple[str, ...]:
        if self.paid_event_id is None or self.paid_event_id == self.event_id:
            return (self.event_id,)
        return (self.paid_event_id, self.event_id)


class ConsentFact(Struct, frozen=True, array_like=True, gc=False):
    """One consent on this contact point, whichever entity collected it (contract §3)."""

    consent_id: str
    event_id: str
    legal_entity: str
    occurred_at: datetime
    named_legal_entity: str
    channels: frozenset[Channel]
    scope: frozenset[Scope]
    product_categories: frozenset[str]
    partners_named: frozenset[str]
    platforms: frozenset[str]
    mechanism: Mechanism
    bundled_with_purchase: bool
    given_by_subject: bool
    parental_consent: bool
    subject_age: int | None
    source: ConsentSource
    wording_version: str | None
    proof_ref: str | None
    period_end: datetime | None
    recipient_kind: RecipientKind


class SuppressionFact(Struct, frozen=True, array_like=True, gc=False):
    """An objection, unsubscribe, withdrawal or erasure, bound to the receiving entity, with
    its channel scope resolved (contract §4). A checkout opt-out of an order is recorded
    as an unsubscribe from source `checkout_optout` whose evidence is the order event.

    `lifted_by_same_instant`: a consent at the same instant lifts it (an unticked opt-in
    box is only an opt-out when no ticked box arrived as a consent with the order).
    """

    event_id: str
    legal_entity: str
    kind: UnsubscribeKind
    source: UnsubscribeSource
    channels: frozenset[Channel]
    occurred_at: datetime
    received_at: datetime
    consent_id: str | None
    lifted_by_same_instant: bool = False


class TouchpointFact(Struct, frozen=True, array_like=True, gc=False):
    """A non-consent signup (account, info request, referral, list import...)."""

    event_id: str
    legal_entity: str
    kind: SignupKind
    occurred_at: datetime
    recipient_kind: RecipientKind


class SeenEvent(Struct, frozen=True, array_like=True, gc=False):
    """An event id folded or decided on this contact point (contract §1 idempotency):
    its `occurred_at` (UTC) and a fingerprint of its content after defaults and
    normalisation; `digest` 0 = unknown (a state migrated from format 1)."""

    at: datetime
    digest: int


class OpenApproval(Struct, frozen=True, array_like=True, gc=False):
    """An ALLOW not yet dispatched (R-OBJECT-3); `request.contact.value` is redacted,
    `dispatch_at` is the request's dispatch time in UTC."""

    request: SendRequest
    decision: Decision
    dispatch_at: datetime


class ContactState(Struct, frozen=True, array_like=True, gc=False):
    """Facts for every legal entity of the tenant under one contact key.

    `relay_entities`/`direct_entities` list the entities with a relay / direct order on
    this contact; `relay_kept` the entities whose relay flag survived `erasure_completed`.
    `facts_until` is an upper bound of the facts' `occurred_at` (UTC): a request at or
    after it sees every fact without filtering.
    `decided` maps request_id to its final decision, as kept (one per request);
    `seen_event_ids` maps event_id to when and with what content it was seen. Both hold
    only what lies within the idempotency horizon (contract §8) of the contact's latest
    event.
    """

    orders: tuple[OrderFact, ...] = ()
    consents: tuple[ConsentFact, ...] = ()
    suppressions: tuple[SuppressionFact, ...] = ()
    touchpoints: tuple[TouchpointFact, ...] = ()
    relay_entities: frozenset[str] = frozenset()
    direct_entities: frozenset[str] = frozenset()
    relay_kept: frozenset[str] = frozenset()
    facts_until: datetime | None = None
    seen_event_ids: Mapping[str, SeenEvent] = field(default_factory=dict)
    decided: Mapping[str, KeptDecision] = field(default_factory=dict)
    open_approvals: tuple[OpenApproval, ...] = ()

    @staticmethod
    def empty() -> ContactState:
        return EMPTY_STATE


EMPTY_STATE = ContactState()
