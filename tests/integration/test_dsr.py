"""Privacy requests (R-DSR-1 access, R-DSR-2 erasure) at the core + shell + view level.

Events go through the worker's gate (`Gate.admit` -> `Gate.fold` over a `MemoryStore`,
Avro on the wire) and every fold is projected into a real Redis with `StatusView.apply`,
as the view follower does from the changelog. The stream end to end (Kafka runtime) is
tests/integration/test_stream_scenarios.py; here the changelog and output topics are
written directly for `sendgate export`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from unit.view.viewkit import leaks, load, raw_forms, scenario_files

from streams import topics as T
from streams.codecs.avro import AvroCodec
from streams.core.engine import dump_state
from streams.core.keys import input_key
from streams.core.model import ContactPoint, ContactState, ContactType
from streams.core.policy import PolicyBook
from streams.gate.gate import Admitted, Folded, Gate, MemoryStore
from streams.gate.records import InRecord, OutRecord
from streams.gate.state_codec import encode_state
from streams.view.projection import META_FIELD, META_KEY_SUFFIX, StatusView

SECRET = "dsr-test-key"
ENTITY = "Sieradenwinkel Goudglans BV"
ADDRESS = "l.vanes@outlook.com"


@dataclass
class Shell:
    """The worker's gate without Kafka: states by key, records by output topic."""

    prefix: str = ""
    codec: AvroCodec = field(default_factory=AvroCodec)
    store: MemoryStore = field(default_factory=MemoryStore)
    outputs: list[OutRecord] = field(default_factory=list)
    steps: list[tuple[str, bytes, Folded]] = field(default_factory=list)
    offset: int = 0

    def __post_init__(self) -> None:
        self.gate = Gate(self.codec, PolicyBook.default(), SECRET.encode(),
                         topic_prefix=self.prefix)

    @property
    def states(self) -> dict[bytes, ContactState]:
        return self.store.states

    async def feed(self, obj: dict[str, Any], view: StatusView) -> None:
        obj = {k: v for k, v in obj.items() if k != "expect"}
        spec = T.input_topic_for(obj["type"])
        first = obj["contact"] if "contact" in obj else obj["contacts"][0]["contact"]
        key = input_key(obj.get("tenant", "default"),
                        ContactPoint(ContactType(first["type"]), first["value"])).encode()
        value = self.codec.encode(T.RECORD_FOR_EVENT_TYPE[obj["type"]], obj)
        self.offset += 1
        adm = self.gate.admit(
            InRecord(self.prefix + spec.name, 0, self.offset, 0, key, value))
        assert isinstance(adm, Admitted), adm
        for route in adm.routes:
            result = self.gate.fold(self.store, self.gate.contact_event(adm, route),
                                    adm.record)
            assert result.dead_letter is None
            self.outputs.extend(result.outputs)
            self.steps.append((obj["event_id"], route.key, result))
            # as the view follower does with the changelog record of this state
            await view.apply(route.key, result.state, result.decisions, result.event.tenant,
                             result.event.occurred_at)


def _t100_with_history() -> list[dict[str, Any]]:
    """T100 (erased person re-imported → BLOCK_ERASED) with more facts before the
    erasure: a paid order and an approved campaign mail, so there is something to delete."""
    t100 = load(next(p for p in scenario_files() if p.stem == "T100"))
    t01 = load(next(p for p in scenario_files() if p.stem == "T01"))
    order = copy.deepcopy(t01[0])
    order.update(event_id="DSR-e00", occurred_at="2025-01-15T12:00:00+01:00",
                 tenant="t-T100", legal_entity=ENTITY, order_id="GG-2025-0001",
                 product_categories=["sieraden"])
    order["contacts"][0]["contact"] = {"type": "email", "value": "  L.vanEs@Outlook.com"}
    early = copy.deepcopy(t100[-1])
    early.update(event_id="DSR-e01", request_id="DSR-r01",
                 occurred_at="2025-03-01T10:00:00+01:00")
    early.pop("expect", None)
    return [order, t100[0], early, *t100[1:]]


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _redis_text(client: redis.Redis, ns: str) -> dict[str, str]:
    out = {}
    for raw in client.scan_iter(match=ns + "*", count=1000):
        values = client.hgetall(raw)
        out[raw.decode()] = json.dumps(
            {_str(k): _str(v) for k, v in values.items()}, ensure_ascii=False
        )
    return out


