"""Attention over quantized (int8/int4) paged KV caches: the same inputs and output as ``paged_attention``.

A step's tokens that complete a block are quantized into it, together with the full-precision window holding the
block's earlier tokens; the rest go to the window. Decodes read the codes straight into one fp32 scratch buffer
with scales folded into scores and weights; prefill chunks read cached tokens as stored and their own tokens in
full precision. :class:`~ctxops.models.attention_metadata.QuantStep` says where everything goes.

This module knows codes, scales, windows and block ids (:mod:`ctxops.models.kv_quant` holds the formats); it does
not know sequences or the scheduler.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ctxops.models.attention_metadata import AttentionMetadata, QuantStep, SeqRead, observe_chunk
from ctxops.models.kv_quant import QuantizedKVCache


def write_quantized(cache: QuantizedKVCache, k: torch.Tensor, v: torch.Tensor, plan: QuantStep) -> None:
    """Quantize the blocks this step completes, then put the remaining fresh tokens into their windows."""
    k_win, v_win = cache.k_window_flat, cache.v_window_flat
    heads, dim = k.shape[1:]
    bs = cache.fmt.block_size
    if plan.full_blocks.numel():  # gather before the window writes below: a window may be refilled this step
        k_full = torch.cat([k_win, k.to(cache.dtype)]).index_select(0, plan.full_src)
        v_full = torch.cat([v_win, v.to(cache.dtype)]).index_select(0, plan.full_src)
        cache.store_blocks(plan.full_blocks, k_full.view(-1, bs, heads, dim), v_full.view(-1, bs, heads, dim))
    if plan.tail_slots.numel():
        if plan.tail_rows.numel() != k.shape[0]:  # else every row, in order (a step of decodes only, mostly)
            k, v = k.index_select(0, plan.tail_rows), v.index_select(0, plan.tail_rows)
        if k.dtype != cache.dtype:
            k, v = k.to(cache.dtype), v.to(cache.dtype)
        k_win.index_copy_(0, plan.tail_slots, k)
        v_win.index_copy_(0, plan.tail_slots, v)


def read_quantized(
    cache: QuantizedKVCache, read: SeqRead, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One sequence's keys and values, (num_full * block_size + tail, kv_heads, head_dim), in order.

    ``limit``: only the first ``limit`` tokens (the blocks past them are not dequantized).
    """
    heads, dim, bs = cache.fmt.num_kv_heads, cache.fmt.head_dim, cache.fmt.block_size
    full, tail = read.full_blocks, read.tail
    if limit is not None and -(-limit // bs) <= full.numel():
        full, tail = full[: -(-limit // bs)], 0
    k, v = cache.load_blocks(full)
    k_tail = cache.k_window[read.window, :tail]
    v_tail = cache.v_window[read.window, :tail]
    keys, values = torch.cat([k.view(-1, heads, dim), k_tail]), torch.cat([v.view(-1, heads, dim), v_tail])
    return (keys, values) if limit is None else (keys[:limit], values[:limit])


def _decode_quantized(
    q: torch.Tensor, cache: QuantizedKVCache, plan: QuantStep, scale: float
) -> torch.Tensor:
    """Decode attention over quantized blocks plus each decode's window, in fp32; (N, num_heads, head_dim) out.

    One fp32 buffer, ``(N, (max_full + 1) * block_size, kv_heads, head_dim)``, holds each decode's keys (its full
    blocks, then its window block) for the scores, then is refilled with its values for the output. Scales that
    belong to a token fold into the scores and the attention weights instead of rescaling every channel: int8 keys
    ``q . (c_t s_t) = (q . c_t) s_t``; values ``sum_t p_t (s_t c_t + m_t) = sum_t (p_t s_t) c_t + sum_t p_t m_t``
    per channel group. int4 keys, scaled per channel, are dequantized into the buffer. The buffer is filled
    contiguously and read by the matmuls through strides (no permuted copy); it is the pool's shared scratch, warm
    from the previous layer. A lone decode (:class:`LoneDecode`) reads its blocks as a view when they form one run,
    and cuts the buffer at its length instead of masking.
    """
    fmt = cache.fmt
    n, max_full = plan.decode_tables.shape
    heads, dim, bs = fmt.num_kv_heads, fmt.head_dim, fmt.block_size
    full = max_full * bs
    lone = plan.lone
    if lone is None:  # (N, length, kv_heads, head_dim), windows after the full blocks, masked
        tokens = cache.scratch.take(n, full + bs, heads, dim)
        lead: tuple[int, ...] = (n,)
    else:  # one decode: no batch dimension, cut at its length, no mask
        tokens = cache.scratch.take(full + bs, heads, dim)[: lone.length]
        lead = ()

    def fill(window: torch.Tensor, window_flat: torch.Tensor, read):
        if lone is None:
            tokens[:, full:] = window.index_select(0, plan.decode_windows)
        else:
            start = lone.window * bs
            tokens[full:] = window_flat[start : start + lone.length - full]
        first = None if lone is None else lone.first_block
        return read(tokens.narrow(-3, 0, full), plan.decode_tables, first) if max_full else None

    k_scale = fill(cache.k_window, cache.k_window_flat, cache.read_keys_into)
    qf = (q.float() * scale).view(*lead, heads, -1, dim)  # (..., kv_heads, group, head_dim); q is untouched
    scores = _batched_matmul(qf, tokens.movedim(-3, -1))  # (..., kv_heads, group, length)
    if k_scale is not None:
        scores[..., :full].mul_(_per_token(k_scale))
    if lone is None:
        scores.masked_fill_(~plan.decode_mask, float("-inf"))
    probs = scores.softmax(-1)
    v_params = fill(cache.v_window, cache.v_window_flat, cache.read_values_into)
    if v_params is None:  # the window alone
        out = _batched_matmul(probs, tokens.transpose(-3, -2))
    else:
        out = _weighted_values(probs, tokens, full, *v_params)
    return out.view(n, -1, dim)  # (N, num_heads, head_dim) fp32


def _per_token(t: torch.Tensor) -> torch.Tensor:
    """(..., full, kv_heads) per-token parameters -> (..., kv_heads, 1, full), to scale attention rows in place.

    fp16 scales multiply the fp32 rows as they are (no conversion op).
    """
    return t.transpose(-1, -2).unsqueeze(-2)


def _weighted_values(
    probs: torch.Tensor, tokens: torch.Tensor, full: int, scale: torch.Tensor, minimum: torch.Tensor | None
) -> torch.Tensor:
    """Attention output (..., h, group, head_dim) of ``probs`` (..., h, group, length) over value codes.

    ``tokens`` (..., length, h, head_dim): the first ``full`` are codes with a scale and minimum
    (..., full, h, groups) per channel group, the rest plain values (the window).
    """
    groups = scale.shape[-1]
    width = tokens.shape[-1] // groups
    outs = []
    for j in range(groups):
        shift = None
        if minimum is not None:  # sum_t p_t m_t: (..., h, group, full) @ (..., h, full, 1)
            shift = _batched_matmul(probs[..., :full], _per_token(minimum[..., j]).float().transpose(-1, -2))
        weights = probs if j == groups - 1 else probs.clone()  # the last group may scale probs in place
        weights[..., :full].mul_(_per_token(scale[..., j]))
        codes = tokens if groups == 1 else tokens[..., j * width : (j + 1) * width]
        out = _batched_matmul(weights, codes.transpose(-3, -2))
        outs.append(out if shift is None else out.add_(shift))
    return outs[0] if groups == 1 else torch.cat(outs, -1)


def _batched_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., h, i, j) @ (..., h, j, k): one bmm, which reads strided operands without a copy, unless batched."""
    if a.dim() == 3:
        return torch.bmm(a, b)
    return torch.matmul(a, b)


def quantized_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cache: QuantizedKVCache,
    meta: AttentionMetadata,
    scale: float,
    layer: int = 0,
) -> torch.Tensor:
    """:func:`paged_attention` on a quantized cache: same inputs and output, plus ``meta.quant``."""
    plan = meta.quant
    assert plan is not None, "a quantized cache needs AttentionMetadata.quant"
    write_quantized(cache, k, v, plan)
    if meta.decode is not None and not meta.prefills:  # decodes only: their output is the whole output
        return _decode_quantized(q, cache, plan, scale).to(q.dtype)
    out = torch.empty_like(q)
    if meta.decode is not None:
        n = meta.decode.num_seqs
        out[:n] = _decode_quantized(q[:n], cache, plan, scale).to(q.dtype)
    for i, (seg, read) in enumerate(zip(meta.prefills, plan.prefill_reads, strict=True)):
        rows = slice(seg.start, seg.start + seg.num_query_tokens)
        query = q[rows].transpose(0, 1).unsqueeze(0)  # (1, num_heads, q_len, head_dim)
        if seg.mask is None:  # a first chunk attends over its own fresh keys, in full precision (as KIVI)
            keys, values, mask = k[rows], v[rows], None
        else:  # the cached tokens as stored, then the chunk's own tokens in full precision
            cached_k, cached_v = read_quantized(cache, read, limit=seg.context_len - seg.num_query_tokens)
            keys, values = (
                torch.cat([cached_k, k[rows].to(cache.dtype)]),
                torch.cat([cached_v, v[rows].to(cache.dtype)]),
            )
            mask = seg.mask
        result = F.scaled_dot_product_attention(
            query,
            keys.to(q.dtype).transpose(0, 1).unsqueeze(0),
            values.to(q.dtype).transpose(0, 1).unsqueeze(0),
            attn_mask=mask,
            is_causal=mask is None,
            scale=scale,
            enable_gqa=True,
        )
        out[rows] = result[0].transpose(0, 1)
        if meta.scorers and meta.scorers[i] is not None:
            observe_chunk(meta.scorers[i], layer, q, keys, seg, scale)
    return out
