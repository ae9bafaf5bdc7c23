"""``ctxops eval``: measure how much of its context a model really uses, in-process or over HTTP."""

from __future__ import annotations

import asyncio
import json

import click

from ctxops.cli.options import FINITE_FLOAT, FiniteFloat, build, dataclass_options, target_options
from ctxops.engine.config import EngineConfig

_DEFAULT_TASKS = "niah_single_1,niah_single_2,niah_multikey_1,niah_multivalue,vt,cwe,fwe"


@click.command(name="eval")
@target_options(api_help="endpoint route; chat cannot send RULER's answer prefix")
@click.option(
    "--tasks",
    default=_DEFAULT_TASKS,
    show_default=True,
    help="comma-separated task names, or `ruler` (RULER's 13; qa_1/qa_2 need --qa-data) / `niah`",
)
@click.option(
    "--lengths",
    default="4k,8k,16k,32k",
    show_default=True,
    help="total tokens per sample (prompt + generation); k = 1024",
)
@click.option(
    "--samples", default=20, show_default=True, help="samples per task and length, spread over the depths"
)
@click.option(
    "--depths", default=5, show_default=True, help="evenly spaced needle depths, 0% and 100% included"
)
@click.option(
    "--seed", "eval_seed", default=42, show_default=True, help="first sample seed (sample i uses seed + i)"
)
@click.option(
    "--haystack",
    "haystack",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="your own prose files (repeatable)",
)
@click.option(
    "--qa-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSONL of {documents, question, answers} for task qa",
)
@click.option(
    "--qa-data",
    "qa_data",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="SQuAD 2.0 dev JSON (task qa_1) and/or HotpotQA distractor dev JSON (qa_2), as RULER downloads them",
)
@click.option(
    "--ruler-data",
    "ruler_data",
    multiple=True,
    metavar="[LENGTH=]DIR",
    help="run RULER's own prepared data (DIR/<task>/validation.jsonl from its prepare.py) instead of the "
    "built-in tasks; repeat for several lengths; also writes RULER prediction files to OUT/ruler/",
)
@click.option("--concurrency", default=8, show_default=True, help="requests in flight at once")
@click.option(
    "--latency-samples",
    default=0,
    show_default=True,
    help="after the run, send this many samples per length again one at a time (latency without queueing)",
)
@click.option(
    "--timeout", type=FINITE_FLOAT, default=600.0, show_default=True, help="seconds per endpoint request"
)
@click.option(
    "--retries",
    default=4,
    show_default=True,
    help="endpoint retries on 429/5xx/timeouts (exponential backoff)",
)
@click.option("--prompt-style", type=click.Choice(["chat", "raw"]), default="chat", show_default=True,
              help="in-process: wrap prompts in the model's chat template (if it has one) or not")  # fmt: skip
