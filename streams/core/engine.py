"""The stream step: `(state, event) -> (state, decisions)` per contact point, plus an
in-memory engine over many contacts (used by `sendgate decide`, tests and audit).

Re-check at dispatch (R-OBJECT-3, contract §7): every ALLOW stays open in the contact's
state until an event on that contact has an `occurred_at` past its `dispatch_at` (or
`release_due` releases it). A suppression arriving meanwhile that was received before
the dispatch, or occurred before the request, re-evaluates it; if it now blocks, a
revoking decision (`BLOCK_LATE_OBJECTION`, `revokes: true`) replaces the ALLOW.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.core.apply import apply, forget_order
from streams.core.decide import decide, evaluate, request_context, to_decision
from streams.core.enums import CHANNEL_FAMILY, ContactType, LegalBasis, Outcome
from streams.core.eventtime import to_utc
from streams.core.keys import normalise, normalised_contact_key
from streams.core.model import (
    ContactPoint,
    ContactState,
    Decision,
    Event,
    OpenApproval,
    Order,
    SendRequest,
    SuppressionFact,
    Unsubscribe,
)
from streams.core.policy import Policy, PolicyBook
from streams.core.rules.context import Verdict
from streams.core.rules.suppression import late_objection, triggers_recheck
from streams.core.serial import state_from_dict, state_to_dict
from streams.core.status import status_view

__all__ = [
    "REDACTED",
    "ContactState",
    "DecisionEngine",
    "StepResult",
    "contact_points",
    "dump_state",
    "load_state",
    "release_due",
    "status_view",
    "step",
]

REDACTED = "<redacted>"
"""Stands in for the contact value of a request kept in state (non-negotiable 5)."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """New state; new decisions (revocations included); the stored decision when the
    request_id was already decided (the shell may re-emit it, the CLI ignores it)."""

    state: ContactState
    decisions: tuple[Decision, ...] = ()
    duplicate: Decision | None = None


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


_REDACTED_POINTS = {kind: ContactPoint(kind, REDACTED) for kind in ContactType}


def redact(request: SendRequest) -> SendRequest:
    """The request without its contact value, to be kept in state."""
    return SendRequest(
        event_id=request.event_id,
        occurred_at=request.occurred_at,
        tenant=request.tenant,
        legal_entity=request.legal_entity,
        request_id=request.request_id,
        contact=_REDACTED_POINTS[request.contact.type],
        channel=request.channel,
        declared_purpose=request.declared_purpose,
        service_kind=request.service_kind,
        relates_to_order_id=request.relates_to_order_id,
        content=request.content,
        sender=request.sender,
        recipient=request.recipient,
        platform=request.platform,
        dispatch_at=request.dispatch_at,
        campaign_id=request.campaign_id,
        template_id=request.template_id,
        requested_by_recipient=request.requested_by_recipient,
    )


def _with_approvals(
    state: ContactState,
    approvals: tuple[OpenApproval, ...],
    decided: Mapping[str, Decision] | None = None,
    seen_event_id: str | None = None,
) -> ContactState:
    """A copy with other open approvals (and decisions, and one more seen event id)."""
    return ContactState(
        orders=state.orders,
        consents=state.consents,
        suppressions=state.suppressions,
        touchpoints=state.touchpoints,
        relay_entities=state.relay_entities,
        relay_kept=state.relay_kept,
        facts_until=state.facts_until,
        seen_event_ids=state.seen_event_ids
        if seen_event_id is None
        else state.seen_event_ids | {seen_event_id},
        decided=state.decided if decided is None else decided,
        open_approvals=approvals,
    )


def _pending(approvals: tuple[OpenApproval, ...], now: datetime) -> tuple[OpenApproval, ...]:
    """Approvals not yet dispatched at event time `now`."""
    if not approvals:
        return approvals
    return tuple(a for a in approvals if a.dispatch_at >= now)


def _revocation(approval: OpenApproval, reblock: Decision) -> Decision:
    verdict = late_objection(Verdict(reblock.reason_code, reblock.rule_ids, reblock.evidence))
    return dataclasses.replace(
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
    decided = {**state.decided, **{d.request_id: d for d in revocations}}
    return (
        _with_approvals(state, tuple(kept), decided),
        tuple(revocations),
    )


def _step_request(state: ContactState, request: SendRequest, policy: Policy) -> StepResult:
    stored = state.decided.get(request.request_id)
    if stored is not None:
        return StepResult(state, (), stored)
    if request.event_id in state.seen_event_ids:
        return StepResult(state)
    ctx = request_context(state, request, policy)
    decision = to_decision(request, evaluate(ctx), CHANNEL_FAMILY[request.channel])
    approvals = _pending(state.open_approvals, ctx.as_of)
    if decision.allowed:
        approvals += (OpenApproval(redact(request), decision, ctx.dispatch_at),)
    decided = {**state.decided, request.request_id: decision}
    return StepResult(_with_approvals(state, approvals, decided, request.event_id), (decision,))


def step(state: ContactState, event: Event, policy: Policy, contact: ContactPoint) -> StepResult:
    """Apply (or decide) one event for one normalised contact point."""
    if isinstance(event, SendRequest):
        return _step_request(state, event, policy)
    if event.event_id in state.seen_event_ids:
        return StepResult(state)
    after = apply(state, event, contact)
    if not after.open_approvals:
        return StepResult(after)
    decisions: tuple[Decision, ...] = ()
    arrived = after.suppressions[len(state.suppressions) :]
    if arrived:
        after, decisions = _recheck(after, arrived, policy)
    pending = _pending(after.open_approvals, to_utc(event.occurred_at))
    if len(pending) != len(after.open_approvals):
        after = _with_approvals(after, pending)
    return StepResult(after, decisions)


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
    return _with_approvals(state, pending), due


def dump_state(state: ContactState) -> dict[str, Any]:
    """JSON-able form of a contact state (Kafka changelog); `load_state` inverts it."""
    return state_to_dict(state)


def load_state(data: Mapping[str, Any]) -> ContactState:
    return state_from_dict(data)


class DecisionEngine:
    """All contact states of all tenants in memory, keyed by HMAC contact key.

    Besides the per-contact idempotency of `step`, it ignores a repeated `event_id` or
    `request_id` across contact points of the tenant, and forgets an order on contact
    points that a replacing version of it no longer lists (contract §2).
    """

    def __init__(self, policies: PolicyBook, secret: bytes) -> None:
        self.policies = policies
        self.secret = secret
        self.states: dict[str, ContactState] = {}
        self._seen_events: set[tuple[str, str]] = set()
        self._decided_requests: set[tuple[str, str]] = set()
        self._order_keys: dict[tuple[str, str], tuple[str, ...]] = {}

    def feed(self, event: Event) -> list[Decision]:
        """Fold or decide one event; returns the new decisions (revocations included)."""
        tenant = event.tenant
        if (tenant, event.event_id) in self._seen_events:
            return []
        if isinstance(event, SendRequest):
            if (tenant, event.request_id) in self._decided_requests:
                return []
            self._decided_requests.add((tenant, event.request_id))
        self._seen_events.add((tenant, event.event_id))
        policy = self.policies.policy_for(tenant)
        decisions: list[Decision] = []
        keys = []
        for contact in contact_points(event):
            key = normalised_contact_key(self.secret, tenant, contact)
            keys.append(key)
            result = step(self.states.get(key, ContactState.empty()), event, policy, contact)
            self.states[key] = result.state
            decisions.extend(result.decisions)
        if isinstance(event, Order):
            self._forget_unlisted(event, keys)
        return decisions

    def _forget_unlisted(self, order: Order, keys: list[str]) -> None:
        index = (order.tenant, order.order_id)
        for key in self._order_keys.get(index, ()):
            if key not in keys and key in self.states:
                self.states[key] = forget_order(self.states[key], order)
        self._order_keys[index] = tuple(keys)
