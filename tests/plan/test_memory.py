import pytest

from ctxops.plan import (
    EngineProfile,
    KvDtype,
    PlanRequest,
    WeightDtype,
    count_params,
    make_plan,
    parse_gpu,
    resolve_model,
)
from ctxops.plan.memory import GiB, weights_bytes

LLAMA_8B = resolve_model("llama-3.1-8b").config


def _plan(gpu, **kw):
    device, count = parse_gpu(gpu)
    return make_plan(PlanRequest(LLAMA_8B, device, num_gpus=count, **kw))


def test_llama_8b_on_h100_matches_the_llm_d_measurement():
    # llm-d: vLLM 0.11, H100 79.18 GiB, util 0.9, max_model_len 16000, block 128 -> 51.38 GiB, ~420,905 tokens
    plan = _plan("h100", gpu_memory_utilization=0.9, max_model_len=16_000, block_size=128)
    assert plan.memory.kv_pool / GiB == pytest.approx(51.38, rel=0.02)
    assert plan.memory.kv_cache_tokens == pytest.approx(420_905, rel=0.02)
    assert plan.memory.max_concurrency == pytest.approx(26.3, rel=0.02)
    assert plan.weights_bytes / GiB == pytest.approx(14.99, rel=0.01)
    assert plan.fits


def test_llama_8b_on_rtx3090_matches_vllm_issue_10517():
    # V0 without chunked prefill, 23.58 GiB, util 0.9: 31,232 tokens, 1.56x at 20K, refused at 29K
    plan = _plan("rtx3090", gpu_memory_utilization=0.9, max_model_len=20_000, profile=EngineProfile.V0)
    assert plan.memory.kv_cache_tokens == pytest.approx(31_232, rel=0.03)
    assert plan.memory.max_concurrency == pytest.approx(1.56, rel=0.03)
    assert plan.fits
    refused = _plan("rtx3090", gpu_memory_utilization=0.9, max_model_len=29_000, profile=EngineProfile.V0)
    assert refused.memory.max_concurrency == pytest.approx(0.82, rel=0.05)
    assert not refused.fits
    assert refused.limit.value == "kv_cache"


def test_int4_keeps_embeddings_16_bit():
    params = count_params(LLAMA_8B)
    int4 = weights_bytes(params, WeightDtype.INT4)
    embeddings = 2 * 128256 * 4096 * 2  # embed_tokens + lm_head, 16-bit: ~2.1 GB
    assert int4 > embeddings + params.quantizable * 4 / 8
    assert int4 == pytest.approx(embeddings + params.quantizable * 4.15625 / 8, rel=1e-3)
    assert weights_bytes(params, WeightDtype.BF16) == 2 * params.total


def test_weights_that_do_not_fit_name_the_weights():
    plan = make_plan(
        PlanRequest(resolve_model("llama-3.1-70b").config, parse_gpu("rtx4090")[0], max_model_len=4096)
    )
    assert not plan.fits
    assert plan.limit.value == "weights"


def test_tensor_parallel_halves_weights_and_kv_per_gpu():
    one, two = _plan("h100", max_model_len=8192), _plan("h100x2", max_model_len=8192)
    assert two.memory.weights == pytest.approx(one.memory.weights / 2, abs=1)
    assert two.layout.bytes_per_token == one.layout.bytes_per_token // 2
    assert two.memory.non_torch > one.memory.non_torch


def test_fp8_kv_doubles_the_tokens():
    bf16 = _plan("h100", max_model_len=16_000)
    fp8 = _plan("h100", max_model_len=16_000, kv_dtype=KvDtype.FP8)
    assert fp8.memory.kv_cache_tokens == pytest.approx(2 * bf16.memory.kv_cache_tokens, rel=0.001)


def test_v0_activation_grows_with_max_model_len_and_v1_does_not():
    v0 = [_plan("h100", max_model_len=n, profile=EngineProfile.V0).memory.activation for n in (8192, 32768)]
    v1 = [_plan("h100", max_model_len=n).memory.activation for n in (8192, 32768)]
    assert v0[1] > v0[0]
    assert v1[0] == v1[1]
