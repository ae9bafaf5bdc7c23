"""Quantized KV blocks: quantize/dequantize in the int8 and int4 formats, and one layer's quantized pool.

The formats (which tokens and channels share a scale, and their bytes) are defined in
:mod:`ctxops.models.kv_format`: int8 is symmetric with one fp16 scale per (token, kv head) for keys and for values;
int4 is asymmetric and KIVI-style, keys per channel over a block's tokens, values per token in groups of 64
channels.

- int8: ``code = round(x / s)`` in [-127, 127], ``s = absmax / 127``.
- int4: ``code = round((x - m) / s)`` in [0, 15], ``s = (max - min) / 15``, ``m = min``; two codes packed per byte
  along head_dim.

An int4 key group is only complete when its block is full, so the tokens of the block still being filled (at most
``block_size - 1`` of them per sequence) stay in **full precision** in a small window pool, one window block per
running sequence; the block is quantized, from the window plus the step's fresh tokens, in the step that fills it.
int8 uses the same window, so both formats read ``dequantize(full blocks) ++ window[:tail]``.

This module knows tensors, block ids and window ids; it does not know sequences, which window a sequence holds
(the block manager hands those out) or attention masks.
"""

from __future__ import annotations

import torch

from ctxops.models.kv_format import INT4_VALUE_GROUP, KVCacheDtype, KVQuantFormat, value_group

__all__ = ["INT4_VALUE_GROUP", "KVCacheDtype", "KVQuantFormat", "QuantizedKVCache", "value_group"]

SCALE_DTYPE = torch.float16
_SCALE_FLOOR = 2.0**-24  # smallest fp16 subnormal: an all-zero group gets a non-zero scale


