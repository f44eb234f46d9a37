"""Format 1 of the stored contact state (JSON, before issue 16): still read, so that a
changelog or store written by an older worker loads; no longer written except by the
migration test.

Facts are encoded field by field from their dataclass type hints: enums as their value,
instants as RFC 3339 (UTC), frozensets as sorted lists.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from msgspec.structs import fields as struct_fields

from streams.core.enums import Channel, LegalBasis, Outcome, Reason
from streams.core.eventtime import format_rfc3339
from streams.core.model import (
    ConsentFact,
    ContactState,
    Decision,
    KeptDecision,
    OpenApproval,
    OrderFact,
    SeenEvent,
    SendRequest,
    SuppressionFact,
    TouchpointFact,
    keep,
)
from streams.core.parse import (
    event_to_dict,
    parse_stored_event,
)

STATE_FORMAT = 1

Fact = TypeVar("Fact", OrderFact, ConsentFact, SuppressionFact, TouchpointFact)


def _encode(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_rfc3339(value)
    if isinstance(value, frozenset):
        return sorted(_encode(v) for v in value)
    return value


def _instant(raw: str) -> datetime:
    """A stored instant: written by `format_rfc3339`, so `fromisoformat` (C) reads it;
    anything else is a corrupt state."""
    if not isinstance(raw, str) or len(raw) < 20 or raw[10] != "T":
        raise ValueError(f"stored instant {raw!r} is not RFC 3339")
    instant = datetime.fromisoformat(raw)
    if instant.tzinfo is None:
        raise ValueError(f"stored instant {raw!r} has no offset")
    return instant


def _encoder(hint: Any) -> Callable[[Any], Any] | None:
    """How one fact field is written; None = as is (str, int, bool, None)."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):
        inner = _encoder(next(a for a in args if a is not type(None)))
        if inner is None:
            return None
        return lambda value: None if value is None else inner(value)
    if typing.get_origin(hint) is frozenset or hint is frozenset:
        return _encode
    if typing.get_origin(hint) is tuple:
        item = _encoder(args[0]) if args else None
        return list if item is None else (lambda value: [item(v) for v in value])
    if hint is datetime:
        return format_rfc3339
    if isinstance(hint, type) and issubclass(hint, Enum):
        return lambda value: value.value
    return None


def _decoder(hint: Any) -> Callable[[Any], Any]:
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):
        inner = _decoder(next(a for a in args if a is not type(None)))
        return lambda raw: None if raw is None else inner(raw)
    if typing.get_origin(hint) is frozenset:
        item = _decoder(args[0])
        return lambda raw: frozenset(item(v) for v in raw)
    if typing.get_origin(hint) is tuple:
        item = _decoder(args[0])
        return lambda raw: tuple(item(v) for v in raw)
    if hint is datetime:
        return _instant
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _enum_decoder(hint)
    return lambda raw: raw


def _enum_decoder(cls: type[Enum]) -> Callable[[Any], Any]:
    """A dict lookup: calling the enum class is ten times slower, and this runs for every
    field of every fact of every state read."""
    by_value = {member.value: member for member in cls}

    def decode(raw: Any) -> Any:
        try:
            return by_value[raw]
        except (KeyError, TypeError):
            raise ValueError(f"{raw!r} is not a {cls.__name__}") from None

    return decode


def _field_decoders(cls: type[Any]) -> dict[str, Callable[[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: _decoder(hints[f.name]) for f in struct_fields(cls)}


def _field_encoders(cls: type[Any]) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _encoder(hints[f.name])) for f in struct_fields(cls))


_FACT_TYPES = (OrderFact, ConsentFact, SuppressionFact, TouchpointFact)
_DECODERS: dict[type[Any], dict[str, Callable[[Any], Any]]] = {
    cls: _field_decoders(cls) for cls in _FACT_TYPES
}
_ENCODERS: dict[type[Any], tuple[tuple[str, Callable[[Any], Any] | None], ...]] = {
    cls: _field_encoders(cls) for cls in _FACT_TYPES
}


