"""Replay speed of `sendgate audit`: events/s of decode + fold + decide on one core.

Generates a realistic feed (streams.workload, 70/15/10/5 % send requests / orders /
signups / unsubscribes), encodes it as the input topics carry it (Avro single-object,
input keys), and times the audit's own replay step (`streams.audit.replay.Redecider`:
decode, contract check, key check, fold, decide, final-decision tracking) in stages, so
the cost of each part is visible:

    decode            codec.decode only
    decode+parse      + parse_event (contract validation)
    replay            Redecider.feed: the full per-event work of an audit
    replay+what-if    the same with a candidate policy (two engines)
    replay --jobs N   the replay split by tenant over N processes (ShardedRedecider)

With `--kafka` it also publishes the feed to prefixed topics on the broker and runs the
whole audit (`run_audit`: consume + merge + replay + read decisions + compare).

    .venv/bin/python bench/bench_audit.py [--events 200000] [--contacts 50000] [--kafka]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streams import topics as T  # noqa: E402
from streams.audit.replay import (  # noqa: E402
    Redecider,
    ShardConfig,
    ShardedRedecider,
    TopicSet,
    tenant_shard,
)
from streams.codecs.registry import get_codec  # noqa: E402
from streams.config import Settings  # noqa: E402
from streams.core.engine import contact_points  # noqa: E402
from streams.core.keys import input_key  # noqa: E402
from streams.core.parse import parse_event  # noqa: E402
from streams.core.policy import PolicyBook, policy_book_from_mapping  # noqa: E402
from streams.workload import Workload  # noqa: E402

SECRET = b"bench-audit-key-not-secret"

Encoded = tuple[str, int, int, int, bytes, bytes]  # topic, partition, offset, ts, key, value


def generate(events: int, contacts: int, tenants: int) -> list[Encoded]:
    codec = get_codec(Settings.from_env())
    feed: list[Encoded] = []
    offsets: dict[str, int] = {}
    # recent record timestamps: the broker's time-based retention would delete old ones
    base_ms = (int(time.time()) - 3600) * 1000
    workload = Workload(contacts=contacts, tenants=tenants, seed=11, run_id="ba")
    for i, obj in enumerate(workload.events(events)):
        spec = T.input_topic_for(obj["type"])
        value = codec.encode(spec.value_schemas[0], obj, topic=spec.name)
        ev = parse_event(obj)
        key = input_key(ev.tenant, contact_points(ev)[0]).encode()
        off = offsets.get(spec.name, 0)
        offsets[spec.name] = off + 1
        feed.append((spec.name, 0, off, base_ms + i, key, value))
    return feed


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process and of its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def timed(label: str, n: int, fn: Callable[[], None]) -> dict[str, Any]:
    """Wall clock and CPU time: the machine is shared, so the CPU time of the process
    (and of its shard processes) is the per-core figure; wall time is what a user waits."""
    gc.collect()
    cpu0, kids0 = _cpu()
    start = time.perf_counter()
    fn()
    secs = time.perf_counter() - start
    cpu1, kids1 = _cpu()
    cpu, kids = cpu1 - cpu0, kids1 - kids0
    rate = n / secs if secs else float("inf")
    cpu_rate = n / cpu if cpu else float("inf")
    extra = f"  (cpu {cpu:.2f} s = {cpu_rate:,.0f}/s" + (f", shards {kids:.2f} s)" if kids else ")")
    print(
        f"  {label:<18} {n:>9,} events  {secs:7.2f} s  {rate:>10,.0f} events/s{extra}",
        flush=True,
    )
    return {
        "stage": label,
        "events": n,
        "seconds": round(secs, 3),
        "events_per_second": round(rate),
        "cpu_seconds": round(cpu, 3),
        "cpu_events_per_second": round(cpu_rate),
        "shard_cpu_seconds": round(kids, 3),
    }


def bench_stages(feed: list[Encoded], jobs: int) -> list[dict[str, Any]]:
    codec = get_codec(Settings.from_env())
    topics = TopicSet.from_catalogue("")
    n = len(feed)
    results = []

    def decode() -> None:
        for topic, _, _, _, _, value in feed:
            codec.decode(value, topics.input_records[topic])

    def decode_parse() -> None:
        for topic, _, _, _, _, value in feed:
            parse_event(codec.decode(value, topics.input_records[topic])[1])

    def replay(candidate: PolicyBook | None) -> Callable[[], None]:
        def run() -> None:
            r = Redecider(codec, SECRET, topics, PolicyBook(), candidate)
            for topic, part, off, ts, key, value in feed:
                r.feed(topic, part, off, ts, key, value)
            assert not r.stats.rejected and not r.stats.engine_errors, r.stats
            print(
                f"    ({r.stats.requests_in_window:,} requests, {r.stats.decisions:,} decisions, "
                f"{r.stats.revocations:,} revocations)"
            )

        return run

    results.append(timed("decode", n, decode))
    results.append(timed("decode+parse", n, decode_parse))
    results.append(timed("replay", n, replay(None)))
    candidate = policy_book_from_mapping({"default": {"soft_opt_in_months": 12}})
    results.append(timed("replay+what-if", n, replay(candidate)))
    if jobs > 1:
        config = ShardConfig(
            settings=Settings.from_env(),
            secret=SECRET,
            topics=topics,
            baseline=PolicyBook(),
            candidate=None,
            tenant=None,
            window_starts={0: 0},
            window_ends={0: n},
            keep_contact_keys=False,
        )

        def sharded() -> None:
            r = ShardedRedecider(config, jobs)
            try:
                for rec in feed:
                    r.feed(*rec)
                got = r.result()
            finally:
                r.close()
            assert got.stats.events == n and not got.stats.rejected

        row = timed(f"replay --jobs {jobs}", n, sharded)
        # On a machine with `jobs` free cores the wall time is the largest of the parent's
        # routing and the busiest shard's CPU (spawn and import included); the shards'
        # CPU is split by their share of the events.
        shares = [0] * jobs
        for rec in feed:
            shares[tenant_shard(rec[4], jobs)] += 1
        busiest = max(shares) / n * row["shard_cpu_seconds"]
        single = results[2]["cpu_seconds"]
        bound = max(row["cpu_seconds"], busiest)
        row["shard_events"] = shares
        row["cpu_bound_speedup"] = round(single / bound, 2) if bound else None
        print(
            f"    (events per shard {shares}; busiest shard ~{busiest:.2f} s CPU, parent "
            f"{row['cpu_seconds']:.2f} s: {row['cpu_bound_speedup']}x the one-process "
            f"replay's {single:.2f} s CPU, given {jobs} free cores)"
        )
        results.append(row)
    return results


def bench_kafka(feed: list[Encoded], bootstrap: str) -> dict[str, Any]:
    """Publish to fresh prefixed topics and time one whole `run_audit`."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from streams.audit.replay import AuditOptions, run_audit
    from streams.audit.window import parse_bound

    prefix = f"bench-audit-{uuid.uuid4().hex[:8]}."
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [*T.INPUT_TOPICS, *T.OUTPUT_TOPICS]
    for f in admin.create_topics(
        [NewTopic(prefix + t, num_partitions=12, replication_factor=1) for t in names]
    ).values():
        f.result(timeout=30)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1 << 20,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    for topic, _, _, ts, key, value in feed:
        while True:
            try:
                producer.produce(prefix + topic, key=key, value=value, timestamp=ts)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    opts = AuditOptions(
        bootstrap=bootstrap,
        codec=get_codec(Settings.from_env()),
        secret=SECRET,
        baseline=PolicyBook(),
        baseline_label="defaults",
        start=parse_bound("beginning"),
        stop=parse_bound("end", is_end=True),
        topic_prefix=prefix,
        progress=None,
    )
    start = time.perf_counter()
    outcome = run_audit(opts)
    secs = time.perf_counter() - start
    inputs = outcome.report["source"]["inputs"]
    rate = len(feed) / secs
    print(
        f"  {'kafka end-to-end':<18} {len(feed):>9,} events  {secs:7.2f} s  {rate:>10,.0f} events/s"
        f"  (replay loop {inputs['events_per_second']:,} events/s)"
    )
    for f in admin.delete_topics([prefix + t for t in names]).values():
        f.result(timeout=30)
    return {
        "stage": "kafka end-to-end",
        "events": len(feed),
        "seconds": round(secs, 3),
        "events_per_second": round(rate),
        "replay_loop_events_per_second": inputs["events_per_second"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--contacts", type=int, default=50_000)
    ap.add_argument("--tenants", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2, help="processes for the sharded stage")
    ap.add_argument("--kafka", action="store_true", help="also time a whole audit on the broker")
    ap.add_argument("--bootstrap", default=None)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "audit.json")
    args = ap.parse_args()

    print(
        f"generating {args.events:,} events over {args.contacts:,} contacts in "
        f"{args.tenants} tenants …",
        flush=True,
    )
    feed = generate(args.events, args.contacts, args.tenants)
    # the generated feed is the harness's (a consumer holds one batch, not the topic):
    # frozen, the collector's full passes do not scan it
    gc.collect()
    gc.freeze()
    print("stages (one process each, unless --jobs):")
    results = bench_stages(feed, args.jobs)
    if args.kafka:
        results.append(bench_kafka(feed, args.bootstrap or Settings.from_env().kafka_bootstrap))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results}, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
