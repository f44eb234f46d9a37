"""The stored contact state: the changelog value and the local store's value.

`encode_state` / `decode_state` are the seam every state reader goes through (worker,
view follower, `view rebuild`, DSR export, tests). A value is one format byte and msgpack
of `[state, view hint]` (the core's Structs encode as arrays without their defaults, so
the value holds no field names): format 3. A value of `COMPRESS_FROM` bytes or more is
written as format 4: the same msgpack, LZ4-block compressed. Event, request and order ids
repeat inside one state (seen ids, decision evidence, order facts) and usually share a
shop's prefix, so LZ4 halves a typical state for ~3 µs to write and ~1 µs to read (issue 16
§3; NOTES "state format 4" has the measurement and why not zstd or an id table). Older
values still load: format 3, format 2 (msgpack with whole decisions, sessions 2-4) and
format 1 (the JSON of the first workers; starts with `{`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import lz4.block
import msgspec
import orjson

from streams.core.engine import STATE_FORMAT, ContactState, load_state
from streams.core.eventtime import parse_rfc3339
from streams.core.model import (
    ConsentFact,
    Decision,
    OpenApproval,
    OrderFact,
    SeenEvent,
    SuppressionFact,
    TouchpointFact,
    keep,
)

_FORMAT_BYTE = bytes([STATE_FORMAT])
_JSON_START = ord("{")
_FORMAT_LZ4 = 4
_FORMAT_LZ4_BYTE = bytes([_FORMAT_LZ4])
COMPRESS_FROM = 192
"""Smaller values stay format 3: LZ4 saves little on them and its size header costs 4 bytes."""
MAX_STATE_BYTES = 16 * 1024 * 1024
"""A format-4 value that claims more than this uncompressed is refused unread (a forged or
corrupt size header must not make a reader allocate gigabytes)."""


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


class _StateV2(msgspec.Struct, frozen=True, array_like=True):
    """Format 2's state: today's fields, each decision whole (frozen: do not edit)."""

    orders: tuple[OrderFact, ...] = ()
    consents: tuple[ConsentFact, ...] = ()
    suppressions: tuple[SuppressionFact, ...] = ()
    touchpoints: tuple[TouchpointFact, ...] = ()
    relay_entities: frozenset[str] = frozenset()
    direct_entities: frozenset[str] = frozenset()
    relay_kept: frozenset[str] = frozenset()
    facts_until: datetime | None = None
    seen_event_ids: Mapping[str, SeenEvent] = msgspec.field(default_factory=dict)
    decided: Mapping[str, Decision] = msgspec.field(default_factory=dict)
    open_approvals: tuple[OpenApproval, ...] = ()


class _StoredV2(msgspec.Struct, frozen=True, array_like=True):
    state: _StateV2
    view: ViewHint | None = None


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Stored)
_DECODER_V2 = msgspec.msgpack.Decoder(_StoredV2)
_FORMAT_2 = 2


def _migrated_v2(old: _StateV2) -> ContactState:
    """Format 2 → 3: each decision becomes what the state keeps of it (`keep`); the
    rest is the same."""
    return ContactState(
        old.orders, old.consents, old.suppressions, old.touchpoints, old.relay_entities,
        old.direct_entities, old.relay_kept, old.facts_until, old.seen_event_ids,
        {rid: keep(d) for rid, d in old.decided.items()}, old.open_approvals,
    )


def encode_state(state: ContactState, hint: ViewHint | None = None) -> bytes:
    """Format byte + msgpack (format 3), LZ4-compressed from `COMPRESS_FROM` bytes (format
    4); runs once per dirty contact per commit."""
    packed = _ENCODER.encode(_Stored(state, hint))
    if len(packed) < COMPRESS_FROM:
        return _FORMAT_BYTE + packed
    compressed: bytes = lz4.block.compress(packed, store_size=True)
    return _FORMAT_LZ4_BYTE + compressed


def _decompressed(raw: bytes) -> bytes:
    if len(raw) < 5:
        raise ValueError("corrupt contact state: truncated format 4 value")
    size = int.from_bytes(raw[1:5], "little")
    if size > MAX_STATE_BYTES:
        raise ValueError(f"corrupt contact state: claims {size} bytes uncompressed")
    try:
        packed: bytes = lz4.block.decompress(memoryview(raw)[1:])
    except lz4.block.LZ4BlockError as exc:
        raise ValueError(f"corrupt contact state: {exc}") from None
    return packed


def _decode(raw: bytes) -> _Stored:
    if not raw:
        raise ValueError("empty contact state")
    if raw[0] == _FORMAT_LZ4 or raw[0] == STATE_FORMAT:
        packed = _decompressed(raw) if raw[0] == _FORMAT_LZ4 else memoryview(raw)[1:]
        try:
            return _DECODER.decode(packed)
        except msgspec.DecodeError as exc:
            raise ValueError(f"corrupt contact state: {exc}") from None
    if raw[0] == _FORMAT_2:
        try:
            old = _DECODER_V2.decode(memoryview(raw)[1:])
        except msgspec.DecodeError as exc:
            raise ValueError(f"corrupt contact state: {exc}") from None
        return _Stored(_migrated_v2(old.state), old.view)
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
