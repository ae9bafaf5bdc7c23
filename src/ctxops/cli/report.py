"""``ctxops report``: summarize a run directory (summary.json, a terminal table, report.html)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ctxops.cli.options import FiniteFloat

if TYPE_CHECKING:
    from ctxops.evals.rundir import RunDir


@click.command()
@click.argument("run", type=click.Path())
@click.option(
    "--threshold",
    type=FiniteFloat(0, 100),
    default=85.6,
    show_default=True,
    help="score that counts as effective (RULER's 85.6)",
)
@click.option(
    "--contamination",
    type=click.Path(file_okay=False),
    default=None,
    help="a `ctxops data contamination` --out directory: also score clean and dirty items apart "
    "(default: RUN/contamination when `ctxops eval --contamination-corpus` wrote one)",
)
def report(run: str, threshold: float, contamination: str | None) -> None:
    """Write RUN/summary.json and RUN/report.html and print the score table.

    RUN is the --out directory of `ctxops eval` (a partial run is fine).
    """
    from ctxops.evals.report import print_table, write_reports
    from ctxops.evals.rundir import REPORT_FILE, RunDir, RunDirError

    try:
        run_dir = RunDir.existing(run)
        summary = write_reports(run_dir, threshold)
    except RunDirError as exc:
        raise click.ClickException(str(exc)) from exc
    print_table(summary)
    click.echo(f"report: {run_dir.file(REPORT_FILE)}")
    from ctxops.data.contamination_report import FINDINGS_FILE
    from ctxops.data.split_scores import RUN_CONTAMINATION_DIR

    if contamination is None and (run_dir.file(RUN_CONTAMINATION_DIR) / FINDINGS_FILE).is_file():
        contamination = str(run_dir.file(RUN_CONTAMINATION_DIR))  # the check `ctxops eval` ran into the run
    if contamination:
        show_split(run_dir, contamination)


def show_split(run_dir: RunDir, contamination: str) -> None:
    """Print (and write into the run) its clean and dirty scores by a contamination check's findings."""
    from ctxops.data.split_scores import SplitError, format_split, split_scores

    try:
        click.echo("\n".join(format_split(split_scores(run_dir, contamination))))
    except SplitError as exc:
        raise click.ClickException(str(exc)) from exc
