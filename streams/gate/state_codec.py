"""The stored contact state: the changelog value and the local store's value.

`encode_state` / `decode_state` are the seam every state reader goes through (worker,
view follower, `view rebuild`, tests); the format is versioned so a store or changelog
written by an older worker still loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from streams.core.engine import ContactState, dump_state, load_state
from streams.core.eventtime import format_rfc3339, parse_rfc3339


@dataclass(frozen=True, slots=True)
class ViewHint:
    """What the status view needs and the state itself does not tell: the tenant (its
    policy), the event time of the event that produced the state, the contact type.

    Written beside the state in the changelog value (key "view", ignored by
    `load_state`), so that `sendgate view follow` projects what the worker would have.
    Holds no contact value."""

    tenant: str
    as_of: datetime
    contact_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"t": self.tenant, "at": format_rfc3339(self.as_of), "ct": self.contact_type}

    @staticmethod
    def from_dict(data: Any) -> ViewHint | None:
        if not isinstance(data, Mapping):
            return None
        tenant, at, ctype = data.get("t"), data.get("at"), data.get("ct")
        if not isinstance(tenant, str) or not isinstance(at, str):
            return None
        try:
            as_of = parse_rfc3339(at)
        except ValueError:
            return None
        return ViewHint(tenant, as_of, ctype if isinstance(ctype, str) else None)


def encode_state(state: ContactState, hint: ViewHint | None = None) -> bytes:
    """Compact UTF-8 JSON of the state (the changelog value); orjson, as this runs for
    every event that changes a contact's state."""
    data = dump_state(state)
    if hint is not None:
        data["view"] = hint.to_dict()
    return orjson.dumps(data)


def decode_state(raw: bytes | None) -> ContactState | None:
    if raw is None:
        return None
    return load_state(orjson.loads(raw))


def decode_changelog_value(raw: bytes) -> tuple[ContactState, ViewHint | None]:
    """A changelog value: the state and, when the worker wrote one, its view hint."""
    data = orjson.loads(raw)
    return load_state(data), ViewHint.from_dict(data.get("view"))
