"""`sendgate dispatch`: the ESP dispatcher for shell-based ESPs (streams.esp).

    sendgate dispatch --print                      # one JSON line per send, when it is due
    sendgate dispatch --exec './send-mail.sh'      # one process per send

`--exec` runs CMD (split like a shell would, not through a shell) once per due send with
the contact value on standard input (one line, so it stays out of the process list and
the environment) and the rest in `SG_*` environment variables: SG_REQUEST_ID, SG_TENANT,
SG_LEGAL_ENTITY, SG_CHANNEL, SG_CONTACT_TYPE, SG_CONTACT_KEY, SG_DISPATCH_AT, SG_TEMPLATE_ID,
SG_CAMPAIGN_ID, SG_PLATFORM, SG_DECLARED_PURPOSE, SG_SERVICE_KIND (empty when null).
`--stdin json` gives the whole send as one JSON line instead. Exit status 0 = delivered;
anything else (or `--timeout`) = retried with exponential backoff; after `--max-attempts`
failures the send goes to the `sendgate.dispatch-dead-letter` topic.

Guarantees (revocation rule, dedupe, at-least-once): see streams/esp.py and README
"For ESP workers". Exit status: 0 stopped (SIGINT/SIGTERM, `--max-seconds`), 1 error.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from streams.config import child_environment
from streams.esp import (
    DEFAULT_MAX_PENDING,
    DispatchConsumer,
    DispatchError,
    DispatchMetrics,
    RetryPolicy,
    Send,
    SendCallback,
    SendFailed,
)

DEFAULT_GROUP = "sendgate-dispatch"


def register(p: argparse.ArgumentParser) -> None:
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--print", action="store_true", dest="print_",
                     help="write each due send as one JSON line to standard output")
    how.add_argument("--exec", metavar="CMD", dest="exec_",
                     help="run CMD once per due send, the contact on its standard input")
    p.add_argument("--stdin", choices=("contact", "json"), default="contact",
                   help="what --exec gets on standard input (default: the contact value)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds before an --exec process counts as failed (default 60)")
    p.add_argument("--group", default=DEFAULT_GROUP,
                   help=f"consumer group (default {DEFAULT_GROUP}); members share the partitions")
    p.add_argument("--max-attempts", type=int, default=5,
                   help="tries per send before it is dead-lettered (default 5)")
    p.add_argument("--backoff", type=float, default=1.0,
                   help="seconds before the first retry, doubled per failure (default 1)")
    p.add_argument("--max-backoff", type=float, default=300.0,
                   help="longest wait between tries, seconds (default 300)")
    p.add_argument("--max-pending", type=int, default=DEFAULT_MAX_PENDING,
                   help=f"approvals held before fetching pauses (default {DEFAULT_MAX_PENDING})")
    p.add_argument("--grace", type=float, default=0.0,
                   help="seconds to wait past dispatch_at (room for gate lag; default 0)")
    p.add_argument("--start-at", default=None, metavar="TIME",
                   help="where a new group begins: 'now' or an ISO time (default: the "
                        "beginning of the retained topic)")
    p.add_argument("--topic-prefix", default="", help="prefix of every topic name (tests)")
    p.add_argument("--metrics-port", type=int, default=0,
                   help="Prometheus endpoint on 127.0.0.1 (0 = off)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop after this many seconds (default: run until SIGINT/SIGTERM)")
    p.add_argument("--loglevel", default="info")


def print_send(send: Send) -> None:
    try:
        sys.stdout.write(json.dumps(send.to_json(), separators=(",", ":")) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader is gone: stop, the send stays uncommitted
        raise DispatchError("standard output closed") from None


def send_env(send: Send) -> dict[str, str]:
    """What --exec gets in its environment: everything but the contact value."""
    fields = {
        "REQUEST_ID": send.request_id, "TENANT": send.tenant,
        "LEGAL_ENTITY": send.legal_entity, "CHANNEL": send.channel,
        "CONTACT_TYPE": send.contact_type, "CONTACT_KEY": send.contact_key,
        "DISPATCH_AT": send.dispatch_at.isoformat(timespec="milliseconds"),
        "TEMPLATE_ID": send.template_id, "CAMPAIGN_ID": send.campaign_id,
        "PLATFORM": send.platform, "DECLARED_PURPOSE": send.declared_purpose,
        "SERVICE_KIND": send.service_kind,
    }
    return {f"SG_{k}": v or "" for k, v in fields.items()}


def exec_sender(command: str, *, stdin: str = "contact", timeout: float = 60.0) -> SendCallback:
    """A callback running `command` per send; non-zero exit raises SendFailed (retried)."""
    argv = shlex.split(command)
    if not argv:
        raise ValueError("--exec needs a command")

    def send(s: Send) -> None:
        data = (json.dumps(s.to_json()) if stdin == "json" else s.contact_value) + "\n"
        try:
            done = subprocess.run(
                argv, input=data.encode("utf-8"), env=child_environment(send_env(s)),
                timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            raise SendFailed(f"timed out after {timeout:g} s") from None
        except OSError as exc:
            raise SendFailed(f"could not start: {exc.strerror}") from None
        if done.returncode != 0:
            raise SendFailed(f"exit status {done.returncode}")

    return send


def start_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    if value == "now":
        return datetime.now(UTC)
    t = datetime.fromisoformat(value)
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.loglevel.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    callback = print_send if args.print_ else exec_sender(
        args.exec_, stdin=args.stdin, timeout=args.timeout
    )
    metrics = DispatchMetrics()
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr="127.0.0.1", registry=metrics.registry)
    retry = RetryPolicy(
        max_attempts=args.max_attempts,
        base=timedelta(seconds=args.backoff),
        cap=timedelta(seconds=args.max_backoff),
    )
    try:
        with DispatchConsumer(
            callback, group_id=args.group, topic_prefix=args.topic_prefix, retry=retry,
            max_pending=args.max_pending, metrics=metrics,
            grace=timedelta(seconds=args.grace), start_at=start_time(args.start_at),
        ) as dispatcher:
            dispatcher.run(max_seconds=args.max_seconds)
    except DispatchError as exc:
        logging.getLogger("sendgate.esp").error("dispatcher stopped: %s", exc)
        return 1
    return 0
