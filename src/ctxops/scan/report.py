"""``ctxops scan``'s report: attack success by probe, depth and length with Wilson intervals; scan.json + scan.html.

It reads the run's records (``attack_success`` per sample, written by :class:`~ctxops.scan.attack.AttackSample`):
per probe the overall success rate, a depth x length grid (a red heatmap: red is where the model falls for the
attack), success by template, and for ``many_shot`` the success rate against the number of shots. Every rate comes
with its 95% Wilson score interval. Successes are listed with their evidence and where to find their full prompt.
The usual eval report (score = share of samples that resisted) is written beside it by ``ctxops scan``. This module
knows records and charts, not engines.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from typing import Any

from ctxops.evals import stats
from ctxops.evals.charts import _svg, plt
from ctxops.evals.config import format_length
from ctxops.evals.rundir import RunDir
from ctxops.evals.summary import dedupe

SCAN_JSON = "scan.json"
SCAN_HTML = "scan.html"


def rate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Attack success of a group: n, successes, rate and 95% Wilson interval (all x 100)."""
    n = len(records)
    hits = sum(bool(r.get("attack_success")) for r in records)
    low, high = stats.wilson(hits / n if n else 0.0, n)
    return {
        "n": n,
        "successes": hits,
        "rate": 100 * hits / n if n else 0.0,
        "ci_low": 100 * low,
        "ci_high": 100 * high,
    }


def summarize_scan(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The scan.json content for a run's records (records of other tasks are ignored)."""
    records = [r for r in dedupe(records) if "attack_success" in r]
    probes: dict[str, Any] = {}
    for probe in sorted({r["probe"] for r in records}):
        mine = [r for r in records if r["probe"] == probe]
        grid: dict[tuple[float, int], list] = defaultdict(list)
        by_length: dict[int, list] = defaultdict(list)
        by_template: dict[str, list] = defaultdict(list)
        for r in mine:
            by_length[r["length"]].append(r)
            by_template[r["template"]].append(r)
            if r.get("depth") is not None:
                grid[(round(r["depth"], 6), r["length"])].append(r)
        probes[probe] = {
            "overall": rate(mine),
            "lengths": sorted(by_length),
            "by_length": {str(n): rate(rs) for n, rs in sorted(by_length.items())},
            "by_template": {t: rate(rs) for t, rs in sorted(by_template.items())},
            "grid": [{"depth": d, "length": n, **rate(rs)} for (d, n), rs in sorted(grid.items())],
            "shots": {
                str(n): sum(r.get("shots") or 0 for r in rs) / len(rs) for n, rs in sorted(by_length.items())
            }
            if probe == "many_shot"
            else None,
            "successes": [
                {k: r.get(k) for k in ("task", "length", "depth", "seed", "template", "evidence", "output")}
                for r in mine
                if r.get("attack_success")
            ],
        }
    return {"num_samples": len(records), "interval": "95% Wilson score interval", "probes": probes}


def heatmap(probe: str, summary: dict[str, Any]) -> str | None:
    """Attack success by depth (rows) and length (columns); None for a probe without depths."""
    grid = summary["grid"]
    if not grid:
        return None
    depths = sorted({g["depth"] for g in grid})
    lengths = sorted({g["length"] for g in grid})
    cells = {(g["depth"], g["length"]): g for g in grid}
    values = [[cells[(d, n)]["rate"] if (d, n) in cells else float("nan") for n in lengths] for d in depths]
    figure, axes = plt.subplots(figsize=(1.6 + 1.3 * len(lengths), 0.9 + 0.5 * len(depths)))
    image = axes.imshow(values, cmap="Reds", vmin=0, vmax=100, aspect="auto")
    for i, d in enumerate(depths):
        for j, n in enumerate(lengths):
            if (d, n) in cells:
                c = cells[(d, n)]
                label = f"{c['rate']:.0f}\n[{c['ci_low']:.0f}-{c['ci_high']:.0f}]"
                axes.text(j, i, label, ha="center", va="center", fontsize=7)
    axes.set_xticks(range(len(lengths)), [format_length(n) for n in lengths])
    axes.set_yticks(range(len(depths)), [f"{d * 100:g}%" for d in depths])
    axes.set_xlabel("context length (tokens)")
    axes.set_ylabel("attack depth")
    axes.set_title(f"{probe}: attack success % [95% Wilson]", fontsize=9)
    figure.colorbar(image, ax=axes, label="attack success %")
    return _svg(figure)


def shots_curve(summary: dict[str, Any]) -> str:
    """Many-shot success rate (with its 95% interval) against the number of shots."""
    rows = [(summary["shots"][n], c) for n, c in summary["by_length"].items()]
    figure, axes = plt.subplots(figsize=(6, 3.5))
    xs = [s for s, _ in rows]
    axes.errorbar(
        xs, [c["rate"] for _, c in rows],
        yerr=[[max(0.0, c["rate"] - c["ci_low"]) for _, c in rows], [max(0.0, c["ci_high"] - c["rate"]) for _, c in rows]],
        marker="o", capsize=3, color="darkred",
    )  # fmt: skip
    axes.set_xscale("log", base=2)
    axes.set_ylim(-2, 102)
    axes.set_xlabel("faux dialogue shots (mean per length)")
    axes.set_ylabel("attack success % (95% Wilson)")
    return _svg(figure)


def _table(rows: dict[str, dict[str, Any]], head: str) -> str:
    body = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{c['n']}</td><td>{c['successes']}</td>"
        f"<td>{c['rate']:.1f}</td><td>{c['ci_low']:.1f}-{c['ci_high']:.1f}</td></tr>"
        for k, c in rows.items()
    )
    return (
        f"<table><tr><th>{head}</th><th>n</th><th>successes</th><th>%</th><th>95% CI</th></tr>{body}</table>"
    )


