"""Contract validation: dict -> typed event, and the JSON shapes of events and decisions.

`parse_event` accepts the JSON shape of the contract (timestamps as RFC 3339 strings,
defaulted fields possibly absent) and the Avro-decoded shape (timestamps as aware
datetimes, every optional field present, possibly None). A None in a field with a
default means "absent". Any breach raises `ContractError` with a `Rejection` reason and
the dotted path of the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

import msgspec
from msgspec.structs import replace

from streams.core.enums import (
    ALL_CHANNELS,
    CONTACT_TYPES_OF_CHANNEL,
    Channel,
    EventType,
    LegalBasis,
    Outcome,
    Reason,
    SignupKind,
)
from streams.core.errors import ContractError, Rejection
from streams.core.eventtime import format_rfc3339, parse_rfc3339, to_millis
from streams.core.keys import normalise
from streams.core.model import (
    ContactPoint,
    Decision,
    Event,
    NonEmpty,
    Order,
    SendRequest,
    Signup,
    Unsubscribe,
)

_CONSENT = SignupKind.CONSENT

IGNORED_FIELDS = frozenset({"expect"})
"""Scenario files may carry `expect` on a send_request line (contract §9)."""

_EXACT_INSTANT_CHARS = 32
"""Instant strings up to this length have at most six fractional digits, which msgspec
reads exactly; longer ones go through the pre-pass, which truncates them."""


_AT = re.compile(r"^(.*) - at `\$(.*)`$")
_NAMED = re.compile(r"`([^`]+)`")


def _where(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _rejection(exc: msgspec.ValidationError) -> ContractError:
    """msgspec's message as a contract rejection: reason and dotted field path."""
    text = str(exc)
    match = _AT.match(text)
    message, path = (match.group(1), match.group(2).lstrip(".")) if match else (text, "")
    if message.startswith("Object missing required field"):
        name = _NAMED.search(message)
        field = _where(path, name.group(1) if name else "")
        return ContractError(Rejection.MISSING_FIELD, "required field is missing", field)
    if message.startswith("Object contains unknown field"):
        name = _NAMED.search(message)
        field = _where(path, name.group(1) if name else "")
        return ContractError(Rejection.UNKNOWN_FIELD, "field not in the contract", field)
    if "datetime" in message:
        return ContractError(Rejection.BAD_TIMESTAMP, message, path)
    if message.startswith(("Invalid enum value", "Invalid value")):
        return ContractError(Rejection.INVALID_ENUM, message, path)
    if message.startswith("Expected `array` of length >= 1") and path.endswith("contacts"):
        return ContractError(Rejection.INVALID_VALUE, "at least one contact", path)
    return ContractError(Rejection.INVALID_VALUE, message, path)


def _fine_timestamp(value: Any) -> Any:
    """A timestamp string with more than six fractional digits, cut to the millisecond
    before msgspec would round it to the microsecond (contract v1.4 truncates)."""
    if isinstance(value, str):
        try:
            return parse_rfc3339(value)
        except ValueError:
            return value  # msgspec names the error
    return value


