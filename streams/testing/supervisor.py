"""Start, watch and stop `sendgate worker` processes (demo, tests, bench, chaos).

Readiness is read from the broker, not from log lines: a worker is ready when its
consumer group is stable and has partitions assigned.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from streams.compose import die_with_parent
from streams.config import child_environment, kafka_for


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WorkerProcess:
    bootstrap: str
    data_dir: Path
    log_path: Path
    topic_prefix: str = ""
    app_id: str = "sendgate"
    env: dict[str, str] = field(default_factory=dict)
    web_port: int = 0
    metrics_port: int = 0
    args: tuple[str, ...] = ()  # more `sendgate worker` options (the bench: --runtime faust)
    die_with_parent: bool = False  # SIGTERM when the starting process dies (`sendgate demo`)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def group_id(self) -> str:
        return self.topic_prefix + self.app_id

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if not self.web_port:
            self.web_port = free_port()
        # the worker's own composition root reads these; info logging unless the
        # environment or `env` says otherwise
        env = {
            "SENDGATE_LOGLEVEL": "info",
            **child_environment({
                "SENDGATE_KAFKA_BOOTSTRAP": self.bootstrap,
                "SENDGATE_APP_ID": self.app_id,
                "PYTHONUNBUFFERED": "1",
                **self.env,
            }),
        }
        cmd = [
            sys.executable, "-m", "streams.cli", "worker",
            "--data-dir", str(self.data_dir),
            "--web-port", str(self.web_port),
            "--topic-prefix", self.topic_prefix,
        ]
        if self.metrics_port:
            cmd += ["--metrics-port", str(self.metrics_port)]
        cmd += self.args
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            preexec_fn=die_with_parent if self.die_with_parent else None,
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """Graceful stop (SIGTERM): faust commits offsets and flushes the changelog."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the worker: no commit, no flush (chaos tests)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_group_ready(
    bootstrap: str,
    group_id: str,
    *,
    members: int = 1,
    timeout: float = 120.0,
    workers: list[WorkerProcess] | None = None,
) -> float:
    """Wait until `group_id` is stable with `members` members that own partitions."""
    admin = AdminClient(kafka_for(bootstrap).admin())  # type: ignore[arg-type]
    start = time.monotonic()
    last = "unknown"
    while time.monotonic() - start < timeout:
        for w in workers or []:
            if not w.alive():
                raise RuntimeError(f"worker exited early:\n{w.log_tail()}")
        try:
            fut = admin.describe_consumer_groups([group_id], request_timeout=5)[group_id]
            desc = fut.result()
            last = f"{desc.state} members={len(desc.members)}"
            assigned = sum(
                len(m.assignment.topic_partitions) for m in desc.members if m.assignment
            )
            if (
                desc.state == ConsumerGroupState.STABLE
                and len(desc.members) >= members
                and assigned > 0
            ):
                return time.monotonic() - start
        except Exception as exc:  # the group does not exist yet
            last = repr(exc)
        time.sleep(0.5)
    tails = "\n".join(w.log_tail() for w in workers or [])
    raise TimeoutError(f"group {group_id} not ready after {timeout}s ({last})\n{tails}")