def test_erasure_deletes_facts_in_state_and_view_and_blocks_reimport(redis_url: str) -> None:
    """R-DSR-2: after `erasure_completed` the state keeps only the keyed-hash suppression,
    the view shows only the suppression, a later import of the same address is still
    BLOCK_ERASED, and no raw address remains in the state, the view or the blocked
    decision records."""
    events = _t100_with_history()
    forms = set().union(*(raw_forms(c) for c in (
        {"type": "email", "value": ADDRESS}, {"type": "email", "value": "  L.vanEs@Outlook.com"}
    )))
    ns = f"sgtest:{uuid.uuid4().hex[:8]}:view:"
    shell = Shell()
    client = redis.Redis.from_url(redis_url)

    async def go() -> None:
        view = StatusView(redis_url, namespace=ns)
        try:
            for obj in events:
                await shell.feed(obj, view)
                assert await view.flush(timeout=10)
                if obj["event_id"] == "DSR-e01":
                    # before the erasure: consent basis and the ALLOW are in the view
                    a = await view.lookup(key_hex, ENTITY, "email")
                    assert a.marketing_allowed and a.reason_code == "ALLOW_CONSENT"
                    assert a.last_decision and a.last_decision["request_id"] == "DSR-r01"
                if obj["event_id"] == "T100-e03":
                    fields = {_str(k): _str(v)
                              for k, v in client.hgetall(ns + key_hex).items()}
                    assert "x" in json.loads(fields[META_FIELD])
                    # only the suppression: no field left of the deleted facts, no
                    # decision taken before the erasure, the erasing entity BLOCK_ERASED
                    assert not any(f.endswith("|d") for f in fields)
                    owners = {f.rsplit("|", 1)[0] for f in fields if f != META_FIELD}
                    assert owners == {"*", ENTITY}
                    for name, raw in fields.items():
                        if name.startswith(ENTITY + "|"):
                            own = json.loads(raw)
                            assert own["r"] == "BLOCK_ERASED" and own["ok"] == 0
                            assert own["sk"] in ("erasure_request", "erasure_completed")
                            assert "e" not in own
            final = await view.lookup(key_hex, ENTITY, "email")
            assert not final.marketing_allowed and final.reason_code == "BLOCK_ERASED"
            assert final.erased and final.suppressed
            assert final.last_decision and final.last_decision["reason_code"] == "BLOCK_ERASED"
        finally:
            await view.aclose()

    from streams.core.keys import contact_key

    key_hex = contact_key(SECRET.encode(), "t-T100", ContactPoint(ContactType.EMAIL, ADDRESS))
    try:
        asyncio.run(go())
        # the state right after the erasure: facts deleted, the suppression kept
        erased = next(r for eid, _, r in shell.steps if eid == "T100-e03").state
        dumped = dump_state(erased)
        assert dumped["orders"] == [] and dumped["consents"] == []
        assert dumped["touchpoints"] == []
        kinds = {s["kind"] for s in dumped["suppressions"]}
        assert "erasure_completed" in kinds
        # the final state: only what came after the erasure (the blocked import)
        state = shell.states[key_hex.encode()]
        final_dump = dump_state(state)
        assert final_dump["orders"] == []
        assert [c["event_id"] for c in final_dump["consents"]] == ["T100-e04"]
        for _, _, r in shell.steps:  # no raw address in any state ever written
            assert not leaks(json.dumps(dump_state(r.state)), forms)
            assert not leaks(encode_state(r.state).decode("utf-8", "surrogateescape"), forms)
        # the later import of the same address is still blocked
        final_steps = [s for s in shell.steps if s[0] == "T100-e05"]
        assert [d.reason_code for d in final_steps[0][2].decisions] == ["BLOCK_ERASED"]
        # the view: every key and value of this view, meta included
        texts = _redis_text(client, ns)
        assert ns + key_hex in texts
        for k, text in texts.items():
            assert not leaks(k, forms) and not leaks(text, forms), k
        # the blocked decisions as encoded for sends.blocked / sends.revoked
        blocked = [r for r in shell.outputs if r.topic in (T.BLOCKED, T.REVOKED)]
        assert blocked
        for rec in blocked:
            for form in forms:
                assert form.encode() not in rec.value and form.encode() not in (rec.key or b"")
            assert rec.key == key_hex.encode()
        # the only record with the address is the approval before the erasure (for the ESP)
        approved = [r for r in shell.outputs if r.topic == T.APPROVED]
        assert len(approved) == 1
    finally:
        keys = list(client.scan_iter(match=ns + "*"))
        if keys:
            client.delete(*keys)
        client.close()


