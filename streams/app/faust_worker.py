"""`sendgate worker --runtime faust`: the faust-streaming adapter's process.

Imports faust, mode and aiokafka; the default worker never loads this module.
"""

from __future__ import annotations

import asyncio

from streams.compose import WorkerSettings, tune_gc
from streams.config import Settings


def use_event_loop(choice: str) -> str:
    """uvloop unless `SENDGATE_EVENT_LOOP=asyncio`: faust and aiokafka schedule several
    callbacks per record, and uvloop runs them at a fraction of the pure-Python loop's
    cost. Set before faust creates any loop."""
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            return "asyncio"
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return choice


def run_faust(settings: Settings, ws: WorkerSettings) -> int:
    import faust

    from streams.app.faust_app import WorkerOptions, create_app
    from streams.app.telemetry import Telemetry

    use_event_loop(ws.event_loop)
    telemetry = Telemetry.from_settings(settings)
    if ws.metrics_port:
        telemetry.serve_metrics(ws.metrics_port)
    app = create_app(
        WorkerOptions(
            settings=settings,
            topic_prefix=ws.topic_prefix,
            data_dir=ws.data_dir,
            web_port=ws.web_port,
            telemetry=telemetry,
            status_view=ws.status_view != "off",
            worker=ws,
        )
    )
    tune_gc(ws.gc_threshold)
    worker = faust.Worker(app, loglevel=ws.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0
