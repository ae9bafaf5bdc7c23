"""Rows of the ``requests`` table: insert a batch, read rows back, read columns of a time window as arrays.

Inserting replaces a row with the same ``request_id`` (the former log's ``INSERT OR REPLACE``), on SQLite and Postgres
alike. Window reads return NumPy arrays straight from the driver's cursor so that a million rows stay fast. This
module knows rows, not statistics and not HTTP.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ctxops.store.database import Store
from ctxops.store.schema import REQUEST_COLUMNS, requests

_UPDATED = [c for c in REQUEST_COLUMNS if c != "request_id"]


@functools.cache  # built once per dialect: building it costs more than writing one row
def _upsert(is_sqlite: bool) -> sa.Insert:
    insert = (sqlite if is_sqlite else postgresql).insert(requests)
    return insert.on_conflict_do_update(
        index_elements=["request_id"], set_={c: insert.excluded[c] for c in _UPDATED}
    )


def insert_requests(store: Store, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` (dicts keyed by column name; missing columns are NULL) in one transaction."""
    if not rows:
        return
    full = [{c: row.get(c) for c in REQUEST_COLUMNS} for row in rows]
    with store.engine.begin() as conn:
        conn.execute(_upsert(store.is_sqlite), full)


def read_requests(
    store: Store, where: str = "1=1", params: Sequence[Any] | dict[str, Any] = ()
) -> list[dict[str, Any]]:
    """Rows as dicts, oldest first. ``where`` is raw SQL in the driver's parameter style (``?`` on SQLite)."""
    with store.engine.connect() as conn:
        result = conn.exec_driver_sql(
            f"SELECT * FROM requests WHERE {where} ORDER BY created_at",
            tuple(params) if not isinstance(params, dict) else params,
        )
        return [dict(row._mapping) for row in result]


def window_filter(start: float, end: float, filters: dict[str, str] | None = None) -> sa.ColumnElement[bool]:
    """``start <= created_at < end`` and ``column = value`` for each of ``filters``."""
    clauses = [requests.c.created_at < end]
    if math.isfinite(start):  # an open start (-inf) is no bound at all
        clauses.append(requests.c.created_at >= start)
    clauses += [requests.c[name] == value for name, value in (filters or {}).items()]
    return sa.and_(*clauses)


def _fetch(store: Store, query: sa.Select) -> list[tuple[Any, ...]]:
    """All rows of ``query``, from the driver's own cursor (for a million rows, several times faster than Core)."""
    with store.engine.connect() as conn:
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(str(compiled))
            return cursor.fetchall()
        finally:
            cursor.close()


def read_floats(store: Store, columns: Iterable[str], where: sa.ColumnElement[bool]) -> dict[str, np.ndarray]:
    """The named numeric columns of the matching rows as float arrays (NULL is nan), in one pass."""
    names = list(columns)
    rows = _fetch(store, sa.select(*(requests.c[n] for n in names)).where(where))
    table = np.array(rows, dtype=float) if rows else np.empty((0, len(names)))  # (rows, columns)
    return {name: table[:, i] for i, name in enumerate(names)}


def count_values(
    store: Store, columns: Iterable[str], where: sa.ColumnElement[bool]
) -> dict[str, dict[str, int]]:
    """Rows per value of each named column among the matching rows (NULL is the value ``none``).

    One GROUP BY over all the columns: the database counts, and only the few distinct combinations cross over.
    """
    names = list(columns)
    keys = [requests.c[n] for n in names]
    rows = _fetch(store, sa.select(*keys, sa.func.count()).where(where).group_by(*keys))
    counts: dict[str, dict[str, int]] = {name: {} for name in names}
    for *values, n in rows:
        for name, value in zip(names, values, strict=True):
            key = "none" if value is None else str(value)
            counts[name][key] = counts[name].get(key, 0) + int(n)
    return counts


def distinct_values(store: Store, column: str, where: sa.ColumnElement[bool]) -> list[str]:
    """The non-NULL values of ``column`` among the matching rows, sorted."""
    query = sa.select(requests.c[column]).where(where, requests.c[column].is_not(None)).distinct()
    with store.engine.connect() as conn:
        return sorted(str(v) for (v,) in conn.execute(query))


def count_flagged(
    store: Store, where: sa.ColumnElement[bool], flag: sa.ColumnElement[bool]
) -> tuple[int, int]:
    """(rows where ``flag`` holds, rows) among the rows matching ``where``."""
    query = sa.select(sa.func.sum(sa.case((flag, 1), else_=0)), sa.func.count()).where(where)
    with store.engine.connect() as conn:
        flagged, n = conn.execute(query).one()
    return int(flagged or 0), int(n)


def count_above(
    store: Store, column: str, threshold: float, where: sa.ColumnElement[bool]
) -> tuple[int, int]:
    """(rows where ``column`` > ``threshold``, rows where ``column`` is not NULL) among the matching rows."""
    value = requests.c[column]
    return count_flagged(store, sa.and_(where, value.is_not(None)), value > threshold)
