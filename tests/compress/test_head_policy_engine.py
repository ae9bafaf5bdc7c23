"""The engine's kv_head_policy: decode masks per KV head, the model check, and the bad-input errors."""

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


def test_stats_count_the_bytes_streaming_heads_never_read(tmp_path, needles):
    policy = HeadPolicy(((False, False), (True, True), (False, False), (False, False)), 4, sink=4, recent=60)
    file = tmp_path / "p.json"
    file.write_text(json.dumps(policy.to_dict()))
    llm = LLM("builtin", kv_cache_memory="32MiB", kv_head_policy=str(file))
    engine = llm.engine
    engine.add_request("r", needles[0], SamplingParams(max_tokens=4, temperature=0))
    engine.step()  # the prompt's prefill
    n = engine.sequences["r"].num_kv_tokens
    per_token = engine.cache_info.bytes_per_token
    # 3 of 4 layers keep 64 of n tokens: three quarters of the (n - 64) dropped tokens' bytes
    assert engine.stats().kv_head_policy_masked_bytes == round(0.75 * (n - 64) * per_token)
    assert engine.stats().kv_cache_usage > 0  # the pool itself still holds every token
