"""llama.cpp's server (``python -m llama_cpp.server``) as a gateway upstream and as an eval target, on loopback.

The GGUF is converted from the tiny random-weight Llama the other tests use by ``gguf_models.convert_to_gguf`` (the
``gguf`` package's writer; shared with the GGUF import tests). Needs the ``[bench]`` extra
(``llama-cpp-python[server]``); skipped without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from click.testing import CliRunner
from serve_helpers import ServerProcess, free_port

from ctxops.cli.main import cli
from ctxops.serve.request_log import read_rows
from gguf_models import convert_to_gguf

pytestmark = pytest.mark.llama_cpp
pytest.importorskip("llama_cpp.server")

ALIAS = "tiny-gguf"


class LlamaCppServer:
    """``python -m llama_cpp.server`` on a free loopback port."""

    def __init__(self, model: Path, workdir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/v1"
        self.output = workdir / "llama_cpp.out"
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", ALIAS,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "4096", "--n_threads", "1"]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdout=self.output.open("w"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited:\n{self.output.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/models", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"llama_cpp.server not ready:\n{self.output.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def gguf_path(tiny_model_dir, tmp_path_factory) -> Path:
    return convert_to_gguf(tiny_model_dir, tmp_path_factory.mktemp("gguf") / "tiny-f32.gguf")


@pytest.fixture(scope="module")
def llama_server(gguf_path, serve_dir):
    server = LlamaCppServer(gguf_path, serve_dir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def llama_gateway(llama_server, serve_dir):
    proc = ServerProcess(
        ["--upstream", f"{llama_server.url},model={ALIAS}", "--served-model-name", "gw-llama"],
        serve_dir,
        "gw-llama",
    ).wait_ready()
    yield proc
    proc.stop()


@pytest.mark.parametrize("embeddings", ["untied", "tied"])
def test_the_converted_gguf_matches_the_model(tiny_model_dir, gguf_path, tmp_path, embeddings):
    """llama.cpp greedy-decodes the same tokens as ctxops from the same weights (so the conversion is right)."""
    from llama_cpp import Llama

    from ctxops import LLM, SamplingParams
    from hf_models import make_hf_model

    if embeddings == "tied":  # no lm_head tensor: llama.cpp reuses token_embd, as ctxops reuses embed_tokens
        model_dir = make_hf_model(tmp_path / "tied", "llama3.2-tied")
        path = convert_to_gguf(model_dir, tmp_path / "tied.gguf")
    else:
        model_dir, path = tiny_model_dir, gguf_path
    prompt = "The quick brown fox"
    ours = LLM(str(model_dir), kv_cache_memory="16MiB")
    expected = ours.generate([prompt], SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True))[0]
    llama = Llama(str(path), n_ctx=256, n_threads=1, verbose=False)
    prompt_ids = llama.tokenize(prompt.encode(), add_bos=True, special=False)
    assert prompt_ids == expected.prompt_token_ids
    generated = []
    for token in llama.generate(prompt_ids, temp=0.0, top_k=1):
        generated.append(token)
        if len(generated) == 8:
            break
    assert generated == expected.outputs[0].token_ids


def test_gateway_in_front_of_llama_cpp_fills_usage(llama_server, llama_gateway):
    direct = openai.OpenAI(base_url=llama_server.url, api_key="x", max_retries=0)
    via = openai.OpenAI(base_url=llama_gateway.url, api_key="x", max_retries=0)
    exact = direct.completions.create(model=ALIAS, prompt="Paris is the", max_tokens=6, temperature=0.0)
    reply = via.completions.create(model="gw-llama", prompt="Paris is the", max_tokens=6, temperature=0.0,
                                   user="llama-user")  # fmt: skip
    assert reply.choices[0].text == exact.choices[0].text
    assert reply.usage is not None, "a non-streamed reply through the gateway must carry usage"
    assert reply.usage.model_extra["usage_source"] == "counted"
    assert 1 <= reply.usage.completion_tokens <= exact.usage.completion_tokens  # a chunk holds >= 1 token
    deadline = time.monotonic() + 5
    rows: list = []
    while not rows and time.monotonic() < deadline:
        rows = read_rows(llama_gateway.log_path, "user = ?", ("llama-user",))
        time.sleep(0.05)
    assert rows and rows[0]["completion_tokens"] == reply.usage.completion_tokens and rows[0]["status"] == 200
    chunks = list(via.chat.completions.create(
        model="gw-llama", messages=[{"role": "user", "content": "hello"}], max_tokens=4, temperature=0.0,
        stream=True, stream_options={"include_usage": True},
    ))  # fmt: skip
    assert chunks[-1].usage is not None and 1 <= chunks[-1].usage.completion_tokens <= 4


def test_eval_against_llama_cpp(llama_server, tiny_model_dir, tmp_path):
    """llama.cpp has no /tokenize: lengths are counted with the model's own tokenizer (--tokenizer)."""
    out = tmp_path / "run"
    args = ["eval", "--endpoint", llama_server.url, "--model-name", ALIAS, "--api", "completions",
            "--tokenizer", str(tiny_model_dir), "--tasks", "niah_single_1", "--lengths", "1k", "--samples", "2",
            "--depths", "2", "--out", str(out), "--no-progress", "--concurrency", "1", "--retries", "0"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "ESTIMATED" not in result.output
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for r in records:
        assert (
            r["input_tokens"] + r["max_tokens"] <= 1024
            and r["ttft_s"] is not None
            and r["e2e_s"] >= r["ttft_s"]
        )
    run = json.loads((out / "run.json").read_text())
    assert run["target"]["tokenizer"] == f"local tokenizer {tiny_model_dir}"
    assert (out / "report.html").is_file()
