"""Dispatch SDK for ESP workers: deliver approved sends at `dispatch_at`, never a revoked one.

    from streams.esp import DispatchConsumer, Send

    def send(s: Send) -> None:               # raise to retry (with backoff)
        smtp_send(s.contact_value, s.template_id, s.request_id)

    with DispatchConsumer(send, group_id="esp-mailer") as dispatcher:
        dispatcher.run()                     # until SIGINT/SIGTERM or dispatcher.stop()

What it guarantees (R-OBJECT-3, contract §7, §8):

- **When**: a send is delivered at or after its `dispatch_at`, and only once the revoked
  topic's partition of the same number has been read up to its high watermark as queried
  at or after `dispatch_at` (*the revocation rule*): every revocation the broker had
  appended by `dispatch_at` has then been seen. A revocation appended later is reported
  (log + `sendgate_dispatch_revoked_after_dispatch_total`), never silently dropped.
- **Never revoked**: a `sends.revoked` record (same contact key, same `request_id`, `as_of`
  within the idempotency horizon) suppresses the send, whichever of the two is read first.
- **Once per contact point within the horizon**: a repeated approval of one `request_id`
  for one contact key whose `as_of` is within 30 days of a handled one is skipped. The
  dedupe memory is rebuilt at start by re-reading `dedupe_lookback` (default: the horizon)
  of the approved topic — the topic is the database.
- **At-least-once**: the approved partition's committed offset is the oldest approval not
  yet settled (delivered, suppressed, dead-lettered); the offsets above it that are settled
  travel in the commit metadata, so a restart re-delivers only what was delivered after the
  last commit (commits follow every batch of deliveries). The callback must tolerate that
  rare repeat (the `request_id` is the idempotency key towards the mail/SMS provider).
- **Bounded memory**: at most `max_pending` approvals are held; past it the approved
  partitions are paused (no loss, only delay) until deliveries drain them below 90 %.
  The dedupe memory holds at most `dedupe_max` request ids (~120 bytes each), oldest
  evicted first (counted). Held revocations are few (late objections) and kept for the horizon.

Approved and revoked records share the HMAC contact key, so a request's two records land on
the same partition number of the two topics; one consumer reads both with the `range`
assignor, which gives a member the same partition numbers of both topics.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from types import FrameType, TracebackType
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams import topics as T
from streams.codecs.base import Codec
from streams.config import Settings
from streams.core.errors import RejectedRecord

log = logging.getLogger("sendgate.esp")

HORIZON = timedelta(days=30)
"""The idempotency horizon (contract §8): one `request_id` per contact point within it."""

DEFAULT_MAX_PENDING = 100_000
DEFAULT_DEDUPE_MAX = 1_000_000
METADATA_MAX_CHARS = 4000  # the broker's offset.metadata.max.bytes defaults to 4096
_METADATA_TAG = "sg-esp1:"


# ----------------------------------------------------------------------------- time


class Clock(Protocol):
    """Wall-clock source; tests pass a manual clock instead of sleeping until dispatch_at."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(slots=True)
class ManualClock:
    """A clock that moves only when told (tests, simulations)."""

    current: datetime

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


# ----------------------------------------------------------------------------- the send


@dataclass(frozen=True, slots=True)
class Send:
    """One approved send, as the ESP delivers it (the decoded `ApprovedSend` record).

    The contact value is left out of `repr`, so logging a Send never logs the address.
    """

    request_id: str
    tenant: str
    legal_entity: str
    channel: str
    contact_type: str
    contact_value: str = field(repr=False)
    dispatch_at: datetime
    as_of: datetime
    reason_code: str
    legal_basis: str
    declared_purpose: str
    service_kind: str | None
    campaign_id: str | None
    template_id: str | None
    platform: str | None
    contact_key: str  # the record key: HMAC contact key (hex)
    partition: int
    offset: int

    @staticmethod
    def from_record(record: Mapping[str, Any], key: str, partition: int, offset: int) -> Send:
        contact = record["contact"]
        return Send(
            request_id=str(record["request_id"]),
            tenant=str(record["tenant"]),
            legal_entity=str(record["legal_entity"]),
            channel=str(record["channel"]),
            contact_type=str(contact["type"]),
            contact_value=str(contact["value"]),
            dispatch_at=record["dispatch_at"],
            as_of=record["as_of"],
            reason_code=str(record["reason_code"]),
            legal_basis=str(record["legal_basis"]),
            declared_purpose=str(record["declared_purpose"]),
            service_kind=record.get("service_kind"),
            campaign_id=record.get("campaign_id"),
            template_id=record.get("template_id"),
            platform=record.get("platform"),
            contact_key=key,
            partition=partition,
            offset=offset,
        )

    def to_json(self) -> dict[str, Any]:
        """The send as JSON (what `sendgate dispatch --print` writes), contact included."""
        return {
            "request_id": self.request_id,
            "tenant": self.tenant,
            "legal_entity": self.legal_entity,
            "channel": self.channel,
            "contact": {"type": self.contact_type, "value": self.contact_value},
            "dispatch_at": self.dispatch_at.isoformat(timespec="milliseconds"),
            "as_of": self.as_of.isoformat(timespec="milliseconds"),
            "reason_code": self.reason_code,
            "legal_basis": self.legal_basis,
            "declared_purpose": self.declared_purpose,
            "service_kind": self.service_kind,
            "campaign_id": self.campaign_id,
            "template_id": self.template_id,
            "platform": self.platform,
            "contact_key": self.contact_key,
        }


