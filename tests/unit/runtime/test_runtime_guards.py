"""Issue 15 §4/§9: guards of the runtime shell. A partition taken over with a backlog must
look behind until it is fetched; a member the group forgot subscribes again.

librdkafka's cached high watermark is updated by fetch responses only, so a partition this
process owned before reports its old value after a new assignment (pinned against a real
broker in tests/integration/test_runtime_watermarks.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from confluent_kafka import TopicPartition

from streams.gate.records import InRecord
from streams.kafka_config import KafkaClientConfig
from streams.runtime.merge import Merge
from streams.runtime.tasks import RuntimeConfig, TaskRuntime

RANK = {"orders": 0, "send-requests": 3}


class StaleConsumer:
    def __init__(self, cached: int) -> None:
        self.cached = cached

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        assert cached
        return 0, self.cached


def high(cached: int, at_assign: int | None) -> int:
    tp = ("orders", 3)
    runtime = SimpleNamespace(consumer=StaleConsumer(cached),
                              assigned_hw={} if at_assign is None else {tp: at_assign})
    return TaskRuntime._high_watermark(runtime, tp)  # type: ignore[arg-type]


def test_a_stale_cached_value_loses_to_the_one_asked_at_assignment() -> None:
    assert high(cached=5, at_assign=25) == 25


def test_a_fetched_value_past_the_assignment_wins() -> None:
    assert high(cached=40, at_assign=25) == 40


def test_a_partition_not_fetched_yet_is_unknown_whatever_the_assignment_said() -> None:
    """No cached value: the client has not fetched it yet, so even a partition the broker
    called empty at assignment may be about to deliver records older than the others'."""
    assert high(cached=-1001, at_assign=25) == -1
    assert high(cached=-1001, at_assign=0) == -1
    assert high(cached=-1001, at_assign=None) == -1


class GroupConsumer:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def unsubscribe(self) -> None:
        self.calls.append("unsubscribe")

    def subscribe(self, topics: list[str], **callbacks: object) -> None:
        self.calls.append("subscribe")


def stuck(lost_at: float, now: float) -> tuple[list[str], float]:
    consumer = GroupConsumer()
    runtime = SimpleNamespace(consumer=consumer, _lost_at=lost_at, inputs=("orders",),
                              internal="contact-events", cfg=SimpleNamespace(rejoin_after_s=60.0),
                              _on_assign=None, _on_revoke=None, _on_lost=None)
    runtime._subscribe = lambda: TaskRuntime._subscribe(runtime)  # type: ignore[arg-type]
    TaskRuntime._rejoin_if_stuck(runtime, now)  # type: ignore[arg-type]
    return consumer.calls, runtime._lost_at


def test_lost_partitions_without_an_assignment_for_a_minute_subscribe_again() -> None:
    assert stuck(lost_at=100.0, now=130.0) == ([], 100.0)
    assert stuck(lost_at=100.0, now=161.0) == (["unsubscribe", "subscribe"], 161.0)


class QueueConsumer:
    """A fetch queue that hands out at most `n` records per batch call."""

    def __init__(self, queued: int) -> None:
        self.queued = queued

    def consume(self, n: int, timeout: float) -> list[object]:
        taken = min(n, self.queued)
        self.queued -= taken
        return [object()] * taken


def test_the_queue_counts_as_drained_only_when_a_batch_call_came_back_short() -> None:
    runtime = SimpleNamespace(consumer=QueueConsumer(1500), _drained_ms=7,
                              producer=[], _flush_idle=lambda: 0.0)
    runtime._drained = lambda msgs, asked: TaskRuntime._drained(runtime, msgs, asked)  # type: ignore[arg-type]
    assert len(TaskRuntime._fetch(runtime, 0.0)) == 1000  # type: ignore[arg-type]
    assert runtime._drained_ms == 7  # more may wait in the queue
    assert len(TaskRuntime._fetch(runtime, 0.0)) == 500  # type: ignore[arg-type]
    assert runtime._drained_ms > 1_700_000_000_000


