"""Issue 4 §6a/§6e, issue 15 §4/§7: the 110 shared scenarios through a real worker.

The Kafka runtime: every scenario file is published with the SDK, serially (each event
acknowledged before the next), as a backlog; then a worker starts cold on it. Its task
merge follows the logs' order, so the final decision per request on the output topics
must equal what the core alone (`sendgate decide`) gives on the same events — field by
field, not just the expect. Then the worker is stopped, restarted on an EMPTY data dir
(state comes back from the changelog topic only) and every judged request is sent again
under a new request id: the answers must again equal the core's.

The faust adapter (`--runtime faust`) has no merge order; it is fed in lock-step rounds
(BarrierFeeder) as before.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from streamkit import (
    codec,
    comparable,
    make_topics,
    publish_serially,
    reference_decisions,
    running,
    scenario_dir,
    worker,
)

from streams.testing.feeder import BarrierFeeder, load_jsonl
from streams.testing.observe import OutputReader

pytestmark = pytest.mark.timeout(600)


def _files() -> list[list[dict[str, Any]]]:
    files = sorted(scenario_dir().glob("T*.jsonl"))
    assert len(files) == 110, f"expected 110 scenario files in {scenario_dir()}"
    return [load_jsonl(f) for f in files]


def _again(files: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Every send request once more, under a new request and event id."""
    out = []
    for events in files:
        out.append([
            {**e, "request_id": e["request_id"] + "-again", "event_id": e["event_id"] + "-again"}
            for e in events if e["type"] == "send_request"
        ])
    return out


@pytest.mark.parametrize("runtime", ["kafka", "faust"])
def test_scenarios_through_the_worker_match_decide(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path, runtime: str
) -> None:
    prefix = unique_name + "."
    make_topics(kafka_bootstrap, prefix)
    files = _files()
    again = _again(files)
    flat = [e for f in files for e in f]
    expected = reference_decisions(flat)
    expected_again = {
        rid: rec for rid, rec in reference_decisions(flat + [e for f in again for e in f]).items()
        if rid.endswith("-again")
    }
    assert len(expected) >= 110

    c = codec()
    reader = OutputReader(kafka_bootstrap, c, topic_prefix=prefix)
    env = {"SENDGATE_RUNTIME": runtime}
    if runtime == "kafka":
        publish_serially(kafka_bootstrap, prefix, flat)
    w1 = worker(kafka_bootstrap, prefix, tmp_path, "first", env)
    with running([w1], kafka_bootstrap):
        if runtime == "faust":
            feeder = BarrierFeeder(kafka_bootstrap, c, topic_prefix=prefix, timeout=120)
            feeder.feed(files)
            feeder.close()
        observed = reader.wait_for_requests(expected, timeout=180, settle=2.0)

    got = {rid: comparable(observed.final(rid) or {}) for rid in expected}
    want = {rid: comparable(rec) for rid, rec in expected.items()}
    mismatches = {rid: (got[rid], want[rid]) for rid in want if got[rid] != want[rid]}
    assert not mismatches, (
        f"{len(mismatches)} requests differ, e.g. {next(iter(mismatches.items()))}"
    )
    assert not observed.dead_letters, "valid scenario events must not be dead-lettered"

    # every `expect` of the shared files holds on the topics too
    for path in sorted(scenario_dir().glob("T*.jsonl")):
        for line in path.read_text().splitlines():
            if '"expect"' in line:
                import json

                obj = json.loads(line)
                final = observed.final(obj["request_id"])
                assert final is not None
                for k, v in obj["expect"].items():
                    assert final[k] == v, f"{path.name} {obj['request_id']} {k}"

    # restart on an empty data dir: state must come back from the changelog
    w2 = worker(kafka_bootstrap, prefix, tmp_path, "second", env)
    with running([w2], kafka_bootstrap):
        if runtime == "faust":
            feeder = BarrierFeeder(kafka_bootstrap, c, topic_prefix=prefix, timeout=120)
            feeder.feed(again)
            feeder.close()
        else:
            publish_serially(kafka_bootstrap, prefix, [e for f in again for e in f])
        try:
            observed = reader.wait_for_requests(expected_again, timeout=180, settle=2.0)
        except TimeoutError:
            missing = sorted(set(expected_again) - set(reader.observed.decisions))
            raise AssertionError(
                f"{runtime}: {len(missing)} of {len(expected_again)} requests undecided after "
                f"the restart on an empty data dir, e.g. {missing[:3]}; dead letters: "
                f"{[e.record['reason'] for e in reader.observed.dead_letters][:10]}; "
                f"{_positions(kafka_bootstrap, prefix)}") from None
    reader.close()
    got = {rid: comparable(observed.final(rid) or {}) for rid in expected_again}
    want = {rid: comparable(rec) for rid, rec in expected_again.items()}
    mismatches = {rid: (got[rid], want[rid]) for rid in want if got[rid] != want[rid]}
    assert not mismatches, (
        f"after recovery from the changelog {len(mismatches)} requests differ, "
        f"e.g. {next(iter(mismatches.items()))}"
    )


