"""Read the real topics and re-decide every send request of the audit window.

Isolation: the audit reads with its own consumer that never joins a group (`assign()`
only, a random `group.id` that is never used, `enable.auto.commit=false`), keeps all
state in an in-memory `DecisionEngine`, and writes nothing unless `--emit` asks for the
findings topic. The live tables, changelogs and consumer groups are never touched.

Replay order: the worker orders events per contact by their arrival on its internal
re-key topic; across the four input topics there is no global order. The replay merges
the input partitions by broker record timestamp (log-append time when the topics use
it), ties broken by topic catalogue order (orders, signups, unsubscribes, send-requests)
then partition then offset; each partition is read in offset order (a k-way merge).
Limits: two events of one contact logged in the same millisecond on different topics,
or a worker that lagged on one input topic, may have been folded in another order by the
worker; such a request shows up as a disagreement, which is what an audit should surface.

State: facts are replayed from the log start (a consent before the window still counts);
only send requests inside the window are audited. Input retention therefore bounds how
far back an audit is exact.

`Redecider` and `EmittedCollector` are Kafka-free (the benchmark drives them directly);
`KafkaReader` owns the consumer.
"""

from __future__ import annotations

import dataclasses
import heapq
import pickle
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from streams.audit.compare import DecisionView, EmittedDecision, RequestInfo, RequestKey
from streams.audit.window import BEGINNING, END, Bound
from streams.codecs.base import Codec
from streams.config import kafka_for
from streams.core.engine import DecisionEngine, contact_points
from streams.core.errors import DecodeError, RejectedRecord, Rejection
from streams.core.keys import contact_key
from streams.core.model import Decision, SendRequest
from streams.core.policy import PolicyBook
from streams.gate.gate import admit_value
from streams.ordering import MergeKey, merge_key, sequence_of

ORDERING_NOTE = (
    "inputs merged by broker record timestamp, ties by topic order (orders, signups, "
    "unsubscribes, send-requests) then partition and offset; each partition in offset "
    "order; facts from the log start, requests audited only inside the window"
)

# Input records above this size are dead-lettered by the worker as OVERSIZE (the gate).
MAX_INPUT_BYTES = 1 << 20

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class TopicSet:
    """The topic names of one deployment (catalogue names with the `--topic-prefix`)."""

    prefix: str
    inputs: tuple[str, ...]
    input_records: Mapping[str, str]
    send_requests: str
    outputs: tuple[str, ...]
    output_records: Mapping[str, str]
    findings: str

    @staticmethod
    def from_catalogue(prefix: str = "") -> TopicSet:
        from streams import topics as T

        inputs = tuple(prefix + name for name in T.INPUT_RECORDS)
        outputs = (prefix + T.APPROVED, prefix + T.BLOCKED, prefix + T.REVOKED)
        return TopicSet(
            prefix=prefix,
            inputs=inputs,
            input_records={prefix + n: rec for n, rec in T.INPUT_RECORDS.items()},
            send_requests=prefix + T.SEND_REQUESTS,
            outputs=outputs,
            output_records={
                prefix + T.APPROVED: T.APPROVED_RECORD,
                prefix + T.BLOCKED: T.DECISION_RECORD,
                prefix + T.REVOKED: T.DECISION_RECORD,
            },
            findings=prefix + T.AUDIT_FINDINGS,
        )


class FinalDecisions:
    """Running final decision per request id (contract §6: last wins, revocation final)."""

    def __init__(self) -> None:
        self.by_request: dict[RequestKey, DecisionView] = {}

    def offer(self, view: DecisionView) -> None:
        current = self.by_request.get(view.key)
        if current is not None and current.revokes and not view.revokes:
            return
        self.by_request[view.key] = view


def view_of(decision: Decision) -> DecisionView:
    """A core decision as the audit compares it.

    Field by field rather than through `decision_to_dict` (a fifth of the replay's own
    cost); a unit test pins it to `DecisionView.from_mapping(decision_to_dict(d))`.
    """
    return DecisionView(
        decision.request_id,
        decision.tenant,
        decision.legal_entity,
        str(decision.channel),
        str(decision.decision),
        str(decision.reason_code),
        str(decision.legal_basis),
        decision.rule_ids,
        decision.revokes,
        decision.rulebook_version,
    )


@dataclass
class ReplayStats:
    events: int = 0
    skipped_other_tenant: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    engine_errors: list[str] = field(default_factory=list)  # positions, never contents
    requests_seen: int = 0
    requests_in_window: int = 0
    decisions: int = 0
    revocations: int = 0


