"""``ctxops compare``: paired statistics between two eval runs, with a CI gate."""

from __future__ import annotations

import json

import click

from ctxops.cli.options import FINITE_FLOAT


@click.command()
@click.argument("run_a", type=click.Path())
@click.argument("run_b", type=click.Path())
@click.option("--alpha", type=FINITE_FLOAT, default=0.05, show_default=True, help="significance level")
@click.option("--resamples", default=10_000, show_default=True, help="paired bootstrap resamples")
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="exit 1 when B is significantly worse than A, or more brittle under a perturbation (CI gates)",
)
@click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON")
def compare(
    run_a: str, run_b: str, alpha: float, resamples: int, fail_on_regression: bool, as_json: bool
) -> None:
    """Compare RUN_B against the baseline RUN_A, sample by sample (paired by task, length, depth, seed).

    Prints the score change with a paired bootstrap interval and McNemar's exact test, overall and per length,
    latency changes, and a verdict: regression, improvement or no significant change. Runs made with --perturb
    are also compared per variant on brittleness (clean minus perturbed score, paired by seed).

    Example: ctxops compare runs/bf16 runs/int8 --fail-on-regression
    """
    from rich.console import Console
    from rich.table import Table

    from ctxops.evals.compare import compare_runs
    from ctxops.evals.config import format_length
    from ctxops.evals.rundir import RunDir, RunDirError

    if not 0 < alpha < 1:
        raise click.BadParameter("must be between 0 and 1", param_hint="--alpha")
    try:
        result = compare_runs(RunDir.existing(run_a), RunDir.existing(run_b), alpha, resamples)
    except RunDirError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        table = Table(title=f"B vs A: {result['paired']} paired samples", title_justify="left")
        for column in (
            "length",
            "n",
            "A",
            "B",
            "B - A [95% CI]",
            "McNemar p",
            "A only / B only",
            "TTFT B/A",
            "verdict",
        ):
            table.add_column(column, justify="right")
        rows = [*((format_length(int(n)), r, result["latency"][n]) for n, r in result["per_length"].items())]
        rows.append(("all", result["overall"], None))
        for label, r, lat in rows:
            ratio = lat["ttft_s"]["ratio"] if lat else None
            table.add_row(
                label, str(r["n"]), f"{r['score_a']:.1f}", f"{r['score_b']:.1f}",
                f"{r['delta']:+.1f} [{r['delta_low']:+.1f}, {r['delta_high']:+.1f}]", f"{r['mcnemar_p']:.3g}",
                f"{r['only_a_correct']} / {r['only_b_correct']}", "-" if ratio is None else f"{ratio:.2f}x", r["verdict"],
            )  # fmt: skip
        console = Console()
        console.print(table)
        _print_notes(console, result)
        colour = {"regression": "red", "improvement": "green"}.get(result["verdict"], "white")
        console.print(f"verdict: [bold {colour}]{result['verdict']}[/bold {colour}]")
        _print_brittleness(console, result["brittleness"])
    if fail_on_regression and (result["verdict"] == "regression" or result["brittleness_regression"]):
        raise SystemExit(1)


def _print_brittleness(console, brittleness: dict | None) -> None:
    """Per variant, how much more (or less) B loses to it than A, worst first."""
    from rich.table import Table

    if not brittleness:
        return
    table = Table(
        title=f"brittleness B - A per variant ({brittleness['confidence']:.2%} bootstrap CI, Bonferroni)",
        title_justify="left",
    )
    for column in ("variant", "n", "drop A", "drop B", "B - A [CI]", ""):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for r in brittleness["variants"]:
        table.add_row(
            r["variant"], str(r["n"]), f"{r['drop_a']:+.1f}", f"{r['drop_b']:+.1f}",
            f"{r['change']:+.1f} [{r['change_low']:+.1f}, {r['change_high']:+.1f}]",
            "[bold red]brittleness regression[/bold red]" if r["regression"] else "",
        )  # fmt: skip
    console.print(table)


def _print_notes(console, result: dict) -> None:
    """What run.json records differently, then what could not be compared, before any guess about causes."""
    from rich.markup import escape

    differences = result["setting_differences"]
    if differences:
        console.print("[bold]recorded differences (run.json), A vs B:[/bold]")
        for d in differences:
            why = f" [dim]- {escape(d['why'])}[/dim]" if d["why"] else ""
            console.print(
                f"  {escape(d['field'])}: {escape(repr(d['a']))} vs {escape(repr(d['b']))}{why}",
                highlight=False,
            )
    for side in ("a", "b"):
        lines = result["unreadable_lines"][side]
        if lines:
            shown = ", ".join(map(str, lines[:10])) + (" ..." if len(lines) > 10 else "")
            console.print(
                f"[yellow]warning:[/yellow] {escape(result[side])}: {len(lines)} samples.jsonl lines without a "
                f"record (line {shown}) were left out; `ctxops report` says why",
                highlight=False,
            )
    for key, text in (("only_in_a", "only in A"), ("only_in_b", "only in B")):
        if result[key]:
            console.print(f"[yellow]warning:[/yellow] {result[key]} samples {text} (not compared)")
    if result["different_prompts"]:
        cause = (
            "see the recorded differences above"
            if differences
            else "run.json records no difference in target, tokenizer or haystack: were the runs made with "
            "different ctxops builds of the same version?"
        )
        console.print(
            f"[yellow]warning:[/yellow] {result['different_prompts']} pairs whose prompts differ ({cause})"
        )
