"""Status-view lookup latency (issue 5 §2; target: p99 well under 10 ms).

Fills a Redis namespace of its own with the projections of a realistic feed
(streams.workload through the core's DecisionEngine, projected by StatusView.apply,
which also times the write side), then times N lookups, one at a time, three ways:

    view.lookup   StatusView.lookup: one pipelined round trip (HMGET + HGET)
    http          POST /v1/status on a real socket (aiohttp keep-alive client): auth,
                  JSON, normalise + HMAC of the contact, the lookup, the JSON answer
    cli-path      hash + view.lookup, as `sendgate status` does after start-up

    .venv/bin/python bench/bench_status.py [--contacts 20000] [--events 60000] [-n 5000]
                                           [--redis-url URL] [--json]

Needs a Redis (`make redis-up`); the namespace is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streams.config import Settings  # noqa: E402
from streams.core.engine import DecisionEngine, contact_points  # noqa: E402
from streams.core.keys import contact_key  # noqa: E402
from streams.core.model import ContactPoint, ContactType  # noqa: E402
from streams.core.parse import parse_event  # noqa: E402
from streams.core.policy import PolicyBook  # noqa: E402
from streams.view.http import make_status_app  # noqa: E402
from streams.view.projection import StatusView  # noqa: E402
from streams.workload import ENTITIES, Workload  # noqa: E402

SECRET = b"bench-status-key"
TOKEN = "bench-token"


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)

    def pct(p: float) -> float:
        return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] * 1000

    return {
        "n": len(s),
        "p50_ms": round(pct(50), 3),
        "p90_ms": round(pct(90), 3),
        "p99_ms": round(pct(99), 3),
        "max_ms": round(s[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(s) * 1000, 3),
    }


async def fill(view: StatusView, contacts: int, events: int) -> dict[str, Any]:
    engine = DecisionEngine(PolicyBook.default(), SECRET)
    work = Workload(contacts=contacts, run_id="bs")
    t0 = time.perf_counter()
    applies = 0
    for obj in work.events(events):
        event = parse_event(obj)
        engine.feed(event)
        for point in contact_points(event):
            key = contact_key(SECRET, event.tenant, point)
            await view.apply(key, engine.states[key], (), event.tenant, event.occurred_at,
                             contact_type=str(point.type))
            applies += 1
    ok = await view.flush(timeout=300)
    dt = time.perf_counter() - t0
    return {"events": events, "applies": applies, "keys": len(engine.states),
            "flushed": ok, "seconds": round(dt, 2),
            "applies_per_s_incl_core": round(applies / dt)}


def queries(contacts: int, n: int) -> list[tuple[str, dict[str, str], str, str]]:
    work = Workload(contacts=contacts, run_id="bs")
    rng = random.Random(11)
    out = []
    for _ in range(n):
        i = rng.randrange(contacts)
        tenant, contact = work.contact(i)
        channel = "email" if contact["type"] == "email" else rng.choice(("sms", "whatsapp"))
        out.append((tenant, contact, ENTITIES[i % 2], channel))
    return out


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from aiohttp import ClientSession, web

    ns = f"sgbench:{uuid.uuid4().hex[:8]}:view:"
    view = StatusView(args.redis_url, namespace=ns)
    result: dict[str, Any] = {"namespace": ns}
    try:
        result["fill"] = await fill(view, args.contacts, args.events)
        # the fill's DecisionEngine heap is garbage now; a status server has a small heap
        gc.collect()
        gc.freeze()
        qs = queries(args.contacts, args.n)
        keyed = [(contact_key(SECRET, t, ContactPoint(ContactType(c["type"]), c["value"])), e, ch)
                 for t, c, e, ch in qs]
        for k, e, ch in keyed[:200]:  # warm up the pool
            await view.lookup(k, e, ch)
        samples: list[float] = []
        known = 0
        for k, e, ch in keyed:
            t = time.perf_counter()
            answer = await view.lookup(k, e, ch)
            samples.append(time.perf_counter() - t)
            known += answer.known
        result["view.lookup"] = {**percentiles(samples), "known": known}

        samples = []
        for t_, c, e, ch in qs:
            t = time.perf_counter()
            k = contact_key(SECRET, t_, ContactPoint(ContactType(c["type"]), c["value"]))
            await view.lookup(k, e, ch)
            samples.append(time.perf_counter() - t)
        result["cli-path"] = percentiles(samples)

        app = make_status_app(view, SECRET, TOKEN)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}/v1/status"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with ClientSession() as session:
                for t_, c, e, ch in qs[:200]:
                    body = {"tenant": t_, "legal_entity": e, "channel": ch, "contact": c}
                    async with session.post(url, json=body, headers=headers) as resp:
                        await resp.read()
                samples = []
                for t_, c, e, ch in qs:
                    body = {"tenant": t_, "legal_entity": e, "channel": ch, "contact": c}
                    t = time.perf_counter()
                    async with session.post(url, json=body, headers=headers) as resp:
                        assert resp.status == 200, resp.status
                        await resp.read()
                    samples.append(time.perf_counter() - t)
                result["http"] = percentiles(samples)
        finally:
            await runner.cleanup()
    finally:
        client = view._writer
        async for key in client.scan_iter(match=ns + "*", count=1000):
            await client.delete(key)
        await view.aclose(flush_timeout=0)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contacts", type=int, default=20_000)
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("-n", type=int, default=5_000, help="lookups per mode")
    p.add_argument("--redis-url", default=Settings.from_env().redis_url)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--max-p99-ms", type=float, default=None,
                   help="exit 1 when the HTTP p99 is above this")
    args = p.parse_args()
    result = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"fill: {result['fill']}")
        for mode in ("view.lookup", "cli-path", "http"):
            r = result[mode]
            print(f"{mode:12s} n={r['n']}  p50 {r['p50_ms']:.3f} ms  p90 {r['p90_ms']:.3f} ms"
                  f"  p99 {r['p99_ms']:.3f} ms  max {r['max_ms']:.3f} ms")
    if args.max_p99_ms is not None and result["http"]["p99_ms"] > args.max_p99_ms:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
