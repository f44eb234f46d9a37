"""Prometheus gauges of a status view writer (issue 12 §3: a lost view is exposed, not
only logged). Read from the view when scraped; nothing to update by hand."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from streams.view.projection import StatusView


def expose_view_metrics(registry: CollectorRegistry, view: StatusView) -> None:
    Gauge(
        "sendgate_view_stale",
        "1 while the status view is flagged stale (lost or incomplete: run `sendgate view "
        "rebuild`), as last read by this writer",
        registry=registry,
    ).set_function(lambda: 1.0 if view.stale else 0.0)
    Gauge(
        "sendgate_view_losses",
        "Times this process found the status view lost (view marker missing)",
        registry=registry,
    ).set_function(lambda: float(view.losses))
    Gauge(
        "sendgate_view_pending_keys",
        "Contact keys folded but not yet written to the status view",
        registry=registry,
    ).set_function(lambda: float(view.pending()))
