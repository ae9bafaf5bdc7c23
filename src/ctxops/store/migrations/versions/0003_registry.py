"""Model versions (the registry), rollout state and user feedback; each request-log row gains its version and arm.

The request log's new columns are nullable, so a log written before this revision keeps every row (its rows have no
version or arm: they were served before routes existed).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("requests")}
    for name in ("version", "arm", "route_reason"):
        if name not in present:
            op.add_column("requests", sa.Column(name, sa.Text))
    op.create_table(
        "model_versions",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("version", sa.Text, primary_key=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("served_model_name", sa.Text),
        sa.Column("content_hash", sa.Text),
        sa.Column("tokenizer_hash", sa.Text),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("notes", sa.Text),
    )
    op.create_table(
        "rollouts",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("history", sa.JSON, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("score", sa.Double, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
