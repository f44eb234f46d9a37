"""The ordered merge of a process's assigned partitions (issue 15 §4).

Records are handed out by `ordering.merge_key` (append time, `sg-seq`, topic rank,
partition, offset), one k-way merge over every partition this process owns, so the
extra contacts of a record can be folded in-process at the record's place in the order.
A partition whose buffer is empty but which is known to lag (its high watermark is past
the next offset) holds the merge back for at most `max_idle_s` (Kafka Streams'
`max.task.idle.ms`, KIP-353/695): on a backlog every partition's head is seen before a
record is taken; a partition that stays behind longer no longer stops the others. The time
counts per partition, from when it fell behind (Kafka Streams' `idlePartitionDeadlines`):
one shared timer, once run out, let every later lagging partition through unwaited — after
a rebalance a survivor then drained its backlog in fetch order (the chaos flake of the
fifth session).

A partition that looks caught up may still be about to deliver an earlier record: the broker
reads a fetch's partitions one after the other and the client enqueues them one by one, so
record Y of one partition can be seen before record X appended just before it to another
(the high watermark of X's partition did not include X yet). Hence the grace: while some
waited-for partition has nothing buffered, a record is taken only once its append time lies
`grace_ms` before the last time the fetch queue was seen empty, i.e. after at least one more
fetch cycle. Not the clock at the time of the pop: during a long drain the clock runs on while
X waits in the fetch queue, and Y was taken before it (the full-speed audit flake, CI of the
sixth session). Backlog records are older than that; live records wait `grace_ms` at most.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from streams.gate.records import InRecord
from streams.ordering import INTERNAL_RANK, MergeKey, merge_key, sequence_of

TP = tuple[str, int]


@dataclass(slots=True)
class _Part:
    buffer: deque[tuple[MergeKey, InRecord]] = field(default_factory=deque)
    next_offset: int = -1  # the offset after the last record buffered (-1: unknown)


class Merge:
    def __init__(self, rank: dict[str, int], max_idle_s: float,
                 high_watermark: Callable[[TP], int], waits_for: frozenset[str],
                 grace_ms: int = 0) -> None:
        self.rank = rank
        self.grace_ms = grace_ms
        self.empty_waiting = 0  # waited-for partitions with nothing buffered
        self.waits_for = waits_for  # topics whose lag holds the merge (the inputs)
        self.max_idle_s = max_idle_s
        self.high_watermark = high_watermark
        self.parts: dict[TP, _Part] = {}
        self.heap: list[tuple[MergeKey, TP]] = []
        self.blocked: set[TP] = set()
        self.blocked_since: dict[TP, float] = {}  # monotonic time a partition fell behind
        self.buffered = 0
        self.taken: dict[int, MergeKey] = {}  # per task: the key of the record taken last

    def assign(self, tp: TP, next_offset: int) -> None:
        old = self.parts.get(tp)
        if tp[0] in self.waits_for and (old is None or old.buffer):
            self.empty_waiting += 1
        self.parts[tp] = _Part(next_offset=next_offset)
        self.taken.pop(tp[1], None)
        self.blocked.discard(tp)
        self.blocked_since.pop(tp, None)

    def clear(self) -> None:
        self.parts.clear()
        self.heap.clear()
        self.blocked.clear()
        self.blocked_since.clear()
        self.taken.clear()
        self.buffered = 0
        self.empty_waiting = 0

    def size(self, tp: TP) -> int:
        part = self.parts.get(tp)
        return 0 if part is None else len(part.buffer)

    def add(self, rec: InRecord) -> int:
        """Buffer a fetched record; how many ms its append time lies before the record
        its task took last (0: in order). A late input record broke the task's order: it
        came after its partition's idle time ran out, or after its grace (a stalled broker
        or client). Forwards carry their origin's time, so they always look late."""
        tp = (rec.topic, rec.partition)
        part = self.parts.get(tp)
        if part is None:
            return 0  # not (or no longer) ours
        if rec.offset < part.next_offset:
            return 0  # already buffered (a seek back)
        key = merge_key(rec.timestamp_ms, sequence_of(rec.headers), self.rank[rec.topic],
                        rec.partition, rec.offset)
        taken = self.taken.get(tp[1])
        late = (max(1, taken[0] - key[0]) if taken is not None and key < taken
                and key[2] != INTERNAL_RANK else 0)
        if not part.buffer:
            heapq.heappush(self.heap, (key, tp))
            if tp in self.blocked:
                self.blocked.discard(tp)
                self.blocked_since.pop(tp, None)
            if tp[0] in self.waits_for:
                self.empty_waiting -= 1
        part.buffer.append((key, rec))
        part.next_offset = rec.offset + 1
        self.buffered += 1
        return late

    def refresh_blocked(self) -> None:
        """Recompute the lagging empty partitions (after a fetch)."""
        blocked = self.blocked
        blocked.clear()
        hw = self.high_watermark
        for tp, part in self.parts.items():
            if not part.buffer and tp[0] in self.waits_for and self._lags(tp, part, hw):
                blocked.add(tp)
        since = self.blocked_since
        for tp in [tp for tp in since if tp not in blocked]:
            del since[tp]

    @staticmethod
    def _lags(tp: TP, part: _Part, hw: Callable[[TP], int]) -> bool:
        high = hw(tp)
        return high < 0 or part.next_offset < 0 or high > part.next_offset

    def _waiting(self, now: float) -> bool:
        """Whether a lagging partition is still within its `max_idle_s`."""
        since, limit, waiting = self.blocked_since, self.max_idle_s, False
        for tp in self.blocked:
            if now - since.setdefault(tp, now) < limit:
                waiting = True
        return waiting

    def held(self, now: float) -> bool:
        """Whether a lagging partition holds the merge (its records are being fetched)."""
        return bool(self.blocked) and self._waiting(now)

    def grace_left_s(self, wall_ms: int) -> float:
        """Seconds until the head record's grace has passed (0: none to wait for)."""
        if not self.heap or not self.grace_ms or not self.empty_waiting:
            return 0.0
        return max(0.0, (self.heap[0][0][0] + self.grace_ms - wall_ms) / 1000)

    def pop(self, now: float, wall_ms: int | None = None) -> InRecord | None:
        """The next record in merge order, or None (empty, waiting for a lagging partition,
        or for the grace of a live record). `now`: monotonic seconds; `wall_ms`: the wall
        time in ms, comparable with append times, up to which every fetched record has been
        added (None: no grace)."""
        if not self.heap:
            return None
        if (self.empty_waiting and wall_ms is not None and self.grace_ms
                and wall_ms - self.heap[0][0][0] < self.grace_ms):
            return None
        if self.held(now):
            return None
        key, tp = heapq.heappop(self.heap)
        self.taken[tp[1]] = key
        part = self.parts[tp]
        _, rec = part.buffer.popleft()
        self.buffered -= 1
        if part.buffer:
            heapq.heappush(self.heap, (part.buffer[0][0], tp))
        elif tp[0] in self.waits_for:
            self.empty_waiting += 1
            if self._lags(tp, part, self.high_watermark):
                self.blocked.add(tp)
        return rec
