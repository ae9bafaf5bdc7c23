"""The KV block pool: its exact size from a byte budget, and its tensors.

Bytes per block = 2 (K and V) x layers x block_size x kv_heads x head_dim x element size, and the pool is
``kv_cache_memory // bytes_per_block`` blocks, so the pool's bytes are exactly blocks x bytes per block. The pool
is one zero-initialised tensor (2, num_layers, num_blocks, block_size, num_kv_heads, head_dim); zeros matter,
because padded decode batches read unused slots under a mask and must never meet NaN garbage.

This module knows shapes and bytes; it does not know sequences or which block holds what.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ctxops.models.config import ModelConfig


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """What the KV pool is: derived once at startup, reported by ``LLM.cache_info``."""

    num_blocks: int
    block_size: int
    bytes_per_block: int
    bytes_per_token: int
    total_bytes: int
    dtype: str
    max_model_len: int

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


def plan_cache(
    config: ModelConfig, dtype: torch.dtype, kv_cache_memory: int, block_size: int, max_model_len: int
) -> CacheInfo:
    """Size the pool; raise ``ValueError`` when it cannot hold one sequence of ``max_model_len`` tokens."""
    per_token = bytes_per_token(config, dtype)
    per_block = per_token * block_size
    num_blocks = kv_cache_memory // per_block
    capacity = num_blocks * block_size
    if capacity < max_model_len:
        needed = -(-max_model_len // block_size) * per_block
        raise ValueError(
            f"the model's max_model_len ({max_model_len}) is larger than the {capacity} tokens the KV cache can "
            f"hold with kv_cache_memory={kv_cache_memory} bytes ({per_token} bytes per token). Raise "
            f"kv_cache_memory to at least {needed} bytes ({needed / 2**20:.1f} MiB) or lower max_model_len to "
            f"{capacity} or less."
        )
    return CacheInfo(
        num_blocks=num_blocks,
        block_size=block_size,
        bytes_per_block=per_block,
        bytes_per_token=per_token,
        total_bytes=num_blocks * per_block,
        dtype=str(dtype).removeprefix("torch."),
        max_model_len=max_model_len,
    )


def allocate_cache(
    config: ModelConfig, info: CacheInfo, dtype: torch.dtype
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The pool as one tensor, returned as one (k, v) view pair per layer."""
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
