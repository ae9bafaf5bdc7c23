"""``ctxops monitor``: the group and the options its subcommands share (one module per subcommand).

Subcommands are imported on first use, like the top-level ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ctxops.cli.main import LazyGroup

if TYPE_CHECKING:
    from ctxops.store import Store

DB_HELP = "the store: a SQLite file or postgresql:// URL (default: $CTXOPS_DB, else ctxops-requests.db)"


def db_option(func: Callable) -> Callable:
    """``--db`` (or CTXOPS_DB) on every subcommand that reads or writes the store."""
    return click.option("--db", envvar="CTXOPS_DB", default=None, help=DB_HELP)(func)


def open_db(db: str | None, create: bool = False) -> Store:
    """Open the store or stop with its one-line error (a missing SQLite file is an error unless ``create``)."""
    from ctxops.store import StoreError, open_store

    try:
        return open_store(db, create)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def parse_window_option(text: str, flag: str) -> Any:
    """A ``START..END`` window or a usage error naming the flag."""
    from ctxops.monitor.windows import parse_window

    try:
        return parse_window(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from exc


@click.group(
    cls=LazyGroup,
    lazy_subcommands={
        "drift": "ctxops.cli.monitor_drift:drift",
        "slo": "ctxops.cli.monitor_slo:slo",
        "run": "ctxops.cli.monitor_run:run",
        "canary": "ctxops.cli.monitor_canary:canary",
        "ui": "ctxops.cli.monitor_ui:ui",
        "incidents": "ctxops.cli.monitor_incidents:incidents",
        "ack": "ctxops.cli.monitor_incidents:ack",
        "resolve": "ctxops.cli.monitor_incidents:resolve",
    },
)
def monitor() -> None:
    """Watch a deployment: drift, SLOs, canaries and incidents over the request log."""