SendCallback = Callable[[Send], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A failed callback is retried after `base * 2**(attempt-1)` (capped) seconds of the
    clock, inside the consumer loop (other sends keep going); after `max_attempts` failures
    the send is written to the dispatch dead-letter topic and settled."""

    max_attempts: int = 5
    base: timedelta = timedelta(seconds=1)
    cap: timedelta = timedelta(minutes=5)

    def delay(self, attempt: int) -> timedelta:
        delay: timedelta = self.base * (2 ** max(0, attempt - 1))
        return min(self.cap, delay)


# ----------------------------------------------------------------------------- metrics


class DispatchMetrics:
    """Prometheus series of the dispatcher (issue 14 §4); never labelled by contact."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.pending = Gauge(
            "sendgate_dispatch_pending", "Approvals held, waiting for dispatch_at", registry=r
        )
        self.delivered = Counter(
            "sendgate_dispatch_delivered", "Sends the callback delivered", registry=r
        )
        self.suppressed = Counter(
            "sendgate_dispatch_suppressed_by_revocation",
            "Approvals not delivered because a revocation was read first (R-OBJECT-3)",
            registry=r,
        )
        self.revoked_after_dispatch = Counter(
            "sendgate_dispatch_revoked_after_dispatch",
            "Revocations read after their send was delivered (appended after dispatch_at)",
            registry=r,
        )
        self.revoked_settled = Counter(
            "sendgate_dispatch_revocations_of_settled",
            "Revocations of a request settled before this run (delivered or suppressed)",
            registry=r,
        )
        self.callback_failures = Counter(
            "sendgate_dispatch_callback_failures", "Send callback failures (retried)", registry=r
        )
        self.dead_lettered = Counter(
            "sendgate_dispatch_dead_lettered",
            "Sends given up after the retry limit, or undecodable records",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "sendgate_dispatch_duplicates",
            "Approvals of a request_id already handled for the contact point within the horizon",
            registry=r,
        )
        self.dedupe_evictions = Counter(
            "sendgate_dispatch_dedupe_evictions",
            "Request ids dropped from the dedupe memory at its limit (dedupe_max)",
            registry=r,
        )
        self.paused = Gauge(
            "sendgate_dispatch_paused", "1 while approved partitions are paused (max_pending)",
            registry=r,
        )


# ----------------------------------------------------------------------------- the book


class Outcome(IntEnum):
    SETTLED = 0  # before this run: delivered, suppressed or dead-lettered
    DELIVERED = 1
    SUPPRESSED = 2
    DEAD_LETTERED = 3


def dedupe_id(contact_key: str, request_id: str) -> bytes:
    """16-byte digest of (contact key, request_id): the identity of a request (contract §7)."""
    return hashlib.blake2b(
        f"{contact_key}\x00{request_id}".encode(), digest_size=16
    ).digest()


class DoneSet:
    """Handled requests: dedupe id -> (as_of ms, outcome), insertion ordered, bounded."""

    def __init__(self, max_entries: int, horizon_ms: int) -> None:
        self.max_entries = max_entries
        self.horizon_ms = horizon_ms
        self._items: dict[bytes, tuple[int, Outcome]] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, ident: bytes, as_of_ms: int) -> Outcome | None:
        """The outcome of the same request (as_of within the horizon), else None."""
        hit = self._items.get(ident)
        if hit is None or abs(hit[0] - as_of_ms) >= self.horizon_ms:
            return None
        return hit[1]

    def add(self, ident: bytes, as_of_ms: int, outcome: Outcome) -> None:
        self._items.pop(ident, None)
        self._items[ident] = (as_of_ms, outcome)
        while len(self._items) > self.max_entries:
            del self._items[next(iter(self._items))]
            self.evicted += 1


