"""``ctxops monitor slo``: SLO attainment, error budget and burn-rate alerts from a TOML file of objectives."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from ctxops.cli.monitor import db_option, open_db


@click.command()
@db_option
@click.option(
    "--slo", "slo_file", required=True, type=click.Path(dir_okay=False), help="the TOML file of objectives"
)
@click.option(
    "--at", default=None, help="evaluate as of this time (ISO 8601 or e.g. 1d for a day ago; default now)"
)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option("--fail-on-alert", is_flag=True, help="exit 1 when any burn-rate alert fires")
def slo(db: str | None, slo_file: str, at: str | None, as_json: bool, fail_on_alert: bool) -> None:
    """Report each objective's attainment, error budget left and burn rates, with multiwindow alerts.

    Alerts follow the SRE Workbook: page at 14.4x over 1h and 5m or 6x over 6h and 30m, ticket at 1x over 3d and
    6h (rates for a 30-day period; rescaled for another). See the README for the file format.

    Example: ctxops monitor slo --slo slo.toml --json
    """
    from ctxops.monitor.slo import evaluate_slos
    from ctxops.monitor.slo_config import SLOFileError, load_slo
    from ctxops.monitor.windows import parse_instant

    try:
        config = load_slo(slo_file)
    except SLOFileError as exc:
        raise click.BadParameter(str(exc), param_hint="--slo") from exc
    try:
        now = parse_instant(at, time.time()) if at else time.time()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from exc
    with open_db(db) as store:
        statuses = evaluate_slos(store, config, now)
    report = {
        "period": config.period_text,
        "at": now,
        "alerting": any(a.firing for s in statuses for a in s.alerts),
        "objectives": [s.to_dict() for s in statuses],
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print(report)
    if fail_on_alert and report["alerting"]:
        sys.exit(1)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3%}"


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"SLOs over {report['period']}")
    for column in ("objective", "target", "attainment", "budget left", "burn 5m/1h/6h/3d", "valid", "status"):
        table.add_column(column)
    for o in report["objectives"]:
        rates = "/".join("-" if o["burn_rates"].get(w) is None else f"{o['burn_rates'][w]:.2g}"
                         for w in ("5m", "1h", "6h", "3d"))  # fmt: skip
        table.add_row(o["name"], _pct(o["target"]), _pct(o["attainment"]), _pct(o["error_budget_left"]), rates,
                      str(o["valid"]), o["status"].upper() if o["status"] in ("page", "ticket") else o["status"])  # fmt: skip
    console = Console(width=max(Console().width, 120))
    console.print(table)
    for o in report["objectives"]:
        for a in o["alerts"]:
            if a["firing"]:
                console.print(f"{a['severity'].upper()}: {o['name']} burns {a['long_burn']:.3g}x over "
                              f"{a['long_window']} and {a['short_burn']:.3g}x over {a['short_window']} "
                              f"(threshold {a['burn_rate']:.3g}x)")  # fmt: skip
