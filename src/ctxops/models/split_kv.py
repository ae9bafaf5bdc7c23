"""Head-split KV storage (after DuoAttention): retrieval KV heads in the paged pool, streaming heads in a ring.

Under a head policy one layer's cache is a :class:`SplitKVCache`. The paged pool's blocks hold only the layer's
*retrieval* KV heads, (num_blocks, block_size, R, head_dim); every running sequence owns one *ring* of
``sink + recent`` slots for the layer's *streaming* KV heads, (num_rings, sink + recent, S, head_dim). A token at
position p lives in ring slot p while p < sink, else in slot sink + (p - sink) mod recent: the ring always holds
the first ``sink`` tokens and the last ``recent`` ones, so a streaming head costs the same bytes at any length.
Slot order does not matter to attention (keys carry their RoPE already; softmax is order-free).

Reads and writes of one step (:class:`~ctxops.models.attention_metadata.RingStep`, built by :func:`ring_step`):
a decode writes its token, then reads its ring (the token overwritten is the one that just left the window). A
prefill chunk reads its ring as it was before the step, because a chunk's last tokens overwrite slots its first
queries still need: the first chunk attends causally over its own tokens in full, exactly like the full cache; a
later chunk attends over the ring (sink + the last ``recent`` tokens before it) plus itself, causally, as
DuoAttention's chunked prefill does. Attention itself is in :mod:`ctxops.models.attention`.

This module knows tensors, slots and ring ids; it does not know policy files, sequences or the scheduler.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ctxops.models.attention_metadata import RingStep


class SplitKVCache:
    """One layer's K/V under a head policy: retrieval KV heads paged, streaming KV heads in per-sequence rings."""

    def __init__(
        self,
        retrieval: list[int],  # the layer's retrieval KV heads, ascending
        num_kv_heads: int,
        group: int,  # query heads per KV head
        num_blocks: int,
        block_size: int,
        num_rings: int,
        sink: int,
        recent: int,
        head_dim: int,
        dtype: torch.dtype,
    ) -> None:
        streaming = [h for h in range(num_kv_heads) if h not in retrieval]
        self.sink, self.recent = sink, recent
        self.retrieval_kv = torch.tensor(retrieval, dtype=torch.long)
        self.streaming_kv = torch.tensor(streaming, dtype=torch.long)
        # query heads h read KV head h // group: a KV head's queries are its group of consecutive heads
        self.retrieval_q = _query_heads(retrieval, group)
        self.streaming_q = _query_heads(streaming, group)
        blocks = num_blocks if retrieval else 0  # a layer without retrieval heads keeps no pool at all
        rings = num_rings if streaming else 0
        # each tensor contiguous on its own: the native decode kernel reads them in place
        self.k = torch.zeros(blocks, block_size, len(retrieval), head_dim, dtype=dtype)
        self.v = torch.zeros_like(self.k)
        self.ring_k = torch.zeros(rings, sink + recent, len(streaming), head_dim, dtype=dtype)
        self.ring_v = torch.zeros_like(self.ring_k)

    @property
    def dtype(self) -> torch.dtype:
        return self.k.dtype

    @property
    def num_retrieval(self) -> int:
        return len(self.retrieval_kv)

    @property
    def num_streaming(self) -> int:
        return len(self.streaming_kv)

    @property
    def pool_bytes(self) -> int:
        return 2 * self.k.numel() * self.k.element_size()

    @property
    def ring_bytes(self) -> int:
        return 2 * self.ring_k.numel() * self.ring_k.element_size()

    @property
    def nbytes(self) -> int:
        return self.pool_bytes + self.ring_bytes


def _query_heads(kv_heads: list[int], group: int) -> torch.Tensor:
    return torch.tensor([h * group + g for h in kv_heads for g in range(group)], dtype=torch.long)


def ring_slot(position: int, sink: int, recent: int) -> int:
    """The ring slot of the token at ``position``: sinks stay put, the rest cycle over ``recent`` slots."""
    return position if position < sink else sink + (position - sink) % recent


