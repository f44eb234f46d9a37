"""Producer SDK for shops: build contract events and publish them to the right topic.

    from streams.client import SendgateProducer, contact_fact, email, order, send_request, sender

    jan = email("Jan@Example.nl")                    # raw; the gate normalises it
    with SendgateProducer("127.0.0.1:19092") as gate:   # flushes on exit
        gate.publish(order(tenant="shop", legal_entity="Shop BV", order_id="o-1",
                           status="paid", paid_amount_cents=4995, product_categories=["bikes"],
                           contacts=[contact_fact(jan, optout_offered=True, optout_method="link")]))
        gate.publish(send_request(tenant="shop", legal_entity="Shop BV", contact=jan,
                                  channel="email", declared_purpose="service",
                                  service_kind="order_confirmation",
                                  sender=sender("Shop BV", has_identity_block=True)))
        gate.publish_jsonl("events.jsonl")           # a whole file, `expect` dropped

The builders return plain dicts in the contract's JSON shape (contract.md §1-§5), every
field written out, timestamps as RFC 3339 strings keeping the caller's offset. `publish`
validates against the Avro schema (a clear `EncodeError` naming the field otherwise),
picks the input topic from the catalogue, keys the record by
`streams.core.keys.input_key` of the primary contact (so every event of one contact point
lands on one partition, in order) and sets the `content-type`, `event-type` and
(optionally) W3C `traceparent` headers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from streams.codecs.base import Codec, EncodeError
from streams.config import Settings
from streams.core.enums import ContactType
from streams.core.errors import DecodeError, RejectedRecord, Rejection
from streams.core.jsonsafe import loads_bounded
from streams.core.keys import input_key
from streams.core.model import ContactPoint
from streams.core.parse import parse_event
from streams.ordering import SequenceStamp
from streams.topics import EVENT_TYPES, INPUT_MAX_MESSAGE_BYTES, input_topic_for

Timestamp = datetime | str
Event = dict[str, Any]

HEADER_CONTENT_TYPE = "content-type"
HEADER_EVENT_TYPE = "event-type"
HEADER_TRACEPARENT = "traceparent"
HEADER_TRACESTATE = "tracestate"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


# ----------------------------------------------------------------------------- builders


def _timestamp(value: Timestamp | None, name: str) -> str:
    if value is None:
        return datetime.now(UTC).isoformat(timespec="milliseconds")
    if isinstance(value, str):
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: naive datetime; give it a timezone (contract §1)")
    return value.isoformat()


def _optional_timestamp(value: Timestamp | None, name: str) -> str | None:
    return None if value is None else _timestamp(value, name)


def _common(
    event_type: str,
    *,
    legal_entity: str,
    event_id: str | None,
    occurred_at: Timestamp | None,
    tenant: str,
) -> Event:
    return {
        "type": event_type,
        "event_id": event_id or str(uuid.uuid4()),
        "occurred_at": _timestamp(occurred_at, "occurred_at"),
        "tenant": tenant,
        "legal_entity": legal_entity,
    }


def contact(type: str, value: str) -> dict[str, str]:
    """A contact point, raw (the gate normalises it): `{"type": ..., "value": ...}`."""
    return {"type": str(type), "value": value}


def email(value: str) -> dict[str, str]:
    return contact("email", value)


def phone(value: str) -> dict[str, str]:
    return contact("phone", value)


def postal(value: str) -> dict[str, str]:
    return contact("postal", value)


def device(value: str) -> dict[str, str]:
    return contact("device", value)


def social(value: str) -> dict[str, str]:
    return contact("social", value)


def contact_fact(
    contact: Mapping[str, str],
    *,
    obtained_at_sale: bool = True,
    optout_offered: bool = False,
    optout_method: str = "none",
    optout_exercised: bool = False,
    informed_of_calls: bool = False,
) -> dict[str, Any]:
    """One contact of an order and how it was collected (contract §2)."""
    return {
        "contact": dict(contact),
        "obtained_at_sale": obtained_at_sale,
        "optout_offered": optout_offered,
        "optout_method": optout_method,
        "optout_exercised": optout_exercised,
        "informed_of_calls": informed_of_calls,
    }


def order(
    *,
    legal_entity: str,
    order_id: str,
    contacts: Sequence[Mapping[str, Any]],
    kind: str = "purchase",
    status: str = "paid",
    paid_amount_cents: int = 0,
    product_categories: Iterable[str] = (),
    contract_end_at: Timestamp | None = None,
    recipient_kind: str = "consumer",
    address_type: str = "direct",
    marketplace: str | None = None,
    sold_by_phone: bool = False,
    confirmed_in_writing: bool = False,
    event_id: str | None = None,
    occurred_at: Timestamp | None = None,
    tenant: str = "default",
) -> Event:
    """An `order` (contract §2). `contacts` takes contact facts or bare contact points
    (wrapped with the contract defaults); the first one is the record key."""
    if not contacts:
        raise ValueError("an order lists at least one contact")
    return {
        **_common(
            "order", legal_entity=legal_entity, event_id=event_id,
            occurred_at=occurred_at, tenant=tenant,
        ),
        "order_id": order_id,
        "kind": kind,
        "status": status,
        "paid_amount_cents": paid_amount_cents,
        "product_categories": list(product_categories),
        "contract_end_at": _optional_timestamp(contract_end_at, "contract_end_at"),
        "recipient_kind": recipient_kind,
        "address_type": address_type,
        "marketplace": marketplace,
        "sold_by_phone": sold_by_phone,
        "confirmed_in_writing": confirmed_in_writing,
        "contacts": [dict(c) if "contact" in c else contact_fact(c) for c in contacts],
    }


def consent(
    *,
    consent_id: str,
    channels: Iterable[str],
    scope: Iterable[str],
    named_legal_entity: str,
    mechanism: str,
    source: str,
    product_categories: Iterable[str] = (),
    partners_named: Iterable[str] = (),
    platforms: Iterable[str] = (),
    bundled_with_purchase: bool = False,
    given_by_subject: bool = True,
    parental_consent: bool = False,
    wording_version: str | None = None,
    proof_ref: str | None = None,
    period_end: Timestamp | None = None,
) -> dict[str, Any]:
    """The `consent` of a consent signup (contract §3)."""
    return {
        "consent_id": consent_id,
        "channels": list(channels),
        "scope": list(scope),
        "product_categories": list(product_categories),
        "partners_named": list(partners_named),
        "platforms": list(platforms),
        "named_legal_entity": named_legal_entity,
        "mechanism": mechanism,
        "bundled_with_purchase": bundled_with_purchase,
        "given_by_subject": given_by_subject,
        "parental_consent": parental_consent,
        "source": source,
        "wording_version": wording_version,
        "proof_ref": proof_ref,
        "period_end": _optional_timestamp(period_end, "consent.period_end"),
    }


def signup(
    *,
    legal_entity: str,
    contact: Mapping[str, str],
    kind: str | None = None,
    consent: Mapping[str, Any] | None = None,
    recipient_kind: str = "consumer",
    subject_age: int | None = None,
    event_id: str | None = None,
    occurred_at: Timestamp | None = None,
    tenant: str = "default",
) -> Event:
    """A `signup` (contract §3); `kind` defaults to `consent` when a consent is given."""
    if kind is None:
        if consent is None:
            raise ValueError("signup: give a kind (account_created, ...) or a consent")
        kind = "consent"
    if (kind == "consent") != (consent is not None):
        raise ValueError("signup: a consent goes with kind='consent' and only with it")
    event: Event = {
        **_common(
            "signup", legal_entity=legal_entity, event_id=event_id,
            occurred_at=occurred_at, tenant=tenant,
        ),
        "kind": kind,
        "contact": dict(contact),
        "recipient_kind": recipient_kind,
        "subject_age": subject_age,
    }
    if consent is not None:
        event["consent"] = dict(consent)
    return event


def unsubscribe(
    *,
    legal_entity: str,
    contact: Mapping[str, str],
    source: str,
    kind: str = "unsubscribe",
    channels: Iterable[str] | None = None,
    consent_id: str | None = None,
    list_id: str | None = None,
    received_at: Timestamp | None = None,
    linked_contacts: Iterable[Mapping[str, str]] = (),
    event_id: str | None = None,
    occurred_at: Timestamp | None = None,
    tenant: str = "default",
) -> Event:
    """An `unsubscribe` (contract §4). `channels=None`: every channel of the contact's
    type; `["all"]`: all channels. `received_at=None`: same as `occurred_at`."""
    event: Event = {
        **_common(
            "unsubscribe", legal_entity=legal_entity, event_id=event_id,
            occurred_at=occurred_at, tenant=tenant,
        ),
        "kind": kind,
        "contact": dict(contact),
    }
    if channels is not None:
        event["channels"] = list(channels)
    event["source"] = source
    event["consent_id"] = consent_id
    event["list_id"] = list_id
    if received_at is not None:
        event["received_at"] = _timestamp(received_at, "received_at")
    event["linked_contacts"] = [dict(c) for c in linked_contacts]
    return event


def content(
    *,
    content_scope: str = "offers",
    has_promo: bool = False,
    promo_categories: Iterable[str] = (),
    third_party_offer: str | None = None,
    is_consent_request: bool = False,
    is_review_request: bool = False,
    review_incentive: bool = False,
) -> dict[str, Any]:
    """What a message contains (contract §5 `content`)."""
    return {
        "content_scope": content_scope,
        "has_promo": has_promo,
        "promo_categories": list(promo_categories),
        "third_party_offer": third_party_offer,
        "is_consent_request": is_consent_request,
        "is_review_request": is_review_request,
        "review_incentive": review_incentive,
    }


def sender(
    display_name: str,
    *,
    has_identity_block: bool = False,
    has_unsubscribe: bool = False,
    unsubscribe_requires_login: bool = False,
    cli_withheld: bool = False,
    sector: str = "other",
) -> dict[str, Any]:
    """How the sender presents itself (contract §5 `sender`); flags default to false, as
    in the contract: a marketing message without identity block or unsubscribe blocks."""
    return {
        "display_name": display_name,
        "has_identity_block": has_identity_block,
        "has_unsubscribe": has_unsubscribe,
        "unsubscribe_requires_login": unsubscribe_requires_login,
        "cli_withheld": cli_withheld,
        "sector": sector,
    }


def recipient(
    *,
    kind: str = "consumer",
    established_outside_eea: bool = False,
    address_published_for_purpose: bool = False,
    postfilter_registered: bool = False,
) -> dict[str, Any]:
    """Facts about the recipient (contract §5 `recipient`)."""
    return {
        "kind": kind,
        "established_outside_eea": established_outside_eea,
        "address_published_for_purpose": address_published_for_purpose,
        "postfilter_registered": postfilter_registered,
    }


def send_request(
    *,
    legal_entity: str,
    contact: Mapping[str, str],
    channel: str,
    declared_purpose: str,
    request_id: str | None = None,
    service_kind: str | None = None,
    relates_to_order_id: str | None = None,
    requested_by_recipient: bool = False,
    content: Mapping[str, Any] | None = None,
    sender: Mapping[str, Any] | None = None,
    recipient: Mapping[str, Any] | None = None,
    platform: str | None = None,
    dispatch_at: Timestamp | None = None,
    campaign_id: str | None = None,
    template_id: str | None = None,
    event_id: str | None = None,
    occurred_at: Timestamp | None = None,
    tenant: str = "default",
) -> Event:
    """A `send_request` (contract §5). Defaults: content/recipient with contract
    defaults, sender named after `legal_entity` with every flag false, `dispatch_at`
    absent (= `occurred_at`), `request_id` a fresh UUID."""
    event: Event = {
        **_common(
            "send_request", legal_entity=legal_entity, event_id=event_id,
            occurred_at=occurred_at, tenant=tenant,
        ),
        "request_id": request_id or str(uuid.uuid4()),
        "contact": dict(contact),
        "channel": channel,
        "declared_purpose": declared_purpose,
        "service_kind": service_kind,
        "relates_to_order_id": relates_to_order_id,
        "requested_by_recipient": requested_by_recipient,
        "content": dict(content) if content is not None else _content_defaults(),
        "sender": dict(sender) if sender is not None else _sender_defaults(legal_entity),
        "recipient": dict(recipient) if recipient is not None else _recipient_defaults(),
        "platform": platform,
    }
    if dispatch_at is not None:
        event["dispatch_at"] = _timestamp(dispatch_at, "dispatch_at")
    event["campaign_id"] = campaign_id
    event["template_id"] = template_id
    return event


# the builders' parameter names shadow these inside send_request
_content_defaults = content
_recipient_defaults = recipient


def _sender_defaults(legal_entity: str) -> dict[str, Any]:
    return sender(legal_entity)


def primary_contact(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The contact point that keys an event: an order's first contact, else `contact`."""
    if event.get("type") == "order":
        contacts = event.get("contacts") or []
        if not contacts:
            raise EncodeError(Rejection.MISSING_FIELD, "an order needs a contact", "contacts")
        first: Mapping[str, Any] = contacts[0]["contact"]
        return first
    point: Mapping[str, Any] = event["contact"]
    return point