class _Plan:
    """What the pre-pass does with one Struct type's fields before msgspec converts it:
    a None in a field with a (non-None) default means absent (the Avro-decoded shape
    writes every optional field); nested Structs get their own plan. Objects are copied
    only when something changes."""

    __slots__ = ("absent_if_none", "instants", "many", "nested", "zeros")

    def __init__(self, cls: type[msgspec.Struct]) -> None:
        absent, instants = set(), []
        nested: list[tuple[str, _Plan]] = []
        many: list[tuple[str, _Plan]] = []
        for info in msgspec.structs.fields(cls):
            kind = msgspec.inspect.type_info(info.type)
            if isinstance(kind, msgspec.inspect.UnionType):
                options = [t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)]
                kind = options[0] if len(options) == 1 else kind
            elif info.required is False and info.default is not None:
                absent.add(info.name)
            if isinstance(kind, msgspec.inspect.DateTimeType):
                instants.append(info.name)
            elif isinstance(kind, msgspec.inspect.StructType):
                inner = _plan(kind.cls)
                if inner.needed:
                    nested.append((info.name, inner))
            elif isinstance(kind, msgspec.inspect.VarTupleType) and isinstance(
                kind.item_type, msgspec.inspect.StructType
            ):
                inner = _plan(kind.item_type.cls)
                if inner.needed:
                    many.append((info.name, inner))
        self.absent_if_none = tuple(sorted(absent))
        self.zeros = (0,) * len(self.absent_if_none)
        self.instants = tuple(instants)
        self.nested = tuple(nested)
        self.many = tuple(many)

    @property
    def needed(self) -> bool:
        """False when objects of this type pass through unchanged (e.g. a contact point)."""
        return bool(self.absent_if_none or self.instants or self.nested or self.many)

    def prepare(self, obj: Any) -> Any:
        if type(obj) is not dict:
            if not isinstance(obj, Mapping):
                return obj  # msgspec names the wrong type
            obj = dict(obj)
        out = obj
        get = obj.get
        absent = self.absent_if_none
        if absent and None in map(get, absent, self.zeros):
            out = dict(obj)
            for name in absent:
                if get(name, 0) is None:
                    del out[name]
        for name in self.instants:
            value = get(name)
            if type(value) is str and len(value) > _EXACT_INSTANT_CHARS:
                out = dict(out) if out is obj else out
                out[name] = _fine_timestamp(value)
        for name, plan in self.nested:
            value = get(name)
            if value is not None and plan.touches(value):
                ready = plan.prepare(value)
                if ready is not value:
                    out = dict(out) if out is obj else out
                    out[name] = ready
        for name, plan in self.many:
            items = get(name)
            if type(items) is list and any(map(plan.touches, items)):
                ready_items = [plan.prepare(item) for item in items]
                if any(a is not b for a, b in zip(ready_items, items, strict=True)):
                    out = dict(out) if out is obj else out
                    out[name] = ready_items
        return out

    def touches(self, obj: Any) -> bool:
        """Whether `prepare` may change `obj`: a flat object without None and without an
        instant is passed through as it is (the common JSON shape, checked in C)."""
        if type(obj) is not dict or self.instants or self.nested or self.many:
            return True
        return None in map(obj.get, self.absent_if_none, self.zeros)


_PLANS: dict[type[msgspec.Struct], _Plan] = {}


def _plan(cls: type[msgspec.Struct]) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _Plan(cls)
    return plan


_INSTANTS: dict[type[Any], tuple[str, ...]] = {
    Order: ("occurred_at", "contract_end_at"),
    Signup: ("occurred_at",),
    Unsubscribe: ("occurred_at", "received_at"),
    SendRequest: ("occurred_at", "dispatch_at"),
}

_INSTANT_PAIR: dict[type[Any], Callable[[Any], tuple[datetime, datetime | None]]] = {
    cls: attrgetter(*names) if len(names) == 2 else attrgetter(names[0], names[0])
    for cls, names in _INSTANTS.items()
}
"""The top-level instants of each event type, read in one C call (a signup's one twice)."""

_EVENT_TYPES: dict[str, type[msgspec.Struct]] = {
    EventType.ORDER: Order,
    EventType.SIGNUP: Signup,
    EventType.UNSUBSCRIBE: Unsubscribe,
    EventType.SEND_REQUEST: SendRequest,
}


_EVERY_CHANNEL = tuple(Channel)
"""`list(Channel)` asks the enum class for its length and members in Python, per event."""


def _channels(value: Any) -> Any:
    """`["all"]` is every channel (contract §4); "all" must stand alone."""
    if isinstance(value, list | tuple) and "all" in value:
        if list(value) != ["all"]:
            raise ContractError(Rejection.INVALID_VALUE, '"all" must stand alone', "channels")
        return list(_EVERY_CHANNEL)
    return value


def _fine(value: datetime | None) -> bool:
    return value is not None and value.microsecond % 1000 != 0


