"""Issue 15 §4: the task merge hands records out by `ordering.merge_key` and waits, for a
bounded time only, for a partition known to be behind."""

from __future__ import annotations

from streams.gate.records import InRecord
from streams.ordering import H_SEQUENCE
from streams.runtime.merge import TP, Merge

RANK = {"orders": 0, "send-requests": 3, "internal": 4}


def rec(topic: str, partition: int, offset: int, ts: int, seq: int = 0) -> InRecord:
    headers = [(H_SEQUENCE, str(seq).encode())] if seq else []
    return InRecord(topic, partition, offset, ts, b"k", b"v", headers)


def merge(highs: dict[TP, int], idle_s: float = 1.0) -> Merge:
    m = Merge(RANK, idle_s, lambda tp: highs.get(tp, -1),
              frozenset({"orders", "send-requests"}))
    for tp in highs:
        m.assign(tp, 0)
    return m


def drain(m: Merge, now: float = 0.0) -> list[tuple[str, int]]:
    out = []
    while (r := m.pop(now)) is not None:
        out.append((r.topic, r.offset))
    return out


def test_records_come_out_by_time_then_sequence_then_topic() -> None:
    highs = {("orders", 0): 3, ("send-requests", 0): 3}
    m = merge(highs)
    for r in (rec("orders", 0, 0, 10), rec("orders", 0, 1, 20, seq=5), rec("orders", 0, 2, 30)):
        m.add(r)
    for r in (rec("send-requests", 0, 0, 10), rec("send-requests", 0, 1, 20, seq=4),
              rec("send-requests", 0, 2, 25)):
        m.add(r)
    m.refresh_blocked()
    assert drain(m) == [("orders", 0), ("send-requests", 0), ("send-requests", 1),
                        ("orders", 1), ("send-requests", 2), ("orders", 2)]


def test_a_partition_keeps_its_offset_order_even_if_timestamps_go_back() -> None:
    m = merge({("orders", 0): 2})
    m.add(rec("orders", 0, 0, 50))
    m.add(rec("orders", 0, 1, 40))
    m.refresh_blocked()
    assert drain(m) == [("orders", 0), ("orders", 1)]


def test_a_lagging_empty_partition_holds_the_merge_for_at_most_the_idle_time() -> None:
    highs = {("orders", 0): 5, ("send-requests", 0): 1}
    m = merge(highs, idle_s=1.0)
    m.add(rec("send-requests", 0, 0, 10))
    m.refresh_blocked()
    assert m.pop(100.0) is None  # orders:0 has records not fetched yet
    assert m.pop(100.5) is None
    later = m.pop(101.0)
    assert later is not None and later.topic == "send-requests"


def test_a_caught_up_empty_partition_does_not_hold_it() -> None:
    highs = {("orders", 0): 0, ("send-requests", 0): 1}
    m = merge(highs)
    m.add(rec("send-requests", 0, 0, 10))
    m.refresh_blocked()
    assert drain(m) == [("send-requests", 0)]


def test_the_internal_topic_does_not_hold_the_inputs_unless_listed() -> None:
    highs = {("internal", 0): 9, ("orders", 0): 1}
    m = merge(highs)
    m.assign(("internal", 0), 0)
    m.add(rec("orders", 0, 0, 10))
    m.refresh_blocked()
    assert drain(m) == [("orders", 0)]


def test_when_the_lagging_partition_delivers_its_earlier_record_goes_first() -> None:
    highs = {("orders", 0): 1, ("send-requests", 0): 1}
    m = merge(highs)
    m.add(rec("send-requests", 0, 0, 20))
    m.refresh_blocked()
    assert m.pop(0.0) is None
    m.add(rec("orders", 0, 0, 15))
    m.refresh_blocked()
    assert drain(m) == [("orders", 0), ("send-requests", 0)]


def graced(highs: dict[TP, int], grace_ms: int = 20) -> Merge:
    m = Merge(RANK, 5.0, lambda tp: highs.get(tp, -1),
              frozenset({"orders", "send-requests"}), grace_ms)
    for tp in highs:
        m.assign(tp, 0)
    return m


def test_a_live_record_waits_its_grace_while_another_partition_is_empty() -> None:
    """Y (append time 1000) is in; orders:0 looks caught up, but X, appended just before Y,
    may be in the next fetch: Y waits until 1020 (wall clock) unless X shows up."""
    highs = {("orders", 0): 0, ("send-requests", 0): 1}
    m = graced(highs)
    m.add(rec("send-requests", 0, 0, 1000))
    m.refresh_blocked()
    assert m.pop(0.0, wall_ms=1005) is None
    assert m.grace_left_s(1005) == 0.015
    m.add(rec("orders", 0, 0, 999))  # X arrives in the next fetch: it goes first
    assert drain_at(m, 1006) == [("orders", 0)]
    assert m.pop(0.0, wall_ms=1019) is None
    later = m.pop(0.0, wall_ms=1020)
    assert later is not None and later.topic == "send-requests"


