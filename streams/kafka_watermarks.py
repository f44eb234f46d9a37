"""Asking the broker for a partition's watermarks, again while it cannot answer yet.

A topic just created, or a broker restarting, has partitions without a leader for a moment;
the worker (assignment, restore) and the view writer (is the changelog empty?) both ask
until it answers. They differ in what they wait out and for how long, so both are
arguments: the worker any non-fatal error for a minute, the view writer the `transient`
ones up to its own timeout (then it fails closed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

log = logging.getLogger("sendgate.kafka")


def not_fatal(err: KafkaError) -> bool:
    return not err.fatal()


_LEADERLESS = frozenset({
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION,
    KafkaError.REQUEST_TIMED_OUT, KafkaError._TIMED_OUT,
})


def transient(err: KafkaError) -> bool:
    """Retriable, or one of the answers of a partition that has no leader yet: librdkafka
    does not flag `NOT_LEADER_FOR_PARTITION` from a watermark query as retriable (seen in
    CI on a topic created a moment before)."""
    return err.retriable() or err.code() in _LEADERLESS


def watermarks(client: Consumer, topic: str, partition: int, patience_s: float = 60.0,
               retry: Callable[[KafkaError], bool] = not_fatal,
               pause_s: float = 0.5) -> tuple[int, int]:
    """(low, high) from the broker (not librdkafka's cache), asked again after `pause_s`
    while `retry(error)` holds and `patience_s` has not passed."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            low, high = client.get_watermark_offsets(
                TopicPartition(topic, partition),
                timeout=min(10.0, max(0.1, deadline - time.monotonic())), cached=False)
            return int(low), int(high)
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if time.monotonic() >= deadline or not retry(err):
                raise
            log.info("watermarks of %s:%d not available yet (%s)", topic, partition, err.str())
            time.sleep(pause_s)
