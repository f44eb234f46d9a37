"""The status view on a real Redis (and Kafka for the rebuild).

* round trip: what the worker applies is what lookups (Python and HTTP) answer;
* issue 5 §6: the shared scenarios projected into a Redis database of their own, then
  every key and value scanned for every raw form of every address: none;
* Redis killed and restarted mid-stream: `apply` never raises, catch-up makes the view
  right (with persistence: exactly right; without: dirty keys right, view flagged stale);
* `sendgate view rebuild` from a changelog topic: last value wins, tombstones delete.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from unit.view.viewkit import (
    SECRET,
    Applied,
    feed,
    feed_file,
    known_addresses,
    leaks,
    load,
    scenario_files,
)

from streams.core.engine import DecisionEngine, status_view
from streams.core.enums import CHANNELS_OF_CONTACT_TYPE, Channel, ContactType
from streams.core.policy import PolicyBook
from streams.gate.state_codec import ViewHint, encode_state
from streams.view.http import make_status_app
from streams.view.projection import META_KEY_SUFFIX, StatusView, project, state_event_time

POLICIES = PolicyBook.default()
REPO = Path(__file__).resolve().parents[2]
REDIS_SH = REPO / "infra" / "redis" / "redis.sh"


def _ns() -> str:
    return f"sgtest:{uuid.uuid4().hex[:8]}:view:"


def _drop_namespace(url: str, ns: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=ns + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def _latest(applied: list[Applied]) -> dict[str, Applied]:
    out: dict[str, Applied] = {}
    for a in applied:
        out[a.key] = a
    return out


async def _apply_all(view: StatusView, applied: list[Applied]) -> None:
    for a in applied:
        await view.apply(a.key, a.state, a.decisions, a.tenant, a.as_of,
                         contact_type=a.contact_type)


def _expected(a: Applied) -> dict[str, str]:
    return project(a.state, a.tenant, a.as_of, POLICIES, (), a.contact_type)


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _hash(client: redis.Redis, key: str) -> dict[str, str]:
    return {_str(k): _str(v) for k, v in client.hgetall(key).items()}


# --------------------------------------------------------------------------- round trip


def test_lookups_answer_what_the_core_says(redis_url: str) -> None:
    applied = [a for p in scenario_files() for a in feed_file(p)]
    latest = _latest(applied)
    ns = _ns()

    async def go() -> None:
        view = StatusView(redis_url, namespace=ns)
        try:
            await _apply_all(view, applied)
            assert await view.flush(timeout=30)
            assert view.written >= len(latest)
            checked = 0
            for a in latest.values():
                policy = POLICIES.policy_for(a.tenant)
                entities = {d.legal_entity for d in a.state.decided.values()} | {"Other BV"}
                for channel in CHANNELS_OF_CONTACT_TYPE[ContactType(a.contact_type)]:
                    for entity in sorted(entities):
                        got = await view.lookup(a.key, entity, str(channel))
                        want = status_view(a.state, a.tenant, entity, channel, a.as_of, policy)
                        assert got.known
                        assert got.marketing_allowed == want["allowed"]
                        assert got.reason_code == want["reason_code"]
                        assert got.suppressed == want["suppressed"]
                        assert got.as_of is not None
                        checked += 1
            assert checked > 500
        finally:
            await view.aclose()
            _drop_namespace(redis_url, ns)

    asyncio.run(go())


def test_http_lookup_on_real_redis(redis_url: str) -> None:
    """The HTTP path end to end: an un-normalised address finds its normalised key."""
    path = next(p for p in scenario_files() if p.stem == "T01")
    applied = list(feed_file(path))
    a = applied[-1]
    ns = _ns()
    token = "tok-" + uuid.uuid4().hex

    async def go() -> None:
        view = StatusView(redis_url, namespace=ns)
        try:
            await _apply_all(view, applied)
            assert await view.flush(timeout=10)
            app = make_status_app(view, SECRET, token)
            async with TestClient(TestServer(app)) as client:
                body = {"tenant": a.tenant, "legal_entity": "Fietsenwinkel Noord BV",
                        "channel": "email",
                        "contact": {"type": "email", "value": "  M.Huisman@Ziggo.NL "}}
                resp = await client.post("/v1/status", json=body,
                                         headers={"Authorization": f"Bearer {token}"})
                assert resp.status == 200
                data = await resp.json()
                want = status_view(a.state, a.tenant, "Fietsenwinkel Noord BV",
                                   Channel.EMAIL, a.as_of, POLICIES.policy_for(a.tenant))
                assert data["known"] is True
                assert data["marketing_allowed"] == want["allowed"]
                assert data["reason_code"] == want["reason_code"]
                assert data["last_decision"]["request_id"] == "T01-r01"
                assert "huisman" not in json.dumps(data).lower()
                resp = await client.post("/v1/status", json=body)
                assert resp.status == 401
        finally:
            await view.aclose()
            _drop_namespace(redis_url, ns)

    asyncio.run(go())


# --------------------------------------------------------------------------- issue 5 §6


def test_no_raw_address_anywhere_in_redis(redis_url: str) -> None:
    """Every scenario file through the core's DecisionEngine, projected into a Redis
    database used by nothing else; then every key and every value of that database is
    scanned for every raw form (as written, lower-cased, E.164, national, digits) of
    every address of the files."""
    files = scenario_files()
    forms = known_addresses(files)
    url = _with_db(redis_url, 13)
    client = redis.Redis.from_url(url)
    client.flushdb()

    async def go() -> int:
        view = StatusView(url)
        try:
            for path in files:
                engine = DecisionEngine(POLICIES, SECRET)
                for obj in load(path):
                    await _apply_all(view, feed(engine, obj))
            assert await view.flush(timeout=60)
            return view.written
        finally:
            await view.aclose()

    try:
        written = asyncio.run(go())
        assert written > 100
        scanned = 0
        for raw_key in client.scan_iter(count=1000):
            key = raw_key.decode()
            assert not leaks(key, forms), key
            kind = _str(client.type(raw_key))
            if kind == "hash":
                text = json.dumps(_hash(client, key), ensure_ascii=False)
            else:
                text = str(client.dump(raw_key))
            found = leaks(text, forms)
            assert not found, (key, found)
            scanned += 1
        assert scanned > 100
    finally:
        client.flushdb()
        client.close()


# --------------------------------------------------------------------------- outage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ping(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            if client.ping():
                return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            client.close()


class PrivateRedis:
    """A redis-server of this test only, with an fsync-always AOF: SIGKILL loses nothing."""

    def __init__(self, tmp: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server not installed (bash infra/redis/redis.sh install)")
        self.exe = exe
        self.port = _free_port()
        self.dir = tmp
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_ping(self.url)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.kill()


def _split_scenarios() -> tuple[list[Applied], list[Applied]]:
    """Events before and during the outage. T100's erasure_completed and the later
    import both arrive while Redis is down; other files straddle the outage too."""
    before: list[Applied] = []
    during: list[Applied] = []
    for path in [*scenario_files()[:30], next(p for p in scenario_files() if p.stem == "T100")]:
        engine = DecisionEngine(POLICIES, SECRET)
        objs = load(path)
        cut = 2 if path.stem == "T100" else len(objs) // 2
        for i, obj in enumerate(objs):
            (before if i < cut else during).extend(feed(engine, obj))
    return before, during


def test_redis_killed_and_restarted_catch_up_is_exact(private_redis: PrivateRedis) -> None:
    before, during = _split_scenarios()
    latest = _latest(before + during)

    async def go() -> None:
        view = StatusView(private_redis.url, backoff_max=0.2, socket_timeout=0.5,
                          source_had_states=False)  # a new deployment: nothing lost
        try:
            await _apply_all(view, before)
            assert await view.flush(timeout=20)
            private_redis.kill()
            t0 = time.perf_counter()
            await _apply_all(view, during)  # must neither raise nor wait for Redis
            per_apply = (time.perf_counter() - t0) / len(during)
            assert per_apply < 0.01
            await asyncio.sleep(0.5)
            assert not view.healthy and view.pending() > 0
            with pytest.raises((redis.RedisError, OSError)):
                await view.lookup(during[0].key, "E", "email")
            private_redis.start()
            assert await view.flush(timeout=30), f"{view.pending()} keys still dirty"
            assert view.healthy
        finally:
            await view.aclose()

    asyncio.run(go())
    client = redis.Redis.from_url(private_redis.url)
    try:
        for key, a in latest.items():
            assert _hash(client, "sg:view:" + key) == _expected(a), a.tenant
        assert client.hget("sg:view:" + META_KEY_SUFFIX, "stale") is None
        erased = [a for a in latest.values() if a.tenant == "t-T100"]
        assert erased
        fields = _hash(client, "sg:view:" + erased[0].key)
        assert json.loads(fields["Sieradenwinkel Goudglans BV|email"])["r"] == "BLOCK_ERASED"
    finally:
        client.close()


def test_redis_restarted_empty_flags_the_view_stale(tmp_path: Path) -> None:
    """With infra/redis/redis.sh on a port of its own: `kill` (no persistence, the view
    is gone), `start`; the keys dirty during the outage are right again, the rest is
    unknown (fail closed) and lookups report `view_stale` until `view rebuild`."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "REDIS_PORT": str(port), "SENDGATE_REDIS_URL": url,
           "SENDGATE_VAR": str(tmp_path)}

    def sh(action: str) -> None:
        subprocess.run(["bash", str(REDIS_SH), action], env=env, check=True,
                       capture_output=True, timeout=120)

    before, during = _split_scenarios()
    sh("up")
    try:
        async def go() -> None:
            view = StatusView(url, backoff_max=0.2, socket_timeout=0.5,
                              source_had_states=False)
            try:
                await _apply_all(view, before)
                assert await view.flush(timeout=20)
                sh("kill")
                await _apply_all(view, during)
                await asyncio.sleep(0.3)
                assert not view.healthy
                sh("start")
                assert await view.flush(timeout=30)
                for key, a in _latest(during).items():
                    channel = min(CHANNELS_OF_CONTACT_TYPE[ContactType(a.contact_type)])
                    answer = await view.lookup(key, "Some BV", str(channel))
                    reason = answer.view_stale_reason or ""
                    assert answer.view_stale and "restarted empty" in reason
                    assert answer.known
                    assert _hash(view_client, "sg:view:" + key) == _expected(a)
                untouched = [a for k, a in _latest(before).items() if k not in _latest(during)]
                assert untouched
                channel = min(CHANNELS_OF_CONTACT_TYPE[ContactType(untouched[0].contact_type)])
                gone = await view.lookup(untouched[0].key, "Some BV", str(channel))
                assert not gone.known and not gone.marketing_allowed and gone.view_stale
            finally:
                await view.aclose()

        view_client = redis.Redis.from_url(url)
        asyncio.run(go())
        view_client.close()
    finally:
        sh("down")


