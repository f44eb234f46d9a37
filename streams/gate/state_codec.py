"""The stored contact state: the changelog value and the local store's value.

`encode_state` / `decode_state` are the seam every state reader goes through (worker,
view follower, `view rebuild`, DSR export, tests). A value is one format byte and msgpack
of `[state, view hint]` (the core's Structs encode as arrays without their defaults, so
the value holds no field names). Format 1, the JSON of the first workers, still loads:
it starts with `{`.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
import orjson

from streams.core.engine import STATE_FORMAT, ContactState, load_state
from streams.core.eventtime import parse_rfc3339

_FORMAT_BYTE = bytes([STATE_FORMAT])
_JSON_START = ord("{")


class ViewHint(msgspec.Struct, frozen=True, array_like=True):
    """What the status view needs and the state itself does not tell: the tenant (its
    policy), the event time of the event that produced the state, the contact type.

    Written beside the state in the changelog value, so that `sendgate view follow`
    projects what the worker would have. Holds no contact value."""

    tenant: str
    as_of: datetime
    contact_type: str | None = None


class _Stored(msgspec.Struct, frozen=True, array_like=True):
    state: ContactState
    view: ViewHint | None = None


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Stored)


def encode_state(state: ContactState, hint: ViewHint | None = None) -> bytes:
    """Format byte + msgpack; runs for every event that changes a contact's state."""
    return _FORMAT_BYTE + _ENCODER.encode(_Stored(state, hint))


def _decode(raw: bytes) -> _Stored:
    if not raw:
        raise ValueError("empty contact state")
    if raw[0] == STATE_FORMAT:
        try:
            return _DECODER.decode(memoryview(raw)[1:])
        except msgspec.DecodeError as exc:
            raise ValueError(f"corrupt contact state: {exc}") from None
    if raw[0] == _JSON_START:
        data = orjson.loads(raw)
        return _Stored(load_state(data), _legacy_hint(data.get("view")))
    raise ValueError(f"unknown contact state format {raw[0]}")


def _legacy_hint(data: object) -> ViewHint | None:
    if not isinstance(data, dict):
        return None
    tenant, at, ctype = data.get("t"), data.get("at"), data.get("ct")
    if not isinstance(tenant, str) or not isinstance(at, str):
        return None
    try:
        as_of = parse_rfc3339(at)
    except ValueError:
        return None
    return ViewHint(tenant, as_of, ctype if isinstance(ctype, str) else None)


def decode_state(raw: bytes | None) -> ContactState | None:
    if raw is None:
        return None
    return _decode(raw).state


def decode_changelog_value(raw: bytes) -> tuple[ContactState, ViewHint | None]:
    """A changelog value: the state and, when the worker wrote one, its view hint."""
    stored = _decode(raw)
    return stored.state, stored.view
