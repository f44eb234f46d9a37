"""The dispatch book without Kafka: the revocation rule, dedupe, commits (R-OBJECT-3, §7, §8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.esp import (
    HORIZON,
    Approval,
    DoneSet,
    Outcome,
    PartitionBook,
    RetryPolicy,
    Send,
    decode_settled,
    dedupe_id,
    encode_settled,
)

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
H_MS = int(HORIZON.total_seconds() * 1000)
KEY = "ab" * 32


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def approval(offset: int, rid: str = "r-1", due: datetime = T0, as_of: datetime = T0) -> Approval:
    send = Send(
        request_id=rid, tenant="shop", legal_entity="Shop BV", channel="email",
        contact_type="email", contact_value="jan@example.nl", dispatch_at=due, as_of=as_of,
        reason_code="ALLOW_CONSENT", legal_basis="TW117_CONSENT", declared_purpose="commercial",
        service_kind=None, campaign_id=None, template_id=None, platform=None, contact_key=KEY,
        partition=0, offset=offset,
    )
    return Approval(offset, send, dedupe_id(KEY, rid), ms(as_of), ms(due))


def book(**kw: object) -> PartitionBook:
    return PartitionBook(0, DoneSet(1000, H_MS), H_MS, **kw)  # type: ignore[arg-type]


def test_not_delivered_before_the_revoked_side_is_read_past_dispatch_at() -> None:
    b = book()
    a = approval(0, due=T0)
    assert b.add_approval(a, ms(T0)) == "pending"
    now = ms(T0 + timedelta(seconds=1))
    assert b.due(now) == []  # due, but the revoked partition is not known read past T0
    assert b.needs_probe(now)
    b.start_probe(now, high_watermark=3)
    b.observe_revoked_position(2)
    assert b.due(now) == []
    b.observe_revoked_position(3)
    assert b.due(now) == [a]


def test_a_probe_before_dispatch_at_does_not_release_it() -> None:
    b = book()
    a = approval(0, due=T0 + timedelta(minutes=5))
    b.add_approval(a, ms(T0))
    assert not b.needs_probe(ms(T0))  # nothing due: no watermark query
    b.start_probe(ms(T0), 0)
    b.observe_revoked_position(0)
    assert b.due(ms(T0 + timedelta(minutes=10))) == []  # safe only up to T0 < dispatch_at


def test_revocation_read_first_or_last_suppresses() -> None:
    b = book()
    assert b.add_revocation(7, dedupe_id(KEY, "r-1"), ms(T0), ms(T0)) == "held"
    assert b.add_approval(approval(0), ms(T0)) == "suppressed"
    b2 = book()
    b2.add_approval(approval(0), ms(T0))
    assert b2.add_revocation(7, dedupe_id(KEY, "r-1"), ms(T0), ms(T0)) == "suppressed"
    assert not b2.pending
    assert b2.done.get(dedupe_id(KEY, "r-1"), ms(T0)) is Outcome.SUPPRESSED


def test_revocation_of_another_contact_or_request_does_not_suppress() -> None:
    b = book()
    b.add_approval(approval(0), ms(T0))
    assert b.add_revocation(1, dedupe_id("cd" * 32, "r-1"), ms(T0), ms(T0)) == "held"
    assert b.add_revocation(2, dedupe_id(KEY, "r-2"), ms(T0), ms(T0)) == "held"
    assert len(b.pending) == 1


def test_revocation_after_delivery_is_reported() -> None:
    b = book()
    a = approval(0)
    b.add_approval(a, ms(T0))
    b.settle(a, Outcome.DELIVERED)
    assert b.add_revocation(3, a.ident, ms(T0), ms(T0)) == "after_dispatch"


def test_duplicate_within_the_horizon_skipped_past_it_delivered_again() -> None:
    b = book()
    first = approval(0)
    b.add_approval(first, ms(T0))
    assert b.add_approval(approval(1), ms(T0)) == "duplicate"  # still pending
    b.settle(first, Outcome.DELIVERED)
    assert b.add_approval(approval(2, as_of=T0 + timedelta(days=29)), ms(T0)) == "duplicate"
    later = approval(3, as_of=T0 + timedelta(days=30))
    assert b.add_approval(later, ms(T0)) == "pending"  # decided again past the horizon


def test_commit_stays_below_the_oldest_pending_and_carries_settled_offsets() -> None:
    b = book()
    waiting = approval(10, rid="later", due=T0 + timedelta(days=2))
    b.add_approval(waiting, ms(T0))
    sent = [approval(o, rid=f"r-{o}") for o in (11, 12, 14)]
    for a in sent:
        b.add_approval(a, ms(T0))
        b.settle(a, Outcome.DELIVERED)
    b.approved_next = 15
    offset, metadata = b.approved_commit() or (0, "")
    assert offset == 10
    assert decode_settled(offset, metadata) == {11, 12, 14}
    b.settle(waiting, Outcome.DELIVERED)
    assert b.approved_commit() == (15, "")


def test_commit_never_goes_back_while_history_is_re_read() -> None:
    b = book(history_until=100, settled_above={102, 103})
    b.history(40, dedupe_id(KEY, "old"), ms(T0))
    offset, metadata = b.approved_commit() or (0, "")
    assert offset == 100
    assert decode_settled(100, metadata) == {102, 103}
    assert b.settled_offset(99) and b.settled_offset(102) and not b.settled_offset(100)


def test_revoked_commit_keeps_held_revocations() -> None:
    b = book(revoked_start=0)
    b.add_revocation(5, dedupe_id(KEY, "r-1"), ms(T0), ms(T0))  # approval not read yet
    b.add_revocation(6, dedupe_id(KEY, "r-2"), ms(T0), ms(T0))
    assert b.revoked_commit(ms(T0), approved_base=0) == 5
    a = approval(3, rid="r-1")
    b.add_approval(a, ms(T0))  # suppressed, matched offset 3
    assert b.revoked_commit(ms(T0), approved_base=3) == 5  # offset 3 may be re-read
    assert b.revoked_commit(ms(T0), approved_base=4) == 6
    assert b.revoked_commit(ms(T0) + H_MS + 1, approved_base=4) == 7  # r-2 expired


def test_settled_metadata_round_trip_and_limit() -> None:
    offs = [101, 102, 103, 105, 200]
    md = encode_settled(100, offs)
    assert decode_settled(100, md) == set(offs)
    big = list(range(101, 5000, 2))  # no runs: does not fit, the tail is left out
    md = encode_settled(100, big, max_chars=200)
    assert len(md) <= 200
    kept = decode_settled(100, md)
    assert kept and kept < set(big) and min(big) in kept
    assert decode_settled(100, "garbage") == set()
    assert decode_settled(100, "sg-esp1:zz") == set()


def test_retry_backoff_then_give_up() -> None:
    b = book()
    a = approval(0)
    b.add_approval(a, ms(T0))
    b.start_probe(ms(T0), 0)
    b.observe_revoked_position(0)
    policy = RetryPolicy(max_attempts=3, base=timedelta(seconds=2))
    assert b.due(ms(T0)) == [a]
    assert not b.failed(a, ms(T0), "exit 1", policy)
    assert b.due(ms(T0) + 1999) == []
    assert b.due(ms(T0) + 2000) == [a]
    assert not b.failed(a, ms(T0) + 2000, "exit 1", policy)
    assert b.due(ms(T0) + 5999) == []  # 4 s after the second failure
    assert b.due(ms(T0) + 6000) == [a]
    assert b.failed(a, ms(T0) + 6000, "exit 1", policy)


def test_dedupe_memory_is_bounded() -> None:
    done = DoneSet(2, H_MS)
    for i in range(3):
        done.add(dedupe_id(KEY, f"r-{i}"), ms(T0), Outcome.DELIVERED)
    assert len(done) == 2 and done.evicted == 1
    assert done.get(dedupe_id(KEY, "r-0"), ms(T0)) is None


def test_send_repr_hides_the_contact() -> None:
    a = approval(0)
    assert "jan@example.nl" not in repr(a.send)
    assert a.send.to_json()["contact"] == {"type": "email", "value": "jan@example.nl"}


def test_undecodable_revocation_withholds_every_send_of_its_contact_key() -> None:
    b = book(revoked_start=0)
    b.add_approval(approval(0, rid="r-1"), ms(T0))
    other = approval(1, rid="r-2")
    b.add_approval(other, ms(T0))
    assert b.poison(KEY, 9, ms(T0)) == 2
    assert not b.pending
    assert b.add_approval(approval(2, rid="r-3"), ms(T0)) == "suppressed"  # read later
    assert b.revoked_commit(ms(T0), approved_base=3) == 9  # re-read after a restart


def test_undecodable_revocation_without_key_halts_the_partition() -> None:
    b = book(revoked_start=0)
    a = approval(0)
    b.add_approval(a, ms(T0))
    b.halt("no key", 4)
    b.add_revocation(5, dedupe_id(KEY, "other"), ms(T0), ms(T0))
    b.start_probe(ms(T0), 0)
    b.observe_revoked_position(6)
    assert b.due(ms(T0) + 1) == []
    assert b.revoked_commit(ms(T0), approved_base=0) == 4


def test_undecodable_approval_is_settled_in_the_commit() -> None:
    b = book()
    b.add_approval(approval(0, due=T0 + timedelta(days=1)), ms(T0))
    b.mark_settled(1)
    offset, metadata = b.approved_commit() or (0, "")
    assert offset == 0 and decode_settled(0, metadata) == {1}


def test_requeued_sends_are_ready_again() -> None:
    b = book()
    a, c = approval(0, rid="r-a"), approval(1, rid="r-c")
    b.add_approval(a, ms(T0))
    b.add_approval(c, ms(T0))
    b.start_probe(ms(T0), 0)
    b.observe_revoked_position(0)
    ready = b.due(ms(T0))
    assert ready == [a, c]
    b.settle(a, Outcome.DELIVERED)
    b.requeue(ready[1:])
    assert b.due(ms(T0)) == [c]
