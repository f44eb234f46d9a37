"""Contract validation: dict -> typed event, and the JSON shapes of events and decisions.

`parse_event` accepts the JSON shape of the contract (timestamps as RFC 3339 strings,
defaulted fields possibly absent) and the Avro-decoded shape (timestamps as aware
datetimes, every optional field present, possibly None). A None in a field with a
default means "absent". Any breach raises `ContractError` with a `Rejection` reason and
the dotted path of the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from streams.core.enums import (
    ALL_CHANNELS,
    CONTACT_TYPES_OF_CHANNEL,
    AddressType,
    Channel,
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
from streams.core.errors import ContractError, Rejection
from streams.core.eventtime import format_rfc3339, parse_rfc3339, to_millis
from streams.core.keys import normalise
from streams.core.model import (
    ContactFact,
    ContactPoint,
    Content,
    Decision,
    Event,
    Order,
    Recipient,
    Sender,
    SendRequest,
    Signup,
    SignupConsent,
    Unsubscribe,
)

E = TypeVar("E", bound=StrEnum)

_ABSENT: Any = object()
IGNORED_FIELDS = frozenset({"expect"})
"""Scenario files may carry `expect` on a send_request line (contract §9)."""


class _Fields:
    """Reads the fields of one JSON object, remembering which were read."""

    __slots__ = ("_obj", "_path", "_read")

    def __init__(self, obj: Any, path: str) -> None:
        if not isinstance(obj, Mapping):
            raise ContractError(Rejection.INVALID_VALUE, "expected an object", path)
        self._obj: Mapping[str, Any] = obj
        self._path = path
        self._read: set[str] = set()

    def where(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def _raw(self, name: str) -> Any:
        self._read.add(name)
        return self._obj.get(name, _ABSENT)

    def _required(self, name: str) -> Any:
        value = self._raw(name)
        if value is _ABSENT or value is None:
            raise ContractError(
                Rejection.MISSING_FIELD, "required field is missing", self.where(name)
            )
        return value

    def _nullable(self, name: str) -> Any:
        value = self._raw(name)
        if value is _ABSENT:
            raise ContractError(
                Rejection.MISSING_FIELD, "required field is missing (may be null)", self.where(name)
            )
        return value

    def optional(self, name: str) -> Any:
        """The raw value of a field that may be absent; None when absent."""
        value = self._raw(name)
        return None if value is _ABSENT else value

    def _string(self, value: Any, name: str, *, nonempty: bool) -> str:
        if not isinstance(value, str):
            raise ContractError(Rejection.INVALID_VALUE, "expected a string", self.where(name))
        if nonempty and not value:
            raise ContractError(Rejection.INVALID_VALUE, "must not be empty", self.where(name))
        return value

    def text(self, name: str, *, nonempty: bool = True) -> str:
        return self._string(self._required(name), name, nonempty=nonempty)

    def text_or_none(self, name: str) -> str | None:
        value = self._nullable(name)
        return None if value is None else self._string(value, name, nonempty=False)

    def text_optional(self, name: str) -> str | None:
        value = self.optional(name)
        return None if value is None else self._string(value, name, nonempty=False)

    def text_default(self, name: str, default: str) -> str:
        value = self.optional(name)
        return default if value is None else self._string(value, name, nonempty=True)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.optional(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ContractError(Rejection.INVALID_VALUE, "expected true or false", self.where(name))
        return value

    def _int(self, value: Any, name: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ContractError(
                Rejection.INVALID_VALUE, "expected a non-negative integer", self.where(name)
            )
        return value

    def count(self, name: str, default: int = 0) -> int:
        value = self.optional(name)
        return default if value is None else self._int(value, name)

    def count_or_none(self, name: str) -> int | None:
        value = self._nullable(name)
        return None if value is None else self._int(value, name)

    def _enum(self, cls: type[E], value: Any, where: str) -> E:
        member = cls._value2member_map_.get(value) if isinstance(value, str) else None
        if member is None:
            allowed = ", ".join(m.value for m in cls)
            raise ContractError(
                Rejection.INVALID_ENUM, f"{value!r} is not one of: {allowed}", where
            )
        return member  # type: ignore[return-value]

    def choice(self, name: str, cls: type[E]) -> E:
        return self._enum(cls, self._required(name), self.where(name))

    def choice_default(self, name: str, cls: type[E], default: E) -> E:
        value = self.optional(name)
        return default if value is None else self._enum(cls, value, self.where(name))

    def choice_or_none(self, name: str, cls: type[E]) -> E | None:
        value = self._nullable(name)
        return None if value is None else self._enum(cls, value, self.where(name))

    def _timestamp(self, value: Any, name: str) -> datetime:
        if isinstance(value, datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ContractError(
                    Rejection.BAD_TIMESTAMP, "timestamp without offset", self.where(name)
                )
            return to_millis(value)
        if not isinstance(value, str):
            raise ContractError(
                Rejection.BAD_TIMESTAMP, "expected an RFC 3339 timestamp", self.where(name)
            )
        try:
            return parse_rfc3339(value)
        except ValueError:
            raise ContractError(
                Rejection.BAD_TIMESTAMP,
                f"{value!r} is not an RFC 3339 timestamp with offset",
                self.where(name),
            ) from None

    def instant(self, name: str) -> datetime:
        return self._timestamp(self._required(name), name)

    def instant_or_none(self, name: str) -> datetime | None:
        value = self._nullable(name)
        return None if value is None else self._timestamp(value, name)

    def instant_default(self, name: str, default: datetime) -> datetime:
        value = self.optional(name)
        return default if value is None else self._timestamp(value, name)

    def _items(self, name: str, value: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise ContractError(Rejection.INVALID_VALUE, "expected a list", self.where(name))
        return list(value)

    def texts(self, name: str, *, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        value = self._required(name) if default is None else self.optional(name)
        if value is None:
            return default or ()
        return tuple(
            self._string(item, f"{name}[{i}]", nonempty=False)
            for i, item in enumerate(self._items(name, value))
        )

    def choices(self, name: str, cls: type[E]) -> tuple[E, ...]:
        items = self._items(name, self._required(name))
        return tuple(
            self._enum(cls, item, self.where(f"{name}[{i}]")) for i, item in enumerate(items)
        )

    def nested(self, name: str) -> _Fields:
        return _Fields(self._required(name), self.where(name))

    def nested_list(self, name: str) -> list[_Fields]:
        items = self._items(name, self._required(name))
        return [_Fields(item, self.where(f"{name}[{i}]")) for i, item in enumerate(items)]

    def nested_or_none(self, name: str) -> _Fields | None:
        value = self.optional(name)
        return None if value is None else _Fields(value, self.where(name))

    def done(self, ignored: frozenset[str] = frozenset()) -> None:
        """UNKNOWN_FIELD for any field that was not read (contract: no other fields)."""
        for name in self._obj:
            if name not in self._read and name not in ignored:
                raise ContractError(
                    Rejection.UNKNOWN_FIELD, "field not in the contract", self.where(name)
                )


def _contact(fields: _Fields, *, check: bool) -> ContactPoint:
    contact = ContactPoint(fields.choice("type", ContactType), fields.text("value"))
    fields.done()
    if check:
        normalise(contact, fields.where("value"))
    return contact


def _common(fields: _Fields) -> tuple[str, datetime, str, str]:
    return (
        fields.text("event_id"),
        fields.instant("occurred_at"),
        fields.text_default("tenant", "default"),
        fields.text("legal_entity"),
    )


def _order(fields: _Fields, check: bool) -> Order:
    event_id, occurred_at, tenant, legal_entity = _common(fields)
    contacts = []
    for fact in fields.nested_list("contacts"):
        contacts.append(
            ContactFact(
                contact=_contact(fact.nested("contact"), check=check),
                obtained_at_sale=fact.flag("obtained_at_sale", True),
                optout_offered=fact.flag("optout_offered"),
                optout_method=fact.choice_default("optout_method", OptoutMethod, OptoutMethod.NONE),
                optout_exercised=fact.flag("optout_exercised"),
                informed_of_calls=fact.flag("informed_of_calls"),
            )
        )
        fact.done()
    if not contacts:
        raise ContractError(
            Rejection.INVALID_VALUE, "at least one contact", fields.where("contacts")
        )
    return Order(
        event_id=event_id,
        occurred_at=occurred_at,
        tenant=tenant,
        legal_entity=legal_entity,
        order_id=fields.text("order_id"),
        kind=fields.choice("kind", OrderKind),
        status=fields.choice("status", OrderStatus),
        paid_amount_cents=fields.count("paid_amount_cents"),
        product_categories=fields.texts("product_categories"),
        contract_end_at=fields.instant_or_none("contract_end_at"),
        recipient_kind=fields.choice_default(
            "recipient_kind", RecipientKind, RecipientKind.CONSUMER
        ),
        address_type=fields.choice_default("address_type", AddressType, AddressType.DIRECT),
        marketplace=fields.text_or_none("marketplace"),
        sold_by_phone=fields.flag("sold_by_phone"),
        confirmed_in_writing=fields.flag("confirmed_in_writing"),
        contacts=tuple(contacts),
    )


def _consent(fields: _Fields) -> SignupConsent:
    consent = SignupConsent(
        consent_id=fields.text("consent_id"),
        channels=fields.choices("channels", Channel),
        scope=fields.choices("scope", Scope),
        product_categories=fields.texts("product_categories"),
        partners_named=fields.texts("partners_named"),
        platforms=fields.texts("platforms"),
        named_legal_entity=fields.text("named_legal_entity"),
        mechanism=fields.choice("mechanism", Mechanism),
        bundled_with_purchase=fields.flag("bundled_with_purchase"),
        given_by_subject=fields.flag("given_by_subject", True),
        parental_consent=fields.flag("parental_consent"),
        source=fields.choice("source", ConsentSource),
        wording_version=fields.text_or_none("wording_version"),
        proof_ref=fields.text_or_none("proof_ref"),
        period_end=fields.instant_or_none("period_end"),
    )
    fields.done()
    return consent


def _signup(fields: _Fields, check: bool) -> Signup:
    event_id, occurred_at, tenant, legal_entity = _common(fields)
    kind = fields.choice("kind", SignupKind)
    consent_fields = fields.nested_or_none("consent")
    if kind is SignupKind.CONSENT and consent_fields is None:
        raise ContractError(
            Rejection.MISSING_FIELD, "required when kind = consent", fields.where("consent")
        )
    if kind is not SignupKind.CONSENT and consent_fields is not None:
        raise ContractError(
            Rejection.INVALID_VALUE, "only allowed when kind = consent", fields.where("consent")
        )
    return Signup(
        event_id=event_id,
        occurred_at=occurred_at,
        tenant=tenant,
        legal_entity=legal_entity,
        kind=kind,
        contact=_contact(fields.nested("contact"), check=check),
        recipient_kind=fields.choice_default(
            "recipient_kind", RecipientKind, RecipientKind.CONSUMER
        ),
        subject_age=fields.count_or_none("subject_age"),
        consent=None if consent_fields is None else _consent(consent_fields),
    )


def _unsubscribe_channels(fields: _Fields) -> tuple[Channel, ...] | None:
    """None when absent (every channel of each target contact's type, resolved at fold
    time); `["all"]` becomes every channel."""
    raw = fields.optional("channels")
    if raw is None:
        return None
    if isinstance(raw, list | tuple) and "all" in raw:
        if list(raw) != ["all"]:
            raise ContractError(
                Rejection.INVALID_VALUE, '"all" must stand alone', fields.where("channels")
            )
        return tuple(Channel)
    return fields.choices("channels", Channel)


def _unsubscribe(fields: _Fields, check: bool) -> Unsubscribe:
    event_id, occurred_at, tenant, legal_entity = _common(fields)
    contact = _contact(fields.nested("contact"), check=check)
    linked = fields.optional("linked_contacts")
    linked_contacts = (
        ()
        if linked is None
        else tuple(_contact(item, check=check) for item in fields.nested_list("linked_contacts"))
    )
    return Unsubscribe(
        event_id=event_id,
        occurred_at=occurred_at,
        tenant=tenant,
        legal_entity=legal_entity,
        kind=fields.choice("kind", UnsubscribeKind),
        contact=contact,
        channels=_unsubscribe_channels(fields),
        source=fields.choice("source", UnsubscribeSource),
        consent_id=fields.text_or_none("consent_id"),
        list_id=fields.text_or_none("list_id"),
        received_at=fields.instant_default("received_at", occurred_at),
        linked_contacts=linked_contacts,
    )


def _send_request(fields: _Fields, check: bool) -> SendRequest:
    event_id, occurred_at, tenant, legal_entity = _common(fields)
    channel = fields.choice("channel", Channel)
    contact_fields = fields.nested("contact")
    contact = _contact(contact_fields, check=check)
    if contact.type not in CONTACT_TYPES_OF_CHANNEL[channel]:
        raise ContractError(
            Rejection.INVALID_VALUE,
            f"channel {channel} does not use contact type {contact.type} (contract §1)",
            contact_fields.where("type"),
        )
    content_fields = fields.nested("content")
    content = Content(
        content_scope=content_fields.choice_default("content_scope", Scope, Scope.OFFERS),
        has_promo=content_fields.flag("has_promo"),
        promo_categories=content_fields.texts("promo_categories", default=()),
        third_party_offer=content_fields.text_optional("third_party_offer"),
        is_consent_request=content_fields.flag("is_consent_request"),
        is_review_request=content_fields.flag("is_review_request"),
        review_incentive=content_fields.flag("review_incentive"),
    )
    content_fields.done()
    sender_fields = fields.nested("sender")
    sender = Sender(
        display_name=sender_fields.text("display_name", nonempty=False),
        has_identity_block=sender_fields.flag("has_identity_block"),
        has_unsubscribe=sender_fields.flag("has_unsubscribe"),
        unsubscribe_requires_login=sender_fields.flag("unsubscribe_requires_login"),
        cli_withheld=sender_fields.flag("cli_withheld"),
        sector=sender_fields.choice_default("sector", Sector, Sector.OTHER),
    )
    sender_fields.done()
    recipient_fields = fields.nested("recipient")
    recipient = Recipient(
        kind=recipient_fields.choice_default("kind", RecipientKind, RecipientKind.CONSUMER),
        established_outside_eea=recipient_fields.flag("established_outside_eea"),
        address_published_for_purpose=recipient_fields.flag("address_published_for_purpose"),
        postfilter_registered=recipient_fields.flag("postfilter_registered"),
    )
    recipient_fields.done()
    return SendRequest(
        event_id=event_id,
        occurred_at=occurred_at,
        tenant=tenant,
        legal_entity=legal_entity,
        request_id=fields.text("request_id"),
        contact=contact,
        channel=channel,
        declared_purpose=fields.choice("declared_purpose", Purpose),
        service_kind=fields.choice_or_none("service_kind", ServiceKind),
        relates_to_order_id=fields.text_or_none("relates_to_order_id"),
        requested_by_recipient=fields.flag("requested_by_recipient"),
        content=content,
        sender=sender,
        recipient=recipient,
        platform=fields.text_or_none("platform"),
        dispatch_at=fields.instant_default("dispatch_at", occurred_at),
        campaign_id=fields.text_or_none("campaign_id"),
        template_id=fields.text_or_none("template_id"),
    )


_PARSERS: dict[EventType, Callable[[_Fields, bool], Event]] = {
    EventType.ORDER: _order,
    EventType.SIGNUP: _signup,
    EventType.UNSUBSCRIBE: _unsubscribe,
    EventType.SEND_REQUEST: _send_request,
}


def _parse(obj: Any, *, check_contacts: bool) -> Event:
    fields = _Fields(obj, "")
    event_type = fields.choice("type", EventType)
    event = _PARSERS[event_type](fields, check_contacts)
    fields.done(IGNORED_FIELDS if event_type is EventType.SEND_REQUEST else frozenset())
    return event


def parse_event(obj: Mapping[str, Any]) -> Event:
    """Validate one input record against contract.md v1.4 and build the typed event."""
    return _parse(obj, check_contacts=True)


def parse_stored_event(obj: Mapping[str, Any]) -> Event:
    """As `parse_event`, for events stored in state whose contact value is redacted."""
    return _parse(obj, check_contacts=False)


# --- JSON shapes out ---------------------------------------------------------------------


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_rfc3339(value)


def _contact_dict(contact: ContactPoint) -> dict[str, Any]:
    return {"type": str(contact.type), "value": contact.value}


def _strs(values: tuple[Any, ...]) -> list[str]:
    return [str(v) for v in values]


def event_to_dict(event: Event) -> dict[str, Any]:
    """The contract JSON shape with every field written; timestamps as RFC 3339."""
    common: dict[str, Any] = {
        "type": str(event.type),
        "event_id": event.event_id,
        "occurred_at": _ts(event.occurred_at),
        "tenant": event.tenant,
        "legal_entity": event.legal_entity,
    }
    if isinstance(event, Order):
        return common | {
            "order_id": event.order_id,
            "kind": str(event.kind),
            "status": str(event.status),
            "paid_amount_cents": event.paid_amount_cents,
            "product_categories": list(event.product_categories),
            "contract_end_at": _ts(event.contract_end_at),
            "recipient_kind": str(event.recipient_kind),
            "address_type": str(event.address_type),
            "marketplace": event.marketplace,
            "sold_by_phone": event.sold_by_phone,
            "confirmed_in_writing": event.confirmed_in_writing,
            "contacts": [
                {
                    "contact": _contact_dict(f.contact),
                    "obtained_at_sale": f.obtained_at_sale,
                    "optout_offered": f.optout_offered,
                    "optout_method": str(f.optout_method),
                    "optout_exercised": f.optout_exercised,
                    "informed_of_calls": f.informed_of_calls,
                }
                for f in event.contacts
            ],
        }
    if isinstance(event, Signup):
        out = common | {
            "kind": str(event.kind),
            "contact": _contact_dict(event.contact),
            "recipient_kind": str(event.recipient_kind),
            "subject_age": event.subject_age,
        }
        if event.consent is not None:
            c = event.consent
            out["consent"] = {
                "consent_id": c.consent_id,
                "channels": _strs(c.channels),
                "scope": _strs(c.scope),
                "product_categories": list(c.product_categories),
                "partners_named": list(c.partners_named),
                "platforms": list(c.platforms),
                "named_legal_entity": c.named_legal_entity,
                "mechanism": str(c.mechanism),
                "bundled_with_purchase": c.bundled_with_purchase,
                "given_by_subject": c.given_by_subject,
                "parental_consent": c.parental_consent,
                "source": str(c.source),
                "wording_version": c.wording_version,
                "proof_ref": c.proof_ref,
                "period_end": _ts(c.period_end),
            }
        return out
    if isinstance(event, Unsubscribe):
        channels: list[str] | None = None
        if event.channels is not None:
            all_channels = frozenset(event.channels) == ALL_CHANNELS
            channels = ["all"] if all_channels else _strs(event.channels)
        return common | {
            "kind": str(event.kind),
            "contact": _contact_dict(event.contact),
            "channels": channels,
            "source": str(event.source),
            "consent_id": event.consent_id,
            "list_id": event.list_id,
            "received_at": _ts(event.received_at),
            "linked_contacts": [_contact_dict(c) for c in event.linked_contacts],
        }
    content, sender, recipient = event.content, event.sender, event.recipient
    return common | {
        "request_id": event.request_id,
        "contact": _contact_dict(event.contact),
        "channel": str(event.channel),
        "declared_purpose": str(event.declared_purpose),
        "service_kind": None if event.service_kind is None else str(event.service_kind),
        "relates_to_order_id": event.relates_to_order_id,
        "requested_by_recipient": event.requested_by_recipient,
        "content": {
            "content_scope": str(content.content_scope),
            "has_promo": content.has_promo,
            "promo_categories": list(content.promo_categories),
            "third_party_offer": content.third_party_offer,
            "is_consent_request": content.is_consent_request,
            "is_review_request": content.is_review_request,
            "review_incentive": content.review_incentive,
        },
        "sender": {
            "display_name": sender.display_name,
            "has_identity_block": sender.has_identity_block,
            "has_unsubscribe": sender.has_unsubscribe,
            "unsubscribe_requires_login": sender.unsubscribe_requires_login,
            "cli_withheld": sender.cli_withheld,
            "sector": str(sender.sector),
        },
        "recipient": {
            "kind": str(recipient.kind),
            "established_outside_eea": recipient.established_outside_eea,
            "address_published_for_purpose": recipient.address_published_for_purpose,
            "postfilter_registered": recipient.postfilter_registered,
        },
        "platform": event.platform,
        "dispatch_at": _ts(event.dispatch_at),
        "campaign_id": event.campaign_id,
        "template_id": event.template_id,
    }


def decision_to_dict(decision: Decision) -> dict[str, Any]:
    """Contract §6 shape."""
    return {
        "request_id": decision.request_id,
        "tenant": decision.tenant,
        "legal_entity": decision.legal_entity,
        "channel": str(decision.channel),
        "decision": str(decision.decision),
        "reason_code": str(decision.reason_code),
        "legal_basis": str(decision.legal_basis),
        "rule_ids": list(decision.rule_ids),
        "evidence": list(decision.evidence),
        "rulebook_version": decision.rulebook_version,
        "as_of": _ts(decision.as_of),
        "decided_at": _ts(decision.decided_at),
        "revokes": decision.revokes,
    }


def decision_from_dict(obj: Mapping[str, Any]) -> Decision:
    """Inverse of `decision_to_dict` (state changelog, audit)."""
    fields = _Fields(obj, "")
    decision = Decision(
        request_id=fields.text("request_id"),
        tenant=fields.text("tenant"),
        legal_entity=fields.text("legal_entity"),
        channel=fields.choice("channel", Channel),
        decision=fields.choice("decision", Outcome),
        reason_code=fields.choice("reason_code", Reason),
        legal_basis=fields.choice("legal_basis", LegalBasis),
        rule_ids=fields.texts("rule_ids"),
        evidence=fields.texts("evidence"),
        rulebook_version=fields.text("rulebook_version"),
        as_of=fields.instant("as_of"),
        decided_at=fields.instant_or_none("decided_at"),
        revokes=fields.flag("revokes"),
    )
    fields.done()
    return decision
