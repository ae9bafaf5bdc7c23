"""Attention over a paged KV cache.

Each layer's cache is a pair of tensors shaped (num_blocks, block_size, num_kv_heads, head_dim). A step's new keys
and values are written into their slots (``slot_mapping``), then every query attends over its sequence's blocks
(``block_table``). Decodes (one query per sequence) run as one padded, masked batch; prefill chunks run one
sequence at a time, directly on the fresh keys when nothing precedes them, else on keys gathered from the cache.

This module knows tensors, slots and block tables. It does not know sequences, sampling or the scheduler: the model
runner builds :class:`AttentionMetadata` and passes it down explicitly (no global context).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass(frozen=True, slots=True)
class PrefillSegment:
    """One sequence's prefill chunk inside the flattened batch."""

    start: int  # first row of this chunk in the (T, ...) batch
    num_query_tokens: int  # tokens computed now
    context_len: int  # tokens attended to: already cached + computed now
    block_table: torch.Tensor  # (num_blocks_of_seq,) long
    mask: (
        torch.Tensor | None
    )  # (num_query_tokens, context_len) bool, None when the chunk starts at position 0


@dataclass(frozen=True, slots=True)
class AttentionMetadata:
    """Where a step's tokens go in the cache and what each of them attends to.

    Rows ``[0, num_decodes)`` of the batch are decode tokens, one per sequence; prefill chunks follow.
    """

    slot_mapping: torch.Tensor  # (T,) long: block_id * block_size + offset for every new token
    num_decodes: int = 0
    decode_block_tables: torch.Tensor | None = None  # (num_decodes, max_blocks) long, padded with block 0
    decode_mask: torch.Tensor | None = None  # (num_decodes, 1, 1, max_blocks * block_size) bool
    prefills: list[PrefillSegment] = field(default_factory=list)
    rope_seq_lens: torch.Tensor | None = None  # (T,) sequence length per token, for dynamic NTK RoPE


def write_kv(
    k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slots: torch.Tensor
):
    """Store (T, num_kv_heads, head_dim) keys and values into their cache slots."""
    num_kv_heads, head_dim = k_cache.shape[-2:]
    k_cache.view(-1, num_kv_heads, head_dim).index_copy_(0, slots, k.to(k_cache.dtype))
    v_cache.view(-1, num_kv_heads, head_dim).index_copy_(0, slots, v.to(v_cache.dtype))


def gather_blocks(cache: torch.Tensor, block_tables: torch.Tensor) -> torch.Tensor:
    """(B, max_blocks) block ids -> (B, num_kv_heads, max_blocks * block_size, head_dim) keys or values."""
    batch, max_blocks = block_tables.shape
    _, block_size, num_kv_heads, head_dim = cache.shape
    gathered = cache[block_tables].view(batch, max_blocks * block_size, num_kv_heads, head_dim)
    return gathered.transpose(1, 2)


def _decode(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata, scale: float
):
    assert meta.decode_block_tables is not None
    keys = gather_blocks(k_cache, meta.decode_block_tables)
    values = gather_blocks(v_cache, meta.decode_block_tables)
    query = q[: meta.num_decodes].unsqueeze(2)  # (N, num_heads, 1, head_dim)
    out = F.scaled_dot_product_attention(
        query, keys, values, attn_mask=meta.decode_mask, scale=scale, enable_gqa=True
    )
    return out.squeeze(2)  # (N, num_heads, head_dim)


def _prefill(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    seg: PrefillSegment,
    scale: float,
) -> torch.Tensor:
    rows = slice(seg.start, seg.start + seg.num_query_tokens)
    query = q[rows].transpose(0, 1).unsqueeze(0)  # (1, num_heads, q_len, head_dim)
    if seg.mask is None:  # nothing cached before this chunk: attend over the fresh keys, causally
        keys = k[rows].transpose(0, 1).unsqueeze(0)
        values = v[rows].transpose(0, 1).unsqueeze(0)
        out = F.scaled_dot_product_attention(
            query, keys, values, is_causal=True, scale=scale, enable_gqa=True
        )
    else:
        table = seg.block_table.unsqueeze(0)
        keys = gather_blocks(k_cache, table)[:, :, : seg.context_len]
        values = gather_blocks(v_cache, table)[:, :, : seg.context_len]
        out = F.scaled_dot_product_attention(
            query, keys, values, attn_mask=seg.mask, scale=scale, enable_gqa=True
        )
    return out[0].transpose(0, 1)  # (q_len, num_heads, head_dim)


def paged_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    meta: AttentionMetadata,
    scale: float,
) -> torch.Tensor:
    """Write k/v to the cache and attend. q: (T, num_heads, head_dim); k, v: (T, num_kv_heads, head_dim)."""
    write_kv(k_cache, v_cache, k, v, meta.slot_mapping)
    if k_cache.dtype != q.dtype:
        raise TypeError(f"KV cache dtype {k_cache.dtype} differs from the model's {q.dtype}")
    out = torch.empty_like(q)
    if meta.num_decodes:
        out[: meta.num_decodes] = _decode(q, k_cache, v_cache, meta, scale)
    for seg in meta.prefills:
        out[seg.start : seg.start + seg.num_query_tokens] = _prefill(q, k, v, k_cache, v_cache, seg, scale)
    return out


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Reference causal attention of one whole sequence, (T, heads, head_dim) in and out, no cache, no SDPA."""
    num_heads, num_kv_heads = q.shape[1], k.shape[1]
    repeat = num_heads // num_kv_heads
    k = k.repeat_interleave(repeat, dim=1)
    v = v.repeat_interleave(repeat, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q.float(), k.float()) * scale
    seq_len = q.shape[0]
    causal = torch.ones(seq_len, seq_len, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v.float()).to(q.dtype)
