"""Structured pruning: drop attention heads and MLP channels, keeping retrieval heads, and write a smaller model.

Importance is activation-weighted magnitude measured on calibration text (Minitron's activation-based ranking,
scored like Wanda, |W| x ||X||): a head scores ||its output||_2 x ||its o_proj columns||_F, an MLP channel
||silu(gate) * up||_2 x ||its down_proj column||_2. Retrieval heads (``protect``) are kept before any other.

A Hugging Face config has one head count and one MLP width for every layer, so every layer loses the same number.
Grouped-query attention stays consistent: a layer keeps ``kv_keep`` KV heads and the same ``per_group`` query heads
of each, so the kept heads count ``kv_keep x per_group``; of the layouts giving the asked count, the one keeping
the most importance wins (dropping whole KV groups also shrinks the KV cache). Asked ratios round to the nearest
count such a layout reaches (the builtin model's 4 heads in 2 KV groups allow 4, 2 or 1).

This module knows weights, importance and shapes; it does not know files, tokenizers or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ctxops.models.llama import LlamaForCausalLM


class PruneError(ValueError):
    """Ratios out of range or a layout the model cannot take."""


@dataclass(frozen=True)
class PrunePlan:
    """What survives: per layer the kept query heads (grouped by KV head), KV heads and MLP channels."""

    heads: list[list[int]]  # per layer, kept query head indices, ascending
    kv_heads: list[list[int]]  # per layer, kept KV head indices, ascending
    channels: list[list[int]]  # per layer, kept MLP channels, ascending

    @property
    def num_heads(self) -> int:
        return len(self.heads[0])

    @property
    def num_kv_heads(self) -> int:
        return len(self.kv_heads[0])

    @property
    def intermediate_size(self) -> int:
        return len(self.channels[0])

    def masks(self, num_heads: int, intermediate: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(layers, heads) and (layers, intermediate) 0/1 masks of the same choice, for the unpruned model."""
        heads = torch.zeros(len(self.heads), num_heads)
        channels = torch.zeros(len(self.channels), intermediate)
        for layer, (kept_heads, kept_channels) in enumerate(zip(self.heads, self.channels, strict=True)):
            heads[layer, kept_heads] = 1.0
            channels[layer, kept_channels] = 1.0
        return heads, channels


def check_ratio(name: str, ratio: float) -> None:
    """Raise :class:`PruneError` unless ``ratio`` (a share to remove) is in [0, 1)."""
    if not 0.0 <= ratio < 1.0:
        raise PruneError(
            f"--{name} must be in [0, 1): the share to remove (0.25 drops a quarter); got {ratio:g}"
        )


def layouts(num_heads: int, num_kv_heads: int) -> list[tuple[int, int]]:
    """Every GQA-consistent (kv_keep, per_group) pair, as kept head counts go."""
    group = num_heads // num_kv_heads
    return [(kv, g) for kv in range(1, num_kv_heads + 1) for g in range(1, group + 1)]


def kept_head_count(num_heads: int, num_kv_heads: int, ratio: float) -> int:
    """The reachable kept count nearest ``num_heads x (1 - ratio)`` (ties keep fewer heads)."""
    want = num_heads * (1.0 - ratio)
    counts = sorted({kv * g for kv, g in layouts(num_heads, num_kv_heads)})
    return min(counts, key=lambda n: (abs(n - want), n))


