"""The composition root: builds a worker from `Settings` (issue 15 §6).

`Settings` (streams/config.py) carries the deployment (broker, Redis, codec, secret
source, partitions); `WorkerSettings` the knobs of the stream job. Both are read from
the environment here and in `Settings.from_env` only; every component below gets its
configuration as arguments.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from streams.config import Settings, hmac_key

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from streams.app.telemetry import Telemetry
    from streams.gate.gate import Gate

log = logging.getLogger("sendgate.worker")

VIEW_THREAD_SWITCH_S = 0.0005

ViewMode = Literal["process", "thread", "off"]
"""Who writes the status view of this worker's states (README, Status view):
`process` a `sendgate view follow` child of the worker (default: its own interpreter, so
the projection does not take the worker's GIL; it dies with the worker), `thread` the
same follower inside the worker (one process, slower: ~+50 % CPU per event on the
worker's thread), `off` nobody here (run `sendgate view follow` yourself, at scale)."""


def view_mode(value: str) -> ViewMode:
    """SENDGATE_STATUS_VIEW: process (or 1), thread, off (or 0)."""
    mode = {"1": "process", "process": "process", "thread": "thread",
            "0": "off", "off": "off"}.get(value.strip().lower())
    if mode is None:
        raise ValueError(f"SENDGATE_STATUS_VIEW must be process, thread or off, not {value!r}")
    return mode  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The stream job's settings (README, Configuration)."""

    runtime: str = "kafka"
    topic_prefix: str = ""
    data_dir: Path | None = None
    status_view: ViewMode = "process"
    view_metrics_port: int = 0
    commit_interval_ms: int = 1000
    max_task_idle_ms: int = 5000
    merge_grace_ms: int = 20
    linger_ms: int = 100
    max_dirty: int = 4096
    buffer_max: int = 1000
    state_cache: int = 4096
    batch_max: int = 100  # faust adapter: events per agent wake-up
    batch_within: float = 0.005
    rocksdb_write_buffer_mb: int = 48
    rocksdb_block_cache_mb: int = 48
    fetch_min_bytes: int = 65536
    fetch_max_wait_ms: int = 5
    kafka_stats_interval_ms: int = 30_000
    gc_threshold: str = "100000,50,100"
    event_loop: str = "uvloop"
    metrics_port: int = 0
    web_port: int | None = None
    loglevel: str = "warning"

    @staticmethod
    def from_env() -> WorkerSettings:
        env = os.environ
        eos = env.get("SENDGATE_PROCESSING_GUARANTEE", "at_least_once") == "exactly_once"
        return WorkerSettings(
            runtime=env.get("SENDGATE_RUNTIME", "kafka"),
            topic_prefix=env.get("SENDGATE_TOPIC_PREFIX", ""),
            status_view=view_mode(env.get("SENDGATE_STATUS_VIEW", "process")),
            view_metrics_port=int(env.get("SENDGATE_VIEW_METRICS_PORT", "0")),
            commit_interval_ms=int(env.get("SENDGATE_COMMIT_INTERVAL_MS",
                                           "100" if eos else "1000")),
            max_task_idle_ms=int(env.get("SENDGATE_MAX_TASK_IDLE_MS", "5000")),
            merge_grace_ms=int(env.get("SENDGATE_MERGE_GRACE_MS", "20")),
            linger_ms=int(env.get("SENDGATE_LINGER_MS", "100")),
            max_dirty=int(env.get("SENDGATE_MAX_DIRTY_STATES", "4096")),
            buffer_max=int(env.get("SENDGATE_BUFFER_MAX", "1000")),
            state_cache=int(env.get("SENDGATE_STATE_CACHE", "4096")),
            batch_max=int(env.get("SENDGATE_BATCH_MAX", "100")),
            batch_within=float(env.get("SENDGATE_BATCH_WITHIN", "0.005")),
            rocksdb_write_buffer_mb=int(env.get("SENDGATE_ROCKSDB_WRITE_BUFFER_MB", "48")),
            rocksdb_block_cache_mb=int(env.get("SENDGATE_ROCKSDB_BLOCK_CACHE_MB", "48")),
            fetch_min_bytes=int(env.get("SENDGATE_FETCH_MIN_BYTES", "65536")),
            fetch_max_wait_ms=int(env.get("SENDGATE_FETCH_MAX_WAIT_MS", "5")),
            kafka_stats_interval_ms=int(env.get("SENDGATE_KAFKA_STATS_INTERVAL_MS", "30000")),
            gc_threshold=env.get("SENDGATE_GC_THRESHOLD", "100000,50,100"),
            event_loop=env.get("SENDGATE_EVENT_LOOP", "uvloop"),
            metrics_port=int(env.get("SENDGATE_METRICS_PORT", "0")),
            loglevel=env.get("SENDGATE_LOGLEVEL", "warning"),
        )


def with_args(ws: WorkerSettings, **overrides: Any) -> WorkerSettings:
    """The settings with the command line's explicit values (None: keep)."""
    return replace(ws, **{k: v for k, v in overrides.items() if v is not None})


def tune_gc(setting: str) -> None:
    """Move start-up objects out of the collector's sight and collect young objects less
    often (default 100000,50,100; "default" keeps CPython's): every event allocates a few
    hundred short-lived objects, and with CPython's threshold of 700 the collector ran
    every few events over the worker's long-lived objects."""
    import gc

    if setting == "default":
        return
    gen0, gen1, gen2 = (int(part) for part in setting.split(","))
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0, gen1, gen2)


def build_gate(settings: Settings, ws: WorkerSettings, telemetry: Telemetry | None = None,
               secret: bytes | None = None) -> Gate:
    from streams.codecs.registry import get_codec
    from streams.core.policy import PolicyBook
    from streams.gate.gate import Gate
    from streams.policies import load_policy_book

    policies = (load_policy_book(settings.policy_file) if settings.policy_file
                else PolicyBook.default())
    return Gate(get_codec(settings), policies, secret if secret is not None else hmac_key(),
                partitions=settings.partitions, topic_prefix=ws.topic_prefix,
                telemetry=telemetry)


def run_kafka_worker(settings: Settings, ws: WorkerSettings,
                     stop: threading.Event | None = None) -> int:
    """The default worker: the Kafka task runtime over the gate, plus the status view kept
    from the changelog by a child `view follow` process (SENDGATE_STATUS_VIEW, `ViewMode`)."""

    from streams.app.telemetry import Telemetry
    from streams.runtime.store import StoreOptions
    from streams.runtime.tasks import RuntimeConfig, TaskRuntime, changelog_topic

    telemetry = Telemetry.from_settings(settings)
    if ws.metrics_port:
        telemetry.serve_metrics(ws.metrics_port)
    gate = build_gate(settings, ws, telemetry)
    cfg = RuntimeConfig(
        kafka=settings.kafka,
        app_id=settings.app_id,
        data_dir=ws.data_dir or settings.data_dir,
        partitions=settings.partitions,
        topic_prefix=ws.topic_prefix,
        exactly_once=settings.processing_guarantee == "exactly_once",
        commit_interval_s=ws.commit_interval_ms / 1000,
        max_task_idle_s=ws.max_task_idle_ms / 1000,
        merge_grace_ms=ws.merge_grace_ms,
        linger_ms=ws.linger_ms,
        max_dirty=ws.max_dirty,
        buffer_max=ws.buffer_max,
        fetch_min_bytes=ws.fetch_min_bytes,
        fetch_max_wait_ms=ws.fetch_max_wait_ms,
        stats_interval_ms=ws.kafka_stats_interval_ms if ws.metrics_port else 0,
        store=StoreOptions(ws.rocksdb_write_buffer_mb, ws.rocksdb_block_cache_mb,
                           ws.state_cache),
    )
    if (why := cfg.order_warning()) is not None:
        log.warning("%s", why)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    lag = telemetry.metrics.lag

    def on_lag(topic: str, partition: int, behind: int) -> None:
        lag.labels(topic, str(partition)).set(behind)

    late = telemetry.metrics.late

    def on_late(topic: str) -> None:
        late.labels(topic).inc()

    runtime = TaskRuntime(gate, cfg, on_lag=on_lag, on_late=on_late,
                          on_stats=telemetry.metrics.kafka.update)
    halt = stop or threading.Event()
    _on_signals(halt, runtime.stop)
    view_thread = None
    view_process = None
    changelog = changelog_topic(settings.app_id, ws.topic_prefix)
    group_prefix = f"{ws.topic_prefix}{settings.app_id}"
    if ws.status_view == "thread":
        # The view thread holds the GIL for up to the switch interval (5 ms) each time the
        # runtime's thread returns from a consume/poll/flush call: at moderate load that
        # wait, not CPU, capped a worker at ~1 600 events/s with 0.6 cores busy.
        sys.setswitchinterval(VIEW_THREAD_SWITCH_S)
        view_thread = _start_view_follower(settings, changelog, group_prefix, halt,
                                           telemetry.metrics.registry)
    elif ws.status_view == "process":
        view_process = _spawn_view_follower(settings, ws, changelog, group_prefix)
    tune_gc(ws.gc_threshold)
    try:
        runtime.run()
    finally:
        halt.set()
        if view_thread is not None:
            view_thread.join(10)
        if view_process is not None:
            _stop_child(view_process)
    return 0


def _spawn_view_follower(settings: Settings, ws: WorkerSettings, topic: str,
                         group_prefix: str) -> subprocess.Popen[bytes]:
    """`sendgate view follow` as a child that dies with this process (PR_SET_PDEATHSIG:
    a SIGKILLed worker leaves no orphan). Whether the changelog already held states is
    asked here, before the runtime writes any (issue 12 §3), and handed down."""
    from streams.config import child_environment
    from streams.view.follower import changelog_holds_states

    had_states = changelog_holds_states(
        settings.kafka.consumer(f"{group_prefix}-view-probe"), topic)
    cmd = [sys.executable, "-m", "streams.cli", "view", "follow",
           "--topic-prefix", ws.topic_prefix, "--app-id", settings.app_id,
           "--source-had-states", "yes" if had_states else "no"]
    if ws.view_metrics_port:
        cmd += ["--metrics-port", str(ws.view_metrics_port)]
    return subprocess.Popen(cmd, env=child_environment({}), preexec_fn=die_with_parent,
                            stdout=subprocess.DEVNULL)


def die_with_parent() -> None:
    """`preexec_fn` of a child that must not outlive its parent: the kernel sends it SIGTERM
    when the parent dies, SIGKILL included (Linux PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _stop_child(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _on_signals(halt: threading.Event, stop_runtime: object) -> None:
    import signal

    def handler(signum: int, frame: object) -> None:
        halt.set()
        if callable(stop_runtime):
            stop_runtime()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _start_view_follower(settings: Settings, topic: str, group_prefix: str,
                         halt: threading.Event, registry: CollectorRegistry) -> threading.Thread:
    """The status view written from the changelog, in this process (SENDGATE_STATUS_VIEW=
    thread): the same code as `sendgate view follow`.

    Whether the changelog already held states is asked before the runtime writes any
    (issue 12 §3: only a writer that starts on an empty changelog may create the view
    marker without flagging the view stale)."""
    from streams.view.follower import changelog_holds_states

    had_states = changelog_holds_states(
        settings.kafka.consumer(f"{group_prefix}-view-probe"), topic)

    def run() -> None:
        import asyncio

        from streams.core.policy import PolicyBook
        from streams.policies import load_policy_book
        from streams.view.follower import ViewFollower
        from streams.view.metrics import expose_view_metrics
        from streams.view.projection import StatusView

        async def main() -> None:
            policies = (load_policy_book(settings.policy_file) if settings.policy_file
                        else PolicyBook.default())
            view = StatusView.from_settings(settings.view, settings.redis_url, policies,
                                            source_had_states=had_states)
            expose_view_metrics(registry, view)
            stop = asyncio.Event()

            async def watch() -> None:
                while not halt.is_set():
                    await asyncio.sleep(0.2)
                stop.set()

            watcher = asyncio.ensure_future(watch())
            try:
                await ViewFollower(settings.kafka_bootstrap, topic, view,
                                   f"{group_prefix}-view-follower").run(stop)
            finally:
                watcher.cancel()
                await view.aclose(flush_timeout=2.0)

        try:
            asyncio.run(main())
        except Exception:
            log.exception("status view follower stopped")

    thread = threading.Thread(target=run, name="view-follower", daemon=True)
    thread.start()
    return thread


def run_faust_worker(settings: Settings, ws: WorkerSettings) -> int:
    """The faust-streaming adapter (`--runtime faust`, pyproject extra `faust`)."""
    from streams.app.faust_worker import run_faust

    return run_faust(settings, ws)
