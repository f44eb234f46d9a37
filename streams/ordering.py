"""The one order in which a contact's events are folded, whoever reads the logs (issue 15 §4).

Kafka orders a partition, not four topics. The worker's task merge and the audit's replay
both take records by this key, so the order is a property of the logs:

1. the record's broker timestamp (the input topics use `LogAppendTime`, so it is the
   broker's append time; a forwarded record carries its origin's),
2. the `sg-seq` header the SDK stamps (a strictly increasing nanosecond stamp per producer
   process, so a shop's own serial publishing order survives a millisecond tie; 0 if absent),
3. the topic's rank (orders, signups, unsubscribes, send-requests, then the internal topic),
4. partition, then offset.

Within one partition the offset order is kept as it is (a k-way merge of partition heads).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Final

H_SEQUENCE: Final = "sg-seq"
"""Header with the producer's sequence stamp (decimal ASCII nanoseconds)."""

TOPIC_RANK: Final[dict[str, int]] = {
    "order": 0,
    "signup": 1,
    "unsubscribe": 2,
    "send_request": 3,
}
"""Tie-break rank per input event type; the internal (forward) topic ranks last."""
INTERNAL_RANK: Final = 4

MergeKey = tuple[int, int, int, int, int]


def merge_key(
    timestamp_ms: int, sequence: int, topic_rank: int, partition: int, offset: int
) -> MergeKey:
    return (timestamp_ms, sequence, topic_rank, partition, offset)


def sequence_of(headers: Sequence[tuple[str, bytes | None]] | None) -> int:
    """The `sg-seq` stamp of a record, 0 when absent or malformed (other producers)."""
    if headers:
        for name, value in headers:
            if name == H_SEQUENCE and value:
                try:
                    return int(value)
                except ValueError:
                    return 0
    return 0


class SequenceStamp:
    """Strictly increasing stamps for one producer process: wall-clock nanoseconds, bumped
    by one when the clock has not moved (or went back), so two sends never tie."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return self._last

    def header(self) -> tuple[str, bytes]:
        return (H_SEQUENCE, str(self.next()).encode("ascii"))
