"""Structured pruning: GQA-consistent plans, retrieval heads kept, and the pruned directory against the masked original."""

import json

import pytest
import torch
import transformers

from ctxops.compress.dense import Masks, dense_forward, load_model
from ctxops.compress.prune import PruneError, kept_head_count, plan_pruning
from ctxops.compress.prune_job import prune_model


def test_kept_head_counts_stay_gqa_consistent():
    assert kept_head_count(4, 2, 0.25) == 2  # 3 is not reachable with 2 KV groups: the tie goes to fewer
    assert kept_head_count(32, 8, 0.25) == 24  # 8 groups of 3
    assert kept_head_count(9, 3, 0.34) == 6
    assert kept_head_count(4, 2, 0.0) == 4


def test_plan_keeps_retrieval_heads_and_groups():
    importance = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.2, 0.1]])  # one layer, 8 heads, 4 KV groups
    protect = torch.zeros(1, 8)
    protect[0, 7] = 0.6  # the weakest head by activation is a retrieval head
    plan = plan_pruning(importance, torch.rand(1, 10), 4, 0.5, 0.3, protect)
    assert 7 in plan.heads[0] and len(plan.heads[0]) == 4
    groups = {h // 2 for h in plan.heads[0]}
    per_group = [sum(1 for h in plan.heads[0] if h // 2 == g) for g in groups]
    assert len(set(per_group)) == 1  # every kept group keeps the same number of query heads
    assert plan.intermediate_size == 7
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(PruneError, match=r"must be in \[0, 1\)"):
            plan_pruning(importance, torch.rand(1, 10), 4, bad, 0.3)


def test_pruned_model_loads_in_transformers_with_the_masked_logits(tmp_path):
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"scores": [[0.0] * 4, [0.6, 0.5, 0.0, 0.0], [0.0] * 4, [0.0] * 4]}))
    result = prune_model(
        "builtin", tmp_path / "pruned", 0.25, 0.3, head_scores=str(scores), samples=2, length=512
    )
    assert result["heads"]["after"] == 2 and result["retrieval_heads"] == {"total": 2, "kept": 2}
    assert result["parameters"]["after"] < result["parameters"]["before"]
    original, _ = load_model("builtin")
    heads, channels = torch.zeros(4, 4), torch.zeros(4, 768)
    for layer in range(4):
        heads[layer, result["kept_heads"][layer]] = 1.0
        channels[layer, result["kept_channels"][layer]] = 1.0
    pruned = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "pruned").eval()
    assert int(channels[0].sum()) == 538
    ids = torch.randint(4, 2048, (48,))
    with torch.inference_mode():
        want = dense_forward(original, ids, masks=Masks(heads, channels)).logits
        got = pruned(ids[None]).logits[0].float()
        plain = (
            transformers.AutoModelForCausalLM.from_pretrained(result["source"]).eval()(ids[None]).logits[0]
        )
    torch.testing.assert_close(dense_forward(original, ids).logits, plain.float(), atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)
