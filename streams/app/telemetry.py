"""Traces and metrics for the stream job.

Traces follow the OpenTelemetry messaging semantic conventions v1.27 (Kafka): one
CONSUMER span `process <topic>` per contact event, continued from the W3C `traceparent`
header of the input record, with the decision, reason code and channel as attributes
— never the contact (non-negotiable 5). The span context is injected into every output
record. Exporter: chosen by the standard OTEL_* variables (`OTEL_TRACES_EXPORTER=otlp`
or `console`; default none), read into `Settings` by the composition root.

Metrics are Prometheus counters and histograms in a registry of our own, served by
`serve_metrics()` on SENDGATE_METRICS_PORT.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from streams.config import Settings
from streams.core.errors import RejectedRecord
from streams.gate.records import OutRecord, headers_as_list

if TYPE_CHECKING:
    from streams.gate.gate import Folded

log = logging.getLogger("sendgate.telemetry")

SEMCONV_VERSION = "1.27.0"


class _HeaderGetter(Getter[Sequence[tuple[str, bytes]]]):
    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        values = [v.decode("latin-1") for k, v in carrier if k.lower() == key.lower()]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [k for k, _ in carrier]


class _HeaderSetter(Setter[list[tuple[str, bytes]]]):
    def set(self, carrier: list[tuple[str, bytes]], key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k != key]
        carrier.append((key, value.encode("latin-1")))


GETTER = _HeaderGetter()
SETTER = _HeaderSetter()


CountKey = tuple[Counter, tuple[str, ...]]


class Tally:
    """Counter increments of the per-event path, added to the Prometheus series when the
    registry is collected (a scrape, `get_sample_value`): a dict increment instead of
    prometheus_client's locked `inc` (issue 15 §8: ~8 % of the worker's CPU per event).
    Registered before the series, so every collection sees every increment made before
    it. `counts` only grows (written by the worker thread); `applied` is the part already
    added, so a collection racing an increment adds it at the next collection."""

    def __init__(self) -> None:
        self.counts: dict[CountKey, int] = {}
        self.applied: dict[CountKey, int] = {}
        self.lock = threading.Lock()

    def add(self, metric: Counter, *labels: str) -> None:
        key = (metric, labels)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1

    def apply(self) -> None:
        with self.lock:
            applied = self.applied
            for key, n in list(self.counts.items()):
                done = applied.get(key, 0)
                if n != done:
                    metric, labels = key
                    (metric.labels(*labels) if labels else metric).inc(n - done)
                    applied[key] = n

    def collect(self) -> Iterable[Any]:
        self.apply()
        return []


class LatencyHistogram:
    """A Prometheus histogram observed by one thread without a lock: a bisect and a list
    increment per decision instead of prometheus_client's locked per-bucket `inc` (~2 µs
    of the worker's per-event path). Collections read the counts as they are (they only
    grow), so a scrape sees each observation whole or not yet."""

    def __init__(self, name: str, documentation: str, bounds: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        if seconds < 0.0:
            seconds = 0.0
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def collect(self) -> Iterable[Any]:
        counts, total = list(self.counts), self.total
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*self.bounds, math.inf), counts, strict=True):
            running += n
            buckets.append((floatToGoString(bound), running))  # type: ignore[no-untyped-call]
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], buckets, total)
        return [family]


class KafkaClientStats:
    """The requests and records of the worker's Kafka clients, from librdkafka's statistics
    (`SENDGATE_KAFKA_STATS_INTERVAL_MS`): the load the worker puts on the brokers, which share
    the machine with it in the bench. librdkafka sends one produce request per partition and
    lists every assigned partition in every fetch, so these rates, not the record rates, say
    what the broker pays (README "The broker's share"). librdkafka's counts run from the
    client's start; each callback replaces that client's snapshot in one assignment, so a
    scrape from another thread reads a whole one."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}
        self.records: dict[tuple[str, str], int] = {}

    def update(self, client: str, stats_json: str | bytes) -> None:
        """One `stats_cb` call of the client named `client` (consumer, producer)."""
        stats = orjson.loads(stats_json)
        totals: dict[str, int] = {}
        for broker in (stats.get("brokers") or {}).values():
            for request, n in (broker.get("req") or {}).items():
                if n:
                    totals[request] = totals.get(request, 0) + int(n)
        self.requests = _with_client(self.requests, client, totals)
        self.records = _with_client(self.records, client, {
            "received": int(stats.get("rxmsgs") or 0),
            "sent": int(stats.get("txmsgs") or 0),
        })

    def collect(self) -> Iterable[Any]:
        requests = CounterMetricFamily(
            "sendgate_kafka_requests", "Requests the worker's Kafka clients sent, by type",
            labels=["client", "request"])
        for (client, request), n in sorted(self.requests.items()):
            requests.add_metric([client, request], n)
        records = CounterMetricFamily(
            "sendgate_kafka_client_records", "Records the worker's Kafka clients received "
            "(fetched, re-fetches included) and sent", labels=["client", "direction"])
        for (client, direction), n in sorted(self.records.items()):
            records.add_metric([client, direction], n)
        return [requests, records]


