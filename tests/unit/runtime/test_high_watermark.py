"""Issue 15 §4: a partition taken over with a backlog must look behind until it is fetched.

librdkafka's cached high watermark is updated by fetch responses only, so a partition this
process owned before reports its old value after a new assignment (pinned against a real
broker in tests/integration/test_runtime_watermarks.py)."""

from __future__ import annotations

from types import SimpleNamespace

from confluent_kafka import TopicPartition

from streams.runtime.tasks import TaskRuntime


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


def test_unknown_cache_falls_back_to_the_assignment_and_then_to_unknown() -> None:
    assert high(cached=-1001, at_assign=25) == 25
    assert high(cached=-1001, at_assign=None) == -1
