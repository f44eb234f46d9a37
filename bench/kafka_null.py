"""Null pipeline k for `make bench`: the runtime shape of issue 15 on bare confluent-kafka,
with no sendgate logic (the candidate the Quix Streams pipeline q is measured against).

One process, one consumer in a group over the four co-partitioned input topics; a task is
partition p of every input topic plus partition p of the changelog (`range` assignment
keeps them on one member):

  merge    per task, records are taken in `streams.ordering.merge_key` order (broker append
           time, `sg-seq`, topic rank, partition, offset) from one buffer per input
           partition; a partition that is empty but behind its high watermark holds its
           task back for at most `--max-idle-ms` (Kafka Streams' max.task.idle.ms)
  state    per task one RocksDB (rocksdict) + a write-behind map of dirty states, keyed by
           the input key (one hop: the state lives on the partition the record landed on);
           a 16-byte value as in phase f
  output   one record per input on `{prefix}{app}.out` (app: knull)
  commit   every `--commit-interval` s and on revocation, in Kafka Streams' order: produce
           the dirty states to the compacted changelog, flush the producer, commit the
           input offsets, then write the RocksDB batch with the changelog offset it holds
  restore  on assignment, from the stored changelog offset to the end, in batches

At least once. What it reaches is what confluent-kafka + rocksdict allow one Python thread
on this machine with the runtime's bookkeeping; the gap to sendgate is the gate's own work.

    python bench/kafka_null.py BOOTSTRAP PREFIX DATA_DIR [--commit-interval S] ...
"""

from __future__ import annotations