class Redecider:
    """Fold input records, in replay order, into fresh engines and keep the final decisions.

    Acceptance mirrors the worker's ingest step (streams.gate.gate.Gate.admit): a record
    that the worker dead-letters (bad bytes, contract error, wrong key, oversize) never
    reaches the state, so it is counted as rejected here and not fed.
    """

    def __init__(
        self,
        codec: Codec,
        secret: bytes,
        topics: TopicSet,
        baseline: PolicyBook,
        candidate: PolicyBook | None = None,
        *,
        tenant: str | None = None,
        in_window: Callable[[int, int, int], bool] = lambda _p, _o, _ts: True,
        keep_contact_keys: bool = False,
    ) -> None:
        self._secret = secret
        self.keep_contact_keys = keep_contact_keys
        self.codec = codec
        self.topics = topics
        self.tenant = tenant
        self._tenant_prefix = None if tenant is None else (tenant + "|").encode()
        self.in_window = in_window
        self.engine = DecisionEngine(baseline, secret)
        self.candidate_engine = DecisionEngine(candidate, secret) if candidate else None
        self.baseline_final = FinalDecisions()
        self.candidate_final = FinalDecisions()
        self.requests: list[RequestInfo] = []
        self.window_ids: set[RequestKey] = set()
        self.known_ids: set[RequestKey] = set()
        # request id -> HMAC contact key (the Kafka key of its findings, as on the outputs)
        self.contact_keys: dict[RequestKey, str] = {}
        self.stats = ReplayStats()

    def feed(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
    ) -> None:
        self.stats.events += 1
        if self._tenant_prefix is not None and not (key or b"").startswith(self._tenant_prefix):
            # another tenant (no state is shared across tenants), or a key the worker
            # rejects anyway: either way it cannot change this tenant's decisions
            self.stats.skipped_other_tenant += 1
            return
        try:
            event = self._accept(topic, key, value)
        except RejectedRecord as exc:
            self.stats.rejected[exc.reason.value] += 1
            return
        except Exception:  # the worker dead-letters these as PROCESSING_ERROR
            self.stats.rejected[Rejection.PROCESSING_ERROR.value] += 1
            return
        if self.tenant is not None and event.tenant != self.tenant:
            self.stats.skipped_other_tenant += 1
            return
        try:
            decisions = self.engine.feed(event)
            again = self.candidate_engine.feed(event) if self.candidate_engine else []
        except RejectedRecord as exc:  # `sendgate decide` rejects such a line too
            self.stats.rejected[exc.reason.value] += 1
            return
        except Exception as exc:
            self.stats.engine_errors.append(f"{topic}:{partition}:{offset}: {type(exc).__name__}")
            return
        if isinstance(event, SendRequest):
            self._register(event, topic, partition, offset, timestamp_ms)
        for d in decisions:
            self.stats.decisions += 1
            if d.revokes:
                self.stats.revocations += 1
            if (d.tenant, d.request_id) in self.window_ids:
                self.baseline_final.offer(view_of(d))
        for d in again:
            if (d.tenant, d.request_id) in self.window_ids:
                self.candidate_final.offer(view_of(d))

    def _register(
        self, request: SendRequest, topic: str, partition: int, offset: int, timestamp_ms: int
    ) -> None:
        """Note an accepted request: known (first occurrence only), audited when in window."""
        rkey = (request.tenant, request.request_id)
        if rkey in self.known_ids:  # a repeated request id: the engine ignored it
            return
        self.known_ids.add(rkey)
        self.stats.requests_seen += 1
        if not self.in_window(partition, offset, timestamp_ms):
            return
        self.window_ids.add(rkey)
        self.stats.requests_in_window += 1
        if self.keep_contact_keys:  # only --emit needs them
            self.contact_keys[rkey] = contact_key(
                self._secret, request.tenant, contact_points(request)[0]
            )
        self.requests.append(
            RequestInfo(
                request.request_id,
                request.tenant,
                request.legal_entity,
                str(request.channel),
                request.occurred_at.isoformat(),
                timestamp_ms,
                f"{topic}:{partition}:{offset}",
            )
        )

    def result(self) -> ReplayResult:
        return ReplayResult(
            requests=self.requests,
            baseline=self.baseline_final.by_request,
            candidate=self.candidate_final.by_request,
            window_ids=self.window_ids,
            known_ids=self.known_ids,
            contact_keys=self.contact_keys,
            stats=self.stats,
        )

    def _accept(self, topic: str, key: bytes | None, value: bytes | None) -> Any:
        expected = self.topics.input_records.get(topic)
        if expected is None:
            raise DecodeError(Rejection.WRONG_TOPIC, f"not an input topic: {topic}")
        return admit_value(self.codec, expected, key, value, MAX_INPUT_BYTES)[0]


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


@dataclass
class ReplayResult:
    """What a replay hands to the comparison (picklable: it crosses process boundaries)."""

    requests: list[RequestInfo]
    baseline: dict[RequestKey, DecisionView]
    candidate: dict[RequestKey, DecisionView]
    window_ids: set[RequestKey]
    known_ids: set[RequestKey]
    contact_keys: dict[RequestKey, str]
    stats: ReplayStats


