"""Work-arounds for faust-streaming behaviour measured on this broker.

`Recovery._resume_streams` resumes the stream partitions and only then seeks them to
their committed offsets. Records fetched in between raced the seek: in our restart
test (issue 4 §6e) about one run in three lost the first new record of one or two
partitions after a restart. Seeking while the partitions are still paused, then
resuming, closes the window. `Recovery.on_recovery_completed` (the path after a restore
from the changelog, e.g. a worker on an empty data dir) has the same order and gets the
same change.

`Consumer.getmany` drops, without a word, the records of a fetch whose partition is no
longer active (paused), or that arrive once the flow stopped or the generation changed;
the consumer's position has moved past them all the same. Seen in the tenth session
(instrumented faust, worker restarted on an empty data dir under a CPU hog): the fetch
loop still runs in restore mode when the restore completes, so the stream records it
fetched while the patch above had the partitions paused were dropped — 96 of them — and
the worker then either lost the first records of a partition (the consumer treats the
hole as a gap in the log and commits past it) or processed nothing more. The patched
`getmany` seeks each partition back to its first dropped record, and the restore's
completion stops the flow before it pauses and seeks (the fetch loop then waits instead
of fetching). Applied once, before any app is created.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

_applied = False


async def _seek_stream_partitions(recovery: Any, assignment: set[Any]) -> None:
    """Seek the (non-changelog) stream partitions to their committed offsets while they
    are paused and the flow is stopped, then resume them: no fetch can race the seek
    (`_resume_flow` resumes the flow)."""
    consumer = recovery.app.consumer
    consumer.stop_flow()
    recovery.app.flow_control.suspend()
    stream_tps = {tp for tp in assignment if not recovery._is_changelog_tp(tp)}
    consumer.pause_partitions(stream_tps)
    recovery.log.info("Seek stream partitions to committed offsets (paused).")
    await recovery._wait(
        consumer.perform_seek(), timeout=recovery.app.conf.broker_request_timeout
    )
    consumer.resume_partitions(stream_tps)


async def _resume_flow(recovery: Any, standbys_ready: bool) -> None:
    """The common end of both patched methods, as faust has it."""
    app = recovery.app
    recovery.completed.set()
    app.flow_control.resume()
    app.consumer.resume_flow()
    await cast(Any, app)._fetcher.maybe_start()
    recovery.tables.on_actives_ready()
    if standbys_ready:
        recovery.tables.on_standbys_ready()
    app.on_rebalance_end()
    recovery.log.info("Worker ready")


async def _getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    """faust's `Consumer.getmany` (round-robin over partitions, stop on a stopped flow or
    a new generation), except that a partition whose records it does not hand on is
    sought back to the first of them: the next fetch reads them again, or the next owner
    does from the committed offset."""
    records, active_partitions = await self._wait_next_records(timeout)
    generation_id = self.app.consumer_generation_id
    if records is None or self.should_stop:
        return
    if not self.flow_active:
        try:
            await self.perform_seek()
        except Exception as exc:
            self.log.warning("exception performing seek when flow not active %r", exc)
        return
    dropped: dict[Any, int] = {}
    to_message = self._to_message
    stopped = False
    for tp, record in self.scheduler.iterate(records):
        if tp in dropped:
            continue
        if stopped or not self.flow_active or (
            self.app.consumer_generation_id != generation_id
        ):
            stopped = True
            dropped[tp] = record.offset
            continue
        if (
            active_partitions is None
            or tp in active_partitions
            or tp in self._buffered_partitions
        ):
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            yield tp, to_message(tp, record)
        else:
            dropped[tp] = record.offset
    for tp, offset in dropped.items():
        try:
            await self.seek(tp, offset)
        except Exception as exc:  # revoked meanwhile: its next owner starts at the commit
            self.log.info("not sought back %s:%s to %s: %r", tp.topic, tp.partition,
                          offset, exc)
        else:
            self.log.info("sought back %s:%s to %s (records fetched, not handed on)",
                          tp.topic, tp.partition, offset)


def apply_patches() -> None:
    global _applied
    if _applied:
        return
    from faust.tables import recovery
    from faust.transport import consumer as transport_consumer

    async def _resume_streams(self: Any, generation_id: int = 0) -> None:
        await self.app.on_rebalance_complete.send()
        assignment = self.app.consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        if assignment:
            await _seek_stream_partitions(self, assignment)
        else:
            self.log.info("Resuming streams with empty assignment")
        self.log.info("Resuming flow...")
        await _resume_flow(self, standbys_ready=True)

    async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callback_coros = [
            asyncio.ensure_future(table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table]))
            for table in self.tables.values()
        ]
        if callback_coros:
            await asyncio.wait(callback_coros)
        assignment = self.app.consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again app id %s param %s",
                             self.app.consumer_generation_id, generation_id)
            return
        if assignment:
            await _seek_stream_partitions(self, assignment)
        await _resume_flow(self, standbys_ready=not self.app.assignor.assigned_standbys())

    transport_consumer.Consumer.getmany = _getmany  # type: ignore[method-assign]
    recovery.Recovery._resume_streams = _resume_streams  # type: ignore[method-assign]
    recovery.Recovery.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign]
    _applied = True