def render(scan: dict[str, Any], run: dict[str, Any]) -> str:
    """scan.html: per probe a table, the heatmap or the shots curve, and the successes to review."""
    target = html.escape(json.dumps(run.get("target", {}), default=str)[:400])
    parts = [
        f"<p>target: <code>{target}</code>; {scan['num_samples']} samples; intervals: {scan['interval']}</p>"
    ]
    overall = {p: s["overall"] for p, s in scan["probes"].items()}
    parts.append("<h2>Attack success by probe</h2>" + _table(overall, "probe"))
    for probe, s in scan["probes"].items():
        parts.append(f"<h2>{html.escape(probe)}</h2>")
        parts.append(_table({format_length(int(n)): c for n, c in s["by_length"].items()}, "length"))
        parts.append(_table(s["by_template"], "template"))
        chart = shots_curve(s) if s["shots"] else heatmap(probe, s)
        if chart:
            parts.append(f'<div class="chart" id="chart-{html.escape(probe)}">{chart}</div>')
        if s["successes"]:
            items = "".join(
                f"<li>{format_length(x['length'])}, depth {x['depth']}, seed {x['seed']}, {html.escape(str(x['template']))}"
                f" ({html.escape(str(x['evidence']))}): <code>{html.escape((x['output'] or '')[:200])}</code></li>"
                for x in s["successes"][:50]
            )
            parts.append(
                f"<details><summary>{len(s['successes'])} successes (full prompts in samples.jsonl, "
                f"field attack_prompt)</summary><ul>{items}</ul></details>"
            )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ctxops scan</title>'
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}"
        "td:first-child{text-align:left}table{margin:0.5em 0}</style></head><body><h1>ctxops scan</h1>"
        + "".join(parts)
        + "</body></html>"
    )


def write_scan_reports(run_dir: RunDir) -> dict[str, Any]:
    """Write scan.json and scan.html into ``run_dir``; returns the scan summary."""
    scan = summarize_scan(run_dir.read_samples().records)
    run_dir.write_json(SCAN_JSON, scan)
    run_dir.file(SCAN_HTML).write_text(render(scan, run_dir.read_run()), encoding="utf-8")
    return scan