def record_key(event: Mapping[str, Any]) -> bytes:
    """Kafka key of an input event (topic catalogue): UTF-8 `tenant|type|normalised value`."""
    point = primary_contact(event)
    return input_key(
        str(event.get("tenant", "default")),
        ContactPoint(ContactType(point["type"]), str(point["value"])),
    ).encode("utf-8")


# ----------------------------------------------------------------------------- producer


@dataclass(frozen=True, slots=True)
class Published:
    """Where one event went (delivery is confirmed asynchronously; see `flush`)."""

    topic: str
    key: bytes
    event_type: str
    event_id: str


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    topic: str
    key: bytes | None
    error: str


class DeliveryFailed(RuntimeError):
    """The broker did not take some records; `failures` says which."""

    def __init__(self, failures: Sequence[DeliveryFailure]) -> None:
        first = failures[0]
        super().__init__(
            f"{len(failures)} record(s) not delivered; first: {first.topic}: {first.error}"
        )
        self.failures = tuple(failures)


class SendgateProducer:
    """confluent_kafka.Producer with sendgate's topics, keys, headers and codec."""

    def __init__(
        self,
        bootstrap: str | None = None,
        codec: Codec | None = None,
        *,
        topic_prefix: str = "",
        config: Mapping[str, Any] | None = None,
        settings: Settings | None = None,
        producer: Any = None,
    ) -> None:
        settings = settings if settings is not None else Settings.from_env()
        if codec is None:
            from streams.codecs.registry import get_codec

            codec = get_codec(settings)
        self.codec = codec
        self.topic_prefix = topic_prefix
        self._content_type = codec.content_type.encode("ascii")
        self._failures: list[DeliveryFailure] = []
        self.delivered = 0
        if producer is None:
            from confluent_kafka import Producer

            # murmur2 like the Java client (Settings.kafka.producer), so one key lands on
            # the same partition whichever client produced it (co-partitioning)
            conf: dict[str, Any] = settings.kafka.with_bootstrap(bootstrap).producer({
                "enable.idempotence": True,  # no duplicates or reordering on retry
                "acks": "all",
                "linger.ms": 5,
                "message.max.bytes": INPUT_MAX_MESSAGE_BYTES,
            })
            conf.update(config or {})
            producer = Producer(conf)
        self.producer = producer
        self._stamp = SequenceStamp()

    def __enter__(self) -> SendgateProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.flush()

    def topic_for(self, event_type: str) -> str:
        return self.topic_prefix + input_topic_for(event_type).name

    def publish(
        self,
        event: Mapping[str, Any],
        *,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> Published:
        """Validate, encode and enqueue one event; nothing is sent when it is invalid.

        Raises `EncodeError` (schema: missing/unknown field, bad enum or timestamp, with
        the field path) or `ContractError` (contract rules beyond the schema: a consent
        without kind=consent, a channel that does not fit the contact type, a phone
        number that cannot be normalised).
        """
        event_type = event.get("type")
        if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
            raise EncodeError(
                Rejection.INVALID_ENUM,
                f"{event_type!r} is not an event type ({', '.join(EVENT_TYPES)})",
                "type",
            )
        spec = input_topic_for(event_type)
        topic = self.topic_prefix + spec.name
        value = self.codec.encode(spec.value_schemas[0], event, topic=topic)
        parse_event(event)  # the contract rules a schema cannot say (ContractError)
        key = record_key(event)
        headers = [
            (HEADER_CONTENT_TYPE, self._content_type),
            (HEADER_EVENT_TYPE, event_type.encode("ascii")),
            self._stamp.header(),  # tie-break of the gate's merge order (streams.ordering)
        ]
        if traceparent is not None:
            if not _TRACEPARENT.match(traceparent):
                raise ValueError(f"not a W3C traceparent: {traceparent!r}")
            headers.append((HEADER_TRACEPARENT, traceparent.encode("ascii")))
            if tracestate:
                headers.append((HEADER_TRACESTATE, tracestate.encode("utf-8")))
        self._produce(topic, key, value, headers)
        return Published(topic, key, event_type, str(event.get("event_id", "")))

    def _produce(
        self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        while True:
            try:
                self.producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery
                )
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                self.producer.poll(0.5)
        self.producer.poll(0)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._failures.append(DeliveryFailure(msg.topic(), msg.key(), str(err)))
        else:
            self.delivered += 1

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for delivery; returns how many are still queued, raises DeliveryFailed."""
        remaining: int = self.producer.flush(timeout)
        if self._failures:
            failures, self._failures = self._failures, []
            raise DeliveryFailed(failures)
        return remaining

    def publish_jsonl(
        self,
        path: str | Path,
        *,
        transform: Callable[[Event], Event] | None = None,
        flush: bool = True,
    ) -> int:
        """Publish every line of a JSONL event file in order (`expect` is dropped).

        Stops at the first invalid line with its error, prefixed by `file:line`.
        """
        count = 0
        with Path(path).open(encoding="utf-8") as lines:
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    event = loads_bounded(line)
                except DecodeError as exc:  # not JSON, too large or too deeply nested
                    raise DecodeError(exc.reason, f"{path}:{lineno}: {exc.message}") from exc
                if not isinstance(event, dict):
                    raise DecodeError(Rejection.BAD_JSON, f"{path}:{lineno}: not an object")
                event.pop("expect", None)
                if transform is not None:
                    event = transform(event)
                try:
                    self.publish(event)
                except RejectedRecord as exc:
                    where = f"{path}:{lineno}: {exc.message}"
                    raise type(exc)(exc.reason, where, exc.field) from exc
                count += 1
        if flush:
            self.flush()
        return count
