"""The pure parts of the server: routing, config parsing, schema errors, the request-log schema."""

from __future__ import annotations

import collections
import sqlite3

import pytest

from ctxops.serve.config import ServerConfig, UpstreamSpec
from ctxops.serve.errors import APIError
from ctxops.serve.request_log import SCHEMA_VERSION, RequestLog, RequestRecord, read_rows
from ctxops.serve.responses import Endpoint, aggregate, chunk, usage, usage_chunk
from ctxops.serve.routing import rank
from ctxops.serve.schemas import ChatCompletionRequest, CompletionRequest, parse_body


def test_rank_is_sticky_weighted_and_stable():
    nodes, weights = ["a", "b", "c"], [1.0, 1.0, 2.0]
    assert rank(nodes, weights, "alice") == rank(nodes, weights, "alice")
    firsts = collections.Counter(rank(nodes, weights, f"user{i}")[0] for i in range(4000))
    assert 0.45 < firsts[2] / 4000 < 0.55 and 0.2 < firsts[0] / 4000 < 0.3
    moved = sum(
        rank(nodes, weights, f"u{i}")[0] != rank(nodes + ["d"], weights + [1.0], f"u{i}")[0]
        for i in range(2000)
    )
    assert moved / 2000 < 0.3  # adding an upstream moves only the users it wins (about 1/5)
    assert sorted(rank(nodes, weights, None)) == [0, 1, 2]


def test_upstream_spec_parsing():
    spec = UpstreamSpec.parse("http://10.0.0.1:8000,weight=3,model=llama")
    assert (spec.url, spec.weight, spec.model, spec.name) == (
        "http://10.0.0.1:8000/v1",
        3.0,
        "llama",
        "10.0.0.1:8000",
    )
    for bad in ("ftp://x", "http://h:1,weight=0", "http://h:1,colour=red", "http://h:1,weight=abc"):
        with pytest.raises(ValueError):
            UpstreamSpec.parse(bad)


def test_server_config_validation():
    assert ServerConfig(max_body_size="1MiB", request_log="").max_body_size == 2**20
    assert ServerConfig(request_log="").request_log is None
    for kwargs in ({"port": 70000}, {"max_queue": -1}, {"api_keys": ("",)}, {"drain_timeout": -1}):
        with pytest.raises(ValueError):
            ServerConfig(**kwargs)


def test_schema_errors_name_the_field():
    def error(cls, body: bytes) -> APIError:
        with pytest.raises(APIError) as info:
            parse_body(cls, body)
        return info.value

    assert error(CompletionRequest, b"{not json").status == 400
    assert error(CompletionRequest, b'{"prompt": "a"}').param == "model"
    assert error(
        ChatCompletionRequest, b'{"model": "m", "messages": [{"role": "user", "content": 3}]}'
    ).param == ("messages[0].content")
    assert (
        "penalties"
        in error(CompletionRequest, b'{"model": "m", "prompt": "a", "presence_penalty": 1}').message
    )
    parsed = parse_body(CompletionRequest, b'{"model": "m", "prompt": [[1, 2]], "vendor_extra": 1}')
    assert parsed.prompt == [1, 2]


def test_aggregate_folds_chunks():
    chunks = [
        chunk(Endpoint.CHAT, "id", 1, "m", "Hel", first=True),
        chunk(Endpoint.CHAT, "id", 1, "m", "lo", finish_reason="stop"),
        usage_chunk(Endpoint.CHAT, "id", 1, "m", usage(3, 2, 0)),
    ]
    out = aggregate(Endpoint.CHAT, chunks)
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert out["choices"][0]["finish_reason"] == "stop" and out["usage"]["total_tokens"] == 5


def test_request_log_schema_and_privacy(tmp_path):
    path = tmp_path / "log.db"
    log = RequestLog(path, log_prompts=False)
    log.append(
        RequestRecord("r1", "completions", model="m", prompt="secret", output="also secret", status=200)
    )
    log.close()
    rows = read_rows(path)
    assert rows[0]["request_id"] == "r1" and rows[0]["prompt"] is None and rows[0]["output"] is None
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    with_prompts = RequestLog(path, log_prompts=True)  # reopening an existing log keeps its rows
    with_prompts.append(RequestRecord("r2", "completions", prompt="kept"))
    with_prompts.close()
    assert [r["prompt"] for r in read_rows(path)] == [None, "kept"]
