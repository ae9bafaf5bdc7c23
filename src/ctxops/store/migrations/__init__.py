"""Alembic migrations of the store (run by :func:`ctxops.store.database.migrate`, never by hand)."""
