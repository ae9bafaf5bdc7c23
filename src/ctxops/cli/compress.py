"""``ctxops compress``: retrieval-head scores, structured pruning and distillation, each with its eval table."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ctxops.cli.options import FiniteFloat

_console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=_console, transient=True,
    )  # fmt: skip


@click.group()
def compress() -> None:
    """Make a model cheaper and measure what it costs in effective context."""


@compress.command()
@click.argument("model")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="directory for the score files")
@click.option("--lengths", default="512,1k,2k", show_default=True, help="needle prompt lengths in tokens")
@click.option(
    "--depths", default=5, show_default=True, type=click.IntRange(1, 50), help="needle depths per length"
)
@click.option(
    "--seeds", default=2, show_default=True, type=click.IntRange(1, 100), help="prompts per length and depth"
)
@click.option(
    "--threshold", default=0.1, show_default=True, type=FiniteFloat(0.0, 1.0),
    help="a head scoring above this is a retrieval head (Wu et al. use 0.1)",
)  # fmt: skip
@click.option(
    "--sink", default=4, show_default=True, type=click.IntRange(0), help="streaming heads: first tokens kept"
)
@click.option(
    "--recent",
    default=64,
    show_default=True,
    type=click.IntRange(1),
    help="streaming heads: last tokens kept",
)
def heads(
    model: str, out: str, lengths: str, depths: int, seeds: int, threshold: float, sink: int, recent: int
):
    """Score every (layer, head) of MODEL for retrieval on needle prompts; write scores, heatmap and KV policy.

    Example: ctxops compress heads builtin --out runs/heads  (then: ctxops eval --kv-head-policy
    runs/heads/head_policy.json ...)
    """
    from ctxops.compress.dense import load_model
    from ctxops.compress.head_report import HEATMAP_SVG, POLICY_JSON, SCORES_JSON, write_heads
    from ctxops.compress.heads import needle_probes, score_heads
    from ctxops.evals.config import depth_grid, parse_lengths
    from ctxops.models.config import ModelConfigError
    from ctxops.models.tokenizer import Tokenizer

    try:
        length_list = parse_lengths(lengths)
        llm, path = load_model(model)
    except (ValueError, ModelConfigError) as exc:
        raise click.UsageError(str(exc)) from exc
    probes = needle_probes(Tokenizer(path), length_list, depth_grid(depths), seeds)
    with _progress() as progress:
        bar = progress.add_task("scoring heads", total=len(probes))
        try:
            scores = score_heads(llm, probes, lambda: progress.advance(bar))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    policy = scores.policy(llm.config.num_key_value_heads, threshold, sink, recent)
    measured = {"model": str(path), "lengths": list(length_list), "depths": depths, "seeds": seeds}
    content = write_heads(Path(out), scores, policy, threshold, measured)
    _print_scores(content)
    click.echo(f"wrote {Path(out) / SCORES_JSON}, {HEATMAP_SVG} and {POLICY_JSON}", err=True)


def _print_scores(content: dict) -> None:
    from rich.table import Table

    table = Table(title=f"retrieval score per head (> {content['threshold']:g}: retrieval)")
    table.add_column("layer", justify="right")
    for head in range(len(content["scores"][0])):
        table.add_column(f"h{head}", justify="right")
    for layer, row in enumerate(content["scores"]):
        table.add_row(
            str(layer), *(f"[bold]{x:.2f}[/bold]" if x > content["threshold"] else f"{x:.2f}" for x in row)
        )
    Console().print(table)
    policy = content["kv_policy"]
    click.echo(
        f"{content['num_retrieval_heads']} of {content['num_heads']} heads are retrieval heads; "
        f"{policy['retrieval_fraction']:.0%} of KV heads keep the full cache, the rest {policy['sink']} sink + "
        f"{policy['recent']} recent tokens; the model answered {content['answer_accuracy']:.0%} of needle tokens"
    )