def _fact_to_dict(fact: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, encode in _ENCODERS[type(fact)]:
        value = getattr(fact, name)
        out[name] = value if encode is None else encode(value)
    return out


def _fact_from_dict(cls: type[Fact], data: Mapping[str, Any]) -> Fact:
    decoders = _DECODERS[cls]
    return cls(**{name: decode(data[name]) for name, decode in decoders.items()})


_CHANNEL = _enum_decoder(Channel)
_OUTCOME = _enum_decoder(Outcome)
_REASON = _enum_decoder(Reason)
_LEGAL_BASIS = _enum_decoder(LegalBasis)


def _decision_to_dict(d: Decision) -> dict[str, Any]:
    """`parse.decision_to_dict` (contract §6 shape) for a typed stored decision: `.value`
    instead of `str()`, which that one keeps because it also takes decisions whose enum
    fields are plain strings (audit, tests)."""
    return {
        "request_id": d.request_id,
        "tenant": d.tenant,
        "legal_entity": d.legal_entity,
        "channel": d.channel.value,
        "decision": d.decision.value,
        "reason_code": d.reason_code.value,
        "legal_basis": d.legal_basis.value,
        "rule_ids": list(d.rule_ids),
        "evidence": list(d.evidence),
        "rulebook_version": d.rulebook_version,
        "as_of": format_rfc3339(d.as_of),
        "decided_at": None if d.decided_at is None else format_rfc3339(d.decided_at),
        "revokes": d.revokes,
    }


def _decision_from_dict(data: Mapping[str, Any]) -> Decision:
    """Inverse of `_decision_to_dict` for a stored decision: no contract-level validation
    of each field (it was valid when stored), but an unknown field, enum value or
    malformed instant still fails (a corrupt state must not decide)."""
    if len(data) != len(_DECISION_FIELDS) or not _DECISION_FIELDS.issuperset(data):
        raise ValueError(f"stored decision has fields {sorted(data)}")
    decided_at = data["decided_at"]
    revokes = data["revokes"]
    if not isinstance(revokes, bool):
        raise ValueError("stored decision: revokes is not a boolean")
    return Decision(
        request_id=str(data["request_id"]),
        tenant=str(data["tenant"]),
        legal_entity=str(data["legal_entity"]),
        channel=_CHANNEL(data["channel"]),
        decision=_OUTCOME(data["decision"]),
        reason_code=_REASON(data["reason_code"]),
        legal_basis=_LEGAL_BASIS(data["legal_basis"]),
        rule_ids=tuple(data["rule_ids"]),
        evidence=tuple(data["evidence"]),
        rulebook_version=str(data["rulebook_version"]),
        as_of=_instant(data["as_of"]),
        decided_at=None if decided_at is None else _instant(decided_at),
        revokes=revokes,
    )


_DECISION_FIELDS = frozenset(f.name for f in struct_fields(Decision))


def state_to_dict(state: ContactState, tenant: str = "t") -> dict[str, Any]:
    """Format 1 (tests of the migration only): kept decisions are written whole, under
    `tenant` (format 3 does not keep it; the contact key does)."""
    return {
        "format": STATE_FORMAT,
        "orders": [_fact_to_dict(f) for f in state.orders],
        "consents": [_fact_to_dict(f) for f in state.consents],
        "suppressions": [_fact_to_dict(f) for f in state.suppressions],
        "touchpoints": [_fact_to_dict(f) for f in state.touchpoints],
        "relay_entities": sorted(state.relay_entities),
        "relay_kept": sorted(state.relay_kept),
        "facts_until": None if state.facts_until is None else format_rfc3339(state.facts_until),
        "seen_event_ids": sorted(state.seen_event_ids),
        "decided": {
            rid: _decision_to_dict(d.rebuild(rid, tenant)) for rid, d in state.decided.items()
        },
        "open_approvals": [
            {
                "request": event_to_dict(a.request),
                "decision": _decision_to_dict(a.decision),
                "dispatch_at": format_rfc3339(a.dispatch_at),
            }
            for a in state.open_approvals
        ],
    }


def _approval(data: Mapping[str, Any]) -> OpenApproval:
    request = parse_stored_event(data["request"])
    if not isinstance(request, SendRequest):
        raise ValueError("an open approval must hold a send_request")
    return OpenApproval(
        request=request,
        decision=_decision_from_dict(data["decision"]),
        dispatch_at=_instant(data["dispatch_at"]),
    )


def _migrated_seen(
    data: Mapping[str, Any], facts_until: datetime | None, decided: Mapping[str, KeptDecision]
) -> dict[str, SeenEvent]:
    """Format 1 kept bare event ids: each is taken as seen at the latest instant the
    state knows (so it is kept a full horizon) with unknown content (a repeat is ignored,
    never rejected as conflicting)."""
    ids = data["seen_event_ids"]
    if not ids:
        return {}
    instants = [d.as_of for d in decided.values()]
    instants += [_instant(f["occurred_at"]) for f in data["suppressions"]]
    if facts_until is not None:
        instants.append(facts_until)
    if not instants:
        return {}
    seen = SeenEvent(max(instants), 0)
    return dict.fromkeys(ids, seen)


def state_from_dict(data: Mapping[str, Any]) -> ContactState:
    if data.get("format") != STATE_FORMAT:
        raise ValueError(f"unknown contact state format {data.get('format')!r}")
    decided = {rid: keep(_decision_from_dict(d)) for rid, d in data["decided"].items()}
    approvals = tuple(_approval(a) for a in data["open_approvals"])
    facts_until = None if data["facts_until"] is None else _instant(data["facts_until"])
    seen = _migrated_seen(data, facts_until, decided)
    return ContactState(
        orders=tuple(_fact_from_dict(OrderFact, f) for f in data["orders"]),
        consents=tuple(_fact_from_dict(ConsentFact, f) for f in data["consents"]),
        suppressions=tuple(_fact_from_dict(SuppressionFact, f) for f in data["suppressions"]),
        touchpoints=tuple(_fact_from_dict(TouchpointFact, f) for f in data["touchpoints"]),
        relay_entities=frozenset(data["relay_entities"]),
        relay_kept=frozenset(data["relay_kept"]),
        facts_until=facts_until,
        seen_event_ids=seen,
        decided=decided,
        open_approvals=approvals,
    )
