"""Model directories: sharded weights, generation config, chat templates, and errors that name file and field."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from ctxops import LLM, ModelConfigError, SamplingParams
from ctxops.cli.main import cli
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


def _truncate(file, size: int) -> None:
    with open(file, "r+b") as f:
        f.truncate(size)


@pytest.mark.parametrize(
    ("cut", "error"),
    [
        (0.5, "truncated: it is .* bytes but its header declares 5.*bytes missing"),
        (100, "truncated or not a safetensors file: it is 100 bytes but declares a .*-byte header"),
        (3, "3 bytes, too short to be a safetensors file"),
    ],
)
def test_truncated_weights_are_refused_before_loading(model_copy, cut, error):
    file = model_copy / "model.safetensors"
    _truncate(file, int(file.stat().st_size * cut) if isinstance(cut, float) else cut)
    with pytest.raises(ModelConfigError, match=f"model.safetensors: {error}.*re-download or re-convert it"):
        resolve_model_path(model_copy)  # the cheap check: header and size only, before any engine is built


def test_trailing_bytes_and_lfs_pointers_are_named(model_copy):
    file = model_copy / "model.safetensors"
    with open(file, "ab") as f:
        f.write(b"\0" * 7)
    with pytest.raises(ModelConfigError, match="model.safetensors: corrupt: .*\\(7 bytes too many\\)"):
        LLM(str(model_copy), kv_cache_memory="1MiB", max_model_len=128)
    file.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 523592\n")
    with pytest.raises(ModelConfigError, match="model.safetensors: a Git LFS pointer .*git lfs pull"):
        LLM(str(model_copy), kv_cache_memory="1MiB", max_model_len=128)


def test_a_header_safetensors_rejects_is_named(model_copy):
    file = model_copy / "model.safetensors"
    header = json.dumps(
        {"model.norm.weight": {"dtype": "NOPE", "shape": [2], "data_offsets": [0, 8]}}
    ).encode()
    file.write_bytes(
        len(header).to_bytes(8, "little") + header + b"\0" * 8
    )  # sizes agree; the dtype does not
    with pytest.raises(
        ModelConfigError, match="model.safetensors: cannot be read as safetensors .*re-download"
    ):
        LLM(str(model_copy), kv_cache_memory="1MiB", max_model_len=128)


def test_generate_and_serve_name_a_truncated_weight_file(model_copy):
    file = model_copy / "model.safetensors"
    _truncate(file, file.stat().st_size // 2)
    args = ["--kv-cache-memory", "1MiB", "--max-model-len", "64"]
    result = CliRunner().invoke(cli, ["generate", "--model", str(model_copy), *args, "hello"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # a click error, not a crash
    assert "Traceback" not in result.output and f"{file}: truncated" in result.output
    served = subprocess.run(
        [sys.executable, "-m", "ctxops", "serve", str(model_copy), "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )  # refused before the port is bound: no 503s while a doomed engine loads
    assert served.returncode == 1 and "Traceback" not in served.stderr
    assert f"{file}: truncated" in served.stderr and "re-download or re-convert it" in served.stderr
