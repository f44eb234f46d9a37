"""The status view: a Redis projection of the contact-state table for fast lookups.

It is a *projection*, never the source of truth: the stream job decides from its own
changelog-backed table and keeps deciding when Redis is down. The view can always be
rebuilt from the changelog topic (`sendgate view rebuild`).

Layout (one Redis hash per contact key, nothing else per contact)::

    sg:view:{contact_key}              HASH
      "_"                              {"v":1,"t":tenant,"at":as_of,"ct":contact type,
                                        "x":erased_at (R-DSR-2, only after an erasure)}
      "*|{channel}"                    answer for any entity without facts of its own
      "{legal_entity}|{channel}"       answer for that entity, only where it differs
                                       from the "*" answer (lookups fall back to "*")
      "{legal_entity}|{channel}|d"     last decision {"id":request_id,"d":"ALLOW"|"BLOCK",
                                        "r":reason,"at":request time,"rv":1 if revoking}
    sg:view:~meta                      HASH: "generation" (the view marker), "stale"
                                       (why the view may have missed updates),
                                       "rebuilt_at", "created_at"

    answer = {"ok":1|0 (marketing allowed now), "r":reason code, "b":legal basis,
              "e":[evidence event ids] (when allowed),
              "s":suppression reason, "sk":kind, "ss":source, "sa":since, "se":event id
              (when suppressed)}

Only the channels of the contact's type are projected (the type comes from the worker
or is inferred from the state; all twelve when unknown). Answers are the core's
`status_view` (a compliant commercial probe at `as_of`, the event time of the last
event folded), so the view never disagrees with the rules.

Keys are contact keys (keyed HMAC hashes, contract §1); values hold reason codes, legal
bases, entity names, request ids and timestamps only — never a contact value
(non-negotiable 5). Every write replaces the whole hash in one MULTI/EXEC, so a fact
that left the state (R-DSR-2 erasure) leaves the view in the same write: after
`erasure_completed` the hash holds the suppression only, and decisions taken before the
erasure are hidden.

TTL: none by default. The hash is the projection of a state that has no TTL either, an
expired hash would turn a known suppression into "unknown", and "allowed now" is
answered with the `as_of` it was computed at. `ttl_seconds` exists for deployments that
must cap Redis memory; a missing hash is answered "unknown, not allowed".

Write path (write-behind): `apply` is called by the gate agent after each fold. It never
touches the network: it records the latest (state, tenant, as_of) for the key in a
bounded in-memory dict of dirty keys and wakes a background writer, which projects and
writes dirty keys in pipelined batches (coalescing hot keys). When Redis is down the
writer backs off and retries; dirty keys stay (latest state wins) and are written when
Redis returns. The bound is `max_pending` dirty keys (default 20 000, env
SENDGATE_VIEW_MAX_PENDING; a dirty entry holds a reference to one state, ~4.5 KB in
memory, so ~100 MB at the bound). Past it, newly dirty keys are dropped and the view is
flagged stale in Redis (`sg:view:~meta` "stale") as soon as Redis answers again: lookups
then report `view_stale` and the operator runs `sendgate view rebuild` (from the
changelog, not from the worker). If Redis comes back empty (restart without
persistence), the view is flagged stale the same way; the keys dirty meanwhile are
re-projected either way.

Lost data (issue 12 §3). The view marker, field "generation" of `~meta`, is written once
per view: by `view rebuild`, or by the first writer of a deployment whose changelog was
empty when it started (`source_had_states=False`: nothing to lose). A Redis without the
marker therefore lost the view (restart without persistence, flush, a new instance) or
never had it built, and:
* lookups answer `view_stale: true` at once (`view_stale_reason` says why);
* a writer (worker, follower) that had seen the marker notices its loss in the very next
  batch (the marker is read inside every write transaction); a writer that starts after
  the loss, on a changelog that holds states, notices it at its first write. Either one
  then re-creates the marker *with* the "stale" field, logs an error and exposes it
  (`StatusView.stale`, the `sendgate_view_stale` gauge), until `sendgate view rebuild`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry  # the sync one warns on an asyncio client
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from streams.core.engine import status_view
from streams.core.enums import (
    AUDIENCE_CHANNELS,
    CHANNELS_OF_CONTACT_TYPE,
    CONTACT_TYPES_OF_CHANNEL,
    Channel,
    ContactType,
    UnsubscribeKind,
)
from streams.core.model import ContactState, Decision, KeptDecision
from streams.core.policy import PolicyBook

if TYPE_CHECKING:
    from streams.config import ViewSettings
    from streams.gate.state_codec import ViewHint

ViewItem = tuple[str, ContactState, str | None, datetime, str | None]
"""(contact key, state, tenant, as_of, contact type): one projection to write."""

log = logging.getLogger("sendgate.view")

SCHEMA_VERSION = 1
DEFAULT_NAMESPACE = "sg:view:"
META_FIELD = "_"
ANY_ENTITY = "*"
DECISION_SUFFIX = "|d"
META_KEY_SUFFIX = "~meta"
GENERATION_FIELD = "generation"
STALE_FIELD = "stale"
NO_MARKER = (
    "the view marker is missing: Redis lost the view (restarted empty, flushed or a new "
    "instance) or it was never built; run `sendgate view rebuild`"
)
CHANNELS: tuple[Channel, ...] = tuple(Channel)

# The entity name passed to the core for the "*" fields: no real entity can be named
# like this, so no fact of the state matches it (contract: entities compare by equality).
OTHER_ENTITY = "\x00sendgate:any-other-entity"


def _iso(instant: datetime) -> str:
    text = instant.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _dumps(obj: Any) -> str:
    """Compact JSON, UTF-8 as is (orjson: the same text as `json.dumps` with compact
    separators and ensure_ascii=False, at a fraction of the cost)."""
    return orjson.dumps(obj).decode()


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


# --------------------------------------------------------------------------- projection


def entities_of(state: ContactState) -> set[str]:
    """Every legal entity the state holds facts for (decisions are added separately)."""
    names: set[str] = set()
    names.update(o.legal_entity for o in state.orders)
    for c in state.consents:
        names.add(c.legal_entity)
        names.add(c.named_legal_entity)
    names.update(s.legal_entity for s in state.suppressions)
    names.update(t.legal_entity for t in state.touchpoints)
    names.update(state.relay_entities)
    names.update(state.direct_entities)
    names.update(state.relay_kept)
    return names


def erased_at(state: ContactState) -> datetime | None:
    """The latest `erasure_completed` in the state (R-DSR-2), or None."""
    times = [
        s.occurred_at for s in state.suppressions
        if s.kind is UnsubscribeKind.ERASURE_COMPLETED
    ]
    return max(times) if times else None


def last_decisions(
    state: ContactState, extra: Sequence[Decision] = (), after: datetime | None = None
) -> dict[tuple[str, str], tuple[str, Decision | KeptDecision]]:
    """The last decision per (entity, channel): latest `as_of`, later in the log on a tie.

    `extra` are decisions just emitted (they replace the state's entry for the same
    request id). Decisions at or before `after` (an erasure, R-DSR-2) are left out. Each
    comes with its request id.
    """
    decided: dict[str, Decision | KeptDecision] = dict(state.decided)
    for new in extra:
        decided[new.request_id] = new
    last: dict[tuple[str, str], tuple[str, Decision | KeptDecision]] = {}
    for rid, d in decided.items():
        if after is not None and d.as_of <= after:
            continue
        slot = (d.legal_entity, _text(d.channel))
        seen = last.get(slot)
        if seen is None or d.as_of >= seen[1].as_of:
            last[slot] = (rid, d)
    return last


_VALUE_CACHE: dict[tuple[Any, ...], str] = {}


def _status_value(status: Mapping[str, Any]) -> str:
    """Compact JSON of one `status_view` answer (contract reason codes and bases only).

    Answers repeat a lot (same reason, same basis), so the JSON is memoised."""
    allowed = bool(status.get("allowed"))
    supp = status.get("suppression") if status.get("suppressed") else None
    memo = (
        allowed,
        _text(status["reason_code"]),
        _text(status.get("legal_basis") or "NONE"),
        tuple(status.get("evidence") or ()) if allowed else (),
        tuple(_text(supp.get(k)) for k in ("reason_code", "kind", "source", "since", "event_id"))
        if isinstance(supp, Mapping) else None,
    )
    cached = _VALUE_CACHE.get(memo)
    if cached is not None:
        return cached
    out: dict[str, Any] = {"ok": 1 if allowed else 0, "r": memo[1]}
    if memo[2] != "NONE":
        out["b"] = memo[2]
    if memo[3]:
        out["e"] = list(memo[3])
    if memo[4] is not None:
        reason, kind, source, since, event_id = memo[4]
        out.update(s=reason, sk=kind, ss=source, sa=since)
        if event_id and event_id != "None":
            out["se"] = event_id
    text = _dumps(out)
    if len(_VALUE_CACHE) >= 8192:
        _VALUE_CACHE.clear()
    _VALUE_CACHE[memo] = text
    return text


def _decision_value(request_id: str, d: Decision | KeptDecision) -> str:
    out: dict[str, Any] = {
        "id": request_id,
        "d": _text(d.decision),
        "r": _text(d.reason_code),
        "at": _iso(d.as_of),
    }
    if d.decided_at is not None:
        out["dt"] = _iso(d.decided_at)
    if d.revokes:
        out["rv"] = 1
    return _dumps(out)


def state_event_time(state: ContactState) -> datetime | None:
    """The latest event time the state knows of: what `view rebuild` evaluates at, so a
    rebuilt projection matches the one the worker wrote after the same last event."""
    times: list[datetime] = [o.occurred_at for o in state.orders]
    times += [c.occurred_at for c in state.consents]
    times += [s.occurred_at for s in state.suppressions]
    times += [t.occurred_at for t in state.touchpoints]
    times += [d.as_of for d in state.decided.values()]
    return max(times) if times else None


def contact_type_of(state: ContactState) -> ContactType | None:
    """The contact type, when the state tells it unambiguously: the type kept in an open
    approval, else the one type every fact's own channels point at (audience channels
    and all-channel suppressions say nothing). None = unknown (project every channel)."""
    for approval in state.open_approvals:
        return approval.request.contact.type
    votes: set[ContactType] = set()
    groups: list[Iterable[Channel]] = [[d.channel] for d in state.decided.values()]
    groups += [c.channels for c in state.consents]
    groups += [s.channels for s in state.suppressions]
    for channels in groups:
        types = {
            t for ch in channels if ch not in AUDIENCE_CHANNELS
            for t in CONTACT_TYPES_OF_CHANNEL[ch]
        }
        if len(types) == 1:
            votes |= types
    return votes.pop() if len(votes) == 1 else None


def project(
    state: ContactState,
    tenant: str | None,
    as_of: datetime,
    policies: PolicyBook,
    decisions: Sequence[Decision] = (),
    contact_type: ContactType | str | None = None,
) -> dict[str, str]:
    """The whole hash for one contact key: pure, deterministic, no contact value.

    Only the channels of the contact's type are projected (all twelve when the type is
    unknown). An entity's field is written only where its answer differs from the "*"
    answer (any entity without facts of its own); lookups fall back to "*".
    `tenant` None (unknown at rebuild) evaluates with the default policy. The answers
    are evaluated at the later of `as_of` and the latest event time in the state, so an
    out-of-order event never moves the view back in time and `view rebuild` (which only
    has the state) writes what the worker wrote.
    """
    latest = state_event_time(state)
    if latest is not None and latest > as_of:
        as_of = latest
    # an unknown tenant matches no override: the default policy
    policy = policies.policy_for(tenant if tenant is not None else "\x00")
    ctype = ContactType(contact_type) if contact_type is not None else contact_type_of(state)
    channels = (
        CHANNELS if ctype is None
        else tuple(c for c in CHANNELS if c in CHANNELS_OF_CONTACT_TYPE[ctype])
    )
    erased = erased_at(state)
    last = last_decisions(state, decisions, after=erased)
    entities = entities_of(state) | {entity for entity, _ in last}
    meta: dict[str, Any] = {"v": SCHEMA_VERSION, "t": tenant, "at": _iso(as_of)}
    if ctype is not None:
        meta["ct"] = str(ctype)
    if erased is not None:
        meta["x"] = _iso(erased)
    fields: dict[str, str] = {META_FIELD: _dumps(meta)}
    for channel in channels:
        anyone = _status_value(
            status_view(state, tenant or "", OTHER_ENTITY, channel, as_of, policy)
        )
        fields[f"{ANY_ENTITY}|{channel}"] = anyone
        for entity in sorted(entities):
            own = _status_value(status_view(state, tenant or "", entity, channel, as_of, policy))
            if own != anyone:
                fields[f"{entity}|{channel}"] = own
    for (entity, channel_name), (rid, d) in last.items():
        fields[f"{entity}|{channel_name}{DECISION_SUFFIX}"] = _decision_value(rid, d)
    return fields


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class Answer:
    """One lookup: may `legal_entity` send marketing on `channel` to this contact now?"""

    known: bool
    legal_entity: str
    channel: str
    marketing_allowed: bool
    reason_code: str | None
    legal_basis: str | None
    evidence: list[str]
    suppressed: bool
    suppression: dict[str, Any] | None
    last_decision: dict[str, Any] | None
    as_of: str | None
    tenant: str | None
    erased: bool
    view_stale: bool
    view_stale_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "known": self.known,
            "tenant": self.tenant,
            "legal_entity": self.legal_entity,
            "channel": self.channel,
            "marketing_allowed": self.marketing_allowed,
            "reason_code": self.reason_code,
            "legal_basis": self.legal_basis,
            "evidence": self.evidence,
            "suppressed": self.suppressed,
            "suppression": self.suppression,
            "last_decision": self.last_decision,
            "as_of": self.as_of,
            "erased": self.erased,
            "view_stale": self.view_stale,
            "view_stale_reason": self.view_stale_reason,
        }


def _opt_str(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw


def _load(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None


def answer_from_fields(
    legal_entity: str,
    channel: str,
    meta_raw: bytes | str | None,
    own_raw: bytes | str | None,
    any_raw: bytes | str | None,
    decision_raw: bytes | str | None,
    stale: bytes | str | None,
    generation: bytes | str | None = b"",
) -> Answer:
    """Build the answer from the fields of one hash (fail closed: unknown = not allowed).

    `stale` and `generation` are the view marker's fields: a missing marker (None) means
    the view was lost or never built, so every answer is flagged stale."""
    meta = _load(meta_raw)
    status = _load(own_raw) or _load(any_raw)
    last = _load(decision_raw)
    stale_text = stale.decode() if isinstance(stale, bytes) else stale
    if generation is None and stale_text is None:
        stale_text = NO_MARKER
    if meta is None or status is None:
        return Answer(
            known=False, legal_entity=legal_entity, channel=channel,
            marketing_allowed=False, reason_code=None, legal_basis=None, evidence=[],
            suppressed=False, suppression=None, last_decision=None, as_of=None,
            tenant=None, erased=False, view_stale=stale_text is not None,
            view_stale_reason=stale_text,
        )
    suppression: dict[str, Any] | None = None
    if "s" in status:
        suppression = {
            "reason_code": status["s"],
            "kind": status.get("sk"),
            "source": status.get("ss"),
            "since": status.get("sa"),
            "event_id": status.get("se"),
        }
    last_decision = None
    if last is not None:
        last_decision = {
            "request_id": last.get("id"),
            "decision": last.get("d"),
            "reason_code": last.get("r"),
            "at": last.get("at"),
            "decided_at": last.get("dt"),
            "revokes": bool(last.get("rv")),
        }
    return Answer(
        known=True, legal_entity=legal_entity, channel=channel,
        marketing_allowed=bool(status.get("ok")), reason_code=status.get("r"),
        legal_basis=status.get("b", "NONE"), evidence=list(status.get("e", [])),
        suppressed=suppression is not None,
        suppression=suppression, last_decision=last_decision, as_of=meta.get("at"),
        tenant=meta.get("t"), erased="x" in meta, view_stale=stale_text is not None,
        view_stale_reason=stale_text,
    )


# --------------------------------------------------------------------------- the view


@dataclass(slots=True)
class _Dirty:
    state: ContactState
    tenant: str
    as_of: datetime
    decisions: tuple[Decision, ...]
    contact_type: ContactType | str | None


class StatusView:
    """Redis projection of the contact states; write-behind, never raises into the worker.

    `apply` only records the key as dirty; a background task started on first use writes
    dirty keys (`flush` waits for that). `lookup`/`lookup_all` read the view.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        policies: PolicyBook | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        max_pending: int = 20_000,
        batch_size: int = 200,
        ttl_seconds: int | None = None,
        socket_timeout: float = 1.0,
        backoff_max: float = 2.0,
        source_had_states: bool = True,
        reader_connections: int = 64,
        pool_timeout: float = 5.0,
    ) -> None:
        """`source_had_states`: did the changelog hold states when this process started
        (`streams.view.follower.changelog_holds_states`)? Only False lets a writer create
        the view marker of a new deployment without flagging the view stale; the default
        is the fail-closed answer for a writer that cannot tell.

        Lookups share `reader_connections` Redis connections; a lookup that finds them all
        busy waits for one up to `pool_timeout` s instead of failing (issue 12 §4: redis-py's
        default pool raised "Too many connections" past 100 concurrent lookups)."""
        self.redis_url = redis_url
        self.source_had_states = source_had_states
        self.policies = policies or PolicyBook.default()
        self.namespace = namespace
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.ttl_seconds = ttl_seconds
        self.backoff_max = backoff_max
        self.meta_key = namespace + META_KEY_SUFFIX
        # Writer: no retries of its own (the writer loop retries with backoff); reader:
        # one retry so a pooled connection that died with a Redis restart is replaced.
        self._writer = Redis.from_url(
            redis_url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0), health_check_interval=0,
        )
        self._reader_pool = BlockingConnectionPool.from_url(
            redis_url, max_connections=reader_connections, timeout=pool_timeout,
            socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self._reader = Redis(connection_pool=self._reader_pool)
        self._pending: OrderedDict[str, _Dirty] = OrderedDict()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._healthy = True
        self._down_since: float | None = None
        self._lost_updates = 0
        self._stale_reason: str | None = None
        self._generation: str | None = None  # the view marker this process has seen
        self._meta_checked_at = 0.0
        self.stale_reason: str | None = None  # the marker's "stale", as last read
        self.losses = 0  # times this process found the view lost
        # counters (exposed for metrics and tests)
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self.projection_errors = 0

    @classmethod
    def from_settings(
        cls, view: ViewSettings, redis_url: str, policies: PolicyBook | None = None,
        namespace: str | None = None, *, source_had_states: bool = True,
    ) -> StatusView:
        """A writer with the deployment's view settings (`Settings.view`: namespace,
        max pending, TTL); `namespace` overrides the setting (a command line flag)."""
        return cls(
            redis_url,
            policies=policies,
            namespace=namespace or view.namespace or DEFAULT_NAMESPACE,
            max_pending=view.max_pending,
            ttl_seconds=view.ttl_seconds,
            source_had_states=source_had_states,
        )

    def key(self, contact_key: str) -> str:
        return self.namespace + contact_key

    # ------------------------------------------------------------------ write side

    async def apply(
        self,
        contact_key: str | bytes,
        state: ContactState,
        decisions: Sequence[Decision],
        tenant: str,
        as_of: datetime,
        *,
        contact_type: ContactType | str | None = None,
    ) -> None:
        """Record the state folded for `contact_key`; the writer projects it to Redis.

        `as_of` is the event time the projection is evaluated at (the folded event's
        `occurred_at`); `contact_type`, when the worker knows it, limits the projection
        to that type's channels (else it is inferred from the state).

        Never raises and never waits for Redis when it is down (the stream job decides
        on). When healthy but behind, it yields until the writer has caught up a batch.
        """
        try:
            ckey = contact_key.decode() if isinstance(contact_key, bytes) else contact_key
            if not isinstance(ckey, str) or not isinstance(state, ContactState):
                log.error("status view: apply called without a contact key and state")
                return
            entry = self._pending.get(ckey)
            if entry is not None:
                # coalesce: the latest state wins (it holds every decision in `decided`)
                self._pending[ckey] = _Dirty(
                    state, tenant, as_of, tuple(decisions), contact_type or entry.contact_type
                )
            elif len(self._pending) >= self.max_pending:
                self.dropped += 1
                if self._lost_updates == 0:
                    log.error(
                        "status view: %d dirty keys pending (bound reached); further "
                        "updates are dropped and the view is flagged stale: run "
                        "`sendgate view rebuild` once Redis is back", len(self._pending),
                    )
                self._lost_updates += 1
                self._stale_reason = "dirty-key bound reached during a Redis outage"
                return
            else:
                self._pending[ckey] = _Dirty(
                    state, tenant, as_of, tuple(decisions), contact_type
                )
            self._idle.clear()
            self._ensure_writer()
            self._wake.set()
            if self._healthy and len(self._pending) > 4 * self.batch_size:
                # back-pressure while Redis is up, so the view lags by a batch or so
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait_below(2 * self.batch_size), 0.5)
        except Exception:  # a projection bug must not stop the stream job
            log.exception("status view: apply failed (ignored)")

    def pending(self) -> int:
        """How many keys are dirty (recorded but not yet written)."""
        return len(self._pending)

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def _wait_below(self, n: int) -> None:
        while len(self._pending) > n and self._healthy:
            await asyncio.sleep(0.001)

    def _ensure_writer(self) -> None:
        if self._task is None or self._task.done():
            if self._closed:
                return
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="sendgate-status-view-writer"
            )

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every dirty key is written (True) or `timeout` passes (False)."""
        if not self._pending:
            return True
        self._ensure_writer()
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return not self._pending

    async def _run(self) -> None:
        delay = 0.05
        while not self._closed:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = list(self._pending.items())[: self.batch_size]
            try:
                await self._write_batch(batch)
            except (RedisError, OSError) as exc:
                self.failures += 1
                if self._healthy:
                    self._healthy = False
                    self._down_since = time.monotonic()
                    log.warning(
                        "status view: Redis unavailable (%s); %d keys dirty, retrying "
                        "in the background (the stream job keeps deciding)",
                        type(exc).__name__, len(self._pending),
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                # not a Redis error: retrying the same batch would loop forever
                log.exception("status view: writer failed on a batch (dropped, view stale)")
                for ckey, entry in batch:
                    if self._pending.get(ckey) is entry:
                        del self._pending[ckey]
                self._stale_reason = "a batch could not be written (see the worker log)"
                continue
            delay = 0.05
            for ckey, entry in batch:
                if self._pending.get(ckey) is entry:
                    del self._pending[ckey]
            self.written += len(batch)
            if not self._healthy:
                self._healthy = True
                down = time.monotonic() - (self._down_since or time.monotonic())
                log.warning(
                    "status view: Redis is back after %.1fs; catching up %d dirty keys",
                    down, len(self._pending) + len(batch),
                )

    async def _write_batch(self, batch: Sequence[tuple[str, _Dirty]]) -> None:
        await self._check_meta()
        pipe = self._writer.pipeline(transaction=True)
        pipe.hget(self.meta_key, GENERATION_FIELD)  # did the marker survive? (see below)
        for i, (ckey, entry) in enumerate(batch):
            if i % 16 == 15:
                await asyncio.sleep(0)  # projecting is CPU: let the gate agent run
            rkey = self.key(ckey)
            pipe.delete(rkey)
            try:
                fields = project(
                    entry.state, entry.tenant, entry.as_of, self.policies, entry.decisions,
                    entry.contact_type,
                )
            except Exception:
                # Fail closed: an unprojectable state leaves no (stale) answer behind.
                self.projection_errors += 1
                log.exception("status view: projection failed for key %s…", ckey[:12])
                continue
            pipe.hset(rkey, mapping=fields)  # type: ignore[arg-type]
            if self.ttl_seconds:
                pipe.expire(rkey, self.ttl_seconds)
        reason = self._stale_reason
        if reason is not None:
            pipe.hset(self.meta_key, STALE_FIELD, f"{_iso(datetime.now(UTC))} {reason}")
        results = await pipe.execute()
        if reason is not None and self._stale_reason == reason:
            self._stale_reason = None
            self._lost_updates = 0
        if _opt_str(results[0]) != self._generation:  # lost, or re-created since the check
            await self._check_meta(force=True)

    @property
    def stale(self) -> bool:
        """Is the view flagged stale (as last read by this process)? For the metric."""
        return self.stale_reason is not None

    async def _check_meta(self, *, force: bool = False) -> None:
        """Read the view marker (at the first write, then at most every 10 s; each write
        transaction also reads it) and act on a lost one (issue 12 §3)."""
        now = time.monotonic()
        if (not force and self._healthy and self._generation is not None
                and now - self._meta_checked_at < 10.0):
            return
        self._meta_checked_at = now
        generation, stale = await self._writer.hmget(
            self.meta_key, [GENERATION_FIELD, STALE_FIELD]
        )
        await self._marker_seen(_opt_str(generation), _opt_str(stale))

    async def _marker_seen(self, generation: str | None, stale: str | None) -> None:
        if generation is not None:
            if self._generation is not None and generation != self._generation:
                log.warning("status view: the view marker was re-created (generation %s)",
                            generation)
            self._generation = generation
            self.stale_reason = stale
            return
        if self._generation is not None:
            reason: str | None = (
                "Redis lost the view (marker gone: restarted empty, flushed or a new "
                "instance)"
            )
        elif self.source_had_states:
            reason = (
                "Redis has no view marker while the changelog holds states (Redis lost "
                "its data, or the view was never built)"
            )
        else:
            reason = None  # a new deployment: the changelog was empty, nothing to lose
        now = _iso(datetime.now(UTC))
        pipe = self._writer.pipeline(transaction=True)
        pipe.hsetnx(self.meta_key, GENERATION_FIELD, uuid.uuid4().hex)
        pipe.hsetnx(self.meta_key, "created_at", now)
        if reason is not None:
            pipe.hset(self.meta_key, STALE_FIELD, f"{now} {reason}")
        pipe.hmget(self.meta_key, [GENERATION_FIELD, STALE_FIELD])
        *_, (current, current_stale) = await pipe.execute()
        self._generation = _opt_str(current)
        self.stale_reason = _opt_str(current_stale)
        if reason is not None:
            self.losses += 1
            log.error(
                "status view: %s; lookups answer view_stale until `sendgate view rebuild` "
                "(keys updated from now on are re-projected)", reason,
            )

    async def item_from_changelog(
        self, contact_key: str, state: ContactState, hint: ViewHint | None,
        as_of: datetime | None = None,
    ) -> ViewItem | None:
        """What to project for a state read from the changelog (`view rebuild`, `view
        follow`): the worker's view hint when it wrote one, else tenant and event time
        derived from the state. `as_of` overrides the evaluation time. None: the state
        tells no event time to evaluate at."""
        if hint is not None:  # what the worker projected after the same event
            return contact_key, state, hint.tenant, as_of or hint.as_of, hint.contact_type
        at = as_of or state_event_time(state)
        if at is None:
            return None
        return contact_key, state, await self.tenant_of(contact_key), at, None

    async def tenant_of(self, contact_key: str) -> str | None:
        """The tenant of a state read from the changelog without a view hint (written
        before hints, format 1): from the view already in Redis, else None (default
        policy). Kept decisions (format 3) no longer carry it."""
        meta = _load(await self._writer.hget(self.key(contact_key), META_FIELD))
        value = meta.get("t") if meta else None
        return value if isinstance(value, str) and value else None

    async def write_now(
        self,
        items: Iterable[ViewItem],
        tombstones: Iterable[str] = (),
    ) -> int:
        """Project and write (contact_key, state, tenant, as_of, contact_type) items and
        delete the views of `tombstones` at once, raising on Redis errors: for `view
        rebuild` and `view follow`, not for the worker. A state that cannot be projected
        leaves no (stale) answer behind: its view is deleted (fail closed)."""
        await self._check_meta()
        n = 0
        pipe = self._writer.pipeline(transaction=True)  # no lookup sees a half-written key
        for ckey in tombstones:
            pipe.delete(self.key(ckey))
        for ckey, state, tenant, as_of, contact_type in items:
            rkey = self.key(ckey)
            pipe.delete(rkey)
            try:
                fields = project(state, tenant, as_of, self.policies, (), contact_type)
            except Exception:
                self.projection_errors += 1
                log.exception("status view: projection failed for key %s…", ckey[:12])
                continue
            pipe.hset(rkey, mapping=fields)  # type: ignore[arg-type]
            if self.ttl_seconds:
                pipe.expire(rkey, self.ttl_seconds)
            n += 1
            if len(pipe) >= 3 * self.batch_size:
                await pipe.execute()
        if len(pipe):
            await pipe.execute()
        return n

    async def delete(self, contact_keys: Iterable[str]) -> int:
        keys = [self.key(k) for k in contact_keys]
        if not keys:
            return 0
        deleted: int = await self._writer.delete(*keys)
        return deleted

    async def scan_contact_keys(self) -> list[str]:
        """Every contact key that has a view (for rebuild's clean-up)."""
        out: list[str] = []
        start = len(self.namespace)
        async for raw in self._writer.scan_iter(match=self.namespace + "*", count=1000):
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            rest = name[start:]
            if rest and not rest.startswith("~"):
                out.append(rest)
        return out

    async def mark_rebuilt(self) -> None:
        """The view is complete again: a new marker generation, no "stale"."""
        generation = uuid.uuid4().hex
        pipe = self._writer.pipeline(transaction=True)
        pipe.hdel(self.meta_key, STALE_FIELD)
        pipe.hset(self.meta_key, GENERATION_FIELD, generation)
        pipe.hset(self.meta_key, "rebuilt_at", _iso(datetime.now(UTC)))
        pipe.hsetnx(self.meta_key, "created_at", _iso(datetime.now(UTC)))
        await pipe.execute()
        self._generation = generation
        self.stale_reason = None

    # ------------------------------------------------------------------ read side

    async def lookup(self, contact_key: str, legal_entity: str, channel: str) -> Answer:
        """One round trip: the entity's field, the "*" fallback, the last decision, meta."""
        rkey = self.key(contact_key)
        pipe = self._reader.pipeline(transaction=False)
        pipe.hmget(
            rkey,
            [
                META_FIELD,
                f"{legal_entity}|{channel}",
                f"{ANY_ENTITY}|{channel}",
                f"{legal_entity}|{channel}{DECISION_SUFFIX}",
            ],
        )
        pipe.hmget(self.meta_key, [STALE_FIELD, GENERATION_FIELD])
        (meta, own, other, last), (stale, generation) = await pipe.execute()
        return answer_from_fields(
            legal_entity, channel, meta, own, other, last, stale, generation
        )

    async def lookup_all(self, contact_key: str) -> dict[str, Any]:
        """Every field of one contact's view, decoded (for `sendgate status --all`)."""
        raw: Mapping[Any, Any] = await self._reader.hgetall(self.key(contact_key))
        return {_str(k): json.loads(v) for k, v in sorted(raw.items())}

    async def ping(self) -> bool:
        try:
            return bool(await self._reader.ping())
        except (RedisError, OSError):
            return False

    async def aclose(self, flush_timeout: float = 2.0) -> None:
        """Write what is pending (bounded wait), stop the writer, close the pools."""
        if self._pending and self._healthy:
            await self.flush(flush_timeout)
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._pending:
            log.warning(
                "status view: closing with %d keys not projected (run `sendgate view "
                "rebuild` if the worker does not come back)", len(self._pending),
            )
        await self._writer.aclose()
        await self._reader.aclose()
        await self._reader_pool.disconnect()
