"""Issue 5 §4: spans per decision with the in-memory exporter, around the real shell."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from streams.app.telemetry import Telemetry
from streams.codecs.registry import get_codec
from streams.core.policy import PolicyBook
from streams.gate.gate import Admitted, Gate, MemoryStore
from streams.gate.records import InRecord, header
from streams.testing.feeder import Publisher
from streams.workload import Workload

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def test_one_consumer_span_per_decision_continued_and_injected() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(tracer_provider=provider)
    codec = get_codec()
    pub = Publisher.__new__(Publisher)
    pub.codec, pub.prefix = codec, ""
    gate = Gate(codec, PolicyBook.default(), b"k", telemetry=telemetry)

    request = Workload(contacts=10, run_id="tel").send_request(3)
    topic, key, value = pub.encode(request)
    rec = InRecord(topic, 5, 42, 0, key, value, [("traceparent", TRACEPARENT.encode())])
    adm = gate.admit(rec)
    assert isinstance(adm, Admitted)
    outcome = gate.fold(MemoryStore(), gate.contact_event(adm, adm.routes[0]), rec)
    outputs = list(outcome.outputs)

    (finished,) = exporter.get_finished_spans()
    assert finished.context is not None
    assert format(finished.context.trace_id, "032x") == TRACE_ID
    assert finished.name == "process send-requests"
    attrs = dict(finished.attributes or {})
    assert attrs["messaging.system"] == "kafka"
    assert attrs["messaging.destination.partition.id"] == "5"
    assert attrs["messaging.kafka.offset"] == 42
    decision = outcome.decisions[0]
    assert attrs["sendgate.decision"] == str(decision.decision)
    assert attrs["sendgate.reason_code"] == str(decision.reason_code)
    assert attrs["sendgate.channel"] == str(decision.channel)
    contact = request["contact"]["value"]
    assert all(contact not in str(v) for v in attrs.values())

    (out,) = outputs
    injected = (header(out.headers, "traceparent") or b"").decode()
    assert injected.split("-")[1] == TRACE_ID
    assert injected.split("-")[2] == format(finished.context.span_id, "016x")
    counted = telemetry.metrics.registry.get_sample_value(
        "sendgate_decisions_total",
        {"decision": str(decision.decision), "reason_code": str(decision.reason_code),
         "channel": str(decision.channel)},
    )
    assert counted == 1.0


def test_latency_histogram_buckets_are_cumulative_and_le_inclusive() -> None:
    from prometheus_client import generate_latest

    from streams.app.telemetry import Metrics

    m = Metrics()
    for seconds in (0.001, 0.005, 0.0051, 2.0, 400.0, -1.0):
        m.latency.observe(seconds)
    lines = dict(
        line.rsplit(" ", 1) for line in generate_latest(m.registry).decode().splitlines()
        if line.startswith("sendgate_decision_latency_seconds")
    )
    assert lines['sendgate_decision_latency_seconds_bucket{le="0.005"}'] == "3.0"  # -1 -> 0
    assert lines['sendgate_decision_latency_seconds_bucket{le="0.01"}'] == "4.0"
    assert lines['sendgate_decision_latency_seconds_bucket{le="2.5"}'] == "5.0"
    assert lines['sendgate_decision_latency_seconds_bucket{le="300.0"}'] == "5.0"
    assert lines['sendgate_decision_latency_seconds_bucket{le="+Inf"}'] == "6.0"
    assert lines["sendgate_decision_latency_seconds_count"] == "6.0"
    assert abs(float(lines["sendgate_decision_latency_seconds_sum"]) - 402.0111) < 1e-9


def _stats(brokers: dict[str, dict[str, int]], rx: int, tx: int) -> str:
    """librdkafka's statistics JSON, reduced to the fields the collector reads."""
    import json

    return json.dumps({"name": "rdkafka#x-1", "rxmsgs": rx, "txmsgs": tx,
                       "brokers": {name: {"req": req} for name, req in brokers.items()}})


def test_kafka_client_stats_sum_the_brokers_and_replace_each_clients_snapshot() -> None:
    """README "The broker's share": requests by type, summed over the client's brokers (the
    group coordinator is one of librdkafka's broker entries); a later callback of a client
    replaces its numbers (librdkafka's counts run from the client's start), the other
    client's stay."""
    from streams.app.telemetry import Metrics

    m = Metrics()
    m.kafka.update("consumer", _stats({"b:9092/1": {"Fetch": 12, "Produce": 0},
                                       "GroupCoordinator": {"OffsetCommit": 3, "Fetch": 0}},
                                      rx=500, tx=0))
    m.kafka.update("producer", _stats({"b:9092/1": {"Produce": 40},
                                       "b:9093/2": {"Produce": 2}}, rx=0, tx=420))
    m.kafka.update("consumer", _stats({"b:9092/1": {"Fetch": 20},
                                       "GroupCoordinator": {"OffsetCommit": 5}},
                                      rx=900, tx=0))

    def sample(name: str, **labels: str) -> float | None:
        return m.registry.get_sample_value(name, labels)

    assert sample("sendgate_kafka_requests_total", client="consumer", request="Fetch") == 20
    assert sample("sendgate_kafka_requests_total", client="consumer",
                  request="OffsetCommit") == 5
    assert sample("sendgate_kafka_requests_total", client="consumer", request="Produce") is None
    assert sample("sendgate_kafka_requests_total", client="producer", request="Produce") == 42
    assert sample("sendgate_kafka_client_records_total", client="consumer",
                  direction="received") == 900
    assert sample("sendgate_kafka_client_records_total", client="producer",
                  direction="sent") == 420


def test_the_runtime_asks_librdkafka_for_statistics_only_when_someone_takes_them() -> None:
    from streams.runtime.tasks import _statistics

    got: list[tuple[str, str]] = []
    assert _statistics(0, lambda c, js: got.append((c, js)), "consumer") == {}
    assert _statistics(30_000, None, "consumer") == {}
    conf = _statistics(30_000, lambda c, js: got.append((c, js)), "producer")
    assert conf["statistics.interval.ms"] == 30_000
    conf["stats_cb"]("{}")  # type: ignore[operator]
    assert got == [("producer", "{}")]


def test_statistics_that_cannot_be_taken_do_not_stop_the_worker() -> None:
    from streams.app.telemetry import Metrics
    from streams.runtime.tasks import _statistics

    m = Metrics()
    conf = _statistics(1_000, m.kafka.update, "consumer")
    conf["stats_cb"]("not json")  # type: ignore[operator]
    conf["stats_cb"](_stats({"b:9092/1": {"Fetch": 3}}, rx=1, tx=0))  # type: ignore[operator]
    assert m.registry.get_sample_value(
        "sendgate_kafka_requests_total", {"client": "consumer", "request": "Fetch"}) == 3