@click.option(
    "--threshold",
    type=FiniteFloat(0, 100),
    default=85.6,
    show_default=True,
    help="score that counts as effective (RULER's 85.6)",
)
@click.option(
    "--out", "-o", required=True, type=click.Path(file_okay=False), help="run directory; rerun to resume"
)
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option(
    "--contamination",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="a `ctxops data contamination` --out directory: after the run, score clean and dirty items apart",
)
@click.option(
    "--contamination-corpus",
    "contamination_corpus",
    multiple=True,
    type=click.Path(exists=True),
    help="after the run, check its items against this training corpus (file or directory; repeatable) into "
    "OUT/contamination, then score clean and dirty items apart",
)
@click.option(
    "--perturb",
    default=None,
    metavar="FAMILY[=LEVEL],...|all",
    help="also run every sample under these perturbations, paired by seed: distractors, format, paraphrase, "
    "lexical, haystack, placement, noise, or all (the report adds a robustness section)",
)
@click.option(
    "--model-card",
    type=click.Path(exists=True),
    default=None,
    help="model card (README.md) whose front matter lists ctxops.trained_on {tasks, perturbations}: the "
    "robustness section splits in-distribution from held-out (default: the local model's own README.md)",
)
@click.option(
    "--sweep",
    multiple=True,
    help="in-process: run several engine settings into one report, e.g. kv_cache_dtype=auto,int8,int4 "
    "(repeatable: the product of the axes)",
)
@dataclass_options(EngineConfig, exclude=("model", "seed"))
def eval_command(**options) -> None:
    """Run long-context tasks against a model and write samples.jsonl, run.json, summary.json and report.html.

    In-process: ctxops eval --model ./my-model --kv-cache-memory 4GiB --lengths 4k,8k --out runs/base

    Endpoint: ctxops eval --endpoint http://localhost:8000/v1 --model-name my-model --out runs/served

    RULER's data: ctxops eval --ruler-data 4096=ruler/4096/data --endpoint URL --model-name M --out runs/ruler

    Rerunning with the same --out resumes: finished samples are kept, never redone.
    """
    from ctxops.evals.config import EvalConfig, parse_lengths, parse_tasks
    from ctxops.evals.perturb import expand
    from ctxops.evals.report import write_reports
    from ctxops.evals.robustness import read_trained_on
    from ctxops.evals.ruler_data import RulerData, RulerDataError
    from ctxops.evals.rundir import RunDir, RunDirError
    from ctxops.evals.runner import run_eval
    from ctxops.evals.targets import TargetError
    from ctxops.evals.tasks import TaskError

    source = None
    try:
        if options["ruler_data"]:
            if options["perturb"] is not None:
                raise click.UsageError(
                    "--perturb builds variants of the built-in tasks; drop it with --ruler-data"
                )
            source = RulerData.load(tuple(options["ruler_data"]))
            config = EvalConfig(
                tasks=source.tasks, lengths=source.lengths, samples=source.max_per_cell, depths=1,
                concurrency=options["concurrency"], ruler_data=tuple(options["ruler_data"]),
                latency_samples=options["latency_samples"],
            )  # fmt: skip
        else:
            tasks = parse_tasks(options["tasks"])
            perturb = () if options["perturb"] is None else tuple(expand(options["perturb"], tasks).items())
            if options["model_card"]:
                read_trained_on(options["model_card"])  # a malformed card fails here, before any work
            config = EvalConfig(
                tasks=tasks, lengths=parse_lengths(options["lengths"]), perturb=perturb,
                model_card=options["model_card"],
                samples=options["samples"], depths=options["depths"], seed=options["eval_seed"],
                concurrency=options["concurrency"], haystack=tuple(options["haystack"]),
                qa_file=options["qa_file"], qa_data=tuple(options["qa_data"]),
                latency_samples=options["latency_samples"],
            )  # fmt: skip
    except RulerDataError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if options["contamination"] and options["contamination_corpus"]:
        raise click.UsageError(
            "give --contamination DIR (a finished check) or --contamination-corpus, not both"
        )
    if options["sweep"]:
        if options["contamination"] or options["contamination_corpus"]:
            raise click.UsageError(
                "--contamination works on one run; use `ctxops report RUN --contamination`"
            )
        _sweep(config, options)
        return
    target = _target(options)
    run_dir = RunDir(options["out"])
    try:
        outcome = asyncio.run(
            run_eval(config, target, run_dir, show_progress=not options["no_progress"], source=source)
        )
    except (TargetError, TaskError, RunDirError) as exc:
        raise click.ClickException(str(exc)) from exc
    for warning in [*getattr(target, "warnings", []), *outcome.warnings]:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(
        f"{outcome.done} samples run, {outcome.skipped} already done, {outcome.failed} failed", err=True
    )
    for error in outcome.errors[:5]:
        click.secho(f"  failed {error}", fg="red", err=True)
    try:
        summary = write_reports(run_dir, threshold=options["threshold"])
    except RunDirError as exc:  # nothing finished: every sample failed
        raise click.ClickException(f"{exc}; {outcome.failed} samples failed, rerun to retry them") from exc
    for warning in summary["warnings"]:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    if source is not None:
        click.echo(f"wrote RULER prediction files under {run_dir.file('ruler')}", err=True)
    if options["contamination"] or options["contamination_corpus"]:
        _contamination(run_dir, options["contamination"], options["contamination_corpus"])
    if outcome.failed or outcome.latency_failed:
        failed = outcome.failed + outcome.latency_failed
        raise click.ClickException(f"{failed} samples failed; rerun the same command to retry them")


