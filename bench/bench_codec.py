"""Avro codec micro-benchmark (issues 15 §8, 16 §4): µs per record, old path vs new.

    decode   `AvroCodec.decode` of the workload's input records per record type, with the
             fast path (cavro + compiled finish) and without it (`fast=False`: fastavro
             with enums as ints, the recursive enum mapper and the timestamp walk)
    encode   the decision records of those events as `Gate.output_for` builds them, against
             the former body (`decision_to_dict` with RFC 3339 strings, then the shaper and
             fastavro), per topic (blocked, approved, revoked)

Process time, one run, ratios in the same run (house rule: no timed tests).
Usage: `.venv/bin/python bench/bench_codec.py [--events 20000] [--repeat 3]`.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams import topics as T
from streams.codecs.avro import AvroCodec
from streams.core.engine import contact_points
from streams.core.model import ContactPoint, Decision, Event
from streams.core.parse import parse_event
from streams.core.policy import PolicyBook
from streams.gate.gate import ContactEvent, Gate, MemoryStore
from streams.gate.records import Headers, InRecord
from streams.testing.reference_output import former_output
from streams.workload import Workload

SECRET = b"bench-codec-not-a-secret"
NOW = datetime(2026, 12, 7, 6, 0, 0, 123000, tzinfo=UTC)


def timed(fn: Callable[[], Any], count: int, repeat: int) -> float:
    """Best of `repeat` runs, µs per item (process time, gc off)."""
    best = []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        t0 = time.process_time()
        fn()
        best.append((time.process_time() - t0) / count * 1e6)
        gc.enable()
    return min(best)


Row = tuple[str, int, float, float]


def decode_rows(events: Sequence[dict[str, Any]], repeat: int) -> list[Row]:
    fast, slow = AvroCodec(), AvroCodec(fast=False)
    by_record: dict[str, list[bytes]] = defaultdict(list)
    for obj in events:
        record = T.RECORD_FOR_EVENT_TYPE[obj["type"]]
        by_record[record].append(slow.encode(record, obj))
    rows = []
    for record, values in sorted(by_record.items()):
        for value in values:
            assert fast.decode(value, record) == slow.decode(value, record)

        def run(codec: AvroCodec, record: str = record, values: list[bytes] = values) -> None:
            decode = codec.decode
            for value in values:
                decode(value, record)

        rows.append((record, len(values), timed(lambda: run(slow), len(values), repeat),
                     timed(lambda: run(fast), len(values), repeat)))
    return rows


Output = tuple[Decision, Event, bytes, ContactPoint, Headers]


def decisions(events: Sequence[dict[str, Any]]) -> list[Output]:
    """Every decision the gate folds from `events`, with what `output_for` needs."""
    gate = Gate(AvroCodec(), PolicyBook.default(), SECRET, clock=lambda: NOW)
    store = MemoryStore()
    out: list[Output] = []
    for i, obj in enumerate(events):
        event = parse_event(obj)
        source = InRecord("bench", 0, i, 0, None, b"", [])
        for route in gate.routes(event, contact_points(event)):
            ce = ContactEvent(event, route.contact, route.key, [])
            folded = gate.fold(store, ce, source)
            out.extend((d, event, route.key, route.contact, []) for d in folded.decisions)
    return out


def encode_rows(outputs: Sequence[Output], repeat: int) -> list[Row]:
    gate = Gate(AvroCodec(), PolicyBook.default(), SECRET, clock=lambda: NOW)
    former = Gate(AvroCodec(fast=False), PolicyBook.default(), SECRET, clock=lambda: NOW)
    by_topic: dict[str, list[Output]] = defaultdict(list)
    for o in outputs:
        by_topic[gate.output_for(*o).topic].append(o)
    rows = []
    for topic, items in sorted(by_topic.items()):
        for o in items:
            assert gate.output_for(*o).value == former_output(former, o[0], o[1], o[3])

        def new(items: list[Output] = items) -> None:
            output_for = gate.output_for
            for o in items:
                output_for(*o)

        def old(items: list[Output] = items) -> None:
            for d, e, _, c, _ in items:
                former_output(former, d, e, c)

        rows.append((topic, len(items), timed(old, len(items), repeat),
                     timed(new, len(items), repeat)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    events = list(Workload(contacts=args.events // 10, tenants=4, seed=7, run_id="c")
                  .events(args.events))
    print(f"{'decode':10s} {'record':14s} {'n':>7s} {'old us':>8s} {'new us':>8s} {'x':>6s}")
    for name, n, old, new in decode_rows(events, args.repeat):
        print(f"{'':10s} {name:14s} {n:7d} {old:8.2f} {new:8.2f} {old / new:6.2f}")
    rows = encode_rows(decisions(events), args.repeat)
    print(f"{'encode':10s} {'topic':14s} {'n':>7s} {'old us':>8s} {'new us':>8s} {'x':>6s}")
    for name, n, old, new in rows:
        print(f"{'':10s} {name:14s} {n:7d} {old:8.2f} {new:8.2f} {old / new:6.2f}")


if __name__ == "__main__":
    main()
