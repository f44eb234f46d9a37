"""schemas/asyncapi.yaml describes exactly the catalogue and references every schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from streams import topics as T
from streams.config import SCHEMA_DIR

ASYNCAPI = SCHEMA_DIR / "asyncapi.yaml"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    return loaded


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    assert ref.startswith("#/"), ref
    target: Any = doc
    for part in ref[2:].split("/"):
        target = target[part]
    return resolve(doc, target)


def schema_refs(node: Any) -> set[str]:
    """Every `$ref` to an .avsc file anywhere in the document."""
    if isinstance(node, dict):
        refs = {node["$ref"]} if str(node.get("$ref", "")).endswith(".avsc") else set()
        for value in node.values():
            refs |= schema_refs(value)
        return refs
    if isinstance(node, list):
        return set().union(*(schema_refs(v) for v in node)) if node else set()
    return set()


def test_version(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"].startswith("3.")


def test_channels_are_the_catalogue(doc: dict[str, Any]) -> None:
    addresses = {c["address"]: c for c in doc["channels"].values()}
    assert set(addresses) == {t.name for t in T.CATALOGUE}
    for spec in T.CATALOGUE:
        kafka = addresses[spec.name]["bindings"]["kafka"]
        assert kafka["topic"] == spec.name
        assert kafka["partitions"] == spec.partitions
        cfg = kafka["topicConfiguration"]
        assert cfg["cleanup.policy"] == [str(spec.cleanup_policy)]
        assert cfg["retention.ms"] == spec.retention_ms
        assert cfg.get("max.message.bytes") == spec.max_message_bytes


def test_channel_messages_carry_the_catalogue_schemas(doc: dict[str, Any]) -> None:
    addresses = {c["address"]: c for c in doc["channels"].values()}
    for spec in T.CATALOGUE:
        messages = [resolve(doc, m) for m in addresses[spec.name]["messages"].values()]
        payloads = {m["payload"]["schema"]["$ref"] for m in messages}
        assert payloads == {f"./{r}.avsc" for r in spec.value_schemas}, spec.name
        for m in messages:
            assert "avro" in m["payload"]["schemaFormat"]
            assert m["bindings"]["kafka"]["key"]["description"]


def test_every_schema_file_is_named(doc: dict[str, Any]) -> None:
    files = {f"./{p.name}" for p in SCHEMA_DIR.glob("*.avsc")}
    assert files, "no schemas found"
    assert schema_refs(doc) == files
    for ref in files:
        assert (SCHEMA_DIR / Path(ref).name).is_file()


def test_operations_point_at_channels(doc: dict[str, Any]) -> None:
    used = set()
    for op in doc["operations"].values():
        assert op["action"] in ("send", "receive")
        used.add(resolve(doc, op["channel"])["address"])
    assert used == {t.name for t in T.CATALOGUE}
