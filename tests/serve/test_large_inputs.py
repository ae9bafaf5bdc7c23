"""Large bodies under the size limit are refused fast and never stall other clients (a real server on loopback).

A user measured a 20 MB chat body taking 196 s to refuse while ``/health`` took 34.5 s; the bounds below are loose
on purpose (this is a correctness test on a shared 2-core machine, not a benchmark).
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from serve_helpers import KV, MODEL_NAME, ServerProcess

TWENTY_MB = 20 * 10**6


@pytest.fixture(scope="module")
def big_server(tiny_model_dir, serve_dir):
    args = [str(tiny_model_dir), "--served-model-name", MODEL_NAME, "--kv-cache-memory", KV]
    server = ServerProcess(args, serve_dir, "big").wait_ready()
    yield server
    server.stop()


def _bodies() -> dict[str, tuple[str, bytes]]:
    words = "lorem ipsum dolor sit amet " * (TWENTY_MB // 27)
    return {
        "chat": ("/v1/chat/completions", {"model": MODEL_NAME, "messages": [{"role": "user", "content": words}]}),
        "text": ("/v1/completions", {"model": MODEL_NAME, "prompt": words, "max_tokens": 4}),
        "one word": ("/v1/completions", {"model": MODEL_NAME, "prompt": "a" * TWENTY_MB}),
        "token ids": ("/v1/completions", {"model": MODEL_NAME, "prompt": [5] * (TWENTY_MB // 3)}),
        "tokenize": ("/tokenize", {"model": MODEL_NAME, "prompt": words}),
    }  # fmt: skip


@pytest.mark.parametrize("kind", list(_bodies()))
def test_twenty_megabytes_are_refused_fast_while_health_answers(big_server, kind):
    path, body = _bodies()[kind]
    raw = json.dumps(body).encode()
    assert len(raw) < 32 * 2**20  # under the default body limit: this is about what happens after reading it
    health_s: list[float] = []
    done = threading.Event()

    def poll_health():
        with httpx.Client(base_url=big_server.base, timeout=60) as client:
            while not done.is_set():
                start = time.perf_counter()
                assert client.get("/health").status_code == 200
                health_s.append(time.perf_counter() - start)
                time.sleep(0.02)

    poller = threading.Thread(target=poll_health)
    poller.start()
    start = time.perf_counter()
    try:
        reply = httpx.post(
            big_server.base + path, content=raw, headers={"content-type": "application/json"}, timeout=120
        )
    finally:
        done.set()
        poller.join()
    elapsed = time.perf_counter() - start
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == "context_length_exceeded"
    assert elapsed < 20, f"refused after {elapsed:.1f} s"
    assert health_s and max(health_s) < 2.0, f"/health took up to {max(health_s):.2f} s during the request"
    ok = httpx.post(
        big_server.url + "/completions", json={"model": MODEL_NAME, "prompt": "hi", "max_tokens": 2}
    )
    assert ok.status_code == 200
