"""Strict Avro enum indexes: fail closed on forged bytes (issue 12 §1).

fastavro's readers index an enum's symbol list with the decoded int as Python does, so a
*negative* index (zigzag-encoded, e.g. `01` = -1) silently decodes as a symbol counted from
the end: a forged `channel` of -1 read as the last channel and could be approved. No Avro
writer produces such bytes. The codec therefore reads every enum as the plain `int` it is
on the wire (same binary encoding) and maps the index to its symbol here, refusing any
index outside `0 .. len(symbols) - 1` with `invalid_enum` and the dotted field path.

With an older writer schema the symbol must also exist in the reader's enum of the same
name (or the reader enum has a `default`, Avro schema resolution), checked here too, so
that rejection names its field as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.codecs.shape import PRIMITIVES, child_namespace, fullname
from streams.core.errors import DecodeError, Rejection

Mapper = Callable[[Any], Any]
"""Maps a decoded value with enum indexes to the same value with enum symbols."""


class _BadIndex(Exception):
    """Raised inside the mapper; parents prepend their path segment on the way up."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []


class UnsupportedSchema(ValueError):
    """A union the int rewrite would make ambiguous (e.g. two enums in one union)."""


@dataclass(frozen=True, slots=True)
class EnumPlan:
    """A writer schema with enums as `int`, and the mapper back to symbols."""

    schema: Any  # JSON schema (dict) to parse with fastavro
    mapper: Mapper | None  # None: the schema has no enum

    def apply(self, record: Any) -> Any:
        """Enum indexes to symbols; DecodeError(INVALID_ENUM, field=path) when forged."""
        if self.mapper is None:
            return record
        try:
            return self.mapper(record)
        except _BadIndex as exc:
            raise DecodeError(Rejection.INVALID_ENUM, exc.message, _dotted(exc.path)) from None


def _dotted(parts: list[str]) -> str:
    out = ""
    for part in parts:
        out += part if part.startswith("[") or not out else "." + part
    return out


def compile_enum_plan(
    writer: Mapping[str, Any], reader: Mapping[str, Any] | None = None
) -> EnumPlan:
    """Rewrite `writer` (self-contained, timestamps already plain longs) with enums as int.

    `reader`, when the writer is an older schema, supplies per enum full name the symbols
    the reader accepts and its default.
    """
    reader_enums: dict[str, tuple[frozenset[str], str | None]] = {}
    if reader is not None:
        _collect_enums(reader, None, reader_enums)
    compiler = _Compiler(reader_enums if reader is not None else None)
    schema, mapper = compiler.compile(writer, None)
    return EnumPlan(schema, mapper)


def _collect_enums(
    node: Any, namespace: str | None, out: dict[str, tuple[frozenset[str], str | None]]
) -> None:
    if isinstance(node, list):
        for branch in node:
            _collect_enums(branch, namespace, out)
        return
    if not isinstance(node, Mapping):
        return
    kind = node.get("type")
    if kind == "enum":
        default = node.get("default")
        out[fullname(str(node["name"]), namespace)] = (
            frozenset(node["symbols"]), default if isinstance(default, str) else None,
        )
    elif kind in ("record", "error"):
        inner = child_namespace(node, namespace)
        for f in node["fields"]:
            _collect_enums(f["type"], inner, out)
    elif kind == "array":
        _collect_enums(node["items"], namespace, out)
    elif kind == "map":
        _collect_enums(node["values"], namespace, out)
    elif isinstance(kind, list | Mapping):
        _collect_enums(kind, namespace, out)


