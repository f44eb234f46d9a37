"""Render the JSON audit report as one self-contained HTML file.

Compliance officers open it from a mail or a ticket, often offline: everything (CSS,
SVG charts, a few lines of JS for filtering and a self-check) is inline, nothing is
fetched. The totals sit in elements with ids and `data-total` attributes, and the inline
script recomputes them from the embedded findings into hidden `data-js-total` elements
(never shown to the reader: an internal check, not content), so a headless browser test can
check the rendered page against the JSON.

Pure: `render_html(report) -> str`, no I/O.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from streams.audit.compare import ALL_KINDS, AUDITED_KINDS, RISK_KINDS, FindingKind

KIND_COLOURS: dict[str, str] = {
    FindingKind.AGREE.value: "#2e7d32",
    FindingKind.REASON_DIFFERS.value: "#9e9d24",
    FindingKind.ALLOW_TO_BLOCK.value: "#c62828",
    FindingKind.BLOCK_TO_ALLOW.value: "#ef6c00",
    FindingKind.MISSING.value: "#6a1b9a",
    FindingKind.NOT_REDECIDED.value: "#546e7a",
    FindingKind.ORPHAN.value: "#1565c0",
}
TRANSITION_COLOURS = {
    "allow_to_block": "#c62828",
    "block_to_allow": "#ef6c00",
    "reason_only": "#9e9d24",
}

# (json key in totals, label); the order of the totals panel
TOTAL_LABELS: tuple[tuple[str, str], ...] = (
    ("requests_audited", "Requests audited"),
    ("agreeing", "Agreeing"),
    ("reason_differs", "Same decision, other reason"),
    ("allow_to_block", "ALLOW→BLOCK (sent without a basis)"),
    ("block_to_allow", "BLOCK→ALLOW"),
    ("missing_decisions", "Missing decisions"),
    ("not_redecided", "Not re-decided"),
    ("decisions_without_request", "Decisions without a request"),
    ("risk", "In risk classes"),
)
# totals key -> finding kind it counts (requests_audited and risk are sums)
TOTAL_KIND: dict[str, str] = {
    "agreeing": FindingKind.AGREE.value,
    "reason_differs": FindingKind.REASON_DIFFERS.value,
    "allow_to_block": FindingKind.ALLOW_TO_BLOCK.value,
    "block_to_allow": FindingKind.BLOCK_TO_ALLOW.value,
    "missing_decisions": FindingKind.MISSING.value,
    "not_redecided": FindingKind.NOT_REDECIDED.value,
    "decisions_without_request": FindingKind.ORPHAN.value,
}
BREAKDOWN_TITLES: tuple[tuple[str, str], ...] = (
    ("reason_code", "By reason code (re-decision)"),
    ("rule_id", "By rule id"),
    ("legal_entity", "By legal entity"),
    ("channel", "By channel"),
    ("emitted_reason_code", "By emitted reason code"),
    ("tenant", "By tenant"),
)
MAX_CHART_ROWS = 15
MAX_IDS_PER_CELL = 50
MAX_TABLE_ROWS = 2000

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
  color:#1c1c1c;background:#f6f7f9}
header{background:#263238;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px} header p{margin:0;opacity:.85}
main{padding:18px 28px;max-width:1280px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:14px 18px;
  margin:0 0 18px}
h2{font-size:17px;margin:0 0 10px} h3{font-size:15px;margin:14px 0 6px}
.verdict{font-size:18px;font-weight:600;padding:10px 14px;border-radius:6px;
  display:inline-block}
.verdict.clean{background:#e8f5e9;color:#1b5e20} .verdict.risk{background:#ffebee;color:#b71c1c}
.totals{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px;
  margin:12px 0 0}
.total{border:1px solid #dde1e6;border-radius:6px;padding:8px 10px}
.total .n{font-size:22px;font-weight:700;display:block} .total.riskcls{border-color:#c62828}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e6e8eb;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f0f2f5;position:sticky;top:0} td.num,th.num{text-align:right}
code,.ids{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.ids{color:#37474f;word-break:break-all}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
.meta td:first-child{width:180px;color:#546e7a}
.muted{color:#607d8b} input[type=search]{padding:5px 8px;width:320px;margin:4px 0 8px}
.sw{display:inline-block;width:10px;height:10px}
summary{cursor:pointer;color:#37474f;margin:6px 0}
"""

