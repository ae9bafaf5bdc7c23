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
from ctxops.evals.rundir import REPORT_FILE, SUMMARY_FILE, RunDir, RunDirError, describe_bad_lines
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
    summary = summarize(samples.records, run, threshold)
    if skipped:
        summary["warnings"] = [skipped, *summary["warnings"]]
    run_dir.write_json(SUMMARY_FILE, summary)
    run_dir.file(REPORT_FILE).write_text(report_html.render(summary, run), encoding="utf-8")
    return summary


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
    table.add_row(
        "[bold]all tasks[/bold]", *(fmt(summary["overall"][str(n)]) for n in lengths), end_section=True
    )
    ttft = [summary["latency"][str(n)]["ttft_s"]["p50"] for n in lengths]
    table.add_row("[dim]TTFT p50 (ms)[/dim]", *("-" if t is None else f"{t * 1000:.0f}" for t in ttft))
    console.print(table)
    for warning in summary.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    eff = summary["effective_length"]

    def show(value: int | None) -> str:
        return format_length(value) if value else "below the shortest length tested"

    console.print(
        f"effective length: {show(eff['lower_bound'])} (95% lower bound >= {summary['threshold']:g}); "
        f"{show(eff['point_estimate'])} (RULER point estimate)"
    )
