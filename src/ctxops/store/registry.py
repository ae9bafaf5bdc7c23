"""Rows of the ``model_versions`` table: register a version once, read one, list them.

A (name, version) pair is written once: registering it again is refused, because a version that silently changes
under the same label defeats the point of a registry. This module knows rows, not model directories or HTTP.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ctxops.store.database import Store, StoreError
from ctxops.store.schema import model_versions


def add_version(store: Store, row: dict[str, Any]) -> None:
    """Insert one version (keys: the columns of ``model_versions``); a duplicate (name, version) is a StoreError."""
    with store.engine.begin() as conn:
        clash = conn.execute(
            sa.select(model_versions.c.content_hash).where(
                model_versions.c.name == row["name"], model_versions.c.version == row["version"]
            )
        ).first()
        if clash is not None:
            raise StoreError(
                f"{row['name']} version {row['version']} is registered already; give the new one another --version"
            )
        conn.execute(sa.insert(model_versions), [row])


def get_version(store: Store, name: str, version: str | None = None) -> dict[str, Any] | None:
    """One version of ``name`` (the newest registered when ``version`` is None), or None."""
    query = sa.select(model_versions).where(model_versions.c.name == name)
    if version is not None:
        query = query.where(model_versions.c.version == version)
    query = query.order_by(model_versions.c.created_at.desc()).limit(1)
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return dict(row._mapping) if row else None


def list_versions(store: Store, name: str | None = None) -> list[dict[str, Any]]:
    """Every version (of ``name`` only, when given), by name then registration time."""
    query = sa.select(model_versions).order_by(model_versions.c.name, model_versions.c.created_at)
    if name is not None:
        query = query.where(model_versions.c.name == name)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
