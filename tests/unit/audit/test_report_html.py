"""Unit tests of the HTML report renderer (pure string checks; the browser test is in
tests/integration/test_audit.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from streams.audit.compare import (
    AuditMeta,
    DecisionView,
    EmittedDecision,
    RequestInfo,
    build_report,
    compare,
    diff_policies,
)
from streams.audit.report_html import bar_chart_svg, render_html


def _view(rid: str, decision: str, reason: str, entity: str = "Shop <BV> & Co") -> DecisionView:
    return DecisionView(rid, "t1", entity, "email", decision, reason, "NONE", ("R-X",))


def _report(with_policy: bool = False) -> dict[str, object]:
    requests = [
        RequestInfo(f"r{i}", "t1", "Shop <BV> & Co", "email", "2026-01-01T00:00:00Z", i, f"p:{i}")
        for i in range(4)
    ]
    redecided = {
        v.key: v
        for v in (
            _view("r0", "ALLOW", "ALLOW_CONSENT"),
            _view("r1", "BLOCK", "BLOCK_OBJECTION"),
            _view("r2", "ALLOW", "ALLOW_CONSENT"),
            _view("r3", "ALLOW", "ALLOW_CONSENT"),
        )
    }
    odd = "x</script><b>"
    got = {
        e.view.key: e
        for e in (
            EmittedDecision(_view("r0", "ALLOW", "ALLOW_CONSENT"), 1, "o:0"),
            EmittedDecision(_view("r1", "ALLOW", "ALLOW_CONSENT"), 1, "o:1"),
            EmittedDecision(_view("r2", "ALLOW", "ALLOW_CONSENT"), 1, "o:2"),
            EmittedDecision(_view(odd, "BLOCK", "BLOCK_OBJECTION"), 1, "o:9"),
        )
    }
    c = compare(requests, redecided, got, {("t1", f"r{i}") for i in range(4)})
    meta = AuditMeta(
        datetime(2026, 1, 1, tzinfo=UTC),
        "b:1",
        "pfx.",
        {"from": "beginning"},
        None,
        {"baseline": "defaults", "candidate": "p.toml" if with_policy else None},
        {"pfx.orders": {"0": [0, 3]}},
        {},
        "record timestamp",
    )
    changes = diff_policies(requests, redecided, redecided) if with_policy else None
    return build_report(c, meta, changes)


def test_html_is_self_contained_and_carries_totals() -> None:
    report = _report()
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    # nothing fetched from anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<svg" in page
    totals = report["totals"]
    assert isinstance(totals, dict)
    for key, value in totals.items():
        assert f'id="total-{key}" data-total="{value}"' in page
    assert 'data-verdict="risk"' in page


def test_html_escapes_everything() -> None:
    page = render_html(_report())
    assert "Shop &lt;BV&gt; &amp; Co" in page
    assert "x</script><b>" not in page
    # the embedded data parses and round-trips the odd request id
    blob = page.split('id="report-data">', 1)[1].split("</script>", 1)[0]
    data = json.loads(blob)
    assert ["decision_without_request", "x</script><b>"] in data["rows"]


def test_html_policy_section_only_in_what_if() -> None:
    assert 'id="policy-change"' not in render_html(_report())
    assert 'id="policy-change"' in render_html(_report(with_policy=True))


def test_bar_chart_zero_values() -> None:
    svg = bar_chart_svg([("a", 0, "#000"), ("b", 0, "#111")], title="t")
    assert svg.count("<rect") == 2 and 'width="0"' in svg
