"""Model directories: sharded weights, generation config, chat templates, and errors that name file and field."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from ctxops import LLM, ModelConfigError, SamplingParams
from ctxops.models.loader import resolve_model_path
from ctxops.models.tokenizer import Tokenizer


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    return shutil.copytree(tiny_model_dir, tmp_path / "model")


def _greedy(path) -> list[int]:
    llm = LLM(str(path), kv_cache_memory="1MiB", max_model_len=128)
    return (
        llm.generate(
            [[5, 6, 7, 8, 9]], SamplingParams(max_tokens=6, temperature=0, ignore_eos=True), use_tqdm=False
        )[0]
        .outputs[0]
        .token_ids
    )


def test_sharded_checkpoint_loads_the_same_weights(model_copy, tiny_model_dir):
    state = load_file(str(model_copy / "model.safetensors"))
    (model_copy / "model.safetensors").unlink()
    names = sorted(state)
    half = len(names) // 2
    shards = {
        "model-00001-of-00002.safetensors": names[:half],
        "model-00002-of-00002.safetensors": names[half:],
    }
    for file, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(model_copy / file))
    weight_map = {k: f for f, keys in shards.items() for k in keys}
    (model_copy / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert _greedy(model_copy) == _greedy(tiny_model_dir)


def test_missing_shard_is_named(model_copy):
    (model_copy / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"x": "gone.safetensors"}})
    )
    with pytest.raises(ModelConfigError, match="missing: gone.safetensors"):
        LLM(str(model_copy), kv_cache_memory="1MiB", max_model_len=128)


def test_shape_mismatch_names_the_tensor(model_copy):
    config = json.loads((model_copy / "config.json").read_text())
    config["intermediate_size"] = 96
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelConfigError, match="mlp.*_proj.weight' has shape .*config.json implies"):
        LLM(str(model_copy), kv_cache_memory="1MiB", max_model_len=128)


def test_missing_tensor_is_named(model_copy):
    state = load_file(str(model_copy / "model.safetensors"))
    del state["model.norm.weight"]
    save_file(state, str(model_copy / "model.safetensors"))
    with pytest.raises(ModelConfigError, match="lack 1 tensors.*model.norm.weight"):
        LLM(str(model_copy), kv_cache_memory="1MiB", max_model_len=128)


@pytest.mark.parametrize(
    ("remove", "error"),
    [("tokenizer.json", "tokenizer.json: not found"), ("model.safetensors", "no \\*.safetensors weights")],
)
def test_missing_files_are_named(model_copy, remove, error):
    (model_copy / remove).unlink()
    with pytest.raises(ModelConfigError, match=error):
        LLM(str(model_copy), kv_cache_memory="1MiB", max_model_len=128)


def test_bad_generation_config_is_named(model_copy):
    (model_copy / "generation_config.json").write_text(json.dumps({"eos_token_id": "end"}))
    with pytest.raises(ModelConfigError, match="generation_config.json: field 'eos_token_id'"):
        LLM(str(model_copy), kv_cache_memory="1MiB", max_model_len=128)


def test_eos_ids_come_from_generation_config(tiny_model_dir):
    llm = LLM(str(tiny_model_dir), kv_cache_memory="1MiB", max_model_len=128)
    expected = json.loads((tiny_model_dir / "generation_config.json").read_text())["eos_token_id"]
    assert list(llm.engine.eos_token_ids) == expected


def test_model_paths_are_checked(tmp_path):
    with pytest.raises(ModelConfigError, match="never downloads"):
        resolve_model_path(tmp_path / "nope")
    with pytest.raises(ModelConfigError, match="no config.json"):
        resolve_model_path(tmp_path)


def test_pool_too_small_for_max_model_len_says_what_to_do(tiny_model_dir):
    with pytest.raises(
        ValueError, match="max_model_len \\(4096\\) is larger than the 512 tokens.*Raise kv_cache_memory"
    ):
        LLM(str(tiny_model_dir), kv_cache_memory=1024 * 256, max_model_len=4096)


def test_chat_template_from_jinja_file_and_errors(model_copy):
    (model_copy / "chat_template.jinja").write_text(
        "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}"
        "{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    tok = Tokenizer(model_copy)
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}]) == "[user]hi[assistant]"
    (model_copy / "chat_template.jinja").write_text("{% if %}")
    with pytest.raises(ModelConfigError, match="not valid jinja2"):
        Tokenizer(model_copy)


def test_template_exceptions_become_value_errors(model_copy):
    (model_copy / "chat_template.jinja").write_text("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(ValueError, match="roles must alternate"):
        Tokenizer(model_copy).apply_chat_template([{"role": "user", "content": "x"}])


def test_tokenizer_matches_transformers(tiny_model_dir):
    transformers = pytest.importorskip("transformers")
    hf = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tiny_model_dir / "tokenizer.json"))
    ours = Tokenizer(tiny_model_dir)
    text = "Contracts, codebases and chat histories: 1234567 tokens ü€"
    assert ours.encode(text) == hf(text)["input_ids"]
    assert ours.decode(ours.encode(text)) == text
    assert torch.tensor(ours.encode(text)).max() < ours.vocab_size


def test_continue_final_message_leaves_the_assistant_turn_open(tiny_model_dir):
    tok = Tokenizer(tiny_model_dir)
    user = [{"role": "user", "content": "What is the number?"}]
    opened = tok.apply_chat_template(user, add_generation_prompt=True)
    continued = tok.apply_chat_template(
        [*user, {"role": "assistant", "content": " The number is"}],
        add_generation_prompt=False,
        continue_final_message=True,
    )
    assert continued == opened + " The number is"
    with pytest.raises(ValueError, match="cannot both be true"):
        tok.apply_chat_template(user, add_generation_prompt=True, continue_final_message=True)
    with pytest.raises(ValueError, match="last message to be an assistant"):
        tok.apply_chat_template(user, add_generation_prompt=False, continue_final_message=True)
