"""The one place that builds a dead-letter record (fail closed, lose nothing; issue 12 §2).

A rejected input goes to `sendgate.dead-letter` whole, so that it can be inspected and
re-published. What this module adds to the rejection, and why:

* **Key**: the HMAC contact key of the contact the record's key names, or none. Never the
  raw `tenant|type|address` input key: the dead-letter topic is read by operators and
  tools that have no business seeing addresses in keys, and keyed by contact key the dead
  letters of one person can be found (access and erasure requests, R-DSR-1/2) without a
  full scan of raw values. A key that already is a contact key (the gate step's records
  on the internal topic) is kept.
* **Field**: every reason names the field it is about. Reasons about the whole record
  (`truncated`, `bad_magic`, `oversize`, ...) name `value`, a wrong key names `key`.
* **Hint**: bytes that are not Avro at all but JSON or text were almost certainly
  published by hand; the message says how to publish them (the schema, the SDK).
* **Message**: never the contact value; a value the key names is masked should a
  validator have quoted it.

The value keeps `original_key` and `original_value` as received: they are the record. The
dead-letter topic therefore holds raw addresses and is bounded by its retention (README,
Privacy).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from streams import topics as T
from streams.core.enums import ContactType
from streams.core.errors import RejectedRecord, Rejection
from streams.core.keys import contact_key
from streams.core.model import ContactPoint
from streams.gate.records import Headers, OutRecord

H_REASON = "sg-reason"
H_FIELD = "sg-field"
H_SOURCE = "sg-source"
MAX_MESSAGE_CHARS = 2000

# The field a reason is about when the rejection itself names none.
_WHOLE_RECORD_FIELD: dict[Rejection, str] = {
    Rejection.WRONG_KEY: "key",
    Rejection.WRONG_TOPIC: "topic",
}
_NOT_AVRO = frozenset({Rejection.BAD_MAGIC, Rejection.TRUNCATED, Rejection.UNKNOWN_FINGERPRINT})
_CONTACT_KEY = re.compile(rb"[0-9a-f]{64}")
_TYPES = tuple(str(t) for t in ContactType)


class Encoder(Protocol):
    """The part of a codec a dead letter needs (`streams.codecs.base.Codec`)."""

    def encode(
        self, record_name: str, obj: dict[str, Any], *, topic: str | None = None
    ) -> bytes: ...


def dead_letter_record(
    codec: Encoder,
    secret: bytes,
    *,
    dead_letter_topic: str,
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    rejection: RejectedRecord,
    detected_at: datetime,
) -> OutRecord:
    """The dead-letter record of one rejected record (see the module docstring)."""
    named = _contact_named_by(key)
    field = rejection.field or _WHOLE_RECORD_FIELD.get(rejection.reason, "value")
    message = rejection.message
    if rejection.reason in _NOT_AVRO:
        message += _hint(value or b"", source_topic)
    if named is not None and named[2]:
        message = _mask(message, named[2])
    record = {
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "reason": rejection.reason.value,
        "field": field,
        "message": message[:MAX_MESSAGE_CHARS],
        "original_key": key,
        "original_value": value or b"",
        "headers": {k: v for k, v in headers},
        "detected_at": detected_at,
    }
    out_headers: Headers = [
        (H_REASON, rejection.reason.value.encode()),
        (H_FIELD, field.encode()),
        (H_SOURCE, f"{source_topic}:{partition}:{offset}".encode()),
    ]
    return OutRecord(
        topic=dead_letter_topic,
        key=_dead_letter_key(secret, key, named),
        value=codec.encode(T.DEAD_LETTER_RECORD, record, topic=dead_letter_topic),
        headers=out_headers,
    )


def _contact_named_by(key: bytes | None) -> tuple[str, str, str] | None:
    """(tenant, type, value) of an input key `tenant|type|value`, when it reads as one."""
    if not key or _CONTACT_KEY.fullmatch(key):
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    found = [
        (text[:i], kind, text[i + len(kind) + 2:])
        for kind in _TYPES
        for i in _positions(text, f"|{kind}|")
    ]
    return found[0] if len(found) == 1 and found[0][0] else None


def _positions(text: str, needle: str) -> list[int]:
    out: list[int] = []
    i = text.find(needle)
    while i >= 0:
        out.append(i)
        i = text.find(needle, i + 1)
    return out


def _dead_letter_key(
    secret: bytes, key: bytes | None, named: tuple[str, str, str] | None
) -> bytes | None:
    if key is not None and _CONTACT_KEY.fullmatch(key):
        return key  # already a contact key (a record of the internal topic)
    if named is None:
        return None
    tenant, kind, value = named
    try:
        return contact_key(secret, tenant, ContactPoint(ContactType(kind), value)).encode()
    except (RejectedRecord, ValueError):  # not a normalisable contact: no key at all
        return None


def _mask(message: str, value: str) -> str:
    return re.sub(re.escape(value), "<contact>", message, flags=re.IGNORECASE)


def _hint(value: bytes, source_topic: str) -> str:
    """How to publish correctly, when the bytes are plainly not Avro."""
    head = value.lstrip()[:1]
    if head in (b"{", b"["):
        what = "JSON"
    elif value and _is_text(value):
        what = "text"
    else:
        return ""
    record = next(
        (r for name, r in T.INPUT_RECORDS.items() if source_topic.endswith(name)), None
    )
    schema = f"schemas/{record}.avsc" if record else "its schema in schemas/"
    return (
        f" — the value looks like {what}, not Avro: publish with the Avro schema "
        f"({schema}), e.g. through the producer SDK (streams.client.SendgateProducer), "
        "which validates, encodes, keys and frames the record"
    )


def _is_text(value: bytes) -> bool:
    try:  # incremental: a character cut at the 4 KiB mark is not an error
        text = codecs.getincrementaldecoder("utf-8")().decode(value[:4096], final=False)
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\r\n" for c in text)