def test_no_grace_when_every_waited_partition_has_records_or_the_record_is_old() -> None:
    highs = {("orders", 0): 1, ("send-requests", 0): 1}
    m = graced(highs)
    m.add(rec("send-requests", 0, 0, 1000))
    m.add(rec("orders", 0, 0, 1001))
    m.refresh_blocked()
    assert drain_at(m, 1001) == [("send-requests", 0)]  # orders:0 holds a later record
    backlog = graced({("orders", 0): 0, ("send-requests", 0): 1})
    backlog.add(rec("send-requests", 0, 0, 1000))
    backlog.refresh_blocked()
    assert drain_at(backlog, 60_000) == [("send-requests", 0)]  # appended long ago


def drain_at(m: Merge, wall_ms: int) -> list[tuple[str, int]]:
    out = []
    while (r := m.pop(0.0, wall_ms=wall_ms)) is not None:
        out.append((r.topic, r.offset))
    return out


def test_a_partition_stuck_past_its_idle_time_does_not_free_the_others() -> None:
    """orders:0 stays behind past its idle time, so the merge goes on without it; when
    orders:1 falls behind later, its earlier record is still waited for. (With one shared
    timer the survivor of a crash drained its backlog unwaited: the fifth session's chaos
    flake, a request decided before its partition's order.)"""
    highs = {("orders", 0): 1, ("orders", 1): 0, ("send-requests", 1): 1}
    m = merge(highs, idle_s=1.0)
    m.add(rec("send-requests", 1, 0, 10))
    m.refresh_blocked()
    assert m.pop(100.0) is None  # orders:0 lags
    assert drain(m, 101.0) == [("send-requests", 0)]  # ... too long: go on without it
    highs[("orders", 1)] = 1  # orders:1 got a record not fetched yet
    highs[("send-requests", 1)] = 2
    m.add(rec("send-requests", 1, 1, 30))
    m.refresh_blocked()
    assert m.pop(200.0) is None
    assert m.pop(200.9) is None
    m.add(rec("orders", 1, 0, 25))
    assert drain(m, 201.0) == [("orders", 0), ("send-requests", 1)]


def test_each_lagging_partition_has_its_own_idle_time() -> None:
    highs = {("orders", 0): 1, ("orders", 1): 0, ("send-requests", 0): 1}
    m = merge(highs, idle_s=1.0)
    m.assign(("orders", 1), 0)
    m.add(rec("send-requests", 0, 0, 10))
    m.refresh_blocked()
    assert m.pop(10.0) is None  # orders:0 lags since 10.0
    m.add(rec("orders", 0, 0, 20))
    highs[("orders", 1)] = 1  # orders:1 falls behind at 10.8
    m.refresh_blocked()
    assert m.pop(10.8) is None
    assert m.pop(11.2) is None  # 1.2 s after orders:0 fell behind, 0.4 s after orders:1
    m.add(rec("orders", 1, 0, 5))
    out = []
    while (r := m.pop(11.3)) is not None:
        out.append((r.topic, r.partition, r.offset))
    assert out == [("orders", 1, 0), ("send-requests", 0, 0), ("orders", 0, 0)]


def test_a_record_fetched_after_a_later_one_of_its_task_was_taken_is_reported_late() -> None:
    """The merge cannot undo a fold; it says when its order was broken (a partition past
    its idle time, a stalled fetch), per task: another task's older backlog is in order."""
    highs = {("orders", 0): 1, ("send-requests", 0): 1, ("orders", 1): 0}
    m = merge(highs)
    assert m.add(rec("send-requests", 0, 0, 1000)) == 0
    assert m.add(rec("orders", 0, 0, 1000, seq=2)) == 0
    m.refresh_blocked()
    assert drain(m) == [("send-requests", 0), ("orders", 0)]
    assert m.add(rec("orders", 1, 0, 400)) == 0  # task 1 took nothing yet
    highs[("orders", 0)] = 2
    assert m.add(rec("orders", 0, 1, 960)) == 40
    m.assign(("orders", 0), 5)  # a new assignment starts the task's order afresh
    assert m.add(rec("orders", 0, 5, 10)) == 0
