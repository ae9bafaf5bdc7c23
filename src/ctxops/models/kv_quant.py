"""Quantized KV blocks: quantize/dequantize in the int8 and int4 formats, and one layer's quantized pool.

The formats (which tokens and channels share a scale, and their bytes) are defined in
:mod:`ctxops.models.kv_format`: int8 is symmetric with one fp16 scale per (token, kv head) for keys and for values;
int4 keys are symmetric per channel over a block's tokens with an fp8 scale, int4 values asymmetric per token in
groups of 64 channels with an fp16 scale and minimum.

- int8: ``code = round(x / s)`` in [-127, 127], ``s = absmax / 127`` (fp16).
- int4 keys: ``code = round(x / s + 7.5)`` in [0, 15], so ``x ~ s * (code - 7.5)``: 16 levels spread evenly over
  ``[-absmax, absmax]``, ``s = absmax / 7.5`` rounded to fp8 e4m3 (3 mantissa bits; codes are computed against the
  rounded scale, so its rounding costs at most 1/16 of a step more error).
- int4 values: ``code = round((x - m) / s)`` in [0, 15], ``s = (max - min) / 15``, ``m = min`` (fp16).
- int4 codes are packed two per byte: channel ``j`` in the low nibble of byte ``j``, channel ``j + head_dim / 2`` in
  its high nibble, so unpacking writes two contiguous halves.

An int4 key group is only complete when its block is full, so the tokens of the block still being filled (at most
``block_size - 1`` of them per sequence) stay in **full precision** in a small window pool, one window block per
running sequence; the block is quantized, from the window plus the step's fresh tokens, in the step that fills it.
int8 uses the same window, so both formats read ``dequantize(full blocks) ++ window[:tail]``.

This module knows tensors, block ids and window ids; it does not know sequences, which window a sequence holds
(the block manager hands those out) or attention masks.
"""

from __future__ import annotations

import math

import torch

from ctxops.models.kv_format import INT4_VALUE_GROUP, KVCacheDtype, KVQuantFormat, value_group

__all__ = [
    "INT4_VALUE_GROUP",
    "DecodeScratch",
    "KVCacheDtype",
    "KVQuantFormat",
    "QuantizedKVCache",
    "value_group",
]

SCALE_DTYPE = torch.float16  # int8 scales, int4 value scales and minima
KEY_SCALE_DTYPE_INT4 = torch.float8_e4m3fn
INT4_KEY_OFFSET = 7.5  # int4 key code c stands for s * (c - 7.5)
_SCALE_FLOOR = 2.0**-24  # smallest fp16 subnormal: an all-zero group gets a non-zero scale
_FP8_FLOOR, _FP8_MAX = 2.0**-6, 448.0  # smallest normal fp8 e4m3 (no subnormal scales) and largest finite


