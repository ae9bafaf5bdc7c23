"""The request log's schema grows without losing rows: a version-1 log opens, migrates and keeps every row."""

from __future__ import annotations

import sqlite3

from ctxops.serve.request_log import SCHEMA_VERSION, RequestLog, RequestRecord, read_rows

V1_SCHEMA = """
CREATE TABLE requests (
    request_id TEXT PRIMARY KEY, created_at REAL NOT NULL, endpoint TEXT NOT NULL, model TEXT, key_id TEXT,
    user TEXT, upstream TEXT, stream INTEGER, status INTEGER NOT NULL, error_code TEXT, prompt_tokens INTEGER,
    cached_tokens INTEGER, completion_tokens INTEGER, max_tokens INTEGER, queue_time_s REAL, ttft_s REAL,
    e2e_s REAL, finish_reason TEXT, prompt TEXT, output TEXT
);
"""


def test_a_version_1_log_migrates_without_losing_a_row(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.executemany(
        "INSERT INTO requests (request_id, created_at, endpoint, status, completion_tokens) VALUES (?, ?, ?, ?, ?)",
        [(f"old-{i}", 1000.0 + i, "completions", 200, i) for i in range(50)],
    )
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()

    log = RequestLog(path)
    log.append(RequestRecord("new-1", "chat.completions", completion_tokens=7, usage_source="counted"))
    log.close()

    rows = read_rows(path)
    assert [r["request_id"] for r in rows[:50]] == [f"old-{i}" for i in range(50)]
    assert [r["completion_tokens"] for r in rows[:50]] == list(range(50))
    assert all(r["usage_source"] is None for r in rows[:50])
    assert rows[-1]["request_id"] == "new-1" and rows[-1]["usage_source"] == "counted"
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