# --------------------------------------------------------------------------- rebuild


@pytest.mark.timeout(180)
def test_view_rebuild_from_the_changelog(
    kafka_admin: Any, kafka_bootstrap: str, redis_url: str, unique_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    from streams.cli import main
    from streams.commands.view import changelog_topic

    prefix = unique_name + "."
    topic = changelog_topic("sendgate", prefix)
    kafka_admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[
        topic].result(timeout=30)
    ns = _ns()
    applied = [a for p in scenario_files()[:25] for a in feed_file(p)]
    latest = _latest(applied)
    tombstoned = sorted(latest)[:3]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for a in applied:  # every intermediate state, as the table's changelog has them
        # the worker writes its view hint beside a state; a state without one (format 1)
        # tells no tenant (kept decisions do not carry it since format 3)
        at = state_event_time(a.state)
        hint = ViewHint(a.tenant, at) if a.state.decided and at is not None else None
        producer.produce(topic, key=a.key.encode(),
                         value=encode_state(a.state, hint),
                         partition=int(a.key[:8], 16) % 3)
    for key in tombstoned:
        producer.produce(topic, key=key.encode(), value=None, partition=int(key[:8], 16) % 3)
    assert producer.flush(30) == 0
    client = redis.Redis.from_url(redis_url)
    orphan = ns + "f" * 64
    client.hset(orphan, "_", '{"v":1}')
    client.hset(ns + META_KEY_SUFFIX, "stale", "test")
    try:
        code = main(["view", "rebuild", "--topic-prefix", prefix, "--redis-url", redis_url,
                     "--namespace", ns])
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert code == 0, summary
        assert summary["contacts"] == len(latest) - len(tombstoned)
        assert summary["orphans_deleted"] >= 1
        assert not client.exists(orphan)
        for key in tombstoned:
            assert not client.exists(ns + key)
        for key, a in latest.items():
            if key in tombstoned:
                continue
            as_of = state_event_time(a.state)
            assert as_of is not None
            want = project(a.state, a.tenant, as_of, POLICIES)
            got = _hash(client, ns + key)
            if not a.state.decided:  # written without a hint: default policy
                got_meta = json.loads(got.pop("_"))
                want_meta = json.loads(want.pop("_"))
                assert got_meta.get("at") == want_meta["at"]
            assert got == want, a.tenant
        assert client.hget(ns + META_KEY_SUFFIX, "stale") is None
        assert client.hget(ns + META_KEY_SUFFIX, "rebuilt_at") is not None
    finally:
        _drop_namespace(redis_url, ns)
        client.close()
        kafka_admin.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)


