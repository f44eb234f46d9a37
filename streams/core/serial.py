"""JSON-able round trip of a contact state (the Kafka changelog of the stream job).

Facts are encoded field by field from their dataclass type hints: enums as their value,
instants as RFC 3339 (UTC), frozensets as sorted lists.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from streams.core.eventtime import format_rfc3339, parse_rfc3339
from streams.core.model import (
    ConsentFact,
    ContactState,
    OpenApproval,
    OrderFact,
    SendRequest,
    SuppressionFact,
    TouchpointFact,
)
from streams.core.parse import (
    decision_from_dict,
    decision_to_dict,
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


def _fact_to_dict(fact: Any) -> dict[str, Any]:
    return {f.name: _encode(getattr(fact, f.name)) for f in dataclasses.fields(fact)}


def _decoder(hint: Any) -> Callable[[Any], Any]:
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):
        inner = _decoder(next(a for a in args if a is not type(None)))
        return lambda raw: None if raw is None else inner(raw)
    if typing.get_origin(hint) is frozenset:
        item = _decoder(args[0])
        return lambda raw: frozenset(item(v) for v in raw)
    if hint is datetime:
        return parse_rfc3339
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    return lambda raw: raw


def _field_decoders(cls: type[Any]) -> dict[str, Callable[[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: _decoder(hints[f.name]) for f in dataclasses.fields(cls)}


_DECODERS: dict[type[Any], dict[str, Callable[[Any], Any]]] = {
    cls: _field_decoders(cls) for cls in (OrderFact, ConsentFact, SuppressionFact, TouchpointFact)
}


def _fact_from_dict(cls: type[Fact], data: Mapping[str, Any]) -> Fact:
    decoders = _DECODERS[cls]
    return cls(**{name: decode(data[name]) for name, decode in decoders.items()})


def state_to_dict(state: ContactState) -> dict[str, Any]:
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
        "decided": {rid: decision_to_dict(d) for rid, d in state.decided.items()},
        "open_approvals": [
            {
                "request": event_to_dict(a.request),
                "decision": decision_to_dict(a.decision),
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
        decision=decision_from_dict(data["decision"]),
        dispatch_at=parse_rfc3339(data["dispatch_at"]),
    )


def state_from_dict(data: Mapping[str, Any]) -> ContactState:
    if data.get("format") != STATE_FORMAT:
        raise ValueError(f"unknown contact state format {data.get('format')!r}")
    return ContactState(
        orders=tuple(_fact_from_dict(OrderFact, f) for f in data["orders"]),
        consents=tuple(_fact_from_dict(ConsentFact, f) for f in data["consents"]),
        suppressions=tuple(_fact_from_dict(SuppressionFact, f) for f in data["suppressions"]),
        touchpoints=tuple(_fact_from_dict(TouchpointFact, f) for f in data["touchpoints"]),
        relay_entities=frozenset(data["relay_entities"]),
        relay_kept=frozenset(data["relay_kept"]),
        facts_until=None if data["facts_until"] is None else parse_rfc3339(data["facts_until"]),
        seen_event_ids=frozenset(data["seen_event_ids"]),
        decided={rid: decision_from_dict(d) for rid, d in data["decided"].items()},
        open_approvals=tuple(_approval(a) for a in data["open_approvals"]),
    )
