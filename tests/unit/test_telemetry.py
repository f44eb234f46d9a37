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