def ring_step(spans: list[tuple[int, int, int]], num_decodes: int, sink: int, recent: int) -> RingStep:
    """A step's ring plan. ``spans``: per sequence in batch order (decodes first), (ring, first position, end).

    Of a span's fresh tokens only those the ring keeps after the step are written (the sinks and the last
    ``recent``), so no two writes of a step share a slot.
    """
    slots_per_ring = sink + recent
    write_slots: list[int] = []
    write_rows: list[int] = []
    reads: list[tuple[int, int]] = []
    rings: list[int] = []
    lens: list[int] = []
    row = 0
    for i, (ring, start, end) in enumerate(spans):
        for pos in range(start, end):
            if pos < sink or pos >= end - recent:
                write_slots.append(ring * slots_per_ring + ring_slot(pos, sink, recent))
                write_rows.append(row + pos - start)
        if i < num_decodes:
            rings.append(ring)
            lens.append(min(end, slots_per_ring))
        else:
            reads.append((ring, min(start, slots_per_ring)))
        row += end - start
    held = torch.tensor(lens, dtype=torch.long)
    return RingStep(
        write_slots=torch.tensor(write_slots, dtype=torch.long),
        write_rows=torch.tensor(write_rows, dtype=torch.long),
        decode_rings=torch.tensor(rings, dtype=torch.long).view(-1, 1),
        decode_lens=held,
        decode_mask=(torch.arange(slots_per_ring)[None, :] < held[:, None])[:, None, None, :],
        prefill_reads=reads,
    )


def ring_prefill(
    q: torch.Tensor,  # (q_len, S * group, head_dim): the chunk's streaming queries
    k: torch.Tensor,  # (q_len, S, head_dim): the chunk's fresh streaming keys
    v: torch.Tensor,
    cache: SplitKVCache,
    ring: int,
    held: int,  # ring slots filled before this chunk (0: the chunk starts the sequence)
    scale: float,
) -> torch.Tensor:
    """A prefill chunk's streaming heads over (what the ring held before the chunk) ++ (the chunk, causally)."""
    query = q.transpose(0, 1).unsqueeze(0)  # (1, S * group, q_len, head_dim)
    if held == 0:
        keys, values = k.transpose(0, 1).unsqueeze(0), v.transpose(0, 1).unsqueeze(0)
        out = F.scaled_dot_product_attention(
            query, keys, values, is_causal=True, scale=scale, enable_gqa=True
        )
        return out[0].transpose(0, 1)
    q_len = q.shape[0]
    keys = torch.cat([cache.ring_k[ring, :held], k]).transpose(0, 1).unsqueeze(0)  # (1, S, held + q_len, D)
    values = torch.cat([cache.ring_v[ring, :held], v]).transpose(0, 1).unsqueeze(0)
    causal = torch.ones(q_len, q_len, dtype=torch.bool).tril()
    mask = torch.cat([torch.ones(q_len, held, dtype=torch.bool), causal], dim=1)  # (q_len, held + q_len)
    out = F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, scale=scale, enable_gqa=True)
    return out[0].transpose(0, 1)  # (q_len, S * group, head_dim)


def ring_write(cache: SplitKVCache, k: torch.Tensor, v: torch.Tensor, step: RingStep) -> None:
    """Store the step's kept fresh streaming K/V, (T, S, head_dim), into their ring slots."""
    if not len(step.write_slots):
        return
    heads, dim = cache.ring_k.shape[-2:]
    cache.ring_k.view(-1, heads, dim).index_copy_(0, step.write_slots, k.index_select(0, step.write_rows))
    cache.ring_v.view(-1, heads, dim).index_copy_(0, step.write_slots, v.index_select(0, step.write_rows))


def ring_decode(q: torch.Tensor, cache: SplitKVCache, step: RingStep, scale: float, native) -> torch.Tensor:
    """Decodes' streaming heads over their rings: (N, S * group, head_dim) in and out.

    A ring is one block of ``sink + recent`` slots, so the native paged decode kernel reads it in place.
    """
    if native is not None:
        return native.decode_attention(
            q, cache.ring_k, cache.ring_v, step.decode_rings, step.decode_lens, scale
        )
    rings = step.decode_rings.view(-1)
    keys = cache.ring_k.index_select(0, rings).transpose(1, 2)  # (N, S, slots, head_dim)
    values = cache.ring_v.index_select(0, rings).transpose(1, 2)
    out = F.scaled_dot_product_attention(
        q.unsqueeze(2), keys, values, attn_mask=step.decode_mask, scale=scale, enable_gqa=True
    )
    return out.squeeze(2)
