"""Framework ceiling for `make bench`: the worker's faust topology with no sendgate logic.

Same settings as `streams.app.faust_app.create_app` (at least once, RocksDB table with a
changelog, batched agents, direct producer sends, the same fetch tuning and patches),
same two hops, but no decoding, no state logic, no status view, no telemetry:

  ingest   the four input topics -> `{prefix}null.contact-events`, value unchanged,
           re-keyed by a hash of the input key (one forward per input record)
  gate     `{prefix}null.contact-events` -> table get + set (a 16-byte value)
           -> one record on `{prefix}null.out`

What it reaches is what faust and aiokafka allow one process on this machine; the gap
between it and sendgate is the cost of sendgate's own work.

    python bench/faust_null.py BOOTSTRAP PREFIX DATA_DIR PARTITIONS
"""

from __future__ import annotations

import hashlib
import os
import sys
import weakref
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import faust  # noqa: E402
from faust.streams import _current_event  # noqa: E402

from streams import topics as T  # noqa: E402
from streams.app.faust_app import STREAM_SETTINGS, _tune_fetches  # noqa: E402
from streams.app.faust_patches import apply_patches  # noqa: E402
from streams.app.faust_worker import use_event_loop  # noqa: E402

APP_ID = "null"
INTERNAL = "null.contact-events"
OUT = "null.out"


def create_null_app(bootstrap: str, prefix: str, data_dir: Path, partitions: int) -> faust.App:
    apply_patches()
    _tune_fetches()
    app = faust.App(
        prefix + APP_ID,
        broker=f"kafka://{bootstrap}",
        store="rocksdb://",
        datadir=str(data_dir),
        processing_guarantee="at_least_once",
        topic_partitions=partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        web_enabled=False,
        **STREAM_SETTINGS,
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(*(prefix + name for name in T.INPUT_TOPICS), **raw)
    internal_name, out_name = prefix + INTERNAL, prefix + OUT
    internal = app.topic(internal_name, partitions=partitions, **raw)
    table = app.Table("null-state", partitions=partitions, key_type=bytes, value_type=bytes)
    batch_max = int(os.environ.get("SENDGATE_BATCH_MAX", "100"))
    batch_within = float(os.environ.get("SENDGATE_BATCH_WITHIN", "0.005"))

    @app.agent(inputs, concurrency=1, name="null-ingest")
    async def ingest(stream: Any) -> None:
        async for events in stream.take_events(batch_max, within=batch_within):
            for event in events:
                msg = event.message
                key = hashlib.sha256(msg.key or b"").digest()
                await app.producer.send(internal_name, key, msg.value, None, None, None)

    @app.agent(internal, concurrency=1, name="null-gate")
    async def gate(stream: Any) -> None:
        async for events in stream.take_events(batch_max, within=batch_within):
            for event in events:
                msg = event.message
                _current_event.set(weakref.ref(event))
                seen = table.get(msg.key)
                table[msg.key] = (seen or b"")[:8] + msg.value[:8]
                await app.producer.send(out_name, msg.key, msg.value, None, None, None)

    return app


def main(argv: list[str]) -> int:
    bootstrap, prefix, data_dir, partitions = argv[1], argv[2], Path(argv[3]), int(argv[4])
    data_dir.mkdir(parents=True, exist_ok=True)
    use_event_loop("uvloop")
    app = create_null_app(bootstrap, prefix, data_dir, partitions)
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[:1] + sys.argv[1:5]))
