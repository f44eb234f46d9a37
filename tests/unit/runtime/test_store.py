"""Issue 15 §5: the task store writes behind, once per commit, with the changelog offset."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.core.engine import ContactState
from streams.core.model import SeenEvent
from streams.gate.state_codec import ViewHint, decode_state
from streams.runtime.store import META_INDEX_NEXT, StoreOptions, TaskStore

HINT = ViewHint("t", datetime(2026, 1, 1, tzinfo=UTC), "email")


def _state(event_id: str) -> ContactState:
    return ContactState(seen_event_ids={event_id: SeenEvent(HINT.as_of, 1)})


def test_dirty_states_are_encoded_once_per_commit_and_persist_with_their_offset(
    tmp_path: Path,
) -> None:
    store = TaskStore(tmp_path / "task-3", 3, StoreOptions())
    store.put(b"k1", _state("e1"), HINT)
    store.put(b"k1", _state("e2"), HINT)  # the same key twice in one interval
    store.put(b"k2", _state("e3"), HINT)
    got = store.get(b"k1")
    assert got is not None and set(got.seen_event_ids) == {"e2"}
    assert store.db.get(b"k1") is None  # nothing written before the commit
    records = store.take_dirty()
    assert sorted(k for k, _ in records) == [b"k1", b"k2"]
    assert store.take_dirty() == []
    store.write([(k, v) for k, v in records], 42)
    store.close()

    again = TaskStore(tmp_path / "task-3", 3, StoreOptions())
    assert again.changelog_next() == 42
    assert again.changelog_next(META_INDEX_NEXT) is None
    raw = again.db.get(b"k1")
    assert raw is not None
    restored = decode_state(raw)
    assert restored is not None and set(restored.seen_event_ids) == {"e2"}
    again.close()


def test_the_order_index_round_trips(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "task-0", 0, StoreOptions())
    assert store.order_contacts(b"3:shop|o-1") == []
    store.set_order_contacts(b"3:shop|o-1", [("abc", 4, "email"), ("def", 7, "phone")])
    assert store.order_contacts(b"3:shop|o-1") == [("abc", 4, "email"), ("def", 7, "phone")]
    (entry,) = store.take_dirty_index()
    assert entry[0] == b"3:shop|o-1"
    store.close()


def test_states_encoded_ahead_are_used_unless_put_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding while the loop idles spares the commit's burst; a state changed after its
    encoding is encoded again at the commit, never taken stale."""
    import streams.runtime.store as store_module

    calls: list[bytes] = []
    real = store_module.encode_state

    def counting(state: ContactState, hint: ViewHint) -> bytes:
        calls.append(b"")
        return real(state, hint)

    monkeypatch.setattr(store_module, "encode_state", counting)
    store = TaskStore(tmp_path / "task-1", 1, StoreOptions())
    store.put(b"k1", _state("e1"), HINT)
    store.put(b"k2", _state("e2"), HINT)
    assert store.encode_ahead(10) == 2
    assert store.encode_ahead(10) == 0
    store.put(b"k1", _state("e9"), HINT)  # changed after its encoding
    calls.clear()
    records = dict(store.take_dirty())
    assert len(calls) == 1  # k1 again; k2's encoding ahead is used
    assert set(decode_state(records[b"k1"]).seen_event_ids) == {"e9"}  # type: ignore[union-attr]
    assert set(decode_state(records[b"k2"]).seen_event_ids) == {"e2"}  # type: ignore[union-attr]
    assert store.encode_ahead(10) == 0 and store.take_dirty() == []
    store.close()
