"""The OpenAI API of a real `ctxops serve` process, driven by the official openai client."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest
from serve_helpers import MODEL_NAME, metric

from ctxops import SamplingParams
from ctxops.serve.request_log import read_rows

GREEDY = {"temperature": 0.0}


@pytest.fixture(scope="module")
def client(main_server):
    return openai.OpenAI(base_url=main_server.url, api_key="unused", max_retries=0)


def test_chat_matches_offline(client, offline_llm):
    messages = [{"role": "user", "content": "Tell me about long context."}]
    reply = client.chat.completions.create(model=MODEL_NAME, messages=messages, max_tokens=12, **GREEDY)
    offline = offline_llm.chat(messages, SamplingParams(temperature=0.0, max_tokens=12), use_tqdm=False)[0]
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == offline.outputs[0].text
    assert reply.choices[0].finish_reason == offline.outputs[0].finish_reason
    assert reply.usage.prompt_tokens == len(offline.prompt_token_ids)
    assert reply.usage.completion_tokens == len(offline.outputs[0].token_ids)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_completions_text_and_token_ids(client, offline_llm):
    params = SamplingParams(temperature=0.0, max_tokens=10, ignore_eos=True)
    offline = offline_llm.generate(["The capital of France is"], params, use_tqdm=False)[0]
    by_text = client.completions.create(
        model=MODEL_NAME,
        prompt="The capital of France is",
        max_tokens=10,
        extra_body={"ignore_eos": True},
        **GREEDY,
    )
    by_ids = client.completions.create(
        model=MODEL_NAME,
        prompt=offline.prompt_token_ids,
        max_tokens=10,
        extra_body={"ignore_eos": True},
        **GREEDY,
    )
    assert by_text.object == "text_completion"
    assert by_text.choices[0].text == by_ids.choices[0].text == offline.outputs[0].text
    assert by_text.choices[0].finish_reason == "length"
    assert by_ids.usage.prompt_tokens == len(offline.prompt_token_ids)
    assert by_text.usage.completion_tokens == 10


def test_stream_with_usage_equals_plain_response(client):
    kwargs = dict(
        model=MODEL_NAME, messages=[{"role": "user", "content": "stream please"}], max_tokens=16, **GREEDY
    )
    plain = client.chat.completions.create(**kwargs)
    chunks = list(
        client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == plain.choices[0].finish_reason
    no_usage = list(client.completions.create(model=MODEL_NAME, prompt="abc", max_tokens=4, stream=True))
    assert all(c.usage is None for c in no_usage) and all(c.choices for c in no_usage)


def test_stop_string_never_streams_past_the_stop(client, offline_llm):
    params = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)
    full = offline_llm.generate(["stop test"], params, use_tqdm=False)[0].outputs[0].text
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert len(stop) == 3
    kwargs = dict(
        model=MODEL_NAME, prompt="stop test", max_tokens=40, stop=[stop], extra_body={"ignore_eos": True}
    )
    streamed = "".join(
        c.choices[0].text for c in client.completions.create(**kwargs, stream=True, **GREEDY) if c.choices
    )
    plain = client.completions.create(**kwargs, **GREEDY)
    assert streamed == plain.choices[0].text == full[: full.index(stop)]
    assert plain.choices[0].finish_reason == "stop"


def test_logprobs_shapes(client):
    chat = client.chat.completions.create(
        model=MODEL_NAME, messages=[{"role": "user", "content": "x"}], max_tokens=3, logprobs=True, top_logprobs=2,
        extra_body={"ignore_eos": True}, **GREEDY,
    )  # fmt: skip
    content = chat.choices[0].logprobs.content
    assert len(content) == 3 and all(len(item.top_logprobs) == 2 for item in content)
    assert all(
        item.logprob <= 0 and item.top_logprobs[0].logprob >= item.top_logprobs[1].logprob for item in content
    )
    legacy = client.completions.create(
        model=MODEL_NAME, prompt="y", max_tokens=3, logprobs=1, extra_body={"ignore_eos": True}, **GREEDY
    )
    lp = legacy.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 3


def _error(call) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        call()
    return info.value


def test_invalid_parameters_are_400_naming_the_field(client):
    msgs = [{"role": "user", "content": "hi"}]
    cases = {
        "top_p": lambda: client.chat.completions.create(model=MODEL_NAME, messages=msgs, top_p=1.5),
        "n": lambda: client.chat.completions.create(model=MODEL_NAME, messages=msgs, n=2),
        "temperature": lambda: client.completions.create(model=MODEL_NAME, prompt="a", temperature=-1),
        "messages[0].role": lambda: client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "x"}]
        ),
        "max_tokens": lambda: client.completions.create(model=MODEL_NAME, prompt="a", max_tokens=0),
        "prompt": lambda: client.completions.create(model=MODEL_NAME, prompt=["a", "b"]),
        "messages": lambda: client.chat.completions.create(model=MODEL_NAME, messages=[]),
    }
    for field, call in cases.items():
        error = _error(call)
        assert error.status_code == 400, field
        assert error.body["param"] == field and field.split("[")[0] in error.message, (field, error.message)
        assert error.body["type"] == "invalid_request_error"


def test_context_length_exceeded_gives_the_numbers(client):
    error = _error(lambda: client.completions.create(model=MODEL_NAME, prompt="hello", max_tokens=5000))
    assert error.status_code == 400 and error.code == "context_length_exceeded"
    assert "4096" in error.message and "5000" in error.message
    too_long = list(range(10, 410)) * 11  # 4400 token ids > 4096
    error = _error(lambda: client.completions.create(model=MODEL_NAME, prompt=too_long, max_tokens=1))
    assert error.code == "context_length_exceeded" and "4400" in error.message


def test_unknown_model_is_404(client):
    error = _error(lambda: client.completions.create(model="gpt-9", prompt="a"))
    assert error.status_code == 404 and error.code == "model_not_found" and MODEL_NAME in error.message


def test_oversized_body_is_413(client):
    error = _error(lambda: client.completions.create(model=MODEL_NAME, prompt="x" * 300_000))
    assert error.status_code == 413 and error.code == "request_too_large"


def test_unknown_route_in_openai_shape(main_server):
    response = httpx.get(main_server.url + "/nothing")
    assert response.status_code == 404 and "error" in response.json()


def test_models_health_tokenize_detokenize(client, main_server, offline_llm):
    assert [m.id for m in client.models.list()] == [MODEL_NAME]
    assert httpx.get(main_server.base + "/health").json() == {"status": "ready"}
    tok = httpx.post(
        main_server.base + "/tokenize", json={"prompt": "count me", "return_token_strs": True}
    ).json()
    assert tok["tokens"] == offline_llm.get_tokenizer().encode("count me")
    assert tok["count"] == len(tok["tokens"]) == len(tok["token_strs"]) and tok["max_model_len"] == 4096
    reply = client.completions.create(model=MODEL_NAME, prompt="count me", max_tokens=1)
    assert reply.usage.prompt_tokens == tok["count"]
    msgs = [{"role": "user", "content": "hi"}]
    chat_tok = httpx.post(main_server.base + "/tokenize", json={"model": MODEL_NAME, "messages": msgs}).json()
    assert (
        chat_tok["count"]
        == client.chat.completions.create(model=MODEL_NAME, messages=msgs, max_tokens=1).usage.prompt_tokens
    )
    text = httpx.post(main_server.base + "/detokenize", json={"tokens": tok["tokens"]}).json()["prompt"]
    assert "count me" in text
    bad = httpx.post(main_server.base + "/detokenize", json={"tokens": [10**9]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens"


def test_concurrent_streams_match_offline_greedy(main_server, offline_llm):
    prompts = [f"request number {i}: " + "lorem ipsum " * (i % 7) for i in range(64)]
    params = SamplingParams(temperature=0.0, max_tokens=24)
    expected = offline_llm.generate(prompts, params, use_tqdm=False)

    async def one(aclient: openai.AsyncOpenAI, prompt: str) -> tuple[str, int]:
        stream = await aclient.completions.create(
            model=MODEL_NAME, prompt=prompt, max_tokens=24, temperature=0.0, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        text, used = "", 0
        async for chunk in stream:
            text += "".join(c.text for c in chunk.choices)
            used = chunk.usage.completion_tokens if chunk.usage else used
        return text, used

    async def run_all():
        async with openai.AsyncOpenAI(base_url=main_server.url, api_key="x", max_retries=0) as aclient:
            return await asyncio.gather(*(one(aclient, p) for p in prompts))

    results = asyncio.run(run_all())
    for (text, used), out in zip(results, expected, strict=True):
        assert text == out.outputs[0].text
        assert used == len(out.outputs[0].token_ids)


def test_disconnect_mid_stream_frees_blocks(main_server):
    body = {
        "model": MODEL_NAME,
        "prompt": "disconnect me",
        "max_tokens": 3000,
        "stream": True,
        "ignore_eos": True,
    }
    with httpx.stream("POST", main_server.url + "/completions", json=body) as response:
        lines = response.iter_lines()
        seen = [next(lines) for _ in range(6)]
        assert any(line.startswith("data:") for line in seen)
        during = main_server.metrics()
        assert metric(during, "ctxops:kv_cache_usage_perc") > 0
        assert metric(during, "ctxops:kv_cache_bytes_in_use") > 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        values = main_server.metrics()
        if (
            metric(values, "ctxops:kv_cache_usage_perc") == 0
            and metric(values, "ctxops:num_requests_running") == 0
        ):
            break
        time.sleep(0.05)
    assert metric(values, "ctxops:kv_cache_usage_perc") == 0.0
    assert metric(values, "ctxops:kv_cache_bytes_in_use") == 0.0
    assert metric(values, "ctxops:num_requests_running") == 0.0
    assert metric(values, "ctxops:request_success_total", finished_reason="abort") >= 1


def test_metrics_use_vllm_names(client, main_server):
    client.completions.create(model=MODEL_NAME, prompt="metrics", max_tokens=4)
    values = main_server.metrics()
    for name in (
        "ctxops:time_to_first_token_seconds_count", "ctxops:inter_token_latency_seconds_count",
        "ctxops:e2e_request_latency_seconds_count", "ctxops:request_queue_time_seconds_count",
        "ctxops:num_requests_running", "ctxops:num_requests_waiting", "ctxops:kv_cache_usage_perc",
        "ctxops:prefix_cache_queries_total", "ctxops:prefix_cache_hits_total", "ctxops:prompt_tokens_total",
        "ctxops:generation_tokens_total",
    ):  # fmt: skip
        assert metric(values, name, model_name=MODEL_NAME) is not None, name
    assert metric(values, "ctxops:request_success_total", finished_reason="length") >= 1
    assert metric(values, "ctxops:request_errors_total", status="400") >= 1


def test_request_log_rows(client, main_server):
    reply = client.completions.create(model=MODEL_NAME, prompt="log this row", max_tokens=5, user="carol")
    deadline = time.monotonic() + 5
    rows: list = []
    while not rows and time.monotonic() < deadline:
        rows = read_rows(main_server.log_path, "request_id = ?", (reply.id,))
        time.sleep(0.05)
    row = rows[0]
    assert row["status"] == 200 and row["model"] == MODEL_NAME and row["user"] == "carol"
    assert row["prompt_tokens"] == reply.usage.prompt_tokens and row["completion_tokens"] == 5
    assert row["finish_reason"] == "length" and row["prompt"] == "log this row"
    assert row["output"] == reply.choices[0].text
    assert 0 <= row["queue_time_s"] <= row["ttft_s"] <= row["e2e_s"]
    assert row["key_id"] is None  # no keys configured on this server
    errors = read_rows(main_server.log_path, "status = 404")
    assert errors and errors[0]["error_code"] == "model_not_found"


def test_disconnect_without_streaming_frees_blocks(main_server):
    body = {"model": MODEL_NAME, "prompt": "hang up on me", "max_tokens": 3000, "ignore_eos": True}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(main_server.url + "/completions", json=body, timeout=httpx.Timeout(5.0, read=0.3))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        values = main_server.metrics()
        if (
            metric(values, "ctxops:kv_cache_usage_perc") == 0
            and metric(values, "ctxops:num_requests_running") == 0
        ):
            break
        time.sleep(0.05)
    assert metric(values, "ctxops:kv_cache_usage_perc") == 0.0
    rows: list = []
    while not rows and time.monotonic() < deadline:
        rows = read_rows(main_server.log_path, "prompt = ?", ("hang up on me",))
        time.sleep(0.05)
    assert rows and rows[0]["finish_reason"] == "abort" and rows[0]["completion_tokens"] is None
    assert rows[0]["e2e_s"] < 2.5  # stopped well before 3000 tokens were generated
