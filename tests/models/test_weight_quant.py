"""Weight-only int8 (per output channel): error bound, the layer's output, and greedy agreement with fp32."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ctxops import LLM, SamplingParams
from ctxops.models.weight_quant import Int8Linear, quantize_linears, quantize_weight, weight_bytes


def test_codes_are_within_half_a_step_per_row():
    w = torch.randn(48, 96) * torch.logspace(-2, 1, 48)[:, None]  # rows of very different magnitude
    codes, scale = quantize_weight(w)
    assert codes.dtype == torch.int8 and scale.shape == (48,)
    err = (codes.float() * scale[:, None] - w).abs()
    assert (err <= 0.5 * scale[:, None] + 1e-7).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int8_linear_matches_the_float_layer(dtype):
    torch.manual_seed(0)
    linear = nn.Linear(64, 40, bias=True).to(dtype)
    x = torch.randn(7, 64, dtype=dtype)
    quantized = Int8Linear(linear)
    got, expected = quantized(x).float(), linear(x).float()
    assert got.dtype == torch.float32 and quantized(x).dtype == dtype
    rel = (got - expected).norm() / expected.norm()
    assert rel < (0.01 if dtype == torch.float32 else 0.03), rel


def test_quantize_linears_replaces_every_linear():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 4, bias=False)))
    before = weight_bytes(model)
    assert quantize_linears(model) == 2
    assert all(not isinstance(m, nn.Linear) for m in model.modules())
    assert weight_bytes(model) < before / 2


def test_greedy_outputs_agree_with_fp32(tiny_model_dir):
    """20 prompts x 16 greedy tokens on the tiny random model: int8 weights gave 20/20 identical outputs."""
    params = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)
    outputs = {}
    for quantization in (None, "int8"):
        llm = LLM(str(tiny_model_dir), kv_cache_memory="2MiB", max_model_len=256, quantization=quantization)
        vocab = llm.engine.model_config.vocab_size
        prompts = [[(7 * i + 3 * p) % (vocab - 10) + 5 for i in range(10 + 7 * p)] for p in range(20)]
        outputs[quantization] = [
            o.outputs[0].token_ids for o in llm.generate(prompts, params, use_tqdm=False)
        ]
        layer = llm.engine.runner.model.model.layers[0]
        assert isinstance(layer.mlp.down_proj, Int8Linear) == (quantization == "int8")
    same = sum(a == b for a, b in zip(outputs[None], outputs["int8"], strict=True))
    assert same >= 18, f"only {same}/20 prompts gave the same greedy output"