JS = """
(function(){
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var byKind = {};
  data.kinds.forEach(function(k){ byKind[k] = 0; });
  byKind.agree = data.agree_count;
  data.rows.forEach(function(r){ byKind[r[0]] = (byKind[r[0]] || 0) + 1; });
  var audited = 0; data.audited_kinds.forEach(function(k){ audited += byKind[k] || 0; });
  var risk = 0; data.risk_kinds.forEach(function(k){ risk += byKind[k] || 0; });
  var computed = {requests_audited: audited, risk: risk};
  Object.keys(data.total_kind).forEach(function(t){
    computed[t] = byKind[data.total_kind[t]] || 0;
  });
  var consistent = true;
  Object.keys(computed).forEach(function(t){
    var el = document.getElementById('js-total-' + t);
    if (el) {
      el.textContent = String(computed[t]);
      el.setAttribute('data-js-total', String(computed[t]));
    }
    var srv = document.getElementById('total-' + t);
    if (srv && Number(srv.getAttribute('data-total')) !== computed[t]) { consistent = false; }
  });
  document.body.setAttribute('data-js-consistent', consistent ? 'true' : 'false');
  var box = document.getElementById('finding-filter');
  if (box) {
    box.addEventListener('input', function(){
      var q = box.value.toLowerCase();
      document.querySelectorAll('#findings-table tbody tr').forEach(function(tr){
        tr.style.display = tr.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
      });
    });
  }
  document.body.setAttribute('data-rendered', 'true');
})();
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _script_json(obj: Any) -> str:
    """JSON that is safe inside a <script> element (no `</script>` breakout)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _legend(kinds: Sequence[str], labels: Mapping[str, str], colours: Mapping[str, str]) -> str:
    items = "".join(
        f'<span><i style="background:{colours[k]}"></i>{_e(labels.get(k, k))}</span>' for k in kinds
    )
    return f'<div class="legend">{items}</div>'


def bar_chart_svg(
    values: Sequence[tuple[str, int, str]], *, title: str, width: int = 720, bar: int = 22
) -> str:
    """Horizontal bars: one (label, value, colour) per row, the value printed at the end."""
    label_w = 290
    plot_w = width - label_w - 70
    top = max((v for _, v, _ in values), default=0) or 1
    height = bar * len(values) + 10
    rows = []
    for i, (label, value, colour) in enumerate(values):
        y = 5 + i * bar
        w = round(plot_w * value / top) if value else 0
        rows.append(
            f'<text x="{label_w - 6}" y="{y + bar * 0.68:.1f}" text-anchor="end">{_e(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{bar - 6}" fill="{colour}">'
            f"<title>{_e(label)}: {value}</title></rect>"
            f'<text x="{label_w + w + 5}" y="{y + bar * 0.68:.1f}">{value}</text>'
        )
    return (
        f'<svg role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-size="12" xmlns="http://www.w3.org/2000/svg">'
        + "".join(rows)
        + "</svg>"
    )


