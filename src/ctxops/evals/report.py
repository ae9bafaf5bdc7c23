"""``ctxops report``: a run's ``summary.json``, a terminal table, and ``report.html``.

This module ties :mod:`.summary` (numbers), :mod:`.report_html` (the page) and rich (the terminal) together; it
knows run directories, not how samples were produced.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ctxops.evals import report_html
from ctxops.evals.config import format_length
from ctxops.evals.robustness_html import print_robustness
from ctxops.evals.rundir import (
    LATENCY_FILE,
    REPORT_FILE,
    SUMMARY_FILE,
    RunDir,
    RunDirError,
    describe_bad_lines,
)
from ctxops.evals.stats import RULER_THRESHOLD
from ctxops.evals.summary import summarize


def write_reports(run_dir: RunDir, threshold: float = RULER_THRESHOLD) -> dict[str, Any]:
    """Write summary.json and report.html into ``run_dir``; returns the summary.

    Its ``warnings`` name what the numbers leave out: lines of samples.jsonl without a record, samples without
    token counts.
    """
    run = run_dir.read_run()
    samples = run_dir.read_samples()
    skipped = describe_bad_lines(
        run_dir.samples_path,
        samples.bad_lines,
        "skipped, so this report leaves their samples out; rerun the same `ctxops eval` command with this --out "
        "to run them again",
    )
    if not samples.records:
        raise RunDirError(
            f"{run_dir.path}: the run has no finished samples yet; nothing to report"
            + (f". {skipped}" if skipped else "")
        )
    summary = summarize(samples.records, run, threshold, run_dir.read_samples(LATENCY_FILE).records)
    if skipped:
        summary["warnings"] = [skipped, *summary["warnings"]]
    run_dir.write_json(SUMMARY_FILE, summary)
    run_dir.file(REPORT_FILE).write_text(report_html.render(summary, run), encoding="utf-8")
    return summary


def _ttft(latency: dict[str, Any] | None) -> str:
    """Median TTFT in ms with the concurrency it ran under: ``412 @8``."""
    if not latency or latency["ttft_s"]["p50"] is None:
        return "-"
    levels = "/".join(str(c) for c in latency.get("concurrency") or []) or "?"
    return f"{latency['ttft_s']['p50'] * 1000:.0f} [dim]@{levels}[/dim]"


def print_table(summary: dict[str, Any], console: Console | None = None) -> None:
    """Score per task × length with 95% intervals, then effective length and median latency."""
    console = console or Console()
    lengths = summary["lengths"]
    table = Table(title="score (95% Wilson interval)", title_justify="left")
    table.add_column("task")
    for n in lengths:
        table.add_column(format_length(n), justify="right")

    def fmt(c: dict[str, Any]) -> str:
        colour = (
            "green"
            if c["ci_low"] >= summary["threshold"]
            else "red"
            if c["score"] < summary["threshold"]
            else "yellow"
        )
        return f"[{colour}]{c['score']:5.1f}[/{colour}] [dim]{c['ci_low']:.0f}-{c['ci_high']:.0f}[/dim]"

    for task in summary["tasks"]:
        cells = summary["cells"][task]
        table.add_row(task, *(fmt(cells[str(n)]) if str(n) in cells else "-" for n in lengths))
    average = summary.get("average") or {"label": "all tasks"}
    table.add_row(
        f"[bold]{average['label']}[/bold]",
        *(fmt(summary["overall"][str(n)]) for n in lengths),
        end_section=True,
    )
    for key, name in (("latency", "TTFT p50 (ms)"), ("latency_solo", "TTFT p50 (ms), alone")):
        rows = summary.get(key) or {}
        if not rows:
            continue
        cells = [rows.get(str(n)) for n in lengths]
        table.add_row(f"[dim]{name}[/dim]", *(_ttft(c) for c in cells))
    console.print(table)
    if average.get("missing_ruler_tasks"):
        console.print(
            f"[dim]{average['label']} ({', '.join(average['tasks'])}): not RULER's 13-task average; missing "
            f"{', '.join(average['missing_ruler_tasks'])}[/dim]",
            highlight=False,
        )
    for warning in summary.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    eff = summary["effective_length"]

    def show(value: int | None) -> str:
        return format_length(value) if value else "below the shortest length tested"

    console.print(
        f"effective length: {show(eff['lower_bound'])} (95% lower bound >= {summary['threshold']:g}); "
        f"{show(eff['point_estimate'])} (RULER point estimate)"
    )
    print_robustness(summary.get("robustness"), console)
