"""Client security settings from the environment (issue 13): one mapping, no secret shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import Settings, kafka_for
from streams.kafka_config import KafkaClientConfig

SECRET = "s3cret-never-shown"


def test_security_settings_come_from_a_file_overlaid_by_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "worker.properties"
    conf.write_text("# comment\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                    "sasl.username=worker\nsasl.password=from-file\n"
                    "ssl.ca.location=/ca.pem\nbootstrap.servers=ignored:1\nlinger.ms=99\n")
    monkeypatch.setenv("SENDGATE_KAFKA_CONFIG_FILE", str(conf))
    monkeypatch.setenv("SENDGATE_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("SENDGATE_KAFKA_BOOTSTRAP", "broker:29092")
    settings = Settings.from_env()
    assert settings.kafka_security == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "worker", "sasl.password": SECRET, "ssl.ca.location": "/ca.pem",
    }  # only security.protocol, sasl.*, ssl.*; the variable wins over the file
    consumer = settings.kafka.consumer("g", {"enable.auto.commit": False})
    assert consumer["bootstrap.servers"] == "broker:29092"
    assert consumer["sasl.password"] == SECRET and consumer["group.id"] == "g"
    assert settings.kafka.producer()["partitioner"] == "murmur2_random"
    # a bare bootstrap (a --bootstrap flag, a test's broker) keeps the security settings
    other = kafka_for("elsewhere:9093")
    assert other.bootstrap == "elsewhere:9093" and other.security["sasl.username"] == "worker"


def test_secrets_are_not_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDGATE_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("SENDGATE_REDIS_USERNAME", "status")
    monkeypatch.setenv("SENDGATE_REDIS_PASSWORD", SECRET)
    settings = Settings.from_env()
    assert SECRET in settings.redis_url  # redis-py takes the user from the URL ...
    for shown in (repr(settings), repr(settings.kafka), str(settings.kafka),
                  f"{KafkaClientConfig('b:1', {'ssl.key.password': SECRET})}"):
        assert SECRET not in shown  # ... but no repr shows it
    assert settings.kafka.redacted()["sasl.password"] == "***"


def test_redis_credentials_are_quoted_and_do_not_replace_a_url_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SENDGATE_REDIS_URL", "redis://127.0.0.1:26379/0")
    monkeypatch.setenv("SENDGATE_REDIS_USERNAME", "worker")
    monkeypatch.setenv("SENDGATE_REDIS_PASSWORD", "p@ss/:word")
    assert Settings.from_env().redis_url == "redis://worker:p%40ss%2F%3Aword@127.0.0.1:26379/0"
    monkeypatch.setenv("SENDGATE_REDIS_URL", "redis://other:pw@127.0.0.1:26379/0")
    assert Settings.from_env().redis_url == "redis://other:pw@127.0.0.1:26379/0"
