"""Batch results out: a CSV of every decision and a self-contained HTML report with inline SVG charts."""

from __future__ import annotations

import csv
import html
from collections import Counter
from pathlib import Path

from r1stack.apps.risk.answer import RISK_LEVELS
from r1stack.apps.risk.scorer import BatchReport

COLORS = {"low": "#4caf50", "medium": "#ffb300", "high": "#f4511e", "critical": "#b71c1c"}


def write_csv(report: BatchReport, path: Path) -> None:
    rows = [r.row() for r in report.results]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        if not rows:
            fh.write("transaction_id,risk_level,score\n")
            return
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def bar_chart(items: list[tuple[str, float]], colors: dict[str, str] | None = None, width: int = 560) -> str:
    """Horizontal bars as inline SVG: no scripts, no external assets."""
    row_h, label_w = 26, 220
    top = max((v for _, v in items), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row_h * len(items) + 10}" '
        f'role="img">'
    ]
    for i, (label, value) in enumerate(items):
        y = i * row_h + 5
        w = (width - label_w - 60) * value / top
        color = (colors or {}).get(label, "#3f51b5")
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end" font-size="13">'
            f"{html.escape(label[:32])}</text>"
        )
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{color}"/>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" font-size="13">{value:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def write_html(report: BatchReport, path: Path, title: str = "Transaction risk report") -> None:
    res = report.results
    levels = Counter(r.risk_level for r in res)
    reasons = Counter(x.strip().lower() for r in res for x in r.reasons + r.flags if x.strip())
    buckets = Counter(min(int(r.combined_score // 10), 9) for r in res)
    top = sorted(res, key=lambda r: -r.combined_score)[:20]
    table = "".join(
        f"<tr><td>{html.escape(r.transaction_id)}</td><td>{r.risk_level}</td><td>{r.score}</td>"
        f"<td>{r.rules_score}</td><td>{r.combined_score}</td><td>{html.escape('; '.join(r.flags))}</td></tr>"
        for r in top
    )
    errors = "".join(f"<li>row {e.row}: {html.escape(e.message)}</li>" for e in report.errors[:200])
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}
</style></head><body><h1>{html.escape(title)}</h1>
<p>{len(res)} transactions scored, {len(report.errors)} rejected, {report.rows_per_s:.2f} rows/s.</p>
<h2>Risk distribution</h2>{bar_chart([(lv, levels.get(lv, 0)) for lv in RISK_LEVELS], COLORS)}
<h2>Combined score</h2>{bar_chart([(f"{b * 10}-{b * 10 + 9}", buckets.get(b, 0)) for b in range(10)])}
<h2>Top reasons</h2>{bar_chart(reasons.most_common(12))}
<h2>Highest risk</h2><table><tr><th>transaction</th><th>level</th><th>model</th><th>rules</th><th>combined</th>
<th>signals</th></tr>{table}</table>
<h2>Rejected rows</h2><ul>{errors or "<li>none</li>"}</ul></body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