@dataclass(slots=True)
class Approval:
    offset: int
    send: Send
    ident: bytes
    as_of_ms: int
    due_ms: int
    done: bool = False
    attempts: int = 0
    retry_at_ms: int = 0
    last_error: str = ""
    key: bytes | None = None
    value: bytes = field(default=b"", repr=False)  # the encoded record: holds the contact


@dataclass(slots=True)
class Revocation:
    offset: int
    as_of_ms: int
    read_at_ms: int
    matched: int | None = None  # offset of the approval it suppressed or found delivered


def encode_settled(base: int, settled: list[int], max_chars: int = METADATA_MAX_CHARS) -> str:
    """Offsets above the committed one that are settled, as ranges relative to it.

    Ranges that do not fit in `max_chars` are left out (those sends may repeat once after a
    restart: the documented at-least-once window)."""
    parts: list[str] = []
    size = len(_METADATA_TAG)
    run_start = prev = -2
    for off in sorted(settled):
        if off == prev + 1:
            prev = off
            continue
        if run_start >= 0:
            parts.append(_range(run_start - base, prev - base))
        run_start = prev = off
    if run_start >= 0:
        parts.append(_range(run_start - base, prev - base))
    kept: list[str] = []
    for p in parts:
        if size + len(p) + 1 > max_chars:
            break
        kept.append(p)
        size += len(p) + 1
    return _METADATA_TAG + ",".join(kept)


def _range(a: int, b: int) -> str:
    return f"{a:x}" if a == b else f"{a:x}-{b:x}"


def decode_settled(base: int, metadata: str | None) -> set[int]:
    """Inverse of `encode_settled`; anything unreadable counts as nothing settled."""
    if not metadata or not metadata.startswith(_METADATA_TAG):
        return set()
    out: set[int] = set()
    try:
        for part in filter(None, metadata[len(_METADATA_TAG):].split(",")):
            a, _, b = part.partition("-")
            lo, hi = int(a, 16), int(b or a, 16)
            out.update(range(base + lo, base + hi + 1))
    except ValueError:
        return set()
    return out


