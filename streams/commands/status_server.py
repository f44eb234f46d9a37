"""`sendgate status-server`: serve status lookups over HTTP (POST /v1/status).

Needs SENDGATE_API_TOKEN (Bearer token of every lookup) and SENDGATE_HMAC_KEY (to hash
contacts as the worker does). Binds 127.0.0.1 by default; put TLS in front of it when
exposing it. Access logs show method, path and status only: the contact travels in the
POST body and is never logged.
"""

from __future__ import annotations

import argparse
import logging
import sys


def register(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = __doc__
    p.add_argument("--host", default=None,
                   help="address to bind (default $SENDGATE_STATUS_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None,
                   help="port (default $SENDGATE_STATUS_PORT or 8088)")
    p.add_argument("--redis-url", default=None, help="default $SENDGATE_REDIS_URL")
    p.add_argument("--namespace", default=None,
                   help="Redis key prefix (default $SENDGATE_VIEW_NAMESPACE or sg:view:)")
    p.add_argument("--max-in-flight", type=int, default=4096,
                   help="lookups answered at once; past it 503 + Retry-After (default 4096)")
    p.add_argument("--redis-connections", type=int, default=64,
                   help="Redis connections shared by the lookups; more wait (default 64)")
    p.add_argument("--loglevel", default=None,
                   help="default $SENDGATE_LOGLEVEL or warning")


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from streams.config import MissingSecret, Settings, hmac_key
    from streams.view.http import make_status_app
    from streams.view.projection import DEFAULT_NAMESPACE, StatusView

    settings = Settings.from_env()
    logging.basicConfig(level=(args.loglevel or settings.loglevel).upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.api_token:
        print("sendgate status-server: SENDGATE_API_TOKEN is not set (lookups need a token)",
              file=sys.stderr)
        return 2
    try:
        secret = hmac_key()
    except MissingSecret as exc:
        print(f"sendgate status-server: {exc}", file=sys.stderr)
        return 2

    async def build() -> web.Application:
        view = StatusView(args.redis_url or settings.redis_url,
                          namespace=(args.namespace or settings.view.namespace
                                     or DEFAULT_NAMESPACE),
                          reader_connections=args.redis_connections)
        app = make_status_app(view, secret, settings.api_token or "",
                              max_in_flight=args.max_in_flight)

        async def close_view(_: web.Application) -> None:
            await view.aclose(flush_timeout=0)

        app.on_cleanup.append(close_view)
        return app

    host = args.host or settings.view.status_host
    port = settings.view.status_port if args.port is None else args.port
    web.run_app(build(), host=host, port=port, backlog=2048,
                access_log_format='%a %t "%r" %s %b %Tfs', print=None)
    return 0
