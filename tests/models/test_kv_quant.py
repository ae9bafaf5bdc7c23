"""Quantized KV blocks (int8 / int4, KIVI-style): round-trip error bounds, and paged attention over quantized
blocks plus the full-precision window against naive full-precision attention."""

from __future__ import annotations

import pytest
import torch

from ctxops.engine.block_manager import BlockManager
from ctxops.engine.model_runner import ModelRunner
from ctxops.engine.sampling_params import SamplingParams
from ctxops.engine.scheduler import ScheduledSequence
from ctxops.engine.sequence import Sequence
from ctxops.models.attention import naive_attention, paged_attention
from ctxops.models.kv_quant import (
    KVQuantFormat,
    QuantizedKVCache,
    dequantize_keys,
    fp8_bytes_to_float,
    pack_int4,
    quantize_int4_symmetric,
    quantize_keys,
    quantize_values,
    unpack_int4,
)

BLOCK, HEADS, KV_HEADS, DIM = 4, 4, 2, 8
SCALE = DIM**-0.5


def test_int4_packing_is_lossless():
    codes = torch.randint(0, 16, (3, 5, 8), dtype=torch.uint8)
    assert pack_int4(codes).shape == (3, 5, 4)
    assert torch.equal(unpack_int4(pack_int4(codes)), codes)


