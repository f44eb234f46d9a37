"""The stream step: `(state, event) -> (state, decisions)` per contact point, plus an
in-memory engine over many contacts (used by `sendgate decide`, tests and audit).

Re-check at dispatch (R-OBJECT-3, contract §7): every ALLOW stays open in the contact's
state until an event on that contact has an `occurred_at` past its `dispatch_at` (or
`release_due` releases it). A suppression arriving meanwhile that was received before
the dispatch, or occurred before the request, re-evaluates it; if it now blocks, a
revoking decision (`BLOCK_LATE_OBJECTION`, `revokes: true`) replaces the ALLOW.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

import msgspec
from msgspec.structs import replace

from streams.core.apply import apply, forget_order
from streams.core.decide import decide, evaluate, to_decision
from streams.core.enums import ContactType, LegalBasis, Outcome
from streams.core.errors import RejectedRecord, Rejection
from streams.core.eventtime import to_utc
from streams.core.keys import normalise, normalised_contact_key
from streams.core.model import (
    EMPTY_STATE,
    ContactPoint,
    ContactState,
    Decision,
    Event,
    OpenApproval,
    Order,
    SeenEvent,
    SendRequest,
    Signup,
    SuppressionFact,
    Unsubscribe,
    keep,
)
from streams.core.policy import Policy, PolicyBook
from streams.core.rules.context import RequestContext, Verdict
from streams.core.rules.suppression import late_objection, triggers_recheck
from streams.core.serial import state_from_dict
from streams.core.status import status_view

__all__ = [
    "REDACTED",
    "ConflictingDuplicate",
    "ContactState",
    "DecisionEngine",
    "StepResult",
    "contact_points",
    "dump_state",
    "event_digest",
    "load_state",
    "release_due",
    "status_view",
    "step",
]

_ALLOW = Outcome.ALLOW

STATE_FORMAT = 3
"""Version of the stored state layout: 1 = JSON before issue 16, 2 = msgpack with whole
decisions, 3 = msgpack with kept decisions (`KeptDecision`); 1 and 2 still load."""

_T = TypeVar("_T")

REDACTED = "<redacted>"
"""Stands in for the contact value of a request kept in state (non-negotiable 5)."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """New state; new decisions (revocations included); the stored decision when the
    request_id was already decided (the shell may re-emit it, the CLI ignores it);
    `conflicting`: the event repeats a seen `event_id` with other content, so it is
    rejected (`conflicting_duplicate`) and the state is unchanged (contract §1)."""

    state: ContactState
    decisions: tuple[Decision, ...] = ()
    duplicate: Decision | None = None
    conflicting: bool = False


def contact_points(event: Event) -> tuple[ContactPoint, ...]:
    """Normalised fan-out: every contact of an order, an unsubscribe's contact and linked
    contacts, the contact of a signup or send request; duplicates removed."""
    if isinstance(event, Order):
        points = [normalise(f.contact) for f in event.contacts]
    elif isinstance(event, Unsubscribe):
        points = [normalise(event.contact), *(normalise(c) for c in event.linked_contacts)]
    else:
        return (normalise(event.contact),)
    return tuple(dict.fromkeys(points))


_DIGEST_ENCODER = msgspec.msgpack.Encoder()


def _normalised(event: Event) -> Event:
    """The event with normalised contact values (the same object when they already are)."""
    if isinstance(event, Order):
        facts = tuple(
            f if (p := normalise(f.contact)) is f.contact else replace(f, contact=p)
            for f in event.contacts
        )
        changed = any(a is not b for a, b in zip(facts, event.contacts, strict=True))
        return replace(event, contacts=facts) if changed else event
    if isinstance(event, Unsubscribe):
        point = normalise(event.contact)
        linked = tuple(normalise(c) for c in event.linked_contacts)
        if point is event.contact and all(
            a is b for a, b in zip(linked, event.linked_contacts, strict=True)
        ):
            return event
        return replace(event, contact=point, linked_contacts=linked)
    point = normalise(event.contact)
    return event if point is event.contact else replace(event, contact=point)


def event_digest(event: Event, points: tuple[ContactPoint, ...] | None = None,
                 buffer: bytearray | None = None) -> int:
    """Fingerprint of an event's content after defaults and normalisation (contract §1
    `conflicting_duplicate`): contacts normalised, instants compared as instants (the
    msgpack timestamp carries no offset; the type is the Struct tag). 32 bits: it only
    tells apart two events that already share an event id. Never 0 (0 = unknown).
    `points` are the event's `contact_points`, when known: an event whose contacts are
    all normalised already (each point is its contact itself) is digested as it is.
    `buffer`: see `_fingerprint`."""
    plain = points is not None and _as_written(event, points)
    return _fingerprint(event if plain else _normalised(event), buffer)


def _fingerprint(normalised: Event, buffer: bytearray | None = None) -> int:
    """`event_digest` of an event whose contacts are normalised. With `buffer` (the
    engine's own, reused) the msgpack is encoded into it: `encode` grows a fresh one from
    32 bytes for each event."""
    if buffer is None:
        return zlib.crc32(_DIGEST_ENCODER.encode(normalised)) or 1
    _DIGEST_ENCODER.encode_into(normalised, buffer)
    return zlib.crc32(buffer) or 1


def _as_written(event: Event, points: tuple[ContactPoint, ...]) -> bool:
    """Whether `_normalised(event)` is `event` itself, told from its `contact_points`
    (`normalise` hands back the point itself only when it is normalised; a point listed
    twice shortens the tuple, and the event then takes `_normalised`)."""
    if isinstance(event, Order):
        contacts = event.contacts
        return len(points) == len(contacts) and all(
            p is f.contact for p, f in zip(points, contacts, strict=True)
        )
    if isinstance(event, Unsubscribe):
        linked = event.linked_contacts
        return (
            len(points) == 1 + len(linked)
            and points[0] is event.contact
            and all(p is c for p, c in zip(points[1:], linked, strict=True))
        )
    return len(points) == 1 and points[0] is event.contact


_REDACTED_POINTS = {kind: ContactPoint(kind, REDACTED) for kind in ContactType}


def redact(request: SendRequest) -> SendRequest:
    """The request without its contact value, to be kept in state."""
    return replace(request, contact=_REDACTED_POINTS[request.contact.type])


def _pruned(entries: Mapping[str, _T], due: int) -> dict[str, _T]:
    """A copy of `entries` without its first `due` ones: a clone, then deletions
    (CPython clones a dict's table without re-inserting, unless it is a third empty)."""
    fresh = entries.copy() if type(entries) is dict else dict(entries)
    if due:
        for key in list(islice(entries, due)):
            del fresh[key]
    return fresh


def _bounded(
    state: ContactState, now: datetime, horizon: timedelta
) -> tuple[dict[str, SeenEvent], int]:
    """A copy of the seen event ids without what lies a horizon or more before event time
    `now` (contract §8: past it, a repeat is a new event), and how many of the oldest
    decided requests lie there too (`_pruned` drops them). Entries are kept in arrival
    order and pruned from the oldest arrival on, so the work is that of the entries
    dropped (an entry that arrived out of order waits for those before it: the bound is
    the horizon plus the contact's disorder)."""
    cutoff = now - horizon
    due = 0
    for entry in state.seen_event_ids.values():
        if entry.at > cutoff:
            break
        due += 1
    fresh_seen = _pruned(state.seen_event_ids, due)
    due = 0
    for decision in state.decided.values():
        if decision.as_of > cutoff:
            break
        due += 1
    return fresh_seen, due


def _pending(approvals: tuple[OpenApproval, ...], now: datetime) -> tuple[OpenApproval, ...]:
    """Approvals not yet dispatched at event time `now`."""
    if not approvals:
        return approvals
    return tuple(a for a in approvals if a.dispatch_at >= now)


def _revocation(approval: OpenApproval, reblock: Decision) -> Decision:
    verdict = late_objection(Verdict(reblock.reason_code, reblock.rule_ids, reblock.evidence))
    return replace(
        approval.decision,
        decision=Outcome.BLOCK,
        reason_code=verdict.reason,
        legal_basis=LegalBasis.NONE,
        rule_ids=verdict.rule_ids,
        evidence=verdict.evidence,
        revokes=True,
    )


def _recheck(
    state: ContactState, new: tuple[SuppressionFact, ...], policy: Policy
) -> tuple[ContactState, tuple[Decision, ...]]:
    """R-OBJECT-3: re-evaluate the open approvals a newly arrived suppression concerns."""
    kept: list[OpenApproval] = []
    revocations: list[Decision] = []
    for approval in state.open_approvals:
        request = approval.request
        occurred_at = to_utc(request.occurred_at)
        if any(triggers_recheck(s, occurred_at, approval.dispatch_at) for s in new):
            again = decide(state, request, policy)
            if not again.allowed:
                revocations.append(_revocation(approval, again))
                continue
        kept.append(approval)
    if not revocations:
        return state, ()
    decided = {**state.decided, **{d.request_id: keep(d) for d in revocations}}
    return replace(state, open_approvals=tuple(kept), decided=decided), tuple(revocations)


class _Stepped(msgspec.Struct, frozen=True, gc=False):
    """`StepResult`'s fields, cheap to build (the engine's own path; `step` wraps it)."""

    state: ContactState
    decisions: tuple[Decision, ...] = ()
    duplicate: Decision | None = None
    conflicting: bool = False


def _repeat(state: ContactState, event: Event, seen: SeenEvent, digest: int) -> _Stepped:
    """Contract §1/§7 idempotency within the horizon: a seen event id with the same
    content is ignored, with other content rejected (a decided request_id is ignored
    whatever its event id: `step` hands back its stored decision for re-emission)."""
    if seen.digest and seen.digest != digest:
        return _Stepped(state, conflicting=True)
    if not isinstance(event, SendRequest):
        return _Stepped(state)
    stored = state.decided.get(event.request_id)
    if stored is None:
        return _Stepped(state)
    return _Stepped(state, (), stored.rebuild(event.request_id, event.tenant))


def _step_request(
    state: ContactState, request: SendRequest, policy: Policy, at: datetime, digest: int
) -> _Stepped:
    same = request.dispatch_at is request.occurred_at
    ctx = RequestContext.build(
        state, request, policy, at, at if same else to_utc(request.dispatch_at)
    )
    decision = to_decision(request, evaluate(ctx), ctx.family)
    approvals = state.open_approvals
    if approvals:
        approvals = _pending(approvals, at)
    if decision.decision is _ALLOW:
        approvals += (OpenApproval(redact(request), decision, ctx.dispatch_at),)
    seen, due = _bounded(state, at, policy.idempotency_horizon)
    seen[request.event_id] = SeenEvent(at, digest)
    decided = _pruned(state.decided, due)
    decided[request.request_id] = keep(decision)
    after = replace(state, open_approvals=approvals, decided=decided, seen_event_ids=seen)
    return _Stepped(after, (decision,))


def _step(
    state: ContactState, event: Event, policy: Policy, contact: ContactPoint, digest: int
) -> _Stepped:
    at = to_utc(event.occurred_at)
    horizon = policy.idempotency_horizon
    if state.seen_event_ids:
        known = state.seen_event_ids.get(event.event_id)
        if known is not None and at < known.at + horizon:
            return _repeat(state, event, known, digest)
    if type(event) is SendRequest:
        if state.decided:
            stored = state.decided.get(event.request_id)
            if stored is not None and at < stored.as_of + horizon:
                return _Stepped(state, (), stored.rebuild(event.request_id, event.tenant))
        return _step_request(state, event, policy, at, digest)
    after = apply(state, event, contact)
    seen, due = _bounded(after, at, horizon)
    seen[event.event_id] = SeenEvent(at, digest)
    decided = _pruned(after.decided, due) if due else after.decided
    after = replace(after, seen_event_ids=seen, decided=decided)
    if not after.open_approvals:
        return _Stepped(after)
    decisions: tuple[Decision, ...] = ()
    arrived = after.suppressions[len(state.suppressions) :]
    if arrived:
        after, decisions = _recheck(after, arrived, policy)
    pending = _pending(after.open_approvals, at)
    if len(pending) != len(after.open_approvals):
        after = replace(after, open_approvals=pending)
    return _Stepped(after, decisions)


def step(
    state: ContactState,
    event: Event,
    policy: Policy,
    contact: ContactPoint,
    digest: int | None = None,
) -> StepResult:
    """Apply (or decide) one event for one normalised contact point. `digest` is
    `event_digest(event)`, passed by callers that fan one event out to many points."""
    if digest is None:
        digest = event_digest(event)
    done = _step(state, event, policy, contact, digest)
    return StepResult(done.state, done.decisions, done.duplicate, done.conflicting)


def release_due(
    state: ContactState, watermark: datetime
) -> tuple[ContactState, tuple[OpenApproval, ...]]:
    """Close the approvals whose `dispatch_at` is at or before the event-time watermark;
    they can no longer be revoked."""
    mark = to_utc(watermark)
    due = tuple(a for a in state.open_approvals if a.dispatch_at <= mark)
    if not due:
        return state, ()
    pending = tuple(a for a in state.open_approvals if a.dispatch_at > mark)
    return replace(state, open_approvals=pending), due


def _named(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return {f: _named(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, Mapping):
        return {k: _named(v) for k, v in value.items()}
    if isinstance(value, tuple | list | frozenset):
        items = [_named(v) for v in value]
        return sorted(items) if isinstance(value, frozenset) else items
    return msgspec.to_builtins(value)


def dump_state(state: ContactState) -> dict[str, Any]:
    """JSON-able form of a contact state with field names (DSR export, leak checks); the
    stored form is `streams.gate.state_codec`'s binary one. A kept decision is written
    out in the contract's words, with its request id (the tenant is the caller's)."""
    named = _named(replace(state, decided={}))
    named["decided"] = {
        rid: {k: v for k, v in _named(kept.rebuild(rid, "")).items() if k != "tenant"}
        for rid, kept in state.decided.items()
    }
    return {"format": STATE_FORMAT, **named}


def load_state(data: Mapping[str, Any]) -> ContactState:
    """A state stored as JSON before issue 16 (format 1)."""
    return state_from_dict(data)


class ConflictingDuplicate(RejectedRecord):
    """A repeated `event_id` whose content differs from the first (contract §1)."""

    def __init__(self, event_id: str) -> None:
        super().__init__(
            Rejection.CONFLICTING_DUPLICATE,
            f"event_id {event_id!r} was seen with other content",
            "event_id",
        )


class DecisionEngine:
    """All contact states of all tenants in memory, keyed by HMAC contact key.

    Idempotency is that of `step`, per contact point (contract §1, §7); an event that
    conflicts on any of its contact points is rejected as a whole (`ConflictingDuplicate`)
    and changes no state. It forgets an order on contact points that a replacing version
    of it no longer lists (contract §2).
    """

    def __init__(self, policies: PolicyBook, secret: bytes) -> None:
        self.policies = policies
        self.secret = secret
        self.states: dict[str, ContactState] = {}
        self._keys: dict[tuple[str, str, str], str] = {}
        self._points: dict[tuple[str, str, str], tuple[ContactPoint | None, str]] = {}
        self._policies: dict[str, Policy] = {}
        self._order_keys: dict[tuple[str, str], tuple[str, ...]] = {}
        self._encoded = bytearray(1024)

    def feed(self, event: Event) -> list[Decision]:
        """Fold or decide one event; returns the new decisions (revocations included).
        Raises `ConflictingDuplicate` (a `RejectedRecord`) for a conflicting repeat."""
        tenant = event.tenant
        policy = self._policies.get(tenant)
        if policy is None:
            policy = self._policies[tenant] = self.policies.policy_for(tenant)
        kind = type(event)
        if (
            kind is SendRequest
            or kind is Signup
            or (
                kind is Unsubscribe and not event.linked_contacts  # type: ignore[union-attr]
            )
        ):
            contact = event.contact  # type: ignore[union-attr]
            hit = self._points.get((tenant, contact.type, contact.value))
            if hit is None:
                hit = self._point(tenant, contact)
            known, key = hit
            point = contact if known is None else known
            before = self.states.get(key, EMPTY_STATE)
            digest = _fingerprint(event if known is None else _normalised(event),
                                  self._encoded)
            result = _step(before, event, policy, point, digest)
            if result.conflicting:
                raise ConflictingDuplicate(event.event_id)
            self.states[key] = result.state
            return list(result.decisions)
        points = contact_points(event)
        digest = event_digest(event, points, self._encoded)
        if len(points) == 1:
            key = self._key(tenant, points[0])
            before = self.states.get(key, EMPTY_STATE)
            result = _step(before, event, policy, points[0], digest)
            if result.conflicting:
                raise ConflictingDuplicate(event.event_id)
            self.states[key] = result.state
            if isinstance(event, Order) and result.state is not before:
                self._forget_unlisted(event, [key])
            return list(result.decisions)
        keys: list[str] = []
        results: list[_Stepped] = []
        fresh = False
        for contact in points:
            key = self._key(tenant, contact)
            before = self.states.get(key, EMPTY_STATE)
            result = _step(before, event, policy, contact, digest)
            if result.conflicting:
                raise ConflictingDuplicate(event.event_id)
            fresh = fresh or result.state is not before
            keys.append(key)
            results.append(result)
        decisions: list[Decision] = []
        for key, result in zip(keys, results, strict=True):
            self.states[key] = result.state
            decisions.extend(result.decisions)
        if fresh and isinstance(event, Order):
            self._forget_unlisted(event, keys)
        return decisions

    def _point(self, tenant: str, contact: ContactPoint) -> tuple[ContactPoint | None, str]:
        """Memoised by the point as written: its normalised form (None when that is the
        point itself, so the event is digested as it is) and its key."""
        point = normalise(contact)
        hit = self._points[(tenant, contact.type, contact.value)] = (
            None if point is contact else point,
            self._key(tenant, point),
        )
        return hit

    def _key(self, tenant: str, contact: ContactPoint) -> str:
        memo = (tenant, contact.type, contact.value)
        key = self._keys.get(memo)
        if key is None:
            key = self._keys[memo] = normalised_contact_key(self.secret, tenant, contact)
        return key

    def _forget_unlisted(self, order: Order, keys: list[str]) -> None:
        index = (order.tenant, order.order_id)
        for key in self._order_keys.get(index, ()):
            if key not in keys and key in self.states:
                self.states[key] = forget_order(self.states[key], order)
        self._order_keys[index] = tuple(keys)
