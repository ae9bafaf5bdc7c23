"""The native decode kernels equal the torch reference: paged decode attention over scattered blocks (bf16 and
fp32, several GQA shapes, lengths that end mid-block) and the few-row bf16 linear; the engine decodes the same
greedy tokens with and without them; the build is cached, keyed and switchable."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ctxops import LLM, SamplingParams
from ctxops.models import native
from ctxops.models.attention import gather_blocks
from hf_models import make_hf_model

KERNELS = native.kernels()
pytestmark = pytest.mark.skipif(KERNELS is None, reason="no C compiler: the native kernels are not built")


def _reference(q, k_cache, v_cache, tables, lens, scale):
    keys, values = gather_blocks(k_cache, tables).float(), gather_blocks(v_cache, tables).float()
    mask = (torch.arange(keys.shape[2])[None, :] < lens[:, None])[:, None, None, :]
    out = F.scaled_dot_product_attention(
        q.float().unsqueeze(2), keys, values, attn_mask=mask, scale=scale, enable_gqa=True
    )
    return out.squeeze(2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("heads", "kv_heads", "dim"), [(8, 2, 64), (9, 3, 64), (4, 4, 32), (6, 1, 128)])
def test_decode_attention_equals_reference(dtype, heads, kv_heads, dim):
    g = torch.Generator().manual_seed(heads * 100 + dim)
    block, num_blocks = 16, 80
    k_cache = torch.randn(num_blocks, block, kv_heads, dim, generator=g).to(dtype)
    v_cache = torch.randn(num_blocks, block, kv_heads, dim, generator=g).to(dtype)
    lens = torch.tensor(
        [1, 17, 300, 640, 33]
    )  # one token, mid-block ends, long enough to split across threads
    max_blocks = -(-int(lens.max()) // block)
    tables = torch.stack([torch.randperm(num_blocks, generator=g)[:max_blocks] for _ in lens])
    q = torch.randn(len(lens), heads, dim, generator=g).to(dtype)
    got = KERNELS.decode_attention(q, k_cache, v_cache, tables, lens, dim**-0.5)
    assert got.dtype == dtype and got.shape == q.shape
    tol = 1e-5 if dtype == torch.float32 else 1e-2  # bf16: the output's own rounding
    torch.testing.assert_close(
        got.float(), _reference(q, k_cache, v_cache, tables, lens, dim**-0.5), atol=tol, rtol=tol
    )


def test_decode_attention_of_one_sequence_ignores_padding_blocks():
    """Blocks past a sequence's length (padding of a batch) never change its output."""
    g = torch.Generator().manual_seed(3)
    k_cache, v_cache = torch.randn(2, 20, 16, 2, 64, generator=g)
    q = torch.randn(1, 8, 64, generator=g)
    lens = torch.tensor([35])
    a = KERNELS.decode_attention(q, k_cache, v_cache, torch.tensor([[4, 9, 1, 0, 0]]), lens, 0.125)
    b = KERNELS.decode_attention(q, k_cache, v_cache, torch.tensor([[4, 9, 1, 17, 12]]), lens, 0.125)
    assert torch.equal(a, b)


@pytest.mark.parametrize("rows", [1, 3, 8, 16])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_bf16_equals_fp32_reference(rows, bias):
    g = torch.Generator().manual_seed(rows)
    weight = torch.randn(260, 576, generator=g).bfloat16()
    b = torch.randn(260, generator=g).bfloat16() if bias else None
    x = torch.randn(rows, 576, generator=g).bfloat16()
    got = KERNELS.linear_bf16(x, weight, b)
    expected = x.float() @ weight.float().T + (b.float() if bias else 0)
    assert got.dtype == torch.bfloat16 and got.shape == (rows, 260)
    torch.testing.assert_close(got.float(), expected, atol=0.02, rtol=0.01)  # fp32 sums, one bf16 rounding


def test_linear_int8_equals_dequantized_reference():
    from ctxops.models.weight_quant import quantize_weight

    g = torch.Generator().manual_seed(5)
    codes, scale = quantize_weight(torch.randn(132, 320, generator=g))
    bias = torch.randn(132, generator=g).bfloat16()
    x = torch.randn(5, 320, generator=g).bfloat16()
    got = KERNELS.linear_int8(x, codes, scale.bfloat16(), bias)
    expected = (x.float() @ codes.float().T) * scale.bfloat16().float() + bias.float()
    torch.testing.assert_close(got.float(), expected, atol=0.05, rtol=0.01)


