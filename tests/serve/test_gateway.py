"""Gateway mode against real upstreams: two `ctxops serve` processes and one dead address, on loopback."""

from __future__ import annotations

import collections
import time

import httpx
import openai
import pytest
from serve_helpers import MODEL_NAME, ServerProcess, free_port, metric_sum

from ctxops.serve.request_log import read_rows


@pytest.fixture(scope="module")
def gateway(main_server, second_server, serve_dir):
    dead = f"http://127.0.0.1:{free_port()}/v1,model={MODEL_NAME}"
    args = [
        "--upstream", main_server.url, "--upstream", f"{second_server.url},weight=1", "--upstream", dead,
        "--served-model-name", "tiny-gw", "--api-key", "gw-key", "--upstream-timeout", "30",
    ]  # fmt: skip
    proc = ServerProcess(args, serve_dir, "gateway").wait_ready()
    yield proc
    proc.stop()


def gateway_metrics(gateway: ServerProcess) -> dict[str, float]:
    """The gateway's `/metrics` (it has API keys, so the scrape sends one) as {name{labels}: value}."""
    text = httpx.get(gateway.base + "/metrics", headers={"Authorization": "Bearer gw-key"}).text
    return {
        key: float(value)
        for line in text.splitlines()
        if line and not line.startswith("#")
        for key, _, value in [line.rpartition(" ")]
    }


@pytest.fixture(scope="module")
def client(gateway):
    return openai.OpenAI(base_url=gateway.url, api_key="gw-key", max_retries=0)


def test_chat_and_stream_through_the_gateway(client, main_server):
    messages = [{"role": "user", "content": "via the gateway"}]
    direct = openai.OpenAI(base_url=main_server.url, api_key="x").chat.completions.create(
        model=MODEL_NAME, messages=messages, max_tokens=10, temperature=0.0
    )
    reply = client.chat.completions.create(model="tiny-gw", messages=messages, max_tokens=10, temperature=0.0)
    assert reply.model == "tiny-gw" and reply.choices[0].message.content == direct.choices[0].message.content
    assert reply.usage.completion_tokens == direct.usage.completion_tokens
    chunks = list(
        client.completions.create(
            model="tiny-gw", prompt="stream", max_tokens=6, temperature=0.0, stream=True,
            stream_options={"include_usage": True}, extra_body={"ignore_eos": True},
        )
    )  # fmt: skip
    assert chunks[-1].usage.completion_tokens == 6 and all(c.model == "tiny-gw" for c in chunks)


def test_sticky_by_user_weighted_and_failover(client, gateway):
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for user in [f"user-{i}" for i in range(24)]:
        for _ in range(2):
            raw = client.completions.with_raw_response.create(
                model="tiny-gw", prompt="hi", max_tokens=1, user=user
            )
            seen[user].add(raw.headers["x-ctxops-upstream"])
            assert (
                raw.parse().usage.completion_tokens == 1
            )  # users pinned to the dead upstream still get answers
    assert all(len(upstreams) == 1 for upstreams in seen.values())  # sticky
    assert len(set().union(*seen.values())) == 2  # both live upstreams get users
    values = gateway_metrics(gateway)
    assert metric_sum(values, "ctxops:upstream_requests_total", outcome="retried") >= 1
    assert metric_sum(values, "ctxops:upstream_requests_total", outcome="ok") >= 48


def test_gateway_errors_and_auth(client, gateway):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="tiny-gw", prompt="x", max_tokens=9000)
    assert info.value.code == "context_length_exceeded"  # the upstream's 400, passed through
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model=MODEL_NAME, prompt="x")
    assert (
        httpx.post(gateway.url + "/completions", json={"model": "tiny-gw", "prompt": "x"}).status_code == 401
    )
    tok = httpx.post(
        gateway.base + "/tokenize", json={"prompt": "abc"}, headers={"Authorization": "Bearer gw-key"}
    )
    assert tok.status_code == 200 and tok.json()["count"] >= 1


def test_gateway_request_log(client, gateway):
    reply = client.completions.create(
        model="tiny-gw", prompt="logged", max_tokens=3, user="dave", extra_body={"ignore_eos": True}
    )  # without ignore_eos a sampled end-of-text could cut the answer short of 3 tokens
    deadline = time.monotonic() + 5
    rows: list = []
    while not rows and time.monotonic() < deadline:
        rows = read_rows(gateway.log_path, "request_id = ?", (reply.id,))
        time.sleep(0.05)
    assert rows, "no gateway log row"
    row = rows[0]
    assert row["upstream"] and row["user"] == "dave" and row["key_id"]
    assert row["prompt_tokens"] == reply.usage.prompt_tokens and row["completion_tokens"] == 3
    assert row["ttft_s"] is not None and row["finish_reason"] == "length"


def _rows(path, where: str, params: tuple) -> list:
    deadline = time.monotonic() + 5
    rows: list = []
    while not rows and time.monotonic() < deadline:
        rows = read_rows(path, where, params)
        time.sleep(0.05)
    return rows


def test_tokenizer_calls_are_logged(gateway):
    headers = {"Authorization": "Bearer gw-key"}
    tok = httpx.post(gateway.base + "/tokenize", json={"prompt": "count these words"}, headers=headers).json()
    httpx.post(
        gateway.base + "/detokenize", json={"tokens": tok["tokens"][:2]}, headers=headers
    ).raise_for_status()
    bad = httpx.post(gateway.base + "/detokenize", json={"tokens": "nope"}, headers=headers)
    assert bad.status_code == 400
    counted = _rows(gateway.log_path, "endpoint = ? AND prompt_tokens = ?", ("tokenize", tok["count"]))
    assert counted and counted[0]["status"] == 200 and counted[0]["key_id"] and counted[0]["e2e_s"] >= 0
    decoded = _rows(gateway.log_path, "endpoint = ? AND status = ?", ("detokenize", 200))
    assert decoded and decoded[0]["prompt_tokens"] == 2
    assert _rows(gateway.log_path, "endpoint = ? AND status = ?", ("detokenize", 400))


def test_gateway_sends_its_own_upstream_key(limited_server, serve_dir, monkeypatch):
    """The upstream wants sk-one; the gateway reads it from an environment variable and never writes it down."""
    monkeypatch.setenv("CTXOPS_TEST_UPSTREAM_KEY", "sk-one")
    upstream = f"{limited_server.url},model={MODEL_NAME},key_env=CTXOPS_TEST_UPSTREAM_KEY,max_concurrency=1"
    keyed = ServerProcess(["--upstream", upstream, "--served-model-name", "keyed"], serve_dir, "keyed")
    keyless = ServerProcess(
        ["--upstream", f"{limited_server.url},model={MODEL_NAME}", "--served-model-name", "keyless"],
        serve_dir,
        "keyless",
    )
    try:
        keyed.wait_ready()
        keyless.wait_ready()
        reply = openai.OpenAI(base_url=keyed.url, api_key="x", max_retries=0).completions.create(
            model="keyed", prompt="with a key", max_tokens=2
        )
        assert reply.usage.completion_tokens == 2
        with pytest.raises(openai.AuthenticationError):  # the upstream's 401, passed back
            openai.OpenAI(base_url=keyless.url, api_key="x", max_retries=0).completions.create(
                model="keyless", prompt="without", max_tokens=2
            )
        assert _rows(keyed.log_path, "request_id = ?", (reply.id,))
    finally:
        keyed.stop()
        keyless.stop()
    assert "sk-one" not in keyed.output.read_text()
    assert b"sk-one" not in keyed.log_path.read_bytes()