def _millis(event: Event) -> Event:
    """Every instant of the event truncated to the millisecond (contract v1.4)."""
    occurred_at, other = _INSTANT_PAIR[type(event)](event)
    if (
        occurred_at.microsecond % 1000 == 0
        and (other is None or other.microsecond % 1000 == 0)
        and not (isinstance(event, Signup) and event.consent and _fine(event.consent.period_end))
    ):
        return event
    changes: dict[str, Any] = {}
    for name in _INSTANTS[type(event)]:
        value = getattr(event, name)
        if _fine(value):
            changes[name] = to_millis(value)
    if isinstance(event, Signup) and event.consent is not None:
        end = event.consent.period_end
        if end is not None and _fine(end):
            changes["consent"] = replace(event.consent, period_end=to_millis(end))
    return replace(event, **changes)


def _contact(point: ContactPoint, where: str) -> None:
    normalise(point, f"{where}.value")


def _check(event: Event, check_contacts: bool) -> None:
    """What types cannot say: contacts normalise (fail closed), a consent exactly when
    kind = consent, a channel's contact type (contract §1-§5)."""
    if type(event) is SendRequest:
        if check_contacts:
            normalise(event.contact)
        if event.contact.type not in CONTACT_TYPES_OF_CHANNEL[event.channel]:
            raise ContractError(
                Rejection.INVALID_VALUE,
                f"channel {event.channel} does not use contact type {event.contact.type} "
                "(contract §1)",
                "contact.type",
            )
        return
    if isinstance(event, Order):
        if check_contacts:
            for i, fact in enumerate(event.contacts):
                _contact(fact.contact, f"contacts[{i}].contact")
        return
    if check_contacts:
        normalise(event.contact)
    if isinstance(event, Signup):
        consent = event.kind is _CONSENT
        if consent and event.consent is None:
            raise ContractError(Rejection.MISSING_FIELD, "required when kind = consent", "consent")
        if not consent and event.consent is not None:
            raise ContractError(
                Rejection.INVALID_VALUE, "only allowed when kind = consent", "consent"
            )
    elif check_contacts and isinstance(event, Unsubscribe):
        for i, point in enumerate(event.linked_contacts):
            _contact(point, f"linked_contacts[{i}]")


def _default_to_occurred_at(record: dict[str, Any], name: str) -> None:
    """`dispatch_at` / `received_at` absent (or None) = `occurred_at` (contract §4, §5)."""
    if record.get(name) is None and "occurred_at" in record:
        record[name] = record["occurred_at"]


def _record(obj: Mapping[str, Any], cls: type[msgspec.Struct]) -> Mapping[str, Any]:
    """The record with the contract's input-side defaults that are other fields resolved
    (a copy when one is; the object itself when nothing changes)."""
    if cls is SendRequest and obj.get("dispatch_at") is not None:
        if IGNORED_FIELDS.isdisjoint(obj):
            return obj
    elif cls is Order or cls is Signup:
        return obj
    record = dict(obj)
    if cls is SendRequest:
        for name in IGNORED_FIELDS:
            record.pop(name, None)
        _default_to_occurred_at(record, "dispatch_at")
    elif cls is Unsubscribe:
        _default_to_occurred_at(record, "received_at")
        if "channels" in record:
            record["channels"] = _channels(record["channels"])
    return record


def _convert(obj: Mapping[str, Any], cls: type[msgspec.Struct]) -> Event:
    try:
        return msgspec.convert(_record(obj, cls), cls)  # type: ignore[return-value]
    except msgspec.ValidationError as exc:
        raise _rejection(exc) from None


def _long_fraction(value: Any) -> bool:
    return type(value) is str and len(value) > _EXACT_INSTANT_CHARS


