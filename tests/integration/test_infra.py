"""The local services themselves: the KRaft broker and Redis that `make kafka-up redis-up` run."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import NewTopic

REPO = Path(__file__).resolve().parents[2]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def _create_topic(admin: Any, name: str, partitions: int) -> None:
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)
    _wait_for(lambda: name in admin.list_topics(timeout=10).topics, 30, f"topic {name}")


def _delete_topic(admin: Any, name: str) -> None:
    with contextlib.suppress(KafkaException):
        admin.delete_topics([name], operation_timeout=30)[name].result(timeout=30)


def test_broker_answers_metadata(kafka_admin: Any) -> None:
    metadata = kafka_admin.list_topics(timeout=10)
    assert len(metadata.brokers) == 1, "the local stack is ONE KRaft node"
    assert metadata.cluster_id
    assert metadata.controller_id == next(iter(metadata.brokers))


@pytest.mark.timeout(120)
def test_create_and_delete_topic(kafka_admin: Any, unique_name: str) -> None:
    topic = f"{unique_name}.topic"
    _create_topic(kafka_admin, topic, partitions=12)
    try:
        metadata = kafka_admin.list_topics(topic=topic, timeout=10)
        assert len(metadata.topics[topic].partitions) == 12
    finally:
        kafka_admin.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)
    _wait_for(
        lambda: topic not in kafka_admin.list_topics(timeout=10).topics, 30, f"{topic} deleted"
    )


@pytest.mark.timeout(120)
def test_produce_then_consume_back(
    kafka_bootstrap: str, kafka_admin: Any, unique_name: str
) -> None:
    topic = f"{unique_name}.roundtrip"
    _create_topic(kafka_admin, topic, partitions=3)
    try:
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
        sent = [(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(5)]
        for key, value in sent:
            producer.produce(topic, key=key, value=value, headers={"h": b"1"})
        assert producer.flush(30) == 0, "messages left unsent"

        consumer = Consumer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "group.id": f"{unique_name}-group",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        received: list[tuple[bytes, bytes]] = []
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + 60
            while len(received) < len(sent) and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                assert msg.error() is None, msg.error()
                assert msg.headers() == [("h", b"1")]
                received.append((msg.key(), msg.value()))
        finally:
            consumer.close()
        assert sorted(received) == sorted(sent)
    finally:
        _delete_topic(kafka_admin, topic)


@pytest.mark.timeout(120)
def test_two_megabyte_record_can_be_produced(
    kafka_bootstrap: str, kafka_admin: Any, unique_name: str
) -> None:
    """The broker accepts records up to 4 MB, so an oversize (> 1 MiB) input reaches the gate
    and can be dead-lettered instead of being refused at the producer's door."""
    topic = f"{unique_name}.big"
    _create_topic(kafka_admin, topic, partitions=1)
    try:
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 4_000_000})
        errors: list[Any] = []
        producer.produce(
            topic, value=b"x" * 2_000_000, on_delivery=lambda err, _msg: errors.append(err)
        )
        assert producer.flush(30) == 0
        assert errors == [None]
    finally:
        _delete_topic(kafka_admin, topic)


def test_redis_ping_set_get(redis_url: str, unique_name: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        assert client.ping()
        key = f"{unique_name}:k"
        assert client.set(key, b"v", ex=60)
        assert client.get(key) == b"v"
        assert client.delete(key) == 1
    finally:
        client.close()


def _local_port_env(bootstrap: str) -> dict[str, str]:
    first = bootstrap.split(",")[0].strip().split("://")[-1]
    host, _, port = first.rpartition(":")
    host = host.strip("[]")
    if host not in LOCAL_HOSTS:
        pytest.skip(f"the broker {bootstrap} is not a local one that infra/kafka/kafka.sh runs")
    return {**os.environ, "KAFKA_PORT": str(port), "KAFKA_HOST": "127.0.0.1"}


def test_kafka_up_is_a_noop_when_running(kafka_bootstrap: str) -> None:
    env = _local_port_env(kafka_bootstrap)
    start = time.monotonic()
    result = subprocess.run(
        ["bash", "infra/kafka/kafka.sh", "up"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    took = time.monotonic() - start
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already running" in result.stdout, result.stdout + result.stderr
    assert took < 60, f"a no-op `up` took {took:.1f}s"


def test_redis_up_is_a_noop_when_running(redis_url: str) -> None:
    result = subprocess.run(
        ["bash", "infra/redis/redis.sh", "up"],
        cwd=REPO,
        env={**os.environ, "SENDGATE_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to do" in result.stdout or "already answers" in result.stdout, result.stdout
