"""``ctxops monitor drift``: compare a current window of traffic with a reference window, metric by metric."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ctxops.cli.monitor import db_option, open_db, parse_window_option
from ctxops.cli.options import build, dataclass_options
from ctxops.monitor.drift import DriftConfig


@click.command()
@db_option
@click.option("--reference", required=True, help="the baseline window START..END, e.g. 7d..1h")
@click.option("--current", required=True, help="the window to check START..END, e.g. 1h..")
@click.option("--model", default=None, help="only requests for this model name")
@click.option("--by", type=click.Choice(["model", "upstream"]), default=None, help="test each group apart")
@click.option("--eval-run", "eval_runs", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="record this eval run directory in the store first (its effective length; repeatable)")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option("--fail-on-drift", is_flag=True, help="exit 1 on drift or a beyond-effective-length alert")
@dataclass_options(DriftConfig)
def drift(db, reference, current, model, by, eval_runs, as_json, fail_on_drift, **options) -> None:
    """Compare the current window of traffic with a reference window, metric by metric.

    Numeric metrics: KS test, effect = normed Wasserstein. Categorical: chi-square, effect = Jensen-Shannon
    distance. A metric drifts when its Benjamini-Hochberg-adjusted p-value < alpha AND its effect reaches the
    threshold. Also: the share of prompts beyond each model's effective context length (its latest eval run).

    Example: ctxops monitor drift --reference 7d..1h --current 1h.. --fail-on-drift
    """
    from ctxops.monitor.drift import detect_drift
    from ctxops.monitor.effective_length import beyond_effective_length
    from ctxops.store import StoreError
    from ctxops.store.eval_runs import import_run_dir

    config = build(DriftConfig, options)
    ref, cur = parse_window_option(reference, "--reference"), parse_window_option(current, "--current")
    with open_db(db) as store:
        try:
            for run_dir in eval_runs:
                import_run_dir(store, run_dir)
            metrics = detect_drift(store, ref, cur, config, model, by)
            beyond = beyond_effective_length(store, ref, cur, config.beyond_threshold, model)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
    report = {
        "drift": any(m.drift for m in metrics),
        "alert": any(b.alert for b in beyond),
        "reference": ref.to_dict(),
        "current": cur.to_dict(),
        "metrics": [m.to_dict() for m in metrics],
        "beyond_effective_length": [b.to_dict() for b in beyond],
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_drift(report, config)
    if fail_on_drift and (report["drift"] or report["alert"]):
        sys.exit(1)


def _fmt(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def _print_drift(report: dict[str, Any], config: DriftConfig) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"drift: {report['reference']['text']} vs {report['current']['text']}")
    for column in ("metric", "test", "statistic", "p", "p (BH)", "effect", "n ref", "n cur", "verdict"):
        table.add_column(column)
    for m in report["metrics"]:
        verdict = "insufficient data" if m["drift"] is None else ("DRIFT" if m["drift"] else "ok")
        name = f"{m['group']}: {m['name']}" if "group" in m else m["name"]
        table.add_row(name, m["test"], _fmt(m["statistic"]), _fmt(m["p_value"]), _fmt(m["p_adjusted"]),
                      _fmt(m["effect"]), str(m["n_reference"]), str(m["n_current"]), verdict)  # fmt: skip
    console = Console(width=max(Console().width, 120))  # the metric names stay whole in a narrow terminal
    console.print(table)
    console.print(
        f"drift = BH-adjusted p < {config.alpha:g} and effect >= {config.numeric_effect:g} (normed Wasserstein) "
        f"or {config.categorical_effect:g} (Jensen-Shannon)"
    )
    for b in report["beyond_effective_length"]:
        if b["effective_length"] is None:
            console.print(f"{b['model']}: {b['note']}")
            continue
        low, high = b["ci_current"] or (None, None)
        console.print(
            f"{b['model']}: {_fmt(b['share_current'], '.1%')} of prompts beyond its effective length "
            f"{b['effective_length']} (95% CI {_fmt(low, '.1%')}-{_fmt(high, '.1%')}, n={b['n_current']}; "
            f"reference {_fmt(b['share_reference'], '.1%')}){'  ALERT' if b['alert'] else ''}"
        )