class _PackedResult(msgspec.Struct, array_like=True, gc=False):
    """A `ReplayResult` as a shard sends it back: msgpack, decoded by type in C (pickling
    the ~2 objects per request was the serial tail of a sharded replay). Keyed views and
    ids travel as lists; every final view's key is its own (tenant, request_id)."""

    requests: list[RequestInfo]
    baseline: list[DecisionView]
    candidate: list[DecisionView]
    window_ids: list[tuple[str, str]]
    known_ids: list[tuple[str, str]]
    contact_keys: list[tuple[str, str, str]]
    stats: bytes  # pickled ReplayStats: small, and it holds a Counter


_PACKED_DECODER = msgspec.msgpack.Decoder(_PackedResult)


def pack_result(result: ReplayResult) -> bytes:
    """The bytes a shard sends back (`unpack_result` reverses it)."""
    return msgspec.msgpack.encode(
        _PackedResult(
            result.requests,
            list(result.baseline.values()),
            list(result.candidate.values()),
            list(result.window_ids),
            list(result.known_ids),
            [(t, r, k) for (t, r), k in result.contact_keys.items()],
            pickle.dumps(result.stats),
        )
    )


def unpack_result(data: bytes) -> ReplayResult:
    packed = _PACKED_DECODER.decode(data)
    return ReplayResult(
        requests=packed.requests,
        baseline={v.key: v for v in packed.baseline},
        candidate={v.key: v for v in packed.candidate},
        window_ids=set(packed.window_ids),
        known_ids=set(packed.known_ids),
        contact_keys={(t, r): k for t, r, k in packed.contact_keys},
        stats=pickle.loads(packed.stats),
    )


def merge_results(parts: Sequence[ReplayResult]) -> ReplayResult:
    """One result from the shards' results; requests back in log order."""
    stats = ReplayStats()
    merged = ReplayResult([], {}, {}, set(), set(), {}, stats)
    for part in parts:
        merged.requests.extend(part.requests)
        merged.baseline.update(part.baseline)
        merged.candidate.update(part.candidate)
        merged.window_ids |= part.window_ids
        merged.known_ids |= part.known_ids
        merged.contact_keys.update(part.contact_keys)
        ps = part.stats
        stats.events += ps.events
        stats.skipped_other_tenant += ps.skipped_other_tenant
        stats.rejected.update(ps.rejected)
        stats.engine_errors.extend(ps.engine_errors)
        stats.requests_seen += ps.requests_seen
        stats.requests_in_window += ps.requests_in_window
        stats.decisions += ps.decisions
        stats.revocations += ps.revocations
    merged.requests.sort(key=_log_order)
    return merged


def _log_order(req: RequestInfo) -> tuple[int, int, int]:
    _, partition, offset = req.position.rsplit(":", 2)
    return (req.timestamp_ms, int(partition), int(offset))


@dataclass(frozen=True)
class ShardConfig:
    """Everything a shard process needs to build its own Redecider (picklable)."""

    settings: Any  # streams.config.Settings: the codec is rebuilt in the process
    secret: bytes
    topics: TopicSet
    baseline: PolicyBook
    candidate: PolicyBook | None
    tenant: str | None
    window_starts: Mapping[int, int]
    window_ends: Mapping[int, int]
    keep_contact_keys: bool

    def build(self, codec: Codec | None = None) -> Redecider:
        from streams.codecs.registry import get_codec

        return Redecider(
            codec if codec is not None else get_codec(self.settings),
            self.secret,
            self.topics,
            self.baseline,
            self.candidate,
            tenant=self.tenant,
            in_window=window_predicate(self.window_starts, self.window_ends),
            keep_contact_keys=self.keep_contact_keys,
        )


RecordTuple = tuple[str, int, int, int, bytes | None, bytes | None]


def _shard_main(shard: int, config: ShardConfig, inbox: Any, outbox: Any) -> None:
    """Body of one shard process: feed batches until None, then send the result back."""
    import traceback

    try:
        redecider = config.build()
        while True:
            batch: list[RecordTuple] | None = inbox.get()
            if batch is None:
                break
            for rec in batch:
                redecider.feed(*rec)
        outbox.put(("ok", shard, pack_result(redecider.result())))
    except BaseException:  # reported to the parent, which fails the audit (exit 1)
        outbox.put(("error", shard, traceback.format_exc(limit=5)))


def tenant_shard(key: bytes | None, jobs: int) -> int:
    """Shard of an input record: by the tenant part of its input key `tenant|type|value`.

    A record whose key is not its own input key is refused by whichever shard gets it,
    as the worker refuses it, so routing on the key cannot change a decision.
    """
    if not key:
        return 0
    return zlib.crc32(key.split(b"|", 1)[0]) % jobs


