"""``ctxops report``: summarize a run directory (summary.json, a terminal table, report.html)."""

from __future__ import annotations

import click

from ctxops.cli.options import FiniteFloat


@click.command()
@click.argument("run", type=click.Path())
@click.option(
    "--threshold",
    type=FiniteFloat(0, 100),
    default=85.6,
    show_default=True,
    help="score that counts as effective (RULER's 85.6)",
)
def report(run: str, threshold: float) -> None:
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
