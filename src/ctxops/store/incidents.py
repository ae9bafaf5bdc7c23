"""Rows of the ``incidents`` table: open (deduplicated), acknowledge, resolve, list.

At most one incident per ``dedup_key`` is live (open or acknowledged): opening again while one is live only
refreshes its details and ``updated_at``, so a condition that persists across many checks is one incident. Opening a
new incident queues its notifications in the outbox in the same transaction, so an incident is never recorded
without its notifications nor notified without being recorded. This module knows rows, not rules or HTTP.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ctxops.store.database import Store, StoreError
from ctxops.store.outbox import enqueue
from ctxops.store.schema import incidents

LIVE = ("open", "acknowledged")
STATES = ("open", "acknowledged", "resolved")


def open_incident(
    store: Store,
    dedup_key: str,
    rule: str,
    title: str,
    details: dict[str, Any],
    now: float,
    notify: list[tuple[str, dict[str, Any]]] | None = None,
) -> tuple[int, bool]:
    """(incident id, True if new). ``notify``: (url, payload) pairs queued only when the incident is new."""
    with store.engine.begin() as conn:
        live = conn.execute(
            sa.select(incidents.c.id).where(incidents.c.dedup_key == dedup_key, incidents.c.state.in_(LIVE))
        ).first()
        if live is not None:
            conn.execute(
                incidents.update().where(incidents.c.id == live.id).values(details=details, updated_at=now)
            )
            return int(live.id), False
        values = {"dedup_key": dedup_key, "rule": rule, "state": "open", "title": title, "details": details,
                  "opened_at": now, "updated_at": now}  # fmt: skip
        incident_id = int(conn.execute(incidents.insert().values(**values)).inserted_primary_key[0])
        for url, payload in notify or []:
            enqueue(
                conn, incident_id, url, {**payload, "incident_id": incident_id}, f"{incident_id}:opened", now
            )
        return incident_id, True


def set_state(
    store: Store,
    incident_id: int,
    state: str,
    now: float,
    notify: list[tuple[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Move an incident to ``acknowledged`` or ``resolved``; returns the updated row."""
    if state not in STATES[1:]:
        raise ValueError(f"state must be acknowledged or resolved, got {state!r}")
    with store.engine.begin() as conn:
        row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).first()
        if row is None:
            raise StoreError(f"no incident {incident_id}: list them with `ctxops monitor incidents`")
        if row.state == "resolved":
            raise StoreError(f"incident {incident_id} is already resolved")
        values: dict[str, Any] = {"state": state, "updated_at": now}
        if state == "resolved":
            values["resolved_at"] = now
            for url, payload in notify or []:
                enqueue(
                    conn,
                    incident_id,
                    url,
                    {**payload, "incident_id": incident_id},
                    f"{incident_id}:resolved",
                    now,
                )
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(**values))
        return dict(conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).one()._mapping)


def list_incidents(store: Store, live_only: bool = False, limit: int = 200) -> list[dict[str, Any]]:
    """Incidents, newest first (only open and acknowledged ones with ``live_only``)."""
    query = sa.select(incidents).order_by(incidents.c.id.desc()).limit(limit)
    if live_only:
        query = query.where(incidents.c.state.in_(LIVE))
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
