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
    with pytest.raises(ValueError, match="key_env=VAR, max_concurrency=N"):
        UpstreamSpec.parse("http://h:1,colour=red")


def test_upstream_key_and_concurrency(monkeypatch):
    monkeypatch.delenv("CTXOPS_UNIT_KEY", raising=False)
    with pytest.raises(ValueError, match="CTXOPS_UNIT_KEY.*not set"):
        UpstreamSpec.parse("http://h:1,key_env=CTXOPS_UNIT_KEY")
    monkeypatch.setenv("CTXOPS_UNIT_KEY", "sk-secret")
    spec = UpstreamSpec.parse("http://h:1,key_env=CTXOPS_UNIT_KEY,max_concurrency=3")
    assert (spec.api_key, spec.max_concurrency, spec.key_env) == ("sk-secret", 3, "CTXOPS_UNIT_KEY")
    assert "sk-secret" not in repr(spec)  # the spec holds the variable's name, never the key
    assert UpstreamSpec.parse("http://h:1").max_concurrency == 64
    for bad in ("http://h:1,max_concurrency=0", "http://h:1,max_concurrency=two"):
        with pytest.raises(ValueError, match="max_concurrency"):
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


def test_full_upstreams_go_last_in_a_users_ranking():
    from types import SimpleNamespace

    from ctxops.serve.backends.upstream import UpstreamBackend
    from ctxops.serve.request_log import RequestRecord

    specs = tuple(UpstreamSpec.parse(f"http://10.0.0.{i}:8000,max_concurrency=2") for i in range(1, 4))
    backend = UpstreamBackend(specs, "gw")
    assert backend.capacity == 6
    record = RequestRecord(request_id="r", endpoint="completions")
    request = SimpleNamespace(user="alice")
    first, *rest = backend._order(request, record)
    backend.in_flight[first.url] = (
        2  # alice's upstream is full: she goes to her next one, the full one is last
    )
    assert backend._order(request, record) == [*rest, first]
    backend.in_flight[first.url] = 1
    assert backend._order(request, record)[0] == first  # a free slot: sticky again
