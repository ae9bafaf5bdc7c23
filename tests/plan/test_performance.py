import pytest

from ctxops.plan import Efficiency, KvDtype, PlanRequest, count_params, make_plan, parse_gpu, resolve_model
from ctxops.plan.kv import kv_layout
from ctxops.plan.performance import Roofline

LLAMA_8B = resolve_model("llama-3.1-8b").config
IDEAL = Efficiency(1.0, 1.0)


def _roofline(gpu, efficiency=IDEAL, config=LLAMA_8B):
    params = count_params(config)
    return Roofline(
        config,
        params,
        2 * params.total,
        kv_layout(config, KvDtype.BF16),
        parse_gpu(gpu)[0],
        efficiency=efficiency,
    )


def test_prefill_flops_of_llama_8b_at_32k():
    flops = _roofline("h100").prefill_flops(32_768)
    linear = 2 * 8.03e9 * 32_768
    assert linear == pytest.approx(5.26e14, rel=0.01)
    assert flops - linear == pytest.approx(2.81e14, rel=0.01)  # causal attention


def test_ttft_at_32k_on_h100_at_half_mfu_is_about_1_6_s():
    assert _roofline("h100", Efficiency(1.0, 0.5)).ttft(32_768) == pytest.approx(1.6, rel=0.05)


def test_decode_bound_at_batch_1_matches_bandwidth_over_weights():
    assert 1 / _roofline("h100").decode_step(1, 1) == pytest.approx(209, rel=0.01)
    assert 1 / _roofline("a100-80gb").decode_step(1, 1) == pytest.approx(127, rel=0.01)


def test_kv_reads_dominate_at_batch_32_and_8k_context():
    roofline = _roofline("h100")
    kv = 32 * roofline.layout.read_bytes(8192)
    assert kv > 2 * count_params(LLAMA_8B).total  # 34 GB of KV vs 16 GB of weights
    assert roofline.decode_step(32, 8192) > roofline.decode_step(1, 8192)


def test_efficiency_slows_decode_proportionally():
    ideal, real = _roofline("h100"), _roofline("h100", Efficiency(0.5, 1.0))
    assert real.decode_step(1, 1000) == pytest.approx(2 * ideal.decode_step(1, 1000))


def test_moe_decode_reads_only_routed_experts_at_batch_1():
    mixtral = resolve_model("mixtral-8x7b").config
    roofline = _roofline("h100", config=mixtral)
    params = count_params(mixtral)
    assert roofline.weights_read(1) == pytest.approx(2 * params.active, rel=0.01)
    assert roofline.weights_read(256) == pytest.approx(2 * params.total, rel=0.01)


def test_cost_per_million_tokens_follows_price_and_throughput():
    device = parse_gpu("h100")[0]
    plan = make_plan(PlanRequest(LLAMA_8B, device, max_model_len=8192, concurrency=8, price_per_gpu_hour=3.6))
    assert plan.cost_per_million == pytest.approx(3.6 / (plan.throughput_tok_s * 3600) * 1e6)
    cheaper = make_plan(
        PlanRequest(LLAMA_8B, device, max_model_len=8192, concurrency=8, price_per_gpu_hour=1.8)
    )
    assert cheaper.cost_per_million == pytest.approx(plan.cost_per_million / 2)


def test_latency_targets_name_the_limit():
    device = parse_gpu("l4")[0]
    plan = make_plan(
        PlanRequest(
            LLAMA_8B,
            device,
            max_model_len=8192,
            weights=None,
            max_ttft_s=0.01,
            kv_dtype=KvDtype.FP8,
            activation_gib=1.0,
        )
    )
    assert plan.limit.value in ("ttft", "weights")
    h100 = parse_gpu("h100")[0]
    slow = make_plan(PlanRequest(LLAMA_8B, h100, max_model_len=8192, min_decode_tok_s=10_000))
    assert slow.limit.value == "decode_speed"
