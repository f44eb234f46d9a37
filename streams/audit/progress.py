"""A one-line progress bar with events/s and ETA, on stderr, only on a terminal.

Hand-written (no `rich`/`tqdm` dependency): a replay of millions of records runs for
minutes and an SRE wants to know whether to wait; cron and CI get no output at all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def render_line(label: str, done: int, total: int, elapsed: float, width: int = 28) -> str:
    """The bar text for `done` of `total` after `elapsed` seconds (pure, for tests)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    if total > 0:
        frac = min(1.0, done / total)
        filled = int(frac * width)
        bar = "█" * filled + "░" * (width - filled)
        # the first second is mostly connecting and fetching: no ETA from it
        settled = elapsed >= 1.0 and rate > 0 and done < total
        eta = format_duration((total - done) / rate) if settled else "--:--"
        return f"{label} |{bar}| {frac * 100:5.1f}% {done:,}/{total:,} {rate:,.0f} ev/s ETA {eta}"
    return f"{label} {done:,} events {rate:,.0f} ev/s {format_duration(elapsed)}"


class Progress:
    """Counts events and redraws at most every `interval` seconds; a no-op off a TTY."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.total = total
        self.done = 0
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self._next_draw = self.started + interval
        self._last_len = 0

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.enabled:
            now = self.clock()
            if now >= self._next_draw:
                self._next_draw = now + self.interval
                self._draw(now)

    def stage(self, label: str, total: int) -> None:
        """Start a new phase (e.g. reading the output topics) on the same line."""
        self.finish()
        self.label = label
        self.total = total
        self.done = 0
        self.started = self.clock()
        self._next_draw = self.started + self.interval

    def _draw(self, now: float) -> None:
        line = render_line(self.label, self.done, self.total, now - self.started)
        pad = " " * max(0, self._last_len - len(line))
        self._last_len = len(line)
        self.stream.write("\r" + line + pad)
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and (self.done or self.total):
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()
            self._last_len = 0

    @property
    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0