def stacked_chart_svg(
    rows: Sequence[tuple[str, Mapping[str, int]]],
    kinds: Sequence[str],
    colours: Mapping[str, str],
    *,
    title: str,
    width: int = 720,
    bar: int = 22,
) -> str:
    """Horizontal stacked bars: one row per dimension value, one segment per class."""
    label_w = 290
    plot_w = width - label_w - 70
    top = max((sum(r.values()) for _, r in rows), default=0) or 1
    height = bar * len(rows) + 10
    parts = []
    for i, (label, counts) in enumerate(rows):
        y = 5 + i * bar
        x = float(label_w)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar * 0.68:.1f}" text-anchor="end">'
            f"{_e(_short(label))}<title>{_e(label)}</title></text>"
        )
        for k in kinds:
            n = counts.get(k, 0)
            if not n:
                continue
            w = plot_w * n / top
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{max(w, 1):.1f}" height="{bar - 6}" '
                f'fill="{colours[k]}"><title>{_e(label)} · {_e(k)}: {n}</title></rect>'
            )
            x += w
        parts.append(
            f'<text x="{x + 5:.1f}" y="{y + bar * 0.68:.1f}">{sum(counts.values())}</text>'
        )
    return (
        f'<svg role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-size="12" xmlns="http://www.w3.org/2000/svg">'
        + "".join(parts)
        + "</svg>"
    )


def _short(label: str, limit: int = 44) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _ids_cell(ids: Sequence[str]) -> str:
    if not ids:
        return ""
    shown = ", ".join(_e(i) for i in ids[:MAX_IDS_PER_CELL])
    more = (
        f" <span class=muted>… +{len(ids) - MAX_IDS_PER_CELL}</span>"
        if len(ids) > MAX_IDS_PER_CELL
        else ""
    )
    return f'<span class="ids">{shown}</span>{more}'


def _totals_section(report: Mapping[str, Any]) -> str:
    totals = report["totals"]
    risk = int(totals["risk"])
    what_if = report.get("policy_change") is not None
    under = " under the candidate policy" if what_if else ""
    verdict = (
        '<div class="verdict risk" id="verdict" data-verdict="risk">RISK: '
        f"{risk} request(s) in a risk class (ALLOW→BLOCK or missing decision){under}</div>"
        if risk
        else '<div class="verdict clean" id="verdict" data-verdict="clean">'
        f"Clean: no request in a risk class{under}</div>"
    )
    risk_totals = {"allow_to_block", "missing_decisions", "risk"}
    cards = "".join(
        f'<div class="total{" riskcls" if key in risk_totals and totals[key] else ""}">'
        f'<span class="n" id="total-{key}" data-total="{int(totals[key])}">'
        f"{int(totals[key])}</span>"
        f"{_e(label)}"
        f'<span hidden id="js-total-{key}"></span></div>'
        for key, label in TOTAL_LABELS
    )
    labels = report["kind_labels"]
    counts = report["counts"]
    bars = [(labels[k.value], int(counts[k.value]), KIND_COLOURS[k.value]) for k in ALL_KINDS]
    chart = bar_chart_svg(bars, title="findings by class")
    return (
        f'<section id="summary"><h2>Verdict</h2>{verdict}'
        f'<div class="totals">{cards}</div><h3>Findings by class</h3>{chart}</section>'
    )


