"""The engine with quantized KV blocks: exact pool bytes, more blocks for the same budget, the window pool's
bookkeeping, and greedy outputs next to the full-precision cache."""

from __future__ import annotations

import pytest

from ctxops import LLM, SamplingParams
from ctxops.engine.config import EngineConfig

MEMORY = 4 * 2**20


@pytest.fixture(scope="module")
def engines(tiny_model_dir):
    return {
        kv: LLM(
            str(tiny_model_dir), kv_cache_memory=MEMORY, max_model_len=512, max_num_seqs=8, kv_cache_dtype=kv
        )
        for kv in ("auto", "int8", "int4")
    }


def _prompts(llm, count=4):
    vocab = llm.engine.model_config.vocab_size
    return [[(7 * i + 3 * p) % (vocab - 10) + 5 for i in range(19 + 23 * p)] for p in range(count)]


def test_cache_info_reflects_the_format(engines):
    auto, int8, int4 = engines["auto"].cache_info, engines["int8"].cache_info, engines["int4"].cache_info
    assert auto.bytes_per_token == 2 * 2 * 2 * 16 * 4  # K, V x 2 layers x 2 kv heads x head_dim 16 x fp32
    # tiny model: head_dim 16, 2 kv heads, 16-token blocks
    # int8: 2 layers x (2 x 16 x 2 x 16 codes + 16 x 2 key scales + 16 x 2 value scales, fp16) per block
    assert int8.bytes_per_block == 2 * (2 * 16 * 2 * 16 + 16 * 2 * 2 + 16 * 2 * 2)
    # int4: half-byte codes, a 1-byte fp8 scale per key channel per block, an fp16 scale and minimum per value
    # token-head (head_dim 16 < 64: one value group per head)
    assert int4.bytes_per_block == 2 * (2 * 16 * 2 * 8 + 2 * 16 * 1 + 16 * 2 * 4)
    for info in (int8, int4):
        assert info.num_windows == 8 and info.window_bytes == 8 * auto.bytes_per_block
        assert info.num_blocks == (MEMORY - info.window_bytes) // info.bytes_per_block
        assert info.total_bytes == info.num_blocks * info.bytes_per_block + info.window_bytes <= MEMORY
    assert int8.dtype == "int8" and int4.dtype == "int4" and auto.dtype == "float32"
    assert auto.num_tokens < int8.num_tokens < int4.num_tokens


def test_pool_tensors_hold_exactly_the_planned_bytes(engines):
    for kv in ("int8", "int4"):
        llm = engines[kv]
        layers = [k for k, _ in llm.engine.runner.kv_caches]
        assert sum(layer.nbytes for layer in layers) == llm.cache_info.total_bytes


def test_greedy_outputs_next_to_full_precision(engines):
    """Random weights give near-flat logits, the hardest case for agreement; int8 KV matches exactly here."""
    params = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    outputs = {
        kv: [o.outputs[0].token_ids for o in llm.generate(_prompts(llm), params, use_tqdm=False)]
        for kv, llm in engines.items()
    }
    assert outputs["int8"] == outputs["auto"]
    matched = sum(
        a == b
        for x, y in zip(outputs["auto"], outputs["int4"], strict=True)
        for a, b in zip(x, y, strict=True)
    )
    assert matched >= 0.5 * 4 * 24, matched  # int4: at least half the tokens of 4 x 24 greedy tokens


def test_windows_and_blocks_return_to_the_pool(engines):
    llm = engines["int4"]
    manager = llm.engine.block_manager
    llm.generate(
        _prompts(llm, 6), SamplingParams(temperature=0, max_tokens=5, ignore_eos=True), use_tqdm=False
    )
    assert manager.num_free_blocks == llm.cache_info.num_blocks
    assert sorted(manager.free_windows) == list(range(8))


def test_prefix_cache_reuses_quantized_blocks(engines):
    llm = engines["int8"]
    shared = _prompts(llm, 3)[2]  # 65 tokens: 4 full blocks to publish
    params = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
    first = llm.generate([shared], params, use_tqdm=False)[0]
    second = llm.generate([shared], params, use_tqdm=False)[0]
    assert second.num_cached_tokens == 64
    assert second.outputs[0].token_ids == first.outputs[0].token_ids


def test_fp8_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="fp8 is not implemented"):
        EngineConfig(kv_cache_dtype="fp8")
    with pytest.raises(ValueError, match="kv_cache_dtype"):
        EngineConfig(kv_cache_dtype="int2")
