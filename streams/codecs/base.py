"""What every sendgate codec promises, so the stream job and the SDK can swap them freely.

A codec turns a record dict into bytes and back. Decoding returns the *decoded shape*:
every field of the reader schema present (absent JSON fields filled with their schema
default, so `received_at`/`dispatch_at` come back as None when they default to
`occurred_at`), enums as plain `str`, bytes as `bytes`, and every timestamp as an aware
`datetime` in UTC. Every decoding failure raises `DecodeError` with a `Rejection`; every
encode-time validation failure raises `EncodeError` (a `ContractError`) with the same
reasons and a dotted field path.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol, runtime_checkable

from streams.core.errors import ContractError

# A decoded record larger than this is refused before any decoding (Rejection.OVERSIZE).
MAX_PAYLOAD_BYTES = 1 << 20

# Dead letters carry a whole rejected record (itself up to the broker limit of an input
# topic) plus metadata, so they get a larger limit of their own.
DEAD_LETTER_MAX_PAYLOAD_BYTES = 5 << 20

CONTENT_TYPE_AVRO_SINGLE_OBJECT = "application/vnd.apache.avro+binary; framing=single-object"
CONTENT_TYPE_AVRO_CONFLUENT = "application/vnd.apache.avro+binary; framing=confluent"
CONTENT_TYPE_JSON = "application/json"

Expected = str | Collection[str] | None


class EncodeError(ContractError):
    """The record cannot be encoded: it breaks the schema (missing field, bad enum, ...)."""


@runtime_checkable
class Codec(Protocol):
    """The interface shared by the Avro (single-object / Confluent) and JSON codecs."""

    name: str
    content_type: str

    def encode(
        self, record_name: str, obj: Mapping[str, Any], *, topic: str | None = None
    ) -> bytes:
        """Validate `obj` against the schema of `record_name` and serialise it.

        `topic` only matters for codecs that register schemas per topic (Confluent).
        """
        ...

    def decode(self, data: bytes, expected: Expected = None) -> tuple[str, dict[str, Any]]:
        """Return (record short name, decoded record); `expected` limits the accepted records."""
        ...


def expected_names(expected: Expected) -> frozenset[str] | None:
    """Normalise `expected` (one name, several, or None for any) to a set of names."""
    if expected is None:
        return None
    if isinstance(expected, str):
        return frozenset((expected,))
    return frozenset(expected)


def short_name(name: str) -> str:
    """`nl.sendgate.v1.Order` -> `Order`; short names pass through."""
    return name.rsplit(".", 1)[-1]
