"""Load `schemas/*.avsc` into self-contained record schemas with stable fingerprints.

Shared named types (ContactPoint, Channel, ReasonCode, ...) live in their own files and
are referenced by name. Loading *expands* each file: the first use of a named type is
replaced by its definition, later uses stay references, walking depth-first in field
order. The result is a self-contained schema, which is what the Parsing Canonical Form,
the CRC-64-AVRO fingerprint of single-object encoding and a schema registry all need,
and it does not depend on the order in which files are read: the fingerprint changes
exactly when the record (or a type it uses) changes.

`schemas/history/*.avsc` may hold earlier, already self-contained versions of a record:
they are known *writer* schemas (decodable by fingerprint), resolved to the current
schema of the same full name. When a schema evolves, copy the old expanded form there
(`SchemaStore.expanded(name)`) so records written before the change stay readable.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from streams.codecs.base import short_name
from streams.codecs.shape import (
    NAMED_TYPES,
    PRIMITIVES,
    PostProcessor,
    child_namespace,
    compile_postprocessor,
    fullname,
    is_timestamp,
)
from streams.config import SCHEMA_DIR

HISTORY_DIR_NAME = "history"

_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Rabin CRC-64-AVRO fingerprint of the Avro specification."""
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


def fingerprint_of(canonical_form: str) -> bytes:
    """8-byte little-endian CRC-64-AVRO, as written in a single-object header."""
    return crc64_avro(canonical_form.encode("utf-8")).to_bytes(8, "little")


class SchemaLoadError(ValueError):
    """A schema file is malformed or references an unknown type."""


@dataclass(frozen=True, eq=False)
class LoadedSchema:
    """One self-contained record schema, parsed once, with everything a codec needs."""

    name: str  # short name, e.g. "Order"
    fullname: str  # e.g. "nl.sendgate.v1.Order"
    schema: dict[str, Any]  # self-contained JSON (shared types inlined at first use)
    canonical_form: str  # Parsing Canonical Form
    fingerprint: bytes  # CRC-64-AVRO, 8 bytes little-endian
    parsed: Any  # fastavro parsed schema, as declared (logical types kept)
    wire: Any  # fastavro parsed schema with timestamp-millis as plain long
    postprocess: PostProcessor | None  # raw millis -> UTC datetimes (None: no timestamps)
    source: Path | None

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    def to_json(self) -> str:
        """The self-contained schema as compact JSON (what a registry stores)."""
        return json.dumps(self.schema, separators=(",", ":"), ensure_ascii=False)


def expand(
    node: Any,
    index: Mapping[str, Any],
    *,
    namespace: str | None = None,
    defined: set[str] | None = None,
) -> Any:
    """Inline named types from `index` (full name -> schema) at their first use."""
    seen = defined if defined is not None else set()
    if isinstance(node, str):
        if node in PRIMITIVES:
            return node
        name = fullname(node, namespace)
        if name in seen:
            return name
        if name not in index:
            raise SchemaLoadError(f"unknown type {name!r}")
        return expand(copy.deepcopy(index[name]), index, namespace=namespace, defined=seen)
    if isinstance(node, list):
        return [expand(b, index, namespace=namespace, defined=seen) for b in node]
    if not isinstance(node, Mapping) or "type" not in node:
        raise SchemaLoadError(f"not a schema: {node!r}")
    out = dict(node)
    kind = node["type"]
    if kind in NAMED_TYPES:
        name = fullname(str(node["name"]), namespace)
        if name in seen:
            raise SchemaLoadError(f"type {name} is defined twice")
        seen.add(name)
        if "." not in str(node["name"]) and namespace and "namespace" not in node:
            out["namespace"] = namespace  # keep the expansion valid wherever it lands
        inner = child_namespace(node, namespace)
        if kind in ("record", "error"):
            out["fields"] = [
                {**f, "type": expand(f["type"], index, namespace=inner, defined=seen)}
                for f in node["fields"]
            ]
    elif kind == "array":
        out["items"] = expand(node["items"], index, namespace=namespace, defined=seen)
    elif kind == "map":
        out["values"] = expand(node["values"], index, namespace=namespace, defined=seen)
    elif not (isinstance(kind, str) and kind in PRIMITIVES):
        out["type"] = expand(kind, index, namespace=namespace, defined=seen)
    return out


def strip_timestamps(node: Any) -> Any:
    """Copy of a schema with timestamp-millis as plain long (the codec converts itself)."""
    if isinstance(node, list):
        return [strip_timestamps(b) for b in node]
    if not isinstance(node, Mapping):
        return node
    if is_timestamp(node):
        return "long"
    out = dict(node)
    if "fields" in node:
        out["fields"] = [{**f, "type": strip_timestamps(f["type"])} for f in node["fields"]]
    for key in ("items", "values"):
        if key in node:
            out[key] = strip_timestamps(node[key])
    if isinstance(node.get("type"), list | Mapping):
        out["type"] = strip_timestamps(node["type"])
    return out


