from ctxops.plan import PlanRequest, parse_gpu, recommend, resolve_model


def _base(name, **kw):
    return PlanRequest(resolve_model(name).config, parse_gpu("h100")[0], **kw)


def test_recommendations_fit_and_are_sorted_by_cost():
    plans = recommend(_base("llama-3.1-8b", max_model_len=32_768, concurrency=8), limit=20)
    assert plans
    assert all(p.fits for p in plans)
    costs = [p.cost_per_million for p in plans]
    assert costs == sorted(costs)
    assert all(p.memory.max_concurrency >= 8 for p in plans)


def test_a_big_model_needs_several_gpus_or_quantization():
    plans = recommend(_base("llama-3.1-70b", max_model_len=32_768, concurrency=4), limit=50)
    assert plans
    for plan in plans:
        req = plan.request
        assert req.num_gpus > 1 or req.weight_dtype.value in ("int4", "int8", "fp8")


def test_latency_target_filters_setups():
    loose = recommend(_base("llama-3.1-8b", max_model_len=16_384), limit=1000)
    strict = recommend(_base("llama-3.1-8b", max_model_len=16_384, max_ttft_s=0.5), limit=1000)
    assert 0 < len(strict) < len(loose)
    assert all(p.ttft_s <= 0.5 for p in strict)
