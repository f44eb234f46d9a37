"""The one watermark query with retries, used by the worker and the view writer."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streams.kafka_watermarks import transient, watermarks


class Flaky:
    """Raises the given errors in turn, then answers (3, 9)."""

    def __init__(self, *errors: KafkaError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float,
                              cached: bool) -> tuple[int, int]:
        assert not cached and 0.1 <= timeout <= 10.0
        self.calls += 1
        if self.errors:
            raise KafkaException(self.errors.pop(0))
        return 3, 9


LEADERLESS = KafkaError(KafkaError.LEADER_NOT_AVAILABLE, retriable=True)
TIMED_OUT = KafkaError(KafkaError._TIMED_OUT)
FATAL = KafkaError(KafkaError._FATAL, fatal=True)
NOT_LEADER = KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION)  # as a watermark query gives it
AUTHZ = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)


def test_the_worker_waits_out_any_non_fatal_error() -> None:
    client = Flaky(LEADERLESS, TIMED_OUT)
    assert watermarks(client, "t", 0, pause_s=0) == (3, 9)  # type: ignore[arg-type]
    assert client.calls == 3


def test_a_fatal_error_is_raised_at_once() -> None:
    client = Flaky(FATAL)
    with pytest.raises(KafkaException):
        watermarks(client, "t", 0, pause_s=0)  # type: ignore[arg-type]
    assert client.calls == 1


def test_the_view_writer_retries_only_transient_errors() -> None:
    client = Flaky(LEADERLESS, NOT_LEADER, TIMED_OUT)
    assert watermarks(client, "t", 0, retry=transient, pause_s=0) == (3, 9)  # type: ignore[arg-type]
    assert client.calls == 4
    assert not NOT_LEADER.retriable()  # why `transient` exists (a CI failure)
    client = Flaky(AUTHZ)
    with pytest.raises(KafkaException):
        watermarks(client, "t", 0, retry=transient, pause_s=0)  # type: ignore[arg-type]
    assert client.calls == 1


def test_patience_runs_out() -> None:
    client = Flaky(*[LEADERLESS] * 100)
    with pytest.raises(KafkaException):
        watermarks(client, "t", 0, patience_s=0.5, pause_s=0.05)  # type: ignore[arg-type]
    assert 2 <= client.calls < 100
