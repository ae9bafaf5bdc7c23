"""Head-split KV storage: ring slots and step plans, and the split engine against the masked reference it replaced."""

from __future__ import annotations

import json

import pytest
import torch

from ctxops import LLM, SamplingParams
from ctxops.engine.kv_head_policy import HeadPolicy
from ctxops.models.split_kv import ring_slot, ring_step

# builtin: 4 layers x 2 KV heads (4 query heads); layer 1 keeps its KV heads whole, as `compress heads` found
POLICY = HeadPolicy(((False, False), (True, True), (False, True), (False, False)), 4, sink=4, recent=24)
PARAMS = SamplingParams(max_tokens=24, temperature=0, ignore_eos=True, logprobs=3)


def test_a_ring_keeps_the_sinks_and_the_last_recent_positions():
    sink, recent = 2, 5
    slots = {}
    for pos in range(40):
        slots[ring_slot(pos, sink, recent)] = pos
        kept = sorted(slots.values())
        window = [p for p in range(pos + 1) if p < sink or p > pos - recent]
        assert kept == window  # what the ring holds after writing ``pos`` is exactly the masked rule's window
    assert set(slots) == set(range(sink + recent))


def test_a_step_writes_only_what_the_ring_keeps_and_reads_before_a_chunk():
    # decode of ring 3 at position 30; a prefill chunk of ring 1 covering positions 10..40 (sink 2, recent 5)
    step = ring_step([(3, 30, 31), (1, 10, 40)], num_decodes=1, sink=2, recent=5)
    slots, rows = step.write_slots.tolist(), step.write_rows.tolist()
    assert len(set(slots)) == len(slots)  # no two writes of a step share a slot
    assert rows == [0, 26, 27, 28, 29, 30]  # the decode row, then the chunk's last 5 tokens (35..39)
    assert slots[0] == 3 * 7 + ring_slot(30, 2, 5)
    assert step.decode_rings.tolist() == [[3]] and step.decode_lens.tolist() == [7]
    assert step.prefill_reads == [(1, 7)]  # 10 tokens before the chunk: the ring is full (2 + 5 slots)
    assert ring_step([(0, 0, 3)], 0, 2, 5).prefill_reads == [(0, 0)]  # a first chunk reads nothing


def _policy_file(tmp_path, policy: HeadPolicy) -> str:
    file = tmp_path / "policy.json"
    file.write_text(json.dumps(policy.to_dict()))
    return str(file)


def _prompts() -> list[list[int]]:
    g = torch.Generator().manual_seed(3)
    return [torch.randint(5, 2000, (n,), generator=g).tolist() for n in (300, 117, 20)]


def test_split_storage_matches_the_masked_reference(tmp_path):
    """The engine's split (retrieval heads paged, streaming heads in rings) against the per-head mask over a full
    pool that it replaced: same greedy tokens, logprobs within float error, batched, decoding past the window."""
    split = LLM(
        "builtin",
        kv_cache_memory="8MiB",
        max_model_len=1024,
        max_num_seqs=4,
        kv_head_policy=_policy_file(tmp_path, POLICY),
    )
    plain = LLM("builtin", kv_cache_memory="8MiB", max_model_len=1024, max_num_seqs=4)
    full = plain.generate(_prompts(), PARAMS, use_tqdm=False)
    plain.engine.runner.head_window = (
        POLICY.head_window()
    )  # the reference: every token stored, streaming masked
    want = plain.generate(_prompts(), PARAMS, use_tqdm=False)
    got = split.generate(_prompts(), PARAMS, use_tqdm=False)
    for ours, ref in zip(got, want, strict=True):
        assert ours.outputs[0].token_ids == ref.outputs[0].token_ids
        for step, lps in enumerate(ours.outputs[0].logprobs):
            for token, lp in lps.items():
                assert lp.logprob == pytest.approx(ref.outputs[0].logprobs[step][token].logprob, abs=1e-4)
    # and the window does matter: the 300-token prompt decodes differently from a full cache
    assert got[0].outputs[0].token_ids != full[0].outputs[0].token_ids


def test_a_prompt_longer_than_a_step_is_chunked_and_later_chunks_see_the_ring(tmp_path):
    """A 300-token prompt in 64-token steps: the first chunk is exact, later chunks' streaming heads see sink +
    recent + the chunk (DuoAttention's chunked prefill); a prompt within the ring stays exact when chunked."""
    file = _policy_file(tmp_path, POLICY)
    settings = {"kv_cache_memory": "8MiB", "max_model_len": 1024, "max_num_seqs": 4, "kv_head_policy": file}
    whole = LLM("builtin", **settings)
    chunked = LLM("builtin", max_num_batched_tokens=16, **settings)
    short = [_prompts()[2][:28]]  # 28 tokens = sink + recent: every chunk's ring still holds all before it
    a = whole.generate(short, PARAMS, use_tqdm=False)[0].outputs[0]
    b = chunked.generate(short, PARAMS, use_tqdm=False)[0].outputs[0]
    assert a.token_ids == b.token_ids
    long = chunked.generate([_prompts()[0]], PARAMS, use_tqdm=False)[0].outputs[0]
    assert len(long.token_ids) == PARAMS.max_tokens  # runs to the end; its values are the chunked semantics
