"""Pins the librdkafka behaviour `TaskRuntime._high_watermark` works around: the cached
high watermark of a partition assigned again is its old value until the first fetch;
asking the broker (`cached=False`) does not refresh it."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def test_the_cached_high_watermark_is_stale_after_a_new_assignment(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic = unique_name + ".hw"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})

    def produce(n: int) -> None:
        for _ in range(n):
            producer.produce(topic, b"x")
        assert producer.flush(30) == 0

    produce(5)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": unique_name,
                         "enable.auto.commit": False,
                         # a fetch answers after 2 s (too few bytes): the window is wide
                         "fetch.min.bytes": 1 << 20, "fetch.wait.max.ms": 2000})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        got = 0
        for _ in range(60):
            got += len(consumer.consume(10, 0.5))
            if got >= 5:
                break
        assert got == 5
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), cached=True)[1] == 5
        consumer.unassign()
        time.sleep(5)  # a fetch still in flight (answered after 2 s) would carry the new one
        produce(20)
        asked = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10,
                                               cached=False)[1]
        assert asked == 25
        consumer.assign([TopicPartition(topic, 0, 5)])
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), cached=True)[1] == 5
    finally:
        consumer.close()
