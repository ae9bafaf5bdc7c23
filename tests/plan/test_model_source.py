import json

import pytest

from ctxops.models.config import ModelConfigError
from ctxops.plan import UnknownModelError, preset_names, resolve_model
from ctxops.plan.model_source import PLANNED_ARCHITECTURES, UnknownArchitectureError

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


def _write(tmp_path, **fields):
    config = {
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "vocab_size": 100,
        "max_position_embeddings": 512,
        **fields,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


def test_every_preset_is_a_family_the_planner_knows():
    for name in preset_names():
        assert resolve_model(name).config.model_type in PLANNED_ARCHITECTURES, name


@pytest.mark.parametrize(
    "fields",
    [
        {"architectures": ["JambaForCausalLM"], "model_type": "jamba"},
        {"architectures": ["MambaForCausalLM"]},
        {"model_type": "rwkv"},
    ],
)
def test_an_unknown_family_is_refused_with_the_known_ones(tmp_path, fields):
    with pytest.raises(UnknownArchitectureError) as err:
        resolve_model(_write(tmp_path, **fields))
    message = str(err.value)
    assert (fields.get("architectures") or [fields.get("model_type")])[0] in message
    assert "LlamaForCausalLM" in message and "Qwen3ForCausalLM" in message and "config.json" in message


def test_assume_dense_plans_an_unknown_family_with_a_warning(tmp_path):
    source = resolve_model(_write(tmp_path, architectures=["JambaForCausalLM"], model_type="jamba"), True)
    assert source.config.num_attention_heads == 4
    assert len(source.warnings) == 1 and "JambaForCausalLM" in source.warnings[0]
    assert "estimate" in source.warnings[0]


def test_assume_dense_cannot_invent_attention_heads(tmp_path):
    path = str(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["MambaForCausalLM"], "model_type": "mamba", "hidden_size": 768})
    )
    with pytest.raises(ModelConfigError, match="num_attention_heads.*cannot be planned as a dense decoder"):
        resolve_model(path, assume_dense=True)


def test_known_families_and_multimodal_wrappers_need_no_flag(tmp_path):
    llava = _write(tmp_path, architectures=["LlavaForConditionalGeneration"], model_type="llava")
    with pytest.raises(UnknownArchitectureError):
        resolve_model(llava)  # no text_config: the wrapper alone says nothing about the language model
    gemma3 = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3"}
    text = {"model_type": "gemma3_text", "hidden_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2}
    (tmp_path / "config.json").write_text(
        json.dumps({**gemma3, "text_config": {**text, "vocab_size": 100, "max_position_embeddings": 512}})
    )
    source = resolve_model(str(tmp_path))
    assert source.config.model_type == "gemma3_text" and source.warnings == ()
    assert resolve_model(_write(tmp_path, architectures=["Qwen3MoeForCausalLM"])).warnings == ()