def test_past_the_dirty_bound_the_view_is_flagged_stale(private_redis: PrivateRedis) -> None:
    """More keys dirty during the outage than `max_pending`: the first ones are caught
    up, the rest dropped, and `~meta` says so once Redis is back (run view rebuild)."""
    before, during = _split_scenarios()

    async def go() -> None:
        view = StatusView(private_redis.url, max_pending=5, backoff_max=0.2,
                          socket_timeout=0.5)
        try:
            await _apply_all(view, before)
            assert await view.flush(timeout=20)
            private_redis.kill()
            await _apply_all(view, during)
            assert view.pending() == 5 and view.dropped > 0
            private_redis.start()
            assert await view.flush(timeout=30)
            answer = await view.lookup(during[0].key, "E", "email")
            assert answer.view_stale and "bound" in (answer.view_stale_reason or "")
        finally:
            await view.aclose()

    asyncio.run(go())


def test_status_cli_answers_from_the_view(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sendgate status` hashes like the core; exit 0 allowed, 3 not allowed."""
    from streams.cli import main

    path = next(p for p in scenario_files() if p.stem == "T107")
    applied = list(feed_file(path))
    ns = _ns()

    async def go() -> None:
        view = StatusView(redis_url, namespace=ns)
        await _apply_all(view, applied)
        assert await view.flush(timeout=10)
        await view.aclose()

    asyncio.run(go())
    monkeypatch.setenv("SENDGATE_HMAC_KEY", SECRET.decode())
    try:
        capsys.readouterr()
        code = main(["status", "--tenant", "t-T107", "--entity", "Hoesjesland BV",
                     "--channel", "sms", "--redis-url", redis_url, "--namespace", ns,
                     "06 19283746"])
        out = json.loads(capsys.readouterr().out)
        assert code == 3
        assert out["reason_code"] == "BLOCK_OBJECTION" and out["suppressed"]
        assert out["suppression"]["source"] == "reply_stop"
        assert "19283746" not in json.dumps(out)
        code = main(["status", "--tenant", "t-T107", "--entity", "Hoesjesland BV",
                     "--channel", "email", "--redis-url", redis_url, "06 19283746"])
        assert code == 2  # email does not reach a phone number
    finally:
        _drop_namespace(redis_url, ns)
