"""The LLM facade on a tiny random model: sampling rules, stops, logprobs, prefix reuse, validation at the door."""

from __future__ import annotations

import math

import pytest

from ctxops import LLM, PromptTooLongError, SamplingParams


@pytest.fixture(scope="module")
def llm(tiny_model_dir):
    return LLM(str(tiny_model_dir), kv_cache_memory="4MiB", max_model_len=1024, block_size=16)


def _ids(llm, n, offset=0):
    vocab = llm.engine.model_config.vocab_size
    return [(7 * i + offset) % (vocab - 10) + 5 for i in range(n)]


def _greedy(llm, prompt, max_tokens):
    """The unconstrained greedy continuation: what stop rules are then checked against."""
    params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
    return llm.generate([prompt], params, use_tqdm=False)[0].outputs[0].token_ids


def test_cache_info_is_exact(llm):
    info = llm.cache_info
    # 2 (K, V) x 2 layers x 2 kv heads x 16 head_dim x 4 bytes
    assert info.bytes_per_token == 2 * 2 * 2 * 16 * 4
    assert info.bytes_per_block == info.bytes_per_token * info.block_size
    assert info.num_blocks == (4 * 2**20) // info.bytes_per_block
    pool = llm.engine.runner.kv_caches[0][0].untyped_storage().nbytes()
    assert pool == info.num_blocks * info.bytes_per_block == info.total_bytes


def test_seeded_sampling_is_reproducible_and_batch_independent(llm):
    params = SamplingParams(temperature=1.0, top_p=0.9, top_k=50, seed=42, max_tokens=12, ignore_eos=True)
    alone = llm.generate([_ids(llm, 20)], params, use_tqdm=False)[0].outputs[0].token_ids
    batched = llm.generate([_ids(llm, 33, 3), _ids(llm, 20), _ids(llm, 9, 1)], params, use_tqdm=False)
    assert batched[1].outputs[0].token_ids == alone
    other_seed = SamplingParams(temperature=1.0, seed=43, max_tokens=12, ignore_eos=True)
    assert llm.generate([_ids(llm, 20)], other_seed, use_tqdm=False)[0].outputs[0].token_ids != alone


def test_top_k_one_equals_greedy(llm):
    greedy = llm.generate(
        [_ids(llm, 25)], SamplingParams(temperature=0, max_tokens=10, ignore_eos=True), use_tqdm=False
    )[0]
    top1 = llm.generate(
        [_ids(llm, 25)],
        SamplingParams(temperature=1.3, top_k=1, max_tokens=10, ignore_eos=True, seed=5),
        use_tqdm=False,
    )[0]
    assert top1.outputs[0].token_ids == greedy.outputs[0].token_ids


def test_max_tokens_and_finish_reason(llm):
    out = llm.generate(
        [_ids(llm, 10)], SamplingParams(temperature=0, max_tokens=7, ignore_eos=True), use_tqdm=False
    )[0]
    assert len(out.outputs[0].token_ids) == 7 and out.outputs[0].finish_reason == "length"
    assert out.finished and out.metrics.first_token_time >= out.metrics.arrival_time


def test_stop_token_ids_stop_and_are_reported(llm):
    free = _greedy(llm, _ids(llm, 12), 10)
    stop_at = free[3]
    first = free.index(stop_at)
    out = llm.generate(
        [_ids(llm, 12)],
        SamplingParams(temperature=0, max_tokens=10, stop_token_ids=[stop_at], ignore_eos=True),
        use_tqdm=False,
    )[0].outputs[0]
    assert out.token_ids == free[: first + 1]
    assert out.finish_reason == "stop" and out.stop_reason == stop_at


def test_min_tokens_holds_back_stop_tokens(llm):
    free = _greedy(llm, _ids(llm, 12), 10)
    out = llm.generate(
        [_ids(llm, 12)],
        SamplingParams(temperature=0, max_tokens=10, min_tokens=6, stop_token_ids=[free[0]], ignore_eos=True),
        use_tqdm=False,
    )[0].outputs[0]
    assert len(out.token_ids) >= 6 and free[0] not in out.token_ids[:6]


def test_stop_string_truncates_text(llm):
    free = llm.generate(
        [_ids(llm, 15)], SamplingParams(temperature=0, max_tokens=12, ignore_eos=True), use_tqdm=False
    )[0].outputs[0]
    text = free.text
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert stop.strip(), "the random model produced whitespace; pick another prompt"
    out = llm.generate(
        [_ids(llm, 15)],
        SamplingParams(temperature=0, max_tokens=12, stop=[stop], ignore_eos=True),
        use_tqdm=False,
    )[0].outputs[0]
    assert out.finish_reason == "stop" and out.stop_reason == stop
    assert out.text == text[: text.index(stop)]


def test_eos_stops_unless_ignored(llm):
    eos = llm.engine.eos_token_ids
    assert eos, "the tiny model declares eos ids in generation_config.json"
    free = llm.generate(
        [_ids(llm, 12)], SamplingParams(temperature=0, max_tokens=6, ignore_eos=True), use_tqdm=False
    )[0]
    # make the model's first greedy token an eos by asking for it as a stop token too: eos handling is the same path
    engine_eos = llm.engine.eos_token_ids
    llm.engine.eos_token_ids = (free.outputs[0].token_ids[0],)
    try:
        out = llm.generate([_ids(llm, 12)], SamplingParams(temperature=0, max_tokens=6), use_tqdm=False)[0]
        assert out.outputs[0].finish_reason == "stop" and out.outputs[0].stop_reason is None
        assert len(out.outputs[0].token_ids) == 1
        ignored = llm.generate(
            [_ids(llm, 12)], SamplingParams(temperature=0, max_tokens=6, ignore_eos=True), use_tqdm=False
        )[0]
        assert len(ignored.outputs[0].token_ids) == 6
    finally:
        llm.engine.eos_token_ids = engine_eos


