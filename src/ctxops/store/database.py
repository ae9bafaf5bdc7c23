"""Open the store: a SQLite file (WAL) or a Postgres URL, migrated to the current schema before first use.

``open_store("ctxops-requests.db")``, ``open_store("sqlite:///x.db")`` or ``open_store("postgresql://u@h/db")``.
A request-log file written before the store existed (``PRAGMA user_version`` 1 or 2, no Alembic version) is adopted
in place by the first migration, keeping every row. Any failure to reach or migrate the database becomes one
:class:`StoreError` whose message is a single line naming the database (password hidden) and what went wrong.
This module knows connections and migrations, not what the rows mean.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

DEFAULT_DB = "ctxops-requests.db"  # the path the server has always logged to
ENV_VAR = "CTXOPS_DB"
REQUEST_LOG_VERSION = 2  # PRAGMA user_version kept on SQLite, for readers of the former request log
_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x637478  # Postgres advisory lock id: one process migrates at a time


class StoreError(RuntimeError):
    """The database cannot be opened, reached or migrated (the message is one line)."""


def resolve_url(db: str | Path | None) -> str:
    """SQLAlchemy URL for a path or URL; None means ``$CTXOPS_DB`` or the default file."""
    text = str(db) if db is not None else os.environ.get(ENV_VAR) or DEFAULT_DB
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if text.startswith(("postgresql+psycopg://", "sqlite://")):
        return text
    if "://" in text:
        raise StoreError(
            f"unsupported database URL {text.split('://')[0]}://...: give a file path, sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DBNAME"
        )
    path = Path(text).expanduser()
    if not path.parent.exists():
        raise StoreError(f"cannot create database {path}: directory {path.parent} does not exist")
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes, fast commits
    # ms a writer waits for another: the server and the monitor share one file
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Store:
    """An open, migrated database: ``engine`` for queries, ``url`` for messages (password hidden)."""

    def __init__(self, db: str | Path | None = None, create: bool = True) -> None:
        url = sa.make_url(resolve_url(db))
        self.url = url.render_as_string(hide_password=True)
        self.is_sqlite = url.get_backend_name() == "sqlite"
        if self.is_sqlite and not create and url.database and not Path(url.database).exists():
            raise StoreError(
                f"no database at {url.database}: give --db (or CTXOPS_DB) the file or URL ctxops serve logs to"
            )
        kwargs: dict[str, Any] = (
            {} if self.is_sqlite else {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
        )
        self.engine = sa.create_engine(url, **kwargs)
        if self.is_sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self.migrate()
        except StoreError:
            self.engine.dispose()
            raise
        except sa.exc.SQLAlchemyError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open database {self.url}: {_one_line(exc)}") from exc

    def migrate(self) -> None:
        """Bring the schema to the newest revision (a no-op when it is there already)."""
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        head = ScriptDirectory.from_config(config).get_current_head()
        with self.engine.begin() as conn:
            if not self.is_sqlite:
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            else:
                self._check_request_log_version(conn)
            current = MigrationContext.configure(conn).get_current_revision()
            if current == head:
                return
            if current is not None and current > (head or ""):
                raise StoreError(f"database {self.url} has schema {current}, newer than this ctxops ({head})")
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            if self.is_sqlite:
                conn.exec_driver_sql(f"PRAGMA user_version={REQUEST_LOG_VERSION}")

    def _check_request_log_version(self, conn: sa.Connection) -> None:
        version = conn.exec_driver_sql("PRAGMA user_version").scalar() or 0
        if version > REQUEST_LOG_VERSION:
            raise StoreError(
                f"{self.url}: request log schema version {version} is newer than this ctxops "
                f"({REQUEST_LOG_VERSION})"
            )

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(db: str | Path | None = None, create: bool = True) -> Store:
    """Open (migrating if needed) the store at ``db``; see :func:`resolve_url`.

    A missing SQLite file is created unless ``create`` is False (commands that only read refuse to invent an empty
    log).
    """
    return Store(db, create)
