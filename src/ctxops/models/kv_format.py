"""The quantized KV cache formats as shapes and bytes: which groups share a scale, and what a block costs.

One source of truth for the bytes of ``kv_cache_dtype`` int8 / int4: the engine sizes its pool with
:attr:`KVQuantFormat.bytes_per_block` and ``ctxops plan --kv-dtype int8|int4`` counts the same bytes. This module
imports no torch (the planner imports it); the tensors and the quantize / dequantize math live in
:mod:`ctxops.models.kv_quant`.

- int8: symmetric, **keys and values per token**: one fp16 scale per (token, kv head) for K and one for V, as
  vLLM's and SGLang's int8 caches. At 8 bits a per-token scale loses nothing measurable, and it costs 4 bytes per
  token-head instead of the ``4 x head_dim / block_size`` of per-channel key scales.
- int4, KIVI-style grouping: **keys per channel** over the block's ``block_size`` tokens (a key channel's outliers
  persist across tokens), symmetric, one **fp8 (e4m3) scale** per (block, kv head, channel) and no minimum;
  **values per token** in groups of ``INT4_VALUE_GROUP`` (64) channels along head_dim (the whole head when head_dim
  is not a multiple of 64), asymmetric, an fp16 scale and an fp16 minimum per group.

Bytes per (token, kv head), K and V together, at head_dim ``d`` and block size ``b``: bf16 ``4d``; int8 ``2d + 4``;
int4 ``d + d / b + 4 x d / 64``. At the default block 16 that is 144 B for d = 128 (3.56x fewer than bf16's 512)
and 72 B for d = 64 (3.56x); at block 64, 3.71x. (A head_dim that is not a multiple of 64 has one value group per
head: 3.62x at d = 96, but 3.37x at d = 32.) The 1-byte key scale is what passes 3.5x at block 16: an fp16 scale
and minimum per key channel alone cost ``4d / 16`` and held int4 to 3.05x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

INT4_VALUE_GROUP = 64  # channels per int4 value scale group
SCALE_BYTES = 2  # fp16: int8 scales, int4 value scales and minima
INT4_KEY_SCALE_BYTES = 1  # fp8 e4m3: int4 key scales


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
    def values_asymmetric(self) -> bool:
        """int4 values store a minimum per group as well as a scale; keys (both formats) and int8 values do not."""
        return self.bits == 4

    @property
    def keys_per_token(self) -> bool:
        """int8 keys have one scale per (token, kv head); int4 keys one per (block, kv head, channel)."""
        return self.bits == 8

    @property
    def key_scale_bytes(self) -> int:
        return SCALE_BYTES if self.bits == 8 else INT4_KEY_SCALE_BYTES

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
        """K and V codes plus scales (and int4 value minima) of one block of one layer."""
        codes = 2 * self.block_size * self.num_kv_heads * self.code_dim
        keys = math.prod(self.key_scale_shape) * self.key_scale_bytes
        value_params = 2 if self.values_asymmetric else 1  # fp16 scale (+ fp16 minimum)
        values = math.prod(self.value_scale_shape) * value_params * SCALE_BYTES
        return codes + keys + values

    @property
    def bytes_per_token(self) -> float:
        """One layer's bytes per token, scales included (fractional when key scales are per block)."""
        return self.bytes_per_block / self.block_size