import argparse
import heapq
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from confluent_kafka import (  # noqa: E402
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from rocksdict import Options, Rdict, WriteBatch  # noqa: E402

from streams import topics as T  # noqa: E402
from streams.kafka_config import KafkaClientConfig  # noqa: E402
from streams.ordering import TOPIC_RANK, merge_key, sequence_of  # noqa: E402

APP_ID = "knull"
CHANGELOG_OFFSET_KEY = b"\x00changelog-offset"

MergeEntry = tuple[tuple[int, int, int, int, int], int]


def changelog_topic(prefix: str, app: str = APP_ID) -> str:
    return f"{prefix}{app}-state-changelog"


def _input_rank(prefix: str) -> dict[str, int]:
    by_name = {spec.name: spec for spec in T.INPUT_SPECS}
    return {prefix + name: TOPIC_RANK[str(by_name[name].event_type)] for name in T.INPUT_TOPICS}


class Task:
    """Partition p of every input topic, its RocksDB, its dirty states."""

    def __init__(self, partition: int, topics: list[str], db_path: Path) -> None:
        self.partition = partition
        self.topics = topics
        self.buffers: list[deque[Message]] = [deque() for _ in topics]
        self.heap: list[MergeEntry] = []  # one entry per non-empty buffer: its head's key
        self.in_heap = [False] * len(topics)
        self.positions: dict[int, int] = {}  # topic index -> next offset to process
        self.dirty: dict[bytes, bytes] = {}
        self.waiting_since: float | None = None
        self.changelog_offset = -1
        options = Options()
        options.create_if_missing(True)
        options.set_write_buffer_size(8 << 20)
        options.set_max_write_buffer_number(2)
        self.db = Rdict(str(db_path), options)
        stored = self.db.get(CHANGELOG_OFFSET_KEY)
        if stored is not None:
            self.changelog_offset = int(stored)

    def close(self) -> None:
        self.db.close()


class NullRuntime:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.prefix: str = args.prefix
        self.data_dir = Path(args.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        kafka = KafkaClientConfig(args.bootstrap)
        self.kafka = kafka
        self.inputs = [self.prefix + n for n in T.INPUT_TOPICS]
        self.rank = _input_rank(self.prefix)
        self.topic_index = {t: i for i, t in enumerate(self.inputs)}
        self.out = f"{self.prefix}{args.app}.out"
        self.changelog = changelog_topic(self.prefix, args.app)
        self.group = self.prefix + args.app
        self.consumer = Consumer(kafka.consumer(self.group, {
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "partition.assignment.strategy": "range",
            "fetch.message.max.bytes": 4 << 20,
            "queued.max.messages.kbytes": 65_536,
        }))
        self.producer = Producer(kafka.producer({
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
        }))
        self.tasks: dict[int, Task] = {}
        self.running = True
        self.processed = 0

    # ---------------------------------------------------------------- assignment

    def on_assign(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        for p in sorted({tp.partition for tp in tps}):
            if p not in self.tasks:
                task = Task(p, self.inputs, self.data_dir / f"task-{p}")
                self.restore(task)
                self.tasks[p] = task

    def on_revoke(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        self.commit()
        for p in {tp.partition for tp in tps}:
            task = self.tasks.pop(p, None)
            if task is not None:
                task.close()

    def restore(self, task: Task) -> None:
        """Changelog records after the stored offset into the task's RocksDB, in batches."""
        tp = TopicPartition(self.changelog, task.partition)
        restorer = Consumer(self.kafka.consumer(self.group + "-restore", {
            "enable.auto.commit": False, "fetch.message.max.bytes": 8 << 20,
        }))
        try:
            low, high = restorer.get_watermark_offsets(tp, timeout=10)
            start = max(low, task.changelog_offset + 1)
            if high <= start:
                return
            tp.offset = start if start > 0 else OFFSET_BEGINNING
            restorer.assign([tp])
            last = start - 1
            while last < high - 1:
                batch = WriteBatch()
                msgs = restorer.consume(10_000, 1.0)
                for msg in msgs:
                    if msg.error():
                        continue
                    batch.put(msg.key(), msg.value())
                    last = msg.offset()
                batch.put(CHANGELOG_OFFSET_KEY, str(last).encode())
                task.db.write(batch)
            task.changelog_offset = last
        finally:
            restorer.close()

    # ---------------------------------------------------------------- the loop

    def run(self) -> None:
        self.consumer.subscribe(self.inputs, on_assign=self.on_assign, on_revoke=self.on_revoke)
        next_commit = time.monotonic() + self.args.commit_interval
        consume, poll = self.consumer.consume, self.producer.poll
        batch_size = self.args.batch
        while self.running:
            msgs = consume(batch_size, 0.05)
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        print(f"consume error: {err}", file=sys.stderr, flush=True)
                    continue
                task = self.tasks.get(msg.partition())
                if task is not None:
                    self.buffer(task, msg)
            for task in self.tasks.values():
                self.drain(task)
            poll(0)
            if time.monotonic() >= next_commit:
                self.commit()
                next_commit = time.monotonic() + self.args.commit_interval
        self.commit()

    def buffer(self, task: Task, msg: Message) -> None:
        i = self.topic_index[msg.topic()]
        task.buffers[i].append(msg)
        if not task.in_heap[i]:
            heapq.heappush(task.heap, (self._key(msg, i), i))
            task.in_heap[i] = True

    def _key(self, msg: Message, i: int) -> tuple[int, int, int, int, int]:
        return merge_key(msg.timestamp()[1], sequence_of(msg.headers()),
                         self.rank[self.inputs[i]], msg.partition(), msg.offset())

    def behind(self, task: Task) -> bool:
        """Some input partition of the task is empty but has records on the broker."""
        for i, buf in enumerate(task.buffers):
            if buf or task.in_heap[i]:
                continue
            tp = TopicPartition(self.inputs[i], task.partition)
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            pos = task.positions.get(i)
            if high > 0 and (pos is None or pos < high):
                return True
        return False

    def drain(self, task: Task) -> None:
        """Process the task's buffered records in merge order while no input partition
        that is behind holds it back (or it has waited `--max-idle-ms`)."""
        heap, buffers, in_heap = task.heap, task.buffers, task.in_heap
        dirty, db_get = task.dirty, task.db.get
        produce, out, positions = self.producer.produce, self.out, task.positions
        max_idle = self.args.max_idle_ms / 1000
        key_of = self._key
        count = 0
        width = len(buffers)
        recheck = True
        behind = False
        while heap:
            if len(heap) < width:
                if recheck:
                    behind, recheck = self.behind(task), False
                if behind:
                    now = time.monotonic()
                    if task.waiting_since is None:
                        task.waiting_since = now
                    if now - task.waiting_since < max_idle:
                        break
            else:
                task.waiting_since = None
            _, i = heapq.heappop(heap)
            buf = buffers[i]
            msg = buf.popleft()
            if buf:
                heapq.heappush(heap, (key_of(buf[0], i), i))
            else:
                in_heap[i] = False
                recheck = True
            key, value = msg.key(), msg.value()
            seen = dirty.get(key)
            if seen is None:
                seen = db_get(key)
            dirty[key] = (seen or b"")[:8] + value[:8]
            while True:
                try:
                    produce(out, value, key)
                    break
                except BufferError:
                    self.producer.poll(0.05)
            positions[i] = msg.offset() + 1
            count += 1
        self.processed += count

    # ---------------------------------------------------------------- commit

    def commit(self) -> None:
        """Changelog, flush, offsets, then local state (Kafka Streams' order)."""
        last_offsets: dict[int, int] = {}

        def delivered_for(p: int) -> Callable[[KafkaError | None, Message], None]:
            def cb(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    raise KafkaException(err)
                last_offsets[p] = msg.offset()
            return cb

        for task in self.tasks.values():
            items = list(task.dirty.items())
            for n, (key, value) in enumerate(items):
                cb = delivered_for(task.partition) if n == len(items) - 1 else None
                while True:
                    try:
                        if cb is None:
                            self.producer.produce(self.changelog, value, key,
                                                  partition=task.partition)
                        else:
                            self.producer.produce(self.changelog, value, key,
                                                  partition=task.partition, on_delivery=cb)
                        break
                    except BufferError:
                        self.producer.poll(0.05)
        if self.producer.flush(60) != 0:
            raise KafkaException("null runtime: producer flush timed out")
        offsets = [TopicPartition(self.inputs[i], task.partition, pos)
                   for task in self.tasks.values() for i, pos in task.positions.items()]
        if offsets:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        for task in self.tasks.values():
            if not task.dirty:
                continue
            batch = WriteBatch()
            for key, value in task.dirty.items():
                batch.put(key, value)
            offset = last_offsets.get(task.partition, task.changelog_offset)
            batch.put(CHANGELOG_OFFSET_KEY, str(offset).encode())
            task.db.write(batch)
            task.changelog_offset = offset
            task.dirty.clear()

    def close(self) -> None:
        self.consumer.close()
        for task in self.tasks.values():
            task.close()
        self.tasks.clear()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bootstrap")
    p.add_argument("prefix")
    p.add_argument("data_dir")
    p.add_argument("--app", default=APP_ID,
                   help="consumer group, output `<prefix><app>.out`, changelog name")
    p.add_argument("--commit-interval", type=float, default=1.0)
    p.add_argument("--max-idle-ms", type=float, default=100.0)
    p.add_argument("--batch", type=int, default=1000, help="records per consume() call")
    args = p.parse_args(argv)
    rt = NullRuntime(args)

    def stop(*_: object) -> None:
        rt.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    t0 = time.monotonic()
    try:
        rt.run()
    finally:
        rt.close()
    print(f"kafka_null: processed {rt.processed} records in {time.monotonic() - t0:.1f}s",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