class _Compiler:
    def __init__(
        self, reader_enums: dict[str, tuple[frozenset[str], str | None]] | None
    ) -> None:
        self.reader_enums = reader_enums
        self.named: dict[str, Mapper | None] = {}
        self.enum_names: set[str] = set()
        self.cells: dict[str, list[Mapper | None]] = {}

    def compile(self, node: Any, namespace: str | None) -> tuple[Any, Mapper | None]:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node, None
            name = fullname(node, namespace)
            if name in self.enum_names:
                return "int", self.named[name]
            cell = self.cells.get(name)
            if cell is None:
                return node, None  # fixed or unknown: nothing to map
            return node, (lambda value: cell[0](value) if cell[0] is not None else value)
        if isinstance(node, list):
            return self._union(node, namespace)
        kind = node.get("type")
        if kind == "enum":
            return self._enum(node, namespace)
        if kind in ("record", "error"):
            return self._record(node, namespace)
        if kind == "array":
            items, mapper = self.compile(node["items"], namespace)
            return {**node, "items": items}, _array(mapper)
        if kind == "map":
            values, mapper = self.compile(node["values"], namespace)
            return {**node, "values": values}, _map(mapper)
        if isinstance(kind, list | Mapping):
            inner, mapper = self.compile(kind, namespace)
            return {**node, "type": inner}, mapper
        return node, None

    def _enum(self, node: Mapping[str, Any], namespace: str | None) -> tuple[Any, Mapper]:
        name = fullname(str(node["name"]), namespace)
        symbols: tuple[str, ...] = tuple(node["symbols"])
        accepted: frozenset[str] | None = None
        default: str | None = None
        if self.reader_enums is not None:
            accepted, default = self.reader_enums.get(name, (frozenset(symbols), None))
        mapper = _enum_mapper(name.rsplit(".", 1)[-1], symbols, accepted, default)
        self.enum_names.add(name)
        self.named[name] = mapper
        return "int", mapper

    def _record(self, node: Mapping[str, Any], namespace: str | None) -> tuple[Any, Mapper | None]:
        name = fullname(str(node["name"]), namespace)
        cell: list[Mapper | None] = [None]
        self.cells[name] = cell  # recursive references resolve through the cell
        inner = child_namespace(node, namespace)
        fields: list[dict[str, Any]] = []
        mapped: list[tuple[str, Mapper]] = []
        for f in node["fields"]:
            ftype, mapper = self.compile(f["type"], inner)
            field = {**f, "type": ftype}
            if mapper is not None:
                mapped.append((str(f["name"]), mapper))
                if isinstance(field.get("default"), str) and ftype == "int":
                    del field["default"]  # a symbol default no longer fits the int
            fields.append(field)
        out: dict[str, Any] = {**node, "fields": fields}
        if "." not in str(node["name"]) and namespace and "namespace" not in node:
            out["namespace"] = namespace
        record_mapper = _record(tuple(mapped)) if mapped else None
        cell[0] = record_mapper
        return out, record_mapper

    def _union(self, branches: list[Any], namespace: str | None) -> tuple[Any, Mapper | None]:
        compiled = [self.compile(b, namespace) for b in branches]
        types = [c[0] for c in compiled]
        mappers = [c[1] for c in compiled if c[1] is not None]
        if not mappers:
            return types, None
        if len(mappers) > 1 or types.count("int") > 1:
            raise UnsupportedSchema("a union with more than one enum or record with enums")
        only = mappers[0]
        return types, (lambda value: None if value is None else only(value))


def _enum_mapper(
    name: str, symbols: tuple[str, ...], accepted: frozenset[str] | None, default: str | None
) -> Mapper:
    count = len(symbols)

    def mapper(value: Any) -> Any:
        if isinstance(value, str):  # a reader default filled in by schema resolution
            return value
        if not 0 <= value < count:
            raise _BadIndex(f"{name} symbol index {value} out of range 0..{count - 1}")
        symbol = symbols[value]
        if accepted is not None and symbol not in accepted:
            if default is not None:
                return default
            raise _BadIndex(f"{name} symbol {symbol!r} is not known to this reader")
        return symbol

    return mapper


def _record(fields: tuple[tuple[str, Mapper], ...]) -> Mapper:
    def mapper(value: Any) -> Any:
        for name, inner in fields:
            try:
                value[name] = inner(value[name])
            except _BadIndex as exc:
                exc.path.insert(0, name)
                raise
        return value

    return mapper


def _array(inner: Mapper | None) -> Mapper | None:
    if inner is None:
        return None

    def mapper(value: Any) -> Any:
        for i, item in enumerate(value):
            try:
                value[i] = inner(item)
            except _BadIndex as exc:
                exc.path.insert(0, f"[{i}]")
                raise
        return value

    return mapper


def _map(inner: Mapper | None) -> Mapper | None:
    if inner is None:
        return None

    def mapper(value: Any) -> Any:
        for k, item in value.items():
            try:
                value[k] = inner(item)
            except _BadIndex as exc:
                exc.path.insert(0, f"[{k!r}]")
                raise
        return value

    return mapper

