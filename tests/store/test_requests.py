"""The requests table on both backends: upsert by request id, window reads as arrays, counts per category, and the
server's request log writing through the store."""

from __future__ import annotations

import math

import pytest

from ctxops.serve.request_log import RequestLog, RequestRecord, read_rows
from ctxops.store import open_store
from ctxops.store.requests import (
    count_above,
    count_values,
    distinct_values,
    insert_requests,
    read_floats,
    read_requests,
    window_filter,
)


def _row(i: int, **extra) -> dict:
    return {"request_id": f"r{i}", "created_at": 100.0 + i, "endpoint": "chat.completions", "status": 200,
            "model": "m", "prompt_tokens": i, "ttft_s": None if i % 2 else 0.5 * i, **extra}  # fmt: skip


def test_insert_replaces_by_request_id_and_reads_windows(db_url):
    store = open_store(db_url)
    insert_requests(store, [_row(i) for i in range(10)])
    insert_requests(store, [_row(3, status=500, error_code="engine_failed")])  # same id: replaced
    window = window_filter(102.0, 106.0, {"model": "m"})
    columns = read_floats(store, ["prompt_tokens", "ttft_s", "status"], window)
    assert sorted(columns["prompt_tokens"]) == [2, 3, 4, 5] and sorted(columns["status"]) == [
        200,
        200,
        200,
        500,
    ]
    counts = count_values(store, ["status", "error_code", "endpoint"], window)
    assert counts == {"status": {"200": 3, "500": 1}, "error_code": {"none": 3, "engine_failed": 1},
                      "endpoint": {"chat.completions": 4}}  # fmt: skip
    ttft = sorted(columns["ttft_s"].tolist(), key=lambda x: (math.isnan(x), x))
    assert ttft[:2] == [1.0, 2.0] and all(math.isnan(x) for x in ttft[2:])
    assert count_above(store, "prompt_tokens", 3, window) == (2, 4)
    assert distinct_values(store, "model", window_filter(0, 1e9)) == ["m"]
    assert read_floats(store, ["e2e_s"], window_filter(0, 1))["e2e_s"].shape == (0,)
    assert count_values(store, ["status"], window_filter(0, 1)) == {"status": {}}
    store.close()


def test_the_request_log_writes_through_the_store(db_url):
    log = RequestLog(db_url, log_prompts=False)
    for i in range(600):  # more than one writer batch
        log.append(RequestRecord(f"q{i}", "completions", model="m", prompt="secret", prompt_tokens=i))
    log.close()
    store = open_store(db_url)
    tokens = read_floats(store, ["prompt_tokens"], window_filter(0, 1e12))["prompt_tokens"]
    assert sorted(tokens) == list(range(600))
    store.close()
    if not db_url.startswith("postgresql"):
        rows = read_rows(db_url, "prompt_tokens < ?", (3,))
        assert [r["request_id"] for r in rows] == ["q0", "q1", "q2"] and rows[0]["prompt"] is None


@pytest.mark.slow  # starts a server
def test_ctxops_serve_logs_to_postgres(postgres, tiny_model_dir, tmp_path):
    import openai

    from serve.serve_helpers import ServerProcess, tiny_args

    url = postgres.new_database()
    server = ServerProcess(tiny_args(tiny_model_dir, "--db", url), tmp_path, "pg").wait_ready()
    try:
        reply = openai.OpenAI(base_url=server.url, api_key="none").completions.create(
            model="tiny", prompt="log me in Postgres", max_tokens=3, user="pat"
        )
    finally:
        server.stop()  # the writer thread flushes on shutdown
    store = open_store(url)
    rows = [r for r in read_requests(store) if r["request_id"] == reply.id]
    store.close()
    assert rows and rows[0]["user"] == "pat" and rows[0]["completion_tokens"] == reply.usage.completion_tokens
    assert not server.log_path.exists()  # --db won over the helper's --request-log file
