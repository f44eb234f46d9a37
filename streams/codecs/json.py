"""JSON codec: the contract's own JSON shape, validated against the same Avro schemas.

For the CLI, logs and humans. Encoding writes every field in schema order, timestamps as
RFC 3339 UTC (`...Z`) and bytes as base64. Decoding accepts the contract shape (absent
defaults, any offset) and returns exactly what the Avro codec returns: every field
present, timestamps as UTC datetimes truncated to milliseconds. The record is the one
named by `expected`, else the one its `type` names (input events), else the single
schema among the candidates the object satisfies.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from streams.codecs.base import (
    CONTENT_TYPE_JSON,
    DEAD_LETTER_MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_BYTES,
    EncodeError,
    Expected,
    expected_names,
    short_name,
)
from streams.codecs.schemas import LoadedSchema, SchemaStore, load_schema_store
from streams.codecs.shape import Shaper, Target, compile_shaper, format_rfc3339
from streams.core.errors import DecodeError, RejectedRecord, Rejection
from streams.core.jsonsafe import loads_bounded
from streams.topics import RECORD_FOR_EVENT_TYPE


def _encode_error(reason: Rejection, message: str, field: str) -> RejectedRecord:
    return EncodeError(reason, message, field)


def _decode_error(reason: Rejection, message: str, field: str) -> RejectedRecord:
    return DecodeError(reason, message, field)


def to_jsonable(value: Any) -> Any:
    """Decoded shape -> plain JSON values (datetimes to RFC 3339, bytes to base64)."""
    if isinstance(value, datetime):
        return format_rfc3339(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


class JsonCodec:
    """UTF-8 JSON, one object per record."""

    name = "json"
    content_type = CONTENT_TYPE_JSON

    def __init__(
        self,
        store: SchemaStore | None = None,
        *,
        max_payload: int = MAX_PAYLOAD_BYTES,
        indent: int | None = None,
    ) -> None:
        self.store = store if store is not None else load_schema_store()
        self.max_payload = max_payload
        self.indent = indent
        self._encoders: dict[str, Shaper] = {}
        self._decoders: dict[str, Shaper] = {}

    def _schema(self, record_name: str) -> LoadedSchema:
        try:
            return self.store.get(record_name)
        except KeyError:
            raise EncodeError(
                Rejection.SCHEMA_MISMATCH, f"unknown record {record_name!r}"
            ) from None

    def normalise(self, record_name: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and return the decoded shape (what `decode` would return); EncodeError."""
        loaded = self._schema(record_name)
        shaper = self._encoders.get(loaded.name)
        if shaper is None:
            shaper = compile_shaper(loaded.schema, Target.DECODED, _encode_error)
            self._encoders[loaded.name] = shaper
        shaped: dict[str, Any] = shaper(obj, "")
        return shaped

    def encode(
        self, record_name: str, obj: Mapping[str, Any], *, topic: str | None = None
    ) -> bytes:
        shaped = self.normalise(record_name, obj)
        text = json.dumps(to_jsonable(shaped), ensure_ascii=False, indent=self.indent)
        return text.encode("utf-8")

    def decode(self, data: bytes, expected: Expected = None) -> tuple[str, dict[str, Any]]:
        names = expected_names(expected)
        limit = (
            DEAD_LETTER_MAX_PAYLOAD_BYTES
            if names and any(short_name(n) == "DeadLetter" for n in names)
            else self.max_payload
        )
        if len(data) > limit:
            raise DecodeError(Rejection.OVERSIZE, f"{len(data)} bytes > limit {limit}")
        obj = loads_bounded(data, max_bytes=limit)
        if not isinstance(obj, dict):
            raise DecodeError(
                Rejection.BAD_JSON, f"expected a JSON object, got {type(obj).__name__}"
            )
        candidates = self._candidates(obj, names)
        last: RejectedRecord | None = None
        matches: list[tuple[str, dict[str, Any]]] = []
        for name in candidates:
            try:
                matches.append((name, self._decoder(name)(obj, "")))
            except RejectedRecord as exc:
                last = exc
            if len(candidates) == 1 or len(matches) > 1:
                break
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise DecodeError(
                Rejection.SCHEMA_MISMATCH,
                f"ambiguous: matches {', '.join(n for n, _ in matches)}; pass expected",
            )
        if len(candidates) == 1 and last is not None:
            raise last
        raise DecodeError(
            Rejection.SCHEMA_MISMATCH, f"matches none of {', '.join(candidates)}"
        )

    def _candidates(self, obj: Mapping[str, Any], names: frozenset[str] | None) -> list[str]:
        allowed = sorted({short_name(n) for n in names}) if names else None
        declared = obj.get("type")
        event_record = RECORD_FOR_EVENT_TYPE.get(declared) if isinstance(declared, str) else None
        if event_record is not None:
            if allowed is not None and event_record not in allowed:
                raise DecodeError(
                    Rejection.SCHEMA_MISMATCH,
                    f"record {event_record} where {' or '.join(allowed)} is expected",
                )
            return [event_record]
        if allowed is not None:
            unknown = [n for n in allowed if n not in self.store]
            if unknown:
                raise DecodeError(Rejection.SCHEMA_MISMATCH, f"unknown record {unknown[0]!r}")
            return allowed
        return [
            n for n in self.store.names if self.store.get(n).schema.get("type") == "record"
        ]

    def _decoder(self, name: str) -> Shaper:
        shaper = self._decoders.get(name)
        if shaper is None:
            loaded = self.store.get(name)
            shaper = compile_shaper(
                loaded.schema, Target.DECODED, _decode_error, accept_base64=True
            )
            self._decoders[name] = shaper
        return shaper
