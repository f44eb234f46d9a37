"""The gate: one typed component between a runtime and the pure core (issue 15 §6).

    admit(input record)        decode, validate, check the key → the event and its routed
                               contact points, or one dead letter (contract §1, §2, §4)
    forward(admitted, route)   the record for the internal topic that carries an extra
                               contact (or a record on the wrong partition) to its owner
    fold(store, ...)           load state through a `StateStore`, `step`, store the new
                               state, encode decisions (approved / blocked / revoked) and
                               the stored decision of a repeated request (contract §6, §7)

No Kafka, no Redis: the Kafka task runtime, the faust adapter and the tests run the same
object with their own store. No raw contact value leaves through the blocked or revoked
topics, the state or a dead letter's reason; only `sends.approved` carries the normalised
contact for the ESP.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from streams import topics as T
from streams.codecs.base import Codec
from streams.core.apply import forget_order
from streams.core.engine import REDACTED, ContactState, StepResult, contact_points, step
from streams.core.enums import ContactType
from streams.core.errors import ContractError, DecodeError, RejectedRecord, Rejection
from streams.core.keys import input_key, normalised_contact_key
from streams.core.model import ContactPoint, Decision, Event, Order, SendRequest, keep
from streams.core.parse import parse_event
from streams.core.policy import PolicyBook
from streams.gate.dead_letter import dead_letter_record
from streams.gate.records import (
    H_CONTACT_INDEX,
    H_CONTACT_TYPE,
    H_EVENT_TYPE,
    H_FORGET,
    H_SOURCE,
    PASSTHROUGH_HEADERS,
    Headers,
    InRecord,
    OutRecord,
    header,
)
from streams.gate.routing import partition_for
from streams.gate.state_codec import ViewHint

MAX_PAYLOAD_BYTES = 1 << 20
ROUTE_CACHE = 200_000


class StateStore(Protocol):
    """Contact states by HMAC contact key (bytes), as the gate reads and writes them."""

    def get(self, key: bytes) -> ContactState | None: ...

    def put(self, key: bytes, state: ContactState, hint: ViewHint) -> None: ...


class MemoryStore:
    """A dict: unit tests, `decide`-like replays."""

    def __init__(self) -> None:
        self.states: dict[bytes, ContactState] = {}
        self.hints: dict[bytes, ViewHint] = {}

    def get(self, key: bytes) -> ContactState | None:
        return self.states.get(key)

    def put(self, key: bytes, state: ContactState, hint: ViewHint) -> None:
        self.states[key] = state
        self.hints[key] = hint


class Span(Protocol):
    def set_attribute(self, key: str, value: str | bool | int) -> None: ...


class GateTelemetry(Protocol):
    """What the gate reports (streams.app.telemetry.Telemetry implements it); with
    `tracing` False no span is opened per event."""

    tracing: bool

    def on_admit(self, topic: str, rejection: RejectedRecord | None) -> None: ...

    def on_dead_letter(self, reason: str) -> None: ...

    def decision_span(self, rec: InRecord) -> AbstractContextManager[Span | None]: ...

    def on_fold(self, folded: Folded, span: Span | None) -> None: ...

    def inject(self, rec: OutRecord, span: Span | None) -> OutRecord: ...


class Route(msgspec.Struct, frozen=True):
    """One contact point of an admitted record and the partition whose task owns it."""

    index: int
    contact: ContactPoint
    key: bytes
    partition: int


class Admitted(msgspec.Struct, frozen=True):
    record: InRecord
    event: Event
    routes: tuple[Route, ...]
    passthrough: Headers

    @property
    def event_type(self) -> str:
        return _type_of(self.event)


class Rejected(msgspec.Struct, frozen=True):
    rejection: RejectedRecord
    dead_letter: OutRecord


class ContactEvent(msgspec.Struct, frozen=True):
    """What a fold needs: the event, the contact point it is folded for, its key."""

    event: Event
    contact: ContactPoint
    key: bytes
    passthrough: Headers
    forget: bool = False


class Folded(msgspec.Struct, frozen=True):
    state: ContactState
    outputs: tuple[OutRecord, ...]
    decisions: tuple[Decision, ...]
    duplicate: bool
    event: Event
    contact: ContactPoint
    dead_letter: OutRecord | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _type_of(event: Event) -> str:
    etype = event.type
    return str(getattr(etype, "value", etype))


def _passthrough(headers: Headers) -> Headers:
    return [(k, v) for k, v in headers if k in PASSTHROUGH_HEADERS]


_EVENT_TYPE_BYTES: dict[str, bytes] = {t: t.encode() for t in T.EVENT_TYPES}


class Gate:
    """Admit, route and fold records for one deployment (codec, policies, secret, topics)."""

    def __init__(
        self,
        codec: Codec,
        policies: PolicyBook,
        secret: bytes,
        *,
        partitions: int = T.DEFAULT_PARTITIONS,
        topic_prefix: str = "",
        clock: Callable[[], datetime] = _utc_now,
        telemetry: GateTelemetry | None = None,
        max_payload: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self.codec = codec
        self.policies = policies
        self.secret = secret
        self.partitions = partitions
        self.clock = clock
        self.telemetry = telemetry
        self.max_payload = max_payload
        self.contact_events_topic = topic_prefix + T.CONTACT_EVENTS
        self.dead_letter_topic = topic_prefix + T.DEAD_LETTER
        self.approved_topic = topic_prefix + T.APPROVED
        self.blocked_topic = topic_prefix + T.BLOCKED
        self.revoked_topic = topic_prefix + T.REVOKED
        self.input_records = {topic_prefix + n: r for n, r in T.INPUT_RECORDS.items()}
        # (tenant, contact) -> (contact key, partition): the HMAC is the costliest step of
        # admission (OpenSSL 3 looks the digest up by name on every call)
        self._routes: dict[tuple[str, ContactPoint], tuple[bytes, int]] = {}

    # -- admission -------------------------------------------------------------------

    def is_input(self, topic: str) -> bool:
        return topic in self.input_records

    def admit(self, rec: InRecord) -> Admitted | Rejected:
        """Decode, validate and route one input record; never raises."""
        try:
            expected = self.input_records.get(rec.topic)
            if expected is None:
                raise DecodeError(Rejection.WRONG_TOPIC, f"not an input topic: {rec.topic}")
            event, points = admit_value(self.codec, expected, rec.key, rec.value,
                                        self.max_payload)
        except RejectedRecord as exc:
            return self._rejected(rec, exc)
        except Exception as exc:  # a codec or parser bug must not stop the worker
            return self._rejected(rec, DecodeError(
                Rejection.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}"))
        if self.telemetry is not None:
            self.telemetry.on_admit(rec.topic, None)
        return Admitted(rec, event, self.routes(event, points), _passthrough(rec.headers))

    def routes(self, event: Event, points: tuple[ContactPoint, ...]) -> tuple[Route, ...]:
        tenant, cache = event.tenant, self._routes
        out = []
        for i, p in enumerate(points):
            known = cache.get((tenant, p))
            if known is None:
                if len(cache) >= ROUTE_CACHE:
                    cache.clear()
                known = cache[(tenant, p)] = (
                    normalised_contact_key(self.secret, tenant, p).encode(),
                    partition_for(_input_key(tenant, p).encode(), self.partitions),
                )
            out.append(Route(i, p, known[0], known[1]))
        return tuple(out)

    def _rejected(self, rec: InRecord, exc: RejectedRecord) -> Rejected:
        if self.telemetry is not None:
            self.telemetry.on_admit(rec.topic, exc)
        return Rejected(exc, self.dead_letter(rec, exc))

    def contact_event(self, adm: Admitted, route: Route) -> ContactEvent:
        return ContactEvent(adm.event, route.contact, route.key, adm.passthrough)

    # -- forwards (internal topic) ---------------------------------------------------

    def forward(self, adm: Admitted, route: Route) -> OutRecord:
        """The record that carries contact `route` of `adm` to its owner's task. It keeps
        the origin's timestamp, so a replay of the internal topic sorts it where the
        origin was (ordering.merge_key)."""
        rec = adm.record
        etype = adm.event_type
        headers: Headers = [
            (H_CONTACT_INDEX, str(route.index).encode()),
            (H_SOURCE, f"{rec.topic}:{rec.partition}:{rec.offset}".encode()),
            (H_EVENT_TYPE, _EVENT_TYPE_BYTES.get(etype) or etype.encode()),
            *adm.passthrough,
        ]
        return OutRecord(
            self.contact_events_topic, route.key, rec.value or b"", headers,
            partition=route.partition, timestamp_ms=rec.timestamp_ms,
        )

    def forget_forward(self, adm: Admitted, key: bytes, partition: int,
                       contact_type: str) -> OutRecord:
        """The record that tells the owner of a contact which a later version of an order
        no longer lists to forget that order there (contract §2)."""
        rec = adm.record
        headers: Headers = [
            (H_CONTACT_TYPE, contact_type.encode()),
            (H_SOURCE, f"{rec.topic}:{rec.partition}:{rec.offset}".encode()),
            (H_EVENT_TYPE, b"order"),
            (H_FORGET, b"1"),
        ]
        return OutRecord(self.contact_events_topic, key, rec.value or b"", headers,
                         partition=partition, timestamp_ms=rec.timestamp_ms)

    def forget_event(self, adm: Admitted, key: bytes, contact_type: str) -> ContactEvent:
        return ContactEvent(adm.event, _redacted(contact_type), key, [], forget=True)

    def open_forward(self, rec: InRecord) -> ContactEvent | Rejected:
        """The contact event a forward carries (decoded again: forwards are rare)."""
        try:
            etype = (header(rec.headers, H_EVENT_TYPE) or b"").decode()
            expected = T.RECORD_FOR_EVENT_TYPE.get(etype)
            if expected is None or rec.value is None or rec.key is None:
                raise DecodeError(Rejection.PROCESSING_ERROR, "not a gate forward")
            _, obj = self.codec.decode(rec.value, expected)
            event = parse_event(obj)
            if header(rec.headers, H_FORGET) == b"1":
                ctype = (header(rec.headers, H_CONTACT_TYPE) or b"email").decode()
                return ContactEvent(event, _redacted(ctype), rec.key, [], forget=True)
            index = int((header(rec.headers, H_CONTACT_INDEX) or b"0").decode())
            contact = contact_points(event)[index]
        except RejectedRecord as exc:
            return self._rejected(rec, exc)
        except Exception as exc:
            return self._rejected(rec, DecodeError(
                Rejection.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}"))
        return ContactEvent(event, contact, rec.key, _passthrough(rec.headers))

    # -- fold ------------------------------------------------------------------------

    def fold(self, store: StateStore, ce: ContactEvent, source: InRecord) -> Folded:
        """Fold one contact event into the store; outputs carry the decisions. A failure
        of the core on this event dead-letters the record (fail closed) and keeps state."""
        tel = self.telemetry
        span_cm: AbstractContextManager[Span | None] = (
            tel.decision_span(source) if tel is not None and tel.tracing
            else nullcontext(None)
        )
        with span_cm as span:
            folded = self._fold(store, ce, source)
            if tel is not None:
                if folded.dead_letter is not None:
                    reason = header(folded.dead_letter.headers, "sg-reason") or b""
                    tel.on_dead_letter(reason.decode())
                else:
                    tel.on_fold(folded, span)
                    if folded.outputs and tel.tracing:
                        folded = _with_outputs(
                            folded, tuple(tel.inject(o, span) for o in folded.outputs))
        return folded

    def _fold(self, store: StateStore, ce: ContactEvent, source: InRecord) -> Folded:
        event, contact = ce.event, ce.contact
        try:
            state = store.get(ce.key)
            current = state if state is not None else ContactState.empty()
            if ce.forget:
                if not isinstance(event, Order) or state is None:
                    return Folded(current, (), (), False, event, contact)
                after = forget_order(current, event)
                if after is not current:
                    store.put(ce.key, after, self.hint(event, contact))
                return Folded(after, (), (), False, event, contact)
            result = stamp_decided_at(
                step(current, event, self.policies.policy_for(event.tenant), contact),
                self.clock,
            )
        except Exception as exc:
            dl = self.dead_letter(source, DecodeError(
                Rejection.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}"))
            return Folded(ContactState.empty(), (), (), False, event, contact, dl)
        if result.conflicting:
            dl = self.dead_letter(source, ContractError(
                Rejection.CONFLICTING_DUPLICATE,
                "event_id already seen with other content", "event_id"))
            return Folded(current, (), (), False, event, contact, dl)
        if result.state is not current or state is None:
            store.put(ce.key, result.state, self.hint(event, contact))
        emitted = list(result.decisions)
        duplicate = result.duplicate is not None
        if result.duplicate is not None:
            emitted.append(result.duplicate)
        outputs = tuple(self.output_for(d, event, ce.key, contact, ce.passthrough)
                        for d in emitted)
        return Folded(result.state, outputs, tuple(emitted), duplicate, event, contact)

    @staticmethod
    def hint(event: Event, contact: ContactPoint) -> ViewHint:
        return ViewHint(event.tenant, event.occurred_at, contact.type.value)

    # -- output records --------------------------------------------------------------

    def output_for(
        self, decision: Decision, event: Event, key: bytes, contact: ContactPoint,
        passthrough: Headers,
    ) -> OutRecord:
        """The output record of a decision (contract §6): the record is built from the
        `Decision` in the decoded shape (enums, datetimes), so the codec's compiled writer
        encodes it without an RFC 3339 round trip (issue 16 §4)."""
        record = _decision_record(decision)
        headers: Headers = [
            ("sg-request-id", decision.request_id.encode()),
            ("sg-decision", str(decision.decision).encode()),
            *passthrough,
        ]
        if decision.revokes:
            return OutRecord(self.revoked_topic, key, self.codec.encode(
                T.DECISION_RECORD, record, topic=self.revoked_topic), headers)
        if decision.decision == "ALLOW" and isinstance(event, SendRequest):
            record["contact"] = {"type": contact.type, "value": contact.value}
            record["dispatch_at"] = event.dispatch_at or event.occurred_at
            record["platform"] = event.platform
            record["campaign_id"] = event.campaign_id
            record["template_id"] = event.template_id
            record["declared_purpose"] = event.declared_purpose
            record["service_kind"] = event.service_kind
            return OutRecord(self.approved_topic, key, self.codec.encode(
                T.APPROVED_RECORD, record, topic=self.approved_topic), headers)
        return OutRecord(self.blocked_topic, key, self.codec.encode(
            T.DECISION_RECORD, record, topic=self.blocked_topic), headers)

    def dead_letter(self, rec: InRecord, rejection: RejectedRecord) -> OutRecord:
        """The record's dead letter (non-negotiable 4), built by the one builder of
        `streams.gate.dead_letter` (HMAC key, named field, hint for non-Avro bytes)."""
        return dead_letter_record(
            self.codec, self.secret,
            dead_letter_topic=self.dead_letter_topic, source_topic=rec.topic,
            partition=rec.partition, offset=rec.offset, key=rec.key, value=rec.value,
            headers=rec.headers, rejection=rejection, detected_at=self.clock(),
        )


def stamp_decided_at(result: StepResult, clock: Callable[[], datetime]) -> StepResult:
    """Stamp the wall-clock `decided_at` on new decisions, in the outputs *and* the state.

    The core leaves `decided_at` None (no clock). Stored in the state, the stamp reaches the
    status view (`last_decision.decided_at`, issue 12 §4) and a re-emitted duplicate carries
    the original time, so both copies of a request's decision are identical.
    """
    if not any(d.decided_at is None for d in result.decisions):
        return result
    now = clock()
    replace = msgspec.structs.replace
    decided = dict(result.state.decided)
    stamped: list[Decision] = []
    for d in result.decisions:
        if d.decided_at is not None:
            stamped.append(d)
            continue
        stamped.append(replace(d, decided_at=now))
        kept = decided.get(d.request_id)
        # the state keeps this very decision (not one re-emitted or superseded)
        if kept is not None and kept == keep(d):
            decided[d.request_id] = replace(kept, decided_at=now)
    return StepResult(replace(result.state, decided=decided), tuple(stamped),
                      result.duplicate, result.conflicting)


def _decision_record(d: Decision) -> dict[str, Any]:
    """Contract §6 in the decoded shape: enum members and datetimes as they are (the codec
    reads them as symbols and timestamp-millis; the JSON codec formats them)."""
    return {
        "request_id": d.request_id,
        "tenant": d.tenant,
        "legal_entity": d.legal_entity,
        "channel": d.channel,
        "decision": d.decision,
        "reason_code": d.reason_code,
        "legal_basis": d.legal_basis,
        "rule_ids": d.rule_ids,
        "evidence": d.evidence,
        "rulebook_version": d.rulebook_version,
        "as_of": d.as_of,
        "decided_at": d.decided_at,
        "revokes": d.revokes,
    }


def _with_outputs(f: Folded, outputs: tuple[OutRecord, ...]) -> Folded:
    return Folded(f.state, outputs, f.decisions, f.duplicate, f.event, f.contact, f.dead_letter)


def _redacted(contact_type: str) -> ContactPoint:
    return ContactPoint(ContactType(contact_type), REDACTED)


def _input_key(tenant: str, point: ContactPoint) -> str:
    return f"{tenant}|{point.type}|{point.value}"


def admit_value(
    codec: Codec, expected: str, key: bytes | None, value: bytes | None,
    max_payload: int = MAX_PAYLOAD_BYTES,
) -> tuple[Event, tuple[ContactPoint, ...]]:
    """The admission check of every input record, shared by the worker and the re-audit.

    Raises `RejectedRecord` with the dead-letter reason; what passes is a valid event whose
    Kafka key is the catalogue's input key of its primary contact point, with its
    normalised contact points (the fan-out).
    """
    if value is None:
        raise DecodeError(Rejection.TRUNCATED, "record has no value (tombstone)")
    if len(value) > max_payload:
        raise DecodeError(Rejection.OVERSIZE, f"{len(value)} bytes > limit {max_payload}")
    _, obj = codec.decode(value, expected)
    event = parse_event(obj)
    points = contact_points(event)
    if key != input_key(event.tenant, points[0]).encode():
        raise ContractError(
            Rejection.WRONG_KEY,
            "record key must be tenant|contact type|normalised contact of the "
            "primary contact point (see the topic catalogue)",
            "key",
        )
    return event, points

