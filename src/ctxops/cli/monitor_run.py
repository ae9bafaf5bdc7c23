"""``ctxops monitor run``: drift, SLO and error-spike checks on schedule, opening incidents and notifying."""

from __future__ import annotations

import logging
import signal
import threading

import click

from ctxops.cli.monitor import DB_HELP, open_db


@click.command()
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False, exists=True),
              help="monitor.toml: the checks, their schedule and the webhooks (see the README)")  # fmt: skip
@click.option("--db", envvar="CTXOPS_DB", default=None, help=DB_HELP + "; overrides db in the config")
def run(config_file: str, db: str | None) -> None:
    """Run every configured check on its schedule until SIGTERM or Ctrl-C (then exit 0).

    Incidents and undelivered notifications live in the store, so a restarted monitor resumes: nothing queued is
    lost and a condition that persists stays one incident.

    Example: ctxops monitor run --config monitor.toml
    """
    stop = threading.Event()  # first: a SIGTERM during start-up still means a clean stop
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from ctxops.monitor.run_config import load_monitor_config
    from ctxops.monitor.runner import MonitorRunner

    try:
        config = load_monitor_config(config_file)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with open_db(db or config.db, create=True) as store:
        runner = MonitorRunner(store, config)
        click.echo(f"monitoring {store.url}: {', '.join(name for name, _, _ in runner.jobs)}")
        runner.run(stop)
    click.echo("stopped")
