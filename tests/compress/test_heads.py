"""Retrieval scoring on hand-made attention patterns, the KV policy built from scores, and the real builtin model."""

import json

import pytest
import torch

from ctxops.compress.dense import load_model
from ctxops.compress.head_report import write_heads
from ctxops.compress.heads import HeadScores, copy_paste_hits, needle_probes, score_heads
from ctxops.engine.kv_head_policy import HeadPolicy, HeadPolicyError
from ctxops.models.config import ModelConfig
from ctxops.models.tokenizer import Tokenizer


def _one_hot_rows(targets: list[list[int]], length: int) -> torch.Tensor:
    """(heads, steps, length) attention where head h at step s looks only at targets[h][s]."""
    attention = torch.full((len(targets), len(targets[0]), length), 0.01)
    for h, row in enumerate(targets):
        for s, position in enumerate(row):
            attention[h, s, position] = 1.0
    return attention


def test_copy_paste_counts_only_in_needle_and_same_token():
    ids = torch.tensor([5, 6, 7, 8, 9, 7, 8, 9, 1, 1])  # the needle's answer is positions 2..4 (7, 8, 9)
    answer = range(2, 5)
    produced = torch.tensor([7, 8, 9])
    attention = _one_hot_rows(
        [
            [2, 3, 4],  # copies each answer token from the needle: 3 hits
            [5, 6, 7],  # the same tokens, but outside the needle: 0
            [3, 3, 3],  # in the needle, only step 1's produced token matches: 1
            [0, 1, 9],  # never looks at the needle: 0
        ],
        len(ids),
    )
    assert copy_paste_hits(attention, ids, produced, answer).tolist() == [3, 0, 1, 0]


def test_policy_groups_query_heads_by_kv_head():
    scores = HeadScores(torch.tensor([[0.0, 0.5, 0.0, 0.0], [0.05, 0.0, 0.0, 0.2]]), 1, 1, 1.0)
    policy = scores.policy(num_kv_heads=2, threshold=0.1, sink=4, recent=60)
    assert policy.retrieval == ((True, False), (False, True))
    assert policy.retrieval_fraction == 0.5
    # half the KV heads keep 1000 tokens, the other half 64: (1000 + 64) / 2000
    assert policy.kept_fraction(1000) == pytest.approx(0.532)
    assert policy.kept_fraction(10) == 1.0  # shorter than the window: nothing to drop


def test_policy_for_another_model_is_refused(tmp_path):
    policy = HeadPolicy(((True, False),) * 3, num_attention_heads=4)
    file = tmp_path / "policy.json"
    file.write_text(json.dumps(policy.to_dict()))
    loaded = HeadPolicy.from_file(file)
    assert loaded == policy
    builtin = ModelConfig.from_path(load_model("builtin")[1])  # 4 layers
    with pytest.raises(HeadPolicyError, match="3 layers.*this model has 4"):
        loaded.check_model(builtin)
    file.write_text('{"scores": []}')
    with pytest.raises(HeadPolicyError, match="not a head policy"):
        HeadPolicy.from_file(file)


def test_builtin_model_has_retrieval_heads(tmp_path):
    model, path = load_model("builtin")
    probes = needle_probes(Tokenizer(path), [512], [0.25, 0.75], 2)
    assert len(probes) == 4 and all(p.answer_len == 7 for p in probes)  # 7 digits, one token each
    scores = score_heads(model, probes)
    assert scores.scores.shape == (4, 4)
    assert scores.answer_accuracy > 0.5  # it retrieves, so copy-paste can be measured
    retrieval = scores.retrieval_heads()
    assert 0 < int(retrieval.sum()) < 16  # some heads copy, most do not
    content = write_heads(tmp_path, scores, scores.policy(2), 0.1, {"lengths": [512]})
    assert content["num_retrieval_heads"] == int(retrieval.sum())
    assert (tmp_path / "heatmap.svg").read_text().startswith("<svg")
    HeadPolicy.from_file(tmp_path / "head_policy.json").check_model(model.config)
