"""The request log (version 2 of the server's former SQLite log), adopting a log written before the store existed.

A log from before the store has a ``requests`` table and ``PRAGMA user_version`` 1 or 2 but no Alembic version:
it keeps its table and rows and only grows what version 1 lacked (``usage_source``, the two indexes).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TEXT, _INT, _REAL = sa.Text, sa.Integer, sa.Double
_COLUMNS = (
    ("created_at", _REAL), ("endpoint", _TEXT), ("model", _TEXT), ("key_id", _TEXT), ("user", _TEXT),
    ("upstream", _TEXT), ("stream", _INT), ("status", _INT), ("error_code", _TEXT), ("prompt_tokens", _INT),
    ("cached_tokens", _INT), ("completion_tokens", _INT), ("max_tokens", _INT), ("queue_time_s", _REAL),
    ("ttft_s", _REAL), ("e2e_s", _REAL), ("finish_reason", _TEXT), ("usage_source", _TEXT), ("prompt", _TEXT),
    ("output", _TEXT),
)  # fmt: skip
_NOT_NULL = {"created_at", "endpoint", "status"}
_INDEXES = {"requests_created_at": ["created_at"], "requests_model_created_at": ["model", "created_at"]}


def upgrade() -> None:
    """Apply this revision."""
    inspector = sa.inspect(op.get_bind())
    if "requests" not in inspector.get_table_names():
        op.create_table(
            "requests",
            sa.Column("request_id", sa.Text, primary_key=True),
            *(sa.Column(name, kind, nullable=name not in _NOT_NULL) for name, kind in _COLUMNS),
        )
        present_indexes: set[str] = set()
    else:
        present = {c["name"] for c in inspector.get_columns("requests")}
        for name, kind in _COLUMNS:
            if name not in present:  # version 1 lacks usage_source; every added column is nullable
                op.add_column("requests", sa.Column(name, kind))
        present_indexes = {i["name"] for i in inspector.get_indexes("requests")}
    for name, columns in _INDEXES.items():
        if name not in present_indexes:
            op.create_index(name, "requests", columns)
