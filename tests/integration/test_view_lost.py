"""Issue 12 §3: a Redis that lost the view is detected whether the writer started before
or after the loss; lookups answer `view_stale: true`, the writer logs it and exposes it as
a metric, until `sendgate view rebuild`. Each test runs its own redis-server (FLUSHALL is
only ever sent to it, never to the shared Redis)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from unit.view.viewkit import Applied, feed

from streams.core.engine import DecisionEngine
from streams.core.policy import PolicyBook
from streams.testing.supervisor import free_port
from streams.view.follower import changelog_holds_states
from streams.view.metrics import expose_view_metrics
from streams.view.projection import StatusView

SECRET = b"view-test-key"


def _events(tenant: str) -> list[dict[str, Any]]:
    contact = {"type": "email", "value": "jan@example.nl"}
    return [
        {"type": "order", "event_id": "e1", "occurred_at": "2026-11-23T09:41:00+01:00",
         "tenant": tenant, "legal_entity": "Shop BV", "order_id": "o-1", "kind": "purchase",
         "status": "paid", "paid_amount_cents": 4995, "product_categories": ["bikes"],
         "contract_end_at": None, "recipient_kind": "consumer", "address_type": "direct",
         "marketplace": None, "sold_by_phone": False, "confirmed_in_writing": False,
         "contacts": [{"contact": contact, "obtained_at_sale": True, "optout_offered": True,
                       "optout_method": "separate_optout_box", "optout_exercised": False,
                       "informed_of_calls": False}]},
    ]


def applied(n: int) -> list[Applied]:
    out: list[Applied] = []
    for i in range(n):
        engine = DecisionEngine(PolicyBook.default(), SECRET)
        for obj in _events(f"t{i}"):
            out.extend(feed(engine, obj))
    return out


class Server:
    def __init__(self, tmp: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(tmp),
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                if self.client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def lose_everything(self) -> None:
        self.client.flushall()  # the private server of this test only

    def stop(self) -> None:
        self.client.close()
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    try:
        yield s
    finally:
        s.stop()


async def _write(view: StatusView, items: list[Applied]) -> None:
    for a in items:
        await view.apply(a.key, a.state, a.decisions, a.tenant, a.as_of,
                         contact_type=a.contact_type)
    assert await view.flush(timeout=20)


def _stale_metric(view: StatusView) -> str:
    registry = CollectorRegistry()
    expose_view_metrics(registry, view)
    text = generate_latest(registry).decode()
    return next(line for line in text.splitlines() if line.startswith("sendgate_view_stale "))


def test_loss_after_the_writer_started(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    items = applied(6)
    first, later = items[:4], items[4:]

    async def go() -> None:
        view = StatusView(server.url, source_had_states=False)  # a new deployment
        try:
            await _write(view, first)
            answer = await view.lookup(first[0].key, "Shop BV", "email")
            assert answer.known and not answer.view_stale
            assert _stale_metric(view) == "sendgate_view_stale 0.0"

            server.lose_everything()
            # lookups see it at once, before any writer noticed
            answer = await view.lookup(first[0].key, "Shop BV", "email")
            assert not answer.known and answer.view_stale is True
            assert answer.to_dict()["view_stale"] is True

            caplog.set_level(logging.ERROR, logger="sendgate.view")
            await _write(view, later)  # the next write notices the missing marker
            assert view.stale and view.losses == 1
            assert "lost the view" in caplog.text
            assert _stale_metric(view) == "sendgate_view_stale 1.0"
            for a in (first[0], later[0]):
                answer = await view.lookup(a.key, "Shop BV", "email")
                assert answer.view_stale is True
                assert "lost the view" in (answer.view_stale_reason or "")

            await view.mark_rebuilt()  # what `sendgate view rebuild` ends with
            answer = await view.lookup(later[0].key, "Shop BV", "email")
            assert answer.known and not answer.view_stale
            assert not view.stale
        finally:
            await view.aclose()

    asyncio.run(go())


def test_loss_before_the_writer_started(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    items = applied(4)

    async def go() -> None:
        view = StatusView(server.url, source_had_states=False)
        try:
            await _write(view, items[:2])
        finally:
            await view.aclose()
        server.lose_everything()

        # a worker started after the loss, on a changelog that holds states
        late = StatusView(server.url, source_had_states=True)
        try:
            answer = await late.lookup(items[0].key, "Shop BV", "email")
            assert not answer.known and answer.view_stale is True  # was `null` before
            caplog.set_level(logging.ERROR, logger="sendgate.view")
            await _write(late, items[2:])
            assert late.stale and late.losses == 1
            assert "no view marker while the changelog holds states" in caplog.text
            assert _stale_metric(late) == "sendgate_view_stale 1.0"
            for a in items:
                answer = await late.lookup(a.key, "Shop BV", "email")
                assert answer.view_stale is True, a.key

            # a second writer starting now adopts the marker and still reports stale
            other = StatusView(server.url, source_had_states=True)
            try:
                await _write(other, items[2:3])
                assert other.stale and other.losses == 0
            finally:
                await other.aclose()
            await late.mark_rebuilt()
            assert not (await late.lookup(items[3].key, "Shop BV", "email")).view_stale
        finally:
            await late.aclose()

    asyncio.run(go())


def test_a_new_deployment_is_not_stale(server: Server) -> None:
    async def go() -> None:
        view = StatusView(server.url, source_had_states=False)
        try:
            before = await view.lookup("0" * 64, "Shop BV", "email")
            assert before.view_stale  # nothing written yet: no marker, not trusted
            await _write(view, applied(2))
            assert not view.stale and view.losses == 0
            a = applied(1)[0]
            assert not (await view.lookup(a.key, "Shop BV", "email")).view_stale
        finally:
            await view.aclose()

    asyncio.run(go())


def test_changelog_probe(kafka_admin: Any, kafka_bootstrap: str, unique_name: str) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    config = {"bootstrap.servers": kafka_bootstrap, "group.id": f"probe-{uuid.uuid4().hex}"}
    topic = unique_name + ".probe-changelog"
    assert changelog_holds_states(config, topic) is False  # not created yet: new
    kafka_admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[
        topic].result(timeout=30)
    try:
        assert changelog_holds_states(config, topic) is False
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(topic, key=b"k", value=b"{}", partition=1)
        assert producer.flush(30) == 0
        assert changelog_holds_states(config, topic) is True
        dead = {"bootstrap.servers": "127.0.0.1:1", "group.id": "x"}
        assert changelog_holds_states(dead, topic, timeout=1.0) is True  # fail closed
    finally:
        kafka_admin.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)


def test_no_redis_py_warning(server: Server) -> None:
    """Issue 12 §6: redis-py warned that a sync Retry was passed to the asyncio client on
    every command that opened the view."""
    import warnings

    async def go() -> None:
        view = StatusView(server.url, source_had_states=False)
        try:
            await _write(view, applied(1))
            await view.lookup("0" * 64, "Shop BV", "email")
        finally:
            await view.aclose()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(go())
