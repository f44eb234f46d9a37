"""What every rule sees: the request, the policy, the contact's facts as of the request, and
the verdict a rule hands back."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from msgspec import Struct

from streams.core.enums import CHANNEL_FAMILY, Channel, ChannelFamily, Outcome, Reason, Scope
from streams.core.model import (
    ConsentFact,
    ContactState,
    OrderFact,
    SendRequest,
    SuppressionFact,
    TouchpointFact,
)
from streams.core.policy import Policy

_ALLOW_REASONS = frozenset(r for r in Reason if r.outcome is Outcome.ALLOW)


class Verdict(Struct, frozen=True, gc=False):
    """A rule's finding: reason code, the rule ids that produced it, the event ids relied on."""

    reason: Reason
    rule_ids: tuple[str, ...]
    evidence: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.reason in _ALLOW_REASONS


class RequestContext(Struct, gc=False):
    """One request against one contact's state. Instants are UTC.

    Facts with an `occurred_at` after the request's are invisible to the basis search: a
    basis must exist when the message is requested (conservative; suppressions follow
    their own counting rule, `counts_for`).
    """

    request: SendRequest
    policy: Policy
    state: ContactState
    as_of: datetime
    dispatch_at: datetime
    sender: str
    channel: Channel
    family: ChannelFamily
    scope: Scope
    orders: tuple[OrderFact, ...]
    consents: tuple[ConsentFact, ...]
    touchpoints: tuple[TouchpointFact, ...]

    @staticmethod
    def build(
        state: ContactState,
        request: SendRequest,
        policy: Policy,
        as_of: datetime,
        dispatch_at: datetime,
    ) -> RequestContext:
        channel = request.channel
        until = state.facts_until
        if until is None or until <= as_of:
            orders, consents, touchpoints = state.orders, state.consents, state.touchpoints
        else:
            orders = _visible(state.orders, as_of)
            consents = _visible(state.consents, as_of)
            touchpoints = _visible(state.touchpoints, as_of)
        return RequestContext(
            request,
            policy,
            state,
            as_of,
            dispatch_at,
            request.legal_entity,
            channel,
            CHANNEL_FAMILY[channel],
            request.content.content_scope,
            orders,
            consents,
            touchpoints,
        )


F = TypeVar("F", OrderFact, ConsentFact, TouchpointFact)


def _visible(facts: tuple[F, ...], as_of: datetime) -> tuple[F, ...]:
    for fact in facts:
        if fact.occurred_at > as_of:
            return tuple(f for f in facts if f.occurred_at <= as_of)
    return facts


def counts_for(suppression: SuppressionFact, ctx: RequestContext) -> bool:
    """R-OBJECT-3 (contract §7): a suppression counts for a request when it occurred at or
    before the request, or its entity received it before the dispatch."""
    return suppression.occurred_at <= ctx.as_of or suppression.received_at < ctx.dispatch_at
