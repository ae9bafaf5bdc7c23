"""The self-contained ``report.html``: inline SVG charts, tables and provenance, no scripts and no external files.

It opens offline in any browser (no CDN, no fonts, no JavaScript). This module knows a summary dict and HTML, not
statistics or runs.
"""

from __future__ import annotations

import html
import json
from typing import Any

from ctxops.evals import charts, robustness_html
from ctxops.evals.config import format_length

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; } td, th { padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; } tr:nth-child(even) { background: #fafafa; }
.ci { color: #777; font-size: 0.75rem; } .headline { font-size: 1.05rem; } .chart svg { max-width: 100%; height: auto; }
pre { background: #f6f6f6; padding: 0.75rem; overflow-x: auto; font-size: 0.75rem; }
.warning { background: #fff6d6; border-left: 4px solid #e0a800; padding: 0.4rem 0.75rem; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _score_cell(c: dict[str, Any]) -> str:
    shade = int(c["score"] * 1.2)  # 0..120: red to green hue
    return (
        f'<td style="background:hsl({shade},70%,88%)">{c["score"]:.1f} '
        f'<span class="ci">[{c["ci_low"]:.1f}, {c["ci_high"]:.1f}] n={c["n"]}</span></td>'
    )


def task_table(summary: dict[str, Any]) -> str:
    """Score per task (rows) and length (columns), with intervals; the last row is all tasks."""
    lengths = summary["lengths"]
    head = "".join(f"<th>{format_length(n)}</th>" for n in lengths)
    rows = []
    for task in summary["tasks"]:
        cells = summary["cells"][task]
        tds = "".join(_score_cell(cells[str(n)]) if str(n) in cells else "<td>-</td>" for n in lengths)
        rows.append(f"<tr><td>{_e(task)}</td>{tds}</tr>")
    tds = "".join(_score_cell(summary["overall"][str(n)]) for n in lengths)
    average = summary.get("average") or {"label": "all tasks", "tasks": summary["tasks"]}
    rows.append(f"<tr><td><b>{_e(average['label'])}</b></td>{tds}</tr>")
    note = f"{_e(average['label'])}: {_e(', '.join(average['tasks']))}"
    if average.get("missing_ruler_tasks"):
        note += f"; not RULER's 13-task average (missing {_e(', '.join(average['missing_ruler_tasks']))})"
    return (
        f'<table id="task-table"><tr><th>task</th>{head}</tr>{"".join(rows)}</table>'
        f'<p class="ci" id="average-note">{note}</p>'
    )


def latency_table(summary: dict[str, Any]) -> str:
    """Latency percentiles per length in milliseconds, each row with the concurrency it was measured under.

    Rows of the run itself mix queueing into TTFT and TPOT when more than one request was in flight; rows of the
    ``--latency-samples`` pass were sent one at a time.
    """

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f}"

    rows = []
    for key, label in (("latency", "the run"), ("latency_solo", "alone")):
        for n, lat in (summary.get(key) or {}).items():
            levels = "/".join(str(c) for c in lat.get("concurrency") or []) or "?"
            rows.append(
                f"<tr><td>{format_length(int(n))}</td><td>{label}</td><td>{levels}</td>"
                f"<td>{ms(lat['ttft_s']['p50'])}</td><td>{ms(lat['ttft_s']['p90'])}</td>"
                f"<td>{ms(lat['tpot_s']['p50'])}</td><td>{ms(lat['e2e_s']['p50'])}</td><td>{ms(lat['e2e_s']['p90'])}</td>"
                f"<td>{lat['mean_prompt_tokens'] or 0:.0f}</td></tr>"
            )
    head = (
        "<th>length</th><th>samples</th><th>concurrency</th><th>TTFT p50</th><th>TTFT p90</th><th>TPOT p50</th>"
        "<th>e2e p50</th><th>e2e p90</th><th>prompt tokens</th>"
    )
    note = (
        "milliseconds; concurrency: requests allowed in flight while the row's samples ran (above 1, queueing is in "
        "the figures; `--latency-samples N` adds rows measured alone)"
    )
    return f'<table id="latency-table"><tr>{head}</tr>{"".join(rows)}</table><p class="ci">{_e(note)}</p>'


def headline(summary: dict[str, Any]) -> str:
    """Effective length under both definitions."""
    eff = summary["effective_length"]

    def show(value: int | None) -> str:
        return f"<b>{format_length(value)}</b>" if value else "<b>below the shortest length tested</b>"

    return (
        f'<p class="headline">Effective context length (95% lower bound ≥ {summary["threshold"]:g}): '
        f"{show(eff['lower_bound'])}; RULER's point-estimate definition: {show(eff['point_estimate'])}.</p>"
        f'<p class="ci">{_e(eff["definitions"]["lower_bound"])}. {_e(eff["definitions"]["point_estimate"])}.</p>'
    )


def render(summary: dict[str, Any], run: dict[str, Any]) -> str:
    """The whole page."""
    target = run.get("target", {})
    name = target.get("served_model_name") or target.get("model") or "model"
    sections = [
        f"<h1>ctxops eval: {_e(name)}</h1>",
        f"<p>{summary['num_samples']} samples · status {_e(run.get('status'))} · {_e(run.get('updated'))}</p>",
        *(f'<p class="warning">warning: {_e(w)}</p>' for w in summary.get("warnings", [])),
        headline(summary),
        "<h2>Score by task and length</h2>",
        task_table(summary),
        f'<h2>Score vs length</h2><div class="chart" id="chart-score">{charts.score_vs_length(summary)}</div>',
    ]
    heat = charts.heatmap(summary)
    if heat:
        sections.append(f'<h2>Depth × length</h2><div class="chart" id="chart-heatmap">{heat}</div>')
    sections.append(robustness_html.section(summary.get("robustness")))
    sections += [
        f'<h2>Latency</h2><div class="chart" id="chart-latency">{charts.latency_vs_length(summary)}</div>',
        latency_table(summary),
        f'<h2>Provenance</h2><pre id="provenance">{_e(json.dumps(run, indent=2, default=str))}</pre>',
    ]
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>ctxops eval: {_e(name)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )
