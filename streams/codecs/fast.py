"""The fast paths of the Avro codec (issues 15 §8, 16 §4): cavro plus a compiled finish to
read, a compiled writer to write.

`cavro` (Cython) reads a record body about three times faster than fastavro's C reader, but
it accepts bytes fastavro refuses or reads differently: a forged negative enum index, an
`int` past 32 bits (cavro truncates it), bytes left after the record. So the fast path
never decides alone what is valid. It reads a *checked* form of the current writer schema
(enums and ints as `long`, timestamps as plain `long`), then a finish function compiled
per schema (straight-line Python, no recursion) maps enum indexes through a dict (so any
index out of range, negative included, is a `KeyError`) and turns millis into UTC
datetimes within 1970..9999. It refuses, by raising anything, whenever it is not sure:

* trailing bytes: cavro reads `record | tail (fixed L)` from the body followed by
  `01 00 .. 00` (L bytes, L larger than the body). The tail read equals that suffix only
  if the record ended exactly where the body does: a record running into the suffix
  leaves fewer than L bytes (EOF); one ending k > 0 bytes early makes the tail read
  `body[-k:] + suffix[:L-k]`, which has the suffix's `01` at k where it needs a `00`;
* a run of ten or more bytes with the high bit set (a varint longer than 64 bits, whose
  value is up to each C reader's undefined shifts; also some long non-ASCII strings);
* negative array / map block counts (valid Avro that cavro misreads: it raises);
* union branches out of range, negative ones included (fastavro would pick a branch from
  the end; cavro raises, the slow path then reads it as it always did).

On any refusal the codec runs its unchanged slow path (fastavro), which raises the exact
`DecodeError` and field it always raised, or reads what cavro could not. The fast path is
built only for writer schemas that are current (no schema resolution) and whose
constructs the finish supports (`UnsupportedSchema` otherwise).

The writer (`fast_writer`) is compiled the same way: it appends Avro bytes for a record in
the decoded shape with exact types and raises on anything else, and the codec's shaper
then validates (or refuses) it as before. Generated code is built from the schema only
(field names are repr-quoted, symbols live in constants), never from data.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import cavro

from streams.codecs.schemas import LoadedSchema, strip_timestamps
from streams.codecs.shape import (
    EPOCH,
    MAX_MILLIS,
    MIN_MILLIS,
    ONE_MILLI,
    PRIMITIVES,
    child_namespace,
    fullname,
    is_timestamp,
)

Finish = Callable[[Any], Any]

_OPTIONS = cavro.Options().replace(record_decodes_to_dict=True)
_HIGH_BIT = bytes.maketrans(bytes(range(256)), bytes(b >> 7 for b in range(256)))
_TEN_HIGH = b"\x01" * 10
_MIN_TAIL = 64
_FRAME = "nl.sendgate.fastpath.Frame"


class UnsupportedSchema(ValueError):
    """A schema construct the fast path does not handle: that schema takes the slow path."""


class Refused(Exception):
    """The fast path is not sure about this body; the slow path decides."""


def _refuse(millis: int) -> Any:
    raise Refused(f"timestamp-millis {millis} out of range")


# ------------------------------------------------------------------ checked cavro schema


def _checked(node: Any, namespace: str | None, enums: set[str]) -> Any:
    """`node` (timestamps already plain longs) with enums and ints as `long`, no defaults."""
    if isinstance(node, str):
        if node in PRIMITIVES:
            return "long" if node == "int" else node
        return "long" if fullname(node, namespace) in enums else node
    if isinstance(node, list):
        return [_checked(b, namespace, enums) for b in node]
    if not isinstance(node, Mapping):
        raise UnsupportedSchema(f"not a schema: {node!r}")
    if "logicalType" in node:
        raise UnsupportedSchema(f"logical type {node['logicalType']}")
    kind = node["type"]
    if kind == "enum":
        enums.add(fullname(str(node["name"]), namespace))
        return "long"
    if kind in ("record", "error"):
        inner = child_namespace(node, namespace)
        out = {"type": "record", "name": node["name"], "fields": [
            {"name": f["name"], "type": _checked(f["type"], inner, enums)}
            for f in node["fields"]
        ]}
        if "namespace" in node:
            out["namespace"] = node["namespace"]
        return out
    if kind == "array":
        return {"type": "array", "items": _checked(node["items"], namespace, enums)}
    if kind == "map":
        return {"type": "map", "values": _checked(node["values"], namespace, enums)}
    if kind == "fixed":
        return dict(node)
    return _checked(kind, namespace, enums)


# ------------------------------------------------------------------------ compiled finish


class _Walker:
    """Schema walk shared by the compilers: named types resolved to their definitions."""

    def __init__(self) -> None:
        self.named: dict[str, Mapping[str, Any]] = {}
        self.open: set[str] = set()

    def resolve(self, node: Any, namespace: str | None) -> tuple[Any, str | None]:
        """The definition behind a name or a `{"type": ...}` wrapper, and its namespace."""
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node, namespace
            name = fullname(node, namespace)
            if name in self.open:
                raise UnsupportedSchema(f"recursive type {name}")
            if name not in self.named:
                raise UnsupportedSchema(f"reference to undefined type {name}")
            definition = self.named[name]
            return definition, child_namespace(definition, None)
        if not isinstance(node, Mapping):
            return node, namespace
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            name = fullname(str(node["name"]), namespace)
            self.named.setdefault(name, {**node, "name": name})
        elif "logicalType" not in node and kind not in ("array", "map"):
            return self.resolve(kind, namespace)
        return node, namespace


class _FinishCompiler(_Walker):
    """Generates one straight-line Python function: nested records are finished in place
    (a loop for arrays of records), other values by one expression each."""

    def __init__(self) -> None:
        super().__init__()
        self.consts: dict[str, Any] = {
            "_EPOCH": EPOCH, "_TD": timedelta, "_refuse": _refuse,
            "_MIN": MIN_MILLIS, "_MAX": MAX_MILLIS,
        }
        self.enums = itertools.count()

    def holds_record(self, node: Any, namespace: str | None) -> bool:
        """Whether finishing `node` means finishing a record in place."""
        node, namespace = self.resolve(node, namespace)
        if isinstance(node, list):
            return any(self.holds_record(b, namespace) for b in node)
        if not isinstance(node, Mapping):
            return False
        kind = node["type"]
        if kind in ("record", "error"):
            return True
        if kind == "array":
            return self.holds_record(node["items"], namespace)
        if kind == "map":
            return self.holds_record(node["values"], namespace)
        return False

    def expr(self, node: Any, namespace: str | None, src: str, depth: int) -> str | None:
        """Expression giving the finished value of `src` (no record inside); None: as is."""
        node, namespace = self.resolve(node, namespace)
        if isinstance(node, str):
            return None
        if isinstance(node, list):
            exprs = [self.expr(b, namespace, src, depth) for b in node]
            active = [e for e in exprs if e is not None]
            if not active:
                return None
            if len(node) != 2 or "null" not in node:
                raise UnsupportedSchema("a union other than [null, T] whose values need finishing")
            return f"(None if {src} is None else {active[0]})"
        if is_timestamp(node):
            return (f"(_EPOCH + _TD(0, 0, 0, m) if _MIN <= (m := {src}) <= _MAX "
                    "else _refuse(m))")
        if "logicalType" in node:
            raise UnsupportedSchema(f"logical type {node['logicalType']}")
        kind = node["type"]
        if kind == "enum":
            const = node.get("_const")
            if const is None:
                const = f"_E{next(self.enums)}"
                self.consts[const] = dict(enumerate(node["symbols"]))
                self.named[fullname(str(node["name"]), namespace)] = {**node, "_const": const}
            return f"{const}[{src}]"
        var = f"x{depth}"
        if kind == "array":
            item = self.expr(node["items"], namespace, var, depth + 1)
            return None if item is None else f"[{item} for {var} in {src}]"
        if kind == "map":
            item = self.expr(node["values"], namespace, var, depth + 1)
            key = f"k{depth}"
            return None if item is None else f"{{{key}: {item} for {key}, {var} in {src}.items()}}"
        return None

    def stmts(self, node: Any, namespace: str | None, target: str, indent: int,
              depth: int) -> list[str]:
        """Statements finishing the value at `target` (an assignable expression)."""
        pad = "    " * indent
        if not self.holds_record(node, namespace):
            value = self.expr(node, namespace, target, depth)
            return [] if value is None else [f"{pad}{target} = {value}"]
        node, namespace = self.resolve(node, namespace)
        var = f"v{depth}"
        if isinstance(node, list):
            inner = [b for b in node if b != "null"]
            if len(node) != 2 or len(inner) != 1:
                raise UnsupportedSchema("a union other than [null, T] holding a record")
            body = self.stmts(inner[0], namespace, var, indent + 1, depth + 1)
            return [f"{pad}{var} = {target}", f"{pad}if {var} is not None:", *body]
        kind = node["type"]
        if kind == "array":
            body = self.stmts(node["items"], namespace, var, indent + 1, depth + 1)
            return [f"{pad}for {var} in {target}:", *body] if body else []
        if kind == "map":
            body = self.stmts(node["values"], namespace, var, indent + 1, depth + 1)
            return [f"{pad}for {var} in {target}.values():", *body] if body else []
        return self.record(node, namespace, target, indent, depth)

    def record(self, node: Mapping[str, Any], namespace: str | None, target: str, indent: int,
               depth: int) -> list[str]:
        name = fullname(str(node["name"]), namespace)
        self.open.add(name)
        inner = child_namespace(node, namespace)
        var = target if target.isidentifier() else f"v{depth}"
        body = []
        for f in node["fields"]:
            body += self.stmts(f["type"], inner, f"{var}[{str(f['name'])!r}]", indent, depth + 1)
        self.open.discard(name)
        if not body:
            return []
        return [f"{'    ' * indent}{var} = {target}", *body] if var != target else body

    def compile(self, schema: Mapping[str, Any]) -> Finish | None:
        body = self.record(schema, None, "v0", 1, 0)
        if not body:
            return None
        source = "\n".join(["def finish(v0):", *body, "    return v0"])
        namespace: dict[str, Any] = dict(self.consts)
        exec(source, namespace)
        finish: Finish = namespace["finish"]
        finish.__doc__ = source
        return finish


def compile_finish(schema: Mapping[str, Any]) -> Finish | None:
    """The finish of a self-contained schema (timestamps declared): None when nothing to do."""
    return _FinishCompiler().compile(schema)


# --------------------------------------------------------------------------- the reader


class FastReader:
    """Reads bodies written with one current schema; raises (anything) when unsure."""

    def __init__(self, loaded: LoadedSchema) -> None:
        self.name = loaded.fullname
        self.finish = compile_finish(loaded.schema)
        self.source = _checked(strip_timestamps(loaded.schema), None, set())
        self._frames: dict[int, tuple[Any, bytes]] = {}
        self._frame(_MIN_TAIL)  # fail at build time if cavro refuses the schema

    def _frame(self, tail: int) -> tuple[Any, bytes]:
        """cavro schema `record | tail (fixed)` and the tail to append (cached per size)."""
        known = self._frames.get(tail)
        if known is None:
            frame = {"type": "record", "name": _FRAME, "fields": [
                {"name": "body", "type": self.source},
                {"name": "tail", "type": {"type": "fixed", "name": "Tail", "size": tail}},
            ]}
            try:
                schema = cavro.Schema(json.dumps(frame), _OPTIONS)
            except Exception as exc:
                raise UnsupportedSchema(f"{self.name}: cavro refuses it: {exc}") from exc
            known = self._frames[tail] = (schema, b"\x01" + bytes(tail - 1))
        return known

    def read(self, data: bytes, offset: int) -> dict[str, Any]:
        """The decoded record of `data[offset:]`, as the slow path would return it."""
        if data.translate(_HIGH_BIT).find(_TEN_HIGH, offset) >= 0:
            raise Refused("a run of 10+ high-bit bytes")
        tail = max(_MIN_TAIL, 1 << (len(data) - offset).bit_length())
        schema, suffix = self._frames.get(tail) or self._frame(tail)
        frame = schema.binary_decode(data[offset:] + suffix)
        if frame["tail"] != suffix:
            raise Refused("bytes left after the record")
        record = frame["body"]
        if type(record) is not dict:
            raise Refused("not a record")
        return record if self.finish is None else self.finish(record)


def fast_reader(loaded: LoadedSchema) -> FastReader | None:
    """The fast reader of a current schema, or None when it must take the slow path."""
    try:
        return FastReader(loaded)
    except UnsupportedSchema:
        return None


# ------------------------------------------------------------------------- compiled writer

Write = Callable[[Any], bytes]

_SMALL_LONGS = tuple(bytes(((n << 1) ^ (n >> 63),)) for n in range(-64, 64))


def _long(n: int) -> bytes:
    """Avro long: zigzag varint (a timestamp-millis of this century takes six bytes)."""
    z = (n << 1) ^ (n >> 63)
    if z < 0x80:
        return _SMALL_LONGS[n + 64]
    if 0x800000000 <= z < 0x40000000000:
        return bytes((z & 0x7F | 0x80, z >> 7 & 0x7F | 0x80, z >> 14 & 0x7F | 0x80,
                      z >> 21 & 0x7F | 0x80, z >> 28 & 0x7F | 0x80, z >> 35))
    out = bytearray()
    while z > 0x7F:
        out.append(z & 0x7F | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


class _WriterCompiler(_Walker):
    """Generates one straight-line writer: each value is checked for the exact type the
    shaper would accept without conversion, then appended as Avro bytes. Anything else
    (a subclass, an RFC 3339 string, a missing or unknown field, a naive datetime, a
    value out of range) raises, and the shaper path handles it as it always did."""

    def __init__(self) -> None:
        super().__init__()
        self.consts: dict[str, Any] = {
            "_long": _long, "_refuse": _refuse_value, "_EPOCH": EPOCH, "_MS": ONE_MILLI,
            "_MIN": MIN_MILLIS, "_MAX": MAX_MILLIS, "datetime": datetime, "_S": _SMALL_LONGS,
        }
        self.ids = itertools.count()

    def value(self, node: Any, namespace: str | None, src: str, indent: int,
              depth: int) -> list[str]:
        """Statements appending the encoding of `src` (a plain name) to `out`."""
        node, namespace = self.resolve(node, namespace)
        pad = "    " * indent
        if isinstance(node, list):
            return self._nullable(node, namespace, src, indent, depth)
        if isinstance(node, str):
            return self._primitive(node, src, pad)
        if is_timestamp(node):
            return [
                f"{pad}if {src}.__class__ is not datetime or {src}.utcoffset() is None:",
                f"{pad}    _refuse({src})",
                f"{pad}m = ({src} - _EPOCH) // _MS",
                f"{pad}if not _MIN <= m <= _MAX:",
                f"{pad}    _refuse(m)",
                f"{pad}put(_long(m))",
            ]
        if "logicalType" in node:
            raise UnsupportedSchema(f"logical type {node['logicalType']}")
        kind = node["type"]
        if kind == "enum":
            const = f"_E{next(self.ids)}"
            self.consts[const] = {s: _long(i) for i, s in enumerate(node["symbols"])}
            return [f"{pad}put({const}[{src}])"]
        if kind in ("record", "error"):
            return self._record(node, namespace, src, indent, depth)
        if kind == "array":
            item = f"x{depth}"
            body = self.value(node["items"], namespace, item, indent + 2, depth + 1)
            return [
                f"{pad}if {src}.__class__ is not list and {src}.__class__ is not tuple:",
                f"{pad}    _refuse({src})",
                f"{pad}if {src}:",
                f"{pad}    n = len({src})",
                f"{pad}    put(_S[n + 64] if n < 64 else _long(n))",
                f"{pad}    for {item} in {src}:",
                *body,
                f"{pad}put(b'\\x00')",
            ]
        if kind in PRIMITIVES:
            return self._primitive(kind, src, pad)
        raise UnsupportedSchema(f"no fast writer for {kind}")

    def _primitive(self, kind: str, src: str, pad: str) -> list[str]:
        if kind == "string":
            return [
                f"{pad}if {src}.__class__ is not str:",
                f"{pad}    _refuse({src})",
                f"{pad}b = {src}.encode()",
                f"{pad}n = len(b)",
                f"{pad}put(_S[n + 64] if n < 64 else _long(n))",
                f"{pad}put(b)",
            ]
        if kind == "bytes":
            return [
                f"{pad}if {src}.__class__ is not bytes:",
                f"{pad}    _refuse({src})",
                f"{pad}put(_long(len({src})))",
                f"{pad}put({src})",
            ]
        if kind == "boolean":
            return [f"{pad}put(b'\\x01' if {src} is True else b'\\x00' if {src} is False "
                    f"else _refuse({src}))"]
        if kind in ("int", "long"):
            low, high = (-(2**31), 2**31 - 1) if kind == "int" else (-(2**63), 2**63 - 1)
            return [
                f"{pad}if {src}.__class__ is not int or not {low} <= {src} <= {high}:",
                f"{pad}    _refuse({src})",
                f"{pad}put(_long({src}))",
            ]
        if kind == "null":
            return [f"{pad}if {src} is not None:", f"{pad}    _refuse({src})"]
        raise UnsupportedSchema(f"no fast writer for {kind}")

    def _nullable(self, branches: list[Any], namespace: str | None, src: str, indent: int,
                  depth: int) -> list[str]:
        if len(branches) != 2 or "null" not in branches:
            raise UnsupportedSchema("a union other than [null, T]")
        pad = "    " * indent
        null = branches.index("null")
        body = self.value(branches[1 - null], namespace, src, indent + 1, depth)
        return [
            f"{pad}if {src} is None:",
            f"{pad}    put({_long(null)!r})",
            f"{pad}else:",
            f"{pad}    put({_long(1 - null)!r})",
            *body,
        ]

    def _record(self, node: Mapping[str, Any], namespace: str | None, src: str, indent: int,
                depth: int) -> list[str]:
        name = fullname(str(node["name"]), namespace)
        self.open.add(name)
        inner = child_namespace(node, namespace)
        pad = "    " * indent
        lines = [
            f"{pad}if {src}.__class__ is not dict or len({src}) != {len(node['fields'])}:",
            f"{pad}    _refuse({src})",
        ]
        for f in node["fields"]:
            var = f"f{depth}"
            lines.append(f"{pad}{var} = {src}[{str(f['name'])!r}]")
            lines += self.value(f["type"], inner, var, indent, depth + 1)
        self.open.discard(name)
        return lines

    def compile(self, schema: Mapping[str, Any]) -> Write:
        body = self.value(schema, None, "record", 1, 0)
        source = "\n".join(["def write(record):", "    out = []", "    put = out.append", *body,
                            "    return b''.join(out)"])
        namespace: dict[str, Any] = dict(self.consts)
        exec(source, namespace)
        write: Write = namespace["write"]
        write.__doc__ = source
        return write


def _refuse_value(value: Any) -> Any:
    raise Refused(f"not for the fast writer: {type(value).__name__}")


def fast_writer(loaded: LoadedSchema) -> Write | None:
    """A writer of `loaded`'s Avro body from the decoded shape (exact types, every field
    present), or None when the schema uses a construct it does not cover."""
    try:
        return _WriterCompiler().compile(loaded.schema)
    except UnsupportedSchema:
        return None
