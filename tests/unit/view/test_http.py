"""The lookup endpoint against a stand-in view (no Redis): token auth, POST body only,
the contact hashed like the core and never echoed or logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.commands.status import guess_type
from streams.core.enums import ContactType
from streams.core.keys import contact_key
from streams.core.model import ContactPoint
from streams.view.http import BadRequest, make_status_app, parse_lookup
from streams.view.projection import Answer, StatusView

SECRET = b"http-test-key"
TOKEN = "s3cret-token"
ADDRESS = "  Jan.Jansen@Example.NL "


class FakeView:
    """Records the keys it is asked about; answers "allowed" for one key."""

    def __init__(self, allowed_key: str) -> None:
        self.allowed_key = allowed_key
        self.asked: list[tuple[str, str, str]] = []

    async def lookup(self, ckey: str, entity: str, channel: str) -> Answer:
        self.asked.append((ckey, entity, channel))
        ok = ckey == self.allowed_key
        return Answer(
            known=ok, legal_entity=entity, channel=channel, marketing_allowed=ok,
            reason_code="ALLOW_CONSENT" if ok else None,
            legal_basis="TW117_CONSENT" if ok else None, evidence=[], suppressed=False,
            suppression=None,
            last_decision=None, as_of="2026-11-23T09:00:00Z", tenant="t", erased=False,
            view_stale=False,
        )

    async def ping(self) -> bool:
        return True


def _run(app: web.Application, body: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def go() -> None:
        async with TestClient(TestServer(app)) as client:
            await body(client)

    asyncio.run(go())


def _body(value: str = ADDRESS, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tenant": "t", "legal_entity": "Shop BV", "channel": "email",
        "contact": {"type": "email", "value": value},
    }
    body.update(over)
    return body


def _app() -> tuple[web.Application, FakeView]:
    key = contact_key(SECRET, "t", ContactPoint(ContactType.EMAIL, "jan.jansen@example.nl"))
    view = FakeView(key)
    return make_status_app(view, SECRET, TOKEN), view  # type: ignore[arg-type]


def test_lookup_hashes_like_the_core_and_never_echoes(caplog: pytest.LogCaptureFixture) -> None:
    app, view = _app()
    caplog.set_level(logging.DEBUG)

    async def body(client: TestClient[Any, Any]) -> None:
        resp = await client.post("/v1/status", json=_body(),
                                 headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 200
        text = await resp.text()
        data = await resp.json()
        assert data["marketing_allowed"] is True and data["reason_code"] == "ALLOW_CONSENT"
        assert "jan.jansen" not in text.lower()

    _run(app, body)
    assert view.asked == [(view.allowed_key, "Shop BV", "email")]
    assert "jan.jansen" not in caplog.text.lower()


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic " + TOKEN, "Bearer ", TOKEN])
def test_401_without_the_token(header: str | None) -> None:
    app, view = _app()

    async def body(client: TestClient[Any, Any]) -> None:
        headers = {"Authorization": header} if header is not None else {}
        resp = await client.post("/v1/status", json=_body(), headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")

    _run(app, body)
    assert view.asked == []  # nothing looked up, nothing hashed


def test_get_is_not_a_lookup() -> None:
    """Addresses never travel in a URL: the lookup is POST only."""
    app, _ = _app()

    async def body(client: TestClient[Any, Any]) -> None:
        resp = await client.get("/v1/status", params={"contact": "x@y.nl"},
                                headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 405

    _run(app, body)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (_body(channel="pigeon"), "channel"),
        (_body(legal_entity=""), "legal_entity"),
        (_body(contact={"type": "fax", "value": "x"}), "contact.type"),
        (_body(value=" "), "contact.value"),
        (_body(channel="sms", contact={"type": "phone", "value": "jan-x"}), "contact.value"),
        (_body(contact={"type": "phone", "value": "0612345678"}), "channel"),
        ([1, 2], "body"),
    ],
)
def test_400_names_the_field_never_the_value(payload: Any, field: str) -> None:
    app, view = _app()

    async def body(client: TestClient[Any, Any]) -> None:
        resp = await client.post("/v1/status", json=payload,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 400
        error = (await resp.json())["error"]
        assert error.startswith(field)
        assert "jan" not in error and "0612345678" not in error

    _run(app, body)
    assert view.asked == []


def test_bad_json_and_healthz() -> None:
    app, _ = _app()

    async def body(client: TestClient[Any, Any]) -> None:
        resp = await client.post("/v1/status", data=b"{nope",
                                 headers={"Authorization": f"Bearer {TOKEN}",
                                          "Content-Type": "application/json"})
        assert resp.status == 400
        resp = await client.get("/healthz")
        assert resp.status == 200 and (await resp.json()) == {"redis": True}

    _run(app, body)


def test_no_app_without_a_token() -> None:
    with pytest.raises(ValueError, match="token"):
        make_status_app(StatusView.__new__(StatusView), SECRET, "")


def test_parse_lookup_defaults_tenant() -> None:
    body = _body()
    del body["tenant"]
    tenant, entity, channel, contact = parse_lookup(body)
    assert (tenant, entity, channel, contact.type) == ("default", "Shop BV", "email", "email")
    with pytest.raises(BadRequest):
        parse_lookup({"legal_entity": "E", "channel": "email", "contact": "a@b.nl"})


@pytest.mark.parametrize(
    ("value", "kind"),
    [("a@b.nl", "email"), ("06 12345678", "phone"), ("+31 6 1234 5678", "phone"),
     ("Dorpsstraat 1", None)],
)
def test_cli_guesses_the_contact_type(value: str, kind: str | None) -> None:
    assert guess_type(value) == kind


def test_hostile_bodies_are_client_errors_not_500() -> None:
    """Issue 12 §1: deeply nested or oversize JSON is a 400/413 with a clear message."""
    app, view = _app()
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    async def body(client: TestClient[Any, Any]) -> None:
        deep = "[" * 100_000 + "]" * 100_000
        for payload in (deep[:16_000], '{"a":' * 40 + "1" + "}" * 40):
            resp = await client.post("/v1/status", data=payload, headers=auth)
            assert resp.status == 400, await resp.text()
            assert "nested deeper" in (await resp.json())["error"]

        async def chunks() -> Any:
            for _ in range(40):
                yield b" " * 1024

        resp = await client.post("/v1/status", data=chunks(), headers=auth)
        assert resp.status == 413
        resp = await client.post("/v1/status", data=b"{", headers=auth)
        assert resp.status == 400
        assert view.asked == []

    _run(app, body)
