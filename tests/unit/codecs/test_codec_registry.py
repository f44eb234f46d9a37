"""get_codec picks the wire format from the settings; codecs are shared per process."""

from __future__ import annotations

import dataclasses

import pytest

from streams.codecs import registry
from streams.codecs.avro import AvroCodec, ConfluentAvroCodec
from streams.codecs.json import JsonCodec
from streams.config import Settings


def settings(url: str | None = None) -> Settings:
    return dataclasses.replace(Settings.from_env(), schema_registry_url=url)


def test_default_is_single_object_avro() -> None:
    codec = registry.get_codec(settings())
    assert type(codec) is AvroCodec
    assert registry.get_codec(settings()) is codec  # shared: schemas parsed once


def test_registry_url_selects_confluent_framing() -> None:
    codec = registry.get_codec(settings("mock://registry-test"))
    assert isinstance(codec, ConfluentAvroCodec)


def test_env_is_read_when_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDGATE_SCHEMA_REGISTRY_URL", "mock://from-env")
    assert isinstance(registry.get_codec(), ConfluentAvroCodec)
    monkeypatch.delenv("SENDGATE_SCHEMA_REGISTRY_URL")
    assert type(registry.get_codec()) is AvroCodec


def test_by_name() -> None:
    assert isinstance(registry.codec_by_name("json", settings()), JsonCodec)
    assert set(registry.available_codecs()) >= {"avro", "avro-confluent", "json"}
    with pytest.raises(ValueError, match="unknown codec"):
        registry.codec_by_name("protobuf", settings())
    with pytest.raises(ValueError, match="needs SENDGATE_SCHEMA_REGISTRY_URL"):
        registry.codec_by_name("avro-confluent", settings())


def test_register_refuses_silent_override() -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.register_codec("json", lambda s: JsonCodec())
