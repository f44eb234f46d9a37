"""`StatusView.apply` with no Redis at all: the stream job must go on deciding.

apply never raises, never waits for Redis, keeps the latest state per dirty key and
respects its bound (past it the view is flagged stale, see streams/view/projection.py)."""

from __future__ import annotations

import asyncio
import socket
import time

from unit.view.viewkit import feed_file, scenario_files

from streams.view.projection import StatusView


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # nothing listens there any more


def test_apply_without_redis_never_raises_and_stays_fast() -> None:
    applied = [a for p in scenario_files()[:40] for a in feed_file(p)]

    async def go() -> None:
        view = StatusView(_dead_url(), max_pending=10_000)
        start = time.perf_counter()
        for _ in range(5):
            for a in applied:
                await view.apply(a.key, a.state, a.decisions, a.tenant, a.as_of,
                                 contact_type=a.contact_type)
                await asyncio.sleep(0)  # let the writer try (and fail)
        elapsed = time.perf_counter() - start
        assert elapsed / (5 * len(applied)) < 0.002, "apply must not wait for Redis"
        await asyncio.sleep(0.2)
        assert not view.healthy
        assert view.failures >= 1
        # coalesced: one dirty entry per contact key, holding the latest state
        assert view.pending() == len({a.key for a in applied})
        latest = {a.key: a.state for a in applied}
        assert all(view._pending[k].state is s for k, s in latest.items())
        assert view.dropped == 0
        assert await view.flush(timeout=0.1) is False
        t0 = time.perf_counter()
        await view.aclose()
        assert time.perf_counter() - t0 < 1.0

    asyncio.run(go())


def test_past_the_bound_updates_are_dropped_and_flagged() -> None:
    applied = [a for p in scenario_files()[:20] for a in feed_file(p)]
    keys = list(dict.fromkeys(a.key for a in applied))
    assert len(keys) > 5

    async def go() -> None:
        view = StatusView(_dead_url(), max_pending=5)
        for a in applied:
            await view.apply(a.key, a.state, a.decisions, a.tenant, a.as_of)
        assert view.pending() == 5
        assert view.dropped > 0
        assert view._stale_reason is not None  # written to sg:view:~meta when Redis is back
        await view.aclose()

    asyncio.run(go())


def test_apply_swallows_bad_input() -> None:
    async def go() -> None:
        view = StatusView(_dead_url())
        await view.apply(None, None, None, None, None)  # type: ignore[arg-type]
        await view.aclose()

    asyncio.run(go())
