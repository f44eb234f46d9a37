"""Building blocks of the end-to-end benchmark (`bench/bench_e2e.py`).

Kept apart from the orchestration so that each piece can be tried on its own:
the encoded workload (cached on disk), per-run topics, pre-loading, paced offering,
reading decisions back by their log-append time, process sampling from /proc, and
Kafka's own ProducerPerformance / ConsumerPerformance tools.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from streams import topics as T
from streams.codecs.base import Codec
from streams.topics import TopicRole, catalogue

INPUT_NAMES: tuple[str, ...] = T.INPUT_TOPICS  # index = topic id in the cache
DECISION_NAMES: tuple[str, ...] = (T.APPROVED, T.BLOCKED, T.REVOKED)
CACHE_FORMAT = 2


# ----------------------------------------------------------------------- workload


@dataclass
class EncodedWorkload:
    """Pre-encoded input records in generation (arrival) order."""

    topic_ids: list[int]  # index into INPUT_NAMES
    keys: list[bytes]
    values: list[bytes]
    request_ids: list[str | None]  # the request_id of a send request, else None
    contacts: int
    tenants: int
    seed: int

    def __len__(self) -> int:
        return len(self.values)

    def avg_value_bytes(self, n: int | None = None) -> float:
        vals = self.values[: n or len(self.values)]
        return sum(map(len, vals)) / max(1, len(vals))

    def avg_key_bytes(self, n: int | None = None) -> float:
        keys = self.keys[: n or len(self.keys)]
        return sum(map(len, keys)) / max(1, len(keys))

    def mix(self, start: int, stop: int) -> dict[str, int]:
        counts = [0] * len(INPUT_NAMES)
        for t in self.topic_ids[start:stop]:
            counts[t] += 1
        return {INPUT_NAMES[i]: c for i, c in enumerate(counts)}

    def requests(self, start: int, stop: int) -> list[str]:
        return [r for r in self.request_ids[start:stop] if r is not None]


def load_workload(
    cache_dir: Path, count: int, *, contacts: int, tenants: int, seed: int,
    log: Callable[[str], None] = print,
) -> EncodedWorkload:
    """`count` events of `streams.workload.Workload`, encoded as the SDK publishes them.

    Encoding (parse + Avro) runs at ~10k events/s on this machine, so the result is
    cached under `cache_dir` by (count, contacts, tenants, seed); a longer cached feed
    serves a shorter request (the generator is deterministic: a prefix is a prefix).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(
        rf"workload-v{CACHE_FORMAT}-(\d+)-c{contacts}-t{tenants}-s{seed}\.pkl$"
    )
    for path in sorted(cache_dir.iterdir()):
        m = pattern.match(path.name)
        if m and int(m.group(1)) >= count:
            t0 = time.perf_counter()
            with path.open("rb") as fh:
                wl: EncodedWorkload = pickle.load(fh)
            log(f"workload: {count:,} of {len(wl):,} cached events from {path} "
                f"({time.perf_counter() - t0:.1f}s)")
            if len(wl) > count:
                wl = EncodedWorkload(wl.topic_ids[:count], wl.keys[:count],
                                     wl.values[:count], wl.request_ids[:count],
                                     contacts, tenants, seed)
            return wl
    from streams.codecs.registry import get_codec
    from streams.testing.feeder import Publisher
    from streams.workload import Workload

    publisher = Publisher.__new__(Publisher)  # encode only: no producer
    publisher.codec = get_codec()
    publisher.prefix = ""
    topic_index = {name: i for i, name in enumerate(INPUT_NAMES)}
    wl = EncodedWorkload([], [], [], [], contacts, tenants, seed)
    t0 = time.perf_counter()
    gen = Workload(contacts=contacts, tenants=tenants, seed=seed, run_id="bench")
    for i, event in enumerate(gen.events(count)):
        topic, key, value = publisher.encode(event)
        wl.topic_ids.append(topic_index[topic])
        wl.keys.append(key)
        wl.values.append(value)
        wl.request_ids.append(event.get("request_id") if event["type"] == "send_request"
                              else None)
        if i and i % 100_000 == 0:
            rate = i / (time.perf_counter() - t0)
            log(f"workload: encoded {i:,}/{count:,} ({rate:,.0f}/s)")
    path = cache_dir / f"workload-v{CACHE_FORMAT}-{count}-c{contacts}-t{tenants}-s{seed}.pkl"
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        pickle.dump(wl, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    log(f"workload: encoded {count:,} events in {time.perf_counter() - t0:.0f}s -> {path}")
    return wl


# ----------------------------------------------------------------------- topics


def create_run_topics(admin: AdminClient, prefix: str, partitions: int) -> list[str]:
    """The catalogue under `prefix`; decision topics with LogAppendTime so that a
    decision's timestamp is the broker's append time (latency = append - append)."""
    new = []
    for spec in catalogue(prefix=prefix, partitions=partitions):
        config = spec.config()
        if spec.role is TopicRole.OUTPUT:
            config["message.timestamp.type"] = "LogAppendTime"
        new.append(NewTopic(spec.name, num_partitions=spec.partitions,
                            replication_factor=1, config=config))
    return _create(admin, new)


def create_topic(admin: AdminClient, name: str, partitions: int,
                 config: dict[str, str] | None = None) -> None:
    _create(admin, [NewTopic(name, num_partitions=partitions, replication_factor=1,
                             config={"retention.ms": str(T.DAY_MS), **(config or {})})])


def _create(admin: AdminClient, new: Sequence[NewTopic]) -> list[str]:
    futures = admin.create_topics(list(new), request_timeout=60, operation_timeout=60)
    for _name, fut in futures.items():
        try:
            fut.result(60)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not (isinstance(err, KafkaError)
                    and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise
    _wait_topics(admin, [t.topic for t in new])
    return [t.topic for t in new]


def _wait_topics(admin: AdminClient, names: Sequence[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=10)
        if all(n in meta.topics and meta.topics[n].error is None
               and all(p.leader >= 0 for p in meta.topics[n].partitions.values())
               for n in names):
            return
        time.sleep(0.2)
    raise TimeoutError(f"topics not ready: {names}")


def delete_topics_with_prefix(admin: AdminClient, prefix: str) -> list[str]:
    meta = admin.list_topics(timeout=10)
    names = [n for n in meta.topics if n.startswith(prefix)]
    if names:
        for fut in admin.delete_topics(names, operation_timeout=60).values():
            with contextlib.suppress(KafkaException):
                fut.result(60)
    return names


# ----------------------------------------------------------------------- produce


def fast_producer(bootstrap: str, **extra: Any) -> Producer:
    conf = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "partitioner": "murmur2_random",
        "message.max.bytes": 4 * 1024 * 1024,
    }
    conf.update(extra)
    return Producer(conf)


def _produce(producer: Producer, topic: str, key: bytes, value: bytes,
             on_delivery: Any = None) -> None:
    while True:
        try:
            if on_delivery is None:
                producer.produce(topic, value, key)
            else:
                producer.produce(topic, value, key, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


def preload(bootstrap: str, prefix: str, wl: EncodedWorkload, start: int, stop: int
            ) -> float:
    """Produce records [start, stop) to the prefixed input topics; returns records/s."""
    producer = fast_producer(bootstrap)
    names = [prefix + n for n in INPUT_NAMES]
    t0 = time.perf_counter()
    tids, keys, values = wl.topic_ids, wl.keys, wl.values
    for i in range(start, stop):
        _produce(producer, names[tids[i]], keys[i], values[i])
        if i % 20_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise KafkaException("preload: flush timed out")
    return (stop - start) / (time.perf_counter() - t0)


@dataclass
class OfferResult:
    offered_per_s: float
    achieved_offer_per_s: float  # what the paced producer actually managed
    events: int
    started_wall: float
    ended_wall: float
    input_append_ms: dict[str, int] = field(default_factory=dict)  # request_id -> ts
    timestamp_types: set[int] = field(default_factory=set)


def offer(bootstrap: str, prefix: str, wl: EncodedWorkload, start: int, rate: float,
          seconds: float) -> OfferResult:
    """Produce records from `start` at `rate` events/s for `seconds` (paced every 2 ms),
    collecting each send request's log-append time from its delivery report."""
    producer = fast_producer(bootstrap, **{"linger.ms": 1, "batch.num.messages": 1000})
    names = [prefix + n for n in INPUT_NAMES]
    count = int(rate * seconds)
    stop = start + count
    if stop > len(wl):
        raise ValueError(f"the workload has {len(wl)} events, the step needs {stop}")
    res = OfferResult(rate, 0.0, count, time.time(), 0.0)
    appended = res.input_append_ms
    types = res.timestamp_types

    def delivered_for(rid: str) -> Callable[[Any, Any], None]:
        def cb(err: Any, msg: Any) -> None:
            if err is None:
                ts_type, ts = msg.timestamp()
                types.add(ts_type)
                appended[rid] = ts
        return cb

    tids, keys, values, rids = wl.topic_ids, wl.keys, wl.values, wl.request_ids
    t0 = time.perf_counter()
    i = start
    while i < stop:
        due = start + min(count, int((time.perf_counter() - t0) * rate) + 1)
        while i < due:
            rid = rids[i]
            _produce(producer, names[tids[i]], keys[i], values[i],
                     None if rid is None else delivered_for(rid))
            i += 1
        producer.poll(0)
        ahead = (i - start) / rate - (time.perf_counter() - t0)
        if ahead > 0:
            time.sleep(min(ahead, 0.002))
    elapsed = time.perf_counter() - t0
    res.achieved_offer_per_s = count / elapsed
    if producer.flush(60) != 0:
        raise KafkaException("offer: flush timed out")
    res.ended_wall = time.time()
    return res


# ----------------------------------------------------------------------- consume


def consumer(bootstrap: str, **extra: Any) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": f"bench-{time.time_ns()}",
        "enable.auto.commit": False,
        "fetch.message.max.bytes": 8 * 1024 * 1024,
        "queued.max.messages.kbytes": 262_144,
    }
    conf.update(extra)
    return Consumer(conf)


def retrying(fn: Callable[..., Any], *args: Any, seconds: float = 180.0, **kwargs: Any) -> Any:
    """Call `fn`, retrying on Kafka errors for up to `seconds` (the shared broker may be
    restarted by other people's chaos tests while a phase runs)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn(*args, **kwargs)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def end_offsets(c: Consumer, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    return dict(retrying(_end_offsets, c, list(topics)))


def _end_offsets(c: Consumer, topics: list[str]) -> dict[tuple[str, int], int]:
    meta = c.list_topics(timeout=10)
    out = {}
    for name in topics:
        for p in meta.topics[name].partitions:
            _, high = c.get_watermark_offsets(TopicPartition(name, p), timeout=10)
            out[(name, p)] = high
    return out


def total_end(c: Consumer, topics: Iterable[str]) -> int:
    return sum(end_offsets(c, topics).values())


def committed_lag(c: Consumer, group: str, topics: Iterable[str], bootstrap: str) -> int:
    """Records of `topics` not yet committed by `group` (without joining the group)."""
    return int(retrying(_committed_lag, c, group, list(topics), bootstrap))


def _committed_lag(c: Consumer, group: str, topics: list[str], bootstrap: str) -> int:
    ends = end_offsets(c, topics)
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                      "enable.auto.commit": False})
    try:
        tps = [TopicPartition(t, p) for (t, p) in ends]
        committed = probe.committed(tps, timeout=10)
    finally:
        probe.close()
    lag = 0
    for tp in committed:
        pos = tp.offset if tp.offset >= 0 else 0
        lag += max(0, ends[(tp.topic, tp.partition)] - pos)
    return lag


def last_append_ms(c: Consumer, topics: Iterable[str]) -> int | None:
    """The newest record timestamp over all partitions of `topics` (None when empty)."""
    ends = end_offsets(c, topics)
    tps = [TopicPartition(t, p, high - 1) for (t, p), high in ends.items() if high > 0]
    return _edge_append_ms(c, tps, max)


def first_append_ms(c: Consumer, topics: Iterable[str]) -> int | None:
    """The oldest record timestamp over all partitions of `topics` (None when empty)."""
    ends = end_offsets(c, topics)
    tps = [TopicPartition(t, p, OFFSET_BEGINNING) for (t, p), high in ends.items() if high > 0]
    return _edge_append_ms(c, tps, min)


def _edge_append_ms(c: Consumer, tps: list[TopicPartition],
                    pick: Callable[[int, int], int]) -> int | None:
    if not tps:
        return None
    c.assign(tps)
    want = {(tp.topic, tp.partition) for tp in tps}
    best: int | None = None
    deadline = time.monotonic() + 30
    while want and time.monotonic() < deadline:
        for msg in c.consume(1000, 0.2):
            if msg.error():
                continue
            key = (msg.topic(), msg.partition())
            if key in want:
                want.discard(key)
                ts = msg.timestamp()[1]
                best = ts if best is None else pick(best, ts)
    c.unassign()
    return best


@dataclass
class DecisionLog:
    """Decisions read back from the decision topics, by request id (headers only)."""

    first_ms: dict[str, int] = field(default_factory=dict)  # first decision append time
    counts: dict[str, int] = field(default_factory=dict)  # non-revoking decisions
    outcomes: dict[str, set[bytes]] = field(default_factory=dict)
    revocations: dict[str, int] = field(default_factory=dict)
    records: int = 0
    min_ms: int | None = None
    max_ms: int | None = None


def read_decisions(bootstrap: str, prefix: str, *, start: dict[tuple[str, int], int] | None,
                   until_records: int | None = None, want: set[str] | None = None,
                   timeout: float = 300.0, log: DecisionLog | None = None) -> DecisionLog:
    """Read the decision topics from `start` offsets (None: the beginning) until the
    end offsets seen now are reached, or until every request in `want` is seen."""
    out = log or DecisionLog()
    c = consumer(bootstrap)
    names = [prefix + n for n in DECISION_NAMES]
    revoked = prefix + T.REVOKED
    deadline = time.monotonic() + timeout
    ends = end_offsets(c, names)
    tps = [TopicPartition(t, p, (start or {}).get((t, p), OFFSET_BEGINNING))
           for (t, p) in ends]
    c.assign(tps)
    positions = {(tp.topic, tp.partition): (start or {}).get((tp.topic, tp.partition), 0)
                 for tp in tps}
    missing = set(want) if want is not None else None
    first, counts, outcomes, revs = out.first_ms, out.counts, out.outcomes, out.revocations
    idle_since = time.monotonic()
    while time.monotonic() < deadline:
        batch = c.consume(5000, 0.2)
        for msg in batch:
            if msg.error():
                continue
            positions[(msg.topic(), msg.partition())] = msg.offset() + 1
            hdrs = dict(msg.headers() or ())
            rid = hdrs.get("sg-request-id", b"").decode()
            ts = msg.timestamp()[1]
            out.records += 1
            out.min_ms = ts if out.min_ms is None else min(out.min_ms, ts)
            out.max_ms = ts if out.max_ms is None else max(out.max_ms, ts)
            if msg.topic() == revoked:
                revs[rid] = revs.get(rid, 0) + 1
                continue
            if rid not in first:
                first[rid] = ts
            counts[rid] = counts.get(rid, 0) + 1
            outcomes.setdefault(rid, set()).add(hdrs.get("sg-decision", b""))
            if missing is not None:
                missing.discard(rid)
        if batch:
            idle_since = time.monotonic()
        if missing is not None:
            if not missing:
                break
            if not batch and time.monotonic() - idle_since > 1.0:
                ends = end_offsets(c, names)  # more may have arrived
                idle_since = time.monotonic()
            continue
        if all(positions[k] >= v for k, v in ends.items()):
            if until_records is None or out.records >= until_records:
                break
            ends = end_offsets(c, names)
    c.close()
    return out


def compare_outputs(bootstrap: str, topic: str, wl: EncodedWorkload, count: int
                    ) -> dict[str, int]:
    """Read `topic` whole and match its (key, value) records against the first `count`
    inputs of the workload (a null pipeline forwards each input unchanged): inputs with
    no output record, and output records beyond one per input (at-least-once repeats)."""
    want: dict[int, int] = {}
    for key, value in zip(wl.keys[:count], wl.values[:count], strict=True):
        h = hash((key, value))
        want[h] = want.get(h, 0) + 1
    got: dict[int, int] = {}
    c = consumer(bootstrap)
    ends = end_offsets(c, [topic])
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for (t, p) in ends])
    positions = dict.fromkeys(ends, 0)
    records = 0
    deadline = time.monotonic() + 600
    while any(positions[k] < v for k, v in ends.items()) and time.monotonic() < deadline:
        for msg in c.consume(10_000, 0.5):
            if msg.error():
                continue
            records += 1
            positions[(msg.topic(), msg.partition())] = msg.offset() + 1
            h = hash((msg.key(), msg.value()))
            got[h] = got.get(h, 0) + 1
    c.close()
    missing = sum(max(0, n - got.get(h, 0)) for h, n in want.items())
    extra = sum(max(0, n - want.get(h, 0)) for h, n in got.items())
    return {"output_records": records, "inputs_without_output": missing,
            "outputs_beyond_one_per_input": extra}


def read_changelog_states(bootstrap: str, topic: str) -> tuple[int, int, int]:
    """(records, distinct keys, summed size of each key's latest value) of a changelog."""
    c = consumer(bootstrap)
    ends = end_offsets(c, [topic])
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for (t, p) in ends])
    latest: dict[bytes, int] = {}
    positions = dict.fromkeys(ends, 0)
    records = 0
    deadline = time.monotonic() + 600
    while any(positions[k] < v for k, v in ends.items()) and time.monotonic() < deadline:
        for msg in c.consume(10_000, 0.5):
            if msg.error():
                continue
            records += 1
            positions[(msg.topic(), msg.partition())] = msg.offset() + 1
            latest[msg.key()] = len(msg.value() or b"")
    c.close()
    return records, len(latest), sum(latest.values())


# ----------------------------------------------------------------------- processes


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children) from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot (/proc/stat)."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    vals = [int(v) for v in parts]
    idle = vals[3] + vals[4]
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(vals) - idle) / ticks, sum(vals) / ticks


