"""The endpoint target against a live `ctxops serve` on loopback (no mocks)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    port = _free_port()
    log = (tmp_path_factory.mktemp("serve") / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "ctxops", "serve", str(tiny_model_dir), "--port", str(port),
         "--served-model-name", "tiny", "--kv-cache-memory", "64MiB", "--host", "127.0.0.1"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ctxops serve exited early: {Path(log.name).read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        process.terminate()
        pytest.fail("ctxops serve did not come up in 60 s")
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_endpoint_run_against_ctxops_serve(server, tmp_path, api):
    out = tmp_path / "run"
    args = ["eval", "--endpoint", f"{server}/v1", "--model-name", "tiny", "--api", api, "--tasks",
            "niah_single_1,vt", "--lengths", "1k", "--samples", "2", "--depths", "2", "--out", str(out),
            "--no-progress", "--concurrency", "2"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "ESTIMATED" not in result.output  # ctxops serve has /tokenize
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 4
    for r in records:
        assert r["prompt_tokens"] == r["input_tokens"]  # /tokenize counted exactly what the server saw
        assert r["prompt_tokens"] + r["max_tokens"] <= 1024
        assert r["ttft_s"] is not None and r["e2e_s"] >= r["ttft_s"] and r["output_tokens"] >= 1
    run = json.loads((out / "run.json").read_text())
    assert run["target"]["served_model_name"] == "tiny" and run["target"]["tokenizer"] == "server /tokenize"
    # the chat API carries RULER's answer prefix as an open assistant turn, like the in-process target
    assert run["target"]["answer_prefix"] == ("sent (continue_final_message)" if api == "chat" else "sent")
    assert (out / "report.html").is_file()


def test_endpoint_unknown_model_name(server, tmp_path):
    result = CliRunner().invoke(
        cli, ["eval", "--endpoint", server, "--model-name", "nope", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code != 0 and "does not serve 'nope'" in result.output


class _NoUsageServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible server of the kind that streams text but no usage and has no /tokenize."""

    def do_GET(self):  # noqa: N802 - http.server's name
        self._reply(200, "application/json", json.dumps({"data": [{"id": "stub"}]}).encode())

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        if not self.path.endswith(("/completions", "/chat/completions")):
            self._reply(404, "application/json", b'{"error": {"message": "not found"}}')
            return
        chat = self.path.endswith("/chat/completions")
        chunks = [{"delta": {"content": word}} if chat else {"text": word} for word in ("no", " idea")]
        events = [{"choices": [chunk]} for chunk in chunks]
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        self._reply(200, "text/event-stream", body.encode())

    def _reply(self, status, kind, body):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def no_usage_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NoUsageServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def _stub_eval(url, out, api, *extra):
    args = ["eval", "--endpoint", url, "--model-name", "stub", "--api", api, "--tasks", "niah_single_1",
            "--lengths", "1k", "--samples", "3", "--depths", "1", "--out", str(out), "--no-progress", *extra]  # fmt: skip
    return CliRunner().invoke(cli, args)


def test_samples_without_server_token_counts_are_counted(no_usage_server, tmp_path):
    result = _stub_eval(no_usage_server, tmp_path / "run", "completions")
    assert result.exit_code == 0, result.output
    message = "3 of 3 samples have no token counts from the server"
    assert message in result.stderr and "TPOT leave them out" in result.stderr
    assert "stream_options.include_usage" in result.stderr
    report = CliRunner().invoke(cli, ["report", str(tmp_path / "run")], env={"COLUMNS": "400"})
    assert report.exit_code == 0 and message in " ".join(report.output.split())
    assert message in json.loads((tmp_path / "run" / "summary.json").read_text())["warnings"][0]


def test_compare_names_the_settings_run_json_records_differently(no_usage_server, tmp_path, tiny_model_dir):
    exact = _stub_eval(no_usage_server, tmp_path / "a", "completions", "--tokenizer", str(tiny_model_dir))
    estimated = _stub_eval(no_usage_server, tmp_path / "b", "chat")  # no answer prefix, lengths estimated
    assert exact.exit_code == 0 and estimated.exit_code == 0, exact.output + estimated.output
    result = CliRunner().invoke(
        cli, ["compare", str(tmp_path / "a"), str(tmp_path / "b")], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "target.answer_prefix: 'sent' vs 'omitted (chat API)'" in text
    assert "target.tokenizer: 'local tokenizer" in text and "lengths_exact: True vs False" in text
    assert "3 pairs whose prompts differ (see the recorded differences above)" in text
    assert "different tokenizer or haystack?" not in text
    data = json.loads(
        CliRunner().invoke(cli, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json"]).output
    )
    fields = {d["field"] for d in data["setting_differences"]}
    assert {"target.answer_prefix", "target.api", "target.tokenizer", "lengths_exact"} <= fields
    assert "target.url" not in fields  # the same server: not a difference
