"""The guard's findings per request: each request-log row gains the strongest action taken and the rules matched.

Both columns are nullable, so a log written before this revision keeps every row (NULL: no guard, or no finding).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("requests")}
    for name in ("guard_action", "guard_rules"):
        if name not in present:
            op.add_column("requests", sa.Column(name, sa.Text))
