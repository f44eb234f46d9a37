"""Every event of every scenario file survives Avro and comes back the same.

"The same" = each field as written in the file, and every absent field equal to its
schema default. Timestamps compare as instants: Avro timestamp-millis keeps the UTC
instant but not the original offset (`+01:00` comes back as UTC). The comparison is
driven by the .avsc JSON, independently of the codec's own default filling.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from streams.codecs.avro import AvroCodec
from streams.codecs.json import JsonCodec
from streams.codecs.schemas import load_schema_store
from streams.config import DEFAULT_SCENARIO_DIR
from streams.topics import RECORD_FOR_EVENT_TYPE

FILES = sorted(DEFAULT_SCENARIO_DIR.glob("T*.jsonl"))
STORE = load_schema_store()


def named_types(node: Any, out: dict[str, Any]) -> dict[str, Any]:
    """Every named type defined in an expanded schema, by short and full name."""
    if isinstance(node, list):
        for branch in node:
            named_types(branch, out)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "enum", "fixed"):
            out[node["name"]] = node
            out[f"{node.get('namespace', 'nl.sendgate.v1')}.{node['name']}"] = node
        for key in ("fields", "items", "values", "type"):
            value = node.get(key)
            if key == "fields" and value:
                for f in value:
                    named_types(f["type"], out)
            elif value is not None and not isinstance(value, str):
                named_types(value, out)
    return out


def same(schema: Any, written: Any, decoded: Any, path: str, names: dict[str, Any]) -> None:
    if isinstance(schema, str) and schema in names:
        schema = names[schema]
    if isinstance(schema, list):  # nullable
        if written is None:
            assert decoded is None, path
            return
        schema = next(b for b in schema if b != "null")
        same(schema, written, decoded, path, names)
        return
    if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
        instant = datetime.fromisoformat(written.replace("Z", "+00:00"))
        assert decoded == instant, path
        assert decoded.utcoffset().total_seconds() == 0, path
        return
    kind = schema.get("type") if isinstance(schema, dict) else schema
    if kind == "record":
        assert set(decoded) == {f["name"] for f in schema["fields"]}, path
        for f in schema["fields"]:
            name, where = f["name"], f"{path}.{f['name']}"
            if name in written:
                same(f["type"], written[name], decoded[name], where, names)
            else:
                assert "default" in f, f"{path}.{f['name']} absent but has no default"
                assert decoded[f["name"]] == f["default"], f"{path}.{f['name']}"
    elif kind == "array":
        assert len(decoded) == len(written), path
        for i, (w, d) in enumerate(zip(written, decoded, strict=True)):
            same(schema["items"], w, d, f"{path}[{i}]", names)
    elif isinstance(kind, dict | list) or (isinstance(kind, str) and kind in names):
        same(kind, written, decoded, path, names)
    else:
        assert decoded == written and type(decoded) is type(written), path


def lines(path: Path) -> list[dict[str, Any]]:
    events = []
    for text in path.read_text(encoding="utf-8").splitlines():
        if text.strip():
            event = json.loads(text)
            event.pop("expect", None)
            events.append(event)
    return events


def test_scenarios_are_there() -> None:
    if not DEFAULT_SCENARIO_DIR.is_dir():
        pytest.skip(f"{DEFAULT_SCENARIO_DIR} not available")
    assert len(FILES) == 110


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_line_roundtrips(path: Path) -> None:
    avro, as_json = AvroCodec(STORE), JsonCodec(STORE)
    for event in lines(path):
        record = RECORD_FOR_EVENT_TYPE[event["type"]]
        schema = STORE.get(record).schema
        name, decoded = avro.decode(avro.encode(record, event), record)
        assert name == record
        same(schema, event, decoded, f"{path.stem}:{event['event_id']}", named_types(schema, {}))
        # the JSON codec gives exactly the same decoded shape
        assert as_json.decode(as_json.encode(record, event), record) == (name, decoded)
