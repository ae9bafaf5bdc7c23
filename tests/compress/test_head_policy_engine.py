"""The engine's kv_head_policy: split storage (retrieval heads paged, streaming heads in rings), real bytes, errors."""

import json

import pytest

from ctxops import LLM, SamplingParams
from ctxops.compress.heads import needle_probes
from ctxops.engine.config import EngineConfig
from ctxops.engine.kv_head_policy import HeadPolicy, HeadPolicyError
from ctxops.models.loader import resolve_model_path
from ctxops.models.tokenizer import Tokenizer

GREEDY = SamplingParams(max_tokens=8, temperature=0)


def _policy(tmp_path, name: str, retrieval: bool, layers: int = 4, recent: int = 64) -> str:
    file = tmp_path / name
    policy = HeadPolicy(((retrieval, retrieval),) * layers, num_attention_heads=4, sink=4, recent=recent)
    file.write_text(json.dumps(policy.to_dict()))
    return str(file)


@pytest.fixture(scope="module")
def needles():
    tokenizer = Tokenizer(resolve_model_path("builtin"))
    probes = needle_probes(tokenizer, [768], [0.3, 0.6], 1)
    prompts = [{"prompt_token_ids": p.ids[: p.first_answer_row + 1].tolist()} for p in probes]
    return prompts


def _texts(llm: LLM, prompts) -> list[str]:
    return [o.outputs[0].text for o in llm.generate(prompts, GREEDY, use_tqdm=False)]


def test_all_retrieval_matches_full_cache_and_all_streaming_forgets(tmp_path, needles):
    full = _texts(LLM("builtin", kv_cache_memory="32MiB"), needles)
    every = LLM("builtin", kv_cache_memory="32MiB", kv_head_policy=_policy(tmp_path, "all.json", True))
    assert _texts(every, needles) == full  # the masked decode path reads every token: same greedy tokens
    none = LLM(
        "builtin", kv_cache_memory="32MiB", kv_head_policy=_policy(tmp_path, "none.json", False, recent=8)
    )
    forgotten = _texts(none, needles)
    assert forgotten != full  # 4 sink + 8 recent tokens cannot hold a needle 200+ tokens back


def test_policy_of_another_model_and_bad_combinations(tmp_path):
    other = _policy(tmp_path, "other.json", True, layers=6)
    with pytest.raises(HeadPolicyError, match="6 layers.*this model has 4"):
        LLM("builtin", kv_cache_memory="32MiB", kv_head_policy=other)
    with pytest.raises(ValueError, match="is not a file"):
        EngineConfig(kv_head_policy=str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="without a press"):
        EngineConfig(kv_head_policy=other, kv_press="snapkv")


def test_the_pool_holds_only_retrieval_heads_and_stats_count_real_bytes(tmp_path, needles):
    policy = HeadPolicy(((False, False), (True, True), (False, False), (False, False)), 4, sink=4, recent=60)
    file = tmp_path / "p.json"
    file.write_text(json.dumps(policy.to_dict()))
    llm = LLM("builtin", kv_cache_memory="32MiB", max_num_seqs=8, kv_head_policy=str(file))
    info = llm.cache_info
    # 2 of 8 KV heads (fp32, head_dim 64) are paged: 1024 of 4096 bytes per token; 8 rings of 64 slots x 6 heads
    assert (info.bytes_per_token, info.full_bytes_per_token) == (1024, 4096)
    assert info.ring_bytes == 8 * 2 * 64 * 6 * 64 * 4
    assert info.total_bytes == info.num_blocks * info.bytes_per_block + info.ring_bytes <= 32 * 2**20
    # the 30.5 MiB left after the rings hold 3.8x the tokens a full cache of 32 MiB holds
    assert info.num_tokens == (32 * 2**20 - info.ring_bytes) // 1024 // 16 * 16 > 3.8 * 8192
    engine = llm.engine
    engine.add_request("r", needles[0], SamplingParams(max_tokens=4, temperature=0))
    engine.step()  # the prompt's prefill
    n = engine.sequences["r"].num_kv_tokens
    held = -(-n // 16) * info.bytes_per_block + info.ring_bytes_per_sequence
    stats = engine.stats()
    assert stats.kv_bytes_in_use == held == info.sequence_bytes(n)
    assert stats.kv_head_policy_saved_bytes == n * 4096 - held > 0.6 * n * 4096  # 622 tokens: 67% saved


def test_more_sequences_fit_the_same_budget(tmp_path):
    policy = HeadPolicy(((False, False), (True, True), (False, False), (False, False)), 4, sink=4, recent=60)
    file = tmp_path / "p.json"
    file.write_text(json.dumps(policy.to_dict()))
    prompts = [[5 + i] * 1000 for i in range(8)]  # 8 prompts of 1,000 tokens: 63 blocks each
    budget = {"kv_cache_memory": 63 * 16 * 4096 * 2, "max_model_len": 1024}  # a full cache holds two of them
    params = SamplingParams(max_tokens=2, temperature=0, ignore_eos=True)
    # under the policy one costs 63 blocks of 16 KiB plus a 192 KiB ring (the 8 rings come first): 6 fit
    for settings, fits in (({}, 2), ({"kv_head_policy": str(file), "max_num_seqs": 8}, 6)):
        engine = LLM("builtin", max_num_batched_tokens=8192, **budget, **settings).engine
        for i, prompt in enumerate(prompts):
            engine.add_request(str(i), {"prompt_token_ids": prompt}, params)
        engine.step()
        assert engine.stats().num_running == fits


def test_rings_come_back_when_sequences_finish_or_are_preempted(tmp_path):
    policy = HeadPolicy(((False, False), (True, True), (False, False), (False, False)), 4, sink=4, recent=12)
    file = tmp_path / "p.json"
    file.write_text(json.dumps(policy.to_dict()))
    # 40 blocks of retrieval heads after 6 rings: six 100-token prompts growing to 140 tokens must preempt
    ring = 2 * 16 * 6 * 64 * 4
    llm = LLM(
        "builtin",
        kv_cache_memory=6 * ring + 40 * 16 * 1024,
        max_model_len=256,
        max_num_seqs=6,
        kv_head_policy=str(file),
    )
    prompts = [{"prompt_token_ids": [5 + i] * 100} for i in range(6)]
    outs = llm.generate(
        prompts, SamplingParams(max_tokens=40, temperature=0, ignore_eos=True), use_tqdm=False
    )
    engine = llm.engine
    assert all(len(o.outputs[0].token_ids) == 40 for o in outs)
    assert engine.stats().num_preemptions > 0
    assert sorted(engine.block_manager.free_windows) == list(range(6))  # every ring is back
    engine.block_manager.check_invariants([])