def _with_client(snapshot: dict[tuple[str, str], int], client: str,
                 values: dict[str, int]) -> dict[tuple[str, str], int]:
    """`snapshot` with the entries of `client` replaced by `values`, as a new dict."""
    return {**{k: v for k, v in snapshot.items() if k[0] != client},
            **{(client, name): n for name, n in values.items()}}


class Metrics:
    """The Prometheus series of the worker (issue 5 §5)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.tally = Tally()
        r.register(self.tally)
        self.decisions = Counter(
            "sendgate_decisions", "Decisions emitted",
            ["decision", "reason_code", "channel"], registry=r,
        )
        self.revocations = Counter(
            "sendgate_revocations", "Revoking decisions emitted (R-OBJECT-3)", registry=r
        )
        self.duplicates = Counter(
            "sendgate_duplicate_requests",
            "Send requests already decided (decision re-emitted, not re-decided)",
            registry=r,
        )
        self.latency = LatencyHistogram(
            "sendgate_decision_latency_seconds",
            "Request event time (occurred_at) to decision, wall clock",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        r.register(self.latency)
        self.dead_letters = Counter(
            "sendgate_dead_letters", "Records sent to the dead-letter topic", ["reason"],
            registry=r,
        )
        self.events = Counter(
            "sendgate_events", "Input records consumed", ["topic"], registry=r
        )
        self.outcomes = Counter(
            "sendgate_outcomes",
            "What became of every record: ingest forwarded|dead_letter per input record; "
            "gate decided|duplicate|applied per contact event (non-negotiable 4)",
            ["stage", "outcome"], registry=r,
        )
        self.contact_events = Counter(
            "sendgate_contact_events", "Contact events folded", ["event_type"], registry=r
        )
        self.lag = Gauge(
            "sendgate_consumer_lag", "Records behind the log end", ["topic", "partition"],
            registry=r,
        )
        self.kafka = KafkaClientStats()
        r.register(self.kafka)
        self.late = Counter(
            "sendgate_merge_late_records",
            "Input records fetched after a record later in the merge order was folded",
            ["topic"], registry=r,
        )


def _tracer_provider(exporter_name: str, service: str) -> TracerProvider | None:
    if exporter_name in ("", "none"):
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    processor: SpanProcessor
    if exporter_name == "console":
        processor = BatchSpanProcessor(ConsoleSpanExporter())
    elif exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter())
    else:
        log.warning("unknown OTEL_TRACES_EXPORTER=%s, tracing disabled", exporter_name)
        return None
    provider.add_span_processor(processor)
    return provider


class Telemetry:
    def __init__(
        self,
        metrics: Metrics | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        provider = tracer_provider or trace.get_tracer_provider()
        # no exporter configured: no spans per event (the traceparent of the input still
        # passes through to the outputs as a header)
        self.tracing = not isinstance(provider, trace.ProxyTracerProvider)
        self._children: dict[tuple[str, ...], Any] = {}
        self.tracer = provider.get_tracer("sendgate", schema_url=(
            f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
        ))

    @staticmethod
    def from_settings(settings: Settings) -> Telemetry:
        provider = _tracer_provider(settings.traces_exporter,
                                    settings.service_name or settings.app_id)
        if provider is not None:
            trace.set_tracer_provider(provider)
        return Telemetry(tracer_provider=provider)

    def serve_metrics(self, port: int) -> None:
        start_http_server(port, addr="127.0.0.1", registry=self.metrics.registry)

    def _child(self, metric: Any, *labels: str) -> Any:
        """A labelled series, looked up once (prometheus_client's `labels` costs a few µs)."""
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def on_admit(self, topic: str, rejection: RejectedRecord | None) -> None:
        m = self.metrics
        add = m.tally.add
        add(m.events, topic)
        if rejection is not None:
            add(m.dead_letters, rejection.reason.value)
            add(m.outcomes, "ingest", "dead_letter")
        else:
            add(m.outcomes, "ingest", "forwarded")

    def on_dead_letter(self, reason: str) -> None:
        m = self.metrics
        m.tally.add(m.dead_letters, reason)
        m.tally.add(m.outcomes, "gate", "dead_letter")

    def on_fold(self, folded: Folded, span: Any) -> None:
        self.on_gate(folded, span, None)

    @contextlib.contextmanager
    def decision_span(self, msg: Any) -> Iterator[Any]:
        carrier = headers_as_list(getattr(msg, "headers", None))
        ctx = propagate.extract(carrier, getter=GETTER)
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": str(getattr(msg, "topic", "")),
            "messaging.destination.partition.id": str(getattr(msg, "partition", "")),
            "messaging.kafka.offset": int(getattr(msg, "offset", -1) or -1),
        }
        with self.tracer.start_as_current_span(
            f"process {attributes['messaging.destination.name']}",
            context=ctx,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ) as span:
            yield span

    def on_gate(self, outcome: Folded, span: Any, msg: Any) -> None:
        etype = outcome.event.type.value
        m = self.metrics
        tally = m.tally
        add = tally.add
        add(m.contact_events, etype)
        if outcome.duplicate:
            add(m.outcomes, "gate", "duplicate")
            add(m.duplicates)
            if span is not None:
                span.set_attribute("sendgate.duplicate", True)
        else:
            add(m.outcomes, "gate", "decided" if etype == "send_request" else "applied")
        decisions = outcome.decisions
        if not decisions:
            return
        now = datetime.now(UTC)
        latency = m.latency.observe
        last = len(decisions) - 1
        for i, d in enumerate(decisions):
            if outcome.duplicate and i == last:
                continue
            decision, reason, channel = d.decision.value, d.reason_code.value, d.channel.value
            add(m.decisions, decision, reason, channel)
            if d.revokes:
                add(m.revocations)
            else:
                latency((now - d.as_of).total_seconds())
            if span is not None:
                span.set_attribute("sendgate.decision", decision)
                span.set_attribute("sendgate.reason_code", reason)
                span.set_attribute("sendgate.channel", channel)
                span.set_attribute("sendgate.request_id", d.request_id)
                span.set_attribute("sendgate.revokes", bool(d.revokes))
                if decision == "BLOCK":
                    span.set_status(Status(StatusCode.OK))

    def inject(self, rec: OutRecord, span: Any) -> OutRecord:
        headers = [(k, v) for k, v in rec.headers if k not in ("traceparent", "tracestate")]
        ctx = trace.set_span_in_context(span) if span is not None else None
        propagate.inject(headers, context=ctx, setter=SETTER)
        return OutRecord(rec.topic, rec.key, rec.value, headers, rec.partition, rec.timestamp_ms)
