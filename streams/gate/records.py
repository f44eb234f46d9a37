"""The records the gate hands to Kafka: plain data, shared by every step that emits."""

from __future__ import annotations

from dataclasses import dataclass, field

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce: topic, key, value and headers, nothing computed later."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)
