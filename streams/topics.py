"""The topic catalogue: every Kafka topic sendgate reads or writes, in one place.

Plain data, no faust or Kafka imports: the stream job, the `topics` command, the SDK,
the AsyncAPI document (schemas/asyncapi.yaml, kept in sync by a test) and the tests all
build on it. All topics share one partition count (Settings.partitions, default 12) so
they stay co-partitioned; retention is always set explicitly on the topic, never left to
the broker default.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

DEFAULT_PARTITIONS = 12
DAY_MS = 24 * 60 * 60 * 1000
INPUT_RETENTION_MS = 30 * DAY_MS
OUTPUT_RETENTION_MS = 30 * DAY_MS
INTERNAL_RETENTION_MS = 30 * DAY_MS
# Dead letters hold whole input records (raw addresses): kept no longer than the inputs.
DEAD_LETTER_RETENTION_MS = INPUT_RETENTION_MS
AUDIT_RETENTION_MS = 365 * DAY_MS
# Inputs: a 1 MiB payload (the codec limit) plus key, headers and batch overhead fits.
INPUT_MAX_MESSAGE_BYTES = 4 << 20  # the gate dead-letters anything over 1 MiB (oversize)
# Dead letters wrap a whole rejected record; match the stream job's producer request size.
DEAD_LETTER_MAX_MESSAGE_BYTES = 6 << 20

# Topic names.
ORDERS = "orders"
SIGNUPS = "signups"
UNSUBSCRIBES = "unsubscribes"
SEND_REQUESTS = "send-requests"
APPROVED = "sends.approved"
BLOCKED = "sends.blocked"
REVOKED = "sends.revoked"
DEAD_LETTER = "sendgate.dead-letter"
DISPATCH_DEAD_LETTER = "sendgate.dispatch-dead-letter"
CONTACT_EVENTS = "sendgate.contact-events"
AUDIT_FINDINGS = "sendgate.audit-findings"

# Record (Avro schema) names, as in schemas/<name>.avsc.
ORDER_RECORD = "Order"
SIGNUP_RECORD = "Signup"
UNSUBSCRIBE_RECORD = "Unsubscribe"
SEND_REQUEST_RECORD = "SendRequest"
DECISION_RECORD = "Decision"
APPROVED_RECORD = "ApprovedSend"
DEAD_LETTER_RECORD = "DeadLetter"
DISPATCH_DEAD_LETTER_RECORD = "DispatchDeadLetter"
AUDIT_FINDING_RECORD = "AuditFinding"

INPUT_KEY = (
    'UTF-8 "{tenant}|{contact.type}|{normalised value}" of the primary contact point '
    "(order: its first contact), see streams.core.keys.input_key"
)
CONTACT_KEY = "UTF-8 hex HMAC-SHA256 contact key of (tenant, contact type, normalised value)"


class TopicRole(StrEnum):
    INPUT = "input"
    OUTPUT = "output"
    INTERNAL = "internal"
    DEAD_LETTER = "dead_letter"


class CleanupPolicy(StrEnum):
    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: what it carries and how the broker must keep it."""

    name: str
    role: TopicRole
    key: str  # what the record key is
    value_schemas: tuple[str, ...]  # record names of the values (schemas/<name>.avsc)
    description: str
    retention_ms: int
    cleanup_policy: CleanupPolicy = CleanupPolicy.DELETE
    partitions: int = DEFAULT_PARTITIONS
    max_message_bytes: int | None = None
    event_type: str | None = None  # contract `type` carried by an input topic

    @property
    def value_schema(self) -> str:
        """The value record name; several names are joined with `|`."""
        return "|".join(self.value_schemas)

    @property
    def retention_days(self) -> float:
        return self.retention_ms / DAY_MS

    def config(self) -> dict[str, str]:
        """Kafka topic configuration to create the topic with."""
        cfg = {"cleanup.policy": str(self.cleanup_policy), "retention.ms": str(self.retention_ms)}
        if self.max_message_bytes is not None:
            cfg["max.message.bytes"] = str(self.max_message_bytes)
        if self.role is TopicRole.INPUT:
            # arrival order at the broker, not producer clocks: what the worker saw, and
            # what `sendgate audit` replays by; also immune to old producer timestamps
            # being deleted by time-based retention at once
            cfg["message.timestamp.type"] = "LogAppendTime"
        return cfg


def _input(name: str, event_type: str, record: str, what: str) -> TopicSpec:
    return TopicSpec(
        name=name,
        role=TopicRole.INPUT,
        key=INPUT_KEY,
        value_schemas=(record,),
        description=f"{what} published by the shops (contract `{event_type}`)",
        retention_ms=INPUT_RETENTION_MS,
        max_message_bytes=INPUT_MAX_MESSAGE_BYTES,
        event_type=event_type,
    )