class PartitionBook:
    """The state of one partition number: approvals of sends.approved[p] from the committed
    offset on, revocations of sends.revoked[p], and how far the revoked side is known read.

    Pure bookkeeping (no Kafka, time passed in): the consumer drives it.
    """

    def __init__(
        self,
        partition: int,
        done: DoneSet,
        horizon_ms: int,
        *,
        history_until: int = 0,
        settled_above: set[int] | None = None,
        revoked_start: int = -1,
    ) -> None:
        self.partition = partition
        self.done = done
        self.horizon_ms = horizon_ms
        self.history_until = history_until  # approved offsets below it were settled
        self.settled_above = settled_above or set()
        self.approvals: dict[int, Approval] = {}  # by offset, read (= offset) order
        self.pending: dict[bytes, Approval] = {}
        self.revocations: dict[bytes, Revocation] = {}
        self.poisoned: dict[str, Revocation] = {}  # contact key -> undecodable revocation
        self.approved_next = -1
        self.revoked_next = revoked_start
        self.safe_until_ms = -1  # every revocation appended before this was read
        self.probe: tuple[int, int] | None = None  # (t0 ms, revoked high watermark after t0)
        self.halted: str | None = None
        self._halted_at = -1
        self._ready: list[tuple[int, int]] = []  # heap of (ready ms, offset) of pending sends
        self._blocked = False  # a ready send waits for the revocation rule
        self._dirty = True
        self._commit: tuple[int, str] | None = None

    # -- reading

    def settled_offset(self, offset: int) -> bool:
        return offset < self.history_until or offset in self.settled_above

    def history(self, offset: int, ident: bytes, as_of_ms: int) -> None:
        """An approval settled before this run: remembered for dedupe only."""
        self.approved_next = offset + 1
        self._dirty = True
        if self.done.get(ident, as_of_ms) is None:
            self.done.add(ident, as_of_ms, Outcome.SETTLED)

    def add_approval(self, a: Approval, now_ms: int) -> str:
        """Returns what became of it: pending, duplicate or suppressed."""
        self.approved_next = a.offset + 1
        self._dirty = True
        if a.ident in self.pending or self.done.get(a.ident, a.as_of_ms) is not None:
            a.done = True
            self.approvals[a.offset] = a
            return "duplicate"
        self.approvals[a.offset] = a
        if a.send.contact_key in self.poisoned:
            self.settle(a, Outcome.SUPPRESSED)
            return "suppressed"
        rev = self.revocations.get(a.ident)
        if rev is not None and abs(rev.as_of_ms - a.as_of_ms) < self.horizon_ms:
            rev.matched = a.offset
            a.done = True
            self.done.add(a.ident, a.as_of_ms, Outcome.SUPPRESSED)
            return "suppressed"
        self.pending[a.ident] = a
        heapq.heappush(self._ready, (a.due_ms, a.offset))
        return "pending"

    def add_revocation(self, offset: int, ident: bytes, as_of_ms: int, now_ms: int) -> str:
        """Returns suppressed (a pending send), after_dispatch (delivered in this run),
        settled (handled before this run) or held (its approval not read yet)."""
        self.revoked_next = offset + 1
        rev = Revocation(offset, as_of_ms, now_ms)
        self.revocations[ident] = rev
        a = self.pending.get(ident)
        if a is not None and abs(a.as_of_ms - as_of_ms) < self.horizon_ms:
            del self.pending[ident]
            a.done = True
            self._dirty = True
            rev.matched = a.offset
            self.done.add(ident, a.as_of_ms, Outcome.SUPPRESSED)
            return "suppressed"
        outcome = self.done.get(ident, as_of_ms)
        if outcome is Outcome.DELIVERED:
            rev.matched = next(
                (o for o, x in self.approvals.items() if x.ident == ident), None
            )
            return "after_dispatch"
        if outcome is Outcome.SUPPRESSED:
            return "duplicate"
        if outcome is not None:
            return "settled"
        return "held"

    def poison(self, contact_key: str, offset: int, now_ms: int) -> int:
        """An undecodable revocation for this contact key: it may revoke any of its sends, so
        every send of the key, pending or read within the horizon, is withheld (fail closed).
        Returns how many pending sends that suppressed."""
        self.revoked_next = offset + 1
        self.poisoned[contact_key] = Revocation(offset, now_ms, now_ms)
        hit = [a for a in self.pending.values() if a.send.contact_key == contact_key]
        for a in hit:
            self.settle(a, Outcome.SUPPRESSED)
        return len(hit)

    def halt(self, reason: str, offset: int) -> None:
        """Stop every send of this partition (an undecodable revocation without a key);
        the revoked commit stays at it, so a restart halts again."""
        self.halted = reason
        self._halted_at = offset if self._halted_at < 0 else min(self._halted_at, offset)

    def mark_settled(self, offset: int) -> None:
        """An approval settled without a Send (undecodable, dead-lettered)."""
        self.approved_next = offset + 1
        if offset >= self.history_until:
            self.settled_above.add(offset)
        self._dirty = True

    # -- the revocation rule

    def needs_probe(self, now_ms: int) -> bool:
        if self.probe is not None or self.halted:
            return False
        if self._blocked:
            return True
        if not self._ready or self._ready[0][0] > now_ms:
            return False
        top = self.approvals.get(self._ready[0][1])
        return top is not None and top.due_ms > self.safe_until_ms

    def start_probe(self, t0_ms: int, high_watermark: int) -> None:
        self.probe = (t0_ms, high_watermark)

    def observe_revoked_position(self, position: int) -> None:
        """The consumer has read the revoked partition up to `position` (next offset)."""
        if self.probe is not None and position >= self.probe[1]:
            self.safe_until_ms = max(self.safe_until_ms, self.probe[0])
            self.probe = None
            self._blocked = False

    def due(self, now_ms: int) -> list[Approval]:
        """Pending sends that may go now: due, past the revocation rule, not backing off.

        Each one returned must be settled or `failed` (which schedules its retry)."""
        if self.halted:
            return []
        out: list[Approval] = []
        hold: list[tuple[int, int]] = []
        while self._ready and self._ready[0][0] <= now_ms:
            item = heapq.heappop(self._ready)
            a = self.approvals.get(item[1])
            if a is None or a.done:
                continue
            if a.due_ms > self.safe_until_ms:
                hold.append(item)
            else:
                out.append(a)
        for item in hold:
            heapq.heappush(self._ready, item)
        self._blocked = bool(hold)
        return out

    # -- outcomes

    def requeue(self, approvals: list[Approval]) -> None:
        """Sends `due` returned that were not tried: ready again at once."""
        for a in approvals:
            heapq.heappush(self._ready, (max(a.due_ms, a.retry_at_ms), a.offset))

    def settle(self, a: Approval, outcome: Outcome) -> None:
        self._dirty = True
        self.pending.pop(a.ident, None)
        a.done = True
        self.done.add(a.ident, a.as_of_ms, outcome)

    def failed(self, a: Approval, now_ms: int, error: str, retry: RetryPolicy) -> bool:
        """Count a failure; True when the retry limit is reached."""
        a.attempts += 1
        a.last_error = error
        if a.attempts >= retry.max_attempts:
            return True
        a.retry_at_ms = now_ms + int(retry.delay(a.attempts).total_seconds() * 1000)
        heapq.heappush(self._ready, (a.retry_at_ms, a.offset))
        return False

    # -- commits

    def approved_commit(self) -> tuple[int, str] | None:
        """(offset, metadata) to commit on sends.approved[p], None before anything was read."""
        if self.approved_next < 0:
            return None
        if not self._dirty:
            return self._commit
        self._dirty = False
        while self.approvals:
            first = next(iter(self.approvals.values()))
            if not first.done:
                break
            del self.approvals[first.offset]
        # never below what an earlier run committed, also while its history is re-read
        base = next(iter(self.approvals)) if self.approvals else max(
            self.approved_next, self.history_until
        )
        settled = [o for o, a in self.approvals.items() if a.done and o > base]
        settled += [o for o in self.settled_above if o >= base]
        self._commit = (base, encode_settled(base, settled) if settled else "")
        return self._commit

    def revoked_commit(self, now_ms: int, approved_base: int) -> int | None:
        """Offset to commit on sends.revoked[p]: no held revocation may be skipped on a
        restart (a re-read approval above the approved commit needs its revocation)."""
        for ident, rev in list(self.revocations.items()):
            settled_below = rev.matched is not None and rev.matched < approved_base
            expired = rev.matched is None and rev.read_at_ms + self.horizon_ms < now_ms
            if settled_below or expired:
                del self.revocations[ident]
        for key, rev in list(self.poisoned.items()):
            if rev.read_at_ms + self.horizon_ms < now_ms:
                del self.poisoned[key]
        if self.revoked_next < 0:
            return None
        held = [r.offset for r in (*self.revocations.values(), *self.poisoned.values())]
        if self._halted_at >= 0:
            held.append(self._halted_at)
        return min([self.revoked_next, *held])

    @property
    def held(self) -> int:
        return len(self.approvals)