# ---- quantize / dequantize -------------------------------------------------------------------------------------
def quantize_int8(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 along ``dim``: int8 codes in [-127, 127] and an fp16 scale (``dim`` kept, size 1)."""
    x = x.float()
    scale = x.abs().amax(dim, keepdim=True).div_(127).to(SCALE_DTYPE).clamp_min_(_SCALE_FLOOR)
    codes = (x / scale.float()).round_().clamp_(-127, 127).to(torch.int8)
    return codes, scale


def quantize_int4_symmetric(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int4 along ``dim``: uint8 codes in [0, 15] (``x ~ s * (code - 7.5)``) and an fp8 e4m3 scale.

    Codes are computed against the fp8-rounded scale: the error is at most half a step of ``absmax / 7.5`` times
    ``1 + 1/16`` (the scale's relative rounding). Scales stay normal fp8, in [2^-6, 448]: a channel with absmax
    under 0.12 gets steps of 2^-6 (error <= 0.008), and one over 3360 saturates and clips.
    """
    x = x.float()
    scale = x.abs().amax(dim, keepdim=True).div_(INT4_KEY_OFFSET)
    scale = scale.clamp_(_FP8_FLOOR, _FP8_MAX).to(KEY_SCALE_DTYPE_INT4)
    codes = (x / scale.float()).add_(INT4_KEY_OFFSET).round_().clamp_(0, 15).to(torch.uint8)
    return codes, scale


def quantize_int4_asymmetric(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric int4 along ``dim``: uint8 codes in [0, 15], an fp16 scale and an fp16 minimum.

    Codes are computed against the fp16-rounded scale and minimum, so the round-trip error is half a step plus
    fp16 rounding.
    """
    x = x.float()
    lo, hi = x.amin(dim, keepdim=True), x.amax(dim, keepdim=True)
    scale = (hi - lo).div_(15).to(SCALE_DTYPE).clamp_min_(_SCALE_FLOOR)
    minimum = lo.to(SCALE_DTYPE)
    codes = ((x - minimum.float()) / scale.float()).round_().clamp_(0, 15).to(torch.uint8)
    return codes, scale, minimum


def fp8_bytes_to_float(stored: torch.Tensor) -> torch.Tensor:
    """Positive, normal fp8 e4m3 values stored as uint8 bytes -> fp32, by moving the bits into place.

    ``0 eeee mmm`` shifted left by 20 is the fp32 ``2^(e - 127) (1 + m / 8)``, which is the e4m3 value
    ``2^(e - 7) (1 + m / 8)`` times ``2^-120``. Three cheap integer ops, where torch's elementwise fp8 cast costs
    about 4 ns a value on CPU. Key scales are always positive and normal (:func:`quantize_int4_symmetric`).
    """
    return (stored.int() << 20).view(torch.float32).mul_(2.0**120)


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """(..., d) uint8 codes in [0, 15] -> (..., d // 2) bytes: the first half of the channels in the low nibbles."""
    half = codes.shape[-1] // 2
    return codes[..., :half] | (codes[..., half:] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """(..., d // 2) bytes -> (..., d) uint8 codes."""
    return torch.cat((packed & 15, packed >> 4), dim=-1)


def unpack_int4_into(packed: torch.Tensor, out: torch.Tensor) -> None:
    """:func:`unpack_int4` written (and converted) straight into ``out`` (..., d), one contiguous half at a time."""
    half = packed.shape[-1]
    out[..., :half].copy_(packed & 15)
    out[..., half:].copy_(packed >> 4)


def quantize_keys(k: torch.Tensor, fmt: KVQuantFormat) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize full blocks of keys: int8 one scale per token, int4 one per channel over the block's tokens.

    (B, block_size, kv_heads, head_dim) -> codes (B, block_size, kv_heads, code_dim) and scale
    (B, *fmt.key_scale_shape): int8 (B, block_size, kv_heads, 1) fp16, int4 (B, kv_heads, head_dim) fp8.
    """
    if fmt.keys_per_token:
        return quantize_int8(k, dim=-1)
    codes, scale = quantize_int4_symmetric(k, dim=1)
    return pack_int4(codes), scale.squeeze(1)


def dequantize_keys(
    codes: torch.Tensor, scale: torch.Tensor, fmt: KVQuantFormat, dtype: torch.dtype
) -> torch.Tensor:
    """Inverse of :func:`quantize_keys`: (B, block_size, kv_heads, head_dim) in ``dtype`` (computed in fp32)."""
    if fmt.keys_per_token:
        return (codes.float() * scale.float()).to(dtype)
    centred = unpack_int4(codes).float().sub_(INT4_KEY_OFFSET)
    return centred.mul_(scale.float().unsqueeze(1)).to(dtype)


def quantize_values(
    v: torch.Tensor, fmt: KVQuantFormat
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Quantize values, one group per token per ``value_group`` channels.

    (..., kv_heads, head_dim) -> codes (..., kv_heads, code_dim), scale and minimum (..., kv_heads, groups); the
    minimum is None for int8 (symmetric).
    """
    grouped = v.unflatten(-1, (fmt.head_dim // fmt.value_group, fmt.value_group))
    if fmt.bits == 8:
        codes, scale = quantize_int8(grouped, dim=-1)
        return codes.flatten(-2), scale.squeeze(-1), None
    codes, scale, minimum = quantize_int4_asymmetric(grouped, dim=-1)
    return pack_int4(codes.flatten(-2)), scale.squeeze(-1), minimum.squeeze(-1)


def dequantize_values(
    codes: torch.Tensor,
    scale: torch.Tensor,
    minimum: torch.Tensor | None,
    fmt: KVQuantFormat,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Inverse of :func:`quantize_values`: (..., kv_heads, head_dim) in ``dtype`` (computed in fp32)."""
    codes = unpack_int4(codes) if fmt.bits == 4 else codes
    grouped = codes.unflatten(-1, (fmt.head_dim // fmt.value_group, fmt.value_group)).float()
    out = grouped * scale.float().unsqueeze(-1)
    if minimum is not None:
        out += minimum.float().unsqueeze(-1)
    return out.flatten(-2).to(dtype)


# ---- one layer's pool ------------------------------------------------------------------------------------------
class DecodeScratch:
    """An fp32 working tensor that decode attention refills with keys, then values, layer after layer.

    One is shared by the layers of a pool (they run one after another), and keys and values take turns in it: a
    small working set that stays in cache from layer to layer, and no allocation per layer (measured: 270 -> 175
    us per layer for a 2K-token int8 decode against two fresh buffers). It keeps up to ``KEEP_NUMEL`` floats
    (64 MiB); a larger step gets a fresh tensor. It is working memory, like activations, not part of the pool's
    bytes.
    """

    KEEP_NUMEL = 16 * 2**20

    def __init__(self) -> None:
        self._flat = torch.empty(0)
        # shape -> view of _flat: every layer of a step asks for the same shape
        self._views: dict[tuple[int, ...], torch.Tensor] = {}

    def take(self, *shape: int) -> torch.Tensor:
        if shape in self._views:
            return self._views[shape]
        numel = math.prod(shape)
        if numel > self.KEEP_NUMEL:
            return torch.empty(shape)
        if self._flat.numel() < numel:
            self._flat = torch.empty(numel)
            self._views.clear()
        if len(self._views) > 64:
            self._views.clear()
        view = self._views[shape] = self._flat[:numel].view(shape)
        return view


class QuantizedKVCache:
    """One layer's quantized blocks plus its full-precision window blocks (one per running sequence)."""

    def __init__(
        self,
        fmt: KVQuantFormat,
        num_blocks: int,
        num_windows: int,
        dtype: torch.dtype,
        scratch: DecodeScratch | None = None,
    ) -> None:
        self.fmt = fmt
        self.scratch = scratch or DecodeScratch()  # pass one to every layer of a pool to share it
        self.dtype = dtype  # the model's dtype: window storage and dequantized output
        bs, heads, dim = fmt.block_size, fmt.num_kv_heads, fmt.head_dim
        code_dtype = torch.int8 if fmt.bits == 8 else torch.uint8
        # int4 key scales are fp8 e4m3, kept as their bytes: CPU torch has no fp8 index_copy / index_select
        key_scale_dtype = SCALE_DTYPE if fmt.bits == 8 else torch.uint8
        self.k_codes = torch.zeros(num_blocks, bs, heads, fmt.code_dim, dtype=code_dtype)
        self.v_codes = torch.zeros(num_blocks, bs, heads, fmt.code_dim, dtype=code_dtype)
        self.k_scale = torch.zeros(num_blocks, *fmt.key_scale_shape, dtype=key_scale_dtype)
        self.v_scale = torch.zeros(num_blocks, *fmt.value_scale_shape, dtype=SCALE_DTYPE)
        self.v_min = torch.zeros_like(self.v_scale) if fmt.values_asymmetric else None
        self.k_window = torch.zeros(num_windows, bs, heads, dim, dtype=dtype)  # the blocks being filled
        self.v_window = torch.zeros(num_windows, bs, heads, dim, dtype=dtype)
        # the same, as (num_windows * block_size, kv_heads, head_dim): window slot = window * block_size + offset
        self.k_window_flat = self.k_window.view(-1, heads, dim)
        self.v_window_flat = self.v_window.view(-1, heads, dim)

    def tensors(self) -> list[torch.Tensor]:
        named = [self.k_codes, self.v_codes, self.k_scale, self.v_scale, self.v_min]
        return [t for t in named if t is not None] + [self.k_window, self.v_window]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors())

    def store_blocks(self, block_ids: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Quantize full blocks (n, block_size, kv_heads, head_dim) into ``block_ids`` (n,)."""
        k_codes, k_scale = quantize_keys(k, self.fmt)
        v_codes, v_scale, v_min = quantize_values(v, self.fmt)
        self.k_codes.index_copy_(0, block_ids, k_codes)
        self.k_scale.index_copy_(0, block_ids, k_scale.view(self.k_scale.dtype))
        self.v_codes.index_copy_(0, block_ids, v_codes)
        self.v_scale.index_copy_(0, block_ids, v_scale)
        if self.v_min is not None:
            self.v_min.index_copy_(0, block_ids, v_min)

    def load_blocks(self, block_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dequantize blocks (n,) -> keys and values, each (n, block_size, kv_heads, head_dim) in the model dtype."""

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.index_select(0, block_ids)

        k = dequantize_keys(pick(self.k_codes), self._key_scale(pick(self.k_scale)), self.fmt, self.dtype)
        v = dequantize_values(pick(self.v_codes), pick(self.v_scale), pick(self.v_min), self.fmt, self.dtype)
        return k, v

    def _key_scale(self, stored: torch.Tensor) -> torch.Tensor:
        """Stored key scales as fp32: fp16 (int8), or the fp8 e4m3 bytes of int4 (see :func:`fp8_bytes_to_float`)."""
        return stored.float() if self.fmt.keys_per_token else fp8_bytes_to_float(stored)

    # ---- decode reads: fp32 buffers, per-token scales left to the caller ------------------------------------
    def _pick(self, t: torch.Tensor, tables: torch.Tensor, run: int | None) -> torch.Tensor:
        """Rows of ``t`` for ``tables`` (N, M) -> (N * M, ...); a view of (M, ...) when ``run`` (one contiguous run)."""
        if run is not None:
            return t[run : run + tables.shape[1]]
        return t.index_select(0, tables.view(-1))

    def _blocks_and_codes(
        self, codes: torch.Tensor, out: torch.Tensor, tables: torch.Tensor, run: int | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``out`` viewed as (..., M, block_size, kv_heads, head_dim) blocks, and the codes of blocks ``tables``."""
        fmt = self.fmt
        m, lead = tables.shape[1], out.shape[:-3]
        blocks = out.view(*lead, m, fmt.block_size, fmt.num_kv_heads, fmt.head_dim)
        picked = self._pick(codes, tables, run)
        return blocks, picked if run is not None else picked.view(*lead, m, *codes.shape[1:])

    def read_keys_into(
        self, out: torch.Tensor, tables: torch.Tensor, run: int | None = None
    ) -> torch.Tensor | None:
        """Write the keys of blocks ``tables`` (N, M) into fp32 ``out`` (..., M * block_size, kv_heads, head_dim).

        ``out``'s leading dimensions are the N decodes (or none for one). int8 writes the bare codes and returns
        their per-token scales (..., M * block_size, kv_heads), for the caller to apply to the scores (cheaper
        than rescaling every channel); int4 writes the keys themselves (its scales are per channel) and returns
        None. ``run``: the blocks are ``run .. run + M - 1`` (N = 1), read as views.
        """
        fmt = self.fmt
        m, lead = tables.shape[1], out.shape[:-3]
        blocks, codes = self._blocks_and_codes(self.k_codes, out, tables, run)
        if fmt.keys_per_token:
            blocks.copy_(codes)
            return self._pick(self.k_scale, tables, run).view(*lead, m * fmt.block_size, fmt.num_kv_heads)
        unpack_int4_into(codes, blocks)
        scale = self._key_scale(self._pick(self.k_scale, tables, run))  # (N * M, heads, dim)
        scale = scale.view(*lead, m, 1, fmt.num_kv_heads, fmt.head_dim)
        torch.addcmul(scale * -INT4_KEY_OFFSET, blocks, scale, out=blocks)
        return None

    def read_values_into(
        self, out: torch.Tensor, tables: torch.Tensor, run: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Write the bare value codes of blocks ``tables`` (N, M) into fp32 ``out``; return scales and minima.

        ``out`` is (..., M * block_size, kv_heads, head_dim) as in :meth:`read_keys_into`; scales and minima
        (None for int8) are (..., M * block_size, kv_heads, groups). Values are per token, so the caller folds
        scale and minimum into the attention weights instead of rescaling every channel:
        ``sum_t p_t (s_t c_t + m_t) = sum_t (p_t s_t) c_t + sum_t p_t m_t``.
        """
        fmt = self.fmt
        m, lead = tables.shape[1], out.shape[:-3]
        blocks, codes = self._blocks_and_codes(self.v_codes, out, tables, run)
        if fmt.bits == 8:
            blocks.copy_(codes)
        else:
            unpack_int4_into(codes, blocks)

        def per_token(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            return self._pick(t, tables, run).view(*lead, m * fmt.block_size, fmt.num_kv_heads, -1)

        return per_token(self.v_scale), per_token(self.v_min)
