"""The patched `Consumer.getmany` of the faust adapter: records it does not hand on are
read again (the tenth session's loss: fetched while paused, dropped, committed past)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streams.app.faust_patches import _getmany

LOG = logging.getLogger("test.faust")


class TP(NamedTuple):
    topic: str
    partition: int


A, B = TP("in", 0), TP("in", 1)


@dataclass(frozen=True)
class Rec:
    offset: int


class _Scheduler:
    @staticmethod
    def iterate(records: dict[TP, list[Rec]]) -> Iterator[tuple[TP, Rec]]:
        """Round-robin over partitions, as faust's scheduler does."""
        its = {tp: iter(recs) for tp, recs in records.items()}
        while its:
            for tp in list(its):
                rec = next(its[tp], None)
                if rec is None:
                    del its[tp]
                else:
                    yield tp, rec


@dataclass
class FakeConsumer:
    """Harness: the attributes `getmany` reads, with a fetch result and a seek log."""

    records: dict[TP, list[Rec]]
    active: set[TP]
    flow_active: bool = True
    should_stop: bool = False
    stop_after: int | None = None  # stop the flow after this many handed-on records
    seeks: list[tuple[TP, int]] = field(default_factory=list)
    full_seeks: int = 0
    _buffered_partitions: set[TP] = field(default_factory=set)
    scheduler: _Scheduler = field(default_factory=_Scheduler)
    log: logging.Logger = LOG

    def __post_init__(self) -> None:
        monitor = type("Monitor", (), {"track_tp_end_offset": lambda *_: None})()
        self.app = type("App", (), {"consumer_generation_id": 1, "monitor": monitor})()

    async def _wait_next_records(self, timeout: float) -> tuple[Any, set[TP]]:
        return self.records, self.active

    def _to_message(self, tp: TP, rec: Rec) -> tuple[TP, int]:
        return tp, rec.offset

    def highwater(self, tp: TP) -> int:
        return 100

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def perform_seek(self) -> None:
        self.full_seeks += 1


def _run(consumer: FakeConsumer) -> list[tuple[TP, int]]:
    async def go() -> list[tuple[TP, int]]:
        out = []
        async for _tp, message in _getmany(consumer, 1.0):
            out.append(message)
            if consumer.stop_after is not None and len(out) >= consumer.stop_after:
                consumer.flow_active = False
        return out

    return asyncio.run(go())


def test_records_of_a_paused_partition_are_sought_back_to_the_first() -> None:
    c = FakeConsumer({A: [Rec(9), Rec(10), Rec(11)], B: [Rec(4), Rec(5)]}, active={B})
    assert _run(c) == [(B, 4), (B, 5)]
    assert c.seeks == [(A, 9)]


def test_a_flow_stopped_mid_batch_seeks_back_every_partition_not_finished() -> None:
    c = FakeConsumer({A: [Rec(9), Rec(10)], B: [Rec(4), Rec(5)]}, active={A, B},
                     stop_after=2)
    assert _run(c) == [(A, 9), (B, 4)]
    assert sorted(c.seeks) == [(A, 10), (B, 5)]


def test_a_new_generation_mid_batch_seeks_back() -> None:
    c = FakeConsumer({A: [Rec(1), Rec(2), Rec(3)]}, active={A})

    async def go() -> list[Any]:
        out = []
        async for _tp, message in _getmany(c, 1.0):
            out.append(message)
            c.app.consumer_generation_id = 2  # type: ignore[attr-defined]
        return out

    assert asyncio.run(go()) == [(A, 1)]
    assert c.seeks == [(A, 2)]


def test_nothing_dropped_nothing_sought() -> None:
    c = FakeConsumer({A: [Rec(1), Rec(2)], B: [Rec(7)]}, active={A, B})
    assert _run(c) == [(A, 1), (B, 7), (A, 2)]
    assert c.seeks == [] and c.full_seeks == 0


def test_fetched_while_the_flow_is_stopped_seeks_to_the_committed_offsets() -> None:
    c = FakeConsumer({A: [Rec(1)]}, active={A}, flow_active=False)
    assert _run(c) == []
    assert c.full_seeks == 1 and c.seeks == []
