"""The KV block pool: its exact size from a byte budget, and its tensors.

Bytes per block = 2 (K and V) x layers x block_size x kv_heads x head_dim x element size, and the pool is
``kv_cache_memory // bytes_per_block`` blocks, so the pool's bytes are exactly blocks x bytes per block. The pool
is one zero-initialised tensor (2, num_layers, num_blocks, block_size, num_kv_heads, head_dim); zeros matter,
because padded decode batches read unused slots under a mask and must never meet NaN garbage.

With ``kv_cache_dtype`` int8 or int4 (:mod:`ctxops.models.kv_quant`) a block holds codes and scales instead, and
the budget first pays for one full-precision window block per running sequence (``max_num_seqs`` of them, all
layers); the rest is divided into quantized blocks. So the saved bytes become more blocks, and the pool's bytes
are still exactly ``num_blocks x bytes_per_block + window_bytes``.

With a head policy (:mod:`ctxops.engine.kv_head_policy`) a block holds only the retrieval KV heads, so a token
costs ``2 x retrieval heads (all layers) x head_dim x element size``; the budget first pays for one ring of
``sink + recent`` slots per running sequence (``max_num_seqs`` of them) for the streaming heads
(:mod:`ctxops.models.split_kv`), and the rest is divided into these smaller blocks:
``total_bytes = num_blocks x bytes_per_block + ring_bytes``. ``full_bytes_per_token`` keeps what a token would
cost without the policy, so the saving is read off one object.

This module knows shapes and bytes; it does not know sequences or which block holds what.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ctxops.engine.kv_head_policy import HeadPolicy
from ctxops.models.config import ModelConfig
from ctxops.models.kv_quant import DecodeScratch, KVCacheDtype, KVQuantFormat, QuantizedKVCache
from ctxops.models.split_kv import SplitKVCache


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
    # head policy: what a token costs without it (else = bytes_per_token), and the streaming heads' rings
    full_bytes_per_token: int = 0
    num_rings: int = 0  # one per running sequence
    ring_bytes: int = 0  # all rings, all layers, included in total_bytes

    def __post_init__(self) -> None:
        if not self.full_bytes_per_token:
            object.__setattr__(self, "full_bytes_per_token", self.bytes_per_token)

    @property
    def num_tokens(self) -> int:
        return self.num_blocks * self.block_size

    @property
    def ring_bytes_per_sequence(self) -> int:
        return self.ring_bytes // self.num_rings if self.num_rings else 0

    def sequence_bytes(self, num_tokens: int) -> int:
        """K/V bytes one sequence of ``num_tokens`` tokens holds: its blocks, plus its ring under a head policy."""
        return -(-num_tokens // self.block_size) * self.bytes_per_block + self.ring_bytes_per_sequence

    @property
    def max_concurrency(self) -> float:
        """How many sequences of ``max_model_len`` tokens the pool holds at once."""
        return self.num_tokens / self.max_model_len

    def to_dict(self) -> dict[str, int | str | float]:
        return {
            **asdict(self),
            "num_tokens": self.num_tokens,
            "max_concurrency": round(self.max_concurrency, 2),
            "ring_bytes_per_sequence": self.ring_bytes_per_sequence,
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
    head_policy: HeadPolicy | None = None,
) -> CacheInfo:
    """Size the pool; raise ``ValueError`` when it cannot hold one sequence of ``max_model_len`` tokens.

    ``max_num_seqs`` matters for quantized formats (full-precision window blocks) and head policies (rings): one
    of each per running sequence, paid for before the blocks.
    """
    kv_cache_dtype = KVCacheDtype(kv_cache_dtype)
    fmt = quant_format(config, kv_cache_dtype, block_size)
    element = torch.empty((), dtype=dtype).element_size()
    num_windows, window_bytes, num_rings, ring_bytes = 0, 0, 0, 0
    full_per_token = bytes_per_token(config, dtype)
    if fmt is not None:
        per_block = fmt.bytes_per_block * config.num_hidden_layers
        num_windows = max_num_seqs
        window_bytes = num_windows * bytes_per_token(config, dtype) * block_size
        reserved, what = (
            window_bytes,
            f"{num_windows} full-precision window blocks of kv_cache_dtype={kv_cache_dtype}",
        )
    elif head_policy is not None:
        per_block = head_policy.pool_bytes_per_token(config.head_dim, element) * block_size
        num_rings = max_num_seqs
        ring_bytes = num_rings * head_policy.ring_bytes(config.head_dim, element)
        reserved, what = (
            ring_bytes,
            f"{num_rings} streaming-head rings of the kv_head_policy (one per sequence)",
        )
    else:
        per_block, reserved, what = full_per_token * block_size, 0, ""
    per_token = per_block // block_size  # rounded down when a block's key scales do not divide evenly
    needed = -(-max_model_len // block_size) * per_block + reserved  # the budget max_model_len needs
    if reserved and reserved >= kv_cache_memory:
        raise ValueError(
            f"kv_cache_memory={_size(kv_cache_memory)} does not even hold the {what} ({_size(reserved)}); raise "
            f"kv_cache_memory to at least {_size(needed)} for max_model_len={max_model_len}, or lower max_num_seqs"
        )
    if per_block == 0:  # a head policy without retrieval heads: blocks only count tokens, they hold no bytes
        num_blocks = max_num_seqs * -(-max_model_len // block_size)
    else:
        num_blocks = (kv_cache_memory - reserved) // per_block
    capacity = num_blocks * block_size
    if num_blocks == 0:  # no max_model_len fits: the budget is the only thing to change
        one_block = per_block + reserved
        extra = f" with the {what}" if reserved else ""
        raise ValueError(
            f"kv_cache_memory={_size(kv_cache_memory)} cannot hold even one KV block of {block_size} tokens "
            f"({per_token} bytes per token; one block needs {_size(one_block)}{extra}). Raise "
            f"kv_cache_memory to at least {_size(needed)} for max_model_len={max_model_len}."
        )
    if capacity < max_model_len:
        after = f", after the {what}: {_size(reserved)}" if reserved else ""
        fixes = (
            f"lower max_model_len to {capacity} or less, or lower max_num_seqs"
            if reserved
            else f"or lower max_model_len to {capacity} or less"
        )
        raise ValueError(
            f"the model's max_model_len ({max_model_len}) is larger than the {capacity} tokens the KV cache can "
            f"hold with kv_cache_memory={_size(kv_cache_memory)} ({per_token} bytes per token{after}). Raise "
            f"kv_cache_memory to at least {_size(needed)}{',' if reserved else ''} {fixes}."
        )
    return CacheInfo(
        num_blocks=num_blocks,
        block_size=block_size,
        bytes_per_block=per_block,
        bytes_per_token=per_token,
        total_bytes=num_blocks * per_block + reserved,
        dtype=str(dtype).removeprefix("torch.") if fmt is None else kv_cache_dtype.value,
        max_model_len=max_model_len,
        kv_cache_dtype=kv_cache_dtype.value,
        num_windows=num_windows,
        window_bytes=window_bytes,
        full_bytes_per_token=full_per_token if head_policy is not None else per_token,
        num_rings=num_rings,
        ring_bytes=ring_bytes,
    )


def _size(num_bytes: int) -> str:
    """Bytes, exact, with a binary unit rounded up beside them: ``33554432 bytes (32.0 MiB)``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if num_bytes >= scale:
            return f"{num_bytes} bytes ({math.ceil(num_bytes / scale * 10) / 10:.1f} {unit})"
    return f"{num_bytes} bytes"


def allocate_cache(
    config: ModelConfig, info: CacheInfo, dtype: torch.dtype, head_policy: HeadPolicy | None = None
) -> list[tuple]:
    """The pool as one tensor, returned as one (k, v) view pair per layer.

    Quantized formats: one ``(QuantizedKVCache, None)`` pair per layer; a head policy: ``(SplitKVCache, None)``.
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
    if head_policy is not None:
        group = config.num_attention_heads // config.num_key_value_heads
        split = [
            SplitKVCache(
                head_policy.retrieval_heads(layer),
                config.num_key_value_heads,
                group,
                info.num_blocks,
                info.block_size,
                info.num_rings,
                head_policy.sink,
                head_policy.recent,
                config.head_dim,
                dtype,
            )
            for layer in range(config.num_hidden_layers)
        ]
        assert sum(layer.nbytes for layer in split) == info.total_bytes
        return [(layer, None) for layer in split]
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
