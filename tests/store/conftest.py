"""Store tests run on both backends: a SQLite file and a real Postgres server started for the session."""

from postgres_server import db_url, postgres  # noqa: F401  (fixtures)
