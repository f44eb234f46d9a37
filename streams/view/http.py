"""HTTP lookups on the status view: "may entity E send marketing on channel C to X now?"

`POST /v1/status` with a JSON body (the contact never appears in a URL, so it never
lands in access logs or proxies' logs) and `Authorization: Bearer <token>` (compared in
constant time). The contact is hashed exactly as the core does (`normalise` +
`contact_key`) and only the hash reaches Redis; the contact is neither logged nor echoed
in the answer (non-negotiable 5). Answers come from the view, a projection: the stream
job stays the authority for every actual send.

    POST /v1/status  {"tenant": "t", "legal_entity": "E", "channel": "email",
                      "contact": {"type": "email", "value": "a@b.nl"}}
    GET  /healthz    {"redis": true}   (no auth, no data)

Under load (issue 12 §4) lookups queue for a Redis connection (`StatusView`'s blocking
pool) rather than fail; only past `max_in_flight` lookups at once, or when no connection
frees up within the pool timeout, the answer is 503 with `Retry-After`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from aiohttp import web

from streams.core.enums import CONTACT_TYPES_OF_CHANNEL, Channel, ContactType
from streams.core.errors import DecodeError, RejectedRecord, Rejection
from streams.core.jsonsafe import loads_bounded
from streams.core.keys import contact_key
from streams.core.model import ContactPoint
from streams.view.projection import StatusView

log = logging.getLogger("sendgate.status_http")

MAX_BODY = 16 * 1024
DEFAULT_MAX_IN_FLIGHT = 4096
RETRY_AFTER_SECONDS = "1"
VIEW_KEY: web.AppKey[StatusView] = web.AppKey("sendgate_view", StatusView)
SECRET_KEY: web.AppKey[bytes] = web.AppKey("sendgate_secret", bytes)
TOKEN_KEY: web.AppKey[bytes] = web.AppKey("sendgate_token", bytes)


class InFlight:
    """Lookups being answered now, against the configured limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.now = 0
        self.refused = 0


LIMIT_KEY: web.AppKey[InFlight] = web.AppKey("sendgate_in_flight", InFlight)


class BadRequest(ValueError):
    """A lookup body that cannot be answered; the message never contains the contact."""


def _text_field(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name}: expected a non-empty string")
    return value


def parse_lookup(body: Any) -> tuple[str, str, str, ContactPoint]:
    """(tenant, legal_entity, channel, contact) from a lookup body, or BadRequest."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    tenant = _text_field(body, "tenant", "default")
    entity = _text_field(body, "legal_entity")
    channel = _text_field(body, "channel")
    try:
        Channel(channel)
    except ValueError:
        raise BadRequest("channel: not a channel of the contract") from None
    contact = body.get("contact")
    if not isinstance(contact, dict):
        raise BadRequest("contact: expected {type, value}")
    try:
        ctype = ContactType(str(contact.get("type")))
    except ValueError:
        raise BadRequest("contact.type: not a contact type of the contract") from None
    value = contact.get("value")
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("contact.value: expected a non-empty string")
    if ctype not in CONTACT_TYPES_OF_CHANNEL[Channel(channel)]:
        raise BadRequest(f"channel: {channel} does not reach a {ctype} contact (contract §1)")
    return tenant, entity, channel, ContactPoint(ctype, value)


def _token_ok(request: web.Request, token_digest: bytes) -> bool:
    """Bearer token check in constant time: digests of equal length are compared, so
    neither the content nor the length of the token leaks through timing."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    given_digest = hashlib.sha256(given.strip().encode("utf-8", "replace")).digest()
    same = hmac.compare_digest(given_digest, token_digest)
    return same and scheme.lower() == "bearer" and bool(given.strip())


def _busy(why: str) -> web.Response:
    return web.json_response(
        {"error": why}, status=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
    )


def _unauthorized() -> web.Response:
    return web.json_response(
        {"error": "unauthorized"}, status=401,
        headers={"WWW-Authenticate": 'Bearer realm="sendgate"'},
    )


async def _status(request: web.Request) -> web.Response:
    app = request.app
    if not _token_ok(request, app[TOKEN_KEY]):
        return _unauthorized()
    if request.content_length is not None and request.content_length > MAX_BODY:
        return web.json_response({"error": "body too large"}, status=413)
    try:
        body = loads_bounded(await request.read(), max_bytes=MAX_BODY)
        tenant, entity, channel, contact = parse_lookup(body)
        ckey = contact_key(app[SECRET_KEY], tenant, contact)
    except BadRequest as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except DecodeError as exc:  # not JSON, too large or too deeply nested
        status = 413 if exc.reason is Rejection.OVERSIZE else 400
        return web.json_response({"error": f"body: {exc.message}"}, status=status)
    except RejectedRecord as exc:  # normalisation failed (e.g. not a phone number)
        return web.json_response(
            {"error": f"contact.value: {exc.reason.value}"}, status=400
        )
    flight = app[LIMIT_KEY]
    if flight.now >= flight.limit:
        flight.refused += 1
        return _busy(f"more than {flight.limit} lookups in flight")
    flight.now += 1
    try:
        answer = await app[VIEW_KEY].lookup(ckey, entity, channel)
    except Exception as exc:
        log.warning("status lookup: view unavailable (%s)", type(exc).__name__)
        return _busy("status view unavailable")
    finally:
        flight.now -= 1
    out = answer.to_dict()
    out["tenant"] = tenant
    return web.json_response(out)


async def _healthz(request: web.Request) -> web.Response:
    ok = await request.app[VIEW_KEY].ping()
    return web.json_response({"redis": ok}, status=200 if ok else 503)


def make_status_app(
    view: StatusView, secret: bytes, token: str, *, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
) -> web.Application:
    """The lookup app; `token` is required (no unauthenticated lookups)."""
    if not token:
        raise ValueError("an API token is required (SENDGATE_API_TOKEN)")
    app = web.Application(client_max_size=MAX_BODY)
    app[VIEW_KEY] = view
    app[SECRET_KEY] = secret
    app[TOKEN_KEY] = hashlib.sha256(token.encode("utf-8")).digest()
    app[LIMIT_KEY] = InFlight(max_in_flight)
    app.router.add_post("/v1/status", _status)
    app.router.add_get("/healthz", _healthz)
    return app
