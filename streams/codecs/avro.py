"""Avro wire format of every sendgate topic.

Default framing is Avro *single-object encoding* (spec 1.8+): `C3 01`, the 8-byte
little-endian CRC-64-AVRO fingerprint of the writer schema's canonical form, then the
binary body. Readers find the writer schema by fingerprint in `schemas/` (plus
`schemas/history/`) and resolve it to the current schema of the same name, so no registry
is needed. With `SENDGATE_SCHEMA_REGISTRY_URL` set, `ConfluentAvroCodec` writes the
Confluent framing instead (`00` + 4-byte big-endian schema id), registering schemas under
`<topic>-value`, and still reads single-object records (so a migration can be rolling).

Every decode failure raises `DecodeError` with one `Rejection` reason:

=====================  ==============================================================
truncated              empty, shorter than the header, or the body ends early
bad_magic              neither `C3 01` nor (with a registry) `00`
unknown_fingerprint    no known schema has this fingerprint (Confluent: schema id)
schema_mismatch        a known record, but not one `expected` on this topic; or a writer
                       schema that cannot be resolved to the reader schema
invalid_enum           enum symbol index out of range, or a symbol the reader lacks
missing_field          the reader schema has a field without default that the writer
                       schema does not have (schema resolution)
invalid_value          other malformed bodies: bad UTF-8, negative length, a union
                       branch out of range, bytes left over after the record
bad_timestamp          a timestamp-millis before 1970 or after 9999
oversize               payload over the limit (1 MiB; 2 MiB for DeadLetter), checked
                       before anything is decoded
=====================  ==============================================================

Enums are read as their wire `int` and mapped to symbols by `avro_enums` (fastavro would
read a forged *negative* index as a symbol counted from the end): any index out of range
is `invalid_enum` with the field path. Known limitation: a negative *union* branch index
still selects a branch counted from the end (fastavro); the value read is then of a
declared type and still passes the contract validation of that field.

Fast path (issues 15 §8, 16 §4; `fast=True`, the default): bodies written with a current
schema are read by cavro and a compiled finish (`streams.codecs.fast`), records in the
decoded shape are written by a compiled writer; whatever either is unsure of goes the
way described above, which gives every answer (record, bytes or error) the codec gave
before. Older writer schemas (`schemas/history/`, registry ids) always go that way.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError

from streams.codecs.avro_enums import EnumPlan, UnsupportedSchema, compile_enum_plan
from streams.codecs.base import (
    CONTENT_TYPE_AVRO_CONFLUENT,
    CONTENT_TYPE_AVRO_SINGLE_OBJECT,
    DEAD_LETTER_MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_BYTES,
    EncodeError,
    Expected,
    expected_names,
    short_name,
)
from streams.codecs.fast import FastReader, Write, fast_reader, fast_writer
from streams.codecs.schemas import (
    LoadedSchema,
    SchemaStore,
    build,
    load_schema_store,
    strip_timestamps,
)
from streams.codecs.shape import PostProcessor, Shaper, Target, compile_shaper
from streams.core.errors import DecodeError, RejectedRecord, Rejection

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
SINGLE_OBJECT_HEADER_BYTES = 10
CONFLUENT_MAGIC = 0x00
CONFLUENT_HEADER_BYTES = 5

_NO_DEFAULT = re.compile(r"No default value for field (\S+)")


@dataclass(frozen=True, slots=True)
class _ReadPlan:
    """How to read a body written with one writer schema (cached per fingerprint / id)."""

    name: str
    fullname: str
    writer: Any  # fastavro parsed writer schema (timestamps as long)
    reader: Any | None  # fastavro parsed reader schema, None when writer is current
    postprocess: PostProcessor | None
    checked: Any  # fastavro parsed writer schema with enums as int (`avro_enums`)
    enums: EnumPlan  # maps those ints back to symbols, refusing forged indexes
    fast: FastReader | None  # cavro + compiled finish (current writer schemas only)


def _encode_error(reason: Rejection, message: str, field: str) -> RejectedRecord:
    return EncodeError(reason, message, field)


class AvroCodec:
    """Avro with single-object encoding; schemas by fingerprint from `schemas/`."""

    name = "avro"
    content_type = CONTENT_TYPE_AVRO_SINGLE_OBJECT

    def __init__(
        self,
        store: SchemaStore | None = None,
        *,
        max_payload: int = MAX_PAYLOAD_BYTES,
        payload_limits: Mapping[str, int] | None = None,
        fast: bool = True,
    ) -> None:
        self.store = store if store is not None else load_schema_store()
        self.fast = fast
        self.max_payload = max_payload
        self.payload_limits: dict[str, int] = {
            "DeadLetter": max(DEAD_LETTER_MAX_PAYLOAD_BYTES, max_payload),
            **(payload_limits or {}),
        }
        self._shapers: dict[str, Shaper] = {}
        self._writers: dict[str, Write | None] = {}
        self._plans: dict[bytes, _ReadPlan] = {}
        self._expectations: dict[Any, tuple[frozenset[str] | None, int]] = {}

    # ------------------------------------------------------------------ encode

    def encode(
        self, record_name: str, obj: Mapping[str, Any], *, topic: str | None = None
    ) -> bytes:
        """Validate against the current schema of `record_name`; frame as single object."""
        loaded = self.schema(record_name)
        body = self.encode_body(loaded, obj)
        data = self._frame(loaded, body, topic)
        limit = self.limit_for(loaded.name)
        if len(data) > limit:
            raise EncodeError(
                Rejection.OVERSIZE, f"{loaded.name} is {len(data)} bytes > limit {limit}"
            )
        return data

    def schema(self, record_name: str) -> LoadedSchema:
        """Current schema by short or full name; EncodeError for an unknown record."""
        try:
            return self.store.get(record_name)
        except KeyError:
            raise EncodeError(
                Rejection.SCHEMA_MISMATCH,
                f"unknown record {record_name!r}; known: {', '.join(self.store.names)}",
            ) from None

    def encode_body(self, loaded: LoadedSchema, obj: Mapping[str, Any]) -> bytes:
        """The bare Avro binary body (no framing) of a validated record.

        A record in the decoded shape with exact types (what the gate builds from a
        `Decision`) goes through the compiled writer of `fast`; anything it refuses
        through the shaper and fastavro, which name the error."""
        if self.fast:
            try:
                write = self._writers[loaded.name]
            except KeyError:
                write = self._writers[loaded.name] = fast_writer(loaded)
            if write is not None:
                with contextlib.suppress(Exception):  # refused: the shaper names the error
                    return write(obj)
        shaper = self._shapers.get(loaded.name)
        if shaper is None:
            shaper = compile_shaper(loaded.schema, Target.WIRE, _encode_error)
            self._shapers[loaded.name] = shaper
        datum = shaper(obj, "")
        buf = io.BytesIO()
        try:
            fastavro.schemaless_writer(buf, loaded.wire, datum)
        except Exception as exc:  # the shaper validated already; this is a safety net
            raise EncodeError(Rejection.INVALID_VALUE, f"fastavro refused it: {exc}") from exc
        return buf.getvalue()

    def _frame(self, loaded: LoadedSchema, body: bytes, topic: str | None) -> bytes:
        return SINGLE_OBJECT_MAGIC + loaded.fingerprint + body

    def limit_for(self, record_name: str) -> int:
        return self.payload_limits.get(record_name, self.max_payload)

    # ------------------------------------------------------------------ decode

    def decode(self, data: bytes, expected: Expected = None) -> tuple[str, dict[str, Any]]:
        """Decode one framed record; `expected` = the record name(s) this topic carries."""
        if not data:
            raise DecodeError(Rejection.TRUNCATED, "no value (empty record or tombstone)")
        names, limit = self._expectation(expected)
        if len(data) > limit:
            raise DecodeError(Rejection.OVERSIZE, f"{len(data)} bytes > limit {limit}")
        plan, offset = self._plan_for(data)
        if names is not None and plan.name not in names and plan.fullname not in names:
            raise DecodeError(
                Rejection.SCHEMA_MISMATCH,
                f"record {plan.name} where {' or '.join(sorted(names))} is expected",
            )
        return plan.name, self._read(plan, data, offset)

    def _expectation(self, expected: Expected) -> tuple[frozenset[str] | None, int]:
        """Accepted names and the payload limit for them (cached for hashable `expected`)."""
        try:
            return self._expectations[expected]
        except (KeyError, TypeError):  # TypeError: a list, not hashable
            pass
        names = expected_names(expected)
        limit = (
            max(self.limit_for(short_name(n)) for n in names) if names else self.max_payload
        )
        with contextlib.suppress(TypeError):  # a list or set: fine, just not cached
            self._expectations[expected] = (names, limit)
        return names, limit

    def _plan_for(self, data: bytes) -> tuple[_ReadPlan, int]:
        return self._single_object_plan(data), SINGLE_OBJECT_HEADER_BYTES

    def _single_object_plan(self, data: bytes) -> _ReadPlan:
        if len(data) < 2:
            raise DecodeError(Rejection.TRUNCATED, f"{len(data)} bytes: no header")
        if data[:2] != SINGLE_OBJECT_MAGIC:
            hint = (
                " (Confluent framing: set SENDGATE_SCHEMA_REGISTRY_URL to read it)"
                if data[0] == CONFLUENT_MAGIC
                else ""
            )
            raise DecodeError(
                Rejection.BAD_MAGIC,
                f"starts with {bytes(data[:2]).hex()}, not Avro single-object c301{hint}",
            )
        if len(data) < SINGLE_OBJECT_HEADER_BYTES:
            raise DecodeError(Rejection.TRUNCATED, f"{len(data)} bytes: header cut short")
        fingerprint = bytes(data[2:SINGLE_OBJECT_HEADER_BYTES])
        plan = self._plans.get(fingerprint)
        if plan is None:
            writer = self.store.by_fingerprint(fingerprint)
            if writer is None:
                raise DecodeError(
                    Rejection.UNKNOWN_FINGERPRINT,
                    f"no schema with fingerprint {fingerprint.hex()} in schemas/",
                )
            plan = self._plans[fingerprint] = self.plan(writer)
        return plan

    def plan(self, writer: LoadedSchema) -> _ReadPlan:
        """Read plan for a writer schema: resolved to the current schema of its name."""
        reader = self.store.reader_for(writer)
        same = reader.fingerprint == writer.fingerprint
        source = reader if same else writer
        try:
            enums = compile_enum_plan(
                strip_timestamps(source.schema),
                None if same else strip_timestamps(reader.schema),
            )
            checked = fastavro.parse_schema(enums.schema) if enums.mapper else source.wire
        except (UnsupportedSchema, ValueError) as exc:
            raise DecodeError(
                Rejection.SCHEMA_MISMATCH, f"{source.name}: enums cannot be checked: {exc}"
            ) from exc
        return _ReadPlan(
            name=reader.name,
            fullname=reader.fullname,
            writer=source.wire,
            reader=None if same else reader.wire,
            postprocess=reader.postprocess,
            checked=checked,
            enums=enums,
            fast=fast_reader(reader) if same and self.fast else None,
        )

    def _read(self, plan: _ReadPlan, data: bytes, offset: int) -> dict[str, Any]:
        if plan.fast is not None:
            with contextlib.suppress(Exception):  # unsure: fastavro reads it or names the error
                return plan.fast.read(data, offset)
        if plan.enums.mapper is None:
            record = self._body(plan, plan.writer, plan.reader, data, offset)
        else:
            record = plan.enums.apply(self._body(plan, plan.checked, None, data, offset))
            if plan.reader is not None:  # indexes checked; now resolve to the reader
                record = self._body(plan, plan.writer, plan.reader, data, offset)
        if not isinstance(record, dict):
            raise DecodeError(Rejection.SCHEMA_MISMATCH, f"{plan.name} is not a record")
        decoded: dict[str, Any] = (
            record if plan.postprocess is None else plan.postprocess(record)
        )
        return decoded

    def _body(
        self, plan: _ReadPlan, writer: Any, reader: Any | None, data: bytes, offset: int
    ) -> Any:
        buf = io.BytesIO(data)
        buf.seek(offset)
        try:
            record: Any = fastavro.schemaless_reader(buf, writer, reader)
        except EOFError as exc:
            if "Expected -" in str(exc):
                raise DecodeError(Rejection.INVALID_VALUE, "negative length") from exc
            raise DecodeError(Rejection.TRUNCATED, f"body ends early: {exc}") from exc
        except IndexError as exc:
            reason, message = _classify_index_error(plan, data[offset:])
            raise DecodeError(reason, message) from exc
        except UnicodeDecodeError as exc:
            raise DecodeError(Rejection.INVALID_VALUE, f"string is not UTF-8: {exc}") from exc
        except SchemaResolutionError as exc:
            raise _resolution_error(plan, exc) from exc
        except (ValueError, TypeError, OverflowError, MemoryError) as exc:
            raise DecodeError(Rejection.INVALID_VALUE, f"{type(exc).__name__}: {exc}") from exc
        left = len(data) - buf.tell()
        if left:
            raise DecodeError(Rejection.INVALID_VALUE, f"{left} bytes left after the record")
        return record


def _resolution_error(plan: _ReadPlan, exc: SchemaResolutionError) -> DecodeError:
    text = str(exc)
    missing = _NO_DEFAULT.search(text)
    if missing:
        return DecodeError(
            Rejection.MISSING_FIELD,
            f"writer schema lacks a field the {plan.name} reader needs (no default)",
            missing.group(1),
        )
    if "not found in reader symbol list" in text:
        return DecodeError(Rejection.INVALID_ENUM, text)
    return DecodeError(Rejection.SCHEMA_MISMATCH, f"writer schema does not resolve: {text}")


def _classify_index_error(plan: _ReadPlan, body: bytes) -> tuple[Rejection, str]:
    """Enum or union index out of range? Re-read with fastavro's pure-Python reader to see."""
    try:
        from fastavro import _read_py

        _read_py.schemaless_reader(io.BytesIO(body), plan.writer, plan.reader)
    except IndexError as exc:
        tb = exc.__traceback__
        where = ""
        while tb is not None:
            if tb.tb_frame.f_code.co_name in ("read_enum", "read_union"):
                where = tb.tb_frame.f_code.co_name
            tb = tb.tb_next
        if where == "read_union":
            return Rejection.INVALID_VALUE, "union branch index out of range"
        if where == "read_enum":
            return Rejection.INVALID_ENUM, "enum symbol index out of range"
    except EOFError:
        # the C reader reports a read past the end of a cut body as an IndexError
        return Rejection.TRUNCATED, "body ends early"
    except Exception:  # best-effort classification only: fall through
        pass
    return Rejection.INVALID_ENUM, "enum symbol (or union branch) index out of range"


