import json

import pytest

from ctxops.models.config import ModelConfigError
from ctxops.plan import UnknownModelError, preset_names, resolve_model

ISSUE_PRESETS = [
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.2-1b",
    "llama-3.2-3b",
    "qwen2.5-0.5b",
    "qwen2.5-7b",
    "qwen2.5-72b",
    "qwen3-8b",
    "mistral-7b-v0.3",
    "gemma-2-9b",
    "phi-3-mini-128k",
    "deepseek-v3",
    "mixtral-8x7b",
]


def test_every_issue_preset_ships():
    assert set(ISSUE_PRESETS) <= set(preset_names())


def test_hub_ids_and_case_are_accepted():
    assert resolve_model("meta-llama/Llama-3.1-8B").name == "llama-3.1-8b"
    assert resolve_model("Llama-3.1-8B").name == "llama-3.1-8b"
    assert resolve_model("deepseek-ai/DeepSeek-V3").config.is_mla


def test_unknown_model_lists_presets():
    with pytest.raises(UnknownModelError) as err:
        resolve_model("llama-9")
    assert "llama-3.1-8b" in str(err.value) and "qwen3-8b" in str(err.value)


def test_config_file_and_directory(tmp_path):
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "vocab_size": 100,
        "max_position_embeddings": 512,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert resolve_model(str(tmp_path)).config.hidden_size == 256
    assert resolve_model(str(tmp_path / "config.json")).directory == tmp_path


def test_config_missing_a_field_names_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 256}))
    with pytest.raises(ModelConfigError, match="num_attention_heads"):
        resolve_model(str(tmp_path))
