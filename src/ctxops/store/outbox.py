"""Rows of the ``outbox`` table: notifications queued with their incident, delivered later, retried until they land.

Each row has an idempotency key unique across the table (``<incident>:<event>:<url>``), so queuing the same
notification twice is impossible and the receiver can drop a repeat delivery (a retry after a lost reply). This
module knows rows; :mod:`ctxops.monitor.notify` does the HTTP.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ctxops.store.database import Store
from ctxops.store.schema import outbox


def enqueue(conn: sa.Connection, incident_id: int | None, url: str, payload: dict[str, Any], event: str,
            now: float) -> None:  # fmt: skip
    """Queue one notification inside the caller's transaction (a repeat of the same key is ignored)."""
    key = f"{event}:{url}"
    exists = conn.execute(sa.select(outbox.c.id).where(outbox.c.idempotency_key == key)).first()
    if exists is None:
        conn.execute(outbox.insert().values(idempotency_key=key, incident_id=incident_id, url=url, payload=payload,
                                            attempts=0, next_attempt_at=now))  # fmt: skip


def due(store: Store, now: float, limit: int = 100) -> list[dict[str, Any]]:
    """Undelivered notifications whose next attempt is due, oldest first."""
    query = (
        sa.select(outbox)
        .where(outbox.c.delivered_at.is_(None), outbox.c.next_attempt_at <= now)
        .order_by(outbox.c.id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def mark_delivered(store: Store, row_id: int, now: float) -> None:
    """The receiver answered 2xx."""
    with store.engine.begin() as conn:
        conn.execute(
            outbox.update()
            .where(outbox.c.id == row_id)
            .values(delivered_at=now, attempts=outbox.c.attempts + 1)
        )


def mark_failed(store: Store, row_id: int, error: str, next_attempt_at: float) -> None:
    """The attempt failed; try again at ``next_attempt_at``."""
    with store.engine.begin() as conn:
        conn.execute(
            outbox.update()
            .where(outbox.c.id == row_id)
            .values(attempts=outbox.c.attempts + 1, last_error=error[:500], next_attempt_at=next_attempt_at)
        )


def pending_count(store: Store) -> int:
    """Notifications not delivered yet."""
    with store.engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).where(outbox.c.delivered_at.is_(None))).scalar() or 0
        )