def plan_pruning(
    head_importance: torch.Tensor,
    channel_importance: torch.Tensor,
    num_kv_heads: int,
    heads_ratio: float,
    mlp_ratio: float,
    protect: torch.Tensor | None = None,
) -> PrunePlan:
    """Choose the survivors. Importances: (layers, heads) and (layers, intermediate).

    ``protect``: (layers, heads) retrieval scores of the heads to keep first (0 for the others).
    """
    check_ratio("heads", heads_ratio)
    check_ratio("mlp", mlp_ratio)
    layers, num_heads = head_importance.shape
    group = num_heads // num_kv_heads
    score = head_importance.clone().float()
    if protect is not None:  # retrieval heads outrank every other head, the higher-scoring ones first
        score = score + protect.float() * (score.max() + 1.0) * num_heads * 100
    keep = kept_head_count(num_heads, num_kv_heads, heads_ratio)
    best: tuple[float, list[list[int]], list[list[int]]] | None = None
    for kv_keep, per_group in layouts(num_heads, num_kv_heads):
        if kv_keep * per_group != keep:
            continue
        total, heads, kvs = 0.0, [], []
        for layer in range(layers):
            grouped = score[layer].view(num_kv_heads, group)
            top = grouped.topk(per_group, dim=1)  # the best heads inside each group
            groups = top.values.sum(1).topk(kv_keep).indices.sort().values.tolist()
            total += float(top.values[groups].sum())
            kvs.append(groups)
            heads.append(sorted(g * group + int(i) for g in groups for i in top.indices[g]))
        if best is None or total > best[0]:
            best = (total, heads, kvs)
    assert best is not None
    width = channel_importance.shape[1]
    keep_channels = max(1, round(width * (1.0 - mlp_ratio)))
    channels = [row.topk(keep_channels).indices.sort().values.tolist() for row in channel_importance]
    return PrunePlan(best[1], best[2], channels)


def importance(model: LlamaForCausalLM, head_norms: torch.Tensor, channel_norms: torch.Tensor):
    """Activation-weighted magnitudes from squared activation norms summed over calibration tokens."""
    heads, channels = [], []
    d = model.config.head_dim
    for layer, block in enumerate(model.model.layers):
        o = block.self_attn.o_proj.weight.detach().float()  # (hidden, heads * head_dim)
        o_norm = o.view(o.shape[0], -1, d).pow(2).sum(dim=(0, 2)).sqrt()  # (heads,)
        heads.append(head_norms[layer].sqrt() * o_norm)
        down = block.mlp.down_proj.weight.detach().float()  # (hidden, intermediate)
        channels.append(channel_norms[layer].sqrt() * down.norm(dim=0))
    return torch.stack(heads), torch.stack(channels)


def pruned_state_dict(model: LlamaForCausalLM, plan: PrunePlan) -> dict[str, torch.Tensor]:
    """The model's tensors with the plan's rows and columns only, under Hugging Face names."""
    d = model.config.head_dim
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)

    def rows(heads: list[int]) -> torch.Tensor:
        return torch.tensor([h * d + i for h in heads for i in range(d)], dtype=torch.long)

    for layer in range(len(plan.heads)):
        p = f"model.layers.{layer}."
        q_rows, kv_rows = rows(plan.heads[layer]), rows(plan.kv_heads[layer])
        ch = torch.tensor(plan.channels[layer], dtype=torch.long)
        for name, index, dim in (
            ("self_attn.q_proj", q_rows, 0),
            ("self_attn.k_proj", kv_rows, 0),
            ("self_attn.v_proj", kv_rows, 0),
            ("self_attn.o_proj", q_rows, 1),
            ("mlp.gate_proj", ch, 0),
            ("mlp.up_proj", ch, 0),
            ("mlp.down_proj", ch, 1),
        ):
            state[p + name + ".weight"] = state[p + name + ".weight"].index_select(dim, index).contiguous()
            bias = p + name + ".bias"
            if bias in state and dim == 0:
                state[bias] = state[bias].index_select(0, index).contiguous()
    return state


def pruned_config(raw: dict, plan: PrunePlan, head_dim: int) -> dict:
    """The Hugging Face config.json of the pruned model (head_dim written out: hidden / heads no longer gives it)."""
    return {
        **raw,
        "num_attention_heads": plan.num_heads,
        "num_key_value_heads": plan.num_kv_heads,
        "intermediate_size": plan.intermediate_size,
        "head_dim": head_dim,
    }
