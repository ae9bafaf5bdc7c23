"""Paged attention over scattered blocks equals naive causal attention over the whole sequence."""

from __future__ import annotations

import torch

from ctxops.models.attention import AttentionMetadata, PrefillSegment, naive_attention, paged_attention

BLOCK, HEADS, KV_HEADS, DIM, NUM_BLOCKS = 4, 4, 2, 8, 32
SCALE = DIM**-0.5


def _cache():
    shape = (NUM_BLOCKS, BLOCK, KV_HEADS, DIM)
    return torch.zeros(shape), torch.zeros(shape)


def _slots(table: list[int], start: int, end: int) -> torch.Tensor:
    return torch.tensor([table[p // BLOCK] * BLOCK + p % BLOCK for p in range(start, end)])


def _qkv(length: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(length, HEADS, DIM, generator=g),
        torch.randn(length, KV_HEADS, DIM, generator=g),
        torch.randn(length, KV_HEADS, DIM, generator=g),
    )


def _prefill(q, k, v, kc, vc, table, start, end):
    mask = None if start == 0 else torch.arange(end)[None, :] <= torch.arange(start, end)[:, None]
    seg = PrefillSegment(0, end - start, end, torch.tensor(table[: -(-end // BLOCK)]), mask)
    meta = AttentionMetadata(slot_mapping=_slots(table, start, end), prefills=[seg])
    return paged_attention(q[start:end], k[start:end], v[start:end], kc, vc, meta, SCALE)


def test_chunked_prefill_over_scattered_blocks_equals_naive():
    q, k, v = _qkv(23, seed=0)
    table = [17, 3, 29, 8, 11, 0]  # deliberately out of order
    kc, vc = _cache()
    expected = naive_attention(q, k, v, SCALE)
    chunks = [(0, 9), (9, 10), (10, 23)]  # a fresh chunk, a one-token chunk, a chunk over a cached prefix
    got = torch.cat([_prefill(q, k, v, kc, vc, table, s, e) for s, e in chunks])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_batched_decode_of_different_lengths_equals_naive():
    lengths, tables = [5, 13, 9], [[4, 9], [1, 2, 30, 7], [12, 5, 6]]
    kc, vc = _cache()
    seqs = [_qkv(n, seed=i) for i, n in enumerate(lengths)]
    for (q, k, v), table, n in zip(
        seqs, tables, lengths, strict=True
    ):  # the prefix of each sequence is in the cache
        _prefill(q, k, v, kc, vc, table, 0, n - 1)
    max_blocks = max(len(t) for t in tables)
    padded = torch.tensor([t + [0] * (max_blocks - len(t)) for t in tables])
    mask = (torch.arange(max_blocks * BLOCK)[None, :] < torch.tensor(lengths)[:, None])[:, None, None, :]
    meta = AttentionMetadata(
        slot_mapping=torch.cat([_slots(t, n - 1, n) for t, n in zip(tables, lengths, strict=True)]),
        num_decodes=3,
        decode_block_tables=padded,
        decode_mask=mask,
    )
    last = [torch.stack([s[i][-1] for s in seqs]) for i in range(3)]
    got = paged_attention(*last, kc, vc, meta, SCALE)
    for row, (q, k, v) in enumerate(seqs):
        torch.testing.assert_close(got[row], naive_attention(q, k, v, SCALE)[-1], atol=1e-5, rtol=1e-5)
