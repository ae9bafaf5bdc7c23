"""Gateway faults with real processes on loopback: what is retried, what is not, and what the books say.

Most upstreams here are a stand-in OpenAI-compatible engine (this file run as a script: ``python
test_gateway_faults.py PORT``) that misbehaves on request, the way a third-party engine can: it answers 500, 503,
429 or 400, hangs, breaks its stream, or streams llama.cpp-style chunks with no usage; it counts what it receives at
``GET /count``. The kill test uses real ``ctxops serve`` upstreams.
"""

from __future__ import annotations

import collections
import contextlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STANDIN_MODEL = "standin"


# ---- the stand-in upstream (runs in its own process) -----------------------------------------------------------
class _StandIn(BaseHTTPRequestHandler):
    """Behaves by the word in the prompt: poison, unavailable, busy, reject, hang, break-early, break, slow."""

    protocol_version = "HTTP/1.1"
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._json(
            status, {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
        )

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": STANDIN_MODEL, "object": "model"}]})
        elif self.path == "/count":
            with self.lock:
                self._json(200, dict(self.counts))
        else:
            self._error(404, "not found")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        chat = "messages" in body
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        kind = prompt.split()[0]
        with self.lock:
            self.counts[kind] += 1
        if kind == "poison":
            return self._error(500, "poison: the engine died running this request")
        if kind == "unavailable":
            return self._error(503, "draining")
        if kind == "busy":
            return self._error(429, "too many requests")
        if kind == "reject":
            return self._json(400, {"error": {"message": "bad field", "type": "invalid_request_error",
                                              "param": "prompt", "code": "invalid_value"}})  # fmt: skip
        if kind == "hang":
            time.sleep(10)
            return self._error(500, "too late")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if kind == "break-early":
            self.close_connection = True  # the headers went out, then the engine died
            return
        count = int(body.get("max_tokens") or 4)
        broken_after = int(prompt.split()[1]) if kind == "break" else None
        # llama.cpp's shapes: a chat stream opens with a role chunk; one chunk per token, with empty text for a
        # token that is not a whole character yet (token 1 here); an end marker carries only the finish reason
        chunks = [{"delta": {"role": "assistant"}}] if chat else []
        for i in range(count):
            text = "" if i == 1 else f"t{i} "
            chunks.append({"delta": {"content": text}} if chat else {"text": text})
        chunks.append(
            {"delta": {}, "finish_reason": "length"} if chat else {"text": "", "finish_reason": "length"}
        )
        for i, fields in enumerate(chunks):
            if i == broken_after:
                self.close_connection = True  # no terminating chunk: a broken transfer
                return
            if kind == "slow":
                time.sleep(0.05)
            item = {"id": "x", "object": "chat.completion.chunk" if chat else "text_completion", "created": 1,
                    "model": STANDIN_MODEL, "choices": [{"index": 0, "finish_reason": None, **fields}]}  # fmt: skip
            try:
                self._chunk(f"data: {json.dumps(item)}\n\n".encode())
            except OSError:  # the gateway hung up
                self.close_connection = True
                return
        self._chunk(b"data: [DONE]\n\n")  # no usage chunk, like llama.cpp's server
        self.wfile.write(b"0\r\n\r\n")


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _StandIn).serve_forever()


# ---- the tests ----------------------------------------------------------------------------------------------------
import signal  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
import openai  # noqa: E402
import pytest  # noqa: E402
from serve_helpers import MODEL_NAME, ServerProcess, free_port, metric, metric_sum, tiny_args  # noqa: E402

from ctxops.serve.request_log import read_rows  # noqa: E402
from ctxops.serve.routing import rank  # noqa: E402

LAUNCHER = [str(Path(__file__).with_name("fault_launcher.py"))]  # the real CLI with an engine fault injected
DIE = 667  # the seed that kills an engine started with CTXOPS_TEST_FAULT=die


