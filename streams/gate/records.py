"""Records crossing the gate's seams: what a runtime hands in, what it produces.

Plain frozen data, no Kafka client types, so the gate is tested without a broker and every
runtime (the Kafka task runtime, the faust adapter, the audit) converts at its edge. msgspec
Structs, not dataclasses: a few are made per record and a frozen dataclass's `__init__`
(one `object.__setattr__` per field) cost ~1 µs each on the worker's path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import msgspec

Headers = list[tuple[str, bytes]]

H_CONTACT_INDEX: Final = "sg-contact-index"
H_SOURCE: Final = "sg-source"
H_EVENT_TYPE: Final = "sg-event-type"
H_CONTACT_TYPE: Final = "sg-contact-type"
H_FORGET: Final = "sg-forget"
"""On a forward: the contact is no longer listed by this (later) version of the order;
forget the order there (contract §2) instead of applying it."""
H_TRACEPARENT: Final = "traceparent"
H_TRACESTATE: Final = "tracestate"
PASSTHROUGH_HEADERS: Final = (H_TRACEPARENT, H_TRACESTATE)


class InRecord(msgspec.Struct, frozen=True):
    """One consumed record: where it was read and what it holds."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers = msgspec.field(default_factory=list)


class OutRecord(msgspec.Struct, frozen=True):
    """One record to produce; `partition` None lets the producer's partitioner choose,
    `timestamp_ms` None lets the producer stamp it."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = msgspec.field(default_factory=list)
    partition: int | None = None
    timestamp_ms: int | None = None


def headers_as_list(headers: object) -> Headers:
    """Headers as (str, bytes) pairs, from a mapping or a sequence of pairs (faust,
    confluent-kafka); pairs with a None value are dropped."""
    if not headers:
        return []
    items: Iterable[tuple[object, object]]
    if isinstance(headers, Mapping):
        items = headers.items()
    elif isinstance(headers, Iterable):
        items = headers
    else:
        return []
    out: Headers = []
    for k, v in items:
        if v is None:
            continue
        out.append((str(k), v if isinstance(v, bytes) else str(v).encode()))
    return out


def header(headers: Sequence[tuple[str, bytes | None]], name: str) -> bytes | None:
    for k, v in headers:
        if k == name:
            return v
    return None