def _meta_section(report: Mapping[str, Any]) -> str:
    src = report["source"]
    rows = [
        ("Generated", report["generated_at"]),
        ("Broker", src["bootstrap"]),
        ("Topic prefix", src["topic_prefix"] or "(none)"),
        ("Window", json.dumps(report["window"], ensure_ascii=False)),
        ("Tenant", report["tenant"] or "(all)"),
        ("Policy", json.dumps(report["policy"], ensure_ascii=False)),
        ("Inputs read", json.dumps(src["inputs"], ensure_ascii=False)),
        ("Outputs read", json.dumps(src["outputs"], ensure_ascii=False)),
        ("Replay order", src["ordering"]),
        ("Exit code", report["exit_code"]),
        ("Audit run id", report.get("audit_run_id", "")),
    ]
    body = "".join(f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>" for k, v in rows)
    return f'<section id="meta"><h2>Run</h2><table class="meta">{body}</table></section>'


def _breakdown_section(report: Mapping[str, Any]) -> str:
    kinds = [k.value for k in ALL_KINDS]
    labels = report["kind_labels"]
    out = ['<section id="breakdown"><h2>Breakdown</h2>', _legend(kinds, labels, KIND_COLOURS)]
    id_index: Mapping[str, Any] = report["request_ids"]
    for dim, title in BREAKDOWN_TITLES:
        table: Mapping[str, Mapping[str, int]] = report["breakdown"].get(dim, {})
        if not table:
            continue
        rows = list(table.items())
        chart_rows = rows[:MAX_CHART_ROWS]
        out.append(f'<h3 id="bd-{_e(dim)}">{_e(title)}</h3>')
        out.append(stacked_chart_svg(chart_rows, kinds, KIND_COLOURS, title=title))
        if len(rows) > MAX_CHART_ROWS:
            out.append(f'<p class="muted">chart shows the top {MAX_CHART_ROWS} of {len(rows)}</p>')
        head = "".join(f'<th class="num">{_e(labels[k])}</th>' for k in kinds)
        body = []
        dim_ids: Mapping[str, Any] = id_index.get(dim, {})
        for value, counts in rows:
            cells = "".join(f'<td class="num">{counts.get(k, 0) or ""}</td>' for k in kinds)
            risky = dim_ids.get(value, {})
            ids = [i for k in sorted(v.value for v in RISK_KINDS) for i in risky.get(k, [])]
            body.append(
                f"<tr><td><code>{_e(value)}</code></td>{cells}<td>{_ids_cell(ids)}</td></tr>"
            )
        # long tables start folded; the chart above already shows the top values
        opened = " open" if len(rows) <= MAX_CHART_ROWS else ""
        out.append(
            f"<details{opened}><summary>table: {len(rows)} value(s)</summary>"
            f'<table data-dimension="{_e(dim)}"><thead><tr><th>{_e(dim)}</th>{head}'
            "<th>request ids in risk classes</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></details>"
        )
    out.append("</section>")
    return "".join(out)


def _decision_cell(d: Mapping[str, Any] | None) -> str:
    if not d:
        return '<span class="muted">—</span>'
    revoked = " (revocation)" if d.get("revokes") else ""
    return f"<b>{_e(d['decision'])}</b> <code>{_e(d['reason_code'])}</code>{revoked}"


def _findings_section(report: Mapping[str, Any]) -> str:
    labels = report["kind_labels"]
    rows: list[str] = []
    total = 0
    for kind in ALL_KINDS:
        for f in report["findings"].get(kind.value, []):
            total += 1
            if len(rows) >= MAX_TABLE_ROWS:
                continue
            rows.append(
                f'<tr data-kind="{_e(kind.value)}"><td><i class="sw" '
                f'style="background:{KIND_COLOURS[kind.value]}"></i> {_e(labels[kind.value])}</td>'
                f"<td><code>{_e(f['request_id'])}</code></td><td>{_e(f['tenant'])}</td>"
                f"<td>{_e(f['legal_entity'])}</td><td>{_e(f['channel'])}</td>"
                f"<td>{_decision_cell(f['emitted'])}</td><td>{_decision_cell(f['redecided'])}</td>"
                f"<td><code>{_e(f['position'])}</code></td></tr>"
            )
    note = (
        f'<p class="muted">showing {MAX_TABLE_ROWS} of {total}; the JSON report lists all</p>'
        if total > MAX_TABLE_ROWS
        else ""
    )
    if not total:
        return (
            '<section id="findings"><h2>Findings</h2><p>Every audited request agrees.</p></section>'
        )
    return (
        '<section id="findings"><h2>Findings (all but agreeing)</h2>'
        '<input type="search" id="finding-filter" '
        'placeholder="filter: request id, entity, reason…">'
        f'{note}<table id="findings-table"><thead><tr><th>class</th><th>request id</th>'
        "<th>tenant</th><th>legal entity</th><th>channel</th><th>emitted</th><th>re-decided</th>"
        f"<th>input record</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _policy_section(report: Mapping[str, Any]) -> str:
    change = report.get("policy_change")
    if change is None:
        return ""
    bt = change["by_transition"]
    chart = bar_chart_svg(
        [
            ("ALLOW→BLOCK", int(bt["allow_to_block"]), TRANSITION_COLOURS["allow_to_block"]),
            ("BLOCK→ALLOW", int(bt["block_to_allow"]), TRANSITION_COLOURS["block_to_allow"]),
            ("reason only", int(bt["reason_only"]), TRANSITION_COLOURS["reason_only"]),
        ],
        title="policy changes by transition",
    )
    reasons = "".join(
        f'<tr><td><code>{_e(k)}</code></td><td class="num">{v}</td></tr>'
        for k, v in change["by_reason_change"].items()
    )
    listed = change["changes"][:MAX_TABLE_ROWS]
    rows = "".join(
        f"<tr><td><code>{_e(c['request_id'])}</code></td><td>{_e(c['tenant'])}</td>"
        f"<td>{_e(c['legal_entity'])}</td><td>{_e(c['channel'])}</td>"
        f"<td>{_decision_cell(c['before'])}</td><td>{_decision_cell(c['after'])}</td></tr>"
        for c in listed
    )
    more = (
        f'<p class="muted">showing {len(listed)} of {change["changed"]}</p>'
        if change["changed"] > len(listed)
        else ""
    )
    policy = report["policy"]
    return (
        '<section id="policy-change"><h2>What-if: candidate policy</h2>'
        f"<p>Candidate <code>{_e(policy.get('candidate'))}</code> against the policy in force "
        f"<code>{_e(policy.get('baseline'))}</code>: "
        f'<b id="policy-changed" data-total="{int(change["changed"])}">'
        f"{int(change['changed'])}</b> "
        "request(s) decided differently. The classes above compare the candidate's decisions "
        "with the emitted ones.</p>"
        f"{chart}<h3>By reason change</h3><table><thead><tr><th>before → after</th>"
        f'<th class="num">requests</th></tr></thead><tbody>{reasons}</tbody></table>'
        f'<h3>Changed requests</h3>{more}<table id="policy-change-table"><thead><tr>'
        "<th>request id</th><th>tenant</th><th>legal entity</th><th>channel</th>"
        "<th>policy in force</th><th>candidate</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _page_data(report: Mapping[str, Any]) -> dict[str, Any]:
    rows = [
        [kind.value, f["request_id"]]
        for kind in ALL_KINDS
        for f in report["findings"].get(kind.value, [])
    ]
    return {
        "kinds": [k.value for k in ALL_KINDS],
        "audited_kinds": [k.value for k in AUDITED_KINDS],
        "risk_kinds": sorted(k.value for k in RISK_KINDS),
        "total_kind": TOTAL_KIND,
        "agree_count": int(report["counts"][FindingKind.AGREE.value]),
        "rows": rows,
    }


def render_html(report: Mapping[str, Any]) -> str:
    """The whole page as one string (UTF-8, no external resources)."""
    title = "sendgate re-audit"
    tenant = report["tenant"] or "all tenants"
    window = report["window"]
    subtitle = (
        f"{tenant} · send requests from {window.get('from')} to {window.get('to') or 'end'} · "
        f"generated {report['generated_at']}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f'<body data-exit-code="{int(report["exit_code"])}">'
        f"<header><h1>{_e(title)}</h1><p>{_e(subtitle)}</p></header><main>"
        + _totals_section(report)
        + _policy_section(report)
        + _findings_section(report)
        + _breakdown_section(report)
        + _meta_section(report)
        + "</main>"
        '<script type="application/json" id="report-data">'
        f"{_script_json(_page_data(report))}</script>"
        f"<script>{JS}</script></body></html>\n"
    )
