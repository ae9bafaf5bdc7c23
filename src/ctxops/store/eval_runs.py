"""Rows of the ``eval_runs`` table: eval runs imported from their run directory, canary runs written directly.

An eval run is keyed by its run directory (resolved path): importing it again replaces the row, so a resumed run's
newer summary wins. The model is the served name for an endpoint run and the model as given for a local one; the
effective length is the summary's 95%-lower-bound one (RULER's point estimate when no bound was reached). This module
knows rows and summary.json's fields, not statistics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ctxops.store.database import Store, StoreError
from ctxops.store.schema import eval_runs

_SUMMARY = "summary.json"
_REPORT = "report.html"


def _model_of(summary: dict[str, Any]) -> str | None:
    target = (summary.get("run") or {}).get("target") or {}
    return target.get("served_model_name") or target.get("model")


def _effective_length(summary: dict[str, Any]) -> int | None:
    effective = summary.get("effective_length") or {}
    value = effective.get("lower_bound") or effective.get("point_estimate")
    return int(value) if value else None


def _finished_at(summary: dict[str, Any], path: Path) -> float:
    run = summary.get("run") or {}
    for key in ("updated", "created"):
        stamp = run.get(key)
        if isinstance(stamp, str):
            try:
                return _iso_seconds(stamp)
            except ValueError:
                continue
    return path.stat().st_mtime


def _iso_seconds(stamp: str) -> float:
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(stamp)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def save_run(store: Store, row: dict[str, Any]) -> None:
    """Insert or replace one run row (keys: the columns of ``eval_runs``)."""
    with store.engine.begin() as conn:
        conn.execute(sa.delete(eval_runs).where(eval_runs.c.run_id == row["run_id"]))
        conn.execute(sa.insert(eval_runs), [row])


def import_run_dir(store: Store, run_dir: str | Path) -> dict[str, Any]:
    """Record the eval run in ``run_dir`` (its summary.json) and return the row written."""
    directory = Path(run_dir).resolve()
    path = directory / _SUMMARY
    try:
        summary = json.loads(
            path.read_text(), parse_constant=lambda _: None
        )  # NaN/Infinity: JSON columns refuse them
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"{path}: not a readable eval summary ({exc}); run `ctxops report {run_dir}` first"
        ) from exc
    model = _model_of(summary)
    if not model:
        raise StoreError(f"{path}: the summary names no model (run.target has no served_model_name or model)")
    report = directory / _REPORT
    row = {
        "run_id": str(directory),
        "kind": "eval",
        "model": model,
        "created_at": _finished_at(summary, path),
        "effective_length": _effective_length(summary),
        "report_path": str(report) if report.exists() else None,
        "summary": summary,
    }
    save_run(store, row)
    return row


def latest_run(store: Store, model: str, kind: str = "eval") -> dict[str, Any] | None:
    """The newest run of ``kind`` for ``model`` (without its summary), or None."""
    return _one_run(store, model, kind, eval_runs.c.created_at.desc(), with_summary=False)


def first_run(store: Store, model: str, kind: str = "canary") -> dict[str, Any] | None:
    """The oldest run of ``kind`` for ``model``, with its summary, or None."""
    return _one_run(store, model, kind, eval_runs.c.created_at.asc(), with_summary=True)


def get_run(store: Store, run_id: str) -> dict[str, Any] | None:
    """The run ``run_id``, with its summary, or None."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(eval_runs).where(eval_runs.c.run_id == run_id)).first()
    return dict(row._mapping) if row else None


def _one_run(store: Store, model: str, kind: str, order: Any, with_summary: bool) -> dict[str, Any] | None:
    columns = [c for c in eval_runs.c if with_summary or c.name != "summary"]
    query = (
        sa.select(*columns)
        .where(eval_runs.c.model == model, eval_runs.c.kind == kind)
        .order_by(order)
        .limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return dict(row._mapping) if row else None


def recent_runs(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs of every kind and model, newest first (without their summaries)."""
    columns = [c for c in eval_runs.c if c.name != "summary"]
    query = sa.select(*columns).order_by(eval_runs.c.created_at.desc()).limit(limit)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
