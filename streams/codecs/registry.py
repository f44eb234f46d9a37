"""Codec registry by name, in the spirit of `faust.serializers.codecs`.

`get_codec(settings)` is what the stream job and the SDK call: Avro single-object
encoding by default, Confluent framing when `SENDGATE_SCHEMA_REGISTRY_URL` is set.
Instances are cached per (name, registry URL): schemas are parsed once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from streams.codecs.base import Codec
from streams.config import Settings

CodecFactory = Callable[[Settings], Codec]

AVRO = "avro"
AVRO_CONFLUENT = "avro-confluent"
JSON = "json"

_factories: dict[str, CodecFactory] = {}
_instances: dict[tuple[str, str | None], Codec] = {}
_lock = threading.Lock()


def register_codec(name: str, factory: CodecFactory, *, replace: bool = False) -> None:
    """Make a codec available by name; `replace` to override a built-in one."""
    with _lock:
        if name in _factories and not replace:
            raise ValueError(f"codec {name!r} is already registered")
        _factories[name] = factory
        for key in [k for k in _instances if k[0] == name]:
            del _instances[key]


def available_codecs() -> tuple[str, ...]:
    return tuple(sorted(_factories))


def codec_by_name(name: str, settings: Settings | None = None) -> Codec:
    """The shared instance of a named codec for these settings."""
    s = settings if settings is not None else Settings.from_env()
    key = (name, s.schema_registry_url)
    with _lock:
        codec = _instances.get(key)
        if codec is not None:
            return codec
        try:
            factory = _factories[name]
        except KeyError:
            raise ValueError(
                f"unknown codec {name!r}; available: {', '.join(sorted(_factories))}"
            ) from None
        codec = _instances[key] = factory(s)
        return codec


def default_codec_name(settings: Settings) -> str:
    return AVRO_CONFLUENT if settings.schema_registry_url else AVRO


def get_codec(settings: Settings | None = None) -> Codec:
    """The wire codec of the Kafka topics for these settings (default: from the env)."""
    s = settings if settings is not None else Settings.from_env()
    return codec_by_name(default_codec_name(s), s)


def _avro(settings: Settings) -> Codec:
    from streams.codecs.avro import AvroCodec

    return AvroCodec()


def _avro_confluent(settings: Settings) -> Codec:
    from streams.codecs.avro import ConfluentAvroCodec

    if not settings.schema_registry_url:
        raise ValueError("avro-confluent needs SENDGATE_SCHEMA_REGISTRY_URL")
    return ConfluentAvroCodec(settings.schema_registry_url)


def _json(settings: Settings) -> Codec:
    from streams.codecs.json import JsonCodec

    return JsonCodec()


register_codec(AVRO, _avro)
register_codec(AVRO_CONFLUENT, _avro_confluent)
register_codec(JSON, _json)
