"""Rows of the ``feedback`` table: a user's score of one answer, keyed by the answer's request id.

A second score for the same answer replaces the first (a user who changes their mind). The A/B analysis joins
these rows to the request log by request id. This module knows rows, not HTTP.
"""

from __future__ import annotations

import sqlalchemy as sa

from ctxops.store.database import Store
from ctxops.store.schema import feedback


def save_feedback(store: Store, request_id: str, score: float, now: float) -> None:
    """Record (or replace) the score of answer ``request_id``."""
    with store.engine.begin() as conn:
        conn.execute(sa.delete(feedback).where(feedback.c.request_id == request_id))
        conn.execute(sa.insert(feedback).values(request_id=request_id, score=score, created_at=now))