ORDERS_TOPIC = _input(ORDERS, "order", ORDER_RECORD, "Orders (contract §2)")
SIGNUPS_TOPIC = _input(SIGNUPS, "signup", SIGNUP_RECORD, "Signups and consents (§3)")
UNSUBSCRIBES_TOPIC = _input(
    UNSUBSCRIBES, "unsubscribe", UNSUBSCRIBE_RECORD, "Unsubscribes, objections, erasures (§4)"
)
SEND_REQUESTS_TOPIC = _input(
    SEND_REQUESTS, "send_request", SEND_REQUEST_RECORD, "Requests to send a message (§5)"
)
APPROVED_TOPIC = TopicSpec(
    name=APPROVED,
    role=TopicRole.OUTPUT,
    key=CONTACT_KEY,
    value_schemas=(APPROVED_RECORD,),
    description="ALLOW decisions with the contact and routing fields an ESP worker sends with",
    retention_ms=OUTPUT_RETENTION_MS,
)
BLOCKED_TOPIC = TopicSpec(
    name=BLOCKED,
    role=TopicRole.OUTPUT,
    key=CONTACT_KEY,
    value_schemas=(DECISION_RECORD,),
    description="BLOCK decisions (contract §6), without any raw contact value",
    retention_ms=OUTPUT_RETENTION_MS,
)
REVOKED_TOPIC = TopicSpec(
    name=REVOKED,
    role=TopicRole.OUTPUT,
    key=CONTACT_KEY,
    value_schemas=(DECISION_RECORD,),
    description="Revocations (revokes=true, BLOCK_LATE_OBJECTION) of earlier ALLOWs (R-OBJECT-3)",
    retention_ms=OUTPUT_RETENTION_MS,
)
DEAD_LETTER_TOPIC = TopicSpec(
    name=DEAD_LETTER,
    role=TopicRole.DEAD_LETTER,
    key=CONTACT_KEY + " of the contact the original key names; null when it names none",
    value_schemas=(DEAD_LETTER_RECORD,),
    description="Records the gate could not accept, whole, with a machine-readable reason",
    retention_ms=DEAD_LETTER_RETENTION_MS,
    max_message_bytes=DEAD_LETTER_MAX_MESSAGE_BYTES,
)
DISPATCH_DEAD_LETTER_TOPIC = TopicSpec(
    name=DISPATCH_DEAD_LETTER,
    role=TopicRole.DEAD_LETTER,
    key="the approved record's key, unchanged (the HMAC contact key)",
    value_schemas=(DISPATCH_DEAD_LETTER_RECORD,),
    description="Approved sends an ESP dispatcher gave up on (streams.esp), whole; they carry "
    "the contact value, so they are kept no longer than sends.approved",
    retention_ms=OUTPUT_RETENTION_MS,
)
CONTACT_EVENTS_TOPIC = TopicSpec(
    name=CONTACT_EVENTS,
    role=TopicRole.INTERNAL,
    key=CONTACT_KEY,
    value_schemas=(ORDER_RECORD, SIGNUP_RECORD, UNSUBSCRIBE_RECORD, SEND_REQUEST_RECORD),
    description="Input events re-keyed by contact key, one record per contact point (fan-out)",
    retention_ms=INTERNAL_RETENTION_MS,
    max_message_bytes=INPUT_MAX_MESSAGE_BYTES,
)
AUDIT_FINDINGS_TOPIC = TopicSpec(
    name=AUDIT_FINDINGS,
    role=TopicRole.INTERNAL,
    key=CONTACT_KEY + " of the request's contact; the request_id when it is not known",
    value_schemas=(AUDIT_FINDING_RECORD,),
    description="Results of re-auditing emitted decisions against a replay of the inputs",
    retention_ms=AUDIT_RETENTION_MS,
)

CATALOGUE: tuple[TopicSpec, ...] = (
    ORDERS_TOPIC,
    SIGNUPS_TOPIC,
    UNSUBSCRIBES_TOPIC,
    SEND_REQUESTS_TOPIC,
    APPROVED_TOPIC,
    BLOCKED_TOPIC,
    REVOKED_TOPIC,
    DEAD_LETTER_TOPIC,
    DISPATCH_DEAD_LETTER_TOPIC,
    CONTACT_EVENTS_TOPIC,
    AUDIT_FINDINGS_TOPIC,
)

INPUT_SPECS: tuple[TopicSpec, ...] = tuple(t for t in CATALOGUE if t.role is TopicRole.INPUT)
INPUT_TOPICS: tuple[str, ...] = tuple(t.name for t in INPUT_SPECS)
OUTPUT_TOPICS: tuple[str, ...] = tuple(t.name for t in CATALOGUE if t.role is TopicRole.OUTPUT)
# input topic name -> record name of its values
INPUT_RECORDS: dict[str, str] = {t.name: t.value_schemas[0] for t in INPUT_SPECS}
# contract `type` -> record name
RECORD_FOR_EVENT_TYPE: dict[str, str] = {
    str(t.event_type): t.value_schemas[0] for t in INPUT_SPECS
}
EVENT_TYPE_FOR_RECORD: dict[str, str] = {v: k for k, v in RECORD_FOR_EVENT_TYPE.items()}
EVENT_TYPES: tuple[str, ...] = tuple(RECORD_FOR_EVENT_TYPE)

_BY_NAME = {t.name: t for t in CATALOGUE}
_BY_EVENT_TYPE = {str(t.event_type): t for t in INPUT_SPECS}


def topic(name: str) -> TopicSpec:
    """Spec of a catalogue topic by (unprefixed) name; KeyError if not in the catalogue."""
    return _BY_NAME[name]


def input_topic_for(event_type: str) -> TopicSpec:
    """The input topic of a contract event type (`order`, `signup`, ...)."""
    try:
        return _BY_EVENT_TYPE[event_type]
    except KeyError:
        raise ValueError(
            f"unknown event type {event_type!r}; expected one of {', '.join(EVENT_TYPES)}"
        ) from None


def catalogue(
    *,
    prefix: str = "",
    partitions: int | None = None,
    specs: Iterable[TopicSpec] = CATALOGUE,
    dead_letter_retention_ms: int | None = None,
) -> tuple[TopicSpec, ...]:
    """The catalogue with names prefixed (test isolation, blue/green), one partition count
    and the configured dead-letter retention (`Settings.dead_letter_retention_ms`)."""
    return tuple(
        replace(
            t,
            name=prefix + t.name,
            partitions=t.partitions if partitions is None else partitions,
            retention_ms=(
                dead_letter_retention_ms
                if dead_letter_retention_ms is not None and t.role is TopicRole.DEAD_LETTER
                else t.retention_ms
            ),
        )
        for t in specs
    )
