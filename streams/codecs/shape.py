"""Schema-driven conversion between the JSON shape of the contract and the Avro shapes.

Two compiled walkers per record schema, built once and cached by the schema store:

* a *shaper* validates a record in either shape (JSON: RFC 3339 strings, absent defaults;
  or decoded: aware datetimes, every field present) and returns it with every field
  present, defaults filled, enums as plain `str`, and timestamps as Avro `long` millis
  (`Target.WIRE`, fed to fastavro) or as UTC datetimes (`Target.DECODED`, what the JSON
  codec returns). Errors name the reason and the dotted field path, e.g.
  `missing_field: contacts[0].contact.value: required field is missing`.
* a *post-processor* turns the raw millis fastavro returns (the codec strips the
  timestamp logical type from the schemas it hands to fastavro) into UTC datetimes,
  refusing instants before 1970 or after 9999 (`Rejection.BAD_TIMESTAMP`). It only walks
  the paths that hold timestamps, so decoding stays cheap.

Timestamps travel as Avro `timestamp-millis`: the UTC instant survives, the original
offset (e.g. `+01:00`) and sub-millisecond digits do not.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from streams.core.errors import DecodeError, RejectedRecord, Rejection

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MILLI = timedelta(milliseconds=1)
MIN_MILLIS = 0  # 1970-01-01T00:00:00Z: nothing in the contract happened before
MAX_MILLIS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the end of `datetime`
TIMESTAMP_MILLIS = "timestamp-millis"

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_TYPES = frozenset({"record", "error", "enum", "fixed"})

_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
)

ErrorFactory = Callable[[Rejection, str, str], RejectedRecord]
Shaper = Callable[[Any, str], Any]
PostProcessor = Callable[[Any], Any]


class Target(Enum):
    WIRE = "wire"  # timestamps as int millis, ready for fastavro
    DECODED = "decoded"  # timestamps as aware UTC datetimes, the decoded shape


class SchemaShapeError(ValueError):
    """A schema uses a construct the walkers do not support (a bug in schemas/, not data)."""


def fullname(name: str, namespace: str | None) -> str:
    """Avro full name of `name` written inside `namespace`."""
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def child_namespace(node: Mapping[str, Any], namespace: str | None) -> str | None:
    """Namespace in force inside the named type `node`."""
    name = str(node["name"])
    if "." in name:
        return name.rsplit(".", 1)[0]
    ns = node.get("namespace")
    return str(ns) if ns is not None else namespace


def is_timestamp(node: Any) -> bool:
    return (
        isinstance(node, Mapping)
        and node.get("type") == "long"
        and node.get("logicalType") == TIMESTAMP_MILLIS
    )


def millis_to_datetime(millis: int, field: str = "") -> datetime:
    """Avro timestamp-millis -> aware UTC datetime, refusing insane instants."""
    if not MIN_MILLIS <= millis <= MAX_MILLIS:
        raise _timestamp_error(millis, field)
    return EPOCH + timedelta(milliseconds=millis)


def _timestamp_error(millis: int, field: str) -> RejectedRecord:
    return DecodeError(
        Rejection.BAD_TIMESTAMP,
        f"timestamp-millis {millis} is outside 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z",
        field,
    )


def parse_rfc3339(text: str) -> datetime:
    """RFC 3339 with a mandatory offset (contract §1) -> aware datetime; ValueError if not."""
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp with offset: {text!r}")
    base, frac, offset = m.groups()
    frac = (frac or "")[:7]  # datetime keeps microseconds; further digits are dropped
    return datetime.fromisoformat(base + frac + ("+00:00" if offset == "Z" else offset))


def format_rfc3339(moment: datetime) -> str:
    """UTC datetime -> RFC 3339 with `Z`, milliseconds only when present."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# ----------------------------------------------------------------------------- shaper


