"""Null pipeline q for `make bench`: the same topology as the confluent-kafka pipeline k
(`bench/kafka_null.py`) on Quix Streams, with no sendgate logic.

  merge    the four input topics as StreamingDataFrames joined with `concat`: topics of
           more than one name switch Quix to its buffered, timestamp-aligned consumption
           (`InternalConsumerBuffer`: per partition number, the head with the smallest
           record timestamp; an empty partition below its high watermark holds the group)
  state    `apply(stateful=True)`: Quix's RocksDB State keyed by the input key, with its
           changelog topic (one hop, like k); a small value as in phases f and k
  output   one record per input on `{prefix}{app}.out` (app: qnull)
  commit   Quix's checkpoint every `--commit-interval` s (changelog, flush, offsets,
           then RocksDB), at least once

Runs in its own virtualenv (quixstreams pins confluent-kafka < 2.13, sendgate uses a newer
one): `make bench` creates `.venv-quix`. Imports only the stdlib part of `streams`.

    .venv-quix/bin/python bench/quix_null.py BOOTSTRAP PREFIX DATA_DIR [--commit-interval S]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from quixstreams import Application, State  # noqa: E402

from streams import topics as T  # noqa: E402

APP_ID = "qnull"
STATE_KEY = "s"


def create_app(args: argparse.Namespace) -> Application:
    prefix = args.prefix
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=prefix + args.app,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        state_dir=args.data_dir,
        processing_guarantee="at-least-once",
        use_changelog_topics=True,
        loglevel="WARNING",
        # the default 1 s blocks the aligned merge at each emptied partition buffer until
        # a fetch returns; k polls with 0.05 s
        consumer_poll_timeout=args.poll_timeout,
        consumer_extra_config={
            "fetch.message.max.bytes": 4 << 20,
            "queued.max.messages.kbytes": 65_536,
        },
        producer_extra_config={
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
        },
    )
    raw: dict[str, Any] = {"key_deserializer": "bytes", "value_deserializer": "bytes"}
    frames = [app.dataframe(app.topic(prefix + name, **raw)) for name in T.INPUT_TOPICS]
    sdf = frames[0]
    for other in frames[1:]:
        sdf = sdf.concat(other)

    def step(value: bytes, state: State) -> bytes:
        seen = state.get(STATE_KEY)
        state.set(STATE_KEY, (seen or "")[:16] + value[:8].hex())
        return value

    sdf = sdf.apply(step, stateful=True)
    out = app.topic(f"{prefix}{args.app}.out", key_serializer="bytes", value_serializer="bytes")
    sdf.to_topic(out)
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bootstrap")
    p.add_argument("prefix")
    p.add_argument("data_dir")
    p.add_argument("--app", default=APP_ID,
                   help="consumer group `<prefix><app>` and output `<prefix><app>.out`")
    p.add_argument("--commit-interval", type=float, default=1.0)
    p.add_argument("--poll-timeout", type=float, default=0.05)
    args = p.parse_args(argv)
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING)
    create_app(args).run()  # stops on SIGTERM/SIGINT after a final checkpoint
    return 0


if __name__ == "__main__":
    sys.exit(main())
