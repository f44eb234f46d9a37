"""streams.client: builders produce contract-valid events; publish picks topic, key, headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from streams import client as sdk
from streams.codecs.avro import AvroCodec
from streams.codecs.base import EncodeError
from streams.codecs.json import JsonCodec
from streams.config import DEFAULT_SCENARIO_DIR
from streams.core.errors import ContractError, DecodeError, Rejection

CET = timezone(timedelta(hours=1))
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class FakeMessage:
    def __init__(self, topic: str, key: bytes) -> None:
        self._topic, self._key = topic, key

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes:
        return self._key


class FakeProducer:
    """Records produce() calls; delivers (or fails) on flush like librdkafka does."""

    def __init__(self, fail: bool = False, queue_full_once: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.pending: list[tuple[Any, FakeMessage]] = []
        self.fail = fail
        self.queue_full_once = queue_full_once

    def produce(
        self, topic: str, *, value: bytes, key: bytes, headers: Any, on_delivery: Any
    ) -> None:
        if self.queue_full_once:
            self.queue_full_once = False
            raise BufferError("queue full")
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": dict(headers)})
        self.pending.append((on_delivery, FakeMessage(topic, key)))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for callback, msg in self.pending:
            callback("broker says no" if self.fail else None, msg)
        self.pending.clear()
        return 0


def make(fake: FakeProducer, prefix: str = "") -> sdk.SendgateProducer:
    return sdk.SendgateProducer(codec=AvroCodec(), producer=fake, topic_prefix=prefix)


def events() -> list[dict[str, Any]]:
    at = datetime(2026, 11, 23, 9, 41, tzinfo=CET)
    mail = sdk.email("  M.Huisman@Ziggo.NL ")
    return [
        sdk.order(
            legal_entity="Fietsenwinkel Noord BV", order_id="FN-1", tenant="t1",
            paid_amount_cents=4995, product_categories=["fietsaccessoires"],
            contacts=[sdk.contact_fact(mail, optout_offered=True, optout_method="link"),
                      sdk.phone("06 12345678")],
            occurred_at=at,
        ),
        sdk.signup(
            legal_entity="Fietsenwinkel Noord BV", contact=mail, tenant="t1", occurred_at=at,
            consent=sdk.consent(
                consent_id="c1", channels=["email"], scope=["newsletter"],
                named_legal_entity="Fietsenwinkel Noord BV", mechanism="double_opt_in",
                source="own_form", wording_version="v1", proof_ref="doi:1",
            ),
        ),
        sdk.unsubscribe(
            legal_entity="Fietsenwinkel Noord BV", contact=mail, source="one_click",
            channels=["email"], linked_contacts=[sdk.phone("+31612345678")], tenant="t1",
            occurred_at=at,
        ),
        sdk.send_request(
            legal_entity="Fietsenwinkel Noord BV", contact=mail, channel="email",
            declared_purpose="commercial", tenant="t1", request_id="r1",
            content=sdk.content(content_scope="newsletter", has_promo=True,
                                promo_categories=["fietsaccessoires"]),
            sender=sdk.sender("Fietsenwinkel Noord", has_identity_block=True,
                              has_unsubscribe=True),
            dispatch_at=at + timedelta(minutes=5), occurred_at=at,
        ),
    ]


def test_builders_write_contract_json() -> None:
    codec = JsonCodec()
    for event in events():
        json.dumps(event)  # plain JSON
        assert event["occurred_at"] == "2026-11-23T09:41:00+01:00"  # offset kept
        record = sdk.input_topic_for(event["type"]).value_schemas[0]
        codec.normalise(record, event)  # valid against the schema


def test_builder_defaults() -> None:
    request = sdk.send_request(
        legal_entity="Shop BV", contact=sdk.email("a@b.nl"), channel="email",
        declared_purpose="service", service_kind="invoice",
    )
    assert request["tenant"] == "default"
    assert request["sender"]["display_name"] == "Shop BV"
    assert request["content"]["content_scope"] == "offers"
    assert "dispatch_at" not in request  # = occurred_at
    assert datetime.fromisoformat(request["occurred_at"]).tzinfo is not None
    assert request["event_id"] != sdk.send_request(
        legal_entity="Shop BV", contact=sdk.email("a@b.nl"), channel="email",
        declared_purpose="service",
    )["event_id"]


def test_builder_guards() -> None:
    with pytest.raises(ValueError, match="naive"):
        sdk.order(legal_entity="X", order_id="o", contacts=[sdk.email("a@b.nl")],
                  occurred_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="at least one contact"):
        sdk.order(legal_entity="X", order_id="o", contacts=[])
    with pytest.raises(ValueError, match="kind"):
        sdk.signup(legal_entity="X", contact=sdk.email("a@b.nl"))
    with pytest.raises(ValueError, match="consent"):
        sdk.signup(legal_entity="X", contact=sdk.email("a@b.nl"), kind="survey",
                   consent={"consent_id": "c"})


def test_publish_topic_key_headers() -> None:
    fake = FakeProducer()
    producer = make(fake, prefix="p.")
    for event in events():
        producer.publish(event, traceparent=TRACEPARENT)
    assert producer.flush() == 0
    assert producer.delivered == 4
    assert [s["topic"] for s in fake.sent] == [
        "p.orders", "p.signups", "p.unsubscribes", "p.send-requests"
    ]
    # every event of the e-mail address has the same key: normalised, order's first contact
    assert {s["key"] for s in fake.sent} == {b"t1|email|m.huisman@ziggo.nl"}
    for sent, event in zip(fake.sent, events(), strict=True):
        assert sent["headers"]["content-type"] == AvroCodec.content_type.encode()
        assert sent["headers"]["event-type"] == event["type"].encode()
        assert sent["headers"]["traceparent"] == TRACEPARENT.encode()
        _, decoded = AvroCodec().decode(sent["value"])
        assert decoded["type"] == event["type"]


def test_phone_key_is_e164() -> None:
    fake = FakeProducer()
    event = sdk.send_request(legal_entity="X", contact=sdk.phone("06 12345678"),
                             channel="sms", declared_purpose="commercial", tenant="t")
    make(fake).publish(event)
    assert fake.sent[0]["key"] == b"t|phone|+31612345678"


def test_publish_validates_before_sending() -> None:
    fake = FakeProducer()
    producer = make(fake)
    bad = events()[3]
    bad["channel"] = "carrier_pigeon"
    with pytest.raises(EncodeError) as info:
        producer.publish(bad)
    assert (info.value.reason, info.value.field) == (Rejection.INVALID_ENUM, "channel")
    with pytest.raises(EncodeError):
        producer.publish({"type": "invoice"})
    with pytest.raises(ContractError):  # not a possible phone number: cannot be keyed
        producer.publish(sdk.signup(legal_entity="X", kind="survey", contact=sdk.phone("12")))
    sms_to_email = sdk.send_request(legal_entity="X", contact=sdk.email("a@b.nl"),
                                    channel="sms", declared_purpose="commercial")
    with pytest.raises(ContractError) as info:  # schema-valid, but breaks contract §1
        producer.publish(sms_to_email)
    assert not isinstance(info.value, EncodeError)
    with pytest.raises(ValueError, match="traceparent"):
        producer.publish(events()[0], traceparent="nope")
    assert fake.sent == []


def test_queue_full_is_retried() -> None:
    fake = FakeProducer(queue_full_once=True)
    make(fake).publish(events()[0])
    assert len(fake.sent) == 1


def test_delivery_failures_surface_on_flush() -> None:
    producer = make(FakeProducer(fail=True))
    producer.publish(events()[0])
    with pytest.raises(sdk.DeliveryFailed) as info:
        producer.flush()
    assert info.value.failures[0].error == "broker says no"


def test_publish_jsonl_drops_expect_and_keeps_order() -> None:
    fake = FakeProducer()
    path = DEFAULT_SCENARIO_DIR / "T53.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not available")
    count = make(fake).publish_jsonl(path)
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    assert count == len(lines) == len(fake.sent)
    assert [AvroCodec().decode(s["value"])[1]["event_id"] for s in fake.sent] == [
        line["event_id"] for line in lines
    ]


def test_publish_jsonl_reports_the_line(tmp_path: Path) -> None:
    good = json.dumps(events()[0])
    bad = dict(events()[1], kind="lottery")
    path = tmp_path / "feed.jsonl"
    path.write_text(f"{good}\n\n{json.dumps(bad)}\n")
    with pytest.raises(EncodeError) as info:
        make(FakeProducer()).publish_jsonl(path)
    assert f"{path}:3:" in info.value.message
    path.write_text("{oops\n")
    with pytest.raises(DecodeError) as bad_json:
        make(FakeProducer()).publish_jsonl(path)
    assert bad_json.value.reason is Rejection.BAD_JSON


def test_timestamps_keep_the_instant() -> None:
    fake = FakeProducer()
    make(fake).publish(events()[3])
    decoded = AvroCodec().decode(fake.sent[0]["value"])[1]
    assert decoded["dispatch_at"] == datetime(2026, 11, 23, 8, 46, tzinfo=UTC)
