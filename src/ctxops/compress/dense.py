"""A cache-free forward pass over one sequence of a ctxops Llama, exposing what the engine's paged path hides.

Compression needs to look inside the model: the attention probabilities of every head (retrieval scores), the
activation each attention head and each MLP channel produces (pruning importance), and the logits with some
heads or channels switched off (the pruning check). :func:`dense_forward` runs the unfused
:class:`~ctxops.models.llama.LlamaForCausalLM` modules over a (T,) sequence with plain causal attention and
records those on request.

This module knows the Llama layer math and tensors; it does not know the engine, its KV pool, tasks or files
beyond loading a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ctxops.models.config import ModelConfig
from ctxops.models.llama import LlamaForCausalLM
from ctxops.models.loader import load_weights, resolve_model_path
from ctxops.models.rope import apply_rotary


def load_model(model: str | Path, dtype: torch.dtype = torch.float32) -> tuple[LlamaForCausalLM, Path]:
    """``builtin`` or a model directory -> the unfused model in ``dtype`` (eval mode) and its resolved path."""
    path = resolve_model_path(model)
    config = ModelConfig.from_path(path)
    config.check_engine_support()
    llm = LlamaForCausalLM(config).to(dtype)
    if config.tie_word_embeddings:
        llm.lm_head.weight = llm.model.embed_tokens.weight
    load_weights(llm, path, dtype)
    return llm.eval(), path


@dataclass
class Trace:
    """What one forward pass recorded."""

    logits: torch.Tensor  # (T, vocab) fp32
    # per layer, (heads, len(rows), T) attention probabilities of the asked query rows (empty when none asked)
    attentions: list[torch.Tensor] = field(default_factory=list)
    head_norms: torch.Tensor | None = None  # (layers, heads): sum over tokens of ||head output||^2
    channel_norms: torch.Tensor | None = None  # (layers, intermediate): sum over tokens of activation^2


@dataclass(frozen=True)
class Masks:
    """Heads and MLP channels switched off (their output multiplied by zero), per layer."""

    heads: torch.Tensor | None = None  # (layers, heads) float: 1 keeps a query head, 0 drops it
    channels: torch.Tensor | None = None  # (layers, intermediate) float: 1 keeps an MLP channel


def _attention(
    attn: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rows: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-head outputs (T, heads, head_dim) and, for ``rows``, the probabilities (heads, len(rows), T)."""
    t = x.shape[0]
    q = attn.q_proj(x).view(t, attn.num_heads, attn.head_dim)
    k = attn.k_proj(x).view(t, attn.num_kv_heads, attn.head_dim)
    v = attn.v_proj(x).view(t, attn.num_kv_heads, attn.head_dim)
    if attn.qk_norm:
        q, k = attn.q_norm(q), attn.k_norm(k)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    group = attn.num_heads // attn.num_kv_heads
    k = k.repeat_interleave(group, dim=1).transpose(0, 1)  # (heads, T, head_dim)
    v = v.repeat_interleave(group, dim=1).transpose(0, 1)
    if rows is None:  # no probabilities wanted: the fused kernel (and far less memory for training)
        out = F.scaled_dot_product_attention(q.transpose(0, 1), k, v, is_causal=True, scale=attn.scale)
        return out.transpose(0, 1), None
    logits = torch.matmul(q.transpose(0, 1), k.transpose(1, 2)).float() * attn.scale  # (heads, T, T)
    causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
    probs = logits.masked_fill(~causal, float("-inf")).softmax(-1)
    out = torch.matmul(probs.to(v.dtype), v).transpose(0, 1)  # (T, heads, head_dim)
    return out, probs[:, rows]


def dense_forward(
    model: LlamaForCausalLM,
    ids: torch.Tensor,
    *,
    rows: torch.Tensor | None = None,
    masks: Masks | None = None,
    record_norms: bool = False,
) -> Trace:
    """Run (T,) token ids through ``model`` (unfused) with full causal attention.

    ``rows``: query positions whose attention probabilities to keep; ``masks``: heads / channels to zero;
    ``record_norms``: accumulate the squared activation norms pruning ranks by.
    """
    config = model.config
    positions = torch.arange(ids.shape[0])
    cos, sin = model.rotary.cos_sin(positions)
    x = model.model.embed_tokens(ids)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    trace = Trace(logits=torch.empty(0))
    if record_norms:
        trace.head_norms = torch.zeros(config.num_hidden_layers, config.num_attention_heads)
        trace.channel_norms = torch.zeros(config.num_hidden_layers, config.intermediate_size)
    for i, layer in enumerate(model.model.layers):
        heads, probs = _attention(layer.self_attn, layer.input_layernorm(x), cos, sin, rows)
        if probs is not None:
            trace.attentions.append(probs)
        if masks is not None and masks.heads is not None:
            heads = heads * masks.heads[i].to(heads.dtype)[None, :, None]
        if trace.head_norms is not None:
            trace.head_norms[i] += heads.detach().float().pow(2).sum(dim=(0, 2))
        x = x + layer.self_attn.o_proj(heads.reshape(ids.shape[0], -1))
        mlp = layer.mlp
        hidden = layer.post_attention_layernorm(x)
        act = nn.functional.silu(mlp.gate_proj(hidden)) * mlp.up_proj(hidden)  # (T, intermediate)
        if masks is not None and masks.channels is not None:
            act = act * masks.channels[i].to(act.dtype)
        if trace.channel_norms is not None:
            trace.channel_norms[i] += act.detach().float().pow(2).sum(dim=0)
        x = x + mlp.down_proj(act)
    trace.logits = model.compute_logits(model.model.norm(x))
    return trace
