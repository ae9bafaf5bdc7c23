"""Auth, the in-flight cap (429 with Retry-After) and the SIGTERM drain, on a real server with one slot."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import openai
import pytest
from serve_helpers import MODEL_NAME

from ctxops.serve.auth import key_id
from ctxops.serve.request_log import read_rows

LONG = {"model": MODEL_NAME, "prompt": "a long one", "max_tokens": 1500, "stream": True, "ignore_eos": True}


def test_auth(limited_server):
    anonymous = openai.OpenAI(base_url=limited_server.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        anonymous.completions.create(model=MODEL_NAME, prompt="a", max_tokens=1)
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    missing = httpx.post(limited_server.url + "/completions", json={"model": MODEL_NAME, "prompt": "a"})
    assert missing.status_code == 401 and "Missing API key" in missing.json()["error"]["message"]
    assert httpx.get(limited_server.url + "/models").status_code == 401
    for key in ("sk-one", "sk-two"):
        client = openai.OpenAI(base_url=limited_server.url, api_key=key, max_retries=0)
        reply = client.completions.create(model=MODEL_NAME, prompt="a", max_tokens=2)
        assert reply.usage.completion_tokens == 2
    wanted = {key_id("sk-one"), key_id("sk-two")}
    deadline = time.monotonic() + 5
    while not {r["key_id"] for r in read_rows(limited_server.log_path, "status = 200")} >= wanted:
        assert time.monotonic() < deadline, "the request log never showed both key ids"
        time.sleep(0.05)
    assert all("sk-" not in (r["key_id"] or "") for r in read_rows(limited_server.log_path))
    assert httpx.get(limited_server.base + "/health").status_code == 200  # load balancers probe without a key
    # /metrics shows traffic (and a gateway's upstream hosts): with keys set it needs one, as /openapi.json does
    for path in ("/metrics", "/openapi.json"):
        assert httpx.get(limited_server.base + path).status_code == 401
        assert (
            httpx.get(limited_server.base + path, headers={"Authorization": "Bearer sk-two"}).status_code
            == 200
        )


def test_queue_full_is_429_then_sigterm_drains(limited_server):
    headers = {"Authorization": "Bearer sk-one"}
    client = openai.OpenAI(base_url=limited_server.url, api_key="sk-one", max_retries=0)
    lines: list[str] = []
    with httpx.stream(
        "POST", limited_server.url + "/completions", json=LONG, headers=headers, timeout=60
    ) as stream:
        iterator = stream.iter_lines()
        lines.append(next(iterator))  # the one slot is now taken
        refused = httpx.post(
            limited_server.url + "/completions", json={"model": MODEL_NAME, "prompt": "b"}, headers=headers
        )
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["code"] == "queue_full"
        with pytest.raises(openai.RateLimitError):
            client.completions.create(model=MODEL_NAME, prompt="b", max_tokens=1)

        limited_server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while httpx.get(limited_server.base + "/health").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        draining = httpx.post(
            limited_server.url + "/completions", json={"model": MODEL_NAME, "prompt": "c"}, headers=headers
        )
        assert draining.status_code == 503 and draining.json()["error"]["code"] == "draining"
        assert "Retry-After" in draining.headers
        lines.extend(iterator)  # the in-flight stream still runs to the end
    events = [line for line in lines if line.startswith("data:")]
    assert events[-1] == "data: [DONE]"
    assert '"finish_reason":"length"' in events[-2]
    assert limited_server.proc.wait(timeout=20) == 0


def test_starting_is_503(tiny_model_dir, tmp_path):
    """An in-process server whose model is still loading answers 503 (and /health says so) on a real socket."""
    import asyncio

    import uvicorn
    from serve_helpers import free_port

    from ctxops.engine.config import EngineConfig
    from ctxops.serve.app import create_app
    from ctxops.serve.backends.embedded import EmbeddedBackend
    from ctxops.serve.config import ServerConfig

    release = threading.Event()

    class SlowStart(EmbeddedBackend):
        async def start(self) -> None:
            await asyncio.to_thread(release.wait, 30)
            await super().start()

    port = free_port()
    config = ServerConfig(port=port, request_log=str(tmp_path / "log.db"))
    backend = SlowStart(EngineConfig(model=str(tiny_model_dir), kv_cache_memory="32MiB"), MODEL_NAME)
    server = uvicorn.Server(uvicorn.Config(create_app(config, backend), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        health = httpx.get(base + "/health")
        assert health.status_code == 503 and health.json()["status"] == "starting"
        client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.completions.create(model=MODEL_NAME, prompt="a", max_tokens=1)
        assert info.value.status_code == 503 and info.value.code == "starting"
        release.set()
        while httpx.get(base + "/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (
            client.completions.create(model=MODEL_NAME, prompt="a", max_tokens=1).usage.completion_tokens == 1
        )
    finally:
        release.set()
        server.should_exit = True
        thread.join(15)
