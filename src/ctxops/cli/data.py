"""``ctxops data``: contamination, near-duplicates, personal data and dataset cards for eval and training data."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ctxops.cli.options import build, dataclass_options
from ctxops.data.contamination import ContaminationConfig
from ctxops.data.dedup import DedupConfig

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
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="processes that match documents (one per core; the result does not depend on it)")  # fmt: skip
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="directory for findings and report"
)
def contamination(
    eval_source: str, corpus: tuple[str, ...], model: str, workers: int, out: str, **settings: object
) -> None:
    """Find eval items that occur in training corpora (n-gram overlap and near-duplicate windows).

    Writes OUT/findings.jsonl (one line per dirty item), OUT/report.json and OUT/report.md. A run stopped
    midway resumes from its checkpoint when rerun with the same arguments.
    """
    from ctxops.data.contamination_report import REPORT_MD, check
    from ctxops.data.corpus import CorpusError
    from ctxops.data.items import ItemsError
    from ctxops.data.outdir import OutDir, OutDirError

    config = build(ContaminationConfig, settings)
    try:
        out_dir = OutDir(out)
        with _progress("contamination") as advance:
            summary, resumed = check(eval_source, corpus, out_dir, config, model, advance, workers)
    except (CorpusError, ItemsError, OutDirError) as exc:
        raise click.ClickException(str(exc)) from exc
    if resumed:
        click.echo("resumed from the checkpoint in " + out)
    click.echo(
        f"{summary['dirty']} of {summary['items']} items dirty ({summary['dirty_by_kind']}); "
        f"{summary['dirty_with_answer']} with a gold answer inside a matched n-gram"
    )
    for task, row in summary["tasks"].items():
        low, high = row["ci95"]
        click.echo(
            f"  {task}: {row['dirty']}/{row['items']} ({row['share']:.1%}, 95% CI {low:.1%}-{high:.1%}), "
            f"{row['with_answer']} with an answer"
        )
    click.echo(f"report: {out_dir.path / REPORT_MD}")


@data.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@dataclass_options(DedupConfig)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="directory for clusters and kept ids"
)
def dedup(paths: tuple[str, ...], out: str, **settings: object) -> None:
    """Find exact and near-duplicate documents within PATHS; write clusters and the ids to keep.

    A run stopped midway (Ctrl-C, SIGTERM, a crash) continues when rerun with the same arguments.
    """
    from ctxops.data.corpus import CorpusError
    from ctxops.data.dedup import Dedup, run_dedup
    from ctxops.data.journal import Stop
    from ctxops.data.outdir import OutDir, OutDirError

    config = build(DedupConfig, settings)
    try:
        with _progress("dedup") as advance, Stop() as stop:
            resumed, summary = run_dedup(Dedup(config), paths, OutDir(out), advance, stop)
    except (CorpusError, OutDirError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    if resumed:
        click.echo("resumed from the checkpoint in " + out)
    if summary is None:
        _stopped(out)
    click.echo(
        f"{summary['documents']:,} documents: {summary['kept']:,} kept, {summary['exact_duplicates']:,} exact and "
        f"{summary['near_duplicates']:,} near duplicates in {summary['clusters']:,} clusters -> {out}"
    )


def _stopped(out: str) -> NoReturn:
    """Exit 130 (as a shell does for Ctrl-C) after a run stopped with its finished work committed."""
    click.echo(f"stopped; finished work is saved in {out}: rerun the same command to continue", err=True)
    raise SystemExit(130)


@data.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--redact", is_flag=True, help="also write a copy of every file with personal data replaced by <KIND>"
)
@click.option(
    "--out", type=click.Path(file_okay=False), default=None, help="directory for findings and copies"
)
@click.option(
    "--region", default="US", show_default=True, help="country for phone numbers written without +code"
)
def pii(paths: tuple[str, ...], redact: bool, out: str | None, region: str) -> None:
    """Count personal data in PATHS by kind and file (emails, phones, cards, IBANs, SSNs, IPs).

    With --out, a run stopped midway (Ctrl-C, SIGTERM, a crash) continues when rerun with the same arguments.
    """
    from ctxops.data.corpus import CorpusError
    from ctxops.data.journal import Stop
    from ctxops.data.outdir import OutDir, OutDirError
    from ctxops.data.pii_scan import PiiScan

    if redact and out is None:
        raise click.UsageError("--redact needs --out DIR for the redacted copies")
    try:
        scan = PiiScan(region=region)
        if out is None:  # nothing to keep: Ctrl-C simply ends it
            scan.scan(paths, None, False)
        else:
            with Stop() as stop:
                resumed, finished = scan.scan(paths, OutDir(out), redact, stop)
            if resumed:
                click.echo("resumed from the checkpoint in " + out)
            if not finished:
                _stopped(out)
        summary = scan.summary()
    except (CorpusError, OutDirError, OSError, ValueError) as exc:  # ValueError: an unknown region
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{summary['findings']:,} findings in {summary['documents_with_pii']:,} of {summary['documents']:,} documents"
    )
    for kind, count in summary["by_kind"].items():
        click.echo(f"  {kind}: {count:,}")
    if out:
        click.echo(
            f"findings: {out}/findings.jsonl" + (f"; redacted copies: {out}/redacted/" if redact else "")
        )


@data.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--license",
    "license_expr",
    required=True,
    help="SPDX license expression, e.g. Apache-2.0 or MIT OR CC-BY-4.0",
)
@click.option(
    "--source", "sources", multiple=True, required=True, help="where the data came from (URL); repeatable"
)
@click.option("--retrieved", default=None, help="retrieval date of the sources, YYYY-MM-DD (default: today)")
@click.option("--name", default=None, help="the dataset's name (default: the card file's name)")
@click.option(
    "--model", default="builtin", show_default=True, help="tokenizer for the token-length distribution"
)
@click.option("--effective-length", default="2k", show_default=True,
              help="the model's effective context length in tokens (`ctxops report` measures it); k = 1024")  # fmt: skip
@click.option("--use", type=click.Choice(["commercial", "research"]), default="commercial", show_default=True,
              help="the intended use, checked against the license")  # fmt: skip
@click.option(
    "--max-documents", default=10_000, show_default=True, help="documents measured for token lengths"
)
@click.option(
    "--contamination", type=click.Path(file_okay=False), default=None, help="a `data contamination` --out"
)
@click.option(
    "--dedup", "dedup_dir", type=click.Path(file_okay=False), default=None, help="a `data dedup` --out"
)
@click.option("--pii", "pii_dir", type=click.Path(file_okay=False), default=None, help="a `data pii` --out")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="the card to write, e.g. CARD.md")
def card(paths: tuple[str, ...], license_expr: str, sources: tuple[str, ...], retrieved: str | None, name: str | None,
         model: str, effective_length: str, use: str, max_documents: int, contamination: str | None,
         dedup_dir: str | None, pii_dir: str | None, out: str) -> None:  # fmt: skip
    """Write a dataset card for PATHS: SPDX license, sources, sha256 of every file, token lengths, check summaries."""
    from pathlib import Path

    from ctxops.data import card as cards
    from ctxops.data.card_render import CardFacts, render_card
    from ctxops.data.corpus import CorpusError
    from ctxops.data.outdir import OutDir
    from ctxops.evals.config import parse_lengths
    from ctxops.models.loader import resolve_model_path
    from ctxops.models.tokenizer import Tokenizer

    target = Path(out)
    try:
        lengths_limit = parse_lengths(effective_length)[0]
        license_info = cards.check_license(license_expr, commercial=use == "commercial")
        date = retrieved or cards.today()
        files = cards.list_files(paths)
        tokenizer = Tokenizer(resolve_model_path(model))
        lengths = cards.token_lengths(
            files, lambda t: len(tokenizer.encode(t, add_special_tokens=False)), max_documents
        )
        documents = sum(1 for path in files for _ in cards.iter_file(path))
        facts = CardFacts(
            name=name or target.stem, license=license_info, sources=[{"url": s, "retrieved": date} for s in sources],
            files=cards.file_entries(files, target.parent), documents=documents,
            lengths=cards.length_summary(lengths, lengths_limit), tokenizer=model,
            contamination=cards.read_summary(contamination), dedup=cards.read_summary(dedup_dir),
            pii=cards.read_summary(pii_dir),
        )  # fmt: skip
        OutDir(target.parent if str(target.parent) else ".").write_text(target.name, render_card(facts))
    except (cards.CardError, CorpusError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    for warning in license_info.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"card: {target} ({documents:,} documents, {len(files)} files)")


@data.command()
@click.argument("card_path", metavar="CARD", type=click.Path(dir_okay=False))
def verify(card_path: str) -> None:
    """Recheck the sha256 of every file a dataset card lists; exit 1 on any mismatch or missing file."""
    from pathlib import Path

    from ctxops.data.card import CardError, verify_card

    try:
        problems = verify_card(Path(card_path))
    except CardError as exc:
        raise click.ClickException(str(exc)) from exc
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"{card_path}: every file matches its sha256")