def test_rms_norm_rounds_like_the_torch_module():
    from ctxops.models.llama import RMSNorm

    g = torch.Generator().manual_seed(9)
    norm = RMSNorm(576, 1e-5).to(torch.bfloat16)
    norm.weight.data = torch.randn(576, generator=g).bfloat16()
    x = (torch.randn(3, 576, generator=g) * 4).bfloat16()
    got = KERNELS.rms_norm_bf16(x, norm.weight, 1e-5)
    normed = torch.nn.functional.rms_norm(x.float(), (576,), None, 1e-5).bfloat16()
    expected = norm.weight * normed  # the torch path of RMSNorm.forward
    assert (
        got.float() - expected.float()
    ).abs().max() <= expected.float().abs().max() * 2**-7  # one bf16 step


@pytest.fixture
def torch_only(monkeypatch):
    """The torch kernels alone, as on a machine without a compiler."""
    monkeypatch.setenv("CTXOPS_NATIVE", "0")
    native.kernels.cache_clear()
    assert native.kernels() is None
    yield
    monkeypatch.delenv("CTXOPS_NATIVE")
    native.kernels.cache_clear()


def _greedy(directory, dtype, max_tokens):
    llm = LLM(str(directory), dtype=dtype, kv_cache_memory="8MiB", max_model_len=512)
    g = torch.Generator().manual_seed(7)
    prompts = [torch.randint(5, 200, (n,), generator=g).tolist() for n in (5, 40, 90)]
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True, logprobs=1)
    outs = llm.generate(prompts, params, use_tqdm=False)
    tokens = [o.outputs[0].token_ids for o in outs]
    logprobs = [
        [step[t].logprob for step, t in zip(o.outputs[0].logprobs, tokens[i], strict=True)]
        for i, o in enumerate(outs)
    ]
    return tokens, logprobs


def test_engine_decodes_the_same_tokens_with_and_without_native_kernels(tmp_path, request):
    """fp32: the same greedy tokens for 24 steps and logprobs within 1e-4 (sums in another order)."""
    directory = make_hf_model(tmp_path, "llama")
    tokens, logprobs = _greedy(directory, "float32", 24)
    request.getfixturevalue("torch_only")
    ref_tokens, ref_logprobs = _greedy(directory, "float32", 24)
    assert tokens == ref_tokens
    for ours, ref in zip(logprobs, ref_logprobs, strict=True):
        assert ours == pytest.approx(ref, abs=1e-4)


def test_bf16_decode_stays_close_to_the_torch_kernels(tmp_path, request):
    """bf16 rounds differently in another summation order, so a random model's near-ties may part after a few
    steps: the first steps agree, with logprobs within bf16's resolution."""
    directory = make_hf_model(tmp_path, "llama")
    tokens, logprobs = _greedy(directory, "bfloat16", 4)
    request.getfixturevalue("torch_only")
    ref_tokens, ref_logprobs = _greedy(directory, "bfloat16", 4)
    assert tokens == ref_tokens
    for ours, ref in zip(logprobs, ref_logprobs, strict=True):
        assert ours == pytest.approx(ref, abs=0.05)


def test_build_is_cached_per_machine_and_switchable(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXOPS_CACHE_DIR", str(tmp_path))
    native.kernels.cache_clear()
    try:
        assert native.kernels() is not None
        built = list((tmp_path / "kernels").glob("ctxops_kernels_*.so"))
        assert len(built) == 1  # one library, named by source, compiler flags and CPU
        mtime = built[0].stat().st_mtime_ns
        native.kernels.cache_clear()
        assert native.kernels() is not None
        assert built[0].stat().st_mtime_ns == mtime  # loaded, not rebuilt
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
        (built[0]).unlink()
        native.kernels.cache_clear()
        assert native.kernels() is None  # a broken compiler means torch kernels, not a crash
    finally:
        native.kernels.cache_clear()