# ---- quantize / dequantize -------------------------------------------------------------------------------------
def quantize(x: torch.Tensor, dim: int, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Quantize ``x`` with one (scale, minimum) per slice along ``dim``; returns unpacked codes, scale, minimum.

    int8 codes are int8 in [-127, 127] and the minimum is None; int4 codes are uint8 in [0, 15]. Scale and minimum
    are fp16 with ``dim`` kept (size 1). Codes are computed against the fp16-rounded scale and minimum, so the
    round-trip error is half a step plus fp16 rounding of the scale.
    """
    x = x.float()
    if bits == 8:
        scale = x.abs().amax(dim, keepdim=True).div_(127).to(SCALE_DTYPE).clamp_min_(_SCALE_FLOOR)
        codes = (x / scale.float()).round_().clamp_(-127, 127).to(torch.int8)
        return codes, scale, None
    lo, hi = x.amin(dim, keepdim=True), x.amax(dim, keepdim=True)
    scale = (hi - lo).div_(15).to(SCALE_DTYPE).clamp_min_(_SCALE_FLOOR)
    minimum = lo.to(SCALE_DTYPE)
    codes = ((x - minimum.float()) / scale.float()).round_().clamp_(0, 15).to(torch.uint8)
    return codes, scale, minimum


def dequantize(
    codes: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """Inverse of :func:`quantize` (unpacked codes), computed in fp32 and cast to ``dtype``."""
    out = codes.float() * scale.float()
    if minimum is not None:
        out += minimum.float()
    return out.to(dtype)


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """(..., d) uint8 codes in [0, 15] -> (..., d // 2) bytes, even channels in the low nibble."""
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """(..., d // 2) bytes -> (..., d) uint8 codes."""
    return torch.stack((packed & 15, packed >> 4), dim=-1).flatten(-2)


def quantize_keys(k: torch.Tensor, fmt: KVQuantFormat):
    """Quantize full blocks of keys: int4 one group per channel over the block's tokens, int8 one per token.

    (B, block_size, kv_heads, head_dim) -> codes (B, block_size, kv_heads, code_dim), scale and minimum
    (B, *fmt.key_scale_shape): int4 (B, kv_heads, head_dim), int8 (B, block_size, kv_heads, 1).
    """
    if fmt.keys_per_token:
        codes, scale, minimum = quantize(k, dim=-1, bits=fmt.bits)
        return codes, scale, minimum
    codes, scale, minimum = quantize(k, dim=1, bits=fmt.bits)
    codes = pack_int4(codes) if fmt.bits == 4 else codes
    return codes, scale.squeeze(1), None if minimum is None else minimum.squeeze(1)


def dequantize_keys(codes, scale, minimum, fmt: KVQuantFormat, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of :func:`quantize_keys`: (B, block_size, kv_heads, head_dim) in ``dtype``."""
    if fmt.keys_per_token:
        return dequantize(codes, scale, minimum, dtype)
    codes = unpack_int4(codes) if fmt.bits == 4 else codes
    return dequantize(codes, scale.unsqueeze(1), None if minimum is None else minimum.unsqueeze(1), dtype)


def quantize_values(v: torch.Tensor, fmt: KVQuantFormat):
    """Quantize values, one group per token per ``value_group`` channels.

    (..., kv_heads, head_dim) -> codes (..., kv_heads, code_dim), scale and minimum (..., kv_heads, groups).
    """
    grouped = v.unflatten(-1, (fmt.head_dim // fmt.value_group, fmt.value_group))
    codes, scale, minimum = quantize(grouped, dim=-1, bits=fmt.bits)
    codes = codes.flatten(-2)
    codes = pack_int4(codes) if fmt.bits == 4 else codes
    return codes, scale.squeeze(-1), None if minimum is None else minimum.squeeze(-1)


def dequantize_values(codes, scale, minimum, fmt: KVQuantFormat, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of :func:`quantize_values`: (..., kv_heads, head_dim) in ``dtype``."""
    codes = unpack_int4(codes) if fmt.bits == 4 else codes
    grouped = codes.unflatten(-1, (fmt.head_dim // fmt.value_group, fmt.value_group))
    out = dequantize(grouped, scale.unsqueeze(-1), None if minimum is None else minimum.unsqueeze(-1), dtype)
    return out.flatten(-2)


# ---- one layer's pool ------------------------------------------------------------------------------------------
class QuantizedKVCache:
    """One layer's quantized blocks plus its full-precision window blocks (one per running sequence)."""

    def __init__(self, fmt: KVQuantFormat, num_blocks: int, num_windows: int, dtype: torch.dtype) -> None:
        self.fmt = fmt
        self.dtype = dtype  # the model's dtype: window storage and dequantized output
        bs, heads, dim = fmt.block_size, fmt.num_kv_heads, fmt.head_dim
        code_dtype = torch.int8 if fmt.bits == 8 else torch.uint8
        self.k_codes = torch.zeros(num_blocks, bs, heads, fmt.code_dim, dtype=code_dtype)
        self.v_codes = torch.zeros(num_blocks, bs, heads, fmt.code_dim, dtype=code_dtype)
        self.k_scale = torch.zeros(num_blocks, *fmt.key_scale_shape, dtype=SCALE_DTYPE)
        self.v_scale = torch.zeros(num_blocks, *fmt.value_scale_shape, dtype=SCALE_DTYPE)
        self.k_min = torch.zeros_like(self.k_scale) if fmt.asymmetric else None
        self.v_min = torch.zeros_like(self.v_scale) if fmt.asymmetric else None
        self.k_window = torch.zeros(num_windows, bs, heads, dim, dtype=dtype)  # the blocks being filled
        self.v_window = torch.zeros(num_windows, bs, heads, dim, dtype=dtype)

    def tensors(self) -> list[torch.Tensor]:
        named = [self.k_codes, self.v_codes, self.k_scale, self.v_scale, self.k_min, self.v_min]
        return [t for t in named if t is not None] + [self.k_window, self.v_window]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors())

    def store_blocks(self, block_ids: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Quantize full blocks (n, block_size, kv_heads, head_dim) into ``block_ids`` (n,)."""
        k_codes, k_scale, k_min = quantize_keys(k, self.fmt)
        v_codes, v_scale, v_min = quantize_values(v, self.fmt)
        self.k_codes.index_copy_(0, block_ids, k_codes)
        self.k_scale.index_copy_(0, block_ids, k_scale)
        self.v_codes.index_copy_(0, block_ids, v_codes)
        self.v_scale.index_copy_(0, block_ids, v_scale)
        if self.fmt.asymmetric:
            self.k_min.index_copy_(0, block_ids, k_min)
            self.v_min.index_copy_(0, block_ids, v_min)

    def load_blocks(self, block_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dequantize blocks (n,) -> keys and values, each (n, block_size, kv_heads, head_dim) in the model dtype."""

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.index_select(0, block_ids)

        k = dequantize_keys(pick(self.k_codes), pick(self.k_scale), pick(self.k_min), self.fmt, self.dtype)
        v = dequantize_values(pick(self.v_codes), pick(self.v_scale), pick(self.v_min), self.fmt, self.dtype)
        return k, v

    def window_flat(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The window pool as (num_windows * block_size, kv_heads, head_dim) views."""
        heads, dim = self.fmt.num_kv_heads, self.fmt.head_dim
        return self.k_window.view(-1, heads, dim), self.v_window.view(-1, heads, dim)
