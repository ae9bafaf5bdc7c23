"""KV presses: each policy keeps exactly the tokens its rule selects (hand-made attention patterns), pruned
sequences give their blocks back, chunking does not change what is kept, and prefix sharing stays correct next to
pressed sequences."""

from __future__ import annotations

import math

import pytest
import torch

from ctxops import LLM, SamplingParams
from ctxops.engine.config import EngineConfig
from ctxops.engine.kv_press import (
    SNAPKV_KERNEL,
    SNAPKV_WINDOW,
    PressKind,
    PressScores,
    num_kept,
    select_tokens,
)


def _needle_pattern(length: int, needles_per_head: list[list[int]], heads_per_kv: int = 2):
    """Keys are zero except the needles (a large key along e0); every query looks along e0, so attention goes
    to the needles a query can see, and nowhere else."""
    kv_heads, dim = len(needles_per_head), 8
    keys = torch.zeros(length, kv_heads, dim)
    for head, needles in enumerate(needles_per_head):
        keys[needles, head, 0] = 40.0
    q = torch.zeros(length, kv_heads * heads_per_kv, dim)
    q[:, :, 0] = 1.0
    return q, keys


def test_streaming_llm_keeps_sinks_and_the_recent_window():
    kept = select_tokens(PressKind.STREAMING_LLM, None, length=20, keep=10)
    assert kept.tolist() == [[0, 1, 2, 3, 14, 15, 16, 17, 18, 19]]


def test_h2o_keeps_heavy_hitters_and_the_recent_half():
    length, keep = 40, 20
    # 10 per KV head; token 0 is a needle so that no early query has only plain tokens to look at
    needles = [[0, 3, 7, 11, 15, 19, 21, 23, 25, 27], [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]]
    q, keys = _needle_pattern(length, needles)
    scores = PressScores(PressKind.H2O, length, num_layers=1, num_kv_heads=2)
    scores.observe(0, q[:25], keys[:25], 0, scale=1.0)  # two chunks, as chunked prefill gives them
    scores.observe(0, q[25:], keys, 25, scale=1.0)
    kept = scores.select(keep)[0]
    recent = list(range(30, 40))
    for head in range(2):
        assert kept[head].tolist() == sorted(needles[head] + recent)


def test_snapkv_scores_only_the_observation_window_and_keeps_pooled_neighbours():
    length = 200
    window = list(range(length - SNAPKV_WINDOW, length))
    # needles seen by the window's queries; a token only early queries attend to must not count
    q, keys = _needle_pattern(length, [[20, 60, 100]])
    scores = PressScores(PressKind.SNAPKV, length, num_layers=1, num_kv_heads=1)
    scores.observe(0, q, keys, 0, scale=1.0)
    assert scores.scores[0, 0, : length - SNAPKV_WINDOW].sum() > 0
    # the average pool spreads each needle's score to its SNAPKV_KERNEL // 2 neighbours on each side
    half = SNAPKV_KERNEL // 2
    kept = scores.select(SNAPKV_WINDOW + 3 * SNAPKV_KERNEL)[0, 0].tolist()
    neighbours = [p + d for p in (20, 60, 100) for d in range(-half, half + 1)]
    assert kept == sorted(neighbours + window)


def test_snapkv_ignores_queries_before_the_window():
    length = 100
    q, keys = _needle_pattern(length, [[5]])
    scores = PressScores(PressKind.SNAPKV, length, num_layers=1, num_kv_heads=1)
    scores.observe(0, q[:30], keys[:30], 0, scale=1.0)  # a chunk wholly before the window: no effect
    assert scores.scores.abs().sum() == 0


def test_num_kept_and_validation():
    assert num_kept(200, 0.5) == 100 and num_kept(10, 0.75) == 2 and num_kept(1, 0.9) == 1
    with pytest.raises(ValueError, match="kv_press"):
        EngineConfig(kv_press="knorm")
    with pytest.raises(ValueError, match="kv_compression_ratio"):
        EngineConfig(kv_press="snapkv", kv_compression_ratio=1.0)


def _prompt(vocab: int, n: int, offset: int = 0) -> list[int]:
    g = torch.Generator().manual_seed(offset)
    return torch.randint(5, vocab - 5, (n,), generator=g).tolist()


@pytest.mark.parametrize("kv_cache_dtype", ["auto", "int8"])
@pytest.mark.parametrize("press", ["streaming_llm", "snapkv", "h2o"])
def test_pruned_blocks_return_to_the_pool(tiny_model_dir, press, kv_cache_dtype):
    llm = LLM(
        str(tiny_model_dir), kv_cache_memory="2MiB", max_model_len=512, max_num_seqs=4,
        kv_press=press, kv_compression_ratio=0.5, kv_cache_dtype=kv_cache_dtype,
    )  # fmt: skip
    engine, manager = llm.engine, llm.engine.block_manager
    total = manager.num_blocks
    seq = engine.add_request(
        "a", _prompt(engine.model_config.vocab_size, 200), SamplingParams(max_tokens=20, ignore_eos=True)
    )
    engine.step()  # the whole prompt in one step, then the press
    assert seq.num_output_tokens == 1 and seq.kv_offset == 100 and seq.num_kv_tokens == 100
    assert len(seq.block_table) == math.ceil(100 / 16)  # 13 blocks before, 7 after
    assert manager.num_free_blocks == total - 7
    manager.check_invariants([seq])
    while engine.has_unfinished_requests():
        engine.step()
    assert manager.num_free_blocks == total and len(seq.token_ids) == 220


