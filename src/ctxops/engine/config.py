"""The engine's settings: one frozen dataclass, validated once, and the one place for every default.

``ctxops generate`` / ``serve`` / ``eval`` build their flags from these fields (name, type, default, help), so a
default is never restated. Facts derived at startup (the KV pool's block count, eos ids, the resolved
``max_model_len``) live in :class:`ctxops.engine.kv_cache.CacheInfo` and the engine, never back in this object.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from ctxops.engine import limits
from ctxops.models.kv_format import KVCacheDtype

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
    kv_cache_dtype: str = _opt(
        "auto",
        "KV cache format: auto (the model dtype), int8 (symmetric, one fp16 scale per token and KV head for K "
        "and for V) or int4 (KIVI-style: keys per channel over each block's tokens, symmetric, one fp8 e4m3 scale "
        "per channel and block; values per token in groups of 64 channels, an fp16 scale and minimum per group); "
        "the block being filled stays full precision",
    )
    kv_press: str | None = _opt(
        None, "prune each prompt's KV at the end of its prefill: streaming_llm, snapkv or h2o (default: none)"
    )
    kv_compression_ratio: float = _opt(
        0.5, "with --kv-press: the fraction of prompt tokens dropped, in (0, 1)"
    )
    kv_press_min_tokens: int = _opt(0, "with --kv-press: prompts shorter than this are not compressed")
    kv_press_query_aware: bool = _opt(
        True,
        "with --kv-press in ctxops eval: compress the whole prompt, question included (kvpress's query-aware "
        "setting); off: compress only the context and prefill the question after the press (query-agnostic)",
    )
    kv_head_policy: str | None = _opt(
        None,
        "a head_policy.json from `ctxops compress heads`: the paged pool keeps only its retrieval KV heads (every "
        "token); the other heads keep sink + recent tokens in a fixed ring per sequence, so a token costs fewer "
        "bytes and more sequences fit (prefix caching is off under a policy, see kv_head_policy.py)",
    )
    quantization: str | None = _opt(
        None, "weight-only quantization of the decoder's linear layers: int8 (per output channel)"
    )

    def __post_init__(self) -> None:
        if isinstance(self.kv_cache_memory, str):
            object.__setattr__(self, "kv_cache_memory", parse_bytes(self.kv_cache_memory))
        if self.kv_cache_memory <= 0:
            raise ValueError(f"kv_cache_memory must be positive, got {self.kv_cache_memory}")
        if self.block_size <= 0 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a positive power of two, got {self.block_size}")
        if self.max_model_len is not None and self.max_model_len <= 0:
            raise ValueError(f"max_model_len must be positive, got {self.max_model_len}")
        limits.SEED.check(self.seed)
        if self.max_num_seqs <= 0:
            raise ValueError(f"max_num_seqs must be positive, got {self.max_num_seqs}")
        if self.max_num_batched_tokens < self.block_size:
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be at least block_size "
                f"({self.block_size})"
            )
        if self.kv_cache_dtype == "fp8":
            raise ValueError(
                "kv_cache_dtype fp8 is not implemented by the embedded engine (CPU torch has no fp8 matmul and an "
                "fp8 cast saves no more than int8); use kv_cache_dtype int8, which stores the same 1 byte per value"
            )
        if self.kv_cache_dtype not in set(KVCacheDtype):
            names = ", ".join(KVCacheDtype)
            raise ValueError(f"kv_cache_dtype must be one of {names}; got {self.kv_cache_dtype!r}")
        if self.kv_press is not None and self.kv_press not in ("streaming_llm", "snapkv", "h2o"):
            raise ValueError(f"kv_press must be streaming_llm, snapkv or h2o; got {self.kv_press!r}")
        if not 0.0 < self.kv_compression_ratio < 1.0:
            raise ValueError(f"kv_compression_ratio must be in (0, 1), got {self.kv_compression_ratio}")
        if self.kv_press_min_tokens < 0:
            raise ValueError(f"kv_press_min_tokens must be >= 0, got {self.kv_press_min_tokens}")
        if self.kv_head_policy is not None:
            if self.kv_press is not None or self.kv_cache_dtype != "auto":
                raise ValueError(
                    "kv_head_policy works on a full-precision cache without a press; drop kv_press and "
                    "kv_cache_dtype, or the policy"
                )
            if not os.path.isfile(self.kv_head_policy):
                raise ValueError(
                    f"kv_head_policy {self.kv_head_policy!r} is not a file; write one with "
                    "`ctxops compress heads MODEL --out DIR` and pass DIR/head_policy.json"
                )
        if self.quantization is not None and self.quantization != "int8":
            raise ValueError(f"quantization must be int8 (or unset); got {self.quantization!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16", "fp32", "bf16", "fp16"):
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16; got {self.dtype!r}")

    @classmethod
    def default(cls, name: str) -> Any:
        """A field's default (class attributes of a slotted dataclass are descriptors, not defaults)."""
        return cls.__dataclass_fields__[name].default

    @classmethod
    def help(cls, name: str) -> str:
        return cls.__dataclass_fields__[name].metadata.get("help", "")
