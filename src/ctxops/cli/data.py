"""``ctxops data``: contamination, near-duplicates, personal data and dataset cards for eval and training data."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ctxops.cli.options import build, dataclass_options
from ctxops.data.contamination import ContaminationConfig

_console = Console(stderr=True)


@click.group()
def data() -> None:
    """Check eval and training data: contamination, duplicates, personal data, dataset cards."""


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int], None]]:
    """A live line with documents and megabytes read; yields the callback to call per document."""
    start = time.monotonic()
    seen = {"docs": 0, "chars": 0}
    with Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}[/bold] {task.fields[status]}"), TimeElapsedColumn(),
        console=_console, transient=True,
    ) as progress:  # fmt: skip
        bar = progress.add_task(label, status="")

        def advance(chars: int) -> None:
            seen["docs"] += 1
            seen["chars"] += chars
            if seen["docs"] % 50 == 1:
                rate = seen["chars"] / 1e6 / max(1e-9, time.monotonic() - start)
                status = f"{seen['docs']:,} documents, {seen['chars'] / 1e6:,.1f} MB ({rate:.1f} MB/s)"
                progress.update(bar, status=status)

        yield advance


@data.command()
@click.option("--eval", "eval_source", required=True,
              help="a `ctxops eval` run directory, a JSONL of {id, text}, or TASKS:LENGTHS[:SAMPLES]")  # fmt: skip
@click.option("--corpus", multiple=True, required=True, type=click.Path(),
              help="a text, JSONL or Parquet file (gzip/zstd ok) or a directory of them; repeatable")  # fmt: skip
@click.option(
    "--model", default="builtin", show_default=True, help="tokenizer that builds a task spec's items"
)
@dataclass_options(ContaminationConfig, exclude=("checkpoint_s",))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="directory for findings and report"
)
def contamination(
    eval_source: str, corpus: tuple[str, ...], model: str, out: str, **settings: object
) -> None:
    """Find eval items that occur in training corpora (n-gram overlap and near-duplicate windows).

    Writes OUT/findings.jsonl (one line per dirty item), OUT/report.json and OUT/report.md. A run stopped
    midway resumes from its checkpoint when rerun with the same arguments.
    """
    from ctxops.data.contamination import ContaminationScan, run_scan
    from ctxops.data.contamination_report import REPORT_MD, write_report
    from ctxops.data.corpus import CorpusError
    from ctxops.data.items import ItemsError, load_items
    from ctxops.data.outdir import OutDir, OutDirError

    config = build(ContaminationConfig, settings)
    start = time.monotonic()
    try:
        out_dir = OutDir(out)
        items = load_items(eval_source, model)
        scan = ContaminationScan(items, config)
        with _progress("contamination") as advance:
            resumed = run_scan(scan, corpus, out_dir, advance)
        summary = write_report(out_dir, scan, time.monotonic() - start)
    except (CorpusError, ItemsError, OutDirError) as exc:
        raise click.ClickException(str(exc)) from exc
    if resumed:
        click.echo("resumed from the checkpoint in " + out)
    click.echo(f"{summary['dirty']} of {summary['items']} items dirty ({summary['dirty_by_kind']})")
    for task, row in summary["tasks"].items():
        low, high = row["ci95"]
        click.echo(
            f"  {task}: {row['dirty']}/{row['items']} ({row['share']:.1%}, 95% CI {low:.1%}-{high:.1%})"
        )
    click.echo(f"report: {out_dir.path / REPORT_MD}")
