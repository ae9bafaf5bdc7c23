"""Find a model directory and load its weights and generation defaults.

A model is a Hugging Face directory (``config.json``, ``*.safetensors`` single-file or sharded with
``model.safetensors.index.json``, ``tokenizer.json``, optional ``generation_config.json``) or ``builtin``, the tiny
model shipped inside the package. Nothing is ever downloaded. This module knows files and tensors by name; it does
not know how the engine uses them.

Weight files are checked when the directory is resolved, before any tensor is read: a safetensors file is an 8-byte
little-endian header length, a JSON header giving each tensor's byte range, then the data, so a truncated download
(or a Git LFS pointer left in place of the weights) shows in the file size and the first bytes. ``ctxops serve`` and
``ctxops generate`` therefore refuse such a directory at once, naming the file, instead of failing seconds later
inside safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ctxops.models.config import ModelConfig, ModelConfigError, read_json_object

BUILTIN_DIR = Path(__file__).parent / "builtin"
# Checkpoint tensors the engine recomputes rather than loads.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)
_HEADER_LENGTH_BYTES = 8  # safetensors: a little-endian u64 giving the JSON header's length
_LFS_POINTER = b"version https://git-lfs"
_FIX = "re-download or re-convert it"


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
    # Fail here, before the engine spends seconds building, on missing or truncated weights.
    weight_files(path)
    return path


def weight_files(path: Path) -> list[Path]:
    """The safetensors files of a model directory, from the shard index when there is one, each one checked."""
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
    for file in files:
        check_weight_file(file)
    return files


def check_weight_file(file: Path) -> None:
    """Check that a safetensors file is whole: its size must be exactly what its header declares.

    Reads only the header, so it costs microseconds even for a multi-gigabyte shard.
    """
    size = file.stat().st_size
    with file.open("rb") as f:
        if f.read(len(_LFS_POINTER)) == _LFS_POINTER:
            raise ModelConfigError(
                f"{file}: a Git LFS pointer ({size:,} bytes), not the weights; run `git lfs pull` in the model "
                f"directory, or {_FIX}"
            )
        f.seek(0)
        head = f.read(_HEADER_LENGTH_BYTES)
        if len(head) < _HEADER_LENGTH_BYTES:
            raise ModelConfigError(
                f"{file}: {size:,} bytes, too short to be a safetensors file (truncated?); {_FIX}"
            )
        header_len = int.from_bytes(head, "little")
        if _HEADER_LENGTH_BYTES + header_len > size:
            raise ModelConfigError(
                f"{file}: truncated or not a safetensors file: it is {size:,} bytes but declares a "
                f"{header_len:,}-byte header; {_FIX}"
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
        ends = [int(entry["data_offsets"][1]) for name, entry in header.items() if name != "__metadata__"]
    except (ValueError, AttributeError, KeyError, IndexError, TypeError) as exc:  # bad JSON is a ValueError
        raise ModelConfigError(
            f"{file}: {size:,} bytes with an unreadable safetensors header ({exc}); {_FIX}"
        ) from exc
    expected = _HEADER_LENGTH_BYTES + header_len + max(ends, default=0)
    if size < expected:
        raise ModelConfigError(
            f"{file}: truncated: it is {size:,} bytes but its header declares {expected:,} "
            f"({expected - size:,} bytes missing; an interrupted download or copy?); {_FIX}"
        )
    if size > expected:
        raise ModelConfigError(
            f"{file}: corrupt: it is {size:,} bytes but its header declares {expected:,} "
            f"({size - expected:,} bytes too many); {_FIX}"
        )


def load_weights(model: torch.nn.Module, path: Path, dtype: torch.dtype) -> None:
    """Copy every checkpoint tensor into the parameter of the same name, checking names and shapes."""
    params = dict(model.named_parameters())
    loaded: set[str] = set()
    for file in weight_files(path):
        try:
            _load_file(file, params, dtype, loaded)
        except (SafetensorError, OSError) as exc:
            raise ModelConfigError(
                f"{file}: cannot be read as safetensors ({file.stat().st_size:,} bytes; {exc}); {_FIX}"
            ) from exc
    tied = (
        {"lm_head.weight"} if getattr(model, "config", None) and model.config.tie_word_embeddings else set()
    )
    missing = sorted(set(params) - loaded - tied)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ModelConfigError(f"{path}: the weights lack {len(missing)} tensors the config needs: {shown}")


def _load_file(
    file: Path, params: dict[str, torch.nn.Parameter], dtype: torch.dtype, loaded: set[str]
) -> None:
    """Copy one safetensors file's tensors into ``params``, adding their names to ``loaded``."""
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
