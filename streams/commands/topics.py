"""`sendgate topics create|describe`: the topic catalogue on the broker.

`create` is idempotent: a topic that already exists is reported, not an error (its
partition count is checked, since co-partitioning depends on it). `describe` prints the
catalogue and, with `--broker`, what the broker actually has next to it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from streams.topics import TopicSpec, catalogue

CREATED = "created"
EXISTS = "exists"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CreateResult:
    name: str
    status: str  # created | exists | failed
    detail: str = ""


@dataclass(frozen=True, slots=True)
class BrokerTopic:
    name: str
    partitions: int
    config: dict[str, str]


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("create", "describe"))
    p.add_argument(
        "--bootstrap", help="Kafka bootstrap servers (default $SENDGATE_KAFKA_BOOTSTRAP)"
    )
    p.add_argument(
        "--topic-prefix",
        default=None,
        help="prefix of every topic name (tests, isolated replays; default "
        "$SENDGATE_TOPIC_PREFIX)",
    )
    p.add_argument("--partitions", type=int, help="partitions (default $SENDGATE_PARTITIONS, 12)")
    p.add_argument("--replication-factor", type=int, default=1)
    p.add_argument("--broker", action="store_true", help="describe: also show the broker's view")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the broker")


def run(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import AdminClient

    from streams.config import Settings

    settings = Settings.from_env()
    partitions = args.partitions if args.partitions is not None else settings.partitions
    specs = catalogue(
        prefix=settings.topic_prefix if args.topic_prefix is None else args.topic_prefix,
        partitions=partitions,
        dead_letter_retention_ms=settings.dead_letter_retention_ms,
    )
    needs_broker = args.action == "create" or args.broker
    admin = (
        AdminClient(settings.kafka.with_bootstrap(args.bootstrap).admin())  # type: ignore[arg-type]
        if needs_broker
        else None
    )
    if args.action == "create":
        results = create_topics(
            admin,
            specs=specs,
            replication_factor=args.replication_factor,
            timeout=args.timeout,
        )
        for r in results:
            print(f"{r.status:8} {r.name}{'  ' + r.detail if r.detail else ''}")
        return 1 if any(r.status == FAILED for r in results) else 0
    # `if admin` was always false: a confluent AdminClient has a length (0), issue 12 §6
    broker = (
        describe_broker(admin, [s.name for s in specs], args.timeout)
        if admin is not None else None
    )
    print_catalogue(specs, broker)
    return 0


def create_topics(
    admin: Any,
    *,
    prefix: str = "",
    partitions: int | None = None,
    specs: Sequence[TopicSpec] | None = None,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> list[CreateResult]:
    """Create the catalogue's topics (or `specs`) with their configs; existing ones are ok.

    `prefix`/`partitions` apply to the default catalogue only; pass `specs` for full control.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.cimpl import NewTopic  # re-exported by confluent_kafka.admin

    todo = list(
        specs if specs is not None else catalogue(prefix=prefix, partitions=partitions)
    )
    new = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=replication_factor,
            config=s.config(),
        )
        for s in todo
    ]
    futures = admin.create_topics(new, request_timeout=timeout, operation_timeout=timeout)
    results: list[CreateResult] = []
    existing: list[TopicSpec] = []
    for spec in todo:
        try:
            futures[spec.name].result(timeout=timeout)
            results.append(CreateResult(spec.name, CREATED))
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                existing.append(spec)
                results.append(CreateResult(spec.name, EXISTS))
            else:
                results.append(CreateResult(spec.name, FAILED, str(exc)))
    if existing:
        on_broker = describe_broker(admin, [s.name for s in existing], timeout)
        spec_by_name = {s.name: s for s in existing}
        for i, r in enumerate(results):
            if r.status == EXISTS and r.name in on_broker:
                detail = _drift(spec_by_name[r.name], on_broker[r.name])
                if detail:
                    results[i] = CreateResult(r.name, EXISTS, detail)
    return results


def _drift(spec: TopicSpec, actual: BrokerTopic) -> str:
    """What differs between the catalogue and an existing topic (empty when nothing)."""
    notes = []
    if actual.partitions != spec.partitions:
        notes.append(
            f"has {actual.partitions} partitions, catalogue says {spec.partitions} "
            "(co-partitioning broken: fix by hand)"
        )
    for key, want in spec.config().items():
        have = actual.config.get(key)
        if have is not None and have != want:
            notes.append(f"{key}={have}, catalogue says {want}")
    return "; ".join(notes)


def describe_broker(
    admin: Any, names: Iterable[str], timeout: float = 30.0
) -> dict[str, BrokerTopic]:
    """Partitions and the catalogue-relevant configs of the topics that exist."""
    # the public confluent_kafka.admin re-exports these without declaring them
    from confluent_kafka.admin._config import ConfigResource
    from confluent_kafka.admin._resource import ResourceType

    wanted = list(names)
    metadata = admin.list_topics(timeout=timeout)
    present = [n for n in wanted if n in metadata.topics and metadata.topics[n].error is None]
    if not present:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, n) for n in present]
    futures = admin.describe_configs(resources, request_timeout=timeout)
    out: dict[str, BrokerTopic] = {}
    for resource, future in futures.items():
        entries = future.result(timeout=timeout)
        config = {
            key: str(entry.value)
            for key, entry in entries.items()
            if key in ("cleanup.policy", "retention.ms", "max.message.bytes")
        }
        name = resource.name
        out[name] = BrokerTopic(name, len(metadata.topics[name].partitions), config)
    return out


def _days(ms: str | int | None) -> str:
    if ms is None:
        return "-"
    value = int(ms)
    return "forever" if value < 0 else f"{value / 86_400_000:g}d"


def print_catalogue(
    specs: Sequence[TopicSpec],
    broker: dict[str, BrokerTopic] | None = None,
    out: TextIO | None = None,
) -> None:
    """One block per topic: what it carries and how it is kept (and the broker's view)."""
    out = out if out is not None else sys.stdout
    for s in specs:
        print(f"{s.name}  [{s.role}]", file=out)
        print(f"  {s.description}", file=out)
        print(f"  key:        {s.key}", file=out)
        print(f"  value:      {s.value_schema}", file=out)
        print(
            f"  partitions: {s.partitions}   cleanup: {s.cleanup_policy}   "
            f"retention: {_days(s.retention_ms)} ({s.retention_ms} ms)"
            + (f"   max.message.bytes: {s.max_message_bytes}" if s.max_message_bytes else ""),
            file=out,
        )
        if broker is not None:
            actual = broker.get(s.name)
            if actual is None:
                print("  broker:     MISSING (run `sendgate topics create`)", file=out)
            else:
                drift = _drift(s, actual)
                print(
                    f"  broker:     partitions {actual.partitions}   cleanup "
                    f"{actual.config.get('cleanup.policy', '?')}   retention "
                    f"{_days(actual.config.get('retention.ms'))}"
                    + (f"   DRIFT: {drift}" if drift else "   ok"),
                    file=out,
                )
