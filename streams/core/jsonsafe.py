"""JSON from outside, parsed within bounds (issue 12 §1: fail closed on hostile input).

`json.loads` recurses per nesting level: a line of 100 000 `[` raised RecursionError, which
no caller expected, so `sendgate decide` printed a traceback and the status server answered
500. Every JSON entry point (status server, `decide`, the SDK's `publish_jsonl`, the JSON
codec) parses with `loads_bounded`: at most `MAX_JSON_BYTES` and `MAX_JSON_DEPTH` levels
(contract records nest 4 deep), else a `DecodeError` (`oversize` / `bad_json`) with a
message fit for the client. orjson (C, already a dependency) stops at 1 024 levels by
itself; the tighter depth check only walks documents that have enough brackets to exceed
it, so ordinary records pay one `bytes.count` pair.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.core.errors import DecodeError, Rejection

MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 32


def loads_bounded(
    data: str | bytes, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """Parse one JSON document, refusing oversize or too deeply nested input."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise DecodeError(Rejection.OVERSIZE, f"{len(raw)} bytes > limit {max_bytes}")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = exc.msg if hasattr(exc, "msg") else str(exc)
        if "depth" in message or "recursion" in message.lower():
            raise DecodeError(
                Rejection.BAD_JSON, f"nested deeper than {max_depth} levels"
            ) from None
        raise DecodeError(Rejection.BAD_JSON, f"not JSON: {exc}") from None
    if raw.count(b"[") + raw.count(b"{") > max_depth and _depth(value, max_depth) > max_depth:
        raise DecodeError(Rejection.BAD_JSON, f"nested deeper than {max_depth} levels")
    return value


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of containers, stopping once past `limit` (iterative: no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if level > deepest:
            deepest = level
            if deepest > limit:
                return deepest
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest
