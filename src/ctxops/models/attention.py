"""Attention over a paged KV cache.

Each layer's cache is a pair of tensors shaped (num_blocks, block_size, num_kv_heads, head_dim). A step's new keys
and values are written into their slots (``slot_mapping``), then every query attends over its sequence's blocks
(``block_table``). A sequence whose blocks form one contiguous run is read as a view, without copying. Decodes (one
query per sequence) run as one padded, masked batch; when they all start with the same cached blocks (one document,
many questions) that prefix is read once for all of them and the softmax is merged (cascade attention). Prefill
chunks run one sequence at a time, on the fresh keys when nothing precedes them, else on keys from the cache.

Quantized caches (:class:`~ctxops.models.kv_quant.QuantizedKVCache`, int8/int4) take another path, in
:mod:`ctxops.models.quantized_attention`. A head policy's split cache (:class:`~ctxops.models.split_kv.SplitKVCache`)
runs its retrieval heads' queries down the paged path here and its streaming heads' over their rings. The step's metadata types live in :mod:`ctxops.models.attention_metadata`
and are re-exported here.

This module knows tensors, slots and block tables. It does not know sequences, sampling or the scheduler: the model
runner builds :class:`AttentionMetadata` and passes it down explicitly (no global context).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ctxops.models.attention_metadata import (  # re-exported: the model runner builds these
    AttentionMetadata,
    BlockSpan,
    DecodeBatch,
    HeadWindow,
    LoneDecode,
    PrefillSegment,
    QuantStep,
    RingStep,
    SeqRead,
    observe_chunk,
)
from ctxops.models.kv_quant import QuantizedKVCache
from ctxops.models.native import kernels as native_kernels
from ctxops.models.quantized_attention import quantized_attention, read_quantized
from ctxops.models.split_kv import SplitKVCache, ring_decode, ring_prefill, ring_write

__all__ = [
    "AttentionMetadata",
    "BlockSpan",
    "DecodeBatch",
    "HeadWindow",
    "LoneDecode",
    "PrefillSegment",
    "QuantStep",
    "RingStep",
    "SeqRead",
    "gather_blocks",
    "naive_attention",
    "paged_attention",
    "quantized_attention",
    "read_quantized",
    "read_span",
    "write_kv",
]


def write_kv(
    k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slots: torch.Tensor
):
    """Store (T, num_kv_heads, head_dim) keys and values into their cache slots."""
    num_kv_heads, head_dim = k_cache.shape[-2:]
    k_cache.view(-1, num_kv_heads, head_dim).index_copy_(0, slots, k.to(k_cache.dtype))
    v_cache.view(-1, num_kv_heads, head_dim).index_copy_(0, slots, v.to(v_cache.dtype))


def read_span(cache: torch.Tensor, span: BlockSpan) -> torch.Tensor:
    """The span's slots as (count * block_size, num_kv_heads, head_dim): a view for a run, else a gathered copy."""
    num_blocks, block_size, num_kv_heads, head_dim = cache.shape
    if span.index is None:
        return cache[span.start : span.start + span.count].view(-1, num_kv_heads, head_dim)
    flat = cache.view(num_blocks, block_size * num_kv_heads * head_dim)
    return flat.index_select(0, span.index).view(-1, num_kv_heads, head_dim)


def gather_blocks(cache: torch.Tensor, block_tables: torch.Tensor) -> torch.Tensor:
    """(B, max_blocks) block ids -> (B, num_kv_heads, max_blocks * block_size, head_dim) keys or values."""
    batch, max_blocks = block_tables.shape
    num_blocks, block_size, num_kv_heads, head_dim = cache.shape
    flat = cache.view(num_blocks, block_size * num_kv_heads * head_dim)
    gathered = flat.index_select(0, block_tables.view(-1))
    return gathered.view(batch, max_blocks * block_size, num_kv_heads, head_dim).transpose(1, 2)


