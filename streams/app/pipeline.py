"""The previous shell (before issue 15), kept for `accept_input` (the audit) and the tests
that still drive it (tests/integration/test_dsr.py). The worker, under either runtime,
runs `streams.gate.gate.Gate`.

Two steps, mirroring the two agents of the stream job:

* `Ingestor.ingest` turns one input record (bytes) into either forwarded records on the
  internal topic, re-keyed by contact key (one per contact point: an order's contacts, an
  unsubscribe's `linked_contacts`), or exactly one dead letter (non-negotiable 4).
* `Gate.process` folds one forwarded record into the contact's state with the pure
  core (`streams.core.engine.step`) and turns the decisions into output records.

No raw contact value leaves through the blocked or revoked topics, the state or the
dead-letter *reason*; only `sends.approved` carries the (normalised) contact for the ESP.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams import topics as T
from streams.core.engine import (
    ContactState,
    StepResult,
    contact_points,
    step,
)
from streams.core.errors import DecodeError, RejectedRecord, Rejection
from streams.core.keys import contact_key
from streams.core.model import ContactPoint, Decision, Event, SendRequest
from streams.core.parse import decision_to_dict, parse_event
from streams.core.policy import PolicyBook
from streams.gate.gate import admit_value
from streams.gate.records import (
    H_CONTACT_INDEX as H_CONTACT_INDEX,
)
from streams.gate.records import (
    H_EVENT_TYPE as H_EVENT_TYPE,
)
from streams.gate.records import (
    H_SOURCE as H_SOURCE,
)
from streams.gate.records import (
    H_TRACEPARENT as H_TRACEPARENT,
)
from streams.gate.records import (
    H_TRACESTATE as H_TRACESTATE,
)
from streams.gate.records import (
    PASSTHROUGH_HEADERS as PASSTHROUGH_HEADERS,
)
from streams.gate.records import (
    Headers as Headers,
)
from streams.gate.records import (
    OutRecord as OutRecord,
)
from streams.gate.records import (
    header as header,
)
from streams.gate.records import (
    headers_as_list as headers_as_list,
)

MAX_PAYLOAD_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    forwards: tuple[OutRecord, ...]
    dead_letter: OutRecord | None
    rejection: RejectedRecord | None
    event_type: str | None


@dataclass(frozen=True, slots=True)
class GateOutcome:
    state: ContactState
    outputs: tuple[OutRecord, ...]
    decisions: tuple[Decision, ...]
    duplicate: bool
    event: Event
    contact: ContactPoint


def message_headers(msg: Any) -> Headers:
    """Headers of a confluent-kafka message as (str, bytes) pairs."""
    return headers_as_list(msg.headers())


def _utc_now() -> datetime:
    return datetime.now(UTC)


_EVENT_TYPE_BYTES: dict[str, bytes] = {t: t.encode() for t in T.EVENT_TYPES}
_INDEX_BYTES: tuple[bytes, ...] = tuple(str(i).encode() for i in range(16))


def _index_bytes(index: int) -> bytes:
    return _INDEX_BYTES[index] if index < len(_INDEX_BYTES) else str(index).encode()


def _type_of(event: Event) -> str:
    etype = event.type
    return str(getattr(etype, "value", etype))


def accept_input(
    codec: Any, expected: str, key: bytes | None, value: bytes | None,
    max_payload: int = MAX_PAYLOAD_BYTES,
) -> Event:
    """The admission check of every input record, shared by the worker and the re-audit.

    Raises `RejectedRecord` with the dead-letter reason; what passes is a valid event whose
    Kafka key is the catalogue's input key of its primary contact point.
    """
    return _admit(codec, expected, key, value, max_payload)[0]


def _admit(
    codec: Any, expected: str, key: bytes | None, value: bytes | None, max_payload: int,
) -> tuple[Event, tuple[ContactPoint, ...]]:
    """`accept_input`, also returning the normalised contact points (one admission check:
    `streams.gate.gate.admit_value`)."""
    return admit_value(codec, expected, key, value, max_payload)


class ParsedEvents:
    """A bounded memo of accepted input values: value bytes -> (event, contact points).

    The internal topic carries the input record's value unchanged, so when the gate step
    runs in the process whose ingest step accepted the record (always, with one worker),
    it takes the parsed event from here instead of decoding and parsing the same bytes
    again: decoding is deterministic, the same bytes give the same event. An entry is
    kept for as many gate steps as the ingest step expects to run here (`uses`) and is
    dropped after the last one; the oldest entries go past `capacity`. A miss (another
    worker ingested it, or it was dropped) just decodes. In memory only, never persisted.
    """

    def __init__(self, capacity: int = 32768) -> None:
        self.capacity = capacity
        self._items: OrderedDict[bytes, list[Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def put(self, value: bytes, event: Event, points: tuple[ContactPoint, ...],
            uses: int = 1) -> None:
        items = self._items
        entry = items.get(value)
        if entry is not None:  # the same bytes again (a re-sent record): same event
            entry[2] += uses
            return
        items[value] = [event, points, uses]
        if len(items) > self.capacity:
            items.popitem(last=False)

    def take(self, value: bytes) -> tuple[Event, tuple[ContactPoint, ...]] | None:
        """The parsed event for `value`, counting one use of it (None: not here)."""
        entry = self._items.get(value)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        entry[2] -= 1
        if entry[2] <= 0:
            del self._items[value]
        return entry[0], entry[1]

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class Ingestor:
    """Decode, validate, check the key and fan out one input record (contract §1, §2, §4)."""

    def __init__(
        self,
        codec: Any,
        secret: bytes,
        *,
        clock: Callable[[], datetime] = _utc_now,
        max_payload: int = MAX_PAYLOAD_BYTES,
        topic_prefix: str = "",
        parsed: ParsedEvents | None = None,
        local: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.codec = codec
        self.secret = secret
        self.parsed = parsed  # where to leave parsed events for this process's gate step
        self.local = local  # does this process fold the contact events of this key?
        self.clock = clock
        self.max_payload = max_payload
        self.prefix = topic_prefix
        self.contact_events_topic = topic_prefix + T.CONTACT_EVENTS
        self.dead_letter_topic = topic_prefix + T.DEAD_LETTER
        self._expected = {
            topic_prefix + name: record for name, record in T.INPUT_RECORDS.items()
        }

    def ingest(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Any,
    ) -> IngestOutcome:
        hdrs = headers_as_list(headers)
        try:
            event, points = self._admit(topic, key, value)
        except RejectedRecord as exc:
            dl = self.dead_letter(topic, partition, offset, key, value, hdrs, exc)
            return IngestOutcome((), dl, exc, None)
        except Exception as exc:  # a codec or parser bug must not stop the worker
            rejected = DecodeError(Rejection.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
            dl = self.dead_letter(topic, partition, offset, key, value, hdrs, rejected)
            return IngestOutcome((), dl, rejected, None)
        source = f"{topic}:{partition}:{offset}".encode()
        passthrough = [(k, v) for k, v in hdrs if k in PASSTHROUGH_HEADERS]
        etype = _type_of(event)
        etype_b = _EVENT_TYPE_BYTES.get(etype) or etype.encode()
        body = value or b""
        secret, tenant, out_topic = self.secret, event.tenant, self.contact_events_topic
        forwards = tuple(
            OutRecord(
                out_topic,
                contact_key(secret, tenant, contact).encode(),
                body,
                [
                    (H_CONTACT_INDEX, _index_bytes(index)),
                    (H_SOURCE, source),
                    (H_EVENT_TYPE, etype_b),
                    *passthrough,
                ],
            )
            for index, contact in enumerate(points)
        )
        if self.parsed is not None:
            local = self.local
            uses = len(forwards) if local is None else sum(
                1 for f in forwards if local(f.key or b"")
            )
            if uses:
                self.parsed.put(body, event, points, uses)
        return IngestOutcome(forwards, None, None, etype)

    def _admit(
        self, topic: str, key: bytes | None, value: bytes | None
    ) -> tuple[Event, tuple[ContactPoint, ...]]:
        expected = self._expected.get(topic)
        if expected is None:
            raise DecodeError(Rejection.WRONG_TOPIC, f"not an input topic: {topic}")
        return _admit(self.codec, expected, key, value, self.max_payload)

    def dead_letter(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        exc: RejectedRecord,
    ) -> OutRecord:
        record = {
            "source_topic": topic,
            "partition": partition,
            "offset": offset,
            "reason": exc.reason.value,
            "field": exc.field or None,
            "message": exc.message[:2000],
            "original_key": key,
            "original_value": value or b"",
            "headers": {k: v for k, v in headers},
            "detected_at": self.clock(),
        }
        return OutRecord(
            topic=self.dead_letter_topic,
            key=key,
            value=self.codec.encode(T.DEAD_LETTER_RECORD, record),
            headers=[
                ("sg-reason", exc.reason.value.encode()),
                (H_SOURCE, f"{topic}:{partition}:{offset}".encode()),
            ],
        )


def _decision_record(decision: Decision, decided_at: datetime) -> dict[str, Any]:
    d = decision_to_dict(decision)
    d["as_of"] = decision.as_of
    d["decided_at"] = decided_at
    return d


class Gate:
    """Fold one contact event and emit its decisions (contract §6, §7)."""

    def __init__(
        self,
        codec: Any,
        policies: PolicyBook,
        *,
        clock: Callable[[], datetime] = _utc_now,
        topic_prefix: str = "",
        parsed: ParsedEvents | None = None,
    ) -> None:
        self.codec = codec
        self.policies = policies
        self.clock = clock
        self.parsed = parsed
        self.approved_topic = topic_prefix + T.APPROVED
        self.blocked_topic = topic_prefix + T.BLOCKED
        self.revoked_topic = topic_prefix + T.REVOKED

    def process(
        self, state: ContactState | None, key: bytes, value: bytes, headers: Any
    ) -> GateOutcome:
        hdrs = headers_as_list(headers)
        event_type = (header(hdrs, H_EVENT_TYPE) or b"").decode()
        expected = T.RECORD_FOR_EVENT_TYPE.get(event_type)
        parsed = self.parsed.take(value) if self.parsed is not None else None
        if parsed is not None and _type_of(parsed[0]) == event_type:
            event, points = parsed
        else:
            _, obj = self.codec.decode(value, expected)
            event = parse_event(obj)
            points = contact_points(event)
        index = int((header(hdrs, H_CONTACT_INDEX) or b"0").decode())
        contact = points[index]
        current = state if state is not None else ContactState.empty()
        policy = self.policies.policy_for(event.tenant)
        result: StepResult = step(current, event, policy, contact)
        emitted: list[Decision] = list(result.decisions)
        duplicate = result.duplicate is not None
        if result.duplicate is not None:
            emitted.append(result.duplicate)
        passthrough = [(k, v) for k, v in hdrs if k in PASSTHROUGH_HEADERS]
        outputs = tuple(
            self.output_for(d, event, key, contact, passthrough) for d in emitted
        )
        return GateOutcome(result.state, outputs, tuple(emitted), duplicate, event, contact)

    def output_for(
        self,
        decision: Decision,
        event: Event,
        key: bytes,
        contact: Any,
        passthrough: Headers,
    ) -> OutRecord:
        decided_at = decision.decided_at or self.clock()
        record = _decision_record(decision, decided_at)
        headers: Headers = [
            ("sg-request-id", decision.request_id.encode()),
            ("sg-decision", str(decision.decision).encode()),
            *passthrough,
        ]
        if decision.revokes:
            return OutRecord(
                self.revoked_topic, key, self.codec.encode(T.DECISION_RECORD, record), headers
            )
        if str(decision.decision) == "ALLOW" and isinstance(event, SendRequest):
            record.update(
                contact={"type": str(contact.type), "value": contact.value},
                dispatch_at=event.dispatch_at or event.occurred_at,
                platform=event.platform,
                campaign_id=event.campaign_id,
                template_id=event.template_id,
                declared_purpose=str(event.declared_purpose),
                service_kind=None if event.service_kind is None else str(event.service_kind),
            )
            return OutRecord(
                self.approved_topic, key, self.codec.encode(T.APPROVED_RECORD, record), headers
            )
        return OutRecord(
            self.blocked_topic, key, self.codec.encode(T.DECISION_RECORD, record), headers
        )
