"""Issue 12 §4: the status server under load, on the real Redis. 1 000 concurrent lookups
(a bounded burst, one connection each) all answer 200 while the lookups share only 16
Redis connections (the pool makes them wait instead of failing); the p99 is reported, not
asserted (speed goals live in `make bench-status`). A configured in-flight limit answers
503 with Retry-After, and only once it is really exceeded."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp import web

from streams.core.engine import DecisionEngine
from streams.core.enums import ContactType
from streams.core.keys import contact_key
from streams.core.model import ContactPoint
from streams.core.policy import PolicyBook
from streams.testing.supervisor import free_port
from streams.view.http import make_status_app
from streams.view.projection import Answer, StatusView

pytestmark = pytest.mark.timeout(180)

SECRET = b"status-load-test"
TOKEN = "load-" + uuid.uuid4().hex
CONCURRENT = 1000
CONTACTS = 50


def _order(i: int) -> dict[str, Any]:
    return {
        "type": "order", "event_id": f"e{i}", "occurred_at": "2026-11-23T09:41:00+01:00",
        "tenant": "load", "legal_entity": "Shop BV", "order_id": f"o-{i}", "kind": "purchase",
        "status": "paid", "paid_amount_cents": 4995, "product_categories": ["bikes"],
        "contract_end_at": None, "recipient_kind": "consumer", "address_type": "direct",
        "marketplace": None, "sold_by_phone": False, "confirmed_in_writing": False,
        "contacts": [{"contact": {"type": "email", "value": f"c{i}@example.nl"},
                      "obtained_at_sale": True, "optout_offered": True,
                      "optout_method": "separate_optout_box", "optout_exercised": False,
                      "informed_of_calls": False}],
    }


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
    return runner, f"http://127.0.0.1:{port}/v1/status"


async def _burst(
    url: str, n: int, token: str = TOKEN
) -> list[tuple[int, float, dict[str, str]]]:
    """n lookups at once, each on its own connection: (status, seconds, headers)."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=60)
    headers = {"Authorization": f"Bearer {token}"}
    start = asyncio.Event()

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def one(i: int) -> tuple[int, float, dict[str, str]]:
            body = {"tenant": "load", "legal_entity": "Shop BV", "channel": "email",
                    "contact": {"type": "email", "value": f"C{i % CONTACTS}@Example.nl"}}
            await start.wait()
            t0 = time.perf_counter()
            try:
                async with session.post(url, json=body, headers=headers) as resp:
                    await resp.read()
                    return resp.status, time.perf_counter() - t0, dict(resp.headers)
            except aiohttp.ClientError as exc:
                return -1, time.perf_counter() - t0, {"error": type(exc).__name__}

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        await asyncio.sleep(0)
        start.set()
        return await asyncio.gather(*tasks)


def _burst_in_process(
    url: str, n: int, token: str
) -> list[tuple[int, float, dict[str, str]]]:
    return asyncio.run(_burst(url, n, token))


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_a_thousand_concurrent_lookups_answer_without_errors(
    redis_url: str, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = f"sgtest:{uuid.uuid4().hex[:8]}:view:"

    async def go() -> list[tuple[int, float, dict[str, str]]]:
        view = StatusView(redis_url, namespace=ns, source_had_states=False,
                          reader_connections=16)
        engine = DecisionEngine(PolicyBook.default(), SECRET)
        from unit.view.viewkit import feed

        for i in range(CONTACTS):
            for a in feed(engine, _order(i)):
                await view.apply(a.key, a.state, a.decisions, a.tenant, a.as_of,
                                 contact_type=a.contact_type)
        assert await view.flush(timeout=30)
        runner, url = await _serve(make_status_app(view, SECRET, TOKEN))
        try:  # the client in a process of its own: the server's event loop is its own
            loop = asyncio.get_running_loop()
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                return await loop.run_in_executor(pool, _burst_in_process, url, CONCURRENT,
                                                  TOKEN)
        finally:
            await runner.cleanup()
            await view.aclose()

    try:
        results = asyncio.run(go())
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=ns + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    errors = [r for r in results if r[0] != 200]
    latencies = [r[1] for r in results]
    p50, p99 = _p(latencies, 0.50), _p(latencies, 0.99)
    record_property("p50_ms", round(p50 * 1000, 1))
    record_property("p99_ms", round(p99 * 1000, 1))
    with capsys.disabled():
        print(f"\n{CONCURRENT} concurrent lookups (client process), 16 Redis connections: "
              f"{len(errors)} errors, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms")
    assert len(results) == CONCURRENT
    assert errors == [], errors[:5]


class SlowView:
    """A view whose lookups take a while, so that lookups pile up in flight."""

    def __init__(self) -> None:
        self.key = contact_key(SECRET, "load", ContactPoint(ContactType.EMAIL, "c0@example.nl"))

    async def lookup(self, ckey: str, entity: str, channel: str) -> Answer:
        await asyncio.sleep(0.5)
        return Answer(known=False, legal_entity=entity, channel=channel,
                      marketing_allowed=False, reason_code=None, legal_basis=None,
                      evidence=[], suppressed=False, suppression=None, last_decision=None,
                      as_of=None, tenant=None, erased=False, view_stale=False)

    async def ping(self) -> bool:
        return True


def test_the_in_flight_limit_answers_503_with_retry_after_only_past_it() -> None:
    async def go(limit: int, n: int) -> list[tuple[int, float, dict[str, str]]]:
        app = make_status_app(SlowView(), SECRET, TOKEN, max_in_flight=limit)  # type: ignore[arg-type]
        runner, url = await _serve(app)
        try:
            return await _burst(url, n)
        finally:
            await runner.cleanup()

    within = asyncio.run(go(limit=40, n=40))
    assert [r[0] for r in within] == [200] * 40
    past = asyncio.run(go(limit=40, n=100))
    statuses = [r[0] for r in past]
    assert statuses.count(200) == 40 and statuses.count(503) == 60
    assert all(r[2].get("Retry-After") == "1" for r in past if r[0] == 503)
