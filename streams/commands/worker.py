"""`sendgate worker`: run the stream job (faust worker) until SIGTERM / Ctrl-C."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="RocksDB table dir (default $SENDGATE_DATA_DIR)")
    p.add_argument("--web-port", type=int, help="faust web port (default $SENDGATE_WEB_PORT)")
    p.add_argument(
        "--metrics-port", type=int,
        default=int(os.environ.get("SENDGATE_METRICS_PORT", "0")),
        help="Prometheus endpoint port on 127.0.0.1 (0 = off)",
    )
    p.add_argument("--topic-prefix", default=os.environ.get("SENDGATE_TOPIC_PREFIX", ""),
                   help="prefix of every topic name (tests, isolated replays)")
    p.add_argument("--loglevel", default=os.environ.get("SENDGATE_LOGLEVEL", "warning"))


def tune_gc() -> None:
    """Move start-up objects out of the collector's sight and collect young objects less
    often (`SENDGATE_GC_THRESHOLD`, default 100000,50,100; "default" keeps CPython's).

    Every event allocates a few hundred short-lived objects (parsed event, decoded state,
    decisions); with CPython's threshold of 700 the collector ran every few events and
    walked the worker's long-lived objects (faust, aiokafka, caches) each time. Cycles
    are still collected, only less often.
    """
    import gc

    setting = os.environ.get("SENDGATE_GC_THRESHOLD", "100000,50,100")
    if setting == "default":
        return
    gen0, gen1, gen2 = (int(part) for part in setting.split(","))
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0, gen1, gen2)


def use_event_loop() -> str:
    """uvloop unless `SENDGATE_EVENT_LOOP=asyncio`: faust and aiokafka schedule several
    callbacks per record, and uvloop's loop runs them at a fraction of the cost of the
    pure-Python one (bench/results). Set before faust creates any loop, so the consumer
    thread's loop is one too."""
    import asyncio

    choice = os.environ.get("SENDGATE_EVENT_LOOP", "uvloop")
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            return "asyncio"
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return choice


def run(args: argparse.Namespace) -> int:
    import faust

    from streams.app.faust_app import WorkerOptions, create_app
    from streams.app.telemetry import Telemetry
    from streams.config import Settings

    use_event_loop()
    settings = Settings.from_env()
    telemetry = Telemetry.from_env(settings)
    if args.metrics_port:
        telemetry.serve_metrics(args.metrics_port)
    app = create_app(
        WorkerOptions(
            settings=settings,
            topic_prefix=args.topic_prefix,
            data_dir=args.data_dir,
            web_port=args.web_port,
            telemetry=telemetry,
            status_view=os.environ.get("SENDGATE_STATUS_VIEW", "1") != "0",
        )
    )
    tune_gc()
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0
