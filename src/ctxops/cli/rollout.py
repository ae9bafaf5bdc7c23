"""``ctxops rollout analyze | run``: A/B verdicts between two arms, and progressive rollout through the gateway."""

from __future__ import annotations

import json
import math
import time

import click

from ctxops.cli.main import LazyGroup
from ctxops.cli.monitor import db_option, open_db
from ctxops.cli.options import build, dataclass_options
from ctxops.rollout.analysis import AnalysisConfig


@click.group(cls=LazyGroup, lazy_subcommands={"run": "ctxops.cli.rollout_run:run"})
def rollout() -> None:
    """A/B verdicts with statistics and progressive rollout of a candidate arm."""


def parse_since(text: str | None) -> float:
    """Unix seconds for --since (relative like 30m, or ISO 8601); -inf when absent."""
    if text is None:
        return -math.inf
    from ctxops.monitor.windows import parse_instant

    try:
        return parse_instant(text, time.time())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc


@rollout.command()
@db_option
@click.option("--model", required=True, help="the served model name (the gateway's)")
@click.option("--baseline", required=True, help="the baseline arm's name in the routes")
@click.option("--candidate", required=True, help="the candidate arm's name in the routes")
@click.option("--since", help="only requests and canaries since then: 30m, 6h or ISO 8601 (default: all)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@dataclass_options(AnalysisConfig)
def analyze(db: str | None, model: str, baseline: str, candidate: str, since: str | None, as_json: bool,
            **options) -> None:  # fmt: skip
    """Compare the candidate arm with the baseline arm, metric by metric, and give one verdict.

    Latencies: Mann-Whitney U. Error and cut-off rates: Fisher's exact or the two-proportion test. Quality: the
    paired exact test on both arms' same-seed canaries. Feedback: Mann-Whitney U. Only always-valid (mSPRT)
    p-values fail a metric, so analyzing again and again does not inflate false alarms.

    Example: ctxops rollout analyze --db ctxops.db --model tiny --baseline stable --candidate canary --json
    """
    from ctxops.rollout.analysis import analyze as run_analysis

    config = build(AnalysisConfig, options)
    start = parse_since(since)
    with open_db(db) as store:
        try:
            result = run_analysis(store, model, baseline, candidate, start, config)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"verdict: {result['verdict']}  (baseline {result['samples']['baseline']} requests, "
               f"candidate {result['samples']['candidate']}, canary pairs {result['samples']['canary_pairs']})")  # fmt: skip
    for reason in result["reasons"]:
        click.echo(f"  - {reason}")
    for m in result["metrics"]:
        p = "-" if m["p_value"] is None else f"{m['p_value']:.3g}"
        pav = "-" if m["p_always_valid"] is None else f"{m['p_always_valid']:.3g}"
        click.echo(f"{m['name']:<20} {m['class']:<9} {m['test']:<22} base={_num(m['baseline'])} "
                   f"cand={_num(m['candidate'])} p={p} p_av={pav}")  # fmt: skip


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
