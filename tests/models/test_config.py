"""ModelConfig parsing: every field the engine and planner read, both RoPE layouts, and clear refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ctxops.models.config import ModelConfig, ModelConfigError, RopeType, UnsupportedModelError

LLAMA31 = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "tie_word_embeddings": False,
    "eos_token_id": [128001, 128008, 128009],
    "torch_dtype": "bfloat16",
}


def test_llama31_old_layout():
    cfg = ModelConfig.from_dict(LLAMA31)
    assert cfg.head_dim == 128 and cfg.num_key_value_heads == 8 and cfg.num_queries_per_kv == 4
    assert cfg.rope.type == RopeType.LLAMA3 and cfg.rope.theta == 500000.0 and cfg.rope.factor == 8.0
    assert cfg.rope.original_max_position_embeddings == 8192
    assert cfg.eos_token_ids == (128001, 128008, 128009) and cfg.torch_dtype == "bfloat16"
    cfg.check_engine_support(8192)


def test_transformers5_rope_parameters_layout():
    raw = {
        **LLAMA31,
        "rope_parameters": {
            "rope_type": "yarn",
            "factor": 4.0,
            "rope_theta": 1e6,
            "original_max_position_embeddings": 32768,
        },
    }
    del raw["rope_scaling"], raw["rope_theta"]
    cfg = ModelConfig.from_dict(raw)
    assert cfg.rope.type == RopeType.YARN and cfg.rope.theta == 1e6 and cfg.rope.factor == 4.0


def test_head_dim_is_read_not_assumed():
    raw = {
        **LLAMA31,
        "model_type": "qwen3",
        "architectures": ["Qwen3ForCausalLM"],
        "hidden_size": 2560,
        "num_attention_heads": 32,
        "head_dim": 128,
    }
    cfg = ModelConfig.from_dict(raw)
    assert cfg.head_dim == 128 and cfg.qk_norm  # 2560 / 32 would be 80


def test_qwen2_biases_and_disabled_window():
    raw = {
        **LLAMA31,
        "model_type": "qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "use_sliding_window": False,
        "sliding_window": 32768,
        "max_window_layers": 28,
    }
    cfg = ModelConfig.from_dict(raw)
    assert cfg.qkv_bias and not cfg.o_bias and cfg.sliding_window_layers == ()
    cfg.check_engine_support(131072)


def test_unsupported_architecture_names_the_supported_ones():
    raw = {**LLAMA31, "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}
    with pytest.raises(UnsupportedModelError, match="LlamaForCausalLM.*MistralForCausalLM.*Qwen2ForCausalLM"):
        ModelConfig.from_dict(raw).check_engine_support(4096)


def test_sliding_window_is_refused_beyond_the_window():
    raw = {
        **LLAMA31,
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "sliding_window": 4096,
    }
    cfg = ModelConfig.from_dict(raw)
    with pytest.raises(UnsupportedModelError, match="sliding-window attention.*max_model_len <= 4096"):
        cfg.check_engine_support(32768)
    cfg.check_engine_support(4096)  # inside the window it is exactly full attention


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"hidden_size": None}, "missing required field 'hidden_size'"),
        ({"num_key_value_heads": 5}, "multiple of num_key_value_heads"),
        ({"rope_scaling": {"rope_type": "warp"}}, "unknown rope_type 'warp'"),
        ({"rope_scaling": {"rope_type": "linear"}}, "needs a 'factor'"),
        ({"vocab_size": "big"}, "'vocab_size' must be an integer"),
    ],
)
def test_bad_configs_name_the_field(change, error):
    with pytest.raises(ModelConfigError, match=error):
        ModelConfig.from_dict({**LLAMA31, **change})


def test_from_path_errors_name_the_file(tmp_path):
    with pytest.raises(ModelConfigError, match="config.json: not found"):
        ModelConfig.from_path(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelConfigError, match="not valid JSON"):
        ModelConfig.from_path(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(LLAMA31))
    assert ModelConfig.from_path(tmp_path).num_hidden_layers == 32


def test_config_module_imports_no_torch():
    code = "import sys, ctxops.models.config as c; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
