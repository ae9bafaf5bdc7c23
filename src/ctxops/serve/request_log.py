"""The request log: one SQLite row per request (WAL mode), written by a background thread.

Each row holds who asked (hashed key id, ``user``), what for (endpoint, model, upstream), how much (prompt, cached
and completion tokens), how fast (queue time, TTFT, end-to-end, seconds) and how it ended (finish reason, HTTP status,
error code). Prompts and outputs are stored only when the server runs with ``--log-prompts``. The schema is
versioned with ``PRAGMA user_version`` and only ever grows by new nullable columns, so monitoring jobs written
against version 1 keep working. This module knows rows, not HTTP.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2  # 2: usage_source
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id        TEXT PRIMARY KEY,
    created_at        REAL NOT NULL,     -- unix time the request arrived, seconds
    endpoint          TEXT NOT NULL,     -- chat.completions | completions | tokenize | detokenize
    model             TEXT,              -- the model name the client asked for
    key_id            TEXT,              -- salted hash of the API key (never the key)
    user              TEXT,              -- the OpenAI `user` field
    upstream          TEXT,              -- host:port in gateway mode, NULL for the embedded engine
    stream            INTEGER,           -- 1 when streamed
    status            INTEGER NOT NULL,  -- HTTP status sent
    error_code        TEXT,              -- OpenAI error code when status >= 400
    prompt_tokens     INTEGER,           -- tokenize: tokens counted; detokenize: tokens decoded
    cached_tokens     INTEGER,           -- prompt tokens served from the prefix cache
    completion_tokens INTEGER,
    max_tokens        INTEGER,           -- requested completion limit
    queue_time_s      REAL,              -- arrival -> first scheduled
    ttft_s            REAL,              -- arrival -> first token
    e2e_s             REAL,              -- arrival -> last byte
    finish_reason     TEXT,              -- stop | length | abort | error
    usage_source      TEXT,              -- NULL: the engine's exact counts; upstream: the upstream's usage;
                                         -- counted: the gateway counted the chunks it relayed (a lower bound)
    prompt            TEXT,              -- only with --log-prompts
    output            TEXT               -- only with --log-prompts
);
CREATE INDEX IF NOT EXISTS requests_created_at ON requests (created_at);
CREATE INDEX IF NOT EXISTS requests_model_created_at ON requests (model, created_at);
"""
COLUMNS = (
    "request_id", "created_at", "endpoint", "model", "key_id", "user", "upstream", "stream", "status", "error_code",
    "prompt_tokens", "cached_tokens", "completion_tokens", "max_tokens", "queue_time_s", "ttft_s", "e2e_s",
    "finish_reason", "usage_source", "prompt", "output",
)  # fmt: skip
# columns added after version 1, each with its SQL type: an older log grows them when opened (no row is lost)
_ADDED_COLUMNS = {"usage_source": "TEXT"}


@dataclass(slots=True)
class RequestRecord:
    """What the server learns about one request while serving it; becomes one row."""

    request_id: str
    endpoint: str
    created_at: float = field(default_factory=time.time)  # unix seconds
    started: float = field(default_factory=time.perf_counter)  # monotonic, for e2e
    model: str | None = None
    key_id: str | None = None
    user: str | None = None
    upstream: str | None = None
    stream: bool = False
    status: int = 200
    error_code: str | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    completion_tokens: int | None = None
    max_tokens: int | None = None
    queue_time_s: float | None = None
    ttft_s: float | None = None
    e2e_s: float | None = None
    finish_reason: str | None = None
    usage_source: str | None = None  # where the token counts came from (gateway mode)
    prompt: str | None = None
    output: str | None = None
    token_gaps_s: list[float] = field(default_factory=list)  # inter-token latencies for metrics; not stored

    def elapsed(self) -> float:
        """Seconds since the request arrived."""
        return time.perf_counter() - self.started

    def row(self, log_prompts: bool) -> tuple[Any, ...]:
        """The values for :data:`COLUMNS`; prompt and output are dropped unless ``log_prompts``."""
        values = {name: getattr(self, name) for name in COLUMNS}
        values["stream"] = int(self.stream)
        if not log_prompts:
            values["prompt"] = values["output"] = None
        return tuple(values[name] for name in COLUMNS)


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) a request-log database in WAL mode with the current schema."""
    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes, fast commits
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"{path}: request log schema version {version} is newer than this ctxops ({SCHEMA_VERSION})"
        )
    conn.executescript(_SCHEMA)
    present = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    for name, sql_type in _ADDED_COLUMNS.items():
        if name not in present:
            conn.execute(f"ALTER TABLE requests ADD COLUMN {name} {sql_type}")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    conn.commit()
    return conn


class RequestLog:
    """Appends records from the event loop without blocking it; a writer thread commits them in batches."""

    _BATCH = 256  # rows per transaction at most

    def __init__(self, path: str | Path, log_prompts: bool = False) -> None:
        self.path = Path(path)
        self.log_prompts = log_prompts
        self._conn = connect(self.path)
        self._queue: queue.Queue[RequestRecord | None] = queue.Queue()
        self._thread = threading.Thread(target=self._write_loop, name="ctxops-request-log", daemon=True)
        self._thread.start()

    def append(self, record: RequestRecord) -> None:
        """Queue one record for writing (returns at once)."""
        self._queue.put(record)

    def close(self) -> None:
        """Write everything queued, then close the database."""
        self._queue.put(None)
        self._thread.join()
        self._conn.close()

    def _write_loop(self) -> None:
        placeholders = ", ".join("?" * len(COLUMNS))
        sql = f"INSERT OR REPLACE INTO requests ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        done = False
        while not done:
            batch = [self._queue.get()]
            while len(batch) < self._BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            done = batch[-1] is None or None in batch
            rows = [r.row(self.log_prompts) for r in batch if r is not None]
            if rows:
                self._conn.executemany(sql, rows)
                self._conn.commit()


def read_rows(path: str | Path, where: str = "1=1", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of a request log as dicts, oldest first (for tests, reports and monitoring jobs)."""
    conn = sqlite3.connect(str(path))
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(f"SELECT * FROM requests WHERE {where} ORDER BY created_at", params).fetchall()
    finally:
        conn.close()
    return [dict(r) for r in rows]