# --------------------------------------------------------------------------- export


def _publish(kafka_admin: Any, bootstrap: str, prefix: str, shell: Shell) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    from streams.commands.view import changelog_topic

    names = [changelog_topic("sendgate", prefix),
             *(prefix + t for t in (T.APPROVED, T.BLOCKED, T.REVOKED))]
    futures = kafka_admin.create_topics(
        [NewTopic(n, num_partitions=2, replication_factor=1) for n in names])
    for f in futures.values():
        f.result(timeout=30)
    # partitioned as every sendgate producer does (murmur2 of the key): the export reads
    # only the contact key's partition
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for _, key, result in shell.steps:  # the changelog gets every state
        producer.produce(names[0], key=key, value=encode_state(result.state))
    for rec in shell.outputs:
        producer.produce(rec.topic, key=rec.key, value=rec.value)
    assert producer.flush(30) == 0


def _drop_topics(kafka_admin: Any, prefix: str) -> None:
    from streams.commands.view import changelog_topic

    names = [changelog_topic("sendgate", prefix),
             *(prefix + t for t in (T.APPROVED, T.BLOCKED, T.REVOKED))]
    for f in kafka_admin.delete_topics(names, operation_timeout=30).values():
        f.result(timeout=30)


def _export(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            *args: str) -> dict[str, Any]:
    from streams.cli import main

    monkeypatch.setenv("SENDGATE_HMAC_KEY", SECRET)
    capsys.readouterr()
    assert main(["export", *args]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


@pytest.mark.timeout(180)
def test_export_lists_facts_sources_and_decisions(
    kafka_admin: Any, kafka_bootstrap: str, redis_url: str, unique_name: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """R-DSR-1 / T110: the access report lists the source of the e-mail address (the
    order, obtained at sale) and of the consent (its proof reference), and the decisions
    taken, from the changelog and the output topics."""
    prefix = unique_name + "."
    t110 = load(next(p for p in scenario_files() if p.stem == "T110"))
    consent = copy.deepcopy(load(next(p for p in scenario_files() if p.stem == "T100"))[0])
    consent.update(event_id="T110-x01", tenant="t-T110",
                   legal_entity="Printshop Drukwerk Direct BV",
                   occurred_at="2026-11-23T09:25:00+01:00",
                   contact={"type": "email", "value": "c.vandermolen@outlook.com"})
    consent["consent"].update(consent_id="DD-C-77",
                              named_legal_entity="Printshop Drukwerk Direct BV",
                              proof_ref="doi:drukwerkdirect:2026-11-23:77")
    shell = Shell(prefix=prefix)
    ns = f"sgtest:{uuid.uuid4().hex[:8]}:view:"

    async def go() -> None:
        view = StatusView(redis_url, namespace=ns)
        for obj in [*t110, consent]:
            await shell.feed(obj, view)
        await view.aclose()

    asyncio.run(go())
    _publish(kafka_admin, kafka_bootstrap, prefix, shell)
    try:
        report = _export(monkeypatch, capsys, " C.VanDerMolen@Outlook.com ", "--tenant",
                         "t-T110", "--topic-prefix", prefix)
        assert report["subject"] == {"type": "email", "value": "c.vandermolen@outlook.com"}
        assert report["state_held"] and not report["erased"]
        order = report["facts"]["orders"][0]
        assert order["came_from"]["input_topic"] == "orders"
        assert order["came_from"]["event_ids"] == ["T110-e01"]
        assert order["came_from"]["obtained_at_sale"] is True
        assert order["fact"]["order_id"] == "DD-2026-61004"
        cons = report["facts"]["consents"][0]
        assert cons["came_from"]["input_topic"] == "signups"
        assert cons["came_from"]["event_ids"] == ["T110-x01"]
        assert cons["came_from"]["proof_ref"] == "doi:drukwerkdirect:2026-11-23:77"
        assert cons["came_from"]["wording_version"] == "nieuwsbrief-optin-v2"
        decisions = {d["request_id"]: d for d in report["decisions"]}
        d = decisions["T110-r01"]
        assert d["reason_code"] == "ALLOW_SERVICE_MESSAGE"
        assert d["found_on"]["record"]["topic"] == prefix + T.APPROVED
        assert d["found_on"]["record"]["record_also_carries_the_contact"] is True
        assert d["decided_at"]
        assert "Printshop Drukwerk Direct BV" in report["recipients"]["legal_entities"]
        assert report["state_source"]["topic"] == f"{prefix}sendgate-contact-state-changelog"

        from streams.cli import main  # issue 12 §6: an unknown contact exits non-zero

        capsys.readouterr()
        code = main(["export", "nobody@example.nl", "--tenant", "t-T110",
                     "--topic-prefix", prefix])
        captured = capsys.readouterr()
        assert code == 3
        assert json.loads(captured.out)["state_held"] is False
        assert "nothing is held" in captured.err
    finally:
        _drop_topics(kafka_admin, prefix)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=ns + "*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.mark.timeout(180)
def test_export_after_erasure_shows_only_the_suppression(
    kafka_admin: Any, kafka_bootstrap: str, redis_url: str, unique_name: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = unique_name + "."
    shell = Shell(prefix=prefix)
    ns = f"sgtest:{uuid.uuid4().hex[:8]}:view:"

    async def go() -> None:
        view = StatusView(redis_url, namespace=ns)
        events = _t100_with_history()
        cut = next(i for i, o in enumerate(events) if o["event_id"] == "T100-e03")
        for obj in events[: cut + 1]:  # up to erasure_completed
            await shell.feed(obj, view)
        await view.aclose()

    asyncio.run(go())
    _publish(kafka_admin, kafka_bootstrap, prefix, shell)
    try:
        report = _export(monkeypatch, capsys, ADDRESS, "--tenant", "t-T100",
                         "--topic-prefix", prefix, "--no-topic-scan")
        assert report["erased"] is True
        facts = report["facts"]
        assert facts["orders"] == [] and facts["consents"] == [] and facts["touchpoints"] == []
        assert {s["fact"]["kind"] for s in facts["suppressions"]} >= {"erasure_completed"}
        assert all(s["came_from"]["input_topic"] == "unsubscribes"
                   for s in facts["suppressions"])
    finally:
        _drop_topics(kafka_admin, prefix)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=ns + "*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_meta_key_is_not_a_contact(redis_url: str) -> None:
    """`~meta` sorts apart from hex contact keys and is skipped by rebuild's scan."""
    ns = f"sgtest:{uuid.uuid4().hex[:8]}:view:"

    async def go() -> list[str]:
        view = StatusView(redis_url, namespace=ns)
        await view.mark_rebuilt()
        keys = await view.scan_contact_keys()
        await view.delete([META_KEY_SUFFIX])
        await view.aclose()
        return keys

    assert asyncio.run(go()) == []