def _decode_plain(q: torch.Tensor, k_cache, v_cache, batch: DecodeBatch, scale: float) -> torch.Tensor:
    """No shared prefix: the native kernel reads the blocks in place.

    Without it, one SDPA call: a lone sequence reads its blocks as a view, a batch is gathered.
    """
    native = native_kernels()
    if native is not None:
        lens = batch.own_lens_tensor if batch.own_lens_tensor is not None else torch.tensor(batch.own_lens)
        return native.decode_attention(q, k_cache, v_cache, batch.own_tables, lens, scale)
    query = q.unsqueeze(2)  # (N, num_heads, 1, head_dim)
    if batch.num_seqs == 1:
        length = batch.own_lens[0]
        keys = read_span(k_cache, batch.own[0])[:length].transpose(0, 1).unsqueeze(0)
        values = read_span(v_cache, batch.own[0])[:length].transpose(0, 1).unsqueeze(0)
        mask = None
    else:
        keys = gather_blocks(k_cache, batch.own_tables)
        values = gather_blocks(v_cache, batch.own_tables)
        mask = batch.own_mask
    out = F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, scale=scale, enable_gqa=True)
    return out.squeeze(2)  # (N, num_heads, head_dim)


def _decode_windowed(
    q: torch.Tensor, k_cache, v_cache, batch: DecodeBatch, scale: float, window: HeadWindow, layer: int
) -> torch.Tensor:
    """Decodes under a head-aware KV policy: one SDPA call with a per-head mask (no cascade, no native kernel)."""
    keys = gather_blocks(k_cache, batch.own_tables)  # (N, kv_heads, L, head_dim)
    values = gather_blocks(v_cache, batch.own_tables)
    lengths = torch.tensor(batch.own_lens, dtype=torch.long)
    mask = window.mask(layer, lengths, keys.shape[2], q.shape[1] // keys.shape[1])
    out = F.scaled_dot_product_attention(
        q.unsqueeze(2), keys, values, attn_mask=mask, scale=scale, enable_gqa=True
    )
    return out.squeeze(2)  # (N, num_heads, head_dim)


def _decode_cascade(q: torch.Tensor, k_cache, v_cache, batch: DecodeBatch, scale: float) -> torch.Tensor:
    """Shared prefix read once for all N queries, own blocks per sequence, softmax merged across both."""
    assert batch.shared is not None
    n, num_heads, head_dim = q.shape
    num_kv_heads = k_cache.shape[2]
    group = num_heads // num_kv_heads
    # shared part: (kv_heads, N * group, head_dim) @ (kv_heads, head_dim, P) -> (kv_heads, N * group, P)
    q_shared = (
        q.view(n, num_kv_heads, group, head_dim)
        .permute(1, 0, 2, 3)
        .reshape(num_kv_heads, n * group, head_dim)
    )
    k_shared = read_span(k_cache, batch.shared).transpose(0, 1)  # (kv_heads, P, head_dim)
    v_shared = read_span(v_cache, batch.shared).transpose(0, 1)
    s_shared = torch.matmul(q_shared, k_shared.transpose(1, 2)).float().mul_(scale)
    # own part: (N, kv_heads, group, head_dim) @ (N, kv_heads, head_dim, R) -> (N, kv_heads, group, R)
    k_own = gather_blocks(k_cache, batch.own_tables)
    v_own = gather_blocks(v_cache, batch.own_tables)
    q_own = q.view(n, num_kv_heads, group, head_dim)
    s_own = torch.matmul(q_own, k_own.transpose(2, 3)).float().mul_(scale)
    s_own.masked_fill_(~batch.own_mask, float("-inf"))
    # merge the two softmaxes with a shared running max, laid out as (N, kv_heads, group)
    m_shared = s_shared.amax(-1).view(num_kv_heads, n, group).permute(1, 0, 2)
    m = torch.maximum(m_shared, s_own.amax(-1))
    p_shared = (s_shared - m.permute(1, 0, 2).reshape(num_kv_heads, n * group, 1)).exp_()
    p_own = (s_own - m.unsqueeze(-1)).exp_()
    denom = p_shared.sum(-1).view(num_kv_heads, n, group).permute(1, 0, 2) + p_own.sum(-1)
    dtype = v_shared.dtype
    o_shared = (
        torch.matmul(p_shared.to(dtype), v_shared).view(num_kv_heads, n, group, head_dim).permute(1, 0, 2, 3)
    )
    o_own = torch.matmul(p_own.to(dtype), v_own)  # (N, kv_heads, group, head_dim)
    out = (o_shared.float() + o_own.float()) / denom.unsqueeze(-1)
    return out.reshape(n, num_heads, head_dim).to(q.dtype)


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
        keys = read_span(k_cache, seg.blocks)[: seg.context_len].transpose(0, 1).unsqueeze(0)
        values = read_span(v_cache, seg.blocks)[: seg.context_len].transpose(0, 1).unsqueeze(0)
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
    layer: int = 0,
) -> torch.Tensor:
    """Write k/v to the cache and attend. q: (T, num_heads, head_dim); k, v: (T, num_kv_heads, head_dim).

    ``layer`` only tells a scorer (``meta.scorers``) which layer it observes.
    """
    if isinstance(k_cache, QuantizedKVCache):
        return quantized_attention(q, k, v, k_cache, meta, scale, layer)
    if isinstance(k_cache, SplitKVCache):
        return _split_attention(q, k, v, k_cache, meta, scale, layer)
    if k_cache.dtype != q.dtype:
        raise TypeError(f"KV cache dtype {k_cache.dtype} differs from the model's {q.dtype}")
    write_kv(k_cache, v_cache, k, v, meta.slot_mapping)
    out = torch.empty_like(q)
    if meta.decode is not None:
        n = meta.decode.num_seqs
        if meta.head_window is not None:
            out[:n] = _decode_windowed(q[:n], k_cache, v_cache, meta.decode, scale, meta.head_window, layer)
        else:
            decode = _decode_cascade if meta.decode.shared is not None else _decode_plain
            out[:n] = decode(q[:n], k_cache, v_cache, meta.decode, scale)
    for i, seg in enumerate(meta.prefills):
        out[seg.start : seg.start + seg.num_query_tokens] = _prefill(q, k, v, k_cache, v_cache, seg, scale)
        if meta.scorers and meta.scorers[i] is not None:
            keys = read_span(k_cache, seg.blocks)[: seg.context_len]
            observe_chunk(meta.scorers[i], layer, q, keys, seg, scale)
    return out