def build(schema: Mapping[str, Any], source: Path | None = None) -> LoadedSchema:
    """Parse a self-contained schema once and precompute what encoding/decoding needs."""
    if schema.get("type") not in NAMED_TYPES:
        raise SchemaLoadError(f"{source or 'schema'}: top level must be a named type")
    schema_dict = dict(schema)
    full = fullname(str(schema_dict["name"]), schema_dict.get("namespace"))
    try:
        parsed = fastavro.parse_schema(copy.deepcopy(schema_dict))
        wire = fastavro.parse_schema(strip_timestamps(schema_dict))
    except Exception as exc:  # fastavro raises several types for bad schemas
        raise SchemaLoadError(f"{source or full}: {exc}") from exc
    canonical = to_parsing_canonical_form(parsed)
    return LoadedSchema(
        name=short_name(full),
        fullname=full,
        schema=schema_dict,
        canonical_form=canonical,
        fingerprint=fingerprint_of(canonical),
        parsed=parsed,
        wire=wire,
        postprocess=compile_postprocessor(schema_dict),
        source=source,
    )


class SchemaStore:
    """Current reader schemas by name, and every known writer schema by fingerprint."""

    def __init__(
        self, current: Iterable[LoadedSchema], history: Iterable[LoadedSchema] = ()
    ) -> None:
        self._by_name: dict[str, LoadedSchema] = {}
        self._by_fingerprint: dict[bytes, LoadedSchema] = {}
        self._lock = threading.Lock()
        for loaded in current:
            if loaded.name in self._by_name:
                raise SchemaLoadError(f"two schemas named {loaded.name}")
            self._by_name[loaded.name] = loaded
            self._by_name[loaded.fullname] = loaded
            self._by_fingerprint[loaded.fingerprint] = loaded
        for old in history:
            self.add_writer(old)

    @classmethod
    def load(cls, directory: Path = SCHEMA_DIR) -> SchemaStore:
        """Read `directory/*.avsc` (current) and `directory/history/*.avsc` (old writers)."""
        raw: dict[str, tuple[Path, dict[str, Any]]] = {}
        for path in sorted(directory.glob("*.avsc")):
            try:
                node = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise SchemaLoadError(f"{path}: {exc}") from exc
            if not isinstance(node, dict) or node.get("type") not in NAMED_TYPES:
                raise SchemaLoadError(f"{path}: top level must be a named type")
            name = fullname(str(node["name"]), node.get("namespace"))
            if name in raw:
                raise SchemaLoadError(f"{path}: {name} already defined in {raw[name][0]}")
            raw[name] = (path, node)
        index = {name: node for name, (_, node) in raw.items()}
        current = [build(expand(node, index), path) for path, node in raw.values()]
        history_dir = directory / HISTORY_DIR_NAME
        history = [
            build(json.loads(p.read_text(encoding="utf-8")), p)
            for p in sorted(history_dir.glob("*.avsc"))
        ] if history_dir.is_dir() else []
        return cls(current, history)

    def add_writer(self, schema: LoadedSchema | Mapping[str, Any]) -> LoadedSchema:
        """Make an older (self-contained) version of a record decodable by fingerprint."""
        loaded = schema if isinstance(schema, LoadedSchema) else build(schema)
        with self._lock:
            self._by_fingerprint.setdefault(loaded.fingerprint, loaded)
        return self._by_fingerprint[loaded.fingerprint]

    def get(self, name: str) -> LoadedSchema:
        """Current schema by short or full name; KeyError if unknown."""
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def by_fingerprint(self, fingerprint: bytes) -> LoadedSchema | None:
        return self._by_fingerprint.get(fingerprint)

    def reader_for(self, writer: LoadedSchema) -> LoadedSchema:
        """The current schema a writer schema resolves to (itself when it is current)."""
        return self._by_name.get(writer.fullname, writer)

    @property
    def names(self) -> tuple[str, ...]:
        """Short names of the current schemas, sorted."""
        return tuple(sorted({s.name for s in self._by_name.values()}))

    def expanded(self, name: str) -> dict[str, Any]:
        """The self-contained form of a current schema (copy it to history/ before a change)."""
        return copy.deepcopy(self.get(name).schema)


@cache
def load_schema_store(directory: Path = SCHEMA_DIR) -> SchemaStore:
    """The process-wide store for `directory`: schemas are parsed once, never per record."""
    return SchemaStore.load(directory)
