"""Opening the store: both backends migrate to the newest schema, old request logs are adopted row for row, and a
bad or unreachable database is one clear line."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from ctxops.store import StoreError, open_store, resolve_url
from ctxops.store.requests import insert_requests, read_requests

V1_SCHEMA = """
CREATE TABLE requests (
    request_id TEXT PRIMARY KEY, created_at REAL NOT NULL, endpoint TEXT NOT NULL, model TEXT, key_id TEXT,
    user TEXT, upstream TEXT, stream INTEGER, status INTEGER NOT NULL, error_code TEXT, prompt_tokens INTEGER,
    cached_tokens INTEGER, completion_tokens INTEGER, max_tokens INTEGER, queue_time_s REAL, ttft_s REAL,
    e2e_s REAL, finish_reason TEXT, prompt TEXT, output TEXT
);
CREATE INDEX requests_created_at ON requests (created_at);
"""


def _old_log(path, version: int, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    if version == 2:
        conn.execute("ALTER TABLE requests ADD COLUMN usage_source TEXT")
    conn.executemany(
        "INSERT INTO requests (request_id, created_at, endpoint, status, prompt_tokens, ttft_s) VALUES (?,?,?,?,?,?)",
        [(f"old-{i}", 1000.0 + i, "chat.completions", 200, 10 * i, 0.01 * i) for i in range(rows)],
    )
    conn.execute(f"PRAGMA user_version={version}")
    conn.commit()
    conn.close()


def test_both_backends_reach_the_newest_schema(db_url):
    store = open_store(db_url)
    tables = set(sa.inspect(store.engine).get_table_names())
    expected = {"requests", "eval_runs", "incidents", "outbox", "model_versions", "rollouts", "feedback"}
    assert expected <= tables
    store.close()
    again = open_store(db_url)  # reopening is a no-op migration
    with again.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0004"
    again.close()


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_request_log_is_adopted_without_losing_a_row(tmp_path, version):
    path = tmp_path / f"v{version}.db"
    _old_log(path, version, rows=300)
    store = open_store(path)
    insert_requests(
        store, [{"request_id": "new", "created_at": 5000.0, "endpoint": "completions", "status": 200}]
    )
    rows = read_requests(store)
    assert [r["request_id"] for r in rows[:300]] == [f"old-{i}" for i in range(300)]
    assert [r["prompt_tokens"] for r in rows[:300]] == [10 * i for i in range(300)]
    assert rows[-1]["request_id"] == "new" and len(rows) == 301
    assert rows[0]["version"] is None and rows[0]["arm"] is None  # served before routes existed
    assert {"eval_runs", "incidents", "outbox"} <= set(sa.inspect(store.engine).get_table_names())
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(requests)")}
        assert {"requests_created_at", "requests_model_created_at"} <= indexes


def test_a_newer_request_log_is_refused(tmp_path):
    path = tmp_path / "future.db"
    _old_log(path, 2, rows=1)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=9")
    with pytest.raises(StoreError, match="version 9 is newer"):
        open_store(path)


def test_urls_and_paths(tmp_path, monkeypatch):
    assert resolve_url("postgresql://u:pw@h:5/d") == "postgresql+psycopg://u:pw@h:5/d"
    assert resolve_url(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path / 'a.db'}"
    monkeypatch.setenv("CTXOPS_DB", str(tmp_path / "env.db"))
    assert resolve_url(None).endswith("env.db")
    with pytest.raises(StoreError, match="unsupported database URL mysql"):
        resolve_url("mysql://x/y")
    with pytest.raises(StoreError, match="does not exist"):
        resolve_url(str(tmp_path / "missing" / "x.db"))


def test_an_unreachable_postgres_is_one_line_without_the_password():
    with pytest.raises(StoreError) as info:
        open_store("postgresql://me:secret@127.0.0.1:1/nothing")
    message = str(info.value)
    assert "\n" not in message and "secret" not in message and "127.0.0.1" in message


def test_a_wrong_database_name_is_one_line(postgres):
    with pytest.raises(StoreError, match="does not exist") as info:
        open_store(postgres.url("no_such_db"))
    assert "\n" not in str(info.value)


def test_a_file_that_is_not_a_database_is_one_line(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, I am not SQLite\n" * 100)
    with pytest.raises(StoreError, match="not a database") as info:
        open_store(bad)
    assert "\n" not in str(info.value)
