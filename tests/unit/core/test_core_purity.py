"""The core is pure: no streaming, storage or telemetry libraries, no clock."""

from __future__ import annotations

import re
from pathlib import Path

CORE = Path(__file__).resolve().parents[3] / "streams" / "core"
FORBIDDEN = re.compile(
    r"^\s*(import|from)\s+(faust|redis|fastavro|opentelemetry|confluent_kafka|aiokafka|mode)\b"
    r"|datetime\.now\(|datetime\.utcnow\(|time\.time\(|date\.today\(",
    re.MULTILINE,
)


def test_core_imports_no_io_library_and_reads_no_clock() -> None:
    sources = sorted(CORE.rglob("*.py"))
    assert len(sources) > 20
    offenders = [str(p) for p in sources if FORBIDDEN.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