def _positions(bootstrap: str, prefix: str) -> dict[str, tuple[int, int]]:
    """Per topic (end offset, the worker group's committed offset), summed over the
    partitions: where a stalled worker stopped (failure diagnostics)."""
    from confluent_kafka import Consumer, TopicPartition

    from streams import topics as T

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{prefix}sendgate",
                         "enable.auto.commit": False})
    out = {}
    try:
        for name in (T.SEND_REQUESTS, T.CONTACT_EVENTS):
            topic = prefix + name
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            tps = [TopicPartition(topic, p) for p in parts]
            ends = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps)
            done = sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
            out[name] = (ends, done)
    except Exception as exc:  # diagnostics only
        return {f"unavailable: {exc}": (0, 0)}
    finally:
        consumer.close()
    return out


def _compare(observed: Any, expected: dict[str, dict[str, Any]]) -> dict[str, Any]:
    got = {rid: comparable(observed.final(rid) or {}) for rid in expected}
    want = {rid: comparable(rec) for rid, rec in expected.items()}
    return {rid: (got[rid], want[rid]) for rid in want if got[rid] != want[rid]}


def test_another_partitioner_gets_the_same_decisions(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    """Issue 15 §3: a producer with librdkafka's default partitioner (consistent_random)
    puts records on other partitions than their contact's; the gate forwards them and,
    owning the target, folds them in merge order."""
    prefix = unique_name + "."
    make_topics(kafka_bootstrap, prefix)
    flat = [e for f in _files() for e in f]
    expected = reference_decisions(flat)
    publish_serially(kafka_bootstrap, prefix, flat, config={"partitioner": "consistent_random"})
    reader = OutputReader(kafka_bootstrap, codec(), topic_prefix=prefix)
    with running([worker(kafka_bootstrap, prefix, tmp_path, "w")], kafka_bootstrap):
        observed = reader.wait_for_requests(expected, timeout=180, settle=2.0)
    reader.close()
    mismatches = _compare(observed, expected)
    assert not mismatches, f"{len(mismatches)} differ, e.g. {next(iter(mismatches.items()))}"
    assert not observed.dead_letters


def test_two_workers_and_a_rebalance_mid_stream_match_decide(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    """Issue 15 §7: a second worker joins while records flow, and takes tasks.

    Published in lock-step (each line of every file once the previous ones were folded or
    forwarded): with two workers an extra contact (a linked contact, an order's second
    contact) may be owned by the other worker, which receives it through the internal topic
    a few milliseconds after the record itself; a record to that contact published in that
    window could be folded before it (README, "What order the gate folds your events in").
    """
    from streams.testing.feeder import BarrierFeeder

    prefix = unique_name + "."
    make_topics(kafka_bootstrap, prefix)
    files = _files()
    flat = [e for f in files for e in f]
    expected = reference_decisions(flat)
    half = len(files) // 2
    reader = OutputReader(kafka_bootstrap, codec(), topic_prefix=prefix)
    w1 = worker(kafka_bootstrap, prefix, tmp_path, "w1")
    w2 = worker(kafka_bootstrap, prefix, tmp_path, "w2")
    with running([w1], kafka_bootstrap):
        feeder = BarrierFeeder(kafka_bootstrap, codec(), topic_prefix=prefix, timeout=120,
                               group_id=w1.group_id)
        feeder.feed(files[:half])
        w2.start()
        try:
            rest = files[half:]
            feeder.feed(rest[: len(rest) // 4])  # while the second worker joins
            deadline = time.monotonic() + 90
            while "assigned tasks" not in w2.log_tail(400):
                assert time.monotonic() < deadline, "the second worker never took tasks"
                time.sleep(0.2)
            feeder.feed(rest[len(rest) // 4 :])
            feeder.close()
            observed = reader.wait_for_requests(expected, timeout=180, settle=2.0)
        finally:
            w2.stop()
    reader.close()
    mismatches = _compare(observed, expected)
    assert not mismatches, f"{len(mismatches)} differ, e.g. {next(iter(mismatches.items()))}"


def test_an_order_version_that_drops_a_contact_removes_the_order_there(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    """Contract §2 / issue 15 §7: the later version replaces the earlier one as a whole,
    so the contact it no longer lists loses the order (and what it based on it)."""
    prefix = unique_name + "."
    make_topics(kafka_bootstrap, prefix)
    path = next(p for p in sorted(scenario_dir().glob("T102.jsonl")))
    import json

    order, request = (json.loads(line) for line in path.read_text().splitlines()[:2])
    assert len(order["contacts"]) == 2 and request["contact"] == order["contacts"][1]["contact"]
    v2 = {**order, "event_id": order["event_id"] + "-v2", "occurred_at": "2026-09-13T10:00:00Z",
          "contacts": order["contacts"][:1]}
    events = [order, v2, request]
    expected = reference_decisions(events)
    kept = reference_decisions([order, request])
    rid = request["request_id"]
    assert comparable(expected[rid]) != comparable(kept[rid]), "the drop must matter here"
    publish_serially(kafka_bootstrap, prefix, events)
    reader = OutputReader(kafka_bootstrap, codec(), topic_prefix=prefix)
    with running([worker(kafka_bootstrap, prefix, tmp_path, "w")], kafka_bootstrap):
        observed = reader.wait_for_requests(expected, timeout=120, settle=1.0)
    reader.close()
    assert _compare(observed, expected) == {}


def test_full_speed_publishing_audits_clean(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 §4: published at full speed (no wait for acknowledgements) to a running
    worker, the audit's replay (the same merge order) re-decides every request alike."""
    from streams.cli import main
    from streams.client import SendgateProducer
    from streams.testing.feeder import retenant

    prefix = unique_name + "."
    make_topics(kafka_bootstrap, prefix)
    files = _files()
    copies = [[{**e, "event_id": f"{e['event_id']}-x{i}",
                **({"request_id": f"{e['request_id']}-x{i}"} if "request_id" in e else {})}
               for e in retenant(f, f"-x{i}")] for i in range(3) for f in files]
    # interleave the files line by line, as many shops publishing at once
    rounds = max(len(f) for f in copies)
    events = [f[k] for k in range(rounds) for f in copies if k < len(f)]
    requests = {e["request_id"] for e in events if e["type"] == "send_request"}
    reader = OutputReader(kafka_bootstrap, codec(), topic_prefix=prefix)
    with running([worker(kafka_bootstrap, prefix, tmp_path, "w")], kafka_bootstrap):
        with SendgateProducer(kafka_bootstrap, codec(), topic_prefix=prefix) as sdk:
            for e in events:
                sdk.publish({k: v for k, v in e.items() if k != "expect"})
        reader.wait_for_requests(requests, timeout=180, settle=2.0)
    reader.close()
    monkeypatch.setenv("SENDGATE_HMAC_KEY", "integration-test-key")
    out = tmp_path / "audit.json"
    code = main(["audit", "--bootstrap", kafka_bootstrap, "--topic-prefix", prefix,
                 "--json", str(out), "--no-progress", "--quiet", "--settle", "0"])
    import json

    report = json.loads(out.read_text())
    totals = report["totals"]
    assert totals["requests_audited"] == len(requests)
    late = [line for line in (tmp_path / "w.log").read_text().splitlines()
            if "fetched after a record" in line]
    if totals["agreeing"] != len(requests):
        print("findings:", json.dumps(report["findings"], indent=1))
        print(f"{len(late)} records broke the worker's merge order:", *late[:20], sep="\n")
    assert totals["agreeing"] == len(requests), totals
    assert code == 0
