"""Fixtures for tests against the real Kafka broker and Redis.

`make test` starts both (`make kafka-up redis-up`, i.e. infra/kafka/kafka.sh and
infra/redis/redis.sh). Run alone, `pytest tests/integration` needs them up first.

When a service does not answer within SENDGATE_SERVICE_WAIT seconds (default 60):
- with CI=true the test FAILS: a missing broker in CI is a broken build, never a skip;
- otherwise the test is skipped with the hint to run `make kafka-up` / `make redis-up`.

Everything collected under tests/integration and tests/chaos gets the `integration` marker
(and tests/chaos also `chaos`). Loaded for every test folder by tests/conftest.py.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest

from streams.config import Settings

TESTS = Path(__file__).resolve().parent
NEEDS_SERVICES = {TESTS / "integration": "integration", TESTS / "chaos": "chaos"}
SERVICE_WAIT_S = float(os.environ.get("SENDGATE_SERVICE_WAIT", "60"))
# Outside CI, give up early when nothing at all listens on the port (no service started).
NOTHING_LISTENS_GRACE_S = 5.0


SESSION_PREFIX = f"it-{uuid.uuid4().hex[:4]}-"
"""Names of everything this test session creates on the broker start with it."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def service_unavailable(what: str, hint: str, detail: str) -> NoReturn:
    message = f"{what} not reachable ({detail}); run `{hint}`"
    if in_ci():
        pytest.fail(f"{message} — in CI a missing service is a failure, not a skip", pytrace=False)
    pytest.skip(message)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for folder, marker in NEEDS_SERVICES.items():
            if folder in item.path.parents:
                item.add_marker(getattr(pytest.mark, marker))
                item.add_marker(pytest.mark.integration)


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _first_host_port(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    first = re.sub(r"^[A-Za-z_]+://", "", first)
    host, _, port = first.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port or 9092)


def _wait(what: str, hint: str, host: str, port: int, check: Any) -> None:
    """Call check() until it returns without raising, within SERVICE_WAIT_S."""
    start = time.monotonic()
    deadline = start + SERVICE_WAIT_S
    ever_listened = False
    last_error = "no answer"
    while True:
        try:
            check()
            return
        except Exception as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        ever_listened = ever_listened or _port_accepts(host, port)
        now = time.monotonic()
        if not in_ci() and not ever_listened and now - start > NOTHING_LISTENS_GRACE_S:
            service_unavailable(what, hint, f"nothing listens on {host}:{port}")
        if now >= deadline:
            service_unavailable(what, hint, f"no answer within {SERVICE_WAIT_S:.0f}s: {last_error}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a broker that answers metadata (SENDGATE_KAFKA_BOOTSTRAP).

    At the end of the session the topics this session created (all named `it-<session>-...`,
    see `unique_name`) are deleted, so a long-lived local broker does not pile them up; test
    sessions running side by side on one broker leave each other's topics alone.
    """
    from confluent_kafka.admin import AdminClient

    kafka = Settings.from_env().kafka
    bootstrap = kafka.bootstrap
    host, port = _first_host_port(bootstrap)
    admin = AdminClient(
        kafka.admin({
            "socket.connection.setup.timeout.ms": 2000,
            "log_level": 2,  # no librdkafka 'connection refused' noise while waiting
        })
    )

    def check() -> None:
        metadata = admin.list_topics(timeout=5)
        if not metadata.brokers:
            raise RuntimeError("metadata without brokers")

    _wait(f"Kafka at {bootstrap}", "make kafka-up", host, port, check)
    yield bootstrap
    try:
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(SESSION_PREFIX)]
        if names:
            for future in admin.delete_topics(names, operation_timeout=60).values():
                future.result(60)
    except Exception as exc:  # cleanup only: never fail the run for it
        print(f"note: could not delete the test topics: {exc}")


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> Any:
    """A confluent_kafka AdminClient on the test broker."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(Settings.from_env().kafka.with_bootstrap(kafka_bootstrap).admin())


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a Redis that answers PING (SENDGATE_REDIS_URL)."""
    import redis

    url = Settings.from_env().redis_url
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379

    def check() -> None:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            if not client.ping():
                raise RuntimeError("PING did not answer PONG")
        finally:
            client.close()

    _wait(f"Redis at {url}", "make redis-up", host, port, check)
    return url


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A prefix unique to this test run, for topic, group and key names.

    Kafka topic-safe ([a-zA-Z0-9._-]) and short: `it-<session>-<test name>-<8 hex>`. Tests
    append their own suffixes, e.g. f"{unique_name}.orders", f"{unique_name}-group".
    """
    name = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name).strip("-").lower()[:40]
    return f"{SESSION_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