def test_logprobs_are_log_probabilities_of_the_sampled_tokens(llm):
    out = llm.generate(
        [_ids(llm, 20)],
        SamplingParams(temperature=0, max_tokens=5, logprobs=3, ignore_eos=True),
        use_tqdm=False,
    )[0].outputs[0]
    assert len(out.logprobs) == 5
    total = 0.0
    for token, entry in zip(out.token_ids, out.logprobs, strict=True):
        assert entry[token].rank == 1  # greedy picks the most likely token
        assert len(entry) == 3 and all(lp.logprob <= 0 for lp in entry.values())
        total += entry[token].logprob
    assert math.isclose(out.cumulative_logprob, total, rel_tol=1e-9)


def test_shared_document_is_served_from_the_prefix_cache(llm):
    doc = _ids(llm, 200, 11)
    first = llm.generate(
        [doc + _ids(llm, 5, 1)], SamplingParams(max_tokens=2, temperature=0), use_tqdm=False
    )[0]
    again = llm.generate(
        [doc + _ids(llm, 7, 2), doc + _ids(llm, 6, 3)],
        SamplingParams(max_tokens=2, temperature=0),
        use_tqdm=False,
    )
    assert first.num_cached_tokens < 200
    assert all(o.num_cached_tokens == 192 for o in again)  # 12 full blocks of the 200-token document


def test_prefix_cache_does_not_change_outputs(tiny_model_dir, llm):
    prompts = [_ids(llm, 100, 4) + _ids(llm, n, n) for n in (3, 17, 40)]
    params = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)
    cached = [o.outputs[0].token_ids for o in llm.generate(prompts, params, use_tqdm=False)]
    plain_llm = LLM(
        str(tiny_model_dir),
        kv_cache_memory="4MiB",
        max_model_len=1024,
        enable_prefix_caching=False,
        max_num_batched_tokens=32,
    )  # also forces chunked prefill
    plain = [o.outputs[0].token_ids for o in plain_llm.generate(prompts, params, use_tqdm=False)]
    assert cached == plain


def test_preemption_under_a_tiny_pool_still_gives_greedy_results(tiny_model_dir, llm):
    prompts = [_ids(llm, 60, i) for i in range(6)]
    params = SamplingParams(temperature=0, max_tokens=40, ignore_eos=True)
    expected = [o.outputs[0].token_ids for o in llm.generate(prompts, params, use_tqdm=False)]
    small = LLM(
        str(tiny_model_dir), kv_cache_memory=2 * 2 * 2 * 16 * 4 * 16 * 16, max_model_len=256
    )  # 16 blocks
    got = small.generate(prompts, params, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in got] == expected
    assert small.engine.scheduler.num_preemptions > 0
    assert small.engine.block_manager.num_free_blocks == small.cache_info.num_blocks


def test_text_prompts_and_chat(llm):
    out = llm.generate("Hello world", SamplingParams(max_tokens=3, temperature=0), use_tqdm=False)[0]
    tok = llm.get_tokenizer()
    assert out.prompt == "Hello world" and out.prompt_token_ids == tok.encode("Hello world")
    chat = llm.chat(
        [{"role": "user", "content": "hi"}], SamplingParams(max_tokens=3, temperature=0), use_tqdm=False
    )[0]
    assert tok.decode(chat.prompt_token_ids, skip_special_tokens=False).startswith(
        "<|begin_of_text|><|im_start|>user"
    )


def test_prompt_longer_than_max_model_len_is_rejected_at_once(llm):
    with pytest.raises(PromptTooLongError, match="1025 tokens.*1024"):
        llm.generate([_ids(llm, 1025)], use_tqdm=False)
    assert not llm.engine.has_unfinished_requests()


def test_generation_stops_at_max_model_len(tiny_model_dir):
    llm = LLM(str(tiny_model_dir), kv_cache_memory="1MiB", max_model_len=64)
    out = llm.generate([list(range(5, 60))], SamplingParams(max_tokens=100, ignore_eos=True), use_tqdm=False)[
        0
    ]
    assert len(out.prompt_token_ids) + len(out.outputs[0].token_ids) == 64
    assert out.outputs[0].finish_reason == "length"


@pytest.mark.parametrize(
    ("prompt", "error"),
    [([], "empty"), ([10**7], "token ids must be in"), (3.5, "string or a list of token ids")],
)
def test_bad_prompts(llm, prompt, error):
    with pytest.raises((ValueError, TypeError), match=error):
        llm.generate([prompt], use_tqdm=False)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 2}, "n must be 1"),
        ({"logprobs": 50}, "logprobs"),
        ({"min_tokens": 9, "max_tokens": 3}, "min_tokens"),
    ],
)
def test_bad_sampling_params(kwargs, error):
    with pytest.raises(ValueError, match=error):
        SamplingParams(**kwargs)
