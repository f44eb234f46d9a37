"""Issue 12 §6: a report with risk findings rendered in headless Chromium: the page's own
recount matches the JSON, the verdict is RISK, and no internal "page check" label is shown.
The screenshot is written for review (`SENDGATE_SCREENSHOT_DIR` keeps a copy)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from streams.audit.report_html import render_html

from .test_report_html import _report

PNG = b"\x89PNG\r\n\x1a\n"


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        message = "chromium not installed (apt-get install -y chromium; `make browser`)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return exe


def _run(args: list[str], page: Path) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}",
             "--virtual-time-budget=3000", *args, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=False,
        )


@pytest.mark.timeout(240)
def test_risk_report_renders_in_chromium(tmp_path: Path) -> None:
    report = _report()
    totals = report["totals"]
    assert isinstance(totals, dict) and totals["risk"] > 0
    page = tmp_path / "risk.html"
    page.write_text(render_html(report), encoding="utf-8")

    done = _run(["--dump-dom"], page)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body and 'data-rendered="true"' in body.group(1)
    assert 'data-js-consistent="true"' in body.group(1)
    assert 'data-verdict="risk"' in dom
    for key, value in totals.items():
        found = re.search(rf'id="js-total-{key}" data-js-total="(\d+)"', dom)
        assert found and int(found.group(1)) == value, key
    visible = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", dom, flags=re.S)
    assert "page check" not in visible

    shot = tmp_path / "risk.png"
    _run([f"--screenshot={shot}", "--window-size=1280,1600"], page)
    assert shot.read_bytes()[:8] == PNG and shot.stat().st_size > 10_000
    keep = os.environ.get("SENDGATE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "audit-risk-report.png")
