"""Our engine against Hugging Face transformers on random-weight tiny models of every supported architecture
and every RoPE scaling: identical greedy tokens for 32 new tokens and close logprobs, with prompts that span several
KV blocks, batched together."""

from __future__ import annotations

import pytest
import torch

from ctxops import LLM, SamplingParams
from hf_models import ARCHITECTURES, ROPE_SCALINGS, load_hf, make_hf_model

CASES = [(arch, None) for arch in ARCHITECTURES] + [("llama", rope) for rope in ROPE_SCALINGS]
PROMPT_LENS = (37, 50, 70)  # 3, 4 and 5 blocks of 16 tokens
NEW_TOKENS = 32


def _prompts(vocab_size: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(5, vocab_size, (n,), generator=g).tolist() for n in PROMPT_LENS]


def _hf_greedy(directory, prompt: list[int], dtype=torch.float32):
    # A fresh model per prompt: HF's dynamic-NTK module keeps state between generate calls.
    hf = load_hf(directory, dtype)
    out = hf.generate(
        torch.tensor([prompt]),
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
        pad_token_id=0,
    )
    logprobs = [torch.log_softmax(step[0].float(), -1) for step in out.logits]
    return out.sequences[0, len(prompt) :].tolist(), logprobs


@pytest.mark.parametrize(("arch", "rope"), CASES, ids=[f"{a}-{r or 'default'}" for a, r in CASES])
def test_greedy_tokens_and_logprobs_match_transformers(tmp_path, arch, rope):
    # dynamic NTK only changes anything past max_position_embeddings: make the prompts cross it
    overrides = {"max_position_embeddings": 64} if rope == "dynamic" else {}
    directory = make_hf_model(tmp_path, arch, rope, **overrides)
    llm = LLM(str(directory), dtype="float32", kv_cache_memory="8MiB", max_model_len=512, block_size=16)
    prompts = _prompts(llm.engine.model_config.vocab_size)
    params = SamplingParams(max_tokens=NEW_TOKENS, temperature=0, ignore_eos=True, logprobs=5)
    outputs = llm.generate(prompts, params, use_tqdm=False)  # all prompts in one batch
    for prompt, out in zip(prompts, outputs, strict=True):
        hf_tokens, hf_logprobs = _hf_greedy(directory, prompt)
        assert out.outputs[0].token_ids == hf_tokens
        for step, ours in enumerate(out.outputs[0].logprobs):
            for token_id, lp in ours.items():
                assert lp.logprob == pytest.approx(hf_logprobs[step][token_id].item(), abs=1e-4)


def test_bf16_runs_close_to_transformers(tmp_path):
    directory = make_hf_model(tmp_path, "llama")
    llm = LLM(str(directory), dtype="bfloat16", kv_cache_memory="8MiB", max_model_len=512)
    assert llm.cache_info.dtype == "bfloat16"
    prompt = _prompts(llm.engine.model_config.vocab_size)[1]
    out = llm.generate(
        [prompt], SamplingParams(max_tokens=8, temperature=0, ignore_eos=True, logprobs=5), use_tqdm=False
    )[0]
    hf_tokens, hf_logprobs = _hf_greedy(directory, prompt, torch.bfloat16)
    # bf16 kernels differ (SDPA vs eager): the first token must agree and logprobs stay within bf16 noise
    assert out.outputs[0].token_ids[0] == hf_tokens[0]
    for token_id, lp in out.outputs[0].logprobs[0].items():
        assert lp.logprob == pytest.approx(hf_logprobs[0][token_id].item(), abs=0.1)
