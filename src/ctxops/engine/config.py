"""The engine's settings: one frozen dataclass, validated once, and the one place for every default.

``ctxops generate`` / ``serve`` / ``eval`` build their flags from these fields (name, type, default, help), so a
default is never restated. Facts derived at startup (the KV pool's block count, eos ids, the resolved
``max_model_len``) live in :class:`ctxops.engine.kv_cache.CacheInfo` and the engine, never back in this object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "tb": 10**12,
}


def parse_bytes(value: int | str) -> int:
    """``"2GiB"``, ``"512MB"``, ``"1e9"`` or an int -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(
            f"cannot read {value!r} as a size; write e.g. 2GiB, 512MiB, 1GB or a number of bytes"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _opt(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How the embedded engine runs a model."""

    model: str = _opt("builtin", "`builtin` or a local Hugging Face model directory")
    dtype: str = _opt("auto", "weights and activations: auto (checkpoint's), float32, bfloat16, float16")
    max_model_len: int | None = _opt(None, "longest prompt + output in tokens (default: the model's limit)")
    kv_cache_memory: int = _opt(2 * 2**30, "bytes for the paged KV cache, e.g. 2GiB", parse=parse_bytes)
    block_size: int = _opt(16, "tokens per KV block")
    enable_prefix_caching: bool = _opt(True, "reuse KV blocks of shared prompt prefixes")
    max_num_seqs: int = _opt(128, "most sequences running at once")
    max_num_batched_tokens: int = _opt(8192, "token budget per step (prefill chunks + decodes)")
    seed: int = _opt(0, "seed for requests that give none (a run is reproducible)")

    def __post_init__(self) -> None:
        if isinstance(self.kv_cache_memory, str):
            object.__setattr__(self, "kv_cache_memory", parse_bytes(self.kv_cache_memory))
        if self.kv_cache_memory <= 0:
            raise ValueError(f"kv_cache_memory must be positive, got {self.kv_cache_memory}")
        if self.block_size <= 0 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a positive power of two, got {self.block_size}")
        if self.max_model_len is not None and self.max_model_len <= 0:
            raise ValueError(f"max_model_len must be positive, got {self.max_model_len}")
        if self.max_num_seqs <= 0:
            raise ValueError(f"max_num_seqs must be positive, got {self.max_num_seqs}")
        if self.max_num_batched_tokens < self.block_size:
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be at least block_size "
                f"({self.block_size})"
            )
        if self.dtype not in ("auto", "float32", "bfloat16", "float16", "fp32", "bf16", "fp16"):
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16; got {self.dtype!r}")

    @classmethod
    def default(cls, name: str) -> Any:
        """A field's default (class attributes of a slotted dataclass are descriptors, not defaults)."""
        return cls.__dataclass_fields__[name].default

    @classmethod
    def help(cls, name: str) -> str:
        return cls.__dataclass_fields__[name].metadata.get("help", "")
