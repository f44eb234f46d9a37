"""Issue 12 §6: the README's SDK snippet runs as written: the very text of the README,
executed from a directory laid out like the repository (`../shared/scenarios` beside it),
publishes its records to the real broker. Only the topic names get this test's prefix
(the snippet would otherwise write to the unprefixed topics of the shared broker)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from streamkit import make_topics, scenario_dir

import streams.client as client
from streams import topics as T

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.timeout(120)


def snippet() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"### Publishing from a shop.*?```python\n(.*?)```", text, re.S)
    assert found, "README lost its SDK snippet"
    return found.group(1)


def test_the_readme_sdk_snippet_runs_as_written(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    prefix = unique_name + "."
    make_topics(kafka_bootstrap, prefix)
    code = snippet()
    assert 'SendgateProducer("127.0.0.1:19092")' in code
    code = code.replace('"127.0.0.1:19092"', repr(kafka_bootstrap))  # same broker in CI

    real = client.SendgateProducer

    class Prefixed(real):  # type: ignore[valid-type,misc]
        def __init__(self, bootstrap: str | None = None, **kw: Any) -> None:
            super().__init__(bootstrap, topic_prefix=prefix, **kw)

    monkeypatch.setattr(client, "SendgateProducer", Prefixed)
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "shared").mkdir()
    os.symlink(scenario_dir(), tmp_path / "shared" / "scenarios")
    monkeypatch.chdir(repo)
    exec(compile(code, "README.md", "exec"), {})

    t01 = [json.loads(line) for line in (scenario_dir() / "T01.jsonl").read_text().splitlines()
           if line.strip()]
    want = {T.ORDERS: 1 + sum(e["type"] == "order" for e in t01),
            T.SEND_REQUESTS: 1 + sum(e["type"] == "send_request" for e in t01)}
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": unique_name})

    def total(topic: str) -> int:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in meta.partitions)

    try:
        for name, count in want.items():
            got = -1
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:  # a just-created topic may answer "not leader" for a moment
                    got = total(prefix + name)
                except KafkaException:
                    time.sleep(0.5)
                    continue
                if got == count:
                    break
                time.sleep(0.5)
            assert got == count, name
    finally:
        consumer.close()
