"""Paged attention over scattered or contiguous blocks, and cascade attention over a shared prefix, equal naive
causal attention over each whole sequence."""

from __future__ import annotations

import pytest
import torch

from ctxops.models import native
from ctxops.models.attention import (
    AttentionMetadata,
    BlockSpan,
    DecodeBatch,
    PrefillSegment,
    naive_attention,
    paged_attention,
)

BLOCK, HEADS, KV_HEADS, DIM, NUM_BLOCKS = 4, 4, 2, 8, 64
SCALE = DIM**-0.5


@pytest.fixture(autouse=True, params=["native", "torch"])
def kernels(request, monkeypatch):
    """Every case runs on the native decode kernel (when built) and on the torch path (machines without one)."""
    if request.param == "torch":
        monkeypatch.setenv("CTXOPS_NATIVE", "0")
    native.kernels.cache_clear()
    if request.param == "native" and native.kernels() is None:
        pytest.skip("no C compiler: the native kernels are not built")
    yield request.param
    monkeypatch.undo()
    native.kernels.cache_clear()


def _cache(dtype=torch.float32):
    shape = (NUM_BLOCKS, BLOCK, KV_HEADS, DIM)
    return torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)


def _slots(table: list[int], start: int, end: int) -> torch.Tensor:
    return torch.tensor([table[p // BLOCK] * BLOCK + p % BLOCK for p in range(start, end)])


def _qkv(length: int, seed: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(length, h, DIM, generator=g).to(dtype) for h in (HEADS, KV_HEADS, KV_HEADS))


def _prefill(q, k, v, kc, vc, table, start, end):
    mask = None if start == 0 else torch.arange(end)[None, :] <= torch.arange(start, end)[:, None]
    seg = PrefillSegment(0, end - start, end, BlockSpan.of(table[: -(-end // BLOCK)]), mask)
    meta = AttentionMetadata(slot_mapping=_slots(table, start, end), prefills=[seg])
    return paged_attention(q[start:end], k[start:end], v[start:end], kc, vc, meta, SCALE)


@pytest.mark.parametrize(
    "table", [[17, 3, 29, 8, 11, 0], [20, 21, 22, 23, 24, 25]], ids=["scattered", "contiguous"]
)
def test_chunked_prefill_equals_naive(table):
    assert (BlockSpan.of(table).index is None) == (table[0] == 20)  # a run is read as a view
    q, k, v = _qkv(23, seed=0)
    kc, vc = _cache()
    expected = naive_attention(q, k, v, SCALE)
    chunks = [(0, 9), (9, 10), (10, 23)]  # a fresh chunk, a one-token chunk, a chunk over a cached prefix
    got = torch.cat([_prefill(q, k, v, kc, vc, table, s, e) for s, e in chunks])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def _decode_batch(tables, lengths, num_shared):
    own = [t[num_shared:] for t in tables]
    own_lens = [n - num_shared * BLOCK for n in lengths]
    max_own = max(len(t) for t in own)
    padded = torch.tensor([t + [0] * (max_own - len(t)) for t in own])
    mask = (torch.arange(max_own * BLOCK)[None, :] < torch.tensor(own_lens)[:, None])[:, None, None, :]
    return DecodeBatch(
        num_seqs=len(tables),
        shared=BlockSpan.of(tables[0][:num_shared]) if num_shared else None,
        own=[BlockSpan.of(t) for t in own],
        own_lens=own_lens,
        own_tables=padded,
        own_mask=mask,
    )


def _run_decodes(seqs, tables, lengths, num_shared, kc, vc):
    batch = _decode_batch(tables, lengths, num_shared)
    meta = AttentionMetadata(
        slot_mapping=torch.cat([_slots(t, n - 1, n) for t, n in zip(tables, lengths, strict=True)]),
        decode=batch,
    )
    last = [torch.stack([s[i][-1] for s in seqs]) for i in range(3)]
    return paged_attention(*last, kc, vc, meta, SCALE)


def test_batched_decode_of_different_lengths_equals_naive():
    lengths, tables = [5, 13, 9], [[4, 9], [1, 2, 30, 7], [12, 5, 6]]
    kc, vc = _cache()
    seqs = [_qkv(n, seed=i) for i, n in enumerate(lengths)]
    for (q, k, v), table, n in zip(seqs, tables, lengths, strict=True):
        _prefill(q, k, v, kc, vc, table, 0, n - 1)
    got = _run_decodes(seqs, tables, lengths, 0, kc, vc)
    for row, (q, k, v) in enumerate(seqs):
        torch.testing.assert_close(got[row], naive_attention(q, k, v, SCALE)[-1], atol=1e-5, rtol=1e-5)


def test_single_decode_reads_a_contiguous_run():
    q, k, v = _qkv(30, seed=3)
    table = list(range(40, 48))
    kc, vc = _cache()
    _prefill(q, k, v, kc, vc, table, 0, 29)
    got = _run_decodes([(q, k, v)], [table], [30], 0, kc, vc)
    torch.testing.assert_close(got[0], naive_attention(q, k, v, SCALE)[-1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shared_blocks", [[0, 1, 2, 3, 4], [9, 3, 50, 1, 7]], ids=["run", "scattered"])
def test_cascade_over_a_shared_prefix_equals_naive(dtype, shared_blocks):
    """Four questions about one 20-token document: the document's blocks are read once for all of them."""
    doc_len, question_lens = 20, [3, 7, 1, 6]
    kc, vc = _cache(dtype)
    doc = _qkv(doc_len, seed=10, dtype=dtype)
    _prefill(*doc, kc, vc, shared_blocks + [60], 0, doc_len)
    seqs, tables, lengths = [], [], []
    own_blocks = iter(range(20, 40))
    for i, n in enumerate(question_lens):
        tail = _qkv(n, seed=20 + i, dtype=dtype)
        seq = tuple(torch.cat([a, b]) for a, b in zip(doc, tail, strict=True))
        table = shared_blocks + [next(own_blocks) for _ in range(-(-n // BLOCK))]
        if n > 1:
            _prefill(*seq, kc, vc, table, doc_len, doc_len + n - 1)
        seqs.append(seq)
        tables.append(table)
        lengths.append(doc_len + n)
    got = _run_decodes(seqs, tables, lengths, len(shared_blocks), kc, vc)
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    for row, (q, k, v) in enumerate(seqs):
        expected = naive_attention(q.float(), k.float(), v.float(), SCALE)[-1]
        torch.testing.assert_close(got[row].float(), expected, atol=tol, rtol=tol)
