"""One task's contact-state store: RocksDB (rocksdict) behind a write-behind map.

`put` only marks a key dirty with its decoded state; the runtime's commit cycle takes the
dirty states once per commit interval (`take_dirty`), produces them to the changelog, and
after the changelog is flushed and the offsets committed writes them to RocksDB in one
batch together with the changelog offset they reflect (`write`). So each dirty state is
encoded and written once per interval, not once per event (issue 15 §5), and the local
store is never ahead of the changelog: on start it restores the tail after that offset.
"""

from __future__ import annotations

import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import orjson
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteOptions

from streams.core.engine import ContactState
from streams.gate.state_codec import ViewHint, decode_state, encode_state

META_CHANGELOG_NEXT = b"\x00sg:changelog-next"
"""Local key: the changelog offset after the last record the store reflects."""
META_INDEX_NEXT = b"\x00sg:order-index-next"
"""Local key: the same for the order-index changelog."""
INDEX_PREFIX = b"\x01o|"
"""Local keys of the order index (order -> the contacts its latest version lists)."""

IndexEntry = tuple[str, int, str]
"""(HMAC contact key, partition, contact type) of a contact an order lists."""


@dataclass(frozen=True, slots=True)
class StoreOptions:
    write_buffer_mb: int = 8
    block_cache_mb: int = 16
    cache_states: int = 4096


def _options(opts: StoreOptions) -> Options:
    """RocksDB memory bounded per task (faust's defaults grew a worker to ~2 GB RSS)."""
    o = Options(raw_mode=True)
    o.create_if_missing(True)
    o.set_write_buffer_size(opts.write_buffer_mb << 20)
    o.set_max_write_buffer_number(2)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(opts.block_cache_mb << 20))
    o.set_block_based_table_factory(table)
    return o


_NO_WAL = WriteOptions()
_NO_WAL.disable_wal = True  # type: ignore[method-assign,assignment]


class TaskStore:
    """`StateStore` of one task (partition p of the changelog)."""

    def __init__(self, path: Path, partition: int, opts: StoreOptions) -> None:
        self.path = path
        self.partition = partition
        self.opts = opts
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = Rdict(str(path), _options(opts))
        self.dirty: dict[bytes, tuple[ContactState, ViewHint]] = {}
        self.cache: OrderedDict[bytes, ContactState] = OrderedDict()
        self.dirty_index: dict[bytes, bytes] = {}

    # -- StateStore --------------------------------------------------------------------

    def get(self, key: bytes) -> ContactState | None:
        entry = self.dirty.get(key)
        if entry is not None:
            return entry[0]
        state = self.cache.get(key)
        if state is not None:
            self.cache.move_to_end(key)
            return state
        raw = self.db.get(key)
        if raw is None:
            return None
        state = decode_state(raw)
        if state is not None:
            self._remember(key, state)
        return state

    def put(self, key: bytes, state: ContactState, hint: ViewHint) -> None:
        self.dirty[key] = (state, hint)

    # -- order index (contract §2: a later version replaces the earlier as a whole) ----

    def order_contacts(self, order_key: bytes) -> list[IndexEntry]:
        raw = self.dirty_index.get(order_key)
        if raw is None:
            raw = self.db.get(INDEX_PREFIX + order_key)
        if raw is None:
            return []
        return [(str(k), int(p), str(t)) for k, p, t in orjson.loads(raw)]

    def set_order_contacts(self, order_key: bytes, entries: list[IndexEntry]) -> None:
        self.dirty_index[order_key] = orjson.dumps(entries)

    def take_dirty_index(self) -> list[tuple[bytes, bytes]]:
        out = list(self.dirty_index.items())
        self.dirty_index.clear()
        return out

    # -- commit cycle ------------------------------------------------------------------

    def take_dirty(self) -> list[tuple[bytes, bytes]]:
        """Encoded dirty states (changelog records); the decoded ones move to the cache."""
        out = [(k, encode_state(s, h)) for k, (s, h) in self.dirty.items()]
        for k, (s, _) in self.dirty.items():
            self._remember(k, s)
        self.dirty.clear()
        return out

    def write(self, records: list[tuple[bytes, bytes | None]], changelog_next: int | None,
              *, meta: bytes = META_CHANGELOG_NEXT, prefix: bytes = b"",
              wal: bool = True) -> None:
        """One RocksDB batch: records (of the state changelog, or with `prefix` and
        `meta` of the order-index changelog) and the changelog offset they reflect.
        `wal=False` (restore: the changelog is the log) skips RocksDB's write-ahead log;
        the caller flushes the memtable before the next logged write."""
        if not records and changelog_next is None:
            return
        batch = WriteBatch(raw_mode=True)
        for k, v in records:
            if v is None:
                batch.delete(prefix + k)
            else:
                batch.put(prefix + k, v)
        if changelog_next is not None:
            batch.put(meta, str(changelog_next).encode())
        if wal:
            self.db.write(batch)
        else:
            self.db.write(batch, _NO_WAL)

    def changelog_next(self, meta: bytes = META_CHANGELOG_NEXT) -> int | None:
        raw = self.db.get(meta)
        return None if raw is None else int(raw)

    def forget_cache(self) -> None:
        self.cache.clear()

    def _remember(self, key: bytes, state: ContactState) -> None:
        cache = self.cache
        cache[key] = state
        if len(cache) > self.opts.cache_states:
            cache.popitem(last=False)

    def close(self) -> None:
        self.dirty.clear()
        self.dirty_index.clear()
        self.cache.clear()
        self.db.close()

    @staticmethod
    def wipe(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
