"""One store for what ctxops persists: the request log, eval and canary results, incidents and the alert outbox.

SQLite (a file, WAL) or Postgres (a ``postgresql://`` URL), one schema kept by Alembic migrations. The store knows
rows, not HTTP and not statistics.
"""

from ctxops.store.database import Store, StoreError, open_store, resolve_url

__all__ = ["Store", "StoreError", "open_store", "resolve_url"]
