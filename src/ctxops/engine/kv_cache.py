"""The KV block pool: its exact size from a byte budget, and its tensors.

Bytes per block = 2 (K and V) x layers x block_size x kv_heads x head_dim x element size, and the pool is
``kv_cache_memory // bytes_per_block`` blocks, so the pool's bytes are exactly blocks x bytes per block. The pool
is one zero-initialised tensor (2, num_layers, num_blocks, block_size, num_kv_heads, head_dim); zeros matter,
because padded decode batches read unused slots under a mask and must never meet NaN garbage.

With ``kv_cache_dtype`` int8 or int4 (:mod:`ctxops.models.kv_quant`) a block holds codes and scales instead, and
the budget first pays for one full-precision window block per running sequence (``max_num_seqs`` of them, all
layers); the rest is divided into quantized blocks. So the saved bytes become more blocks, and the pool's bytes
are still exactly ``num_blocks x bytes_per_block + window_bytes``.

This module knows shapes and bytes; it does not know sequences or which block holds what.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ctxops.models.config import ModelConfig
from ctxops.models.kv_quant import DecodeScratch, KVCacheDtype, KVQuantFormat, QuantizedKVCache


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """What the KV pool is: derived once at startup, reported by ``LLM.cache_info``."""

    num_blocks: int
    block_size: int
    bytes_per_block: int
    bytes_per_token: int
    total_bytes: int
    dtype: str  # the pool's element format: the model dtype's name (``bfloat16``...), or ``int8`` / ``int4``
    max_model_len: int
    kv_cache_dtype: str = "auto"
    num_windows: int = 0  # full-precision window blocks (quantized formats: one per running sequence)
    window_bytes: int = 0  # their bytes, all layers, included in total_bytes

    @property
    def num_tokens(self) -> int:
        return self.num_blocks * self.block_size

    @property
    def max_concurrency(self) -> float:
        """How many sequences of ``max_model_len`` tokens the pool holds at once."""
        return self.num_tokens / self.max_model_len

    def to_dict(self) -> dict[str, int | str | float]:
        return {
            **asdict(self),
            "num_tokens": self.num_tokens,
            "max_concurrency": round(self.max_concurrency, 2),
        }


def bytes_per_token(config: ModelConfig, dtype: torch.dtype) -> int:
    """K and V bytes one token occupies across all layers."""
    element = torch.empty((), dtype=dtype).element_size()
    return 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * element


def quant_format(config: ModelConfig, kv_cache_dtype: KVCacheDtype, block_size: int) -> KVQuantFormat | None:
    """One layer's quantized format, or None for ``auto``."""
    if kv_cache_dtype.bits is None:
        return None
    return KVQuantFormat(kv_cache_dtype.bits, block_size, config.num_key_value_heads, config.head_dim)


def plan_cache(
    config: ModelConfig,
    dtype: torch.dtype,
    kv_cache_memory: int,
    block_size: int,
    max_model_len: int,
    kv_cache_dtype: KVCacheDtype | str = KVCacheDtype.AUTO,
    max_num_seqs: int = 1,
) -> CacheInfo:
    """Size the pool; raise ``ValueError`` when it cannot hold one sequence of ``max_model_len`` tokens.

    ``max_num_seqs`` only matters for quantized formats: it is the number of full-precision window blocks.
    """
    kv_cache_dtype = KVCacheDtype(kv_cache_dtype)
    fmt = quant_format(config, kv_cache_dtype, block_size)
    num_windows, window_bytes = 0, 0
    if fmt is None:
        per_block = bytes_per_token(config, dtype) * block_size
    else:
        per_block = fmt.bytes_per_block * config.num_hidden_layers
        num_windows = max_num_seqs
        window_bytes = num_windows * bytes_per_token(config, dtype) * block_size
    per_token = per_block // block_size  # rounded down when a block's key scales do not divide evenly
    needed = -(-max_model_len // block_size) * per_block + window_bytes  # the budget max_model_len needs
    if window_bytes >= kv_cache_memory:
        raise ValueError(
            f"kv_cache_memory={_size(kv_cache_memory)} does not even hold the {num_windows} full-precision "
            f"window blocks ({_size(window_bytes)}) of kv_cache_dtype={kv_cache_dtype}; raise kv_cache_memory to "
            f"at least {_size(needed)} for max_model_len={max_model_len}, or lower max_num_seqs"
        )
    num_blocks = (kv_cache_memory - window_bytes) // per_block
    capacity = num_blocks * block_size
    if num_blocks == 0:  # no max_model_len fits: the budget is the only thing to change
        one_block = per_block + window_bytes
        windows = f" with the {num_windows} full-precision window blocks" if num_windows else ""
        raise ValueError(
            f"kv_cache_memory={_size(kv_cache_memory)} cannot hold even one KV block of {block_size} tokens "
            f"({per_token} bytes per token; one block needs {_size(one_block)}{windows}). Raise "
            f"kv_cache_memory to at least {_size(needed)} for max_model_len={max_model_len}."
        )
    if capacity < max_model_len:
        raise ValueError(
            f"the model's max_model_len ({max_model_len}) is larger than the {capacity} tokens the KV cache can "
            f"hold with kv_cache_memory={_size(kv_cache_memory)} ({per_token} bytes per token). Raise "
            f"kv_cache_memory to at least {_size(needed)} or lower max_model_len to {capacity} or less."
        )
    return CacheInfo(
        num_blocks=num_blocks,
        block_size=block_size,
        bytes_per_block=per_block,
        bytes_per_token=per_token,
        total_bytes=num_blocks * per_block + window_bytes,
        dtype=str(dtype).removeprefix("torch.") if fmt is None else kv_cache_dtype.value,
        max_model_len=max_model_len,
        kv_cache_dtype=kv_cache_dtype.value,
        num_windows=num_windows,
        window_bytes=window_bytes,
    )


def _size(num_bytes: int) -> str:
    """Bytes, exact, with a binary unit rounded up beside them: ``33554432 bytes (32.0 MiB)``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if num_bytes >= scale:
            return f"{num_bytes} bytes ({math.ceil(num_bytes / scale * 10) / 10:.1f} {unit})"
    return f"{num_bytes} bytes"


def allocate_cache(config: ModelConfig, info: CacheInfo, dtype: torch.dtype) -> list[tuple]:
    """The pool as one tensor, returned as one (k, v) view pair per layer.

    Quantized formats: one ``(QuantizedKVCache, None)`` pair per layer.
    """
    fmt = quant_format(config, KVCacheDtype(info.kv_cache_dtype), info.block_size)
    if fmt is not None:
        scratch = DecodeScratch()  # the layers run one after another: one decode buffer serves them all
        layers = [
            QuantizedKVCache(fmt, info.num_blocks, info.num_windows, dtype, scratch)
            for _ in range(config.num_hidden_layers)
        ]
        assert sum(layer.nbytes for layer in layers) == info.total_bytes
        return [(layer, None) for layer in layers]
    pool = torch.zeros(
        2,
        config.num_hidden_layers,
        info.num_blocks,
        info.block_size,
        config.num_key_value_heads,
        config.head_dim,
        dtype=dtype,
    )  # (2, num_layers, num_blocks, block_size, num_kv_heads, head_dim)
    assert pool.numel() * pool.element_size() == info.total_bytes
    return [(pool[0, layer], pool[1, layer]) for layer in range(config.num_hidden_layers)]
