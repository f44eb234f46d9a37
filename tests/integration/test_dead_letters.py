"""Issue 4 §6c: bad records of every kind, interleaved with good ones, on a real worker.

Every bad record must land on the dead-letter topic with the right reason and its
original bytes; every good send request must be decided; nothing else may happen
(decisions + dead letters = inputs, non-negotiable 4).
"""

from __future__ import annotations

import io
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import fastavro
import pytest
from streamkit import codec, make_topics, running, scrape_until, worker

from streams import topics as T
from streams.codecs.schemas import load_schema_store
from streams.codecs.shape import Target, compile_shaper
from streams.core.errors import RejectedRecord
from streams.testing.feeder import Publisher
from streams.testing.observe import OutputReader
from streams.testing.supervisor import free_port
from streams.workload import Workload

pytestmark = pytest.mark.timeout(600)
PER_KIND = 100
HEADER = 10  # 0xC3 0x01 + 8-byte fingerprint


def _wire(record_name: str, obj: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    loaded = load_schema_store().get(record_name)

    def error(reason: Any, message: str, field: str) -> RejectedRecord:
        return RejectedRecord(reason, message, field)

    return loaded, compile_shaper(loaded.schema, Target.WIRE, error)(obj, "")


def _frame(loaded: Any, datum: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, loaded.wire, datum)
    return b"\xc3\x01" + loaded.fingerprint + buf.getvalue()


def bad_records(
    pub: Publisher, wl: Workload, rng: random.Random
) -> list[tuple[str, str, bytes, bytes]]:
    """(expected reason, topic, key, value) for PER_KIND records of every bad kind."""
    out: list[tuple[str, str, bytes, bytes]] = []
    for _ in range(PER_KIND):
        req = wl.send_request(rng.randrange(1000))
        topic, key, good = pub.encode(req)
        out.append(("truncated", topic, key, good[: rng.randrange(HEADER + 1, len(good) - 1)]))
        out.append(("bad_magic", topic, key, b"{\"json\": " + good[2:]))
        out.append(("unknown_fingerprint", topic, key,
                    good[:2] + rng.randbytes(8) + good[HEADER:]))
        out.append(("invalid_enum", topic, key, good[:HEADER] + b"\x0a" + good[HEADER + 1:]))
        loaded, datum = _wire("SendRequest", req)
        datum["occurred_at"] = -86_400_000 * rng.randint(1, 1000)
        out.append(("bad_timestamp", topic, key, _frame(loaded, datum)))
        out.append(("oversize", topic, key, good + b"\x00" * 2_000_000))
        out.append(("wrong_key", topic, b"not-the-contact", good))
        signup = wl.signup(rng.randrange(1000))
        s_topic, s_key, _ = pub.encode(signup)
        loaded, datum = _wire("Signup", signup)
        datum["consent"] = None
        out.append(("missing_field", s_topic, s_key, _frame(loaded, datum)))
    return out


def test_bad_records_are_dead_lettered_and_good_ones_decided(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    prefix = unique_name + "."
    make_topics(kafka_bootstrap, prefix)
    c = codec()
    pub = Publisher(kafka_bootstrap, c, topic_prefix=prefix)
    rng = random.Random(11)
    wl = Workload(contacts=1000, tenants=2, run_id="dl")
    bad = bad_records(pub, wl, rng)
    good = list(wl.events(1200))
    good_requests = {e["request_id"] for e in good if e["type"] == "send_request"}

    items: list[tuple[str | None, str, bytes, bytes]] = [(r, t, k, v) for r, t, k, v in bad]
    items += [(None, *pub.encode(e)) for e in good]
    rng.shuffle(items)
    want_reasons = Counter(r for r, *_ in items if r is not None)
    sent_bad: dict[bytes, str] = {}

    w = worker(kafka_bootstrap, prefix, tmp_path)
    w.metrics_port = free_port()
    with running([w], kafka_bootstrap):
        for reason, topic, key, value in items:
            if reason is not None:
                sent_bad[value[:64] + str(len(value)).encode()] = reason
            pub.produce(topic, key, value)
        pub.flush(120)
        reader = OutputReader(kafka_bootstrap, c, topic_prefix=prefix)
        observed = reader.wait_for_requests(
            good_requests, dead_letters=len(bad), timeout=240, settle=3.0
        )
        reader.close()
        def counted(m: dict[str, float], stage: str) -> float:
            return sum(v for k, v in m.items()
                       if k.startswith("sendgate_outcomes_total") and f'stage="{stage}"' in k)

        metrics = scrape_until(w.metrics_port, lambda m: counted(m, "ingest") >= len(items)
                               and counted(m, "gate") >= len(good))

    got_reasons = Counter(e.record["reason"] for e in observed.dead_letters)
    assert got_reasons == want_reasons
    assert set(want_reasons) == {
        "truncated", "bad_magic", "unknown_fingerprint", "invalid_enum", "missing_field",
        "bad_timestamp", "oversize", "wrong_key",
    }
    for e in observed.dead_letters:
        original = e.record["original_value"]
        assert sent_bad[original[:64] + str(len(original)).encode()] == e.record["reason"]
        assert e.record["source_topic"].startswith(prefix)
        assert e.record["offset"] >= 0
        # issue 12 §2: keyed by the HMAC contact key (or not at all), never the raw key
        assert e.key is None or re.fullmatch(rb"[0-9a-f]{64}", e.key), e.key
        assert e.record["field"], e.record["reason"]
    assert set(observed.decisions) == good_requests
    assert observed.count() >= len(good_requests)
    assert len(observed.finals()) + len(observed.dead_letters) == len(good_requests) + len(bad)
    assert T.DEAD_LETTER in observed.dead_letters[0].topic

    # every input accounted for: forwarded + dead-lettered = inputs; and at the gate every
    # send request was decided or recognised as a duplicate, every fact applied
    def outcome(stage: str, name: str) -> float:
        return metrics.get(f'sendgate_outcomes_total{{outcome="{name}",stage="{stage}"}}', 0.0)

    assert outcome("ingest", "forwarded") + outcome("ingest", "dead_letter") == len(items)
    assert outcome("ingest", "dead_letter") == len(bad)
    assert outcome("gate", "decided") + outcome("gate", "duplicate") == len(good_requests)
    assert outcome("gate", "applied") == len(good) - len(good_requests)
