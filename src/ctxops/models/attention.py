"""Attention over a paged KV cache.

Each layer's cache is a pair of tensors shaped (num_blocks, block_size, num_kv_heads, head_dim). A step's new keys
and values are written into their slots (``slot_mapping``), then every query attends over its sequence's blocks
(``block_table``). A sequence whose blocks form one contiguous run is read as a view, without copying. Decodes (one
query per sequence) run as one padded, masked batch; when they all start with the same cached blocks (one document,
many questions) that prefix is read once for all of them and the softmax is merged (cascade attention). Prefill
chunks run one sequence at a time, on the fresh keys when nothing precedes them, else on keys from the cache.

Quantized caches (:class:`~ctxops.models.kv_quant.QuantizedKVCache`, int8/int4) take another path: a step's tokens
that complete a block are quantized into it, together with the full-precision window holding the block's earlier
tokens; the rest go to the window. Attention then reads ``dequantize(full blocks) ++ window tail`` in the model's
dtype (no cascade: each decode dequantizes its own blocks). :class:`QuantStep` says where everything goes.

This module knows tensors, slots and block tables. It does not know sequences, sampling or the scheduler: the model
runner builds :class:`AttentionMetadata` and passes it down explicitly (no global context).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ctxops.models.kv_quant import QuantizedKVCache


@dataclass(frozen=True, slots=True)
class BlockSpan:
    """Some blocks of the pool in order: one contiguous run is read as a view (no copy), else gathered."""

    start: int  # first block of the run (unused when ``index`` is set)
    count: int  # number of blocks
    index: torch.Tensor | None = None  # (count,) long block ids, when they are not one contiguous run

    @staticmethod
    def of(block_ids: list[int]) -> BlockSpan:
        if block_ids and block_ids[-1] - block_ids[0] == len(block_ids) - 1 and _is_run(block_ids):
            return BlockSpan(block_ids[0], len(block_ids))
        return BlockSpan(0, len(block_ids), torch.tensor(block_ids, dtype=torch.long))


def _is_run(block_ids: list[int]) -> bool:
    first = block_ids[0]
    return all(b == first + i for i, b in enumerate(block_ids))


@dataclass(frozen=True, slots=True)
class PrefillSegment:
    """One sequence's prefill chunk inside the flattened batch."""

    start: int  # first row of this chunk in the (T, ...) batch
    num_query_tokens: int  # tokens computed now
    context_len: int  # tokens attended to: already cached + computed now
    blocks: BlockSpan  # the sequence's blocks covering context_len
    mask: (
        torch.Tensor | None
    )  # (num_query_tokens, context_len) bool, None when the chunk starts at position 0


@dataclass(frozen=True, slots=True)
class DecodeBatch:
    """The decode rows: one query per sequence, optionally sharing a cached prefix (cascade attention).

    The shared prefix (full blocks every sequence starts with, e.g. one document asked many questions) is read
    once for all queries; each sequence's own remaining blocks are gathered into a padded, masked batch.
    """

    num_seqs: int
    shared: BlockSpan | None  # blocks common to every sequence, or None
    own: list[BlockSpan]  # per sequence, its blocks after the shared prefix
    own_lens: list[int]  # per sequence, tokens in its own blocks (>= 1: the new token is always its own)
    own_tables: torch.Tensor  # (num_seqs, max_own_blocks) long, padded with block 0
    own_mask: torch.Tensor  # (num_seqs, 1, 1, max_own_blocks * block_size) bool


@dataclass(frozen=True, slots=True)
class SeqRead:
    """Where one sequence's keys live in a quantized cache: full blocks, then ``tail`` tokens of its window."""

    full_blocks: torch.Tensor  # (num_full,) long block ids, in order
    window: int  # its window block
    tail: int  # tokens in the window (0 .. block_size - 1)


@dataclass(frozen=True, slots=True)
class LoneDecode:
    """A step's only decode, read from a quantized cache without padding or mask."""

    length: int  # its tokens: full blocks, then the window's tail
    window: int  # its window block
    # its full blocks form one contiguous run starting here (read as a view), else None
    first_block: int | None


