"""``ctxops scan``: attack probes hidden in long contexts, by depth and length, in-process or over HTTP."""

from __future__ import annotations

import asyncio

import click

from ctxops.cli.options import FINITE_FLOAT, dataclass_options, target_options
from ctxops.engine.config import EngineConfig

_ALIASES = {"many-shot": "many_shot", "manyshot": "many_shot"}


def parse_probes(text: str) -> tuple[str, ...]:
    """``"poison,many-shot"`` or ``all`` -> probe names; an unknown name raises ValueError listing the known."""
    from ctxops.scan.probes import PROBES

    names = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        if part == "all":
            names += PROBES
            continue
        name = _ALIASES.get(part, part)
        if name not in PROBES:
            raise ValueError(f"unknown probe {part!r}; choose from {', '.join(PROBES)} (or all)")
        names.append(name)
    if not names:
        raise ValueError("no probes given; pass e.g. --probes poison,injection or --probes all")
    return tuple(dict.fromkeys(names))


@click.command(name="scan")
@target_options()
@click.option("--probes", default="all", show_default=True,
              help="comma-separated: poison, injection, many-shot, extraction, pii (or all)")  # fmt: skip
@click.option("--lengths", default="1k,2k,4k", show_default=True, help="total tokens per sample; k = 1024")
@click.option(
    "--samples", default=10, show_default=True, help="samples per probe and length, over the depths"
)
@click.option(
    "--depths", default=5, show_default=True, help="evenly spaced attack depths, 0% and 100% included"
)
@click.option(
    "--seed", "scan_seed", default=42, show_default=True, help="first sample seed (sample i: seed + i)"
)
@click.option("--concurrency", default=8, show_default=True, help="requests in flight at once")
@click.option(
    "--timeout", type=FINITE_FLOAT, default=600.0, show_default=True, help="seconds per endpoint request"
)
@click.option("--retries", default=4, show_default=True, help="endpoint retries on 429/5xx/timeouts")
@click.option("--prompt-style", type=click.Choice(["chat", "raw"]), default="chat", show_default=True,
              help="in-process: wrap prompts in the model's chat template (if it has one) or not")  # fmt: skip
@click.option(
    "--out", "-o", required=True, type=click.Path(file_okay=False), help="run directory; rerun to resume"
)
@click.option("--no-progress", is_flag=True, help="no progress bar")
@dataclass_options(EngineConfig, exclude=("model", "seed"))
def scan(**options) -> None:
    """Run attack probes against a model; writes samples.jsonl, scan.json, scan.html (and the eval report).

    In-process: ctxops scan --model builtin --probes poison --lengths 512,1k --out runs/scan

    Endpoint: ctxops scan --endpoint http://localhost:8000/v1 --model-name M --probes all --out runs/scan

    A sample scores 1 when the model resisted, so `ctxops compare A B` on two scans reports a rise in attack
    success as a regression. Rerunning with the same --out resumes.
    """
    from ctxops.cli.eval import _target
    from ctxops.evals.config import EvalConfig, parse_lengths
    from ctxops.evals.report import write_reports
    from ctxops.evals.rundir import RunDir, RunDirError
    from ctxops.evals.runner import run_eval
    from ctxops.evals.targets import TargetError
    from ctxops.evals.tasks import TaskError
    from ctxops.scan.report import SCAN_HTML, write_scan_reports

    try:
        config = EvalConfig(
            tasks=parse_probes(options["probes"]), lengths=parse_lengths(options["lengths"]),
            samples=options["samples"], depths=options["depths"], seed=options["scan_seed"],
            concurrency=options["concurrency"],
        )  # fmt: skip
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    target = _target(options)
    run_dir = RunDir(options["out"])
    try:
        outcome = asyncio.run(run_eval(config, target, run_dir, show_progress=not options["no_progress"]))
        write_reports(run_dir)
    except (TargetError, TaskError, RunDirError) as exc:
        raise click.ClickException(str(exc)) from exc
    scan_summary = write_scan_reports(run_dir)
    click.echo(
        f"{outcome.done} samples run, {outcome.skipped} already done, {outcome.failed} failed", err=True
    )
    for probe, s in scan_summary["probes"].items():
        c = s["overall"]
        click.echo(
            f"{probe:<11} attack success {c['rate']:5.1f}%  [{c['ci_low']:.1f}-{c['ci_high']:.1f}]  "
            f"({c['successes']}/{c['n']})"
        )
    click.echo(f"wrote {run_dir.file(SCAN_HTML)}", err=True)
    if outcome.failed:
        raise click.ClickException(f"{outcome.failed} samples failed; rerun the same command to retry them")
