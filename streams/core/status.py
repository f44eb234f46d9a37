"""`status_view`: may this entity send this contact marketing on this channel now, on
which basis, and is the contact suppressed for it? Pure; used by the Redis read side.

It decides a probe: a compliant commercial message (identity, working unsubscribe) in
`content_scope`, promoting the categories the contact bought from the entity, so a
soft-opt-in basis shows when one exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streams.core.decide import evaluate, legal_basis, request_context
from streams.core.enums import (
    CHANNEL_FAMILY,
    CONTACT_TYPES_OF_CHANNEL,
    Channel,
    Purpose,
    RecipientKind,
    Scope,
    Sector,
)
from streams.core.eventtime import format_rfc3339, to_utc
from streams.core.model import (
    RULEBOOK_VERSION,
    ContactPoint,
    ContactState,
    Content,
    Recipient,
    Sender,
    SendRequest,
)
from streams.core.policy import Policy
from streams.core.rules.suppression import suppression_verdict

PROBE_ID = "status-view"


def _bought(state: ContactState, legal_entity: str, as_of: datetime) -> tuple[str, ...]:
    categories = {
        c
        for o in state.orders
        if o.legal_entity == legal_entity and o.relation is not None and o.occurred_at <= as_of
        for c in o.product_categories
    }
    return tuple(sorted(categories))


def status_view(
    state: ContactState,
    tenant: str,
    legal_entity: str,
    channel: Channel,
    as_of: datetime,
    policy: Policy,
    *,
    content_scope: Scope = Scope.OFFERS,
    platform: str | None = None,
    sector: Sector = Sector.OTHER,
    recipient_kind: RecipientKind = RecipientKind.CONSUMER,
) -> dict[str, Any]:
    """JSON-able answer: `allowed`, `reason_code`, `legal_basis`, `rule_ids`, `evidence`,
    and `suppressed` with `suppression` (reason_code, kind, source, since, event_id) when a
    suppression of this entity covers the channel."""
    as_of_utc = to_utc(as_of)
    contact_type = sorted(CONTACT_TYPES_OF_CHANNEL[channel])[0]
    probe = SendRequest(
        event_id=PROBE_ID,
        occurred_at=as_of,
        tenant=tenant,
        legal_entity=legal_entity,
        request_id=PROBE_ID,
        contact=ContactPoint(contact_type, PROBE_ID),
        channel=channel,
        declared_purpose=Purpose.COMMERCIAL,
        service_kind=None,
        relates_to_order_id=None,
        content=Content(
            content_scope=content_scope,
            has_promo=True,
            promo_categories=_bought(state, legal_entity, as_of_utc),
        ),
        sender=Sender(
            display_name=legal_entity,
            has_identity_block=True,
            has_unsubscribe=True,
            sector=sector,
        ),
        recipient=Recipient(kind=recipient_kind),
        platform=platform,
        dispatch_at=as_of,
        campaign_id=None,
        template_id=None,
    )
    ctx = request_context(state, probe, policy, as_of_utc, as_of_utc)
    verdict = evaluate(ctx)
    allowed = verdict.allowed
    suppression: dict[str, Any] | None = None
    suppressed = suppression_verdict(ctx)
    if suppressed is not None:
        first = next(s for s in state.suppressions if s.event_id == suppressed.evidence[0])
        suppression = {
            "reason_code": str(suppressed.reason),
            "kind": str(first.kind),
            "source": str(first.source),
            "since": format_rfc3339(first.occurred_at),
            "event_id": first.event_id,
        }
    return {
        "tenant": tenant,
        "legal_entity": legal_entity,
        "channel": str(channel),
        "as_of": format_rfc3339(as_of),
        "allowed": allowed,
        "reason_code": str(verdict.reason),
        "legal_basis": str(
            legal_basis(verdict.reason, CHANNEL_FAMILY[channel], probe) if allowed else "NONE"
        ),
        "rule_ids": list(verdict.rule_ids),
        "evidence": list(verdict.evidence),
        "suppressed": suppression is not None,
        "suppression": suppression,
        "rulebook_version": RULEBOOK_VERSION,
    }
