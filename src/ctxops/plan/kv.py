"""KV-cache bytes: per token, per layer group, and per request as vLLM's allocator counts them.

Full-attention layers grow with every token. Sliding-window layers hold at most ``min(W - 1 +
max_num_batched_tokens, max_model_len)`` tokens plus one block per request (vLLM ``SlidingWindowSpec``). MLA
(DeepSeek-V2/V3) caches one compressed latent plus a shared rope key per token and layer, with no K/V factor 2,
and is replicated on every tensor-parallel rank; GQA/MQA heads are split across ranks (at least one per rank).
This module knows attention layouts and bytes; it does not know devices or budgets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ctxops.models.config import ModelConfig
from ctxops.models.kv_format import KVQuantFormat
from ctxops.plan.dtypes import KvDtype

_DS_MLA_TILE = 128  # fp8_ds_mla: one fp32 scale per 128 latent values, rope part kept bf16


@dataclass(frozen=True, slots=True)
class KvLayout:
    """The KV cache of one model on one tensor-parallel rank."""

    num_full_layers: int
    num_sliding_layers: int
    window: int | None  # tokens; None when no layer slides
    layer_bytes_per_token: int  # bytes one layer stores per token on one rank (rounded down, see below)
    block_size: int  # tokens per block
    max_num_batched_tokens: int  # scheduler token budget; bounds what a sliding layer holds
    # bytes of one layer's block on one rank; None: block_size x layer_bytes_per_token. Quantized formats set it:
    # their per-block key scales can make a layer's bytes per token fractional (int4, head_dim 16, block 64: 40.5)
    layer_bytes_per_block: int | None = None

    def __post_init__(self) -> None:
        if self.num_full_layers < 0 or self.num_sliding_layers < 0 or self.layer_bytes_per_token <= 0:
            raise ValueError("layer counts must be >= 0 and bytes per token positive")
        if self.num_sliding_layers and not self.window:
            raise ValueError("sliding layers need a window")
        if self.block_size <= 0:
            raise ValueError(f"block_size must be positive, got {self.block_size}")

    @property
    def block_bytes(self) -> int:
        """Bytes of one layer's block on one rank."""
        return self.layer_bytes_per_block or self.block_size * self.layer_bytes_per_token

    @property
    def bytes_per_token(self) -> int:
        """Bytes every new token adds for good: full-attention layers only.

        Rounded as the engine rounds: all layers' block bytes over the block size, rounded down.
        """
        return self.num_full_layers * self.block_bytes // self.block_size

    @property
    def bytes_per_token_all_layers(self) -> int:
        """Bytes per token while the context is inside the window (every layer stores it)."""
        return (self.num_full_layers + self.num_sliding_layers) * self.block_bytes // self.block_size

    @property
    def is_hybrid(self) -> bool:
        return self.num_sliding_layers > 0

    def blocks_per_layer(self, num_tokens: int, sliding: bool) -> int:
        """Blocks one layer needs for a request of ``num_tokens`` tokens."""
        if not sliding:
            return math.ceil(num_tokens / self.block_size)
        held = min(self.window - 1 + self.max_num_batched_tokens, num_tokens)  # type: ignore[operator]
        return math.ceil(held / self.block_size) + 1

    def request_bytes(self, num_tokens: int) -> int:
        """Bytes one request of ``num_tokens`` tokens occupies, rounded to whole blocks per layer."""
        block_bytes = self.block_bytes
        full = self.num_full_layers * self.blocks_per_layer(num_tokens, sliding=False)
        sliding = (
            self.num_sliding_layers * self.blocks_per_layer(num_tokens, sliding=True) if self.is_hybrid else 0
        )
        return (full + sliding) * block_bytes

    def read_bytes(self, context: int) -> int:
        """Bytes one decode step reads for one sequence at ``context`` tokens."""
        sliding = self.num_sliding_layers * min(context, self.window or 0)
        return (self.num_full_layers * context + sliding) * self.layer_bytes_per_token


def layer_bytes_per_token(config: ModelConfig, kv_dtype: KvDtype, tp: int = 1, block_size: int = 16) -> int:
    """Bytes one attention layer caches per token on one of ``tp`` ranks.

    Args:
        config: the model.
        kv_dtype: the cache element type. int8/int4 of MHA/GQA/MQA models are the embedded engine's formats
            (:class:`ctxops.models.kv_format.KVQuantFormat`, codes plus fp16 scales; int4 key scales are per
            block, so they depend on ``block_size``); MLA latents add an fp32 per-token scale.
        tp: tensor-parallel size.
        block_size: tokens per KV block.
    """
    if config.is_mla:
        rank, rope = config.kv_lora_rank or 0, config.qk_rope_head_dim or 0
        if kv_dtype == KvDtype.FP8:  # vLLM fp8_ds_mla: fp8 latent + fp32 tile scales + bf16 rope key
            return rank + 4 * math.ceil(rank / _DS_MLA_TILE) + 2 * rope
        return (rank + rope) * kv_dtype.bits // 8 + kv_dtype.scale_bytes
    heads = max(math.ceil(config.num_key_value_heads / tp), 1)
    if kv_dtype in (KvDtype.INT8, KvDtype.INT4):  # the engine's own format: one source of truth
        fmt = KVQuantFormat(kv_dtype.bits, block_size, heads, config.head_dim)
        return fmt.bytes_per_block // block_size
    return 2 * heads * config.head_dim * kv_dtype.bits // 8  # K and V


def kv_layout(
    config: ModelConfig,
    kv_dtype: KvDtype,
    tp: int = 1,
    block_size: int = 16,
    max_num_batched_tokens: int = 8192,
) -> KvLayout:
    """The KV layout of ``config`` under ``kv_dtype`` on one of ``tp`` ranks."""
    sliding = len(config.sliding_window_layers)
    block_bytes = None
    if kv_dtype in (KvDtype.INT8, KvDtype.INT4) and not config.is_mla:
        heads = max(math.ceil(config.num_key_value_heads / tp), 1)
        block_bytes = KVQuantFormat(kv_dtype.bits, block_size, heads, config.head_dim).bytes_per_block
    return KvLayout(
        num_full_layers=config.num_hidden_layers - sliding,
        num_sliding_layers=sliding,
        window=config.sliding_window if sliding else None,
        layer_bytes_per_token=layer_bytes_per_token(config, kv_dtype, tp, block_size),
        block_size=block_size,
        max_num_batched_tokens=max_num_batched_tokens,
        layer_bytes_per_block=block_bytes,
    )