@pytest.mark.parametrize("bits", [8, 4])
def test_round_trip_error_is_half_a_step(bits):
    """|x - deq(q(x))| <= half a step (+1% for an fp16 scale): step = absmax/127 per key and value token (int8);
    int4 keys absmax/7.5 per channel over a block's tokens (at least 2^-6, the smallest normal fp8 scale), +1/16
    for the fp8 scale's rounding; int4 values (max-min)/15 per token over 64 channels."""
    fmt = KVQuantFormat(bits, block_size=16, num_kv_heads=2, head_dim=128)
    g = torch.Generator().manual_seed(0)
    k = torch.randn(5, 16, 2, 128, generator=g) * torch.linspace(
        0.1, 20, 128
    )  # outlier channels, as real keys
    v = torch.randn(5, 16, 2, 128, generator=g)
    cache = QuantizedKVCache(fmt, num_blocks=8, num_windows=1, dtype=torch.float32)
    ids = torch.tensor([6, 0, 3, 1, 7])
    cache.store_blocks(ids, k, v)
    k_hat, v_hat = cache.load_blocks(ids)

    def absmax(x, dim):
        return x.abs().amax(dim, keepdim=True)

    if bits == 8:
        assert ((k_hat - k).abs() <= 0.505 * absmax(k, -1) / 127 + 1e-6).all()  # per token
    else:
        bound = (0.5 + 1 / 32) * (absmax(k, 1) / 7.5).clamp_min(2**-6)  # per channel over the block's tokens
        assert ((k_hat - k).abs() <= bound + 1e-6).all()
        assert ((k_hat - k).abs() > 0.45 * absmax(k, 1) / 7.5).any()  # the bound is not loose
    v_groups = v.unflatten(-1, (128 // fmt.value_group, fmt.value_group))
    v_err = (v_hat - v).abs().unflatten(-1, v_groups.shape[-2:])
    v_step = (
        absmax(v_groups, -1) / 127 if bits == 8 else (v_groups.amax(-1, True) - v_groups.amin(-1, True)) / 15
    )
    assert (v_err <= 0.505 * v_step + 1e-6).all()
    assert fmt.value_group == (128 if bits == 8 else 64)
    # the codes really are 1 byte (int8) or half a byte (int4) per value; int4 key scales are 1 byte (fp8)
    assert cache.k_codes.shape[-1] == 128 * bits // 8
    assert cache.k_scale.element_size() == (2 if bits == 8 else 1)
    assert quantize_keys(k, fmt)[1].shape == ((5, 16, 2, 1) if bits == 8 else (5, 2, 128))
    assert quantize_values(v, fmt)[1].shape == (5, 16, 2, 128 // fmt.value_group)


def test_int4_keys_are_symmetric_with_an_fp8_scale():
    """16 levels centred on zero (code - 7.5), so +-absmax of a channel are the end levels up to fp8 rounding."""
    k = torch.zeros(1, 16, 1, 2)
    k[0, :, 0, 0] = torch.linspace(-3.75, 3.75, 16)  # scale 0.5, exact in fp8 e4m3: every value a level
    k[0, :, 0, 1] = 1e-4  # a near-zero channel: the smallest normal fp8 scale, 2^-6
    codes, scale = quantize_int4_symmetric(k, dim=1)
    assert scale.dtype == torch.float8_e4m3fn
    assert scale[0, 0, 0, 0].float().item() == 0.5
    assert codes[0, :, 0, 0].tolist() == list(range(16))
    fmt = KVQuantFormat(4, 16, 1, 2)
    restored = dequantize_keys(*quantize_keys(k, fmt), fmt, torch.float32)
    torch.testing.assert_close(restored[..., 0], k[..., 0], atol=0, rtol=0)
    assert scale[0, 0, 0, 1].float().item() == 2**-6
    assert (restored[..., 1] - 1e-4).abs().max() <= 2**-7


def test_fp8_bytes_decode_as_torch_casts_them():
    """Key scales are kept as bytes and decoded by shifting bits: equal to torch's cast for every positive normal
    e4m3 value (2^-6 .. 448)."""
    normal = torch.arange(8, 127, dtype=torch.uint8)  # exponent field >= 1, below the NaN at 0x7F
    expected = normal.view(torch.float8_e4m3fn).float()
    assert torch.equal(fp8_bytes_to_float(normal), expected)
    assert expected.min() == 2**-6 and expected.max() == 448


def _runner(num_windows: int) -> ModelRunner:
    runner = ModelRunner.__new__(ModelRunner)  # the batch builder only; no model
    runner.block_size, runner.num_windows, runner.is_dynamic_rope = BLOCK, num_windows, False
    runner.quantized_kv, runner.press, runner.press_scores = True, None, {}
    return runner


def _qkv(length: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(length, h, DIM, generator=g) for h in (HEADS, KV_HEADS, KV_HEADS))


# Largest |quantized - full precision| attention output allowed (unit-variance q, k, v; head_dim 8; measured
# 0.006 for int8 and 0.085 for int4 on this data).
TOLERANCE = {8: 1.5e-2, 4: 1.5e-1}


@pytest.mark.parametrize("bits", [8, 4])
def test_attention_on_quantized_blocks_matches_full_precision(bits):
    """Chunked prefills, a one-token chunk, batched decodes crossing block boundaries and a lone decode."""
    fmt = KVQuantFormat(bits, BLOCK, KV_HEADS, DIM)
    cache = QuantizedKVCache(fmt, num_blocks=40, num_windows=3, dtype=torch.float32)
    manager = BlockManager(40, BLOCK, enable_prefix_caching=False, num_windows=3)
    runner = _runner(3)
    lengths = [30, 16, 8]
    seqs = [Sequence(str(i), list(range(n)), SamplingParams()) for i, n in enumerate(lengths)]
    data = [_qkv(n, seed=i) for i, n in enumerate(lengths)]
    # (seq index, new tokens) per step; seq 0 prefills 0-9, 9-10, 10-23 while the others decode
    steps = [[(0, 9), (1, 11)], [(0, 1), (1, 1), (2, 7)], [(0, 13), (1, 1), (2, 1)]]
    steps += [[(0, 1), (1, 1)]] * 3 + [[(0, 1)]] * 4
    worst = 0.0
    for step in steps:
        scheduled = []
        for i, n in step:
            assert manager.allocate_slots(seqs[i], n)
            scheduled.append(ScheduledSequence(seqs[i], n))
        ids, positions, meta, _ = runner.prepare(scheduled)
        ordered = [s for s in scheduled if s.num_new_tokens == 1] + [
            s for s in scheduled if s.num_new_tokens > 1
        ]
        rows = [(int(s.seq.request_id), s.seq.num_computed_tokens, s.num_new_tokens) for s in ordered]
        q, k, v = (torch.cat([data[i][j][start : start + n] for i, start, n in rows]) for j in range(3))
        got = paged_attention(q, k, v, cache, None, meta, SCALE)
        offset = 0
        for i, start, n in rows:
            dq, dk, dv = (t[: start + n] for t in data[i])
            expected = naive_attention(dq, dk, dv, SCALE)[start:]
            worst = max(worst, (got[offset : offset + n] - expected).abs().max().item())
            offset += n
        for s in scheduled:
            s.seq.num_computed_tokens += s.num_new_tokens
    assert [s.num_computed_tokens for s in seqs] == lengths
    assert worst <= TOLERANCE[bits], worst
    assert worst > 0  # the blocks really were quantized


@pytest.mark.parametrize("bits", [8, 4])
def test_a_later_prefill_chunk_reads_its_own_tokens_in_full_precision(bits):
    """A chunk after cached tokens (a prefix-cache hit, or chunked prefill) attends to the cached tokens as stored
    and to its own tokens exactly, even those of blocks it completes: as a first chunk does."""
    fmt = KVQuantFormat(bits, BLOCK, KV_HEADS, DIM)
    cache = QuantizedKVCache(fmt, num_blocks=8, num_windows=1, dtype=torch.float32)
    manager = BlockManager(8, BLOCK, enable_prefix_caching=False, num_windows=1)
    cached, own = 2 * BLOCK + 1, 2 * BLOCK  # the chunk completes the third block and fills a fourth
    seq = Sequence("a", list(range(cached + own)), SamplingParams())
    q, k, v = _qkv(cached + own, seed=5)
    runner = _runner(1)
    for start, n in [(0, cached), (cached, own)]:
        manager.allocate_slots(seq, n)
        _, _, meta, _ = runner.prepare([ScheduledSequence(seq, n)])
        rows = slice(start, start + n)
        got = paged_attention(q[rows], k[rows], v[rows], cache, None, meta, SCALE)
        seq.num_computed_tokens += n
    # the cached tokens as stored now: token 2 * BLOCK left the window when the chunk completed its block
    blocks = torch.tensor(seq.block_table[:3])
    k_stored, v_stored = (t.flatten(0, 1)[:cached] for t in cache.load_blocks(blocks))
    k_ref, v_ref = torch.cat([k_stored, k[cached:]]), torch.cat([v_stored, v[cached:]])
    assert not torch.allclose(k_stored, k[:cached])  # the cached tokens really are quantized
    torch.testing.assert_close(got, naive_attention(q, k_ref, v_ref, SCALE)[cached:], atol=1e-5, rtol=1e-5)


def test_tokens_inside_the_window_are_exact():
    """A sequence shorter than a block never leaves the full-precision window."""
    fmt = KVQuantFormat(4, BLOCK, KV_HEADS, DIM)
    cache = QuantizedKVCache(fmt, num_blocks=4, num_windows=1, dtype=torch.float32)
    manager = BlockManager(4, BLOCK, enable_prefix_caching=False, num_windows=1)
    seq = Sequence("a", [1, 2, 3], SamplingParams())
    q, k, v = _qkv(3, seed=9)
    runner = _runner(1)
    for start, n in [(0, 2), (2, 1)]:
        manager.allocate_slots(seq, n)
        _, _, meta, _ = runner.prepare([ScheduledSequence(seq, n)])
        got = paged_attention(
            q[start : start + n], k[start : start + n], v[start : start + n], cache, None, meta, SCALE
        )
        seq.num_computed_tokens += n
    torch.testing.assert_close(got, naive_attention(q, k, v, SCALE)[2:], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("bits", [8, 4])
def test_decode_folds_scales_exactly(bits):
    """Decode reads codes with the scales folded into the scores and weights; it must equal attention over
    dequantized blocks (head_dim 128: two int4 value groups per head), batched (padded, masked) or alone."""
    from ctxops.models.attention import LoneDecode, QuantStep, SeqRead, read_quantized
    from ctxops.models.quantized_attention import _decode_quantized

    dim, bs, heads, kv_heads = 128, 4, 4, 2
    fmt = KVQuantFormat(bits, bs, kv_heads, dim)
    cache = QuantizedKVCache(fmt, num_blocks=10, num_windows=2, dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    cache.store_blocks(
        torch.arange(10),
        torch.randn(10, bs, kv_heads, dim, generator=g),
        torch.randn(10, bs, kv_heads, dim, generator=g),
    )
    cache.k_window.copy_(torch.randn(2, bs, kv_heads, dim, generator=g))
    cache.v_window.copy_(torch.randn(2, bs, kv_heads, dim, generator=g))
    reads = [SeqRead(torch.tensor([7, 2, 5]), 1, 3), SeqRead(torch.tensor([0]), 0, 1)]
    tables = torch.tensor([[7, 2, 5], [0, 0, 0]])
    keys = torch.arange(4 * bs)[None, :]
    full = torch.tensor([[3 * bs], [bs]])
    tail = torch.tensor([[3], [1]])
    mask = ((keys < full) | ((keys >= 3 * bs) & (keys < 3 * bs + tail)))[:, None, None, :]
    empty = torch.zeros(0, dtype=torch.long)
    plan = QuantStep(empty, empty, empty, empty, tables, torch.tensor([1, 0]), mask)  # a padded, masked batch
    q = torch.randn(2, heads, dim, generator=g)
    got = _decode_quantized(q, cache, plan, dim**-0.5)
    reads.append(SeqRead(torch.tensor([3, 4]), 0, 0))  # a lone decode's blocks as one run, an empty window
    for i, read in enumerate(reads):
        k, v = read_quantized(cache, read)
        k, v = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)  # GQA: 2 query heads per kv head
        p = (torch.einsum("hd,thd->ht", q[i % 2], k) * dim**-0.5).softmax(-1)
        expected = torch.einsum("ht,thd->hd", p, v)
        if i < 2:
            torch.testing.assert_close(got[i], expected, atol=1e-5, rtol=1e-5)
        # the same sequence decoding alone: unpadded, unmasked, its blocks a view when they form one run
        blocks = read.full_blocks.tolist()
        run = blocks[0] if blocks == list(range(blocks[0], blocks[0] + len(blocks))) else None
        lone = LoneDecode(len(blocks) * bs + read.tail, read.window, run)
        windows = torch.tensor([read.window])
        alone = QuantStep(empty, empty, empty, empty, read.full_blocks[None], windows, None, lone=lone)
        torch.testing.assert_close(
            _decode_quantized(q[i % 2 : i % 2 + 1], cache, alone, dim**-0.5)[0],
            expected,
            atol=1e-5,
            rtol=1e-5,
        )