def _convert_plain(obj: Mapping[str, Any], cls: type[msgspec.Struct]) -> Event | None:
    """The common case without the pre-pass: msgspec converts the record as it is, with
    no instant finer than msgspec reads exactly. None when the pre-pass may matter (a
    None for an absent field fails the conversion; the slow path then converts again
    and names the error)."""
    if type(obj) is not dict:
        return None
    get = obj.get
    for name in _INSTANTS[cls]:
        value = get(name)
        if type(value) is str and len(value) > _EXACT_INSTANT_CHARS:
            return None
    if cls is Signup:
        consent = get("consent")
        if consent is not None and (
            type(consent) is not dict or _long_fraction(consent.get("period_end"))
        ):
            return None
    try:
        return msgspec.convert(_record(obj, cls), cls)  # type: ignore[return-value]
    except msgspec.ValidationError:
        return None


def _parse(obj: Any, *, check_contacts: bool) -> Event:
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise ContractError(Rejection.INVALID_VALUE, "expected an object", "")
    kind = obj.get("type")
    cls = _EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        if kind is None:
            raise ContractError(Rejection.MISSING_FIELD, "required field is missing", "type")
        allowed = ", ".join(EventType)
        raise ContractError(Rejection.INVALID_ENUM, f"{kind!r} is not one of: {allowed}", "type")
    event = _convert_plain(obj, cls)
    if event is None:
        event = _convert(_plan(cls).prepare(obj), cls)
    _check(event, check_contacts)
    return _millis(event)


def parse_event(obj: Mapping[str, Any]) -> Event:
    """Validate one input record against contract.md v1.4 and build the typed event:
    msgspec checks types, enums, required and unknown fields; the pre-pass above handles
    absent-as-None and timestamps, `_check` what types cannot say."""
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


class _DecisionLine(msgspec.Struct, gc=False):
    """`decision_to_dict`'s object, encoded straight from a Struct: enums are written by
    value and instants by msgspec, which writes what `format_rfc3339` / `isoformat` do
    for the values `_exact_instant` lets through."""

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
    as_of: datetime | str
    decided_at: datetime
    revokes: bool


_LINE_ENCODER = msgspec.json.Encoder()
_MINUTE = timedelta(minutes=1)
_ZERO = timedelta(0)


def _exact_instant(value: datetime) -> datetime | str:
    """The instant itself where msgspec writes it as `format_rfc3339` does (no fraction,
    an offset of whole minutes), else `format_rfc3339`'s text."""
    if value.microsecond == 0:
        offset = value.utcoffset()
        if offset is not None and offset % _MINUTE == _ZERO:
            return value
    return format_rfc3339(value)


def decision_json(decision: Decision, decided_at: datetime) -> bytes:
    """The JSON of `decision_to_dict(decision)` with `decided_at` replaced by the shell's
    stamp, written as `datetime.isoformat` with "Z" writes a UTC instant (`sendgate
    decide`'s output line; built without the dict, the `str` calls and the formatting)."""
    return _LINE_ENCODER.encode(
        _DecisionLine(
            decision.request_id,
            decision.tenant,
            decision.legal_entity,
            decision.channel,
            decision.decision,
            decision.reason_code,
            decision.legal_basis,
            decision.rule_ids,
            decision.evidence,
            decision.rulebook_version,
            _exact_instant(decision.as_of),
            decided_at,
            decision.revokes,
        )
    )


class _DecisionShape(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The contract §6 JSON object (a `Decision` is stored as an array)."""

    request_id: NonEmpty
    tenant: NonEmpty
    legal_entity: NonEmpty
    channel: Channel
    decision: Outcome
    reason_code: Reason
    legal_basis: LegalBasis
    rule_ids: tuple[str, ...]
    evidence: tuple[str, ...]
    rulebook_version: NonEmpty
    as_of: datetime
    decided_at: datetime | None = None
    revokes: bool = False


def decision_from_dict(obj: Mapping[str, Any]) -> Decision:
    """Inverse of `decision_to_dict` (state changelog, audit)."""
    if not isinstance(obj, Mapping):
        raise ContractError(Rejection.INVALID_VALUE, "expected an object", "")
    try:
        shape = msgspec.convert(_plan(_DecisionShape).prepare(obj), _DecisionShape)
    except msgspec.ValidationError as exc:
        raise _rejection(exc) from None
    return Decision(*msgspec.structs.astuple(shape))
