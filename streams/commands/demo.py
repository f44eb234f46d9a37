"""`sendgate demo`: worker + demo feed + live tally of decisions by reason, until Ctrl-C.

The feed is the 110 shared scenarios, each under its own tenant suffixed with a run id
(so a second run is not ignored as a replay), published in file order, followed by
generated shop traffic (streams.workload) at `--rate` events/s.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.codecs.base import Codec


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenarios", type=Path, default=None,
                   help="folder of scenario JSONL files (default ../shared/scenarios)")
    p.add_argument("--rate", type=float, default=200.0, help="generated events per second")
    p.add_argument("--duration", type=float, default=0.0,
                   help="stop after this many seconds (0 = until Ctrl-C)")
    p.add_argument("--contacts", type=int, default=20_000)
    p.add_argument("--no-worker", action="store_true", help="use an already running worker")
    p.add_argument("--topic-prefix", default="",
                   help="prefix of every topic and of the worker group (tests, demos side by side)")


class Tally:
    """Counts the output topics by decision and reason code, in a background thread."""

    def __init__(self, bootstrap: str, codec: Codec, prefix: str = "") -> None:
        from confluent_kafka import Consumer

        from streams import topics as T
        from streams.testing.feeder import assign_at_end

        self.codec = codec
        self.counts: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"demo-tally-{time.time_ns()}",
            "enable.auto.commit": False,
        })
        self.topics = {prefix + T.APPROVED: "approved", prefix + T.BLOCKED: "blocked",
                       prefix + T.REVOKED: "revoked", prefix + T.DEAD_LETTER: "dead letters"}
        assign_at_end(self.consumer, list(self.topics))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from streams.gate.records import header, headers_as_list

        while not self.stop.is_set():
            for msg in self.consumer.consume(500, 0.2):
                if msg.error():
                    continue
                kind = self.topics.get(str(msg.topic()), "?")
                label = kind
                if kind != "dead letters":
                    _, rec = self.codec.decode(msg.value() or b"")
                    label = f"{rec['decision']:5} {rec['reason_code']}"
                else:
                    reason = header(headers_as_list(msg.headers()), "sg-reason") or b"?"
                    label = "DEAD  " + reason.decode()
                with self.lock:
                    self.kinds[kind] += 1
                    self.counts[label] += 1
        self.consumer.close()

    def render(self, published: int, started: float) -> str:
        with self.lock:
            kinds, counts = dict(self.kinds), self.counts.most_common()
        elapsed = max(time.monotonic() - started, 1e-9)
        head = (f"published {published} events ({published / elapsed:,.0f}/s) | "
                + " | ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
        rows = [f"  {n:>8}  {label}" for label, n in counts]
        return "\n".join([head, *rows])

    def line(self, published: int, started: float) -> str:
        """One compact line per interval, for logs and pipes (no TTY)."""
        with self.lock:
            kinds, counts = dict(self.kinds), self.counts.most_common(3)
        return compact_line(published, time.monotonic() - started, kinds, counts)


def compact_line(
    published: int, elapsed: float, kinds: dict[str, int], top: list[tuple[str, int]]
) -> str:
    """`12:03:04 +35s published 7000 (200/s) | approved 10 blocked 90 ... | top: R 50, ...`"""
    rate = published / max(elapsed, 1e-9)
    tally = " ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "no decisions yet"
    tops = ", ".join(f"{' '.join(label.split())} {n}" for label, n in top)
    return (f"{time.strftime('%H:%M:%S')} +{elapsed:.0f}s published {published} "
            f"({rate:,.0f}/s) | {tally}" + (f" | top: {tops}" if tops else ""))


def demo_data_dir(base: Path, bootstrap: str) -> Path:
    """The demo worker's RocksDB dir, one per Kafka cluster id.

    `infra/kafka/kafka.sh reset` (or any new broker) starts an empty cluster; a RocksDB dir
    left from the previous one would be ahead of the new changelog and faust refuses to
    start (ConsistencyError, as it should for a real worker). The demo's state lives in
    the changelog anyway, so it starts on the dir of the cluster it talks to and drops the
    dirs of other clusters.
    """
    import shutil

    from confluent_kafka.admin import AdminClient

    cluster = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=15).cluster_id
    name = "".join(ch for ch in str(cluster or "unknown") if ch.isalnum() or ch in "-_")
    if base.is_dir():
        for old in base.iterdir():
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
    return base / name


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from streams.client import SendgateProducer
    from streams.codecs.registry import get_codec
    from streams.compose import WorkerSettings
    from streams.config import DEFAULT_SCENARIO_DIR, MissingSecret, Settings, hmac_key
    from streams.testing.feeder import Publisher, load_jsonl, retenant
    from streams.testing.supervisor import WorkerProcess, wait_group_ready
    from streams.workload import Workload

    settings = Settings.from_env()
    codec = get_codec(settings)
    run_id = time.strftime("%H%M%S")
    # SIGTERM (a supervisor, `timeout`, `kill`) stops the demo as Ctrl-C does: the worker
    # is stopped gracefully in the `finally` below instead of being left running
    signal.signal(signal.SIGTERM, _interrupt)
    ws = WorkerSettings.from_env()
    var = settings.data_dir.parent  # $SENDGATE_VAR
    try:
        hmac_key()
        dev: dict[str, str] = {}
    except MissingSecret:
        dev = {"SENDGATE_DEV_MODE": "1"}  # `make run` needs no secret
    worker: WorkerProcess | None = None
    tally: Tally | None = None
    publisher: Publisher | None = None
    started = time.monotonic()
    published = 0
    tty = sys.stdout.isatty()
    last_print = 0.0

    def show(final: bool = False) -> None:
        nonlocal last_print
        if tally is None:
            return
        if tty and not final:
            text = tally.render(published, started)
            sys.stdout.write("\x1b[H\x1b[2J" + text + "\n(Ctrl-C to stop)\n")
        elif not final:  # a pipe or a log: one compact line per interval
            sys.stdout.write(tally.line(published, started) + "\n")
        else:
            sys.stdout.write(tally.render(published, started) + "\n\n")
        sys.stdout.flush()
        last_print = time.monotonic()

    # everything after the SIGTERM handler is inside the try: a SIGTERM while the worker
    # starts must stop it gracefully too
    try:
        if not args.no_worker:
            worker = WorkerProcess(
                bootstrap=settings.kafka_bootstrap,
                data_dir=demo_data_dir(var / "demo-worker", settings.kafka_bootstrap),
                log_path=var / "demo-worker.log",
                topic_prefix=args.topic_prefix,
                env=dev,
                metrics_port=ws.metrics_port or 9466,
                # its own session (Ctrl-C reaches the demo, which stops it gracefully), so it
                # must be told when the demo dies another way
                die_with_parent=True,
            ).start()
            print(f"worker pid {worker.proc.pid if worker.proc else '?'}, log {worker.log_path}",
                  file=sys.stderr)
            took = wait_group_ready(settings.kafka_bootstrap, worker.group_id, workers=[worker])
            print(f"worker ready in {took:.1f}s; metrics on 127.0.0.1:{worker.metrics_port}",
                  file=sys.stderr)

        tally = Tally(settings.kafka_bootstrap, codec, args.topic_prefix)
        started = time.monotonic()
        folder = args.scenarios or DEFAULT_SCENARIO_DIR
        files = sorted(folder.glob("T*.jsonl"))
        if files:
            # serially, each event acknowledged before the next: the worker folds them in
            # this order (README, "What order the gate folds your events in")
            with SendgateProducer(settings.kafka_bootstrap, codec, settings=settings,
                                  topic_prefix=args.topic_prefix) as sdk:
                for f in files:
                    for event in retenant(load_jsonl(f), f"~{run_id}"):
                        sdk.publish(event)
                        sdk.flush()
                        published += 1
            show()
        publisher = Publisher(settings.kafka_bootstrap, codec, topic_prefix=args.topic_prefix)
        workload = Workload(contacts=args.contacts, run_id=f"demo{run_id}")
        interval = 1.0 / args.rate if args.rate > 0 else 0.0
        next_at = time.monotonic()
        for event in workload.events(10**12):
            if args.duration and time.monotonic() - started > args.duration:
                break
            publisher.publish(event)
            published += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                publisher.producer.poll(0)
                time.sleep(delay)
            if time.monotonic() - last_print > (1.0 if tty else 5.0):
                show()
        publisher.flush()
        time.sleep(2.0)
    except KeyboardInterrupt:
        print("\nstopping...", file=sys.stderr)
    finally:
        if publisher is not None:
            publisher.producer.flush(5)  # what was published reaches the worker
        if worker is not None:
            code = worker.stop()
            print(f"worker stopped (exit {code})", file=sys.stderr)
        if tally is not None:
            tally.stop.set()
            tally.thread.join(5)
            show(final=True)
    return 0
