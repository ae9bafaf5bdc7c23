import pytest

from ctxops.models.config import ModelConfig
from ctxops.plan import KvDtype, resolve_model
from ctxops.plan.kv import kv_layout


def _layout(name, kv_dtype=KvDtype.BF16, **kw):
    return kv_layout(resolve_model(name).config, kv_dtype, **kw)


def test_gqa_bytes_per_token_of_reference_configs():
    assert _layout("llama-3.1-8b").bytes_per_token == 131_072
    assert _layout("llama-3.1-70b").bytes_per_token == 327_680
    assert _layout("qwen2.5-7b").bytes_per_token == 57_344
    assert _layout("mistral-7b-v0.3").bytes_per_token == 131_072
    assert _layout("phi-3-mini-128k").bytes_per_token == 393_216


def test_deepseek_v3_mla_is_exactly_70272_bytes_per_token_in_bf16():
    assert _layout("deepseek-v3").bytes_per_token == 70_272  # 61 x (512 + 64) x 2, no K/V factor 2


def test_deepseek_v3_fp8_uses_the_ds_mla_layout():
    assert _layout("deepseek-v3", KvDtype.FP8).bytes_per_token == 40_016  # 61 x 656


def test_mla_is_not_split_by_tensor_parallelism():
    assert _layout("deepseek-v3", tp=8).bytes_per_token == 70_272


def test_gemma2_has_256_dim_heads_and_21_global_plus_21_windowed_layers():
    config = resolve_model("gemma-2-9b").config
    assert config.head_dim == 256  # not hidden / heads = 224
    layout = kv_layout(config, KvDtype.BF16)
    assert (layout.num_full_layers, layout.num_sliding_layers, layout.window) == (21, 21, 4096)
    assert layout.bytes_per_token == 172_032  # global layers grow
    assert layout.bytes_per_token_all_layers == 344_064


def test_sliding_layers_are_bounded_per_request_and_global_layers_grow():
    layout = _layout("gemma-2-9b", block_size=16, max_num_batched_tokens=2048)
    per_layer_block = 16 * layout.layer_bytes_per_token
    short, long = layout.request_bytes(8192), layout.request_bytes(16384)
    # only the 21 global layers grow by 8192 tokens
    assert long - short == 21 * (16384 - 8192) // 16 * per_layer_block
    sliding_blocks = layout.blocks_per_layer(100_000, sliding=True)
    assert sliding_blocks == -(-(4096 - 1 + 2048) // 16) + 1


def test_qwen_and_phi_sliding_window_fields_do_not_enable_windowing():
    assert _layout("qwen2.5-7b").num_sliding_layers == 0  # use_sliding_window: false
    assert _layout("phi-3-mini-128k").num_sliding_layers == 0  # window 262144 > max positions


def test_quantized_kv_dtypes_and_tensor_parallel_heads():
    assert _layout("llama-3.1-8b", KvDtype.FP8).bytes_per_token == 65_536
    # the engine's formats: int8 one fp16 scale per token-head for K and for V
    assert _layout("llama-3.1-8b", KvDtype.INT8).bytes_per_token == 32 * 2 * 8 * (128 + 2)
    # int4: K codes + an fp8 scale per channel per 16-token block, V codes + 2 groups x fp16 (scale, minimum)
    assert _layout("llama-3.1-8b", KvDtype.INT4).bytes_per_token == 32 * 8 * (64 + 128 // 16 + 64 + 2 * 4)
    assert _layout("llama-3.1-8b", KvDtype.INT4, block_size=64).bytes_per_token == 32 * 8 * (64 + 2 + 64 + 8)
    assert _layout("llama-3.1-8b", tp=2).bytes_per_token == 65_536
    assert _layout("llama-3.1-8b", tp=16).bytes_per_token == 131_072 // 8  # at least one head per rank


def test_mqa_config():
    config = ModelConfig.from_dict(
        {
            "model_type": "llama",
            "hidden_size": 1024,
            "num_attention_heads": 16,
            "num_key_value_heads": 1,
            "num_hidden_layers": 4,
            "vocab_size": 1000,
            "max_position_embeddings": 2048,
        }
    )
    assert kv_layout(config, KvDtype.BF16).bytes_per_token == 4 * 2 * 1 * 64 * 2


@pytest.mark.parametrize("kv_dtype", list(KvDtype))
def test_every_kv_dtype_gives_positive_bytes(kv_dtype):
    assert _layout("qwen3-8b", kv_dtype).bytes_per_token > 0


@pytest.mark.parametrize("kv_dtype", [KvDtype.INT8, KvDtype.INT4])
@pytest.mark.parametrize("block_size", [16, 64])
def test_planner_counts_the_bytes_the_engine_stores(tiny_model_dir, kv_dtype, block_size):
    """One byte model: the planner's int8/int4 bytes per token are the engine pool's ``cache_info``."""
    from ctxops import LLM

    llm = LLM(
        str(tiny_model_dir), kv_cache_memory=4 * 2**20, max_model_len=256, max_num_seqs=2,
        kv_cache_dtype=kv_dtype.value, block_size=block_size,
    )  # fmt: skip
    layout = kv_layout(ModelConfig.from_dict(_config_dict(tiny_model_dir)), kv_dtype, block_size=block_size)
    assert layout.bytes_per_token == llm.cache_info.bytes_per_token
    assert layout.block_size * layout.bytes_per_token == llm.cache_info.bytes_per_block


def _config_dict(model_dir):
    import json

    return json.loads((model_dir / "config.json").read_text())
