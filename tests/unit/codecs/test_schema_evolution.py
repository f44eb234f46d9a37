"""A reader with a newer schema reads records written with the old one.

Single-object encoding: the reader finds the *writer* schema by the fingerprint in the
header (the old version kept in schemas/history/) and fastavro resolves it to the reader
schema, filling the added field's default.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from streams.codecs.avro import AvroCodec, ConfluentAvroCodec
from streams.codecs.schemas import HISTORY_DIR_NAME, SchemaStore
from streams.config import SCHEMA_DIR
from streams.core.errors import DecodeError, Rejection

ADDED = {"name": "loyalty_tier", "type": ["null", "string"], "default": None,
         "doc": "added in the test's v2"}


def evolved_schema_dir(tmp_path: Path, *, keep_history: bool) -> Path:
    """schemas/ with Order v2 (one optional field more) and, optionally, v1 in history/."""
    target = tmp_path / "schemas"
    target.mkdir()
    for p in SCHEMA_DIR.glob("*.avsc"):
        shutil.copy(p, target / p.name)
    if keep_history:
        (target / HISTORY_DIR_NAME).mkdir()
        v1 = SchemaStore.load(SCHEMA_DIR).expanded("Order")
        (target / HISTORY_DIR_NAME / "Order.v1.avsc").write_text(json.dumps(v1, indent=2))
    v2 = json.loads((target / "Order.avsc").read_text())
    v2["fields"].append(ADDED)
    (target / "Order.avsc").write_text(json.dumps(v2, indent=2))
    return target


def test_new_reader_reads_old_records(
    tmp_path: Path, avro: AvroCodec, order: dict[str, Any]
) -> None:
    old_bytes = avro.encode("Order", order)
    new_store = SchemaStore.load(evolved_schema_dir(tmp_path, keep_history=True))
    new_codec = AvroCodec(new_store)
    assert new_store.get("Order").fingerprint != avro.store.get("Order").fingerprint

    name, record = new_codec.decode(old_bytes, "Order")
    _, as_written = avro.decode(old_bytes, "Order")
    assert name == "Order"
    assert record == {**as_written, "loyalty_tier": None}

    # and the new writer's records carry the new fingerprint and the new field
    order["loyalty_tier"] = "gold"
    new_bytes = new_codec.encode("Order", order)
    assert new_bytes[2:10] == new_store.get("Order").fingerprint
    assert new_codec.decode(new_bytes, "Order")[1]["loyalty_tier"] == "gold"


def test_old_records_need_the_old_schema_in_history(
    tmp_path: Path, avro: AvroCodec, order: dict[str, Any]
) -> None:
    old_bytes = avro.encode("Order", order)
    new_codec = AvroCodec(SchemaStore.load(evolved_schema_dir(tmp_path, keep_history=False)))
    with pytest.raises(DecodeError) as info:
        new_codec.decode(old_bytes, "Order")
    assert info.value.reason is Rejection.UNKNOWN_FINGERPRINT


def test_confluent_new_reader_reads_old_records(
    tmp_path: Path, store: SchemaStore, order: dict[str, Any]
) -> None:
    old_writer = ConfluentAvroCodec("mock://evolution", store=store)
    old_bytes = old_writer.encode("Order", order, topic="orders")
    # the writer schema comes from the registry by id: no history/ needed
    new_reader = ConfluentAvroCodec(
        client=old_writer.client,
        store=SchemaStore.load(evolved_schema_dir(tmp_path, keep_history=False)),
    )
    name, record = new_reader.decode(old_bytes, "Order")
    assert name == "Order"
    assert record["loyalty_tier"] is None
    assert record["order_id"] == order["order_id"]