def test_a_drain_judges_the_grace_by_the_last_empty_queue_not_by_the_clock() -> None:
    """Y (append time 1000) is buffered; orders:0 looked caught up when the queue was last
    seen empty (at 1005), and X, appended before Y, may wait in the fetch queue by now. The
    clock is long past 1020, yet Y stays until a fetch has emptied the queue again (the full-
    speed audit flake: a long drain took Y with X still in the queue)."""
    highs = {("orders", 0): 0, ("send-requests", 0): 1}
    merge = Merge(RANK, 5.0, lambda tp: highs.get(tp, -1),
                  frozenset({"orders", "send-requests"}), 20)
    for tp in highs:
        merge.assign(tp, 0)
    merge.add(InRecord("send-requests", 0, 0, 1000, b"k", b"v", []))
    merge.refresh_blocked()
    folded: list[InRecord] = []
    runtime = SimpleNamespace(merge=merge, _process=folded.append, _drained_ms=1005,
                              cfg=SimpleNamespace(commit_interval_s=1.0))
    TaskRuntime._drain(runtime)  # type: ignore[arg-type]
    assert folded == []
    runtime._drained_ms = 1020
    TaskRuntime._drain(runtime)  # type: ignore[arg-type]
    assert [r.offset for r in folded] == [0]


class CommitConsumer:
    def __init__(self) -> None:
        self.calls: list[tuple[list[tuple[str, int, int]], bool]] = []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.calls.append(([(o.topic, o.partition, o.offset) for o in offsets], asynchronous))


class IdleProducer:
    def flush(self, timeout: float) -> int:
        return 0

    def __len__(self) -> int:
        return 0


def commit(final: bool) -> list[tuple[list[tuple[str, int, int]], bool]]:
    consumer = CommitConsumer()
    runtime = SimpleNamespace(
        consumer=consumer, producer=IdleProducer(), stores={}, processed={("orders", 2): 41},
        cfg=SimpleNamespace(exactly_once=False), stop_requested=None, failure=None,
        changelog_next={}, index_next={}, _last_commit=0.0, _check=lambda: None)
    TaskRuntime.commit(runtime, final=final)  # type: ignore[arg-type]
    assert runtime.processed == {}
    return consumer.calls


def test_the_periodic_commit_does_not_wait_for_the_coordinator_a_final_one_does() -> None:
    """At-least-once: the offsets follow the flushed records; waiting for the answer cost
    the loop ~7 ms a commit (seventh session). On revocation and at the end it must land
    before the partitions go to another member."""
    assert commit(final=False) == [([("orders", 2, 41)], True)]
    assert commit(final=True) == [([("orders", 2, 41)], False)]


def config(grace_ms: int, fetch_wait_ms: int) -> RuntimeConfig:
    return RuntimeConfig(KafkaClientConfig("127.0.0.1:1"), "sendgate", Path("/nonexistent"),
                         12, merge_grace_ms=grace_ms, fetch_max_wait_ms=fetch_wait_ms)


@pytest.mark.parametrize(("grace_ms", "fetch_wait_ms"), [(5, 5), (20, 25), (1, 500)])
def test_a_grace_no_longer_than_a_fetch_wait_is_reported(grace_ms: int,
                                                          fetch_wait_ms: int) -> None:
    """An SRE who raises the fetch wait to spare the broker (an idle worker's 5 ms long
    polls over all its partitions) must learn that the order guarantee is gone."""
    why = config(grace_ms, fetch_wait_ms).order_warning()
    assert why is not None and "SENDGATE_MERGE_GRACE_MS" in why


@pytest.mark.parametrize(("grace_ms", "fetch_wait_ms"), [(20, 5), (0, 5), (60, 50)])
def test_the_defaults_and_a_chosen_best_effort_are_not_reported(grace_ms: int,
                                                                 fetch_wait_ms: int) -> None:
    assert config(grace_ms, fetch_wait_ms).order_warning() is None
