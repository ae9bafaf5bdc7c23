"""The quantized KV formats' bytes: the compression targets of the int8 and int4 caches against bf16."""

from __future__ import annotations

import pytest

from ctxops.models.kv_format import KVQuantFormat


def _x_bf16(bits: int, head_dim: int, block_size: int) -> float:
    fmt = KVQuantFormat(bits, block_size, num_kv_heads=8, head_dim=head_dim)
    return 2 * 8 * head_dim * 2 / fmt.bytes_per_token  # bf16 K and V per token over the format's


@pytest.mark.parametrize("head_dim", [64, 128, 256])
def test_int4_holds_3_5x_the_tokens_of_bf16_at_the_default_block(head_dim):
    # codes d/2 + d/2, fp8 key scales d/16, fp16 value scale + minimum per 64 channels: d + d/16 + d/16
    assert _x_bf16(4, head_dim, 16) == pytest.approx(4 / (1 + 1 / 8))  # 3.56x
    assert _x_bf16(4, head_dim, 64) == pytest.approx(4 / (1 + 1 / 64 + 1 / 16))  # 3.71x


@pytest.mark.parametrize("block_size", [16, 64])
def test_int8_holds_1_9x_the_tokens_of_bf16(block_size):
    assert _x_bf16(8, 128, block_size) == pytest.approx(512 / 260)  # 1.97x: 2 x 128 codes + 2 fp16 scales
    assert _x_bf16(8, 64, block_size) > 1.9


def test_bytes_per_block_add_up():
    fmt = KVQuantFormat(4, block_size=16, num_kv_heads=2, head_dim=128)
    codes = 2 * 16 * 2 * 64
    key_scales = 2 * 128 * 1  # per (kv head, channel), fp8
    value_params = 16 * 2 * 2 * 2 * 2  # per (token, kv head, group): fp16 scale and minimum
    assert fmt.bytes_per_block == codes + key_scales + value_params
    assert fmt.key_scale_bytes == 1 and fmt.values_asymmetric and not fmt.keys_per_token


def test_invalid_formats_are_refused():
    with pytest.raises(ValueError, match="bits"):
        KVQuantFormat(2, 16, 2, 64)
    with pytest.raises(ValueError, match="even"):
        KVQuantFormat(4, 16, 2, 63)
