"""The audit's replay step (decode, accept, fold, decide) without a broker.

It must reach exactly the decisions of `sendgate decide` (the same DecisionEngine code
path) on the shared scenario files, and refuse what the worker dead-letters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streams import topics as T
from streams.audit.compare import DecisionView, compare
from streams.audit.replay import (
    EmittedCollector,
    Redecider,
    TopicSet,
    view_of,
    window_predicate,
)
from streams.codecs.json import JsonCodec
from streams.config import DEFAULT_SCENARIO_DIR
from streams.core.engine import DecisionEngine, contact_points
from streams.core.jsonl import decide_lines
from streams.core.keys import input_key
from streams.core.model import Decision
from streams.core.parse import decision_to_dict, parse_event
from streams.core.policy import PolicyBook, policy_book_from_mapping

SECRET = b"unit-audit-key"
FILES = sorted(Path(DEFAULT_SCENARIO_DIR).glob("T*.jsonl"))

Record = tuple[str, int, int, int, bytes, bytes]


def records(lines: list[str]) -> list[Record]:
    """Scenario lines as input-topic records (one partition, timestamps in line order)."""
    codec = JsonCodec()
    out: list[Record] = []
    for i, line in enumerate(lines):
        obj = json.loads(line)
        obj.pop("expect", None)
        spec = T.input_topic_for(obj["type"])
        ev = parse_event(obj)
        key = input_key(ev.tenant, contact_points(ev)[0]).encode()
        out.append((spec.name, 0, i, 1000 + i, key, codec.encode(spec.value_schemas[0], obj)))
    return out


def all_lines() -> list[str]:
    lines = [ln for f in FILES for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        pytest.skip(f"no scenario files in {DEFAULT_SCENARIO_DIR}")
    return lines


def final(decisions: list[Decision]) -> dict[tuple[str, str], DecisionView]:
    out: dict[tuple[str, str], DecisionView] = {}
    for d in decisions:
        v = DecisionView.from_mapping(decision_to_dict(d))
        if v.key in out and out[v.key].revokes and not v.revokes:
            continue
        out[v.key] = v
    return out


def test_replay_reaches_the_decide_commands_decisions() -> None:
    lines = all_lines()
    engine = DecisionEngine(PolicyBook(), SECRET)
    decided = [d for d in decide_lines(lines, engine) if isinstance(d, Decision)]
    expected = final(decided)

    r = Redecider(JsonCodec(), SECRET, TopicSet.from_catalogue(""), PolicyBook())
    for rec in records(lines):
        r.feed(*rec)

    assert r.stats.rejected == {} and r.stats.engine_errors == []
    assert r.baseline_final.by_request == expected
    assert len(r.requests) == len(expected)
    assert r.stats.revocations == sum(1 for d in decided if d.revokes) >= 1
    for d in decided:
        assert view_of(d) == DecisionView.from_mapping(decision_to_dict(d))


def test_window_and_tenant_filter() -> None:
    lines = all_lines()
    recs = records(lines)
    cut = len(recs) // 2
    r = Redecider(
        JsonCodec(),
        SECRET,
        TopicSet.from_catalogue(""),
        PolicyBook(),
        in_window=window_predicate({0: cut}, {0: len(recs)}),
    )
    for rec in recs:
        r.feed(*rec)
    assert r.requests and all(int(q.position.rsplit(":", 1)[1]) >= cut for q in r.requests)
    assert len(r.known_ids) > len(r.window_ids)

    only = Redecider(JsonCodec(), SECRET, TopicSet.from_catalogue(""), PolicyBook(), tenant="t-T53")
    for rec in recs:
        only.feed(*rec)
    assert {q.tenant for q in only.requests} == {"t-T53"}
    assert only.stats.skipped_other_tenant == len(recs) - sum(1 for ln in lines if "t-T53" in ln)


def test_rejects_what_the_worker_dead_letters() -> None:
    lines = [ln for ln in all_lines() if '"t-T01"' in ln]
    good = records(lines)
    topic, part, off, ts, key, value = good[0]
    r = Redecider(JsonCodec(), SECRET, TopicSet.from_catalogue(""), PolicyBook())
    r.feed(topic, part, off, ts, b"wrong|email|key", value)  # wrong key
    r.feed(topic, part, off + 1, ts, key, b"{not json")  # undecodable
    r.feed(topic, part, off + 2, ts, key, None)  # tombstone
    r.feed("not-an-input", part, off + 3, ts, key, value)
    r.feed(topic, part, off + 4, ts, key, b"x" * ((1 << 20) + 1))  # oversize
    assert sum(r.stats.rejected.values()) == 5
    assert set(r.stats.rejected) >= {"wrong_key", "truncated", "wrong_topic", "oversize"}
    assert r.engine.states == {}


def test_collector_keeps_window_and_orphans_only() -> None:
    codec = JsonCodec()
    topics = TopicSet.from_catalogue("")

    def decision(rid: str, verdict: str = "ALLOW", revokes: bool = False) -> bytes:
        obj: dict[str, Any] = {
            "request_id": rid,
            "tenant": "t1",
            "legal_entity": "E",
            "channel": "email",
            "decision": verdict,
            "reason_code": "ALLOW_CONSENT" if verdict == "ALLOW" else "BLOCK_LATE_OBJECTION",
            "legal_basis": "TW117_CONSENT" if verdict == "ALLOW" else "NONE",
            "rule_ids": [],
            "evidence": [],
            "rulebook_version": "x",
            "as_of": "2026-11-23T10:00:00Z",
            "decided_at": "2026-11-23T10:00:01Z",
            "revokes": revokes,
        }
        return codec.encode(T.DECISION_RECORD, obj)

    c = EmittedCollector(codec, topics, {("t1", "w")}, {("t1", "w"), ("t1", "old")})
    c.feed(T.BLOCKED, 0, 0, 5, b"k", decision("old", "BLOCK"))  # before the window: dropped
    c.feed(T.REVOKED, 0, 0, 9, b"k", decision("w", "BLOCK", revokes=True))
    c.feed(T.BLOCKED, 1, 3, 7, b"k", decision("w"))  # later offset, earlier time, no revoke
    c.feed(T.BLOCKED, 1, 4, 8, b"k", decision("ghost", "BLOCK"))
    c.feed(T.BLOCKED, 1, 5, 8, b"k", b"garbage")
    assert set(c.finals) == {("t1", "w"), ("t1", "ghost")}
    assert c.finals[("t1", "w")].view.revokes
    assert sum(c.undecodable.values()) == 1
    comparison = compare([], {}, c.finals, {("t1", "w"), ("t1", "old")})
    assert [f.request_id for f in comparison.findings] == ["ghost"]


def test_sharded_replay_equals_the_single_process_one() -> None:
    from streams.audit.replay import ShardConfig, ShardedRedecider, tenant_shard
    from streams.config import Settings

    lines = all_lines()
    recs = records(lines)
    config = ShardConfig(
        settings=Settings.from_env(),
        secret=SECRET,
        topics=TopicSet.from_catalogue(""),
        baseline=PolicyBook(),
        candidate=None,
        tenant=None,
        window_starts={0: len(recs) // 3},
        window_ends={0: len(recs)},
        keep_contact_keys=True,
    )
    single = config.build(JsonCodec())
    for rec in recs:
        single.feed(*rec)
    expected = single.result()

    # the shard processes rebuild the codec from the settings: feed them Avro
    from streams.codecs.registry import get_codec

    avro = get_codec(Settings.from_env())
    sharded = ShardedRedecider(config, 3)
    try:
        for topic, part, off, ts, key, value in recs:
            obj = json.loads(value)
            sharded.feed(topic, part, off, ts, key, avro.encode(T.INPUT_RECORDS[topic], obj))
        got = sharded.result()
    finally:
        sharded.close()
    assert got.requests == expected.requests
    assert got.baseline == expected.baseline
    assert got.known_ids == expected.known_ids and got.window_ids == expected.window_ids
    assert got.contact_keys == expected.contact_keys
    assert got.stats.events == len(recs) and got.stats.rejected == {}
    assert len({tenant_shard(r[4], 3) for r in recs}) == 3


def test_a_shards_result_travels_back_unchanged() -> None:
    """The packed form a shard sends back (msgpack, decoded by type) is the result itself:
    requests in order, final views by key, id sets, contact keys and counters."""
    from streams.audit.replay import pack_result, unpack_result

    recs = records(all_lines())
    redecider = Redecider(
        JsonCodec(),
        SECRET,
        TopicSet.from_catalogue(""),
        PolicyBook(),
        policy_book_from_mapping({"default": {"soft_opt_in_months": 1}}),
        in_window=lambda _p, offset, _ts: offset % 2 == 0,
        keep_contact_keys=True,
    )
    for rec in recs:
        redecider.feed(*rec)
    result = redecider.result()
    assert result.candidate and result.contact_keys and result.window_ids != result.known_ids
    assert unpack_result(pack_result(result)) == result