# ----------------------------------------------------------------------------- the consumer


class DispatchConsumer:
    """Reads sends.approved and sends.revoked in one group and calls `send` when due.

    See the module docstring for the guarantees. `poll_once()` runs one step (tests);
    `run()` loops until `stop()` or a signal. `grace` delays every send past its
    `dispatch_at` (and the revocation rule with it): room for a gate lagging behind its
    inputs, which may still revoke for an objection received before `dispatch_at`.
    `start_at` is where a group without committed offsets begins (default: the beginning
    of the retained topics, i.e. up to 30 days of approvals, old ones delivered at once).
    """

    def __init__(
        self,
        send: SendCallback,
        *,
        group_id: str,
        settings: Settings | None = None,
        codec: Codec | None = None,
        topic_prefix: str = "",
        clock: Clock | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        dedupe_max: int = DEFAULT_DEDUPE_MAX,
        dedupe_lookback: timedelta | None = HORIZON,
        horizon: timedelta = HORIZON,
        grace: timedelta = timedelta(0),
        start_at: datetime | None = None,
        retry: RetryPolicy | None = None,
        dead_letters: bool = True,
        metrics: DispatchMetrics | None = None,
        config: Mapping[str, object] | None = None,
        poll_timeout: float = 0.2,
        deliver_budget: float = 5.0,
        on_failure: Callable[[Send, int, str], None] | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        self.settings = settings if settings is not None else Settings.from_env()
        if codec is None:
            from streams.codecs.registry import get_codec

            codec = get_codec(self.settings)
        self.codec = codec
        self.send = send
        self.clock: Clock = clock or SystemClock()
        self.max_pending = max_pending
        self.horizon_ms = int(horizon.total_seconds() * 1000)
        self.grace_ms = int(grace.total_seconds() * 1000)
        self.start_at = start_at
        self.lookback_ms = None if dedupe_lookback is None else int(
            dedupe_lookback.total_seconds() * 1000
        )
        self.retry = retry or RetryPolicy()
        self.metrics = metrics or DispatchMetrics()
        self.poll_timeout = poll_timeout
        self.deliver_budget = deliver_budget
        self.on_failure = on_failure
        self.approved_topic = topic_prefix + T.APPROVED
        self.revoked_topic = topic_prefix + T.REVOKED
        self.dead_letter_topic = topic_prefix + T.DISPATCH_DEAD_LETTER
        self.done = DoneSet(dedupe_max, self.horizon_ms)
        self.books: dict[int, PartitionBook] = {}
        self.paused = False
        self._stop = threading.Event()
        self._evicted_seen = 0
        self._closed = False
        self._committed: list[tuple[str, int, int, str | None]] = []
        conf = self.settings.kafka.consumer(
            group_id,
            {
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # range gives one member the same partition numbers of both topics
                "partition.assignment.strategy": "range",
                "isolation.level": "read_committed",
                **(config or {}),
            },
        )
        self.consumer: Any = Consumer(conf)
        self.producer: Any = None
        if dead_letters:
            from confluent_kafka import Producer

            self.producer = Producer(
                self.settings.kafka.producer({"enable.idempotence": True, "acks": "all"})
            )
        self.consumer.subscribe(
            [self.approved_topic, self.revoked_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
        )

    # -- lifecycle

    def __enter__(self) -> DispatchConsumer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Commit what is settled and leave the group (a second call does nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._commit()
        finally:
            self.consumer.close()
            if self.producer is not None:
                self.producer.flush(10)

    def run(self, *, handle_signals: bool = True, max_seconds: float | None = None) -> None:
        """Poll, deliver and commit until `stop()`, SIGINT/SIGTERM or `max_seconds`."""
        previous: dict[signal.Signals, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():

            def _handler(signum: int, frame: FrameType | None) -> None:
                self.stop()

            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, _handler)
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self.poll_once()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # -- assignment

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        now_ms = _ms(self.clock.now())
        committed = {(tp.topic, tp.partition): tp for tp in consumer.committed(partitions, 30)}
        assigned: list[Any] = []
        for tp in partitions:
            p = tp.partition
            book = self.books.get(p)
            if book is None:
                book = self.books[p] = PartitionBook(p, self.done, self.horizon_ms)
            c = committed.get((tp.topic, p))
            offset = c.offset if c is not None else -1
            if offset < 0 and self.start_at is not None:
                revoked = tp.topic == self.revoked_topic
                offset = self._offset_at(consumer, tp, self.start_at, revoked)
            if tp.topic == self.revoked_topic:
                book.revoked_next = offset if offset >= 0 else -1
                assigned.append(TopicPartition(tp.topic, p, offset if offset >= 0 else
                                               OFFSET_BEGINNING))
                continue
            start = offset
            if offset >= 0:
                book.history_until = offset
                book.settled_above = decode_settled(offset, c.metadata if c else None)
            if self.lookback_ms is not None and offset > 0:
                # re-read the settled approvals of the lookback: the dedupe memory
                probe = TopicPartition(tp.topic, p, now_ms - self.lookback_ms)
                found = consumer.offsets_for_times([probe], 30)[0].offset
                if 0 <= found < offset:
                    start = found
            assigned.append(TopicPartition(tp.topic, p, start if start >= 0 else OFFSET_BEGINNING))
        consumer.assign(assigned)
        log.info("assigned %s", sorted({tp.partition for tp in partitions}))

    @staticmethod
    def _offset_at(consumer: Any, tp: Any, at: datetime, revoked: bool) -> int:
        """First offset appended from `at` (revocations: an hour earlier, producer clocks
        differ), else the end of the partition."""
        from confluent_kafka import TopicPartition

        when = at - timedelta(hours=1) if revoked else at
        probe = TopicPartition(tp.topic, tp.partition, _ms(when))
        found: int = consumer.offsets_for_times([probe], 30)[0].offset
        if found >= 0:
            return found
        high: int = consumer.get_watermark_offsets(tp, timeout=30, cached=False)[1]
        return high

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._commit()
        self._committed = []
        for p in {tp.partition for tp in partitions}:
            self.books.pop(p, None)
        self.paused = False
        self.metrics.paused.set(0)
        log.info("revoked %s", sorted({tp.partition for tp in partitions}))

    # -- one step

    def poll_once(self) -> int:
        """Read a batch, apply it, deliver what is due, commit. Returns sends delivered."""
        messages = self.consumer.consume(num_messages=500, timeout=self.poll_timeout)
        now_ms = _ms(self.clock.now())
        for msg in messages:
            if msg.error() is not None:
                log.warning("consumer error: %s", msg.error())
                continue
            self._apply(msg, now_ms)
        self._probe(now_ms)
        delivered = self._deliver()
        self._flow_control()
        self._commit()
        self.metrics.pending.set(sum(len(b.pending) for b in self.books.values()))
        if self.done.evicted != self._evicted_seen:
            self.metrics.dedupe_evictions.inc(self.done.evicted - self._evicted_seen)
            self._evicted_seen = self.done.evicted
        return delivered

    def _apply(self, msg: Any, now_ms: int) -> None:
        p, offset = msg.partition(), msg.offset()
        book = self.books.get(p)
        if book is None:
            return
        raw_key = msg.key()
        key = raw_key.decode("utf-8", "replace") if raw_key else ""
        if msg.topic() == self.approved_topic:
            self._apply_approved(book, msg, key, now_ms)
            return
        try:
            _, record = self.codec.decode(msg.value() or b"", T.DECISION_RECORD)
        except RejectedRecord as exc:
            # fail closed: an unreadable revocation may revoke any send of its contact key
            self._dead_letter(msg, "undecodable", str(exc.reason.value), 0)
            if not key:
                book.halt(f"undecodable revocation without a key at {msg.topic()}:{p}:{offset}",
                          offset)
                log.error("partition %d halted: %s (%s)", p, book.halted, exc.reason.value)
                return
            withheld = book.poison(key, offset, now_ms)
            self.metrics.suppressed.inc(withheld)
            log.error("undecodable revocation at %s:%d:%d (%s): every send of its contact key "
                      "is withheld for the horizon (%d pending)", msg.topic(), p, offset,
                      exc.reason.value, withheld)
            return
        rid = str(record["request_id"])
        what = book.add_revocation(offset, dedupe_id(key, rid), _ms(record["as_of"]), now_ms)
        if what == "suppressed":
            self.metrics.suppressed.inc()
            log.info("suppressed %s: revoked before dispatch (R-OBJECT-3)", rid)
        elif what == "after_dispatch":
            self.metrics.revoked_after_dispatch.inc()
            log.warning("revoked after dispatch: %s was already delivered (R-OBJECT-3)", rid)
        elif what == "settled":
            self.metrics.revoked_settled.inc()
            log.warning("revocation of %s, settled before this run (delivered or suppressed)",
                        rid)

    def _apply_approved(self, book: PartitionBook, msg: Any, key: str, now_ms: int) -> None:
        offset = msg.offset()
        try:
            _, record = self.codec.decode(msg.value() or b"", T.APPROVED_RECORD)
        except RejectedRecord as exc:
            if not book.settled_offset(offset):
                log.error("undecodable approval at %s:%d:%d (%s): dead-lettered",
                          msg.topic(), book.partition, offset, exc.reason.value)
                self._dead_letter(msg, "undecodable", str(exc.reason.value), 0)
            book.mark_settled(offset)
            return
        send = Send.from_record(record, key, book.partition, offset)
        ident = dedupe_id(key, send.request_id)
        as_of_ms = _ms(send.as_of)
        if book.settled_offset(offset):
            book.history(offset, ident, as_of_ms)
            return
        a = Approval(offset, send, ident, as_of_ms, _ms(send.dispatch_at) + self.grace_ms,
                     key=msg.key(), value=msg.value() or b"")
        what = book.add_approval(a, now_ms)
        if what == "duplicate":
            self.metrics.duplicates.inc()
            log.info("duplicate approval of %s skipped (within the idempotency horizon)",
                     send.request_id)
        elif what == "suppressed":
            self.metrics.suppressed.inc()
            log.info("suppressed %s: revoked before dispatch (R-OBJECT-3)", send.request_id)

    def _probe(self, now_ms: int) -> None:
        """The revocation rule: learn the revoked partition's high watermark after t0, then
        wait until it is read; only then may sends due by t0 go."""
        from confluent_kafka import TopicPartition

        for p, book in self.books.items():
            tp = TopicPartition(self.revoked_topic, p)
            if book.needs_probe(now_ms):
                t0 = _ms(self.clock.now())
                try:
                    low, high = self.consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                except Exception as exc:  # broker unreachable: no probe, no delivery
                    log.warning("watermark query for %s:%d failed: %s", tp.topic, p, exc)
                    continue
                book.start_probe(t0, high)
                book.observe_revoked_position(max(book.revoked_next, low))
                continue
            if book.probe is not None:
                position = self.consumer.position([tp])[0].offset
                book.observe_revoked_position(max(position, book.revoked_next))

    def _deliver(self) -> int:
        """Call back for every ready send, for at most `deliver_budget` seconds, so the loop
        polls (max.poll.interval.ms) and commits (the at-least-once window) in between."""
        delivered = 0
        started = time.monotonic()
        for book in list(self.books.values()):
            ready = book.due(_ms(self.clock.now()))
            for i, a in enumerate(ready):
                if time.monotonic() - started > self.deliver_budget:
                    book.requeue(ready[i:])
                    return delivered
                try:
                    self.send(a.send)
                except DispatchError:  # the callback asks to stop; the send stays pending
                    raise
                except Exception as exc:  # the ESP's failure: retry, then dead-letter
                    self.metrics.callback_failures.inc()
                    # only our own failures' text: an ESP exception may quote the address
                    error = str(exc) if isinstance(exc, SendFailed) else type(exc).__name__
                    given_up = book.failed(a, _ms(self.clock.now()), error, self.retry)
                    log.warning("send %s failed (attempt %d): %s", a.send.request_id,
                                a.attempts, error)
                    if self.on_failure is not None:
                        self.on_failure(a.send, a.attempts, error)
                    if given_up:
                        self._give_up(book, a)
                    continue
                book.settle(a, Outcome.DELIVERED)
                self.metrics.delivered.inc()
                delivered += 1
        return delivered

    def _give_up(self, book: PartitionBook, a: Approval) -> None:
        if self.producer is None:
            raise DispatchError(
                f"send {a.send.request_id} failed {a.attempts} times and no dead-letter "
                "topic is configured"
            )
        self._produce_dead_letter(
            a.key, a.value, self.approved_topic, book.partition, a.offset, a.send.request_id,
            "callback_failed", a.last_error, a.attempts,
        )
        book.settle(a, Outcome.DEAD_LETTERED)
        self.metrics.dead_lettered.labels("callback_failed").inc()
        log.error("send %s dead-lettered after %d attempts", a.send.request_id, a.attempts)

    def _dead_letter(self, msg: Any, reason: str, error: str, attempts: int) -> None:
        if self.producer is None:
            return
        self._produce_dead_letter(msg.key(), msg.value() or b"", msg.topic(), msg.partition(),
                                  msg.offset(), None, reason, error, attempts)
        self.metrics.dead_lettered.labels(reason).inc()

    def _produce_dead_letter(
        self, key: bytes | None, value: bytes, topic: str, partition: int, offset: int,
        request_id: str | None, reason: str, error: str, attempts: int,
    ) -> None:
        record = {
            "request_id": request_id,
            "source_topic": topic,
            "partition": partition,
            "offset": offset,
            "reason": reason,
            "last_error": error,
            "attempts": attempts,
            "original_key": key,
            "original_value": value,
            "failed_at": self.clock.now(),
        }
        data = self.codec.encode(T.DISPATCH_DEAD_LETTER_RECORD, record,
                                 topic=self.dead_letter_topic)
        failures: list[str] = []

        def report(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        self.producer.produce(self.dead_letter_topic, value=data, key=key, on_delivery=report)
        if self.producer.flush(30) or failures:  # settled only once it is on the broker
            raise DispatchError(f"dead letter not written: {failures or 'timeout'}")

    def _flow_control(self) -> None:
        held = sum(b.held for b in self.books.values())
        if not self.paused and held >= self.max_pending:
            self._set_paused(True)
        elif self.paused and held < self.max_pending * 0.9:
            self._set_paused(False)

    def _set_paused(self, pause: bool) -> None:
        from confluent_kafka import TopicPartition

        tps = [TopicPartition(self.approved_topic, p) for p in self.books]
        (self.consumer.pause if pause else self.consumer.resume)(tps)
        self.paused = pause
        self.metrics.paused.set(1 if pause else 0)
        log.info("approved partitions %s (%d held)", "paused" if pause else "resumed",
                 sum(b.held for b in self.books.values()))

    def _commit(self) -> None:
        from confluent_kafka import TopicPartition

        offsets: list[Any] = []
        now_ms = _ms(self.clock.now())
        for p, book in self.books.items():
            ac = book.approved_commit()
            base = ac[0] if ac is not None else book.history_until
            if ac is not None:
                offsets.append(TopicPartition(self.approved_topic, p, ac[0], ac[1]))
            rc = book.revoked_commit(now_ms, base)
            if rc is not None:
                offsets.append(TopicPartition(self.revoked_topic, p, rc))
        state = [(tp.topic, tp.partition, tp.offset, tp.metadata) for tp in offsets]
        if offsets and state != self._committed:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
                self._committed = state
            except Exception as exc:  # e.g. during a rebalance; the next step commits again
                log.warning("commit failed: %s", exc)

    def pending(self) -> Iterator[Send]:
        """The sends held, waiting for dispatch_at (inspection, tests)."""
        for book in self.books.values():
            for a in book.pending.values():
                yield a.send


class SendFailed(Exception):
    """Raise from a callback for a retryable failure whose message is safe to record
    (no contact value); any other exception is recorded by its class name only."""


class DispatchError(RuntimeError):
    """A send can neither be delivered nor dead-lettered: stop rather than lose it (also
    raised by a callback that cannot go on, e.g. a closed output)."""


