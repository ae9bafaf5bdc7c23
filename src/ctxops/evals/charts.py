"""The report's charts as inline SVG strings, drawn with matplotlib's Agg-free SVG backend (no display needed).

Three charts: the depth × length heatmap, score vs length with 95% interval bands, and latency vs length. Each
returns an ``<svg>`` element ready to paste into HTML. This module knows a summary dict, not files or runs.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("svg")  # before pyplot: never look for a display
import matplotlib.pyplot as plt  # noqa: E402

from ctxops.evals.config import format_length  # noqa: E402

plt.rcParams.update(
    {"svg.fonttype": "none", "font.size": 10, "axes.spines.top": False, "axes.spines.right": False}
)


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def heatmap(summary: dict[str, Any]) -> str | None:
    """Score by needle depth (rows) and length (columns), red to green; None when no task has depths."""
    grid = summary["depth_grid"]
    if not grid:
        return None
    depths = sorted({g["depth"] for g in grid})
    lengths = sorted({g["length"] for g in grid})
    values = [[float("nan")] * len(lengths) for _ in depths]
    for g in grid:
        values[depths.index(g["depth"])][lengths.index(g["length"])] = g["score"]
    figure, axes = plt.subplots(figsize=(1.2 + 0.9 * len(lengths), 0.9 + 0.45 * len(depths)))
    image = axes.imshow(values, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if value == value:  # not NaN
                axes.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8)
    axes.set_xticks(range(len(lengths)), [format_length(n) for n in lengths])
    axes.set_yticks(range(len(depths)), [f"{d * 100:g}%" for d in depths])
    axes.set_xlabel("context length (tokens)")
    axes.set_ylabel("needle depth")
    figure.colorbar(image, ax=axes, label="score")
    return _svg(figure)


def score_vs_length(summary: dict[str, Any]) -> str:
    """Per-task scores and the all-task score with its 95% Wilson band, against length (log2 axis)."""
    lengths = summary["lengths"]
    figure, axes = plt.subplots(figsize=(7, 4))
    for task in summary["tasks"]:
        cells = summary["cells"][task]
        xs = [n for n in lengths if str(n) in cells]
        axes.plot(xs, [cells[str(n)]["score"] for n in xs], marker=".", linewidth=1, alpha=0.6, label=task)
    overall = [summary["overall"][str(n)] for n in lengths]
    axes.fill_between(lengths, [c["ci_low"] for c in overall], [c["ci_high"] for c in overall], color="black",
                      alpha=0.12, label="all tasks, 95% CI")  # fmt: skip
    axes.plot(
        lengths, [c["score"] for c in overall], color="black", linewidth=2.5, marker="o", label="all tasks"
    )
    axes.axhline(
        summary["threshold"],
        color="grey",
        linestyle="--",
        linewidth=1,
        label=f"threshold {summary['threshold']:g}",
    )
    axes.set_xscale("log", base=2)
    axes.set_xticks(lengths, [format_length(n) for n in lengths])
    axes.minorticks_off()
    axes.set_ylim(-2, 102)
    axes.set_xlabel("context length (tokens)")
    axes.set_ylabel("score")
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _svg(figure)


def latency_vs_length(summary: dict[str, Any]) -> str:
    """Median and p90 TTFT and end-to-end latency against length, labelled with the concurrency they ran under."""
    lengths = summary["lengths"]
    figure, axes = plt.subplots(figsize=(7, 3.5))
    for key, marker in (("latency", "o"), ("latency_solo", "s")):
        rows = summary.get(key) or {}
        levels = sorted({c for lat in rows.values() for c in lat.get("concurrency") or []})
        where = f" @ concurrency {'/'.join(map(str, levels)) or '?'}"
        for metric, label in (("ttft_s", "TTFT"), ("e2e_s", "end-to-end")):
            for point, style in (("p50", "-"), ("p90", ":")):
                ys = [rows[str(n)][metric][point] if str(n) in rows else None for n in lengths]
                pairs = [(x, y) for x, y in zip(lengths, ys, strict=True) if y is not None]
                if pairs:
                    axes.plot(
                        *zip(*pairs, strict=True), style, marker=marker, label=f"{label} {point}{where}"
                    )
    axes.set_xscale("log", base=2)
    axes.set_xticks(lengths, [format_length(n) for n in lengths])
    axes.minorticks_off()
    axes.set_xlabel("context length (tokens)")
    axes.set_ylabel("seconds")
    axes.legend(fontsize=7, frameon=False)
    return _svg(figure)
