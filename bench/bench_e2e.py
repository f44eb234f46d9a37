"""End-to-end benchmark of the stream job against the broker and Python ceilings
(`make bench`, project issue 7).

One run measures, on the same encoded workload (`streams.workload.Workload`: default
1M events over 100k contacts in 4 tenants, 70 % send requests, 15 % orders, 10 %
signups, 5 % unsubscribes, Avro single-object encoded exactly as the SDK publishes):

  a  broker ceiling     Kafka's ProducerPerformance + ConsumerPerformance, record size
                        = the average encoded value; a = min(produce, consume) records/s
  b  Python ceiling     one thread: confluent-kafka consume -> Avro decode -> Avro
                        encode -> produce, no logic, over the same pre-loaded records,
                        with sendgate's codec (cavro fast path)
  bref                  the same with the fastavro reference codec (`AvroCodec(fast=
                        False)`): b as issue 15 defined it ("confluent-kafka + fastavro")
  f  faust ceiling      bench/faust_null.py: the worker's faust topology (two agents,
                        internal topic, RocksDB table with changelog, at least once)
                        with no sendgate logic, one process, same pre-loaded records
  q  Quix null          bench/quix_null.py (in .venv-quix): the runtime's topology on Quix
                        Streams: four inputs `concat`-ed (timestamp-aligned), State with
                        a changelog keyed by the input key, one output per input
  k  kafka null         bench/kafka_null.py: the same on confluent-kafka + rocksdict (merge
                        by streams.ordering, write-behind state, changelog, flush, commit);
                        kq = k under .venv-quix's older confluent-kafka. q, k alternate
                        --repeat times, the fastest run counts; every input is matched
                        with its output; issue 15's rule: Quix Streams if q >= 0.75 x k
  c  sendgate           `sendgate worker` processes (1, then 2) on pre-loaded input
                        topics: time from the first decision to the last write
                        (decision or changelog) = saturation throughput (events/s);
                        SENDGATE_STATUS_VIEW=off, as at scale (the view is written by
                        `view follow`, measured with the worker in c1f)
  c1faust               one `sendgate worker --runtime faust` (skipped while the worker has
                        no --runtime option, i.e. while c1 itself is faust)
  c1f                   one worker with SENDGATE_STATUS_VIEW=off plus a `sendgate view
                        follow` process writing the status view from the changelog
  latency               live steps at fixed offered loads (events/s of the same mix) on
                        the warm one-worker run: request log-append time on the input
                        topic -> first decision's log-append time on its output topic
  state                 bytes per contact: latest changelog value, changelog on the
                        broker's disk, RocksDB dir
  recovery              stop the worker, start a new one on an empty data dir; time
                        until it is in the group and until it has decided new requests
                        (state restored from the changelog first)
  correctness           every request of the run has exactly one final decision
                        (one outcome, at most one revocation), no dead letters

Each sendgate run has its own topic prefix, consumer group, data dir and Redis view
namespace (all deleted afterwards unless --keep). Results: bench/results/e2e-<ts>.json,
bench/results/latest.md and bench/results/latency-throughput.png.

    .venv/bin/python bench/bench_e2e.py                 # the full 1M-event run
    .venv/bin/python bench/bench_e2e.py --events 50000 --step-seconds 6 --live-events 60000
    .venv/bin/python bench/bench_e2e.py --events 200000 --live-events 0 --phases q,k \
        --no-latest --tag qk                            # the runtime choice only
    make bench BENCH_ARGS="--phases a,b,c1,latency,recovery,c2"
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import e2e_kit as K  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

from streams import topics as T  # noqa: E402
from streams.codecs.registry import get_codec  # noqa: E402
from streams.config import Settings  # noqa: E402
from streams.testing.supervisor import WorkerProcess, wait_group_ready  # noqa: E402

RESULTS = HERE / "results"
QUIX_PYTHON = REPO / ".venv-quix" / "bin" / "python"
PHASES = ("a", "b", "bref", "f", "q", "k", "kq", "c1", "latency", "recovery", "c1faust",
          "c1f", "c2")
DEFAULT_PHASES = "a,b,bref,f,q,k,c1,latency,recovery,c1faust,c1f,c2"
STATE_CHANGELOG_SUFFIX = "-contact-state-changelog"  # streams.runtime.tasks.CHANGELOG_SUFFIX
QUIX_RULE = 0.75  # issue 15: build on Quix Streams if q >= 0.75 x k
BENCH_SECRET = "bench-e2e-not-a-secret"
KAFKA_VERSION = "4.0.2"
TARGET_LOAD = 5000.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def terminate(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def pct(samples: Sequence[float], p: float) -> float | None:
    if not samples:
        return None
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def latency_stats(samples_ms: Sequence[float]) -> dict[str, Any]:
    return {
        "n": len(samples_ms),
        "p50_ms": pct(samples_ms, 50),
        "p95_ms": pct(samples_ms, 95),
        "p99_ms": pct(samples_ms, 99),
        "max_ms": max(samples_ms) if samples_ms else None,
        "mean_ms": round(statistics.fmean(samples_ms), 1) if samples_ms else None,
    }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.settings = Settings.from_env()
        self.bootstrap = args.bootstrap or self.settings.kafka_bootstrap
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})
        self.codec = get_codec(self.settings)
        self.var = Path(os.environ.get("SENDGATE_VAR", "/tmp/sendgate"))
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        self.base = f"bench-{self.stamp}-"
        self.work = self.var / "bench" / self.stamp
        self.work.mkdir(parents=True, exist_ok=True)
        self.lib = Path(os.environ.get(
            "SENDGATE_KAFKA_CACHE",
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
            / "sendgate" / f"kafka-{KAFKA_VERSION}",
        )) / "lib"
        self.kafka_var = args.kafka_var or self.var  # where infra/kafka/kafka.sh keeps the broker
        self.broker = K.broker_pid(self.kafka_var)
        self.prefixes: list[str] = []
        self.namespaces: list[str] = []
        self.workers: list[WorkerProcess] = []
        self.result: dict[str, Any] = {
            "benchmark": "e2e",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine_info(),
            "config": {k: v for k, v in vars(args).items() if k != "bootstrap"},
        }
        self.live_next = args.events  # next unused event of the live pool

    # ------------------------------------------------------------------ helpers

    def worker(self, prefix: str, name: str) -> WorkerProcess:
        ns = f"bench:{prefix}"
        if ns not in self.namespaces:
            self.namespaces.append(ns)
        env = {
            "SENDGATE_HMAC_KEY": BENCH_SECRET,
            "SENDGATE_LOGLEVEL": "info",
            "SENDGATE_PARTITIONS": str(self.args.partitions),
            "SENDGATE_VIEW_NAMESPACE": ns,
            # as deployed at scale (issue 15 §9): the workers write no status view; phase
            # c1f measures a worker together with the `view follow` process that does
            "SENDGATE_STATUS_VIEW": "off",
        }
        for kv in self.args.worker_env:
            k, _, v = kv.partition("=")
            env[k] = v
        w = WorkerProcess(
            bootstrap=self.bootstrap,
            data_dir=self.work / f"{name}-data",
            log_path=self.work / f"{name}.log",
            topic_prefix=prefix,
            env=env,
        )
        self.workers.append(w)
        return w

    def run_topics(self, tag: str) -> str:
        prefix = f"{self.base}{tag}."
        self.prefixes.append(prefix)
        K.create_run_topics(self.admin, prefix, self.args.partitions)
        return prefix

    def changelog(self, prefix: str) -> str:
        """The worker's contact-state changelog under `prefix`: both runtimes name it
        `<prefix><app id>-contact-state-changelog` (the kafka runtime kept faust's name)."""
        return f"{prefix}{self.settings.app_id}{STATE_CHANGELOG_SUFFIX}"

    def pids(self, workers: Sequence[WorkerProcess]) -> dict[str, int]:
        out = {f"worker{i + 1}": w.proc.pid for i, w in enumerate(workers) if w.proc}
        self.broker_check()
        if self.broker:
            out["broker"] = self.broker
        return out

    def broker_check(self) -> bool:
        """True (and noted in the results) when the broker was restarted meanwhile."""
        now = K.broker_pid(self.kafka_var)
        if now is not None and self.broker is not None and now != self.broker:
            log(f"WARNING: the broker was restarted (pid {self.broker} -> {now}); "
                "numbers of the phase that saw it are disturbed")
            self.result.setdefault("broker_restarts", []).append(
                {"at": time.strftime("%H:%M:%S"), "old_pid": self.broker, "new_pid": now})
            self.broker = now
            return True
        if now is not None:
            self.broker = now
        return False

    # ------------------------------------------------------------------ phases

    def broker_ceiling(self, records: int, size: int) -> dict[str, Any]:
        topic = f"{self.base}perf"
        self.prefixes.append(topic)
        K.create_topic(self.admin, topic, self.args.partitions)
        log4j = REPO / "infra" / "kafka" / "log4j2-tools.xml"
        with K.Sampler({"broker": self.broker} if self.broker else {}) as s:
            prod = K.producer_performance(self.lib, log4j, self.bootstrap, topic, records,
                                          size)
        prod["sampled"] = s.summary()
        log(f"a: ProducerPerformance {prod['records_per_s']:,.0f} records/s "
            f"({prod['mb_per_s']} MB/s, {size} B)")
        with K.Sampler({"broker": self.broker} if self.broker else {}) as s:
            cons = K.consumer_performance(self.lib, log4j, self.bootstrap, topic, records)
        cons["sampled"] = s.summary()
        log(f"a: ConsumerPerformance {cons['records_per_s']:,.0f} records/s "
            f"(fetch only {cons['fetch_records_per_s']:,.0f})")
        return {
            "producer": prod,
            "consumer": cons,
            "records_per_s": min(prod["records_per_s"], cons["records_per_s"]),
        }

    def python_ceiling(self, prefix: str, records: int, reference: bool = False
                       ) -> dict[str, Any]:
        """Phase b with sendgate's codec (cavro fast path since issue 16's codec work), or
        with `reference` (phase bref) the fastavro codec the issue's b was defined with
        ("confluent-kafka + fastavro and no logic")."""
        from streams.codecs.avro import AvroCodec

        name = "bref" if reference else "b"
        out_topic = f"{prefix}bench.raw-out-{name}"
        K.create_topic(self.admin, out_topic, self.args.partitions)
        codec = AvroCodec(fast=False) if reference else self.codec
        with K.Sampler({"bench": os.getpid(), **self.pids([])}) as s:
            res = K.python_ceiling(self.bootstrap, prefix, records, out_topic, codec)
        res["sampled"] = s.summary()
        res["codec"] = "fastavro (reference)" if reference else type(self.codec).__name__
        log(f"{name}: Python consume->decode->encode->produce {res['records_per_s']:,.0f} "
            f"records/s ({res['seconds']}s, {res['codec']})")
        return res

    def framework_ceiling(self, prefix: str, events: int) -> dict[str, Any]:
        """Phase f: `bench/faust_null.py` (the worker's faust topology, no sendgate logic)
        drains the same pre-loaded input topics; one process, like c1."""
        out, internal = prefix + "null.out", prefix + "null.contact-events"
        K.create_topic(self.admin, internal, self.args.partitions)
        K.create_topic(self.admin, out, self.args.partitions)
        log_path = self.work / "null.log"
        cmd = [sys.executable, str(HERE / "faust_null.py"), self.bootstrap, prefix,
               str(self.work / "null-data"), str(self.args.partitions)]
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            c = K.consumer(self.bootstrap)
            deadline = time.monotonic() + self.args.drain_timeout
            with K.Sampler({"null": proc.pid, **self.pids([])}) as s:
                while K.total_end(c, [out]) < events:
                    if proc.poll() is not None:
                        raise RuntimeError(f"faust_null died: {log_path.read_text()[-2000:]}")
                    if time.monotonic() > deadline:
                        raise TimeoutError("faust_null did not drain in time")
                    time.sleep(1.0)
            first = K.first_append_ms(c, [internal])
            last = K.last_append_ms(c, [out])
            written = K.total_end(c, [out])
            c.close()
        finally:
            terminate(proc)
        drain = ((last or 0) - (first or 0)) / 1000
        sampled = s.summary()
        res = {
            "events": events,
            "outputs": written,
            "events_per_s": round(events / drain, 1) if drain > 0 else None,
            "drain_s": round(drain, 2),
            "cpu_us_per_event": round(sampled["cpu_s"].get("null", 0) / events * 1e6, 1),
            "sampled": sampled,
        }
        log(f"f: faust null pipeline {res['events_per_s']:,.0f} events/s "
            f"({res['cpu_us_per_event']} us CPU/event)")
        return res

    def null_pipelines(self, phases: set[str], prefix: str, wl: K.EncodedWorkload,
                       events: int) -> None:
        """q, k (kq) alternated `--repeat` times on the same pre-loaded topics; each phase's
        result is its fastest run (other work on the machine only slows a run down), with
        every run's rate kept beside it."""
        keys = {"q": "quix_null", "k": "kafka_null", "kq": "kafka_null_quix_venv"}
        runs: dict[str, list[dict[str, Any]]] = {}
        for i in range(self.args.repeat):
            for phase in ("q", "k", "kq"):
                if phase in phases:
                    try:
                        one = self.null_pipeline(phase, prefix, wl, events, run=i)
                    except Exception as exc:  # one failed run must not end an hour's bench
                        log(f"{phase}: run {i} FAILED: {exc!r}")
                        one = {"error": repr(exc)[:2000], "ok": False}
                    runs.setdefault(phase, []).append(one)
        for phase, results in runs.items():
            done = [r for r in results if r.get("events_per_s")]
            best = dict(max(done, key=lambda r: r["events_per_s"]) if done else results[0])
            best["runs_events_per_s"] = [r.get("events_per_s") for r in results]
            best["runs_ok"] = all(r.get("ok", False) for r in results)
            best["ok"] = best["runs_ok"]
            self.result[keys[phase]] = best

    def null_pipeline(self, phase: str, prefix: str, wl: K.EncodedWorkload, events: int,
                      run: int = 0) -> dict[str, Any]:
        """Phases q, k (and kq): a null pipeline of the runtime's topology (four merged
        inputs, per-key state with a changelog, one output per input, at least once) drains
        the pre-loaded input topics; one process, like c1. Throughput = events over the
        time from its first output (broker append time) to its last write (output or
        changelog), after its group has committed every input; then each input is matched
        with its output record."""
        python = QUIX_PYTHON if phase in ("q", "kq") else Path(sys.executable)
        script = "quix_null.py" if phase == "q" else "kafka_null.py"
        app = f"{phase}null{run}"
        out = f"{app}.out"
        if not python.exists():
            log(f"{phase}: skipped: {python} missing (make bench creates .venv-quix)")
            return {"skipped": f"{python} missing"}
        out_topic, group = prefix + out, prefix + app
        # append time: Quix stamps an output with its input's timestamp
        K.create_topic(self.admin, out_topic, self.args.partitions,
                       {"message.timestamp.type": "LogAppendTime"})
        quix_changelogs = f"changelog__{group}"  # Quix makes and names its own
        changelog = f"{group}-state-changelog"
        if phase == "q":
            self.prefixes.append(quix_changelogs)
        else:
            K.create_topic(self.admin, changelog, self.args.partitions,
                           {"cleanup.policy": "compact"})
        data_dir = self.work / f"{app}-data"
        log_path = self.work / f"{app}.log"
        cmd = [str(python), str(HERE / script), self.bootstrap, prefix, str(data_dir),
               "--commit-interval", str(self.args.commit_interval)]
        cmd += ["--app", app]
        inputs = [prefix + n for n in T.INPUT_TOPICS]
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=REPO,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            c = K.consumer(self.bootstrap)
            deadline = time.monotonic() + self.args.drain_timeout
            last_report = time.monotonic()
            with K.Sampler({"null": proc.pid, **self.pids([])}) as s:
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"{script} died: {log_path.read_text()[-3000:]}")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{script} did not drain in time")
                    written = K.total_end(c, [out_topic])
                    if written >= events and K.committed_lag(c, group, inputs,
                                                             self.bootstrap) == 0:
                        break
                    if time.monotonic() - last_report > 30:
                        last_report = time.monotonic()
                        log(f"{phase}:   {written:,}/{events:,} outputs")
                    time.sleep(1.0)
            state_topics = ([n for n in self.admin.list_topics(timeout=10).topics
                             if n.startswith(quix_changelogs)] if phase == "q" else [changelog])
            first = K.first_append_ms(c, [out_topic])
            last = K.last_append_ms(c, [out_topic, *state_topics])
            changelog_records = K.total_end(c, state_topics) if state_topics else 0
            c.close()
        finally:
            terminate(proc)
            if not self.args.keep:
                shutil.rmtree(data_dir, ignore_errors=True)
        drain = ((last or 0) - (first or 0)) / 1000
        sampled = s.summary()
        match = K.compare_outputs(self.bootstrap, out_topic, wl, events)
        res = {
            "events": events,
            "events_per_s": round(events / drain, 1) if drain > 0 else None,
            "drain_s": round(drain, 2),
            "cpu_us_per_event": round(sampled["cpu_s"].get("null", 0) / events * 1e6, 1),
            "rss_peak_mb": sampled["rss_peak_mb"].get("null"),
            "changelog_topics": state_topics,
            "changelog_records": changelog_records,
            "commit_interval_s": self.args.commit_interval,
            "python": str(python),
            "libraries": library_versions(python),
            **match,
            "ok": match["inputs_without_output"] == 0,
            "sampled": sampled,
        }
        log(f"{phase}: {script} {res['events_per_s']:,.0f} events/s "
            f"({res['cpu_us_per_event']} us CPU/event, RSS {res['rss_peak_mb']} MB, "
            f"{changelog_records:,} changelog records; {match['inputs_without_output']} inputs "
            f"without output, {match['outputs_beyond_one_per_input']} repeats)")
        return res

    def saturation(self, prefix: str, workers: list[WorkerProcess], events: int,
                   requests: list[str], read_back: bool = True,
                   extra_pids: dict[str, int] | None = None) -> dict[str, Any]:
        """Start the worker(s) on pre-loaded topics; wait until everything is processed.

        `read_back`: read every decision now and check them (else the caller checks the
        whole run later, once)."""
        group = workers[0].group_id
        t_spawn = time.time()
        for w in workers:
            w.start()
        ready_s = wait_group_ready(self.bootstrap, group, members=len(workers),
                                   timeout=300, workers=workers)
        t_ready = time.time()
        log(f"c{len(workers)}: group ready after {ready_s:.1f}s; draining {events:,} events")
        c = K.consumer(self.bootstrap)
        decision_topics = [prefix + n for n in K.DECISION_NAMES]
        watched = [prefix + n for n in T.INPUT_TOPICS] + [prefix + T.CONTACT_EVENTS]
        deadline = time.monotonic() + self.args.drain_timeout
        last_report = time.monotonic()
        restarts = len(self.result.get("broker_restarts", []))
        with K.Sampler({**self.pids(workers), **(extra_pids or {})}) as s:
            while True:
                for w in workers:
                    if not w.alive():
                        raise RuntimeError(f"worker died:\n{w.log_tail()}")
                self.broker_check()
                decided = K.total_end(c, decision_topics)
                if decided >= len(requests):
                    lag = K.committed_lag(c, group, watched, self.bootstrap)
                    if lag == 0:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not drained after {self.args.drain_timeout}s "
                                       f"({decided}/{len(requests)} decisions)")
                if time.monotonic() - last_report > 30:
                    last_report = time.monotonic()
                    log(f"c{len(workers)}:   {decided:,}/{len(requests):,} decisions "
                        f"({decided / (time.time() - t_ready):,.0f}/s so far)")
                time.sleep(2.0)  # each poll asks the broker 36 offsets: keep it light
        t_drained = time.time()
        sampled = s.summary()
        last_decision = K.last_append_ms(c, decision_topics)
        last_changelog = K.last_append_ms(c, [self.changelog(prefix)])
        first_forward = K.first_append_ms(c, [prefix + T.CONTACT_EVENTS])
        t_last = max(x for x in (last_decision, last_changelog) if x is not None) / 1000
        first_decision = K.first_append_ms(c, decision_topics)
        c.close()
        t_first = (first_decision or 0) / 1000
        check = (self.check(prefix, requests, K.read_decisions(self.bootstrap, prefix, start=None))
                 if read_back else {"ok": True, "deferred": "checked with the whole run"})
        # processing starts at the group's readiness, or earlier when a first member
        # already worked while the others joined (the first forwarded record says when)
        t_start = min(t_ready, (first_forward or t_ready * 1000) / 1000)
        drain = t_last - t_start
        res = {
            "workers": len(workers),
            "events": events,
            "requests": len(requests),
            "events_per_s": round(events / drain, 1),
            "drain_s": round(drain, 2),
            "spawn_to_ready_s": round(t_ready - t_spawn, 2),
            "first_processing_before_ready_s": round(t_ready - t_start, 2),
            "first_decision_after_start_s": round(t_first - t_start, 2),
            "first_decision_to_last_write_s": round(t_last - t_first, 2),
            "events_per_s_first_decision_to_last_write": round(events / (t_last - t_first), 1),
            "detected_drained_after_s": round(t_drained - t_ready, 2),
            "broker_restarted_meanwhile": len(self.result.get("broker_restarts", [])) > restarts,
            "sampled": sampled,
            "worker_cpu_us_per_event": round(
                sum(v for k, v in sampled["cpu_s"].items() if k.startswith("worker"))
                / events * 1e6, 1),
            "broker_cpu_us_per_event": round(sampled["cpu_s"].get("broker", 0) / events
                                             * 1e6, 1),
            "check": check,
        }
        log(f"c{len(workers)}: {res['events_per_s']:,.0f} events/s "
            f"({drain:.1f}s from start of processing to last write; "
            f"{res['worker_cpu_us_per_event']} us worker CPU/event; "
            f"peak RSS {sampled['rss_peak_mb']}); check: {check['ok']}")
        return res

    def follow_run(self, prefix: str, events: int, requests: list[str]) -> dict[str, Any]:
        """Phase c1f: one worker with SENDGATE_STATUS_VIEW=0 and one `sendgate view
        follow` process writing the status view from the changelog."""
        ns = f"bench:{prefix}"
        self.namespaces.append(ns)
        w = self.worker(prefix, "w1f")
        group = f"{prefix}{self.settings.app_id}-view-follower"
        log_path = self.work / "follower.log"
        cmd = [sys.executable, "-m", "streams.cli", "view", "follow", "--topic-prefix", prefix,
               "--namespace", ns, "--group", group]
        with open(log_path, "wb") as logf:
            follower = subprocess.Popen(
                cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=REPO,
                env={**os.environ, "SENDGATE_KAFKA_BOOTSTRAP": self.bootstrap,
                     "PYTHONUNBUFFERED": "1"})
        try:
            res = self.saturation(prefix, [w], events, requests,
                                  extra_pids={"follower": follower.pid})
            c = K.consumer(self.bootstrap)
            changelog = self.changelog(prefix)
            deadline = time.monotonic() + self.args.drain_timeout
            while K.committed_lag(c, group, [changelog], self.bootstrap) > 0:
                if follower.poll() is not None:
                    raise RuntimeError(f"view follower died: {log_path.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError("view follower did not catch up")
                time.sleep(1.0)
            caught_up = time.time()
            last_changelog = K.last_append_ms(c, [changelog]) or 0
            c.close()
            res["view_follower"] = {
                "caught_up_after_last_changelog_write_s": round(
                    caught_up - last_changelog / 1000, 2),
                "cpu_us_per_event": round(
                    res["sampled"]["cpu_s"].get("follower", 0) / events * 1e6, 1),
                "rss_peak_mb": res["sampled"]["rss_peak_mb"].get("follower"),
            }
            log(f"c1f: view follower caught up "
                f"{res['view_follower']['caught_up_after_last_changelog_write_s']}s after the "
                f"last changelog write")
        finally:
            terminate(follower)
            w.stop()
        return res

    def check(self, prefix: str, requests: list[str], dlog: K.DecisionLog,
              ) -> dict[str, Any]:
        """Exactly one final decision per request of the run, no dead letters."""
        wanted = set(requests)
        missing = [r for r in requests if r not in dlog.counts]
        unknown = [r for r in dlog.counts if r not in wanted]
        conflicting = [r for r, o in dlog.outcomes.items() if len(o) > 1]
        multi_revoked = [r for r, n in dlog.revocations.items() if n > 1]
        reemitted = sum(n - 1 for n in dlog.counts.values() if n > 1)
        c = K.consumer(self.bootstrap)
        dead = K.total_end(c, [prefix + T.DEAD_LETTER])
        c.close()
        ok = not (missing or unknown or conflicting or multi_revoked or dead)
        return {
            "ok": ok,
            "requests": len(wanted),
            "with_final_decision": len(wanted) - len(missing),
            "missing": len(missing),
            "missing_examples": missing[:5],
            "unknown_request_ids": len(unknown),
            "conflicting_outcomes": len(conflicting),
            "revoked": len(dlog.revocations),
            "revoked_more_than_once": len(multi_revoked),
            "reemitted_duplicates": reemitted,
            "decision_records": dlog.records,
            "dead_letters": dead,
        }

    def state_size(self, prefix: str, workers: list[WorkerProcess]) -> dict[str, Any]:
        topic = self.changelog(prefix)
        records, keys, latest = K.read_changelog_states(self.bootstrap, topic)
        rocks = sum(K.dir_bytes(w.data_dir) for w in workers)
        disk = K.topic_disk_bytes(self.kafka_var / "kafka" / "data", topic)
        res = {
            "changelog_records": records,
            "contact_keys": keys,
            "latest_state_bytes_per_contact": round(latest / keys, 1) if keys else None,
            "changelog_disk_bytes_per_contact": round(disk / keys, 1) if disk and keys
            else None,
            "rocksdb_dir_bytes_per_contact": round(rocks / keys, 1) if keys else None,
            "rocksdb_dir_mb": round(rocks / 2**20, 1),
        }
        log(f"state: {keys:,} contact keys, {res['latest_state_bytes_per_contact']} B latest "
            f"state/contact, changelog on disk {res['changelog_disk_bytes_per_contact']} "
            f"B/contact, RocksDB {res['rocksdb_dir_bytes_per_contact']} B/contact")
        return res

    def take_live(self, count: int) -> int:
        start = self.live_next
        self.live_next += count
        return start

    def live_step(self, prefix: str, w: WorkerProcess, rate: float, wl: K.EncodedWorkload,
                  ) -> dict[str, Any]:
        # the restart probes of the recovery phase (warm and cold) keep their events
        left = len(wl) - self.live_next - 2 * self.args.probe_events
        seconds = min(self.args.step_seconds, left / rate)
        if seconds < 1:
            return {"offered_per_s": rate, "skipped": "live pool exhausted"}
        count = int(rate * seconds)
        start = self.take_live(count)
        c = K.consumer(self.bootstrap)
        offsets = K.end_offsets(c, [prefix + n for n in K.DECISION_NAMES])
        c.close()
        with K.Sampler(self.pids([w])) as s:
            off = K.offer(self.bootstrap, prefix, wl, start, rate, seconds)
            want = set(off.input_append_ms)
            timeout = max(60.0, seconds * 4 + 60)
            dlog = K.read_decisions(self.bootstrap, prefix, start=offsets, want=want,
                                    timeout=timeout)
        lat = [dlog.first_ms[r] - t for r, t in off.input_append_ms.items()
               if r in dlog.first_ms]
        first_in = min(off.input_append_ms.values())
        last_out = max(dlog.first_ms[r] for r in want if r in dlog.first_ms)
        processed_per_s = count / max(1e-3, (last_out - first_in) / 1000)
        stats = latency_stats(lat)
        sampled = s.summary()
        res = {
            "offered_per_s": rate,
            "seconds": round(seconds, 2),
            "events": count,
            "requests": len(want),
            "offer_achieved_per_s": round(off.achieved_offer_per_s, 1),
            "processed_per_s": round(min(processed_per_s, off.achieved_offer_per_s), 1),
            "decided": sum(1 for r in want if r in dlog.first_ms),
            "latency": stats,
            "input_timestamp_types": sorted(off.timestamp_types),
            "worker_cpu_cores": sampled["cpu_cores_avg"].get("worker1"),
            "sampled": sampled,
            "request_ids": (start, start + count),
        }
        log(f"latency @ {rate:,.0f}/s for {seconds:.0f}s: p50 {stats['p50_ms']} ms, "
            f"p95 {stats['p95_ms']} ms, p99 {stats['p99_ms']} ms, max {stats['max_ms']} ms; "
            f"processed {res['processed_per_s']:,.0f}/s, worker "
            f"{res['worker_cpu_cores']} cores")
        return res

    def recovery(self, prefix: str, old: WorkerProcess, wl: K.EncodedWorkload,
                 ) -> tuple[dict[str, Any], WorkerProcess, list[str]]:
        """Stop the c1 worker; restart it on its data dir (warm: the start-up cost), stop
        again and start one on an empty data dir (cold: start-up + the whole changelog).
        Restore rate = changelog records / (cold - warm time to the first new decision),
        and, when the worker logs it, its own count and time."""
        warm, w_warm, probe_warm = self.restart(prefix, old, wl, "w1", cold=False)
        cold, new, probe_cold = self.restart(prefix, w_warm, wl, "w1-restarted", cold=True)
        extra = cold["spawn_to_first_new_decision_s"] - warm["spawn_to_first_new_decision_s"]
        records = cold["changelog_records_to_restore"]
        res = {
            **cold,
            "warm_restart": {k: v for k, v in warm.items() if k != "sampled"},
            "cold_minus_warm_s": round(extra, 2),
            "restore_records_per_s_net": round(records / extra) if extra > 0.05 else None,
            "worker_log_restore": restore_from_log(new.log_path),
        }
        log(f"recovery: restore {fmt(res['restore_records_per_s_net'])} records/s net "
            f"(cold - warm = {extra:.2f}s for {records:,} records); worker log says "
            f"{res['worker_log_restore']}")
        return res, new, probe_warm + probe_cold

    def restart(self, prefix: str, old: WorkerProcess, wl: K.EncodedWorkload, name: str,
                cold: bool) -> tuple[dict[str, Any], WorkerProcess, list[str]]:
        c = K.consumer(self.bootstrap)
        changelog_records = K.total_end(c, [self.changelog(prefix)])
        offsets = K.end_offsets(c, [prefix + n for n in K.DECISION_NAMES])
        c.close()
        t0 = time.monotonic()
        old.stop(60)
        stop_s = time.monotonic() - t0
        new = self.worker(prefix, name)
        if cold:
            shutil.rmtree(new.data_dir, ignore_errors=True)
        count = min(self.args.probe_events, len(wl) - self.live_next)
        start = self.take_live(count)
        t_spawn = time.time()
        new.start()
        off = K.offer(self.bootstrap, prefix, wl, start, 1000.0, count / 1000.0)
        ready_s = wait_group_ready(self.bootstrap, new.group_id, timeout=600, workers=[new])
        want = set(off.input_append_ms)
        with K.Sampler(self.pids([new])) as s:
            dlog = K.read_decisions(self.bootstrap, prefix, start=offsets, want=want,
                                    timeout=900)
        first = min(dlog.first_ms[r] for r in want if r in dlog.first_ms) / 1000
        last = max(dlog.first_ms[r] for r in want if r in dlog.first_ms) / 1000
        res = {
            "data_dir": "empty" if cold else "kept",
            "stop_s": round(stop_s, 2),
            "changelog_records_to_restore": changelog_records,
            "spawn_to_group_ready_s": round(ready_s, 2),
            "spawn_to_first_new_decision_s": round(first - t_spawn, 2),
            "spawn_to_all_probe_decisions_s": round(last - t_spawn, 2),
            "probe_requests": len(want),
            "probe_decided": sum(1 for r in want if r in dlog.first_ms),
            "restore_records_per_s": round(changelog_records / max(1e-3, first - t_spawn)),
            "sampled": s.summary(),
        }
        log(f"recovery ({res['data_dir']} data dir): stop {stop_s:.1f}s; new worker in group "
            f"after {ready_s:.1f}s, first new decision after "
            f"{res['spawn_to_first_new_decision_s']}s ({changelog_records:,} changelog records)")
        return res, new, sorted(want)

    # ------------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        a = self.args
        phases = set(a.phases.split(","))
        total = a.events + a.live_events
        wl = K.load_workload(self.var / "bench" / "cache", total, contacts=a.contacts,
                             tenants=a.tenants, seed=a.seed, log=log)
        requests = wl.requests(0, a.events)
        avg_value = wl.avg_value_bytes(a.events)
        self.result["workload"] = {
            "events": a.events,
            "live_pool_events": a.live_events,
            "contacts": a.contacts,
            "tenants": a.tenants,
            "seed": a.seed,
            "mix": wl.mix(0, a.events),
            "requests": len(requests),
            "avg_value_bytes": round(avg_value, 1),
            "avg_key_bytes": round(wl.avg_key_bytes(a.events), 1),
        }
        log(f"workload: {a.events:,} events, {len(requests):,} requests, "
            f"mix {wl.mix(0, a.events)}, avg value {avg_value:.0f} B")
        res = self.result
        if "a" in phases:
            res["broker_ceiling"] = self.broker_ceiling(a.events, round(avg_value))
        if phases & {"b", "bref", "f", "q", "k", "kq", "c1"}:
            p1 = self.run_topics("w1")
            rate = K.preload(self.bootstrap, p1, wl, 0, a.events)
            log(f"c1: pre-loaded {a.events:,} events into {p1}* ({rate:,.0f}/s)")
            if "b" in phases:
                res["python_ceiling"] = self.python_ceiling(p1, a.events)
            if "bref" in phases:
                res["python_ceiling_fastavro"] = self.python_ceiling(p1, a.events,
                                                                     reference=True)
            if "f" in phases:
                res["faust_ceiling"] = self.framework_ceiling(p1, a.events)
            if phases & {"q", "k", "kq"}:
                self.null_pipelines(phases, p1, wl, a.events)
            if "c1" in phases:
                w1 = self.worker(p1, "w1")
                res["sendgate_1_worker"] = self.saturation(
                    p1, [w1], a.events, requests, read_back="recovery" not in phases)
                res["state"] = self.state_size(p1, [w1])
                if "latency" in phases:
                    res["latency_steps"] = self.latency(p1, w1, wl)
                if "recovery" in phases:
                    rec, w1b, probe = self.recovery(p1, w1, wl)
                    res["recovery"] = rec
                    live = [r for st in res.get("latency_steps", [])
                            if "request_ids" in st
                            for r in wl.requests(*st["request_ids"])]
                    every = requests + live + probe
                    dlog = K.read_decisions(self.bootstrap, p1, start=None)
                    res["check_one_worker_run"] = self.check(p1, every, dlog)
                    log(f"check (1-worker run incl. live steps and restart): "
                        f"{res['check_one_worker_run']}")
                    w1b.stop()
                else:
                    w1.stop()
        if "c1faust" in phases:
            if "args" not in {f.name for f in dataclasses.fields(WorkerProcess)}:
                raise RuntimeError("c1faust needs WorkerProcess.args (streams/testing/"
                                   "supervisor.py of wip/bench) to pass --runtime faust")
            if worker_has_runtime_option():
                pq = self.run_topics("w1faust")
                rate = K.preload(self.bootstrap, pq, wl, 0, a.events)
                log(f"c1faust: pre-loaded {a.events:,} events into {pq}* ({rate:,.0f}/s)")
                wf = self.worker(pq, "w1faust")
                wf.args = ("--runtime", "faust")
                try:
                    res["sendgate_1_worker_faust"] = self.saturation(pq, [wf], a.events,
                                                                     requests)
                except Exception as exc:  # the adapter failing must not end the whole bench
                    log(f"c1faust: FAILED: {exc!r}")
                    res["sendgate_1_worker_faust"] = {"error": repr(exc)[:2000],
                                                      "check": {"ok": False}}
                wf.stop()
            else:
                log("c1faust: skipped: `sendgate worker` has no --runtime option yet "
                    "(c1 runs faust)")
                res["sendgate_1_worker_faust"] = {"skipped": "no --runtime option: c1 is faust"}
        if "c1f" in phases:
            pf = self.run_topics("w1f")
            rate = K.preload(self.bootstrap, pf, wl, 0, a.events)
            log(f"c1f: pre-loaded {a.events:,} events into {pf}* ({rate:,.0f}/s)")
            res["sendgate_1_worker_view_follower"] = self.follow_run(pf, a.events, requests)
        if "c2" in phases:
            p2 = self.run_topics("w2")
            rate = K.preload(self.bootstrap, p2, wl, 0, a.events)
            log(f"c2: pre-loaded {a.events:,} events into {p2}* ({rate:,.0f}/s)")
            ws = [self.worker(p2, "w2a"), self.worker(p2, "w2b")]
            res["sendgate_2_workers"] = self.saturation(p2, ws, a.events, requests)
            for w in ws:
                w.stop()
        self.summarise()
        return res

    def latency(self, prefix: str, w: WorkerProcess, wl: K.EncodedWorkload,
                ) -> list[dict[str, Any]]:
        cap = self.result["sendgate_1_worker"]["events_per_s"]
        loads = {float(x) for x in self.args.loads.split(",") if x}
        for r in self.args.relative_loads.split(","):
            if r:
                load = round(cap * float(r), -1)
                if all(abs(load - x) > 0.1 * x for x in loads):
                    loads.add(load)
        steps = []
        for rate in sorted(loads):
            steps.append(self.live_step(prefix, w, rate, wl))
        return steps

    def summarise(self) -> None:
        res = self.result
        a = res.get("broker_ceiling", {}).get("records_per_s")
        b = res.get("python_ceiling", {}).get("records_per_s")
        bref = res.get("python_ceiling_fastavro", {}).get("records_per_s")
        c1 = res.get("sendgate_1_worker", {}).get("events_per_s")
        c2 = res.get("sendgate_2_workers", {}).get("events_per_s")
        f = res.get("faust_ceiling", {}).get("events_per_s")
        c1f = res.get("sendgate_1_worker_view_follower", {}).get("events_per_s")
        q = res.get("quix_null", {}).get("events_per_s")
        k = res.get("kafka_null", {}).get("events_per_s")
        c1faust = res.get("sendgate_1_worker_faust", {}).get("events_per_s")
        if q and k:
            res["runtime_choice"] = {
                "rule": f"Quix Streams if q >= {QUIX_RULE} x k, else confluent-kafka",
                "q_over_k": round(q / k, 3),
                "choice": "Quix Streams" if q >= QUIX_RULE * k else "confluent-kafka",
            }
        res["ratios"] = {
            "q_over_k": round(q / k, 3) if q and k else None,
            "k_over_b": round(k / b, 3) if k and b else None,
            "c1_over_k": round(c1 / k, 3) if c1 and k else None,
            "c1_over_c1faust": round(c1 / c1faust, 3) if c1 and c1faust else None,
            "b_over_a": round(b / a, 4) if a and b else None,
            "f_over_b": round(f / b, 3) if b and f else None,
            "c1_over_f": round(c1 / f, 3) if f and c1 else None,
            "c1f_over_f": round(c1f / f, 3) if f and c1f else None,
            "c1f_over_b": round(c1f / b, 3) if b and c1f else None,
            "c1_over_b": round(c1 / b, 3) if b and c1 else None,
            "c1_over_bref": round(c1 / bref, 3) if bref and c1 else None,
            "c2_over_b": round(c2 / b, 3) if b and c2 else None,
            "c2_over_c1": round(c2 / c1, 3) if c1 and c2 else None,
        }
        steps = [s for s in res.get("latency_steps", []) if "latency" in s]
        target = next((s for s in steps if s["offered_per_s"] == TARGET_LOAD), None)
        if c1 is not None:
            res["target_5k"] = {
                "offered_per_s": TARGET_LOAD,
                "within_capacity": c1 >= TARGET_LOAD,
                "sustained": bool(target and target["processed_per_s"]
                                  >= 0.97 * TARGET_LOAD
                                  and (target["latency"]["p99_ms"] or 1e9) < 1000),
                "p99_ms": target["latency"]["p99_ms"] if target else None,
            }

    def cleanup(self) -> None:
        for w in self.workers:
            if w.alive():
                w.stop()
        if self.args.keep:
            return
        for prefix in self.prefixes:
            try:
                K.delete_topics_with_prefix(self.admin, prefix)
            except Exception as exc:
                log(f"cleanup: could not delete topics {prefix}*: {exc}")
        try:
            import redis

            r = redis.Redis.from_url(self.settings.redis_url)
            for ns in self.namespaces:
                batch = []
                for key in r.scan_iter(match=ns + "*", count=2000):
                    batch.append(key)
                    if len(batch) >= 2000:
                        r.unlink(*batch)
                        batch = []
                if batch:
                    r.unlink(*batch)
        except Exception as exc:
            log(f"cleanup: redis namespaces not deleted: {exc}")
        for w in self.workers:
            shutil.rmtree(w.data_dir, ignore_errors=True)


_RESTORED = re.compile(r"restored (\d+) changelog records in ([\d.]+)s")


def restore_from_log(path: Path) -> dict[str, Any] | None:
    """The kafka runtime's own restore lines ("restored N changelog records in X s"),
    summed; None when the worker logs none (faust)."""
    try:
        found = _RESTORED.findall(path.read_text(errors="replace"))
    except OSError:
        return None
    if not found:
        return None
    records = sum(int(n) for n, _ in found)
    seconds = sum(float(x) for _, x in found)
    return {"records": records, "seconds": round(seconds, 2), "lines": len(found),
            "records_per_s": round(records / seconds) if seconds > 0 else None}


def worker_has_runtime_option() -> bool:
    """`sendgate worker --runtime faust` exists (issue 15: faust as an adapter)."""
    out = subprocess.run([sys.executable, "-m", "streams.cli", "worker", "--help"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    return "--runtime" in out.stdout


def library_versions(python: Path) -> dict[str, str]:
    """confluent-kafka / librdkafka / rocksdict / quixstreams versions of an interpreter."""
    code = ("import json, importlib.metadata as m, confluent_kafka as c\n"
            "v = {'librdkafka': c.libversion()[0]}\n"
            "for d in ('confluent-kafka', 'rocksdict', 'quixstreams'):\n"
            "    try: v[d] = m.version(d)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(v))")
    try:
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        return dict(json.loads(out))
    except (subprocess.SubprocessError, ValueError) as exc:
        return {"error": str(exc)}


def machine_info() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    import confluent_kafka

    try:
        import faust

        faust_version = getattr(faust, "__version__", "?")
    except ImportError:
        faust_version = "not installed"

    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "kafka": KAFKA_VERSION,
        "faust": faust_version,
        "confluent_kafka": importlib.metadata.version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# ---------------------------------------------------------------------- report


def fmt(v: Any, unit: str = "", digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float | int):
        return f"{v:,.{digits}f}{unit}"
    return f"{v}{unit}"


def markdown(res: dict[str, Any], json_name: str) -> str:
    m = res["machine"]
    w = res["workload"]
    a = res.get("broker_ceiling", {})
    b = res.get("python_ceiling", {})
    c1 = res.get("sendgate_1_worker", {})
    c2 = res.get("sendgate_2_workers", {})
    f = res.get("faust_ceiling", {})
    c1f = res.get("sendgate_1_worker_view_follower", {})
    c1faust = res.get("sendgate_1_worker_faust", {})
    nulls = [(key, res.get(key, {})) for key in ("quix_null", "kafka_null",
                                                 "kafka_null_quix_venv")]
    r = res.get("ratios", {})
    st = res.get("state", {})
    rec = res.get("recovery", {})
    lines = [
        f"# sendgate end-to-end benchmark ({res['started']})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM; Python "
        f"{m['python']}, Kafka {m['kafka']} (single local broker), faust {m['faust']}; "
        f"load average at start {m['loadavg_at_start']} (machine shared with other work).",
        f"Workload: {w['events']:,} events over {w['contacts']:,} contacts in "
        f"{w['tenants']} tenants ({', '.join(f'{k} {v:,}' for k, v in w['mix'].items())}); "
        f"average record {w['avg_value_bytes']} B value + {w['avg_key_bytes']} B key. "
        f"Raw results: `{json_name}`.",
        "",
        "| | events/s | notes |",
        "|---|---:|---|",
    ]
    if a:
        lines.append(
            f"| a. broker ceiling (min of produce, consume) | {fmt(a['records_per_s'])} | "
            f"ProducerPerformance {fmt(a['producer']['records_per_s'])}/s "
            f"({a['producer']['record_size']} B, acks=all), ConsumerPerformance "
            f"{fmt(a['consumer']['records_per_s'])}/s |")
    if b:
        lines.append(
            f"| b. Python ceiling (consume, decode, encode, produce) | "
            f"{fmt(b['records_per_s'])} | one thread, confluent-kafka + sendgate's Avro codec "
            f"({b.get('codec', 'AvroCodec')}: cavro fast path), no logic |")
    bref = res.get("python_ceiling_fastavro", {})
    if bref:
        lines.append(
            f"| b-fastavro. the same with the fastavro codec (b as issue 15 defined it) | "
            f"{fmt(bref['records_per_s'])} | one thread, confluent-kafka + fastavro, "
            f"no logic |")
    if f:
        lines.append(
            f"| f. faust ceiling (the worker's topology, no sendgate logic) | "
            f"{fmt(f['events_per_s'])} | bench/faust_null.py: two agents, internal topic, "
            f"RocksDB table + changelog, at least once; CPU {f['cpu_us_per_event']} us/event |")
    null_names = {
        "quix_null": "q. Quix Streams null pipeline (merge, state + changelog, output)",
        "kafka_null": "k. confluent-kafka null pipeline (merge, state + changelog, output)",
        "kafka_null_quix_venv": "k under Quix's confluent-kafka (.venv-quix)",
    }
    for key, n in nulls:
        if n.get("skipped"):
            lines.append(f"| {null_names[key]} | - | skipped: {n['skipped']} |")
        elif n and not n.get("events_per_s"):
            lines.append(f"| {null_names[key]} | - | FAILED: {n.get('error', '?')[:200]} |")
        elif n:
            lib = n.get("libraries", {})
            lines.append(
                f"| {null_names[key]} | {fmt(n['events_per_s'])} | fastest of "
                f"{', '.join(fmt(x) for x in n.get('runs_events_per_s', []))}; "
                f"one process, commit every "
                f"{n['commit_interval_s']} s; CPU {n['cpu_us_per_event']} us/event, RSS "
                f"{n['rss_peak_mb']} MB; {n['changelog_records']:,} changelog records; "
                f"{n['inputs_without_output']} inputs without output, "
                f"{n['outputs_beyond_one_per_input']} repeats: {'ok' if n['ok'] else 'FAILED'}; "
                f"confluent-kafka {lib.get('confluent-kafka')} (librdkafka {lib.get('librdkafka')})"
                f"{', quixstreams ' + str(lib.get('quixstreams')) if key == 'quix_null' else ''} |")
    if c1faust.get("skipped") or c1faust.get("error"):
        why = (f"skipped: {c1faust['skipped']}" if c1faust.get("skipped")
               else f"FAILED: {c1faust['error'][:200]}")
        lines.append(f"| c. sendgate, 1 worker, `--runtime faust` | - | {why} |")
    for name, c in (("c. sendgate, 1 worker (status view off: `view follow` at scale)", c1),
                    ("c. sendgate, 1 worker, `--runtime faust`",
                     c1faust if "events_per_s" in c1faust else {}),
                    ("c. sendgate, 1 worker + `view follow` process", c1f),
                    ("c. sendgate, 2 workers (status view off)", c2)):
        if c:
            extra = ""
            vf = c.get("view_follower")
            if vf:
                extra = (f"; follower CPU {vf['cpu_us_per_event']} us/event, view caught up "
                         f"{vf['caught_up_after_last_changelog_write_s']} s after the last "
                         f"changelog write")
            lines.append(
                f"| {name} | {fmt(c['events_per_s'])} | drain of {c['events']:,} pre-loaded "
                f"events in {c['drain_s']}s (group ready to last write); "
                f"worker CPU {c['worker_cpu_us_per_event']} us/event{extra}; "
                f"check {'ok' if c['check']['ok'] else 'FAILED'} |")
    lines += [
        "",
        f"Ratios: b/a = {fmt(r.get('b_over_a'), digits=3)}, c1/b = "
        f"{fmt(r.get('c1_over_b'), digits=3)}, c2/b = {fmt(r.get('c2_over_b'), digits=3)}, "
        f"c2/c1 = {fmt(r.get('c2_over_c1'), digits=2)}; f/b = "
        f"{fmt(r.get('f_over_b'), digits=3)}, c1/f = {fmt(r.get('c1_over_f'), digits=3)}, "
        f"c1 with follower / f = {fmt(r.get('c1f_over_f'), digits=3)}, "
        f"c1 with follower / b = {fmt(r.get('c1f_over_b'), digits=3)}; "
        f"q/k = {fmt(r.get('q_over_k'), digits=3)}, k/b = {fmt(r.get('k_over_b'), digits=3)}, "
        f"c1/k = {fmt(r.get('c1_over_k'), digits=3)}, "
        f"c1/c1-faust = {fmt(r.get('c1_over_c1faust'), digits=2)}; "
        f"c1/b-fastavro = {fmt(r.get('c1_over_bref'), digits=3)} (b as the issue defined "
        "it: confluent-kafka + fastavro).",
        "",
    ]
    choice = res.get("runtime_choice")
    if choice:
        lines += [f"Runtime choice (issue 15): {choice['rule']}: q/k = {choice['q_over_k']} "
                  f"-> {choice['choice']}.", ""]
    steps = res.get("latency_steps", [])
    if steps:
        lines += [
            "Decision latency, one warm worker (request log-append time on its input topic "
            "-> first decision's log-append time):",
            "",
            "| offered events/s | processed events/s | requests | p50 ms | p95 ms | p99 ms "
            "| max ms | worker CPU (cores) | broker CPU (cores) "
            f"| machine busy (of {m['cores']} cores) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in steps:
            if "latency" not in s:
                lines.append(f"| {fmt(s['offered_per_s'])} | skipped: {s.get('skipped')} "
                             "| | | | | | | | |")
                continue
            lt = s["latency"]
            # the load generator runs on the same cores: what the worker could not get
            sampled = s.get("sampled", {})
            broker = sampled.get("cpu_cores_avg", {}).get("broker")
            busy = sampled.get("machine_busy_cores_avg")
            lines.append(
                f"| {fmt(s['offered_per_s'])} | {fmt(s['processed_per_s'])} | "
                f"{s['requests']:,} | {fmt(lt['p50_ms'])} | {fmt(lt['p95_ms'])} | "
                f"{fmt(lt['p99_ms'])} | {fmt(lt['max_ms'])} | "
                f"{fmt(s['worker_cpu_cores'], digits=2)} | {fmt(broker, digits=2)} | "
                f"{fmt(busy, digits=2)} |")
        t5 = res.get("target_5k")
        if t5:
            verdict = ("within capacity" if t5["within_capacity"]
                       else "ABOVE the one-worker capacity")
            lines += ["", f"5,000 events/s is {verdict} (saturation {fmt(c1['events_per_s'])} "
                      f"events/s); sustained at 5k: {t5['sustained']}."]
        lines.append("")
    rows = []
    if c1:
        rows.append(("worker RSS, 1 worker (peak during drain)",
                     f"{c1['sampled']['rss_peak_mb'].get('worker1')} MB"))
    if c2:
        peaks = [v for k, v in c2["sampled"]["rss_peak_mb"].items() if k.startswith("worker")]
        rows.append(("worker RSS, 2 workers (peak each)", " / ".join(f"{p} MB" for p in peaks)))
    if st:
        rows += [
            ("contact keys with state", fmt(st["contact_keys"])),
            ("state per contact: latest changelog value", fmt(st["latest_state_bytes_per_contact"],
                                                              " B")),
            ("state per contact: changelog on broker disk (uncompacted)",
             fmt(st["changelog_disk_bytes_per_contact"], " B")),
            ("state per contact: RocksDB dir", fmt(st["rocksdb_dir_bytes_per_contact"], " B")),
        ]
    if rec:
        rows += [
            ("recovery: graceful stop", f"{rec['stop_s']} s"),
            ("recovery: changelog records to restore", fmt(rec["changelog_records_to_restore"])),
            ("recovery: new worker (empty data dir) in the group",
             f"{rec['spawn_to_group_ready_s']} s"),
            ("recovery: ... first new decision (state restored, processing)",
             f"{rec['spawn_to_first_new_decision_s']} s"),
            ("recovery: restore rate (changelog records / spawn to first new decision; "
             "a lower bound)", f"{fmt(rec.get('restore_records_per_s'))} records/s"),
        ]
        if "warm_restart" in rec:
            wl_ = rec.get("worker_log_restore") or {}
            rows += [
                ("recovery: restart on its own data dir, first new decision",
                 f"{rec['warm_restart']['spawn_to_first_new_decision_s']} s"),
                ("recovery: restore rate (records / (cold - warm))",
                 f"{fmt(rec.get('restore_records_per_s_net'))} records/s"),
                ("recovery: restore rate (the worker's log)",
                 f"{fmt(wl_.get('records_per_s'))} records/s ({fmt(wl_.get('records'))} "
                 f"records in {wl_.get('seconds', '-')} s)" if wl_ else "not logged"),
            ]
    chk = res.get("check_one_worker_run") or c1.get("check")
    if chk:
        rows.append(("correctness (1-worker run)",
                     f"{chk['with_final_decision']:,}/{chk['requests']:,} requests with exactly "
                     f"one final decision, {chk['conflicting_outcomes']} conflicting, "
                     f"{chk['reemitted_duplicates']} re-emitted duplicates, "
                     f"{chk['dead_letters']} dead letters: "
                     f"{'ok' if chk['ok'] else 'FAILED'}"))
    if c2:
        chk2 = c2["check"]
        rows.append(("correctness (2-worker run)",
                     f"{chk2['with_final_decision']:,}/{chk2['requests']:,}, "
                     f"{'ok' if chk2['ok'] else 'FAILED'}"))
    if rows:
        lines += ["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""]
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8),
                                   gridspec_kw={"width_ratios": [3, 2]})
    steps = [s for s in res.get("latency_steps", []) if "latency" in s]
    if steps:
        xs = [s["offered_per_s"] for s in steps]
        for key, style in (("p50_ms", "o-"), ("p95_ms", "s-"), ("p99_ms", "^-")):
            ax1.plot(xs, [s["latency"][key] for s in steps], style, label=key[:3])
        ax1.set_yscale("log")
        ax1.set_xlabel("offered load (events/s, 70 % send requests)")
        ax1.set_ylabel("decision latency (ms, log)")
        ax1.axhline(25, color="grey", ls=":", lw=1, label="25 ms aim")
        c1 = res.get("sendgate_1_worker", {}).get("events_per_s")
        if c1:
            ax1.axvline(c1, color="red", ls="--", lw=1, label=f"1-worker saturation {c1:,.0f}/s")
        ax1.axvline(TARGET_LOAD, color="black", ls=":", lw=1, label="5k/s")
        ax1.legend(fontsize=8)
        ax1.set_title("latency vs offered load (1 worker)")
        ax1.grid(True, which="both", alpha=0.3)
    bars = []
    for label, key in (("a broker\n(min p/c)", ("broker_ceiling", "records_per_s")),
                       ("b Python\nceiling", ("python_ceiling", "records_per_s")),
                       ("f faust\nceiling", ("faust_ceiling", "events_per_s")),
                       ("q Quix\nnull", ("quix_null", "events_per_s")),
                       ("k kafka\nnull", ("kafka_null", "events_per_s")),
                       ("c1\n1 worker", ("sendgate_1_worker", "events_per_s")),
                       ("c1\nfaust", ("sendgate_1_worker_faust", "events_per_s")),
                       ("c1f\n+ follower", ("sendgate_1_worker_view_follower",
                                            "events_per_s")),
                       ("c2\n2 workers", ("sendgate_2_workers", "events_per_s"))):
        v = res.get(key[0], {}).get(key[1])
        if v:
            bars.append((label, v))
    if bars:
        ax2.bar([b[0] for b in bars], [b[1] for b in bars], color="tab:blue")
        ax2.set_yscale("log")
        ax2.tick_params(axis="x", labelsize=7)
        ax2.set_ylabel("events/s (log)")
        ax2.set_title("saturation throughput")
        for i, (_, v) in enumerate(bars):
            ax2.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000, help="pre-loaded events per run")
    p.add_argument("--contacts", type=int, default=100_000)
    p.add_argument("--tenants", type=int, default=4)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--partitions", type=int,
                   default=int(os.environ.get("SENDGATE_PARTITIONS", "12")))
    p.add_argument("--live-events", type=int, default=600_000,
                   help="extra events for the live latency steps and the restart probe")
    p.add_argument("--loads", default="1000,2500,5000",
                   help="fixed offered loads (events/s) of the latency steps")
    p.add_argument("--relative-loads", default="0.5,0.8,1.0",
                   help="further steps as fractions of the measured 1-worker saturation")
    p.add_argument("--step-seconds", type=float, default=12.0)
    p.add_argument("--probe-events", type=int, default=300,
                   help="events published at the restart (about 70 %% requests)")
    p.add_argument("--drain-timeout", type=float, default=1800.0)
    p.add_argument("--phases", default=DEFAULT_PHASES,
                   help=f"comma-separated subset of {','.join(PHASES)} (latency and recovery "
                        "run on the c1 worker; kq = k under .venv-quix's confluent-kafka); "
                        f"default {DEFAULT_PHASES}")
    p.add_argument("--commit-interval", type=float, default=1.0,
                   help="commit interval (s) of the null pipelines q and k")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs of each null pipeline q, k (alternated; the fastest counts)")
    p.add_argument("--worker-env", action="append", default=[], metavar="K=V",
                   help="extra environment of the worker processes (experiments)")
    p.add_argument("--bootstrap", help="Kafka bootstrap (default $SENDGATE_KAFKA_BOOTSTRAP)")
    p.add_argument("--kafka-var", type=Path,
                   help="SENDGATE_VAR of the local broker (its pid and log dir; default "
                        "$SENDGATE_VAR), when the bench's own SENDGATE_VAR differs")
    p.add_argument("--keep", action="store_true", help="keep topics, data dirs and views")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--tag", default="", help="suffix of the result file name")
    p.add_argument("--no-latest", action="store_true",
                   help="keep latest.md and the plot (a partial run: only its JSON file)")
    args = p.parse_args(argv)
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        p.error(f"unknown phases {sorted(unknown)}; choose from {','.join(PHASES)}")
    if {"latency", "recovery"} & set(args.phases.split(",")) and "c1" not in args.phases.split(
            ","):
        p.error("latency and recovery need c1")

    bench = Bench(args)
    t0 = time.monotonic()
    try:
        res = bench.run()
    finally:
        bench.cleanup()
    res["total_seconds"] = round(time.monotonic() - t0, 1)
    res["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"e2e-{bench.stamp}{'-' + args.tag if args.tag else ''}.json"
    (args.out / name).write_text(json.dumps(res, indent=2, default=str) + "\n")
    md = markdown(res, f"bench/results/{name}")
    if not args.no_latest:
        (args.out / "latest.md").write_text(md + "\n")
        plot(res, args.out / "latency-throughput.png")
    print()
    print(md)
    log(f"done in {res['total_seconds']:.0f}s: {args.out / name}")
    checks = [c for c in (res.get("check_one_worker_run"),
                          res.get("sendgate_1_worker", {}).get("check"),
                          res.get("sendgate_1_worker_faust", {}).get("check"),
                          res.get("sendgate_2_workers", {}).get("check"),
                          *(res.get(k) for k in ("quix_null", "kafka_null",
                                                 "kafka_null_quix_venv"))) if c and "ok" in c]
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
