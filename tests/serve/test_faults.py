"""Faults in real server processes: a request that fails in the engine costs only itself; a dead engine exits 1.

The servers run the production CLI with one fault injected into the engine (``fault_launcher.py``); clients are the
official ``openai`` package and httpx over loopback.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import openai
import pytest
from serve_helpers import MODEL_NAME, ServerProcess, metric, tiny_args

from ctxops.serve.request_log import read_rows

LAUNCHER = [str(Path(__file__).with_name("fault_launcher.py"))]
FAIL_AT_FIRST, DIE, FAIL_AT_FOURTH = 666, 667, 668
PROMPTS = ["one prompt", "another prompt, a little longer", "three", "and the fourth"]


def _server(tiny_model_dir, serve_dir, name: str, fault: str) -> ServerProcess:
    args = tiny_args(tiny_model_dir, "--drain-timeout", "5")
    return ServerProcess(args, serve_dir, name, launcher=LAUNCHER, env={"CTXOPS_TEST_FAULT": fault})


@pytest.fixture(scope="module")
def faulty_server(tiny_model_dir, serve_dir):
    server = _server(tiny_model_dir, serve_dir, "faulty", "sample").wait_ready()
    yield server
    server.stop()


def _rows(server: ServerProcess, where: str) -> list[dict]:
    """Request-log rows matching ``where``, waiting for the log's writer thread to commit them (up to 10 s)."""
    deadline = time.monotonic() + 10
    while not (rows := read_rows(server.log_path, where)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows, f"no request-log row where {where}"
    return rows


async def _stream(client: openai.AsyncOpenAI, prompt: str, seed: int) -> tuple[str, str | None]:
    stream = await client.completions.create(
        model=MODEL_NAME, prompt=prompt, max_tokens=16, temperature=0.8, seed=seed, stream=True,
        extra_body={"ignore_eos": True},
    )  # fmt: skip
    text, reason = "", None
    async for chunk in stream:
        text += chunk.choices[0].text
        reason = chunk.choices[0].finish_reason or reason
    return text, reason


def test_a_failing_request_costs_only_itself(faulty_server):
    async def run(poison: int | None):
        async with openai.AsyncOpenAI(base_url=faulty_server.url, api_key="x", max_retries=0) as client:
            jobs = [_stream(client, p, 7) for p in PROMPTS]
            if poison is not None:
                jobs.insert(1, _stream(client, "poison", poison))
            return await asyncio.gather(*jobs, return_exceptions=True)

    clean = asyncio.run(run(None))
    mixed = asyncio.run(run(FAIL_AT_FIRST))
    failure = mixed.pop(1)
    assert isinstance(failure, openai.InternalServerError), failure  # before its first token: a 500 response
    assert failure.status_code == 500 and failure.body["code"] == "request_failed"
    assert "injected fault" in failure.body["message"]
    assert mixed == clean and all(reason == "length" for _, reason in mixed)  # the others, token for token

    values = faulty_server.metrics()
    assert metric(values, "ctxops:kv_cache_usage_perc") == 0.0
    assert metric(values, "ctxops:num_requests_running") == 0.0
    assert metric(values, "ctxops:engine_healthy") == 1.0
    assert metric(values, "ctxops:request_errors_total", status="500") >= 1
    assert httpx.get(faulty_server.base + "/health").json() == {"status": "ready"}
    rows = _rows(faulty_server, "error_code = 'request_failed'")
    assert rows[-1]["status"] == 500


def test_a_request_failing_mid_stream_ends_with_an_error_event(faulty_server):
    body = {"model": MODEL_NAME, "prompt": "fails later", "max_tokens": 16, "temperature": 0.8,
            "seed": FAIL_AT_FOURTH, "stream": True, "ignore_eos": True}  # fmt: skip
    with httpx.stream("POST", faulty_server.url + "/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        events = [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]
    texts = [json.loads(e)["choices"][0]["text"] for e in events[:-1]]
    assert len(texts) == 3  # three tokens made it out, one chunk each
    error = json.loads(events[-1])["error"]
    assert error["code"] == "request_failed" and "injected fault" in error["message"]
    rows = _rows(faulty_server, "status = 500 AND completion_tokens IS NOT NULL")
    assert rows[-1]["completion_tokens"] == 3  # the log counts what was sent
    after = httpx.post(
        faulty_server.url + "/completions", json={**body, "seed": 1, "stream": False}, timeout=30
    )
    assert after.status_code == 200 and after.json()["usage"]["completion_tokens"] == 16


def test_a_dead_engine_fails_in_flight_requests_and_exits_1(tiny_model_dir, serve_dir):
    server = _server(tiny_model_dir, serve_dir, "dying", "die").wait_ready()
    try:

        async def run():
            async with openai.AsyncOpenAI(base_url=server.url, api_key="x", max_retries=0) as client:
                jobs = [_stream(client, "bystander", 7), _stream(client, "killer", DIE)]
                return await asyncio.gather(*jobs, return_exceptions=True)

        results = asyncio.run(run())
        # a 503 before the first chunk, an error event after it (the bystander may have started streaming)
        assert all(isinstance(r, openai.APIError) and "The engine failed" in r.message for r in results), (
            results
        )
        assert server.proc.wait(timeout=30) == 1  # drained, then exited for a supervisor to restart it
    finally:
        server.stop()
    output = server.output.read_text()
    assert "the engine died" in output and "scheduler state corrupt" in output
    assert "Traceback" not in output.split("the engine died")[1]  # one clear line, not a stack dump after it