class ShardedRedecider:
    """A Redecider spread over `jobs` processes, one engine each, split by tenant.

    Exact, not approximate: tenants share no state (contract §1; the engine's event and
    request idempotency is per tenant too) and every record of a tenant reaches the same
    process in replay order. Speed-up needs several tenants; one huge tenant stays on one
    core.
    """

    BATCH = 2_000

    def __init__(self, config: ShardConfig, jobs: int, *, timeout: float = 600.0) -> None:
        import multiprocessing

        # spawn: the parent holds librdkafka threads, which must not be forked
        ctx = multiprocessing.get_context("spawn")
        self.jobs = jobs
        self.timeout = timeout
        self.inboxes = [ctx.Queue(maxsize=8) for _ in range(jobs)]
        self.outbox = ctx.Queue()
        self.procs = [
            ctx.Process(target=_shard_main, args=(i, config, inbox, self.outbox), daemon=True)
            for i, inbox in enumerate(self.inboxes)
        ]
        for proc in self.procs:
            proc.start()
        self.pending: list[list[RecordTuple]] = [[] for _ in range(jobs)]

    def feed(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
    ) -> None:
        i = tenant_shard(key, self.jobs)
        batch = self.pending[i]
        batch.append((topic, partition, offset, timestamp_ms, key, value))
        if len(batch) >= self.BATCH:
            self._send(i, batch)
            self.pending[i] = []

    def _send(self, i: int, batch: list[RecordTuple] | None) -> None:
        import queue

        while True:
            try:
                self.inboxes[i].put(batch, timeout=1.0)
                return
            except queue.Full:
                if not self.procs[i].is_alive():
                    raise ReplayError(f"audit shard {i} died") from None

    def result(self) -> ReplayResult:
        import queue

        for i in range(self.jobs):
            if self.pending[i]:
                self._send(i, self.pending[i])
                self.pending[i] = []
            self._send(i, None)
        parts: dict[int, ReplayResult] = {}
        deadline = time.monotonic() + self.timeout
        while len(parts) < self.jobs:
            try:
                status, shard, payload = self.outbox.get(timeout=1.0)
            except queue.Empty:
                dead = [i for i, p in enumerate(self.procs) if i not in parts and not p.is_alive()]
                if not dead and time.monotonic() < deadline:
                    continue
                try:  # a shard that just exited may have flushed its result meanwhile
                    status, shard, payload = self.outbox.get(timeout=2.0)
                except queue.Empty:
                    self.close()
                    raise ReplayError(f"audit shard(s) {dead} stopped without a result") from None
            if status != "ok":
                self.close()
                raise ReplayError(f"audit shard {shard} failed:\n{payload}")
            parts[shard] = unpack_result(payload)
        for proc in self.procs:
            proc.join(timeout=10)
        return merge_results([parts[i] for i in sorted(parts)])

    def close(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
            proc.join(timeout=5)


class EmittedCollector:
    """Final emitted decision per request id, from the three output topics.

    Only what the comparison needs is kept: requests of the window, and decisions whose
    request id no input carries (orphan candidates). The raw contact of `ApprovedSend`
    is dropped in `DecisionView.from_mapping`.
    """

    def __init__(
        self,
        codec: Codec,
        topics: TopicSet,
        window_ids: set[RequestKey],
        known_ids: set[RequestKey],
        *,
        tenant: str | None = None,
    ) -> None:
        self.codec = codec
        self.tenant = tenant
        self.topics = topics
        self._topic_index = {t: i for i, t in enumerate(topics.outputs)}
        self.window_ids = window_ids
        self.known_ids = known_ids
        self._best: dict[RequestKey, tuple[tuple[int, int, int, int, int], EmittedDecision]] = {}
        # request id -> record key of its final decision (the HMAC contact key)
        self.keys: dict[RequestKey, bytes | None] = {}
        self.records = 0
        self.undecodable: Counter[str] = Counter()

    def feed(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
    ) -> None:
        self.records += 1
        if value is None:
            self.undecodable[Rejection.TRUNCATED.value] += 1
            return
        try:
            _, obj = self.codec.decode(value, self.topics.output_records.get(topic))
            view = DecisionView.from_mapping(obj)
        except RejectedRecord as exc:
            self.undecodable[exc.reason.value] += 1
            return
        except (KeyError, TypeError, ValueError):
            self.undecodable[Rejection.SCHEMA_MISMATCH.value] += 1
            return
        rid = view.key
        if rid not in self.window_ids and (
            rid in self.known_ids or (self.tenant is not None and view.tenant != self.tenant)
        ):
            return
        # last by log order, a revocation is final (see compare.fold_final)
        rank = (int(view.revokes), timestamp_ms, self._topic_index.get(topic, 9), partition, offset)
        current = self._best.get(rid)
        if current is None or rank > current[0]:
            position = f"{topic}:{partition}:{offset}"
            self._best[rid] = (rank, EmittedDecision(view, timestamp_ms, position))
            self.keys[rid] = key

    @property
    def finals(self) -> dict[RequestKey, EmittedDecision]:
        return {rkey: e for rkey, (_, e) in self._best.items()}


# --------------------------------------------------------------------------- Kafka


class ReplayError(RuntimeError):
    """The audit could not read what it needs (missing topics, broker unreachable...)."""


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    sequence: int = 0  # the producer's `sg-seq` stamp (streams.ordering)


class KafkaReader:
    """An isolated consumer: assign() only, no group membership, no commits."""

    def __init__(
        self, bootstrap: str, *, timeout: float = 10.0, idle_timeout: float = 60.0
    ) -> None:
        from confluent_kafka import Consumer

        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.consumer = Consumer(
            kafka_for(bootstrap).consumer(
                # never joined (assign only) and never committed: invisible to the live groups
                f"sendgate-audit-{uuid.uuid4()}", {
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 8 * 1024 * 1024,
                "queued.max.messages.kbytes": 256 * 1024,
            })
        )

    def close(self) -> None:
        self.consumer.close()

    def partitions(self, topics: Sequence[str]) -> tuple[dict[str, list[int]], list[str]]:
        """Partitions per existing topic, and the topics that do not exist."""
        md = self.consumer.list_topics(timeout=self.timeout)
        found: dict[str, list[int]] = {}
        missing: list[str] = []
        for t in topics:
            meta = md.topics.get(t)
            if meta is None or meta.error is not None or not meta.partitions:
                missing.append(t)
            else:
                found[t] = sorted(meta.partitions)
        return found, missing

    def watermarks(
        self, parts: Mapping[str, Sequence[int]]
    ) -> dict[TopicPartitionKey, tuple[int, int]]:
        from confluent_kafka import TopicPartition

        out: dict[TopicPartitionKey, tuple[int, int]] = {}
        for t, ps in parts.items():
            for p in ps:
                low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(t, p), timeout=self.timeout, cached=False
                )
                out[(t, p)] = (int(low), int(high))
        return out

    def resolve(
        self,
        bound: Bound,
        marks: Mapping[TopicPartitionKey, tuple[int, int]],
    ) -> dict[TopicPartitionKey, int]:
        """Offsets of a window bound on the given partitions (clamped to the log)."""
        from confluent_kafka import TopicPartition

        if bound.kind == BEGINNING:
            return {tp: lo for tp, (lo, _) in marks.items()}
        if bound.kind == END:
            return {tp: hi for tp, (_, hi) in marks.items()}
        if bound.kind == "offsets":
            default_to_end = {tp: hi for tp, (_, hi) in marks.items()}
            return {
                tp: min(max(bound.offsets.get(tp, default_to_end[tp]), lo), hi)
                for tp, (lo, hi) in marks.items()
            }
        assert bound.time_ms is not None
        query = [TopicPartition(t, p, bound.time_ms) for (t, p) in marks]
        if not query:
            return {}
        answer = self.consumer.offsets_for_times(query, timeout=self.timeout)
        out: dict[TopicPartitionKey, int] = {}
        for tp in answer:
            if tp.error is not None:
                raise ReplayError(f"offsets_for_times {tp.topic}:{tp.partition}: {tp.error}")
            lo, hi = marks[(tp.topic, tp.partition)]
            # -1: no record at or after the time -> the end of the partition
            out[(tp.topic, tp.partition)] = hi if tp.offset < 0 else min(max(tp.offset, lo), hi)
        return out

    def merged(
        self,
        ranges: Mapping[TopicPartitionKey, tuple[int, int]],
        topic_index: Mapping[str, int],
        *,
        high_water: int = 20_000,
    ) -> Iterator[Record]:
        """Records of every [start, end) range, k-way merged by `ordering.merge_key` (the
        worker's task merge order: append time, sg-seq, topic rank, partition, offset).

        A record is released only once every unfinished partition has a buffered head,
        so the merge is exact; a partition whose buffer grows past `high_water` is paused
        until the others catch up, which bounds memory. A partition is finished at its
        snapshot end offset: by a record at end-1, or by an end-of-partition event at or
        past it (the last offsets may be transaction markers, never delivered).
        """
        from confluent_kafka import KafkaError, TopicPartition

        keys = [tp for tp, (s, e) in ranges.items() if e > s]
        if not keys:
            return
        index = {tp: i for i, tp in enumerate(keys)}
        ends = [ranges[tp][1] for tp in keys]
        buffers: list[deque[Record]] = [deque() for _ in keys]
        finished = [False] * len(keys)
        waiting = set(range(len(keys)))  # unfinished partitions with an empty buffer
        paused: set[int] = set()
        heap: list[tuple[MergeKey, int]] = []

        def rank(rec: Record) -> MergeKey:
            return merge_key(rec.timestamp_ms, rec.sequence, topic_index[rec.topic],
                             rec.partition, rec.offset)

        def finish(i: int) -> None:
            finished[i] = True
            if not buffers[i]:
                waiting.discard(i)
            # stop fetching what the audit will not use
            self.consumer.pause([TopicPartition(*keys[i])])
            paused.discard(i)

        def take(m: Any) -> None:
            err = m.error()
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                raise ReplayError(f"consume {m.topic()}:{m.partition()}: {err}")
            i = index.get((m.topic(), m.partition()))
            off = m.offset()
            if i is None or finished[i] or off is None:
                return
            if err is not None or off >= ends[i]:
                # end of partition, or a record written after the audit started
                if off >= ends[i]:
                    finish(i)
                return
            ts_type, ts = m.timestamp()
            rec = Record(keys[i][0], keys[i][1], off, int(ts) if ts_type else 0, m.key(), m.value(),
                         sequence_of(m.headers()))
            buf = buffers[i]
            if not buf:
                heapq.heappush(heap, (rank(rec), i))
                waiting.discard(i)
            buf.append(rec)
            if off >= ends[i] - 1:
                finish(i)
            elif len(buf) > high_water and i not in paused:
                self.consumer.pause([TopicPartition(*keys[i])])
                paused.add(i)

        self.consumer.assign([TopicPartition(t, p, ranges[(t, p)][0]) for t, p in keys])
        last_progress = time.monotonic()
        try:
            while True:
                batch = self.consumer.consume(num_messages=10_000, timeout=0.5)
                if batch:
                    last_progress = time.monotonic()
                for m in batch:
                    take(m)
                while heap and not waiting:
                    _, i = heapq.heappop(heap)
                    buf = buffers[i]
                    rec = buf.popleft()
                    yield rec
                    if buf:
                        heapq.heappush(heap, (rank(buf[0]), i))
                    elif not finished[i]:
                        waiting.add(i)
                    if i in paused and len(buf) < high_water // 2:
                        self.consumer.resume([TopicPartition(*keys[i])])
                        paused.discard(i)
                if not heap and all(finished):
                    return
                if time.monotonic() - last_progress > self.idle_timeout:
                    stuck = [f"{keys[i][0]}:{keys[i][1]}" for i in sorted(waiting)]
                    raise ReplayError(
                        f"no records for {self.idle_timeout:.0f}s from {', '.join(stuck)} "
                        "before their end offset (open transaction or broker trouble?)"
                    )
        finally:
            self.consumer.unassign()