class _ShaperCompiler:
    def __init__(self, target: Target, error: ErrorFactory, accept_base64: bool) -> None:
        self.target = target
        self.error = error
        self.accept_base64 = accept_base64
        self.named: dict[str, Shaper] = {}

    def compile(self, node: Any, namespace: str | None) -> Shaper:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return self._primitive(node)
            name = fullname(node, namespace)
            if name not in self.named:
                raise SchemaShapeError(f"reference to undefined type {name}")
            named = self.named

            def shape_reference(value: Any, path: str) -> Any:
                return named[name](value, path)

            return shape_reference
        if isinstance(node, list):
            return self._union(node, namespace)
        if not isinstance(node, Mapping):
            raise SchemaShapeError(f"not a schema: {node!r}")
        kind = node["type"]
        if is_timestamp(node):
            return self._timestamp()
        if kind in ("record", "error"):
            return self._record(node, namespace)
        if kind == "enum":
            return self._enum(node, namespace)
        if kind == "fixed":
            return self._fixed(node, namespace)
        if kind == "array":
            return self._array(self.compile(node["items"], namespace))
        if kind == "map":
            return self._map(self.compile(node["values"], namespace))
        return self.compile(kind, namespace)

    def _primitive(self, kind: str) -> Shaper:
        error = self.error
        if kind == "null":

            def shape_null(value: Any, path: str) -> Any:
                if value is not None:
                    raise error(Rejection.INVALID_VALUE, "expected null", path)
                return None

            return shape_null
        if kind == "boolean":

            def shape_bool(value: Any, path: str) -> Any:
                if not isinstance(value, bool):
                    raise error(
                        Rejection.INVALID_VALUE,
                        f"expected true/false, got {type(value).__name__}",
                        path,
                    )
                return value

            return shape_bool
        if kind in _INT_RANGE:
            low, high = _INT_RANGE[kind]

            def shape_int(value: Any, path: str) -> Any:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise error(
                        Rejection.INVALID_VALUE,
                        f"expected an integer, got {type(value).__name__}",
                        path,
                    )
                if not low <= value <= high:
                    raise error(Rejection.INVALID_VALUE, f"{value} out of {kind} range", path)
                return int(value)

            return shape_int
        if kind in ("float", "double"):

            def shape_float(value: Any, path: str) -> Any:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise error(
                        Rejection.INVALID_VALUE,
                        f"expected a number, got {type(value).__name__}",
                        path,
                    )
                return float(value)

            return shape_float
        if kind == "string":

            def shape_string(value: Any, path: str) -> Any:
                if not isinstance(value, str):
                    raise error(
                        Rejection.INVALID_VALUE,
                        f"expected a string, got {type(value).__name__}",
                        path,
                    )
                return str(value) if type(value) is not str else value

            return shape_string
        if kind == "bytes":
            accept_base64 = self.accept_base64

            def shape_bytes(value: Any, path: str) -> Any:
                if isinstance(value, bytes | bytearray | memoryview):
                    return bytes(value)
                if accept_base64 and isinstance(value, str):
                    try:
                        return base64.b64decode(value, validate=True)
                    except (binascii.Error, ValueError) as exc:
                        raise error(Rejection.INVALID_VALUE, "not valid base64", path) from exc
                raise error(
                    Rejection.INVALID_VALUE, f"expected bytes, got {type(value).__name__}", path
                )

            return shape_bytes
        raise SchemaShapeError(f"unknown primitive {kind}")

    def _timestamp(self) -> Shaper:
        error = self.error
        as_millis = self.target is Target.WIRE

        def shape_timestamp(value: Any, path: str) -> Any:
            if isinstance(value, str):
                try:
                    moment = parse_rfc3339(value)
                except ValueError as exc:
                    raise error(Rejection.BAD_TIMESTAMP, str(exc), path) from exc
            elif isinstance(value, datetime):
                if value.tzinfo is None or value.utcoffset() is None:
                    raise error(
                        Rejection.BAD_TIMESTAMP,
                        "naive datetime: timestamps need an offset (contract §1)",
                        path,
                    )
                moment = value
            else:
                raise error(
                    Rejection.INVALID_VALUE,
                    "expected an RFC 3339 string or an aware datetime, "
                    f"got {type(value).__name__}",
                    path,
                )
            millis = (moment - EPOCH) // ONE_MILLI
            if not MIN_MILLIS <= millis <= MAX_MILLIS:
                raise error(
                    Rejection.BAD_TIMESTAMP, f"{value!s} is before 1970 or after 9999", path
                )
            return millis if as_millis else EPOCH + timedelta(milliseconds=millis)

        return shape_timestamp

    def _record(self, node: Mapping[str, Any], namespace: str | None) -> Shaper:
        name = fullname(str(node["name"]), namespace)
        inner_ns = child_namespace(node, namespace)
        error = self.error
        fields: list[tuple[str, Shaper, bool, Any]] = []
        names = frozenset(str(f["name"]) for f in node["fields"])

        def shape_record(value: Any, path: str) -> Any:
            if not isinstance(value, Mapping):
                raise error(
                    Rejection.INVALID_VALUE,
                    f"expected an object ({name}), got {type(value).__name__}",
                    path,
                )
            for key in value:
                if key not in names:
                    raise error(
                        Rejection.UNKNOWN_FIELD,
                        f"unknown field (not in {name})",
                        _join(path, str(key)),
                    )
            out: dict[str, Any] = {}
            for field_name, shaper, has_default, default in fields:
                field_path = _join(path, field_name)
                if field_name in value:
                    out[field_name] = shaper(value[field_name], field_path)
                elif has_default:
                    out[field_name] = shaper(default, field_path)
                else:
                    raise error(Rejection.MISSING_FIELD, "required field is missing", field_path)
            return out

        # register before compiling the fields so a recursive reference resolves
        self.named[name] = shape_record
        for f in node["fields"]:
            has_default = "default" in f
            if has_default and _holds_bytes_default(f["type"], f["default"]):
                raise SchemaShapeError(f"{name}.{f['name']}: non-null bytes defaults unsupported")
            fields.append(
                (str(f["name"]), self.compile(f["type"], inner_ns), has_default, f.get("default"))
            )
        return shape_record

    def _enum(self, node: Mapping[str, Any], namespace: str | None) -> Shaper:
        name = fullname(str(node["name"]), namespace)
        symbols = frozenset(str(s) for s in node["symbols"])
        listed = ", ".join(list(node["symbols"])[:12])
        more = ", ..." if len(symbols) > 12 else ""
        error = self.error

        def shape_enum(value: Any, path: str) -> Any:
            if not isinstance(value, str) or value not in symbols:
                raise error(
                    Rejection.INVALID_ENUM,
                    f"{value!r} is not a {name.rsplit('.', 1)[-1]} ({listed}{more})",
                    path,
                )
            return str(value) if type(value) is not str else value

        self.named[name] = shape_enum
        return shape_enum

    def _fixed(self, node: Mapping[str, Any], namespace: str | None) -> Shaper:
        name = fullname(str(node["name"]), namespace)
        size = int(node["size"])
        as_bytes = self._primitive("bytes")
        error = self.error

        def shape_fixed(value: Any, path: str) -> Any:
            raw = as_bytes(value, path)
            if len(raw) != size:
                raise error(Rejection.INVALID_VALUE, f"expected {size} bytes", path)
            return raw

        self.named[name] = shape_fixed
        return shape_fixed

    def _array(self, item: Shaper) -> Shaper:
        error = self.error

        def shape_array(value: Any, path: str) -> Any:
            if not isinstance(value, list | tuple):
                raise error(
                    Rejection.INVALID_VALUE, f"expected a list, got {type(value).__name__}", path
                )
            return [item(x, f"{path}[{i}]") for i, x in enumerate(value)]

        return shape_array

    def _map(self, item: Shaper) -> Shaper:
        error = self.error

        def shape_map(value: Any, path: str) -> Any:
            if not isinstance(value, Mapping):
                raise error(
                    Rejection.INVALID_VALUE, f"expected an object, got {type(value).__name__}", path
                )
            out: dict[str, Any] = {}
            for k, x in value.items():
                if not isinstance(k, str):
                    raise error(Rejection.INVALID_VALUE, "map keys must be strings", path)
                out[k] = item(x, _join(path, k))
            return out

        return shape_map

    def _union(self, branches: list[Any], namespace: str | None) -> Shaper:
        non_null = [b for b in branches if b != "null"]
        nullable = len(non_null) < len(branches)
        if len(non_null) == 1:
            inner = self.compile(non_null[0], namespace)

            def shape_nullable(value: Any, path: str) -> Any:
                return None if value is None else inner(value, path)

            return shape_nullable if nullable else inner
        compiled = [self.compile(b, namespace) for b in non_null]
        error = self.error

        def shape_union(value: Any, path: str) -> Any:
            if value is None and nullable:
                return None
            last: RejectedRecord | None = None
            for shaper in compiled:
                try:
                    return shaper(value, path)
                except RejectedRecord as exc:
                    last = exc
            raise error(
                last.reason if last else Rejection.INVALID_VALUE,
                f"matches no branch of the union: {last.message if last else ''}",
                path,
            )

        return shape_union


