"""``ctxops monitor canary``: fixed-seed eval samples against a live endpoint, compared with a baseline run."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import click

from ctxops.cli.monitor import db_option, open_db
from ctxops.cli.options import FiniteFloat


@click.command()
@db_option
@click.option("--endpoint", required=True, help="the server to probe, e.g. http://localhost:8000/v1")
@click.option("--model-name", required=True, help="the model name the endpoint serves")
@click.option("--api-key", envvar="OPENAI_API_KEY", default=None, help="bearer key for the endpoint")
@click.option("--tasks", default="niah_single_1", show_default=True, help="eval tasks, comma-separated")
@click.option(
    "--lengths", default="1k,4k", show_default=True, help="prompt lengths in tokens, comma-separated"
)
@click.option(
    "--samples", default=20, show_default=True, type=click.IntRange(1), help="samples per task and length"
)
@click.option(
    "--seed", default=42, show_default=True, help="the fixed seed: every run asks the same questions"
)
@click.option("--every", default=None, help="run again every DURATION (e.g. 10m) until SIGTERM")
@click.option("--once", is_flag=True, help="run once (the default without --every)")
@click.option(
    "--baseline", default=None, help="compare with this run (its directory) instead of the first canary"
)
@click.option("--alpha", type=FiniteFloat(0.0001, 0.5), default=0.05, show_default=True,
              help="false discovery rate across lengths")  # fmt: skip
@click.option("--out", default="canary-runs", show_default=True, type=click.Path(file_okay=False),
              help="where each run's eval directory goes")  # fmt: skip
@click.option(
    "--webhook", "webhooks", multiple=True, help="notify this URL when a regression opens an incident"
)
@click.option("--json", "as_json", is_flag=True, help="print each run's comparison as JSON")
def canary(db, endpoint, model_name, api_key, tasks, lengths, samples, seed, every, once, baseline, alpha, out,
           webhooks, as_json) -> None:  # fmt: skip
    """Probe a live endpoint with fixed-seed eval samples and compare each run with a baseline.

    The first run of a model is its baseline unless --baseline pins one. At each length the runs pair sample by
    sample; an exact McNemar test (BH across lengths) finds a significant drop, which opens an incident.

    Example: ctxops monitor canary --endpoint http://localhost:8000/v1 --model-name m --lengths 4k,16k --every 10m
    """
    from ctxops.evals.config import EvalConfig, parse_lengths, parse_tasks
    from ctxops.evals.targets import EndpointConfig, EndpointTarget
    from ctxops.monitor.notify import Webhook
    from ctxops.monitor.windows import parse_duration

    if every and once:
        raise click.UsageError("give --every or --once, not both")
    try:
        period = parse_duration(every) if every else None
        config = EvalConfig(tasks=parse_tasks(tasks), lengths=parse_lengths(lengths), samples=samples, depths=1,
                            seed=seed)  # fmt: skip
        target_config = EndpointConfig(url=endpoint, model_name=model_name, api_key=api_key)
        hooks = [Webhook(url) for url in webhooks]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with open_db(db, create=True) as store:
        while True:
            report = _one_run(store, EndpointTarget(target_config), config, model_name, Path(out), baseline, alpha,
                              hooks)  # fmt: skip
            click.echo(json.dumps(report, indent=2) if as_json else _text(report))
            if period is None or stop.wait(period):
                break


def _one_run(store, target, config, model: str, out: Path, pinned, alpha: float, hooks) -> dict[str, Any]:
    from ctxops.evals.targets import TargetError
    from ctxops.monitor.canary import baseline_for, compare_runs, describe, run_canary
    from ctxops.monitor.notify import notifications
    from ctxops.store import StoreError
    from ctxops.store.incidents import open_incident

    try:
        base = baseline_for(store, model, pinned)
        row = run_canary(store, target, config, model, out)
    except (StoreError, TargetError, ValueError) as exc:  # ValueError: a task that cannot fit a length
        raise click.ClickException(str(exc)) from exc
    comparisons = compare_runs(base[1], row["summary"]["outcomes"], alpha) if base else []
    regressed = [c for c in comparisons if c.regression]
    report = {"run": row["run_id"], "baseline": base[0] if base else None, "regression": bool(regressed),
              "failed_samples": row["summary"]["failed"], "lengths": describe(comparisons)}  # fmt: skip
    if regressed:
        title = f"canary regression for {model} at {', '.join(str(c.length) for c in regressed)} tokens"
        incident = {
            "dedup_key": f"canary:{model}",
            "rule": "canary_regression",
            "title": title,
            "details": report,
        }
        open_incident(store, incident["dedup_key"], "canary_regression", title, report, time.time(),
                      notifications(hooks, "opened", incident))  # fmt: skip
    return report


def _text(report: dict[str, Any]) -> str:
    if report["baseline"] is None:
        return f"{report['run']}: baseline recorded (later runs are compared with it)"
    lines = [f"{report['run']} vs {report['baseline']}:"]
    for c in report["lengths"]:
        flag = "  REGRESSION" if c["regression"] else ""
        lines.append(f"  {c['length']:>7} tokens: {c['baseline_correct']}/{c['n_pairs']} -> {c['current_correct']}/"
                     f"{c['n_pairs']} (worse {c['worse']}, better {c['better']}, p {c['p_adjusted']:.3g}){flag}")  # fmt: skip
    return "\n".join(lines)