def window_predicate(
    starts: Mapping[int, int], ends: Mapping[int, int]
) -> Callable[[int, int, int], bool]:
    """Whether a send-request record (partition, offset, timestamp) is inside the window."""

    def inside(partition: int, offset: int, _timestamp_ms: int) -> bool:
        return starts.get(partition, 0) <= offset < ends.get(partition, 0)

    return inside


def new_run_id() -> str:
    return uuid.uuid4().hex


# --------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class AuditOptions:
    bootstrap: str
    codec: Codec
    secret: bytes
    baseline: PolicyBook
    baseline_label: str
    start: Bound
    stop: Bound
    topic_prefix: str = ""
    tenant: str | None = None
    candidate: PolicyBook | None = None
    candidate_label: str | None = None
    progress: bool | None = None  # None: only when stderr is a terminal
    emit: bool = False  # keep the contact keys that key the findings records
    jobs: int = 1  # >1: replay in that many processes, split by tenant
    # `--to end` stops this long before now: the worker may not yet have decided the very
    # last requests, and an audit must not call them missing (next run covers them)
    settle_seconds: float = 30.0
    settings: Any = None  # streams.config.Settings for the shard processes' codec
    idle_timeout: float = 60.0
    timeout: float = 10.0


@dataclass(frozen=True)
class AuditOutcome:
    report: dict[str, Any]
    comparison: Any  # compare.Comparison
    policy_changes: tuple[Any, ...] | None
    run_id: str
    # request id -> Kafka key of its finding: the HMAC contact key, as on the outputs
    finding_keys: Mapping[RequestKey, bytes] = field(default_factory=dict)


