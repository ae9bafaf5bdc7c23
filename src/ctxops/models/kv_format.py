"""The quantized KV cache formats as shapes and bytes: which groups share a scale, and what a block costs.

One source of truth for the bytes of ``kv_cache_dtype`` int8 / int4: the engine sizes its pool with
:attr:`KVQuantFormat.bytes_per_block` and ``ctxops plan --kv-dtype int8|int4`` counts the same bytes. This module
imports no torch (the planner imports it); the tensors and the quantize / dequantize math live in
:mod:`ctxops.models.kv_quant`.

- int8: symmetric, **keys and values per token**: one fp16 scale per (token, kv head) for K and one for V, as
  vLLM's and SGLang's int8 caches. At 8 bits a per-token scale loses nothing measurable, and it costs 4 bytes per
  token-head instead of the ``4 x head_dim / block_size`` of per-channel key scales.
- int4: asymmetric (fp16 scale and fp16 minimum per group), KIVI-style: **keys per channel** over the block's
  ``block_size`` tokens (a key channel's outliers persist across tokens), **values per token** in groups of
  ``INT4_VALUE_GROUP`` (64) channels along head_dim, or the whole head when head_dim is not a multiple of 64.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

INT4_VALUE_GROUP = 64  # channels per int4 value scale group
SCALE_BYTES = 2  # scales and minima are fp16


class KVCacheDtype(StrEnum):
    """The KV cache formats, named as ``ctxops plan --kv-dtype`` names them (``auto`` = the model's dtype)."""

    AUTO = "auto"
    INT8 = "int8"
    INT4 = "int4"

    @property
    def bits(self) -> int | None:
        return {"auto": None, "int8": 8, "int4": 4}[self.value]


def value_group(bits: int, head_dim: int) -> int:
    """Channels per value scale: the whole head for int8; 64 for int4 (the whole head if not a multiple of 64)."""
    if bits == 4 and head_dim % INT4_VALUE_GROUP == 0:
        return INT4_VALUE_GROUP
    return head_dim


@dataclass(frozen=True, slots=True)
class KVQuantFormat:
    """The shapes and byte counts of one quantized format for one layer."""

    bits: int  # 8 or 4
    block_size: int  # tokens per block = tokens per int4 key scale group
    num_kv_heads: int
    head_dim: int

    def __post_init__(self) -> None:
        if self.bits not in (8, 4):
            raise ValueError(f"bits must be 8 or 4, got {self.bits}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even to pack int4 codes, got {self.head_dim}")
        if self.block_size <= 0 or self.num_kv_heads <= 0:
            raise ValueError("block_size and num_kv_heads must be positive")

    @property
    def asymmetric(self) -> bool:
        return self.bits == 4  # int4 stores a minimum per group as well as a scale

    @property
    def keys_per_token(self) -> bool:
        """int8 keys have one scale per (token, kv head); int4 keys one per (block, kv head, channel)."""
        return self.bits == 8

    @property
    def code_dim(self) -> int:
        """Bytes of codes per (token, kv head)."""
        return self.head_dim * self.bits // 8

    @property
    def value_group(self) -> int:
        return value_group(self.bits, self.head_dim)

    @property
    def key_scale_shape(self) -> tuple[int, ...]:
        """Per block: (block_size, kv_heads, 1) per token, or (kv_heads, head_dim) per channel."""
        if self.keys_per_token:
            return (self.block_size, self.num_kv_heads, 1)
        return (self.num_kv_heads, self.head_dim)

    @property
    def value_scale_shape(self) -> tuple[int, int, int]:
        """Per block: (block_size, kv_heads, groups)."""
        return (self.block_size, self.num_kv_heads, self.head_dim // self.value_group)

    @property
    def bytes_per_block(self) -> int:
        """K and V codes plus scales (and minima for int4) of one block of one layer."""
        params = 2 if self.asymmetric else 1  # fp16 scale (+ fp16 minimum)
        codes = 2 * self.block_size * self.num_kv_heads * self.code_dim
        scales = _prod(self.key_scale_shape) + _prod(self.value_scale_shape)
        return codes + scales * params * SCALE_BYTES

    @property
    def bytes_per_token(self) -> float:
        """One layer's bytes per token, scales included (fractional when key scales are per block)."""
        return self.bytes_per_block / self.block_size


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for n in shape:
        out *= n
    return out