@dataclass(frozen=True, slots=True)
class QuantStep:
    """A step's writes into, and decode reads from, a quantized cache (one plan serves every layer).

    Window slots are ``window * block_size + offset``; ``full_src`` indexes the concatenation
    ``(window slots of all windows) ++ (the step's T fresh rows)``, so a completed block is gathered from the
    tokens its window held plus the fresh ones, then quantized.
    """

    full_blocks: torch.Tensor  # (F,) long: blocks completed this step
    full_src: torch.Tensor  # (F * block_size,) long: their tokens, indexes into windows ++ fresh rows
    tail_slots: torch.Tensor  # (W,) long: window slots for fresh tokens of blocks still being filled
    tail_rows: torch.Tensor  # (W,) long: their rows in the batch
    decode_tables: torch.Tensor  # (N, max_full) long: each decode's full blocks, padded with block 0
    decode_windows: torch.Tensor  # (N,) long: each decode's window
    # (N, 1, 1, (max_full + 1) * block_size) bool: own full tokens, then window tail; None for a lone decode
    decode_mask: torch.Tensor | None
    prefill_reads: list[SeqRead] = field(default_factory=list)  # one per prefill segment
    lone: LoneDecode | None = None  # set when the step has exactly one decode


@dataclass(frozen=True, slots=True)
class AttentionMetadata:
    """Where a step's tokens go in the cache and what each of them attends to.

    Rows ``[0, decode.num_seqs)`` of the batch are decode tokens, one per sequence; prefill chunks follow.
    """

    slot_mapping: torch.Tensor  # (T,) long: block_id * block_size + offset for every new token
    decode: DecodeBatch | None = None
    prefills: list[PrefillSegment] = field(default_factory=list)
    rope_seq_lens: torch.Tensor | None = None  # (T,) sequence length per token, for dynamic NTK RoPE
    quant: QuantStep | None = None  # set when the cache is quantized
    # per prefill segment, None or an object whose ``observe(layer, q, keys, first_position, scale)`` records the
    # chunk's attention (a KV press scoring the prompt)
    scorers: list | None = None

    @property
    def num_decodes(self) -> int:
        return self.decode.num_seqs if self.decode else 0


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
    """No shared prefix: one SDPA call; a lone sequence reads its blocks as a view, a batch is gathered."""
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
    if k_cache.dtype != q.dtype:
        raise TypeError(f"KV cache dtype {k_cache.dtype} differs from the model's {q.dtype}")
    write_kv(k_cache, v_cache, k, v, meta.slot_mapping)
    out = torch.empty_like(q)
    if meta.decode is not None:
        n = meta.decode.num_seqs
        decode = _decode_cascade if meta.decode.shared is not None else _decode_plain
        out[:n] = decode(q[:n], k_cache, v_cache, meta.decode, scale)
    for i, seg in enumerate(meta.prefills):
        out[seg.start : seg.start + seg.num_query_tokens] = _prefill(q, k, v, k_cache, v_cache, seg, scale)
        if meta.scorers and meta.scorers[i] is not None:
            keys = read_span(k_cache, seg.blocks)[: seg.context_len]
            _observe(meta.scorers[i], layer, q, keys, seg, scale)
    return out


def _observe(
    scorer, layer: int, q: torch.Tensor, keys: torch.Tensor, seg: PrefillSegment, scale: float
) -> None:
    rows = slice(seg.start, seg.start + seg.num_query_tokens)
    scorer.observe(layer, q[rows], keys, seg.context_len - seg.num_query_tokens, scale)


# ---- quantized caches ------------------------------------------------------------------------------------------
def write_quantized(cache: QuantizedKVCache, k: torch.Tensor, v: torch.Tensor, plan: QuantStep) -> None:
    """Quantize the blocks this step completes, then put the remaining fresh tokens into their windows."""
    k_win, v_win = cache.window_flat()
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
            _observe(meta.scorers[i], layer, q, keys, seg, scale)
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
