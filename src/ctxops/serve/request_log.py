"""The request log: one row per request in the store's ``requests`` table, written by a background thread.

Each row holds who asked (hashed key id, ``user``), what for (endpoint, model, upstream), how much (prompt, cached
and completion tokens), how fast (queue time, TTFT, end-to-end, seconds), how it ended (finish reason, HTTP status,
error code) and what the guard found (its strongest action, the rules). Prompts and outputs are stored only when
the server runs with ``--log-prompts``. The log lives in the store (:mod:`ctxops.store`): a SQLite file in WAL mode
by default, or Postgres; a log written by an older ctxops opens and migrates without losing a row. The event loop
only queues records; a writer thread commits them in batches, and keeps a batch it could not write (the database
was briefly unreachable) to try again. This module knows rows, not HTTP.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ctxops.store import Store, open_store
from ctxops.store.database import REQUEST_LOG_VERSION
from ctxops.store.requests import insert_requests, read_requests
from ctxops.store.schema import REQUEST_COLUMNS

logger = logging.getLogger(__name__)

SCHEMA_VERSION = REQUEST_LOG_VERSION  # 2: usage_source
COLUMNS = REQUEST_COLUMNS


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
    version: str | None = None  # registry version of the arm that served it (gateway with routes)
    arm: str | None = None  # routes-file arm that served it
    route_reason: str | None = None  # why that arm: weighted | length | fallback:<why> | ensemble
    guard_action: str | None = None  # the guard's strongest action on this request (log < redact < block)
    guard_rules: str | None = None  # rules that matched, "side:rule" comma-separated and sorted
    prompt: str | None = None
    output: str | None = None
    token_gaps_s: list[float] = field(default_factory=list)  # inter-token latencies for metrics; not stored

    def elapsed(self) -> float:
        """Seconds since the request arrived."""
        return time.perf_counter() - self.started

    def row(self, log_prompts: bool) -> dict[str, Any]:
        """The values for :data:`COLUMNS`; prompt and output are dropped unless ``log_prompts``."""
        values = {name: getattr(self, name) for name in COLUMNS}
        values["stream"] = int(self.stream)
        if not log_prompts:
            values["prompt"] = values["output"] = None
        return values


class RequestLog:
    """Appends records from the event loop without blocking it; a writer thread commits them in batches."""

    _BATCH = 256  # rows per transaction at most
    _RETRY_S = 1.0  # wait before writing a failed batch again

    def __init__(self, db: str | Path | Store, log_prompts: bool = False) -> None:
        self.store = db if isinstance(db, Store) else open_store(db)
        self.log_prompts = log_prompts
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
        self.store.close()

    def _write_loop(self) -> None:
        pending: list[dict[str, Any]] = []
        done = False
        while not done:
            batch = [self._queue.get()]
            while len(batch) < self._BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            done = None in batch
            pending += [r.row(self.log_prompts) for r in batch if r is not None]
            pending = self._write(pending, final=done)

    def _write(self, rows: list[dict[str, Any]], final: bool) -> list[dict[str, Any]]:
        """Write ``rows``; return those still unwritten (kept for the next try, given up on at close)."""
        try:
            insert_requests(self.store, rows)
            return []
        except sa.exc.SQLAlchemyError as exc:
            if final:
                logger.error(
                    "request log: %d rows could not be written to %s: %s", len(rows), self.store.url, exc
                )
                return []
            logger.warning(
                "request log: writing %d rows to %s failed (%s); retrying", len(rows), self.store.url, exc
            )
            time.sleep(self._RETRY_S)
            return rows


def read_rows(db: str | Path, where: str = "1=1", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of a request log as dicts, oldest first (for tests, reports and monitoring jobs)."""
    with open_store(db) as store:
        return read_requests(store, where, params)