def _split_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cache: SplitKVCache,
    meta: AttentionMetadata,
    scale: float,
    layer: int,
) -> torch.Tensor:
    """Retrieval heads over the paged pool, streaming heads over their rings; outputs put back in head order.

    Each group's query heads are gathered into (T, group heads, head_dim) copies (a few KiB per decode row).
    """
    out = torch.empty_like(q)
    if cache.num_retrieval:
        rq, rkv = cache.retrieval_q, cache.retrieval_kv
        qr, kr, vr = q.index_select(1, rq), k.index_select(1, rkv), v.index_select(1, rkv)
        out[:, rq] = paged_attention(qr, kr, vr, cache.k, cache.v, meta, scale, layer)
    if cache.num_streaming:
        ring = meta.ring
        assert ring is not None, "a head-split cache needs the step's RingStep"
        sq, skv = cache.streaming_q, cache.streaming_kv
        qs, ks, vs = q.index_select(1, sq), k.index_select(1, skv), v.index_select(1, skv)
        streamed = torch.empty_like(qs)
        for seg, (ring_id, held) in zip(meta.prefills, ring.prefill_reads, strict=True):  # before the writes
            rows = slice(seg.start, seg.start + seg.num_query_tokens)
            streamed[rows] = ring_prefill(qs[rows], ks[rows], vs[rows], cache, ring_id, held, scale)
        ring_write(cache, ks, vs, ring)
        if meta.decode is not None:
            n = meta.decode.num_seqs
            streamed[:n] = ring_decode(qs[:n], cache, ring, scale, native_kernels())
        out[:, sq] = streamed
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