def _holds_bytes_default(node: Any, default: Any) -> bool:
    first = node[0] if isinstance(node, list) and node else node
    return first == "bytes" and default is not None


def compile_shaper(
    schema: Mapping[str, Any],
    target: Target,
    error: ErrorFactory,
    *,
    accept_base64: bool = False,
) -> Shaper:
    """Compile the shaper of one self-contained record schema."""
    return _ShaperCompiler(target, error, accept_base64).compile(schema, None)


# ----------------------------------------------------------------------- post-processor


def compile_postprocessor(schema: Mapping[str, Any]) -> PostProcessor | None:
    """Compile the timestamp post-processor of a self-contained schema (None: nothing to do)."""
    return _PostCompiler().compile(schema, None, "")


class _PostCompiler:
    def __init__(self) -> None:
        self.named: dict[str, PostProcessor | None] = {}
        self.in_progress: set[str] = set()

    def compile(self, node: Any, namespace: str | None, path: str) -> PostProcessor | None:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return None
            name = fullname(node, namespace)
            if name in self.in_progress:
                raise SchemaShapeError(f"recursive record {name} is not supported")
            return self.named.get(name)
        if isinstance(node, list):
            return self._union(node, namespace, path)
        if is_timestamp(node):

            def post_timestamp(value: Any) -> Any:
                return millis_to_datetime(value, path)

            return post_timestamp
        kind = node["type"]
        if kind in ("record", "error"):
            return self._record(node, namespace, path)
        if kind in ("enum", "fixed"):
            self.named[fullname(str(node["name"]), namespace)] = None
            return None
        if kind == "array":
            item = self.compile(node["items"], namespace, f"{path}[]")
            if item is None:
                return None
            array_item = item

            def post_array(value: Any) -> Any:
                return [array_item(x) for x in value]

            return post_array
        if kind == "map":
            item = self.compile(node["values"], namespace, f"{path}{{}}")
            if item is None:
                return None
            map_item = item

            def post_map(value: Any) -> Any:
                return {k: map_item(x) for k, x in value.items()}

            return post_map
        return self.compile(kind, namespace, path)

    def _record(
        self, node: Mapping[str, Any], namespace: str | None, path: str
    ) -> PostProcessor | None:
        name = fullname(str(node["name"]), namespace)
        inner_ns = child_namespace(node, namespace)
        self.in_progress.add(name)
        todo: list[tuple[str, PostProcessor]] = []
        for f in node["fields"]:
            post = self.compile(f["type"], inner_ns, _join(path, str(f["name"])))
            if post is not None:
                todo.append((str(f["name"]), post))
        self.in_progress.discard(name)
        if not todo:
            self.named[name] = None
            return None
        fields = tuple(todo)

        def post_record(value: Any) -> Any:
            for field_name, post in fields:
                value[field_name] = post(value[field_name])
            return value

        self.named[name] = post_record
        return post_record

    def _union(
        self, branches: list[Any], namespace: str | None, path: str
    ) -> PostProcessor | None:
        posts = [self.compile(b, namespace, path) for b in branches]
        active = [(b, p) for b, p in zip(branches, posts, strict=True) if p is not None]
        if not active:
            return None
        non_null = [b for b in branches if b != "null"]
        if len(non_null) != 1:
            raise SchemaShapeError(
                f"{path}: unions of several types holding timestamps are not supported"
            )
        inner = active[0][1]

        def post_nullable(value: Any) -> Any:
            return None if value is None else inner(value)

        return post_nullable
