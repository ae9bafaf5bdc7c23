"""Find a model directory and load its weights and generation defaults.

A model is a Hugging Face directory (``config.json``, ``*.safetensors`` single-file or sharded with
``model.safetensors.index.json``, ``tokenizer.json``, optional ``generation_config.json``) or ``builtin``, the tiny
model shipped inside the package. Nothing is ever downloaded. This module knows files and tensors by name; it does
not know how the engine uses them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from ctxops.models.config import ModelConfig, ModelConfigError, read_json_object

BUILTIN_DIR = Path(__file__).parent / "builtin"
# Checkpoint tensors the engine recomputes rather than loads.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def resolve_model_path(model: str | Path) -> Path:
    """Turn ``builtin`` or a directory path into a checked model directory."""
    if str(model) == "builtin":
        if not (BUILTIN_DIR / "config.json").is_file():
            raise ModelConfigError(
                "the builtin model is not shipped in this version of ctxops; pass a local Hugging Face model "
                "directory (create a random one with `python scripts/make_random_model.py DIR`)"
            )
        return BUILTIN_DIR
    path = Path(model).expanduser()
    if not path.exists():
        raise ModelConfigError(
            f"{path}: no such model directory. ctxops never downloads models: pass a local Hugging Face "
            "directory (config.json, *.safetensors, tokenizer.json) or `builtin`"
        )
    if not path.is_dir():
        raise ModelConfigError(f"{path}: expected a model directory, got a file")
    if not (path / "config.json").is_file():
        raise ModelConfigError(f"{path}: no config.json; is this a Hugging Face model directory?")
    return path


def weight_files(path: Path) -> list[Path]:
    """The safetensors files of a model directory, from the shard index when there is one."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise ModelConfigError(f"{index}: unreadable or missing field 'weight_map' ({exc})") from exc
        files = sorted({path / name for name in weight_map.values()})
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ModelConfigError(f"{index}: names shard files that are missing: {', '.join(missing)}")
        return files
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelConfigError(f"{path}: no *.safetensors weights found (.bin checkpoints are not supported)")
    return files


def load_weights(model: torch.nn.Module, path: Path, dtype: torch.dtype) -> None:
    """Copy every checkpoint tensor into the parameter of the same name, checking names and shapes."""
    params = dict(model.named_parameters())
    loaded: set[str] = set()
    for file in weight_files(path):
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not a dict
                if name.endswith(_IGNORED_SUFFIXES):
                    continue
                if name not in params:
                    raise ModelConfigError(
                        f"{file}: unexpected tensor {name!r}; does config.json match the weights?"
                    )
                tensor = f.get_tensor(name)
                target = params[name]
                if tuple(tensor.shape) != tuple(target.shape):
                    raise ModelConfigError(
                        f"{file}: tensor {name!r} has shape {tuple(tensor.shape)}, config.json implies "
                        f"{tuple(target.shape)}"
                    )
                with torch.no_grad():
                    target.copy_(tensor.to(dtype))
                loaded.add(name)
    tied = (
        {"lm_head.weight"} if getattr(model, "config", None) and model.config.tie_word_embeddings else set()
    )
    missing = sorted(set(params) - loaded - tied)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ModelConfigError(f"{path}: the weights lack {len(missing)} tensors the config needs: {shown}")


def eos_token_ids(path: Path, config: ModelConfig) -> tuple[int, ...]:
    """End-of-sequence ids: ``generation_config.json`` first (it lists all of them), else config.json."""
    file = path / "generation_config.json"
    if file.is_file():
        value = read_json_object(file).get("eos_token_id")
        if isinstance(value, int):
            return (value,)
        if isinstance(value, list) and all(isinstance(v, int) for v in value):
            return tuple(value)
        if value is not None:
            raise ModelConfigError(f"{file}: field 'eos_token_id' must be an integer or a list of integers")
    return config.eos_token_ids


def torch_dtype(name: str, config: ModelConfig) -> torch.dtype:
    """Map ``auto`` / ``float32`` / ``bfloat16`` / ``float16`` to a torch dtype (``auto`` = checkpoint's, fp32 if none)."""
    if name == "auto":
        name = config.torch_dtype or "float32"
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
        "half": torch.float16,
    }
    if name not in table:
        raise ValueError(f"dtype must be one of auto, float32, bfloat16, float16; got {name!r}")
    return table[name]
