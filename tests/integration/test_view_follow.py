"""`sendgate view follow`: the status view written from the changelog, outside the worker.

A worker with SENDGATE_STATUS_VIEW=0 decides the first scenario files and writes no view;
the follower then reads the changelog and must write, for every contact key, exactly the
projection the worker would have written after the last event that changed that key's
state (tenant, event time and contact type come from the view hint in the changelog).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from streamkit import TEST_SECRET, codec, make_topics, reference_decisions, running, worker
from unit.view.viewkit import Applied, feed, scenario_files

from streams.cli import main
from streams.core.engine import DecisionEngine
from streams.core.policy import PolicyBook
from streams.testing.feeder import BarrierFeeder, load_jsonl
from streams.testing.observe import OutputReader
from streams.view.projection import META_KEY_SUFFIX, project

pytestmark = pytest.mark.timeout(300)

POLICIES = PolicyBook.default()
FILES = 30


def _changed_states(files: list[list[dict[str, Any]]]) -> dict[str, Applied]:
    """Per contact key, the last apply that changed its state (what the worker stored)."""
    engine = DecisionEngine(POLICIES, TEST_SECRET.encode())
    last: dict[str, Applied] = {}
    for events in files:
        for obj in events:
            for a in feed(engine, obj):
                seen = last.get(a.key)
                if seen is None or seen.state is not a.state:
                    last[a.key] = a
    return last


def _hash(client: redis.Redis, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(key).items()}


def _without_decided_at(fields: dict[str, str], *, stamped: bool) -> dict[str, str]:
    """The view without the wall-clock `decided_at` the gate stamps into stored decisions
    (the reference engine has no clock); everything else must be equal."""
    out = {}
    for name, raw in fields.items():
        value = json.loads(raw)
        if isinstance(value, dict):
            if name.endswith("|d"):
                assert ("dt" in value) == stamped, (name, raw)
            value.pop("dt", None)
        out[name] = json.dumps(value, sort_keys=True)
    return out


def _drop(client: redis.Redis, ns: str) -> None:
    keys = list(client.scan_iter(match=ns + "*", count=1000))
    if keys:
        client.delete(*keys)


def test_follower_writes_what_the_worker_would_have(
    kafka_bootstrap: str, redis_url: str, unique_name: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = unique_name + "."
    make_topics(kafka_bootstrap, prefix)
    files = [load_jsonl(p) for p in scenario_files()[:FILES]]
    flat = [e for f in files for e in f]
    expected_decisions = reference_decisions(flat)
    worker_ns = f"sgtest:{uuid.uuid4().hex[:8]}:worker:"
    follow_ns = f"sgtest:{uuid.uuid4().hex[:8]}:follow:"
    client = redis.Redis.from_url(redis_url)
    c = codec()
    reader = OutputReader(kafka_bootstrap, c, topic_prefix=prefix)
    w = worker(kafka_bootstrap, prefix, tmp_path, "noview",
               env={"SENDGATE_STATUS_VIEW": "0", "SENDGATE_VIEW_NAMESPACE": worker_ns})
    try:
        with running([w], kafka_bootstrap):
            feeder = BarrierFeeder(kafka_bootstrap, c, topic_prefix=prefix, timeout=120)
            feeder.feed(files)
            feeder.close()
            reader.wait_for_requests(expected_decisions, timeout=180, settle=2.0)
        assert not list(client.scan_iter(match=worker_ns + "*")), (
            "SENDGATE_STATUS_VIEW=0: the worker must not write the view"
        )

        code = main(["view", "follow", "--topic-prefix", prefix, "--redis-url", redis_url,
                     "--namespace", follow_ns, "--idle-exit", "3"])
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert code == 0, summary
        assert summary["unreadable"] == 0

        want_states = _changed_states(files)
        assert len(want_states) > 20
        written = {
            k.decode()[len(follow_ns):] for k in client.scan_iter(match=follow_ns + "*")
        } - {META_KEY_SUFFIX}
        assert written == set(want_states)
        for key, a in want_states.items():
            want = project(a.state, a.tenant, a.as_of, POLICIES, (), a.contact_type)
            got = _without_decided_at(_hash(client, follow_ns + key), stamped=True)
            assert got == _without_decided_at(want, stamped=False), key

        # a second follower of the same group has nothing left to do (offsets committed)
        code = main(["view", "follow", "--topic-prefix", prefix, "--redis-url", redis_url,
                     "--namespace", follow_ns, "--idle-exit", "3"])
        again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert code == 0 and again["records"] == 0, again
    finally:
        reader.close()
        _drop(client, worker_ns)
        _drop(client, follow_ns)
        client.close()
