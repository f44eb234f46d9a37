"""`sendgate audit` against the real broker, independent of the faust worker.

Each test publishes the shared scenario files (T01-T110, one tenant each) to prefixed
input topics, and writes the "emitted" decisions itself: computed with the core's
DecisionEngine in the same order and encoded with the codec, as the worker would. Record
timestamps are set explicitly (increasing in file order), so the audit's timestamp merge
reproduces the file order across the four input topics and three partitions.

The HTML report is opened in headless Chromium (`apt-get install chromium`; `make test`
installs it); in CI a missing Chromium fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams import topics as T
from streams.config import DEFAULT_SCENARIO_DIR, Settings

HMAC_KEY = "audit-integration-test-key"
# Explicit record timestamps, 10 ms apart, starting an hour ago: recent enough that the
# broker's time-based retention (24 h in infra/kafka) never deletes them mid-test.
BASE_TS_MS = (int(time.time()) - 3600) * 1000
STEP_MS = 10
PARTITIONS = 3


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(autouse=True)
def _audit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDGATE_HMAC_KEY", HMAC_KEY)
    monkeypatch.delenv("SENDGATE_POLICY_FILE", raising=False)
    monkeypatch.delenv("SENDGATE_SCHEMA_REGISTRY_URL", raising=False)
    monkeypatch.delenv("SENDGATE_TOPIC_PREFIX", raising=False)


# --------------------------------------------------------------------------- the feed


@dataclass
class Feed:
    """Scenario events in arrival order, with their parsed form and record timestamps."""

    raw: list[dict[str, Any]]
    events: list[Any]
    timestamps: list[int]
    request_ids: list[str] = field(default_factory=list)  # first occurrences, in order


def load_feed(files: Sequence[Path]) -> Feed:
    from streams.core.model import SendRequest
    from streams.core.parse import parse_event

    raw: list[dict[str, Any]] = []
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                obj.pop("expect", None)
                raw.append(obj)
    events = [parse_event(obj) for obj in raw]
    ids: list[str] = []
    for ev in events:
        if isinstance(ev, SendRequest) and ev.request_id not in ids:
            ids.append(ev.request_id)
    return Feed(raw, events, [BASE_TS_MS + i * STEP_MS for i in range(len(raw))], ids)


def scenario_files() -> list[Path]:
    files = sorted(Path(DEFAULT_SCENARIO_DIR).glob("T*.jsonl"))
    assert len(files) >= 100, f"shared scenarios missing in {DEFAULT_SCENARIO_DIR}"
    return files


@pytest.fixture(scope="module")
def feed() -> Feed:
    return load_feed(scenario_files())


@dataclass(frozen=True)
class OutRecord:
    topic: str  # unprefixed catalogue name
    key: bytes
    record_name: str
    value: dict[str, Any]
    request_id: str
    decision: str
    revokes: bool


def emitted_records(feed: Feed, policies: Any = None) -> list[OutRecord]:
    """What the worker emits for the feed: decisions of the core, shaped like the outputs
    of streams.gate.gate.Gate."""
    from streams.core.engine import DecisionEngine
    from streams.core.keys import contact_key
    from streams.core.model import SendRequest
    from streams.core.parse import decision_to_dict
    from streams.core.policy import PolicyBook

    secret = HMAC_KEY.encode()
    engine = DecisionEngine(policies or PolicyBook(), secret)
    requests: dict[str, SendRequest] = {}
    out: list[OutRecord] = []
    decided_at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    for ev in feed.events:
        if isinstance(ev, SendRequest):
            requests.setdefault(ev.request_id, ev)
        for d in engine.feed(ev):
            req = requests[d.request_id]
            key = contact_key(secret, req.tenant, req.contact).encode()
            rec = decision_to_dict(d)
            rec["decided_at"] = decided_at
            rec["as_of"] = d.as_of
            if d.revokes:
                topic, name = T.REVOKED, T.DECISION_RECORD
            elif str(d.decision) == "ALLOW":
                topic, name = T.APPROVED, T.APPROVED_RECORD
                rec.update(approved_fields(req))
            else:
                topic, name = T.BLOCKED, T.DECISION_RECORD
            out.append(OutRecord(topic, key, name, rec, d.request_id, str(d.decision), d.revokes))
    return out


def approved_fields(req: Any) -> dict[str, Any]:
    from streams.core.keys import normalise

    contact = normalise(req.contact)
    return {
        "contact": {"type": str(contact.type), "value": contact.value},
        "dispatch_at": req.dispatch_at,
        "platform": req.platform,
        "campaign_id": req.campaign_id,
        "template_id": req.template_id,
        "declared_purpose": str(req.declared_purpose),
        "service_kind": None if req.service_kind is None else str(req.service_kind),
    }


def final_by_request(records: Sequence[OutRecord]) -> dict[str, OutRecord]:
    final: dict[str, OutRecord] = {}
    for r in records:
        cur = final.get(r.request_id)
        if cur is not None and cur.revokes and not r.revokes:
            continue
        final[r.request_id] = r
    return final


# --------------------------------------------------------------------------- Kafka


def create_topics(admin: Any, prefix: str) -> None:
    from confluent_kafka.admin import NewTopic

    names = [*T.INPUT_TOPICS, *T.OUTPUT_TOPICS, T.AUDIT_FINDINGS]
    futures = admin.create_topics(
        [NewTopic(prefix + n, num_partitions=PARTITIONS, replication_factor=1) for n in names]
    )
    for f in futures.values():
        f.result(timeout=30)


def producer(bootstrap: str, topics: Sequence[str]) -> Any:
    """An idempotent producer that already knows the topics' partitions.

    librdkafka parks records for a topic whose metadata it has not seen yet and places
    them later, behind records produced after the metadata arrived; the test's feed
    order would then not be the log order. Fetching the metadata first prevents that.
    """
    from confluent_kafka import Producer

    p = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True}
    )
    for t in topics:
        for _ in range(50):
            meta = p.list_topics(t, timeout=10).topics.get(t)
            if meta is not None and meta.error is None and len(meta.partitions) == PARTITIONS:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"topic {t} has no metadata")
    return p


def publish_inputs(bootstrap: str, prefix: str, feed: Feed) -> None:
    from streams.codecs.registry import get_codec
    from streams.core.engine import contact_points
    from streams.core.keys import input_key
    from streams.ordering import SequenceStamp

    codec = get_codec(Settings.from_env())
    p = producer(bootstrap, [prefix + t for t in T.INPUT_TOPICS])
    # stamped like the SDK stamps: records appended in the same millisecond on different
    # input topics replay in publish order, as the expected decisions assume
    stamp = SequenceStamp()
    for obj, ev, ts in zip(feed.raw, feed.events, feed.timestamps, strict=True):
        spec = T.input_topic_for(obj["type"])
        value = codec.encode(spec.value_schemas[0], obj, topic=prefix + spec.name)
        key = input_key(ev.tenant, contact_points(ev)[0]).encode()
        p.produce(prefix + spec.name, key=key, value=value, timestamp=ts,
                  headers=[stamp.header()])
    assert p.flush(30) == 0


def publish_outputs(bootstrap: str, prefix: str, records: Sequence[OutRecord], ts: int) -> None:
    from streams.codecs.registry import get_codec

    codec = get_codec(Settings.from_env())
    p = producer(bootstrap, [prefix + t for t in T.OUTPUT_TOPICS])
    for i, r in enumerate(records):
        value = codec.encode(r.record_name, r.value, topic=prefix + r.topic)
        p.produce(prefix + r.topic, key=r.key, value=value, timestamp=ts + i)
    assert p.flush(30) == 0


def setup_deployment(
    kafka_admin: Any,
    kafka_bootstrap: str,
    prefix: str,
    feed: Feed,
    outputs: Sequence[OutRecord],
) -> None:
    create_topics(kafka_admin, prefix)
    publish_inputs(kafka_bootstrap, prefix, feed)
    publish_outputs(kafka_bootstrap, prefix, outputs, feed.timestamps[-1] + 1000)


def run_audit_cli(
    bootstrap: str, prefix: str, tmp: Path, *extra: str, name: str = "audit"
) -> tuple[int, dict[str, Any], Path]:
    from streams.cli import main

    json_out, html_out = tmp / f"{name}.json", tmp / f"{name}.html"
    code = main(
        [
            "audit",
            "--bootstrap",
            bootstrap,
            "--topic-prefix",
            prefix,
            "--json",
            str(json_out),
            "--html",
            str(html_out),
            "--no-progress",
            "--quiet",
            "--idle-timeout",
            "30",
            *extra,
        ]
    )
    report = json.loads(json_out.read_text(encoding="utf-8")) if json_out.exists() else {}
    return code, report, html_out


def ids_of(report: Mapping[str, Any], kind: str) -> list[str]:
    return [f["request_id"] for f in report["findings"][kind]]


# --------------------------------------------------------------------------- Chromium


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        message = "chromium not installed (apt-get install -y chromium; `make test` does it)"
        if in_ci():
            pytest.fail(message + " — in CI the browser check must run", pytrace=False)
        pytest.skip(message)
    return exe


def render_in_chromium(html_file: Path, screenshot: Path | None = None) -> str:
    exe = chromium()
    with tempfile.TemporaryDirectory() as profile:
        common = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=3000",
        ]
        done = subprocess.run(
            [*common, "--dump-dom", html_file.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        if screenshot is not None:
            subprocess.run(
                [
                    *common,
                    f"--screenshot={screenshot}",
                    "--window-size=1280,2400",
                    html_file.resolve().as_uri(),
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
    return done.stdout


def assert_page_matches(dom: str, report: Mapping[str, Any]) -> None:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, "no <body> in the rendered DOM"
    assert 'data-rendered="true"' in body.group(1), "inline script did not run"
    assert 'data-js-consistent="true"' in body.group(1)
    for key, value in report["totals"].items():
        server = re.search(rf'id="total-{key}" data-total="(\d+)"', dom)
        assert server and int(server.group(1)) == value, key
        computed = re.search(rf'id="js-total-{key}" data-js-total="(\d+)"', dom)
        assert computed and int(computed.group(1)) == value, f"page-computed {key}"
    verdict = "risk" if report["totals"]["risk"] else "clean"
    assert f'data-verdict="{verdict}"' in dom


# --------------------------------------------------------------------------- tests


@pytest.fixture
def prefix(kafka_admin: Any, unique_name: str) -> Iterator[str]:
    """A topic prefix of this test; its topics are deleted afterwards."""
    name = unique_name + "."
    yield name
    mine = [t for t in kafka_admin.list_topics(timeout=10).topics if t.startswith(name)]
    if mine:
        for f in kafka_admin.delete_topics(mine, operation_timeout=30).values():
            # best effort: a leftover test topic harms nothing
            with contextlib.suppress(Exception):
                f.result(timeout=30)


def test_clean_audit_agrees_and_renders(
    kafka_admin: Any, kafka_bootstrap: str, prefix: str, feed: Feed, tmp_path: Path
) -> None:
    outputs = emitted_records(feed)
    setup_deployment(kafka_admin, kafka_bootstrap, prefix, feed, outputs)

    code, report, html_file = run_audit_cli(kafka_bootstrap, prefix, tmp_path)

    t = report["totals"]
    assert code == 0, report["totals"]
    assert t["requests_audited"] == len(feed.request_ids)
    assert t["agreeing"] == len(feed.request_ids)
    assert t["risk"] == 0 and t["decisions_without_request"] == 0 and t["reason_differs"] == 0
    assert report["source"]["inputs"]["events"] == len(feed.raw)
    assert report["source"]["inputs"]["rejected"] == {}
    revocations = sum(1 for r in outputs if r.revokes)
    assert revocations >= 1  # T53: the late objection is replayed in its place
    assert report["source"]["inputs"]["revocations"] == revocations
    # no contact value anywhere in the reports
    page = html_file.read_text(encoding="utf-8")
    as_json = json.dumps(report, ensure_ascii=False)
    for raw in feed.raw:
        points = [raw["contact"]] if "contact" in raw else [c["contact"] for c in raw["contacts"]]
        for point in points + raw.get("linked_contacts", []):
            assert point["value"] not in page and point["value"] not in as_json

    dom = render_in_chromium(html_file, tmp_path / "clean.png")
    assert_page_matches(dom, report)


def test_tampered_decisions_are_found_exactly(
    kafka_admin: Any, kafka_bootstrap: str, prefix: str, feed: Feed, tmp_path: Path
) -> None:
    honest = emitted_records(feed)
    final = final_by_request(honest)
    flipped = next(rid for rid, r in final.items() if r.decision == "BLOCK" and not r.revokes)
    deleted = next(rid for rid, r in final.items() if r.decision == "ALLOW" and rid != flipped)
    tampered: list[OutRecord] = []
    for r in honest:
        if r.request_id == deleted:
            continue
        if r.request_id == flipped:
            value = dict(
                r.value, decision="ALLOW", reason_code="ALLOW_CONSENT", legal_basis="TW117_CONSENT"
            )
            req = next(e for e in feed.events if getattr(e, "request_id", None) == flipped)
            value.update(approved_fields(req))
            r = OutRecord(T.APPROVED, r.key, T.APPROVED_RECORD, value, flipped, "ALLOW", False)
        tampered.append(r)
    setup_deployment(kafka_admin, kafka_bootstrap, prefix, feed, tampered)

    code, report, html_file = run_audit_cli(kafka_bootstrap, prefix, tmp_path, "--emit")

    assert code == 2
    assert ids_of(report, "allow_to_block") == [flipped]
    assert ids_of(report, "missing_decision") == [deleted]
    t = report["totals"]
    assert t["risk"] == 2 and t["block_to_allow"] == 0 and t["decisions_without_request"] == 0
    assert t["agreeing"] == len(feed.request_ids) - 2
    assert report["findings"]["allow_to_block"][0]["redecided"]["decision"] == "BLOCK"
    channel = report["findings"]["allow_to_block"][0]["channel"]
    assert flipped in report["request_ids"]["channel"][channel]["allow_to_block"]

    # --emit: the findings topic has exactly the two findings, keyed by contact key
    findings = read_findings(kafka_bootstrap, prefix + T.AUDIT_FINDINGS)
    assert sorted((f["request_id"], f["kind"]) for _, f in findings) == sorted(
        [(flipped, "allow_to_block"), (deleted, "missing_decision")]
    )
    keys = {f["request_id"]: k for k, f in findings}
    assert keys[flipped] == final[flipped].key
    assert {f["audit_run_id"] for _, f in findings} == {report["audit_run_id"]}

    dom = render_in_chromium(html_file, tmp_path / "tampered.png")
    assert_page_matches(dom, report)
    assert flipped in dom and deleted in dom

    # the tenant-sharded replay finds exactly the same
    code, sharded, _ = run_audit_cli(kafka_bootstrap, prefix, tmp_path, "--jobs", "2", name="jobs")
    assert code == 2 and sharded["totals"] == report["totals"]
    assert sharded["findings"] == report["findings"]
    assert sharded["source"]["inputs"]["jobs"] == 2


def read_findings(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, Any]]]:
    from confluent_kafka import Consumer, TopicPartition

    from streams.codecs.registry import get_codec

    codec = get_codec(Settings.from_env())
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused-" + topic,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        c.assign([TopicPartition(topic, p, 0) for p, e in ends.items() if e > 0])
        out: list[tuple[bytes, dict[str, Any]]] = []
        want = sum(ends.values())
        for _ in range(100):
            for m in c.consume(100, timeout=0.5):
                if m.error() is None:
                    out.append((m.key(), codec.decode(m.value(), T.AUDIT_FINDING_RECORD)[1]))
            if len(out) >= want:
                break
        return out
    finally:
        c.close()


def changed_requests(feed: Feed, before: Any, after: Any) -> dict[str, tuple[str, str]]:
    a = final_by_request(emitted_records(feed, before))
    b = final_by_request(emitted_records(feed, after))
    return {
        rid: (a[rid].decision, b[rid].decision)
        for rid in a
        if (a[rid].value["decision"], a[rid].value["reason_code"])
        != (b[rid].value["decision"], b[rid].value["reason_code"])
    }


def soft_opt_in_feed() -> list[dict[str, Any]]:
    """A purchase 18 months before an e-mail offer: soft opt-in under 24 months, not 12."""
    contact = {"type": "email", "value": "whatif@example.test"}
    entity = "Whatif Winkel BV"
    common = {"tenant": "t-whatif", "legal_entity": entity}
    order = {
        "type": "order",
        "event_id": "WI-e01",
        "occurred_at": "2025-05-10T10:00:00+02:00",
        **common,
        "order_id": "WI-1",
        "kind": "purchase",
        "status": "paid",
        "paid_amount_cents": 2500,
        "product_categories": ["koffie"],
        "contract_end_at": None,
        "recipient_kind": "consumer",
        "address_type": "direct",
        "marketplace": None,
        "sold_by_phone": False,
        "confirmed_in_writing": False,
        "contacts": [
            {
                "contact": contact,
                "obtained_at_sale": True,
                "optout_offered": True,
                "optout_method": "separate_optout_box",
                "optout_exercised": False,
                "informed_of_calls": False,
            }
        ],
    }
    request = {
        "type": "send_request",
        "event_id": "WI-e02",
        "occurred_at": "2026-11-10T10:00:00+01:00",
        **common,
        "request_id": "WI-r01",
        "contact": contact,
        "channel": "email",
        "declared_purpose": "commercial",
        "service_kind": None,
        "relates_to_order_id": None,
        "requested_by_recipient": False,
        "content": {
            "content_scope": "offers",
            "has_promo": True,
            "promo_categories": ["koffie"],
            "third_party_offer": None,
            "is_consent_request": False,
            "is_review_request": False,
            "review_incentive": False,
        },
        "sender": {
            "display_name": entity,
            "has_identity_block": True,
            "has_unsubscribe": True,
            "unsubscribe_requires_login": False,
            "cli_withheld": False,
            "sector": "other",
        },
        "recipient": {
            "kind": "consumer",
            "established_outside_eea": False,
            "address_published_for_purpose": False,
            "postfilter_registered": False,
        },
        "platform": None,
        "campaign_id": "whatif",
        "template_id": None,
    }
    return [order, request]


def test_policy_what_if_counts_the_changes(
    kafka_admin: Any, kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    from streams.core.parse import parse_event
    from streams.core.policy import PolicyBook
    from streams.policies import load_policy_book

    extra = soft_opt_in_feed()
    base = load_feed(scenario_files())
    raw = base.raw + extra
    feed = Feed(
        raw,
        [parse_event(o) for o in raw],
        [BASE_TS_MS + i * STEP_MS for i in range(len(raw))],
        [*base.request_ids, "WI-r01"],
    )
    policy_file = tmp_path / "soft-optin-12m.toml"
    policy_file.write_text("[default]\nsoft_opt_in_months = 12\n", encoding="utf-8")
    candidate = load_policy_book(policy_file)
    expected = changed_requests(feed, PolicyBook(), candidate)
    assert expected.get("WI-r01") == ("ALLOW", "BLOCK")

    setup_deployment(kafka_admin, kafka_bootstrap, prefix, feed, emitted_records(feed))

    code, report, html_file = run_audit_cli(
        kafka_bootstrap, prefix, tmp_path, "--policy", str(policy_file)
    )

    change = report["policy_change"]
    assert change["changed"] == len(expected)
    assert sorted(c["request_id"] for c in change["changes"]) == sorted(expected)
    to_block = sorted(r for r, (a, b) in expected.items() if (a, b) == ("ALLOW", "BLOCK"))
    assert change["by_transition"]["allow_to_block"] == len(to_block)
    # counted against the emitted decisions (made under the policy in force)
    assert sorted(ids_of(report, "allow_to_block")) == to_block
    assert code == (2 if to_block else 0)
    assert report["policy"]["candidate"] == str(policy_file)
    dom = render_in_chromium(html_file)
    assert_page_matches(dom, report)
    assert 'id="policy-change"' in dom


def test_window_tenant_and_offsets(
    kafka_admin: Any, kafka_bootstrap: str, prefix: str, feed: Feed, tmp_path: Path
) -> None:
    from streams.core.model import SendRequest

    setup_deployment(kafka_admin, kafka_bootstrap, prefix, feed, emitted_records(feed))

    # --from a time: only requests first logged at or after it are audited; the facts
    # before it still count (every audited request agrees)
    mid = len(feed.raw) // 2
    mid_time = datetime.fromtimestamp(feed.timestamps[mid] / 1000, tz=UTC).isoformat()
    seen_before: set[str] = set()
    in_window: list[str] = []
    for ev, ts in zip(feed.events, feed.timestamps, strict=True):
        if not isinstance(ev, SendRequest):
            continue
        if ts < feed.timestamps[mid]:
            seen_before.add(ev.request_id)
        elif ev.request_id not in seen_before and ev.request_id not in in_window:
            in_window.append(ev.request_id)
    code, report, _ = run_audit_cli(
        kafka_bootstrap, prefix, tmp_path, "--from", mid_time, name="time"
    )
    assert code == 0
    assert report["totals"]["requests_audited"] == len(in_window) > 0
    assert report["totals"]["agreeing"] == len(in_window)

    # the same window again, as explicit offsets from a JSON file
    starts = {
        t: {p: rng[0] for p, rng in parts.items()}
        for t, parts in report["window"]["send_request_offsets"].items()
    }
    window_file = tmp_path / "window.json"
    window_file.write_text(json.dumps(starts), encoding="utf-8")
    code, again, _ = run_audit_cli(
        kafka_bootstrap, prefix, tmp_path, "--from", f"@{window_file}", name="file"
    )
    assert code == 0 and again["totals"] == report["totals"]
    # ... and inline, with catalogue (unprefixed) topic names
    inline = ",".join(
        f"{T.SEND_REQUESTS}:{p}={o}" for p, o in starts[prefix + T.SEND_REQUESTS].items()
    )
    code, inline_report, _ = run_audit_cli(
        kafka_bootstrap, prefix, tmp_path, "--from", inline, name="inline"
    )
    assert code == 0 and inline_report["totals"] == report["totals"]

    # chaining: a run from the previous report's resume_from has nothing new to audit
    code, chained, _ = run_audit_cli(
        kafka_bootstrap, prefix, tmp_path, "--from", f"@{tmp_path / 'time.json'}", name="next"
    )
    assert code == 0 and chained["totals"]["requests_audited"] == 0

    # --to: the window ends before the midpoint, so it holds the other requests
    code, before, _ = run_audit_cli(kafka_bootstrap, prefix, tmp_path, "--to", mid_time, name="to")
    assert code == 0
    assert before["totals"]["requests_audited"] == len(feed.request_ids) - len(in_window)

    # --tenant: only that tenant's requests
    code, tenant_report, _ = run_audit_cli(
        kafka_bootstrap, prefix, tmp_path, "--tenant", "t-T53", name="tenant"
    )
    t53 = [r for r in feed.request_ids if r.startswith("T53-")]
    assert code == 0 and t53
    assert tenant_report["totals"]["requests_audited"] == len(t53)
    assert set(tenant_report["breakdown"]["tenant"]) == {"t-T53"}


def test_missing_topics_and_bad_window_exit_one(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    code, _, _ = run_audit_cli(kafka_bootstrap, unique_name + ".nothing.", tmp_path)
    assert code == 1
    code, _, _ = run_audit_cli(kafka_bootstrap, unique_name + ".", tmp_path, "--from", "yesterday")
    assert code == 1


def test_settle_leaves_out_the_newest_requests(
    kafka_admin: Any, kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    """`--to end` stops --settle seconds before now: a live worker may still be deciding."""
    base = load_feed([Path(DEFAULT_SCENARIO_DIR) / "T01.jsonl"])
    now_ms = int(time.time() * 1000)
    feed = Feed(base.raw, base.events, [now_ms + i for i in range(len(base.raw))], base.request_ids)
    setup_deployment(kafka_admin, kafka_bootstrap, prefix, feed, emitted_records(feed))

    code, settled, _ = run_audit_cli(kafka_bootstrap, prefix, tmp_path, name="settled")
    assert code == 0 and settled["totals"]["requests_audited"] == 0
    assert settled["window"]["settle_seconds"] == 30
    code, everything, _ = run_audit_cli(
        kafka_bootstrap, prefix, tmp_path, "--settle", "0", name="all"
    )
    assert code == 0 and everything["totals"]["requests_audited"] == len(feed.request_ids)
    assert everything["totals"]["agreeing"] == len(feed.request_ids)
