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


def eval_options(func):
    """The flags of the before/after table every subcommand ends with."""
    options = [
        click.option(
            "--eval-tasks",
            default="niah_single_1,niah_single_2",
            show_default=True,
            help="tasks of the table",
        ),
        click.option("--eval-lengths", default="1k,2k,4k", show_default=True, help="lengths of the table"),
        click.option(
            "--eval-samples",
            default=20,
            show_default=True,
            type=click.IntRange(1),
            help="samples per task and length",
        ),
        click.option("--no-eval", is_flag=True, help="skip the before/after table"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _eval_config(options: dict):
    from ctxops.evals.config import EvalConfig, parse_lengths, parse_tasks

    try:
        return EvalConfig(
            tasks=parse_tasks(options["eval_tasks"]),
            lengths=parse_lengths(options["eval_lengths"]),
            samples=options["eval_samples"],
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def _table(rows, options: dict, out: Path) -> None:
    """Run the before/after evals (resumable under OUT/eval) and print the table."""
    from ctxops.compress.comparison import COMPARISON_MD, compare

    config = _eval_config(options)
    _, text = compare(rows, config, out / "eval")
    click.echo(text)
    click.echo(f"wrote {out / 'eval' / COMPARISON_MD} (runs under {out / 'eval'}; rerun to resume)", err=True)


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
@eval_options
def heads(
    model: str,
    out: str,
    lengths: str,
    depths: int,
    seeds: int,
    threshold: float,
    sink: int,
    recent: int,
    **options,
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
    if not options["no_eval"]:
        _table(_kv_rows(str(path), Path(out) / POLICY_JSON, policy, options), options, Path(out))


def _kv_rows(model: str, policy_file: Path, policy, options: dict) -> list:
    """Full KV, the head policy, and SnapKV / StreamingLLM keeping the same share of each prompt on average."""
    from ctxops.engine.config import EngineConfig

    lengths = _eval_config(options).lengths
    kept = sum(policy.kept_fraction(n) for n in lengths) / len(lengths)
    ratio = round(1.0 - kept, 4)
    rows = [
        ("full KV", EngineConfig(model=model)),
        ("head policy", EngineConfig(model=model, kv_head_policy=str(policy_file))),
    ]
    for press in ("snapkv", "streaming_llm"):
        rows.append(
            (f"{press} {ratio:g}", EngineConfig(model=model, kv_press=press, kv_compression_ratio=ratio))
        )
    return rows


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


@compress.command()
@click.argument("model")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="directory of the pruned model")
@click.option(
    "--heads",
    "heads_ratio",
    default=0.25,
    show_default=True,
    type=FiniteFloat(),
    help="share of attention heads to remove, [0, 1)",
)
@click.option(
    "--mlp",
    "mlp_ratio",
    default=0.3,
    show_default=True,
    type=FiniteFloat(),
    help="share of MLP channels to remove, [0, 1)",
)
@click.option(
    "--head-scores",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="scores.json of `compress heads` (default: a quick needle run)",
)
@click.option(
    "--threshold",
    default=0.1,
    show_default=True,
    type=FiniteFloat(0.0, 1.0),
    help="retrieval heads (kept first) score above this",
)
@click.option(
    "--calibration",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="text file(s) mixed into the calibration items",
)
@click.option(
    "--calibration-samples",
    default=16,
    show_default=True,
    type=click.IntRange(1),
    help="calibration sequences",
)
@click.option(
    "--calibration-length",
    default=1024,
    show_default=True,
    type=click.IntRange(64),
    help="their length in tokens",
)
@click.option(
    "--recover-steps",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="distillation steps from the original after pruning (0: none)",
)
@eval_options
def prune(model: str, out: str, heads_ratio: float, mlp_ratio: float, **options) -> None:
    """Prune attention heads and MLP channels of MODEL by activation-weighted magnitude; write a smaller model.

    Retrieval heads are kept first; grouped-query attention stays consistent (every layer keeps the same KV heads
    count and query heads per KV head), so the asked head share rounds to one such layout.

    Example: ctxops compress prune builtin --heads 0.25 --mlp 0.3 --out runs/pruned
    """
    from ctxops.compress.prune import PruneError
    from ctxops.compress.prune_job import prune_model
    from ctxops.engine.config import EngineConfig
    from ctxops.models.config import ModelConfigError

    target = Path(out)
    with _progress() as progress:
        bar = progress.add_task("calibrating", total=options["calibration_samples"])
        try:
            result = prune_model(
                model, target, heads_ratio, mlp_ratio, head_scores=options["head_scores"],
                threshold=options["threshold"], calibration_files=options["calibration"],
                samples=options["calibration_samples"], length=options["calibration_length"],
                progress=lambda: progress.advance(bar),
            )  # fmt: skip
        except (PruneError, ModelConfigError) as exc:
            raise click.UsageError(str(exc)) from exc
    removed = result["removed"]
    click.echo(
        f"heads {result['heads']['before']} -> {result['heads']['after']} per layer ({removed['heads']:.0%} removed, "
        f"{heads_ratio:.0%} asked), KV heads {result['kv_heads']['before']} -> {result['kv_heads']['after']}, MLP "
        f"{result['intermediate_size']['before']} -> {result['intermediate_size']['after']} ({removed['mlp']:.0%}); "
        f"retrieval heads kept {result['retrieval_heads']['kept']} of {result['retrieval_heads']['total']}; "
        f"parameters {result['parameters']['before']:,} -> {result['parameters']['after']:,}"
    )
    rows = [("original", EngineConfig(model=result["source"])), ("pruned", EngineConfig(model=str(target)))]
    if options["recover_steps"]:
        _recover(result["source"], target, options["recover_steps"])
        rows.append(("pruned + recovered", EngineConfig(model=str(target / "recovered"))))
    if not options["no_eval"]:
        _table(rows, options, target)


def _recover(teacher: str, pruned: Path, steps: int) -> None:
    """A short distillation from the original into the pruned model, written to PRUNED/recovered."""
    from ctxops.compress.distill import DistillConfig

    # a step budget: tokens set past reach so the steps end the run
    config = DistillConfig(
        teacher=teacher, student=str(pruned), out=str(pruned / "recovered"), tokens=10**12, steps=steps
    )
    _run_distill(config)


def _run_distill(config) -> dict:
    from ctxops.compress.distill import DistillError, distill
    from ctxops.compress.trainer import CheckpointError

    with _progress() as progress:
        bar = progress.add_task("distilling", total=100)

        def report(done: float, info: str) -> None:
            progress.update(bar, completed=round(100 * done), description=f"distilling ({info})")

        try:
            return distill(config, report)
        except (DistillError, CheckpointError) as exc:
            raise click.UsageError(str(exc)) from exc


@compress.command()
@click.option("--teacher", required=True, help="`builtin` or the teacher's model directory")
@click.option(
    "--student",
    required=True,
    type=click.Path(exists=True),
    help="the student's config.json, or a model directory to start from",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="directory of the student model")
@click.option(
    "--tokens", default=1_000_000, show_default=True, type=click.IntRange(1), help="training tokens"
)
@click.option("--lengths", default="512,1k", show_default=True, help="task item lengths, cycled")
@click.option(
    "--text",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="your text file(s), every other item",
)
@click.option(
    "--temperature",
    default=2.0,
    show_default=True,
    type=FiniteFloat(),
    help="softmax temperature of the KL term",
)
@click.option(
    "--alpha",
    default=0.5,
    show_default=True,
    type=FiniteFloat(),
    help="weight of the KL term (1 - alpha: hard loss)",
)
@click.option("--lr", default=1e-3, show_default=True, type=FiniteFloat(), help="peak learning rate")
@click.option(
    "--checkpoint-every",
    default=50,
    show_default=True,
    type=click.IntRange(1),
    help="steps between checkpoints",
)
@eval_options
def distill(teacher: str, student: str, out: str, tokens: int, lengths: str, **options) -> None:
    """Distil TEACHER into a STUDENT (KL at a temperature + hard loss) on eval-task items and your text.

    Rerunning the same command resumes from OUT/train/checkpoint.pt.

    Example: ctxops compress distill --teacher builtin --student small/config.json --out runs/student --tokens 200000
    """
    from ctxops.compress.distill import DistillConfig, DistillError
    from ctxops.engine.config import EngineConfig
    from ctxops.evals.config import parse_lengths

    try:
        config = DistillConfig(
            teacher=teacher, student=student, out=out, tokens=tokens, lengths=parse_lengths(lengths),
            text_files=tuple(options["text"]), temperature=options["temperature"], alpha=options["alpha"],
            lr=options["lr"], checkpoint_every=options["checkpoint_every"],
        )  # fmt: skip
    except (DistillError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    result = _run_distill(config)
    click.echo(
        f"student: {result['parameters']:,} parameters after {result['step']} steps, {result['tokens']:,} tokens "
        f"({result['seconds']:.0f} s training; started from {result['start']})"
    )
    if not options["no_eval"]:
        rows = [("teacher", EngineConfig(model=teacher)), ("student", EngineConfig(model=out))]
        _table(rows, options, Path(out))
