"""`sendgate view rebuild`: rebuild the Redis status view from the changelog topic.

The view is a projection (streams/view/projection.py); its source of truth is the contact-state
table, whose changelog topic `{prefix}{app_id}-contact-state-changelog` holds every
state. The rebuild reads Kafka, not a worker's RocksDB, so it works with no worker
running and on any machine: every partition from the beginning up to the high watermark
seen at start, the last value per key wins, a tombstone deletes the key. Views of keys
absent from the changelog are deleted (unless --keep-orphans), then the "stale" flag is
cleared.

Run it after a Redis that lost its data, or when lookups report `view_stale`. With the
worker running, a key updated during the rebuild may be written back one state old for
a moment; its next event corrects it (stop the worker for an exact rebuild).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.config import Settings

log = logging.getLogger("sendgate.view")

STATE_TABLE = "contact-state"


def changelog_topic(app_id: str, topic_prefix: str = "") -> str:
    """The faust changelog topic of the contact-state table (app id = prefix + app_id)."""
    return f"{topic_prefix}{app_id}-{STATE_TABLE}-changelog"


class TopicMissing(RuntimeError):
    """The topic does not exist on the broker."""


@dataclass(frozen=True, slots=True)
class Latest:
    value: bytes | None
    partition: int
    offset: int


def scan_topic(
    bootstrap: str,
    topic: str,
    *,
    only_key: bytes | None = None,
    idle_timeout: float = 15.0,
    key_partition_only: bool = False,
) -> Iterator[tuple[int, int, bytes, bytes | None]]:
    """(partition, offset, key, value) of every keyed record, partition after partition,
    from the beginning up to the high watermark seen when the partition is reached.
    `only_key` keeps only that key (the export of one contact); with `key_partition_only`
    only the partition that key is produced to is read: every sendgate producer partitions
    by murmur2 of the key (Java-compatible, `KafkaClientConfig.producer`, faust's aiokafka),
    and a contact's changelog and output records are keyed by its contact key."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    from confluent_kafka.cimpl import murmur2

    from streams.config import kafka_for

    consumer = Consumer(kafka_for(bootstrap).consumer(f"sendgate-view-reader-{uuid.uuid4().hex}", {
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "enable.partition.eof": False,
    }))
    try:
        meta = consumer.list_topics(topic, timeout=15)
        tmeta = meta.topics.get(topic)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            raise TopicMissing(f"topic {topic} not found on {bootstrap}")
        partitions = sorted(tmeta.partitions)
        if key_partition_only and only_key is not None:
            partitions = [murmur2(only_key, len(partitions))]
        for partition in partitions:
            tp = TopicPartition(topic, partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=15)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, partition, low)])
            last_progress = time.monotonic()
            while True:
                msg = consumer.poll(0.5)
                if msg is None:
                    pos = consumer.position([tp])[0].offset
                    if pos >= high:  # only transaction markers were left
                        break
                    if time.monotonic() - last_progress > idle_timeout:
                        raise TimeoutError(f"{topic}[{partition}] stalled at {pos} < {high}")
                    continue
                if msg.error():
                    raise KafkaException(msg.error())
                last_progress = time.monotonic()
                key = msg.key()
                offset = int(msg.offset() or 0)
                if key is not None and (only_key is None or key == only_key):
                    yield partition, offset, key, msg.value()
                if offset >= high - 1:
                    break
            consumer.unassign()
    finally:
        consumer.close()


def read_latest(
    bootstrap: str, topic: str, *, only_key: bytes | None = None,
    key_partition_only: bool = False,
) -> Iterator[tuple[int, dict[bytes, Latest]]]:
    """Per partition, the last record per key (value None = tombstone): a compacted
    topic's content. One partition's keys are in memory at a time (keys are
    co-partitioned, so a key never spans partitions)."""
    current: int | None = None
    latest: dict[bytes, Latest] = {}
    for partition, offset, key, value in scan_topic(
        bootstrap, topic, only_key=only_key, key_partition_only=key_partition_only
    ):
        if partition != current:
            if current is not None:
                yield current, latest
            current, latest = partition, {}
        latest[key] = Latest(value, partition, offset)
    if current is not None:
        yield current, latest


