"""Monitor tests: a store on both backends (a SQLite file, a real Postgres)."""

from postgres_server import db_url, postgres  # noqa: F401  (fixtures)
