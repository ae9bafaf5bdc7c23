import pytest

from ctxops.plan import count_params, resolve_model

# Published parameter counts (model cards / safetensors metadata); MTP heads excluded for DeepSeek-V3.
PUBLISHED = {
    "llama-3.1-8b": 8.03e9,
    "llama-3.1-70b": 70.55e9,
    "llama-3.2-1b": 1.24e9,
    "llama-3.2-3b": 3.21e9,
    "qwen2.5-0.5b": 0.49e9,
    "qwen2.5-7b": 7.62e9,
    "qwen2.5-72b": 72.7e9,
    "qwen3-8b": 8.19e9,
    "mistral-7b-v0.3": 7.25e9,
    "gemma-2-9b": 9.24e9,
    "phi-3-mini-128k": 3.82e9,
    "deepseek-v3": 671e9,
    "mixtral-8x7b": 46.7e9,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_preset_matches_its_published_parameter_count(name):
    total = count_params(resolve_model(name).config).total
    assert total == pytest.approx(PUBLISHED[name], rel=0.01)


def test_moe_active_parameters():
    assert count_params(resolve_model("deepseek-v3").config).active == pytest.approx(37e9, rel=0.02)
    assert count_params(resolve_model("mixtral-8x7b").config).active == pytest.approx(12.9e9, rel=0.01)


def test_dense_model_has_every_parameter_active():
    params = count_params(resolve_model("qwen2.5-7b").config)
    assert params.active == params.total
    assert params.experts == 0


def test_tied_embeddings_are_counted_once():
    params = count_params(resolve_model("llama-3.2-1b").config)
    assert params.embedding == 128256 * 2048
