"""The topic catalogue and `sendgate topics`, without a broker."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import Future
from typing import Any

import pytest

from streams import topics as T
from streams.cli import main as cli_main
from streams.codecs.schemas import load_schema_store
from streams.commands import topics as cmd

DAY_MS = 86_400_000


def test_every_topic_is_catalogued_once() -> None:
    names = [t.name for t in T.CATALOGUE]
    assert names == [
        "orders", "signups", "unsubscribes", "send-requests",
        "sends.approved", "sends.blocked", "sends.revoked", "sendgate.dead-letter",
        "sendgate.dispatch-dead-letter", "sendgate.contact-events", "sendgate.audit-findings",
    ]
    assert len(set(names)) == len(names)
    assert T.INPUT_TOPICS == ("orders", "signups", "unsubscribes", "send-requests")
    assert T.OUTPUT_TOPICS == ("sends.approved", "sends.blocked", "sends.revoked")


def test_co_partitioned_with_explicit_retention() -> None:
    for spec in T.CATALOGUE:
        assert spec.partitions == T.DEFAULT_PARTITIONS == 12
        assert spec.cleanup_policy is T.CleanupPolicy.DELETE
        assert spec.config()["retention.ms"] == str(spec.retention_ms)
        assert spec.config()["cleanup.policy"] == "delete"
        assert spec.key and spec.description
    for name in (*T.INPUT_TOPICS, *T.OUTPUT_TOPICS):
        assert T.topic(name).retention_ms == 30 * DAY_MS
    # dead letters hold whole input records: no longer than the inputs (issue 12 §2)
    assert T.topic(T.DEAD_LETTER).retention_ms == T.topic(T.ORDERS).retention_ms == 30 * DAY_MS
    assert T.topic(T.DEAD_LETTER).retention_days == 30


def test_value_schemas_exist() -> None:
    store = load_schema_store()
    for spec in T.CATALOGUE:
        for record in spec.value_schemas:
            assert store.get(record).name == record
    assert T.topic(T.CONTACT_EVENTS).value_schema == "Order|Signup|Unsubscribe|SendRequest"


def test_input_topic_for() -> None:
    assert [T.input_topic_for(t).name for t in T.EVENT_TYPES] == list(T.INPUT_TOPICS)
    assert T.input_topic_for("send_request").value_schemas == ("SendRequest",)
    assert T.RECORD_FOR_EVENT_TYPE == {
        "order": "Order", "signup": "Signup",
        "unsubscribe": "Unsubscribe", "send_request": "SendRequest",
    }
    assert T.INPUT_RECORDS["send-requests"] == "SendRequest"
    with pytest.raises(ValueError, match="unknown event type"):
        T.input_topic_for("invoice")


def test_catalogue_prefix_and_partitions() -> None:
    specs = T.catalogue(prefix="it-x.", partitions=3)
    assert [s.name for s in specs] == ["it-x." + t.name for t in T.CATALOGUE]
    assert {s.partitions for s in specs} == {3}
    assert T.CATALOGUE[0].name == "orders"  # the shared catalogue is untouched


def test_catalogue_module_does_not_import_faust_or_kafka() -> None:
    code = (
        "import sys, streams.topics; "
        "bad = [m for m in ('faust', 'confluent_kafka', 'fastavro') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------- sendgate topics


class FakeAdmin:
    """Just enough of confluent_kafka's AdminClient for create_topics."""

    def __init__(self, existing: set[str]) -> None:
        self.existing = existing
        self.requests: list[Any] = []

    def create_topics(self, new: list[Any], **kwargs: Any) -> dict[str, Future[None]]:
        from confluent_kafka import KafkaError, KafkaException

        self.requests.extend(new)
        out: dict[str, Future[None]] = {}
        for topic in new:
            future: Future[None] = Future()
            if topic.topic in self.existing:
                future.set_exception(KafkaException(KafkaError(KafkaError.TOPIC_ALREADY_EXISTS)))
            else:
                self.existing.add(topic.topic)
                future.set_result(None)
            out[topic.topic] = future
        return out

    def list_topics(self, timeout: float) -> Any:
        class Meta:
            topics: dict[str, Any] = {}

        return Meta()


def test_create_topics_is_idempotent() -> None:
    admin = FakeAdmin(existing={"p.orders"})
    first = cmd.create_topics(admin, prefix="p.", partitions=6)
    assert {r.name: r.status for r in first}["p.orders"] == "exists"
    assert [r.status for r in first].count("created") == len(T.CATALOGUE) - 1
    request = {t.topic: t for t in admin.requests}["p.sendgate.dead-letter"]
    assert request.num_partitions == 6
    assert request.config["retention.ms"] == str(30 * DAY_MS)
    second = cmd.create_topics(admin, prefix="p.", partitions=6)
    assert {r.status for r in second} == {"exists"}


def test_drift_is_reported() -> None:
    spec = T.topic(T.ORDERS)
    actual = cmd.BrokerTopic("orders", 3, {"retention.ms": "1000", "cleanup.policy": "delete"})
    drift = cmd._drift(spec, actual)
    assert "3 partitions" in drift and "retention.ms=1000" in drift
    same = cmd.BrokerTopic("orders", 12, spec.config())
    assert cmd._drift(spec, same) == ""


def test_describe_prints_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["topics", "describe", "--topic-prefix", "x."]) == 0
    out = capsys.readouterr().out
    for spec in T.CATALOGUE:
        assert f"x.{spec.name}  [{spec.role}]" in out
    assert "retention: 30d" in out and "value:      DeadLetter" in out
    assert "partitions: 12" in out


def test_describe_broker_really_asks_the_broker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 §6: a real AdminClient is falsy (it has a length), so `if admin` skipped
    the broker; the flag must reach `describe_broker`."""
    import confluent_kafka.admin

    class Falsy(FakeAdmin):
        def __len__(self) -> int:
            return 0

    asked: list[list[str]] = []

    def describe(admin: Any, names: Any, timeout: float = 30.0) -> dict[str, Any]:
        asked.append(list(names))
        return {}

    monkeypatch.setattr(confluent_kafka.admin, "AdminClient", lambda conf: Falsy(existing=set()))
    monkeypatch.setattr(cmd, "describe_broker", describe)
    assert cli_main(["topics", "describe", "--broker", "--topic-prefix", "y."]) == 0
    assert asked and "y.orders" in asked[0]
    assert "broker:     MISSING" in capsys.readouterr().out


def test_dead_letter_retention_is_configurable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SENDGATE_DEAD_LETTER_RETENTION_DAYS", "7")
    assert cli_main(["topics", "describe"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("sendgate.dead-letter  ["):]
    assert f"retention: 7d ({7 * DAY_MS} ms)" in block.split("\n\n")[0]
    specs = T.catalogue(dead_letter_retention_ms=7 * DAY_MS)
    assert {s.name: s.retention_ms for s in specs}[T.ORDERS] == 30 * DAY_MS