class Sampler:
    """Samples RSS and CPU time of some processes every `interval` s in a thread."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        self.pids = pids
        self.interval = interval
        self.peak_rss: dict[str, int] = dict.fromkeys(pids, 0)
        self.last_rss: dict[str, int] = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.cpu0 = {n: proc_cpu_seconds(p) for n, p in pids.items()}
        self.cpu1 = dict(self.cpu0)
        self.machine0 = machine_cpu_seconds()
        self.machine1 = self.machine0
        self.load0 = os.getloadavg()
        self.load1 = self.load0
        self.t0 = time.monotonic()
        self.t1 = self.t0

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _sample(self) -> None:
        for name, pid in self.pids.items():
            rss = proc_rss_bytes(pid)
            if rss:
                self.last_rss[name] = rss
                self.peak_rss[name] = max(self.peak_rss[name], rss)
            cpu = proc_cpu_seconds(pid)
            if cpu:
                self.cpu1[name] = cpu

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> None:
        if not self._stop.is_set():
            self._sample()
            self._stop.set()
            self._thread.join(5)
            self.machine1 = machine_cpu_seconds()
            self.load1 = os.getloadavg()
            self.t1 = time.monotonic()

    def cpu(self, name: str) -> float:
        return self.cpu1[name] - self.cpu0[name]

    def summary(self) -> dict[str, Any]:
        wall = max(1e-9, self.t1 - self.t0)
        busy = self.machine1[0] - self.machine0[0]
        total = self.machine1[1] - self.machine0[1]
        return {
            "wall_s": round(wall, 2),
            "cpu_s": {n: round(self.cpu(n), 2) for n in self.pids},
            "cpu_cores_avg": {n: round(self.cpu(n) / wall, 2) for n in self.pids},
            "machine_busy_cores_avg": round(busy / wall, 2) if total else None,
            "rss_peak_mb": {n: round(v / 2**20, 1) for n, v in self.peak_rss.items()},
            "rss_last_mb": {n: round(v / 2**20, 1) for n, v in self.last_rss.items()},
            "loadavg_start": [round(x, 2) for x in self.load0],
            "loadavg_end": [round(x, 2) for x in self.load1],
        }


def broker_pid(var: Path) -> int | None:
    try:
        pid = int((var / "kafka" / "kafka.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / f).stat().st_size
    return total


def topic_disk_bytes(log_dir: Path, topic: str) -> int | None:
    """Bytes of a topic's partition directories in the (local) broker's log dir."""
    if not log_dir.is_dir():
        return None
    total = 0
    found = False
    for d in log_dir.iterdir():
        name, _, part = d.name.rpartition("-")
        if name == topic and part.isdigit():
            found = True
            total += sum(f.stat().st_size for f in d.glob("*.log"))
    return total if found else None


# ----------------------------------------------------------------------- kafka tools


_PP = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
                 r"([\d.]+) ms avg latency, ([\d.]+) ms max latency"
                 r"(?:, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th)?")


def kafka_tool(lib: Path, main: str, args: Sequence[str], log4j: Path,
               timeout: float = 600) -> str:
    cmd = ["java", "-Xms256m", "-Xmx768m", f"-Dlog4j2.configurationFile={log4j}",
           "-cp", f"{lib}/*", main, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{main} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def producer_performance(lib: Path, log4j: Path, bootstrap: str, topic: str,
                         records: int, size: int) -> dict[str, Any]:
    out = kafka_tool(lib, "org.apache.kafka.tools.ProducerPerformance", [
        "--topic", topic, "--num-records", str(records), "--record-size", str(size),
        "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}",
        "acks=all", "linger.ms=5",
    ], log4j)
    m = None
    for line in out.splitlines():
        m = _PP.search(line) or m
    if m is None:
        raise RuntimeError(f"cannot parse ProducerPerformance output:\n{out[-2000:]}")
    return {
        "records": int(m.group(1)),
        "records_per_s": float(m.group(2)),
        "mb_per_s": float(m.group(3)),
        "avg_latency_ms": float(m.group(4)),
        "max_latency_ms": float(m.group(5)),
        "p50_ms": int(m.group(6)) if m.group(6) else None,
        "p99_ms": int(m.group(8)) if m.group(8) else None,
        "record_size": size,
        "props": "acks=all linger.ms=5",
    }


def consumer_performance(lib: Path, log4j: Path, bootstrap: str, topic: str,
                         records: int) -> dict[str, Any]:
    out = kafka_tool(lib, "org.apache.kafka.tools.ConsumerPerformance", [
        "--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records),
        "--timeout", "60000", "--group", f"bench-perf-{time.time_ns()}",
    ], log4j)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    header_i = next(i for i, ln in enumerate(lines) if ln.startswith("start.time"))
    header = [h.strip() for h in lines[header_i].split(",")]
    values = [v.strip() for v in lines[header_i + 1].split(",")]
    row = dict(zip(header, values, strict=False))
    return {
        "records": int(float(row["data.consumed.in.nMsg"])),
        "records_per_s": float(row["nMsg.sec"]),
        "fetch_records_per_s": float(row.get("fetch.nMsg.sec", "nan")),
        "mb_per_s": float(row["MB.sec"]),
        "rebalance_ms": float(row.get("rebalance.time.ms", "nan")),
    }


# ----------------------------------------------------------------------- python ceiling


def python_ceiling(bootstrap: str, prefix: str, records: int, out_topic: str,
                   codec: Codec, timeout: float = 900) -> dict[str, Any]:
    """One thread, no logic: consume the prefixed input topics from the beginning,
    Avro-decode each value, Avro-encode it again, produce it to `out_topic`."""
    expected = {prefix + n: T.INPUT_RECORDS[n] for n in INPUT_NAMES}
    c = consumer(bootstrap)
    ends = end_offsets(c, list(expected))
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for (t, p) in ends])
    producer = fast_producer(bootstrap, **{"linger.ms": 5})
    decode, encode, produce = codec.decode, codec.encode, producer.produce
    got = 0
    mismatches = 0
    deadline = time.monotonic() + timeout
    t0 = None
    while got < records and time.monotonic() < deadline:
        batch = c.consume(2000, 0.5)
        if batch and t0 is None:
            t0 = time.perf_counter()
        for msg in batch:
            if msg.error():
                continue
            value = msg.value()
            name, obj = decode(value, expected[msg.topic()])
            out = encode(name, obj)
            mismatches += out != value
            while True:
                try:
                    produce(out_topic, out, msg.key())
                    break
                except BufferError:
                    producer.poll(0.05)
            got += 1
        producer.poll(0)
    if producer.flush(120) != 0:
        raise KafkaException("python ceiling: flush timed out")
    elapsed = time.perf_counter() - (t0 or time.perf_counter())
    c.close()
    return {"records": got, "seconds": round(elapsed, 2),
            "records_per_s": round(got / elapsed, 1) if elapsed else None,
            "reencoded_differs": mismatches}