def register(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="view_command", required=True, metavar="ACTION")
    r = sub.add_parser(
        "rebuild", help="rebuild the view from the changelog topic",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("--topic-prefix", default=None,
                   help="prefix of every topic name (as given to the worker; default "
                   "$SENDGATE_TOPIC_PREFIX)")
    r.add_argument("--app-id", default=None, help="faust app id (default $SENDGATE_APP_ID)")
    r.add_argument("--topic", default=None, help="changelog topic (overrides prefix/app id)")
    r.add_argument("--redis-url", default=None, help="default $SENDGATE_REDIS_URL")
    r.add_argument("--namespace", default=None,
                   help="Redis key prefix (default $SENDGATE_VIEW_NAMESPACE or sg:view:)")
    r.add_argument("--as-of", default=None,
                   help="RFC 3339 instant to evaluate at (default: each state's latest "
                        "event time, as the worker does)")
    r.add_argument("--keep-orphans", action="store_true",
                   help="keep views of keys that the changelog no longer has")
    r.add_argument("--dry-run", action="store_true", help="read and count, write nothing")

    f = sub.add_parser(
        "follow", help="keep the view from the changelog (worker with SENDGATE_STATUS_VIEW=0)",
        description=(
            "Tail the contact-state changelog and write the status view, so that the "
            "worker does not project it itself (SENDGATE_STATUS_VIEW=0). Several "
            "followers share the partitions (one consumer group). Runs until SIGTERM."
        ),
    )
    f.add_argument("--topic-prefix", default=None,
                   help="prefix of every topic name (as given to the worker; default "
                   "$SENDGATE_TOPIC_PREFIX)")
    f.add_argument("--app-id", default=None, help="faust app id (default $SENDGATE_APP_ID)")
    f.add_argument("--redis-url", default=None, help="default $SENDGATE_REDIS_URL")
    f.add_argument("--namespace", default=None,
                   help="Redis key prefix (default $SENDGATE_VIEW_NAMESPACE or sg:view:)")
    f.add_argument("--group", default=None,
                   help="consumer group (default <prefix><app id>-view-follower)")
    f.add_argument("--idle-exit", type=float, default=None,
                   help="stop after this many seconds without a record (one-off catch-up)")
    f.add_argument("--metrics-port", type=int, default=0,
                   help="serve the view's Prometheus metrics (sendgate_view_*) on "
                   "127.0.0.1:PORT")
    f.add_argument("--source-had-states", choices=("yes", "no"), default=None,
                   help=argparse.SUPPRESS)  # the worker that spawns it probed already


def run(args: argparse.Namespace) -> int:
    import asyncio

    from streams.config import Settings

    settings = Settings.from_env()
    if args.topic_prefix is None:
        args.topic_prefix = settings.topic_prefix
    if args.view_command == "follow":
        logging.basicConfig(level=settings.loglevel.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        summary = asyncio.run(follow(args, settings))
        print(json.dumps(summary))
        return 1 if summary["unreadable"] else 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = asyncio.run(rebuild(args, settings))
    except TopicMissing as exc:
        print(f"sendgate view rebuild: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"sendgate view rebuild: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 1 if summary["unreadable"] else 0


async def follow(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    import asyncio
    import signal

    from streams.core.policy import PolicyBook
    from streams.policies import load_policy_book
    from streams.view.follower import ViewFollower, changelog_holds_states
    from streams.view.projection import StatusView

    app_id = args.app_id or settings.app_id
    topic = changelog_topic(app_id, args.topic_prefix)
    policies = (
        load_policy_book(settings.policy_file) if settings.policy_file else PolicyBook.default()
    )
    if args.source_had_states is None:
        had_states = changelog_holds_states(
            settings.kafka.consumer(f"{args.topic_prefix}{app_id}-view-probe"), topic
        )
    else:
        had_states = args.source_had_states == "yes"
    view = StatusView.from_settings(settings.view, args.redis_url or settings.redis_url,
                                    policies, args.namespace, source_had_states=had_states)
    if args.metrics_port:
        from prometheus_client import CollectorRegistry, start_http_server

        from streams.view.metrics import expose_view_metrics

        registry = CollectorRegistry()
        expose_view_metrics(registry, view)
        start_http_server(args.metrics_port, addr="127.0.0.1", registry=registry)
    follower = ViewFollower(
        settings.kafka_bootstrap, topic, view,
        args.group or f"{args.topic_prefix}{app_id}-view-follower",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.warning("view follow: %s -> Redis namespace %s", topic, view.namespace)
    try:
        stats = await follower.run(stop, idle_exit=args.idle_exit)
    finally:
        await view.aclose(flush_timeout=0)
    return {"topic": topic, **stats.as_dict()}


async def rebuild(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from streams.core.eventtime import parse_rfc3339
    from streams.core.policy import PolicyBook
    from streams.gate.state_codec import decode_changelog_value
    from streams.policies import load_policy_book
    from streams.view.projection import DEFAULT_NAMESPACE, StatusView

    topic = args.topic or changelog_topic(args.app_id or settings.app_id, args.topic_prefix)
    policies = (
        load_policy_book(settings.policy_file) if settings.policy_file else PolicyBook.default()
    )
    fixed_as_of: datetime | None = parse_rfc3339(args.as_of) if args.as_of else None
    view = StatusView(
        args.redis_url or settings.redis_url,
        policies=policies,
        namespace=args.namespace or settings.view.namespace or DEFAULT_NAMESPACE,
    )
    started = time.monotonic()
    live: set[str] = set()
    written = tombstones = failed = 0
    try:
        for _partition, latest in read_latest(settings.kafka_bootstrap, topic):
            items = []
            for raw_key, rec in latest.items():
                ckey = raw_key.decode()
                if rec.value is None:
                    tombstones += 1
                    continue
                try:
                    state, hint = decode_changelog_value(rec.value)
                except Exception as exc:
                    failed += 1
                    log.error("unreadable state at %s[%d]@%d: %s", topic, rec.partition,
                              rec.offset, type(exc).__name__)
                    continue
                live.add(ckey)
                item = await view.item_from_changelog(ckey, state, hint, fixed_as_of)
                if item is None:  # no event time in the state: evaluate now
                    item = (ckey, state, await view.tenant_of(ckey),
                            datetime.now().astimezone(), None)
                items.append(item)
            if not args.dry_run and items:
                written += await view.write_now(items)
        orphans = 0
        if not args.keep_orphans:
            stale_keys = [k for k in await view.scan_contact_keys() if k not in live]
            orphans = len(stale_keys)
            if not args.dry_run:
                await view.delete(stale_keys)
        if not args.dry_run and failed == 0:
            await view.mark_rebuilt()
    finally:
        await view.aclose(flush_timeout=0)
    return {
        "topic": topic,
        "contacts": len(live),
        "written": written,
        "tombstoned": tombstones,
        "orphans_deleted": 0 if args.dry_run else orphans,
        "unreadable": failed,
        "seconds": round(time.monotonic() - started, 3),
        "dry_run": bool(args.dry_run),
    }