@pytest.mark.parametrize("press", ["snapkv", "h2o"])
def test_chunked_prefill_keeps_the_same_tokens(tiny_model_dir, press):
    """Scores add up across prefill chunks (and a one-token last chunk), so chunking changes nothing."""
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    outputs = []
    for budget in (8192, 48):
        llm = LLM(
            str(tiny_model_dir), kv_cache_memory="2MiB", max_model_len=512, max_num_seqs=4,
            kv_press=press, max_num_batched_tokens=budget,
        )  # fmt: skip
        prompts = [_prompt(llm.engine.model_config.vocab_size, n, n) for n in (145, 97)]  # 145 = 3 x 48 + 1
        outputs.append([o.outputs[0].token_ids for o in llm.generate(prompts, params, use_tqdm=False)])
    assert outputs[0] == outputs[1]


def test_prefix_sharing_stays_correct_next_to_pressed_sequences(tiny_model_dir):
    params = SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)
    plain = LLM(str(tiny_model_dir), kv_cache_memory="2MiB", max_model_len=512, max_num_seqs=4)
    vocab = plain.engine.model_config.vocab_size
    doc = _prompt(vocab, 160, 7)
    short, longer = doc[:40], doc[:150]
    reference = plain.generate([doc[:48]], params, use_tqdm=False)[0].outputs[0].token_ids

    llm = LLM(
        str(tiny_model_dir), kv_cache_memory="2MiB", max_model_len=512, max_num_seqs=4,
        kv_press="snapkv", kv_press_min_tokens=100,
    )  # fmt: skip
    manager = llm.engine.block_manager
    llm.generate([short], params, use_tqdm=False)  # not pressed: publishes its 2 full blocks
    published = dict(manager.hash_to_block)
    assert len(published) == 3  # 40 prompt + 10 output tokens: 3 full blocks
    pressed = llm.generate([longer], params, use_tqdm=False)[0]  # pressed: neither reuses nor publishes
    assert pressed.num_cached_tokens == 0
    assert manager.hash_to_block == published
    # both at once: the pressed one runs beside a request that reuses the short prompt's blocks
    both = llm.generate([longer, doc[:48]], params, use_tqdm=False)
    assert both[1].num_cached_tokens == 32 and both[1].outputs[0].token_ids == reference
    assert both[0].outputs[0].token_ids == pressed.outputs[0].token_ids
    assert manager.num_free_blocks == manager.num_blocks


@pytest.mark.parametrize("press", ["streaming_llm", "snapkv", "h2o"])
def test_query_agnostic_press_compresses_the_context_and_keeps_the_question(tiny_model_dir, press):
    """question_start: the context (160 tokens) is pressed to 80 before the question (40) is prefilled in full."""
    llm = LLM(
        str(tiny_model_dir), kv_cache_memory="2MiB", max_model_len=512, max_num_seqs=4,
        kv_press=press, kv_compression_ratio=0.5,
    )  # fmt: skip
    engine, manager = llm.engine, llm.engine.block_manager
    prompt = {"prompt_token_ids": _prompt(engine.model_config.vocab_size, 200), "question_start": 160}
    seq = engine.add_request("a", prompt, SamplingParams(max_tokens=5, ignore_eos=True))
    engine.step()  # the context alone (the chunk stops at the question), then the press: nothing sampled yet
    assert seq.num_computed_tokens == 160 and seq.num_output_tokens == 0
    assert seq.kv_offset == 80 and seq.num_kv_tokens == 80
    engine.step()  # the question, uncompressed, and the first token
    assert seq.num_output_tokens == 1 and seq.num_kv_tokens == 80 + 40
    assert len(seq.block_table) == math.ceil(120 / 16)
    manager.check_invariants([seq])
    while engine.has_unfinished_requests():
        engine.step()
    assert manager.num_free_blocks == manager.num_blocks


def test_query_agnostic_press_is_chunking_independent_and_validated(tiny_model_dir):
    params = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
    outputs = []
    for budget in (8192, 48):
        llm = LLM(
            str(tiny_model_dir), kv_cache_memory="2MiB", max_model_len=512, max_num_seqs=4,
            kv_press="snapkv", max_num_batched_tokens=budget,
        )  # fmt: skip
        ids = _prompt(llm.engine.model_config.vocab_size, 190, 3)
        prompts = [{"prompt_token_ids": ids, "question_start": 150}, ids]  # agnostic beside query-aware
        outputs.append([o.outputs[0].token_ids for o in llm.generate(prompts, params, use_tqdm=False)])
    assert outputs[0] == outputs[1]
    for bad in (0, 190, -3, "150", True):
        with pytest.raises(ValueError, match="question_start"):
            llm.generate([{"prompt_token_ids": ids, "question_start": bad}], params, use_tqdm=False)
