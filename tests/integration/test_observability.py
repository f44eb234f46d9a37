"""Issue 5 §4-§6 on a real worker: traces, metrics, and no raw address anywhere it must not be.

The worker runs as a subprocess with the standard `OTEL_TRACES_EXPORTER=console`, so its
spans land in its log; metrics are scraped from its Prometheus endpoint; the status view
is projected into the test Redis.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from streamkit import (
    codec,
    make_topics,
    records_to_end,
    running,
    scenario_dir,
    scrape_until,
    worker,
)

from streams.core.keys import normalise
from streams.core.model import ContactPoint, ContactType
from streams.gate.state_codec import decode_changelog_value
from streams.runtime.tasks import changelog_topic
from streams.testing.feeder import BarrierFeeder, Publisher, load_jsonl
from streams.testing.observe import OutputReader
from streams.testing.supervisor import free_port

pytestmark = pytest.mark.timeout(600)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def raw_addresses(events: list[dict[str, Any]]) -> set[str]:
    """Every contact value of the files, as written and normalised (E.164 with and without +)."""
    found: set[str] = set()

    def add(c: dict[str, Any]) -> None:
        value = str(c["value"])
        found.add(value.strip())
        try:
            norm = normalise(ContactPoint(ContactType(c["type"]), value)).value
        except Exception:
            return
        found.add(norm)
        if norm.startswith("+"):
            found.add(norm[1:])

    for e in events:
        if "contact" in e:
            add(e["contact"])
        for fact in e.get("contacts", []):
            add(fact["contact"])
        for c in e.get("linked_contacts", []) or []:
            add(c)
    return {a for a in found if len(a) >= 6}


def spans_in(log: str) -> list[dict[str, Any]]:
    """The console exporter prints one pretty JSON object per span."""
    spans = []
    for block in re.findall(r"^\{\n.*?^\}$", log, flags=re.S | re.M):
        try:
            obj = json.loads(block)
        except json.JSONDecodeError:
            continue
        if "context" in obj and "attributes" in obj:
            spans.append(obj)
    return spans


def test_traces_metrics_and_no_pii(
    kafka_bootstrap: str, redis_url: str, unique_name: str, tmp_path: Path
) -> None:
    prefix = unique_name + "."
    make_topics(kafka_bootstrap, prefix)
    files = [load_jsonl(f) for f in sorted(scenario_dir().glob("T*.jsonl"))]
    flat = [e for f in files for e in f]
    addresses = raw_addresses(flat)
    assert len(addresses) > 100

    view_db = redis_url.rsplit("/", 1)[0] + "/11"
    rds = redis.Redis.from_url(view_db)
    rds.flushdb()
    metrics_port = free_port()
    w = worker(kafka_bootstrap, prefix, tmp_path, "obs", env={
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "sendgate-test",
        "SENDGATE_REDIS_URL": view_db,
        "SENDGATE_VIEW_NAMESPACE": f"{unique_name}:view:",
        "SENDGATE_KAFKA_STATS_INTERVAL_MS": "1000",
    })
    w.metrics_port = metrics_port
    c = codec()
    traced = dict(files[0][-1], request_id="OBS-traced", event_id="OBS-e1")
    reader = OutputReader(kafka_bootstrap, c, topic_prefix=prefix)
    with running([w], kafka_bootstrap):
        feeder = BarrierFeeder(kafka_bootstrap, c, topic_prefix=prefix, timeout=120)
        feeder.feed(files)
        feeder.close()
        pub = Publisher(kafka_bootstrap, c, topic_prefix=prefix)
        pub.publish(traced, headers=[("traceparent", TRACEPARENT.encode())])
        pub.flush()
        requests = {e["request_id"] for e in flat if e["type"] == "send_request"}
        observed = reader.wait_for_requests(requests | {"OBS-traced"}, timeout=180, settle=6.0)
        metrics = scrape_until(metrics_port, lambda m: sum(
            v for k, v in m.items() if k.startswith("sendgate_events_total{")) >= len(flat) + 1)
        kafka_requests = [f'sendgate_kafka_requests_total{{client="{client}",request="{r}"}}'
                          for client, r in (("consumer", "Fetch"), ("producer", "Produce"))]
        received = 'sendgate_kafka_client_records_total{client="consumer",direction="received"}'
        kafka = scrape_until(metrics_port, lambda m: all(
            m.get(k, 0) > 0 for k in kafka_requests) and m.get(received, 0) >= len(flat) + 1)
    reader.close()

    # --- metrics match what was emitted (issue 5 §5)
    emitted = observed.count()
    counted = sum(v for k, v in metrics.items() if k.startswith("sendgate_decisions_total{"))
    assert counted == emitted
    allow = sum(1 for es in observed.decisions.values() for e in es
                if e.record["decision"] == "ALLOW" and not e.record["revokes"])
    counted_allow = sum(v for k, v in metrics.items()
                        if k.startswith("sendgate_decisions_total{") and 'decision="ALLOW"' in k)
    assert counted_allow == allow
    inputs = sum(v for k, v in metrics.items() if k.startswith("sendgate_events_total{"))
    assert inputs == len(flat) + 1
    assert metrics.get("sendgate_decision_latency_seconds_count", 0) >= len(requests)
    assert any(k.startswith("sendgate_consumer_lag{") for k in metrics)
    # the broker's share (README): librdkafka's request counts of the worker's clients
    assert all(kafka.get(k, 0) > 0 for k in kafka_requests), kafka_requests
    assert kafka[received] >= len(flat) + 1

    # --- the trace is continued and injected (issue 5 §4)
    out = observed.decisions["OBS-traced"][-1]
    out_tp = dict(out.headers).get("traceparent", b"").decode()
    assert out_tp.split("-")[1] == TRACE_ID
    log = w.log_path.read_text(errors="replace")
    spans = [s for s in spans_in(log) if s["context"]["trace_id"] == "0x" + TRACE_ID]
    assert spans, "no span continued the producer's trace"
    attrs = spans[0]["attributes"]
    assert attrs["messaging.system"] == "kafka"
    assert attrs["messaging.operation.type"] == "process"
    assert attrs["sendgate.decision"] == out.record["decision"]
    assert attrs["sendgate.reason_code"] == out.record["reason_code"]
    assert spans[0]["kind"] == "SpanKind.CONSUMER"
    assert len(spans_in(log)) >= len(flat)

    # --- no raw address in data dir, logs, spans, metrics, Redis, blocked/revoked (issue 5 §6)
    haystacks: dict[str, bytes] = {"worker log and spans": log.encode()}
    for path in w.data_dir.rglob("*"):
        if path.is_file():
            haystacks[f"data dir {path.name}"] = path.read_bytes()
    haystacks["metrics"] = json.dumps(metrics).encode()
    keys = list(rds.scan_iter(match=f"{unique_name}:view:*"))
    assert keys, "the status view was not written"
    for key in keys:
        haystacks[f"redis {key!r}"] = key + b"".join(
            k + v for k, v in rds.hgetall(key).items()
        )
    # the changelog's values are LZ4-compressed (state format 4): scanned decompressed
    changelog = changelog_topic("sendgate", prefix)
    values = [m.value() for m in records_to_end(kafka_bootstrap, [changelog]) if m.value()]
    for i, value in enumerate(values):
        state, hint = decode_changelog_value(value)
        haystacks[f"changelog value {i}"] = msgspec.msgpack.encode([state, hint])
    assert any(k.startswith("changelog value") for k in haystacks), "no changelog read"
    for es in observed.decisions.values():
        for e in es:
            if not e.topic.endswith("sends.approved"):
                haystacks[f"{e.topic}:{e.offset}"] = json.dumps(e.record, default=str).encode()
    leaks = [(where, a) for where, blob in haystacks.items() for a in addresses
             if a.encode() in blob or a.lower().encode() in blob.lower()]
    assert not leaks, f"raw addresses found: {leaks[:5]}"
    rds.flushdb()
