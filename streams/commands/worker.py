"""`sendgate worker`: run the stream job until SIGTERM / Ctrl-C.

`--runtime kafka` (default) is the confluent-kafka task runtime (streams/runtime/);
`--runtime faust` the faust-streaming adapter over the same gate (pyproject extra `faust`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", choices=("kafka", "faust"), default=None,
                   help="stream runtime (default $SENDGATE_RUNTIME or kafka)")
    p.add_argument("--data-dir", type=Path, help="RocksDB dir (default $SENDGATE_DATA_DIR)")
    p.add_argument("--web-port", type=int, help="faust web port (faust runtime only)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="Prometheus endpoint port on 127.0.0.1 (default $SENDGATE_METRICS_PORT, "
                        "0 = off)")
    p.add_argument("--topic-prefix", default=None,
                   help="prefix of every topic name (tests, isolated replays)")
    p.add_argument("--loglevel", default=None, help="default $SENDGATE_LOGLEVEL or warning")


def run(args: argparse.Namespace) -> int:
    import logging

    from streams.compose import WorkerSettings, run_faust_worker, run_kafka_worker, with_args
    from streams.config import Settings

    settings = Settings.from_env()
    ws = with_args(WorkerSettings.from_env(), runtime=args.runtime, data_dir=args.data_dir,
                   metrics_port=args.metrics_port, topic_prefix=args.topic_prefix,
                   loglevel=args.loglevel, web_port=args.web_port)
    if ws.runtime == "faust":
        return run_faust_worker(settings, ws)
    logging.basicConfig(level=ws.loglevel.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_kafka_worker(settings, ws)