def _ranges_json(
    starts: Mapping[TopicPartitionKey, int], ends: Mapping[TopicPartitionKey, int]
) -> dict[str, dict[str, list[int]]]:
    out: dict[str, dict[str, list[int]]] = {}
    for t, p in sorted(starts):
        out.setdefault(t, {})[str(p)] = [starts[(t, p)], ends[(t, p)]]
    return out


def run_audit(opts: AuditOptions, *, now: Callable[[], Any] | None = None) -> AuditOutcome:
    """Replay the inputs, read the outputs, compare, and build the JSON report."""
    from datetime import UTC, datetime, timedelta

    from streams.audit.compare import AuditMeta, build_report, compare, diff_policies
    from streams.audit.progress import Progress
    from streams.audit.window import positions_to_json

    started = time.monotonic()
    topics = TopicSet.from_catalogue(opts.topic_prefix)
    reader = KafkaReader(opts.bootstrap, timeout=opts.timeout, idle_timeout=opts.idle_timeout)
    try:
        in_parts, in_missing = reader.partitions(topics.inputs)
        if not in_parts:
            raise ReplayError(
                f"none of the input topics exists on {opts.bootstrap}: "
                f"{', '.join(topics.inputs)} (wrong --topic-prefix or --bootstrap?)"
            )
        in_marks = reader.watermarks(in_parts)
        sr_marks = {tp: m for tp, m in in_marks.items() if tp[0] == topics.send_requests}
        win_start = reader.resolve(opts.start, sr_marks)
        win_end = reader.resolve(opts.stop, sr_marks)
        if opts.stop.kind == END and opts.settle_seconds > 0:
            cutoff = datetime.now(UTC) - timedelta(seconds=opts.settle_seconds)
            settled = reader.resolve(Bound("time", "settle", time=cutoff), sr_marks)
            win_end = {tp: min(e, settled[tp]) for tp, e in win_end.items()}
        win_end = {tp: max(e, win_start[tp]) for tp, e in win_end.items()}
        config = ShardConfig(
            settings=opts.settings,
            secret=opts.secret,
            topics=topics,
            baseline=opts.baseline,
            candidate=opts.candidate,
            tenant=opts.tenant,
            window_starts={p: o for (_, p), o in win_start.items()},
            window_ends={p: o for (_, p), o in win_end.items()},
            keep_contact_keys=opts.emit,
        )
        redecider: Redecider | ShardedRedecider
        if opts.jobs > 1:
            if opts.settings is None:
                from streams.config import Settings

                config = dataclasses.replace(config, settings=Settings.from_env())
            redecider = ShardedRedecider(config, opts.jobs)
        else:
            redecider = config.build(opts.codec)
        ranges = {tp: (lo, hi) for tp, (lo, hi) in in_marks.items()}
        total_in = sum(hi - lo for lo, hi in ranges.values())
        progress = Progress("replay inputs ", total_in, enabled=opts.progress)
        topic_index = {t: i for i, t in enumerate(topics.inputs)}
        replay_started = time.monotonic()
        for rec in reader.merged(ranges, topic_index):
            redecider.feed(
                rec.topic, rec.partition, rec.offset, rec.timestamp_ms, rec.key, rec.value
            )
            progress.advance()
        try:
            replayed = redecider.result()
        finally:
            if isinstance(redecider, ShardedRedecider):
                redecider.close()
        replay_seconds = time.monotonic() - replay_started

        # the outputs' end is taken after the replay, so decisions the worker wrote
        # meanwhile for the last requests are still seen
        out_parts, out_missing = reader.partitions(topics.outputs)
        out_marks = reader.watermarks(out_parts)
        total_out = sum(hi - lo for lo, hi in out_marks.values())
        progress.stage("read decisions", total_out)
        collector = EmittedCollector(
            opts.codec, topics, replayed.window_ids, replayed.known_ids, tenant=opts.tenant
        )
        out_index = {t: i for i, t in enumerate(topics.outputs)}
        for rec in reader.merged(out_marks, out_index):
            collector.feed(
                rec.topic, rec.partition, rec.offset, rec.timestamp_ms, rec.key, rec.value
            )
            progress.advance()
        progress.finish()
    finally:
        reader.close()

    comparison = compare(
        replayed.requests,
        replayed.candidate if opts.candidate else replayed.baseline,
        collector.finals,
        replayed.known_ids,
        tenant=opts.tenant,
        orphan_since_ms=opts.start.time_ms if opts.start.kind == "time" else None,
        orphan_until_ms=opts.stop.time_ms if opts.stop.kind == "time" else None,
    )
    changes = (
        diff_policies(
            replayed.requests,
            replayed.baseline,
            replayed.candidate,
            tenant=opts.tenant,
        )
        if opts.candidate
        else None
    )
    stats = replayed.stats
    meta = AuditMeta(
        generated_at=(now or (lambda: datetime.now(UTC)))(),
        bootstrap=opts.bootstrap,
        topic_prefix=opts.topic_prefix,
        window={
            "from": opts.start.spec,
            "to": opts.stop.spec,
            "settle_seconds": opts.settle_seconds if opts.stop.kind == END else None,
            "send_request_offsets": _ranges_json(win_start, win_end),
            "resume_from": positions_to_json(win_end),
        },
        tenant=opts.tenant,
        policy={
            "baseline": opts.baseline_label,
            "candidate": opts.candidate_label,
            "compared_with_emitted": opts.candidate_label or opts.baseline_label,
        },
        inputs={
            "topics": list(topics.inputs),
            "missing_topics": in_missing,
            "events": stats.events,
            "skipped_other_tenant": stats.skipped_other_tenant,
            "rejected": dict(stats.rejected),
            "engine_errors": stats.engine_errors[:100],
            "engine_error_count": len(stats.engine_errors),
            "requests_seen": stats.requests_seen,
            "requests_in_window": stats.requests_in_window,
            "redecisions": stats.decisions,
            "revocations": stats.revocations,
            "jobs": opts.jobs,
            "replay_seconds": round(replay_seconds, 3),
            "events_per_second": round(stats.events / replay_seconds)
            if replay_seconds > 0
            else None,
        },
        outputs={
            "topics": list(topics.outputs),
            "missing_topics": out_missing,
            "records": collector.records,
            "undecodable": dict(collector.undecodable),
            "read_to": positions_to_json({tp: hi for tp, (_, hi) in out_marks.items()}),
        },
        ordering=ORDERING_NOTE,
    )
    run_id = new_run_id()
    report = build_report(comparison, meta, changes)
    report["audit_run_id"] = run_id
    report["elapsed_seconds"] = round(time.monotonic() - started, 3)
    keys: dict[RequestKey, bytes] = {k: v for k, v in collector.keys.items() if v}
    keys.update((rkey, ck.encode()) for rkey, ck in replayed.contact_keys.items())
    return AuditOutcome(report, comparison, changes, run_id, keys)