class StandIn:
    """The stand-in engine in a subprocess."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.name = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, __file__, str(self.port)])
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/models", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the stand-in upstream did not start")
            time.sleep(0.05)

    def counts(self) -> collections.Counter[str]:
        return collections.Counter(httpx.get(f"http://127.0.0.1:{self.port}/count").json())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def pinned_user(urls: list[str], target: int) -> str:
    """A ``user`` whose first choice among ``urls`` (equal weights) is ``urls[target]``."""
    return next(f"user-{i}" for i in range(1000) if rank(urls, [1.0] * len(urls), f"user-{i}")[0] == target)


def log_rows(proc: ServerProcess, where: str, params: tuple, count: int = 1) -> list[dict]:
    deadline = time.monotonic() + 5
    rows: list = []
    while len(rows) < count and time.monotonic() < deadline:
        rows = read_rows(proc.log_path, where, params)
        time.sleep(0.05)
    return rows


@pytest.fixture(scope="module")
def standins():
    pair = (StandIn(), StandIn())
    yield pair
    for standin in pair:
        standin.stop()


@pytest.fixture(scope="module")
def faulty_gateway(standins, serve_dir):
    """Two stand-in upstreams, no sticky key (random order), a 2 s upstream timeout."""
    args = ["--served-model-name", "gw-f", "--upstream-timeout", "2"]
    for standin in standins:
        args += ["--upstream", f"{standin.url},model={STANDIN_MODEL}"]
    proc = ServerProcess(args, serve_dir, "gw-faults").wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def faulty(faulty_gateway):
    return openai.OpenAI(base_url=faulty_gateway.url, api_key="x", max_retries=0)


def total(standins, kind: str) -> int:
    return sum(s.counts()[kind] for s in standins)


def test_a_request_an_upstream_failed_on_is_not_replayed(faulty, faulty_gateway, standins):
    with pytest.raises(openai.InternalServerError) as info:
        faulty.completions.create(model="gw-f", prompt="poison pill", max_tokens=3, user="poisoner")
    assert info.value.status_code == 502 and "poison: the engine died" in info.value.message
    assert total(standins, "poison") == 1  # one engine got it, not both
    (row,) = log_rows(faulty_gateway, "user = ?", ("poisoner",))
    assert row["status"] == 502 and row["upstream"] in {s.name for s in standins}
    assert metric(faulty_gateway.metrics(), "ctxops:upstream_requests_total", upstream=row["upstream"],
                  outcome="failed") >= 1  # fmt: skip


@pytest.mark.parametrize("word", ["hang", "break-early"])
def test_a_request_sent_but_unanswered_is_not_replayed(faulty, standins, word):
    with pytest.raises(openai.APIStatusError) as info:
        faulty.completions.create(model="gw-f", prompt=f"{word} now", max_tokens=3)
    assert info.value.status_code == (504 if word == "hang" else 502)
    assert total(standins, word) == 1


def test_refusals_go_to_the_next_upstream_and_rejections_come_back(faulty, standins):
    for word in ("unavailable", "busy"):  # 503 and 429: refused unrun, so the other upstream is asked
        with pytest.raises(openai.InternalServerError, match="every upstream failed"):
            faulty.completions.create(model="gw-f", prompt=f"{word} here", max_tokens=3)
        assert [s.counts()[word] for s in standins] == [1, 1]
    with pytest.raises(openai.BadRequestError) as info:
        faulty.completions.create(model="gw-f", prompt="reject this", max_tokens=3)
    assert info.value.code == "invalid_value" and info.value.param == "prompt"
    assert total(standins, "reject") == 1


def test_usage_is_counted_when_the_upstream_sends_none(faulty, faulty_gateway):
    """A llama.cpp-style upstream streams one token a chunk and no usage: the gateway counts and says so."""
    reply = faulty.completions.create(model="gw-f", prompt="plain text", max_tokens=5, user="counted-plain")
    assert reply.choices[0].text == "t0 t2 t3 t4 "
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    assert reply.usage.prompt_tokens is None and reply.usage.model_extra["usage_source"] == "counted"
    chat = faulty.chat.completions.create(
        model="gw-f", messages=[{"role": "user", "content": "chat please"}], max_tokens=3, stream=True,
        stream_options={"include_usage": True}, user="counted-chat",
    )  # fmt: skip
    chunks = list(chat)
    assert chunks[-1].usage.completion_tokens == 3 and not chunks[-1].choices
    assert all(c.usage is None for c in chunks[:-1])
    for user, tokens in (("counted-plain", 5), ("counted-chat", 3)):
        (row,) = log_rows(faulty_gateway, "user = ?", (user,))
        assert (
            row["completion_tokens"] == tokens and row["status"] == 200 and row["finish_reason"] == "length"
        )


def test_a_stream_broken_mid_answer_is_a_failure_with_its_tokens_logged(faulty, faulty_gateway, standins):
    before = faulty_gateway.metrics()
    with httpx.stream(
        "POST", faulty_gateway.url + "/completions", timeout=10,
        json={"model": "gw-f", "prompt": "break 3", "max_tokens": 8, "stream": True, "user": "broken"},
    ) as response:  # fmt: skip
        assert response.status_code == 200
        events = [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]
    assert [json.loads(e)["choices"][0]["text"] for e in events[:3]] == ["t0 ", "", "t2 "]
    assert json.loads(events[-1])["error"]["code"] == "upstream_error" and "[DONE]" not in events
    (row,) = log_rows(faulty_gateway, "user = ?", ("broken",))
    assert row["status"] == 502 and row["completion_tokens"] == 3 and row["finish_reason"] == "abort"
    after = faulty_gateway.metrics()
    name = row["upstream"]
    failed = "ctxops:upstream_requests_total"
    assert metric_sum(after, failed, upstream=name, outcome="failed") == (
        metric_sum(before, failed, upstream=name, outcome="failed") + 1
    )
    assert metric_sum(after, failed, outcome="ok") == metric_sum(before, failed, outcome="ok")  # not ok
    assert total(standins, "break") == 1


def test_a_client_that_hangs_up_is_counted_as_aborted(faulty_gateway):
    before = metric_sum(faulty_gateway.metrics(), "ctxops:upstream_requests_total", outcome="aborted")
    with httpx.stream(
        "POST", faulty_gateway.url + "/completions", timeout=10,
        json={"model": "gw-f", "prompt": "slow stream", "max_tokens": 200, "stream": True, "user": "leaver"},
    ) as response:  # fmt: skip
        received = 0
        for line in response.iter_lines():
            received += line.startswith("data:")
            if received == 3:
                break  # hang up after three chunks
    (row,) = log_rows(faulty_gateway, "user = ?", ("leaver",))
    assert row["finish_reason"] == "abort" and 3 <= row["completion_tokens"] < 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        after = metric_sum(faulty_gateway.metrics(), "ctxops:upstream_requests_total", outcome="aborted")
        if after == before + 1:
            break
        time.sleep(0.05)
    assert after == before + 1


def test_a_dead_upstream_is_skipped_once_its_circuit_opens(standins, serve_dir):
    """A user pinned to a dead upstream pays for it 5 times, then the breaker ranks it last."""
    live = standins[0]
    dead = f"http://127.0.0.1:{free_port()}/v1"
    gateway = ServerProcess(
        ["--upstream", f"{live.url},model={STANDIN_MODEL}", "--upstream", f"{dead},model={STANDIN_MODEL}",
         "--served-model-name", "gw-b"], serve_dir, "gw-breaker",
    ).wait_ready()  # fmt: skip
    try:
        user = pinned_user([live.url, dead], 1)
        client = openai.OpenAI(base_url=gateway.url, api_key="x", max_retries=0)
        for _ in range(8):
            raw = client.completions.with_raw_response.create(
                model="gw-b", prompt="plain", max_tokens=1, user=user
            )
            assert raw.headers["x-ctxops-upstream"] == live.name
        values = gateway.metrics()
        dead_name = dead.removeprefix("http://").removesuffix("/v1")
        assert metric_sum(values, "ctxops:upstream_requests_total", upstream=dead_name) == 5
        assert metric(values, "ctxops:upstream_circuit_open", upstream=dead_name) == 1
        assert metric(values, "ctxops:upstream_circuit_open", upstream=live.name) == 0
        assert f"upstream {dead_name}: circuit open after 5 failures in a row" in gateway.output.read_text()
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def doomed(tiny_model_dir, serve_dir):
    """Real ctxops upstreams that do not survive their test, started together: one to SIGKILL, and one whose
    engine dies on a request with seed 667 (``fault_launcher.py``)."""
    common = tiny_args(tiny_model_dir, "--drain-timeout", "2")
    procs = {
        "victim": ServerProcess(common, serve_dir, "victim"),
        "dying": ServerProcess(
            common, serve_dir, "dying", launcher=LAUNCHER, env={"CTXOPS_TEST_FAULT": "die"}
        ),
    }
    yield procs
    for proc in procs.values():
        proc.stop()


@pytest.mark.slow
def test_a_request_that_kills_an_engine_reaches_no_other(doomed, request, serve_dir):
    """The original bug: replayed on a 5xx, one poison request took down every upstream behind the gateway."""
    dying = doomed["dying"].wait_ready()
    second_server = request.getfixturevalue("second_server")
    gateway = ServerProcess(
        ["--upstream", f"{dying.url},model={MODEL_NAME}", "--upstream", f"{second_server.url},model={MODEL_NAME}",
         "--served-model-name", "gw-d"], serve_dir, "gw-die",
    ).wait_ready()  # fmt: skip
    try:
        user = pinned_user([dying.url, second_server.url], 0)
        client = openai.OpenAI(base_url=gateway.url, api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            client.completions.create(model="gw-d", prompt="fatal", max_tokens=4, seed=DIE, user=user)
        assert info.value.status_code == 502
        assert dying.proc.wait(30) != 0  # that engine died and its server exited for a restart
        assert httpx.get(second_server.base + "/health").status_code == 200
        assert not read_rows(second_server.log_path, "user = ?", (user,))  # never replayed there
        raw = client.completions.with_raw_response.create(
            model="gw-d", prompt="next", max_tokens=2, user=user
        )
        assert raw.headers["x-ctxops-upstream"] == second_server.base[7:]
        values = gateway.metrics()
        dead = dying.base[7:]
        assert metric(values, "ctxops:upstream_requests_total", upstream=dead, outcome="failed") == 1
        assert metric(values, "ctxops:upstream_requests_total", upstream=dead, outcome="retried") == 1
    finally:
        gateway.stop()


@pytest.mark.slow
def test_an_upstream_killed_mid_stream(doomed, request, serve_dir):
    """SIGKILL the upstream while it streams: an error event ends the stream; the next request goes elsewhere."""
    victim = doomed["victim"].wait_ready()
    second_server = request.getfixturevalue("second_server")
    urls = [victim.url, second_server.url]
    gateway = ServerProcess(
        ["--upstream", f"{victim.url},model={MODEL_NAME}", "--upstream", f"{second_server.url},model={MODEL_NAME}",
         "--served-model-name", "gw-k"], serve_dir, "gw-kill",
    ).wait_ready()  # fmt: skip
    try:
        user = pinned_user(urls, 0)
        body = {"model": "gw-k", "prompt": "a long answer", "max_tokens": 3500, "ignore_eos": True,
                "stream": True, "user": user}  # fmt: skip
        events = []
        with httpx.stream("POST", gateway.url + "/completions", json=body, timeout=30) as response:
            assert response.status_code == 200 and response.headers["x-ctxops-upstream"] == victim.base[7:]
            for line in response.iter_lines():
                if line.startswith("data:"):
                    events.append(line[5:].strip())
                    if len(events) == 1:
                        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        error = json.loads(events[-1])["error"]
        assert (
            error["type"] == "server_error" and error["code"] == "upstream_error" and "[DONE]" not in events
        )
        sent = [text for e in events[:-1] if (text := json.loads(e)["choices"][0]["text"])]
        assert 1 <= len(sent) < 3500
        assert httpx.get(gateway.base + "/health").status_code == 200
        client = openai.OpenAI(base_url=gateway.url, api_key="x", max_retries=0)
        raw = client.completions.with_raw_response.create(
            model="gw-k", prompt="next", max_tokens=2, user=user
        )
        assert raw.headers["x-ctxops-upstream"] == second_server.base[7:]
        assert raw.parse().usage.completion_tokens == 2
        values = gateway.metrics()
        victim_name = victim.base[7:]
        assert metric(values, "ctxops:upstream_requests_total", upstream=victim_name, outcome="failed") == 1
        assert metric(values, "ctxops:upstream_requests_total", upstream=victim_name, outcome="retried") == 1
        assert metric(values, "ctxops:request_errors_total", status="502") == 1
        rows = log_rows(gateway, "user = ?", (user,), count=2)
        failed = next(r for r in rows if r["status"] == 502)
        assert failed["upstream"] == victim_name and failed["completion_tokens"] >= len(sent) >= 1
        assert failed["finish_reason"] == "abort"
    finally:
        gateway.stop()
        victim.stop()