def _registry_client_class() -> Any:
    """confluent_kafka's SchemaRegistryClient, imported without authlib's import-time
    deprecation warning (authlib forces its own warnings to "always", so import that
    first, then silence it for the duration of the import)."""
    with warnings.catch_warnings():
        with contextlib.suppress(ImportError):
            importlib.import_module("authlib.deprecate")
        warnings.simplefilter("ignore", DeprecationWarning)
        from confluent_kafka.schema_registry import SchemaRegistryClient
    return SchemaRegistryClient


class SchemaRegistryUnavailable(RuntimeError):
    """The schema registry could not be asked: not the record's fault, do not dead-letter."""


class ConfluentAvroCodec(AvroCodec):
    """Avro with Confluent framing and a schema registry (`mock://...` works for tests)."""

    name = "avro-confluent"
    content_type = CONTENT_TYPE_AVRO_CONFLUENT

    def __init__(
        self,
        registry_url: str | None = None,
        *,
        client: Any = None,
        store: SchemaStore | None = None,
        auto_register: bool = True,
        max_payload: int = MAX_PAYLOAD_BYTES,
        payload_limits: Mapping[str, int] | None = None,
        fast: bool = True,
    ) -> None:
        super().__init__(
            store, max_payload=max_payload, payload_limits=payload_limits, fast=fast
        )
        if client is None:
            if not registry_url:
                raise ValueError("ConfluentAvroCodec needs a registry_url or a client")
            client = _registry_client_class().new_client({"url": registry_url})
        self.client = client
        self.auto_register = auto_register
        self._ids: dict[tuple[str, bytes], int] = {}
        self._plans_by_id: dict[int, _ReadPlan] = {}

    @staticmethod
    def subject_for(loaded: LoadedSchema, topic: str | None) -> str:
        """TopicNameStrategy `<topic>-value`, as README promises for every topic (inputs,
        outputs, dead letters). Without a topic there is no right subject, so encoding
        refuses instead of registering under the record name (issue 12 §5)."""
        if not topic:
            raise ValueError(
                f"encoding {loaded.name} with a schema registry needs the topic it is "
                "produced to (subject <topic>-value): pass topic=..."
            )
        return f"{topic}-value"

    def schema_id(self, loaded: LoadedSchema, topic: str | None) -> int:
        """Registered id of a schema under its subject (registered once, then cached)."""
        subject = self.subject_for(loaded, topic)
        cached = self._ids.get((subject, loaded.fingerprint))
        if cached is not None:
            return cached
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        schema = Schema(loaded.to_json(), "AVRO")
        try:
            if self.auto_register:
                schema_id = int(self.client.register_schema(subject, schema))
            else:
                schema_id = int(self.client.lookup_schema(subject, schema).schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code in (404, 409, 422):
                raise EncodeError(
                    Rejection.SCHEMA_MISMATCH,
                    f"registry refused {loaded.name} under {subject}: {exc}",
                ) from exc
            raise SchemaRegistryUnavailable(str(exc)) from exc
        except Exception as exc:  # network errors come in many types
            raise SchemaRegistryUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self._ids[(subject, loaded.fingerprint)] = schema_id
        return schema_id

    def _frame(self, loaded: LoadedSchema, body: bytes, topic: str | None) -> bytes:
        schema_id = self.schema_id(loaded, topic)
        return bytes((CONFLUENT_MAGIC,)) + schema_id.to_bytes(4, "big") + body

    def _plan_for(self, data: bytes) -> tuple[_ReadPlan, int]:
        if len(data) >= 1 and data[0] == CONFLUENT_MAGIC:
            if len(data) < CONFLUENT_HEADER_BYTES:
                raise DecodeError(Rejection.TRUNCATED, f"{len(data)} bytes: header cut short")
            schema_id = int.from_bytes(data[1:CONFLUENT_HEADER_BYTES], "big")
            plan = self._plans_by_id.get(schema_id)
            if plan is None:
                plan = self._plans_by_id[schema_id] = self._plan_for_id(schema_id)
            return plan, CONFLUENT_HEADER_BYTES
        if len(data) >= 1 and data[0] != SINGLE_OBJECT_MAGIC[0]:
            raise DecodeError(
                Rejection.BAD_MAGIC,
                f"starts with {bytes(data[:1]).hex()}: neither Confluent 00 nor single-object c301",
            )
        return super()._plan_for(data)

    def _plan_for_id(self, schema_id: int) -> _ReadPlan:
        import json

        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            registered = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise DecodeError(
                    Rejection.UNKNOWN_FINGERPRINT, f"schema id {schema_id} is not registered"
                ) from exc
            raise SchemaRegistryUnavailable(str(exc)) from exc
        except Exception as exc:
            raise SchemaRegistryUnavailable(f"{type(exc).__name__}: {exc}") from exc
        try:
            writer = build(json.loads(registered.schema_str))
        except Exception as exc:
            raise DecodeError(
                Rejection.SCHEMA_MISMATCH, f"schema id {schema_id} is not a usable record: {exc}"
            ) from exc
        known = self.store.by_fingerprint(writer.fingerprint)
        if known is None and writer.fullname not in self.store:
            raise DecodeError(
                Rejection.SCHEMA_MISMATCH,
                f"schema id {schema_id} is {writer.fullname}, not a sendgate record",
            )
        return self.plan(known or writer)