# --------------------------------------------------------------------------- --emit

# compare.FindingKind -> AuditFindingKind symbol (schemas/AuditFinding.avsc); a finding
# whose decision agrees but whose reason differs is an `agree` with both reasons set.
FINDING_SYMBOLS: dict[str, str] = {
    "agree": "agree",
    "reason_differs": "agree",
    "allow_to_block": "allow_to_block",
    "block_to_allow": "block_to_allow",
    "missing_decision": "missing_decision",
    "decision_without_request": "decision_without_request",
}


def finding_records(
    findings: Sequence[Any],
    run_id: str,
    rulebook_version: str | None,
    detected_at: Any,
    *,
    include_agree: bool = False,
) -> Iterator[dict[str, Any]]:
    """`AuditFinding` records (schemas/AuditFinding.avsc) for the findings to publish."""
    for f in findings:
        kind = f.kind.value
        symbol = FINDING_SYMBOLS.get(kind)
        if symbol is None or (kind == "agree" and not include_agree):
            continue
        e, a = f.emitted, f.redecided
        yield {
            "audit_run_id": run_id,
            "request_id": f.request_id,
            "tenant": f.tenant,
            "legal_entity": f.legal_entity,
            "channel": f.channel,
            "kind": symbol,
            "emitted_decision": e.decision if e else None,
            "emitted_reason_code": e.reason_code if e else None,
            "emitted_legal_basis": e.legal_basis if e else None,
            "emitted_rule_ids": list(e.rule_ids) if e else [],
            "audited_decision": a.decision if a else None,
            "audited_reason_code": a.reason_code if a else None,
            "audited_legal_basis": a.legal_basis if a else None,
            "audited_rule_ids": list(a.rule_ids) if a else [],
            "rulebook_version": rulebook_version,
            "detected_at": detected_at,
        }


def emit_findings(
    bootstrap: str,
    topic: str,
    codec: Codec,
    records: Iterator[dict[str, Any]],
    keys: Mapping[RequestKey, bytes],
    *,
    timeout: float = 30.0,
) -> int:
    """Publish findings; returns how many were written.

    Key: the request's HMAC contact key, as the catalogue says for this topic (findings
    land on the partition of the contact's decisions); the request id when unknown.
    Never a raw contact.
    """
    from confluent_kafka import KafkaException, Producer

    from streams import topics as T

    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(
        kafka_for(bootstrap).producer({
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "compression.type": "zstd",
        })
    )
    sent = 0
    for rec in records:
        value = codec.encode(T.AUDIT_FINDING_RECORD, rec, topic=topic)
        while True:
            try:
                key = keys.get((rec["tenant"], rec["request_id"])) or rec["request_id"].encode()
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
            except KafkaException as exc:
                raise ReplayError(f"produce to {topic}: {exc}") from exc
        sent += 1
        producer.poll(0)
    left = producer.flush(timeout)
    if left or errors:
        raise ReplayError(
            f"{left} finding(s) not delivered to {topic}; errors: {'; '.join(errors[:3])}"
        )
    return sent
