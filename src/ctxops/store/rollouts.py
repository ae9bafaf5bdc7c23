"""Rows of the ``rollouts`` table: the state of each progressive rollout, written after every change.

A rollout is keyed by its name. ``save`` replaces the whole row in one transaction, so a driver killed at any
moment leaves the last state it reached, and a restarted driver reads it back and carries on. This module knows
rows, not steps or verdicts.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ctxops.store.database import Store
from ctxops.store.schema import rollouts


def load_rollout(store: Store, name: str) -> dict[str, Any] | None:
    """The stored state of rollout ``name``, or None."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(rollouts).where(rollouts.c.name == name)).first()
    return dict(row._mapping) if row else None


def save_rollout(store: Store, row: dict[str, Any]) -> None:
    """Insert or replace one rollout's state (keys: the columns of ``rollouts``)."""
    with store.engine.begin() as conn:
        conn.execute(sa.delete(rollouts).where(rollouts.c.name == row["name"]))
        conn.execute(sa.insert(rollouts), [row])
