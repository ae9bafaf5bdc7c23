"""``ctxops monitor incidents``, ``ack`` and ``resolve``: the incidents the monitor opened, and their lifecycle."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import click

from ctxops.cli.monitor import db_option, open_db


@click.command()
@db_option
@click.option("--open", "live_only", is_flag=True, help="only open and acknowledged incidents")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def incidents(db: str | None, live_only: bool, as_json: bool) -> None:
    """List incidents, newest first."""
    from ctxops.store.incidents import list_incidents

    with open_db(db) as store:
        rows = list_incidents(store, live_only)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no incidents" + (" open" if live_only else ""))
    for r in rows:
        opened = datetime.fromtimestamp(r["opened_at"], UTC).isoformat(timespec="seconds")
        click.echo(f"#{r['id']}  {r['state']:<12}  {opened}  {r['rule']:<24}  {r['title']}")


def _transition(db: str | None, incident_id: int, state: str) -> None:
    from ctxops.store import StoreError
    from ctxops.store.incidents import set_state

    with open_db(db) as store:
        try:
            row = set_state(store, incident_id, state, time.time())
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"#{row['id']} {row['state']}: {row['title']}")


@click.command()
@db_option
@click.argument("incident_id", type=int)
def ack(db: str | None, incident_id: int) -> None:
    """Acknowledge incident INCIDENT_ID (someone is on it; it stays live, so it is not opened again)."""
    _transition(db, incident_id, "acknowledged")


@click.command()
@db_option
@click.argument("incident_id", type=int)
def resolve(db: str | None, incident_id: int) -> None:
    """Resolve incident INCIDENT_ID (if the condition returns, a new incident opens)."""
    _transition(db, incident_id, "resolved")