def _contamination(run_dir, findings_dir: str | None, corpus: tuple[str, ...]) -> None:
    """Clean and dirty scores of the run, printed and recorded as `ctxops report --contamination` does.

    With ``corpus``, the run's items are first checked against it into RUN/contamination (resumable).
    """
    from ctxops.cli.report import show_split

    if corpus:
        from ctxops.data.contamination import ContaminationConfig
        from ctxops.data.contamination_report import check
        from ctxops.data.corpus import CorpusError
        from ctxops.data.items import ItemsError
        from ctxops.data.outdir import OutDir, OutDirError
        from ctxops.data.split_scores import RUN_CONTAMINATION_DIR

        out = OutDir(run_dir.file(RUN_CONTAMINATION_DIR))
        try:
            summary, _ = check(str(run_dir.path), corpus, out, ContaminationConfig())
        except (CorpusError, ItemsError, OutDirError) as exc:
            raise click.ClickException(f"contamination check: {exc}") from exc
        click.echo(
            f"contamination: {summary['dirty']} of {summary['items']} items dirty ({summary['dirty_by_kind']}), "
            f"{summary['dirty_with_answer']} with a gold answer; report: {out.path / 'report.md'}"
        )
        findings_dir = str(out.path)
    show_split(run_dir, findings_dir)


def _sweep(config, options: dict) -> None:
    """One run per configuration under --out, then sweep.json and sweep.html beside them."""
    from pathlib import Path

    from ctxops.evals.report import write_reports
    from ctxops.evals.rundir import RunDir, RunDirError
    from ctxops.evals.runner import run_eval
    from ctxops.evals.sweep import (
        SWEEP_HTML,
        SWEEP_JSON,
        SweepError,
        configurations,
        parse_sweep,
        render,
        run_name,
        summarize_sweep,
    )
    from ctxops.evals.targets import TargetError
    from ctxops.evals.tasks import TaskError

    if options["endpoint"]:
        raise click.UsageError("--sweep runs the in-process engine; drop --endpoint")
    try:
        axes = parse_sweep(options["sweep"], EngineConfig)
    except SweepError as exc:
        raise click.UsageError(str(exc)) from exc
    entries, failed = [], 0
    for overrides in configurations(axes):
        name = run_name(overrides)
        click.secho(f"== {name}", bold=True, err=True)
        target = _target({**options, **overrides})
        run_dir = RunDir(Path(options["out"]) / name)
        try:
            outcome = asyncio.run(run_eval(config, target, run_dir, show_progress=not options["no_progress"]))
        except (TargetError, TaskError, RunDirError) as exc:
            raise click.ClickException(f"{name}: {exc}") from exc
        failed += outcome.failed
        summary = write_reports(run_dir, threshold=options["threshold"])
        for warning in [*outcome.warnings, *summary["warnings"]]:
            click.secho(f"warning: {name}: {warning}", fg="yellow", err=True)
        entries.append((overrides, summary, run_dir.read_run()))
    sweep = summarize_sweep(entries)
    out = Path(options["out"])
    (out / SWEEP_JSON).write_text(json.dumps(sweep, indent=2, default=str), encoding="utf-8")
    (out / SWEEP_HTML).write_text(render(sweep), encoding="utf-8")
    for row in sweep["configurations"]:
        click.echo(
            f"{row['name']:<48} {row['kv_bytes_per_token']:>8} B/token {row['kv_pool_tokens']:>9} tokens "
            f"score {row['score']:5.1f} ({row['score_vs_first']:+.1f})"
        )
    click.echo(f"wrote {out / SWEEP_JSON} and {out / SWEEP_HTML}", err=True)
    if failed:
        raise click.ClickException(f"{failed} samples failed; rerun the same command to retry them")


def _target(options: dict):
    from ctxops.evals.prompt import PromptStyle
    from ctxops.evals.targets import Api, EndpointConfig, EndpointTarget

    if options["endpoint"]:
        if options["model"]:
            raise click.UsageError("give either --model (in-process) or --endpoint, not both")
        try:
            config = EndpointConfig(
                url=options["endpoint"], model_name=options["model_name"] or "", api=Api(options["api"]),
                api_key=options["api_key"], timeout_s=options["timeout"], max_retries=options["retries"],
                tokenizer=options["tokenizer"],
            )  # fmt: skip
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        return EndpointTarget(config)
    from ctxops.evals.targets.local import LocalTarget
    from ctxops.models.config import ModelConfigError

    engine = build(EngineConfig, {**options, "model": options["model"] or "builtin"})
    try:
        return LocalTarget(engine, PromptStyle(options["prompt_style"]))
    except (ModelConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
