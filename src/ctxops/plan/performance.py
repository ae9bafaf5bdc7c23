"""Latency and throughput by roofline: prefill is compute-bound, decode is bandwidth-bound until the batch is big.

Prefill FLOPs = 2 x active params x T + causal attention (QK^T and PV, 2 FLOPs per multiply-add, over the keys
each query sees: T^2/2 for global layers, about T x W for sliding ones). A decode step reads the weights (for MoE,
the experts the batch routes to) and every sequence's KV cache, and costs ``max(bytes / (bandwidth x eta),
FLOPs / (peak x mu))``. ``eta`` and ``mu`` are efficiencies, stated in every plan and settable; tensor parallelism
divides bytes and FLOPs across ranks and its communication is not modelled.
This module knows time; it does not know memory budgets or prices.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctxops.models.config import ModelConfig
from ctxops.plan.hardware import Device
from ctxops.plan.kv import KvLayout
from ctxops.plan.params import ParamCount

DEFAULT_BANDWIDTH_EFFICIENCY = 0.7  # gpt-fast reaches ~69% of A100 peak bandwidth at batch 1
DEFAULT_COMPUTE_EFFICIENCY = 0.5  # model FLOPs utilisation of a good prefill kernel


@dataclass(frozen=True, slots=True)
class Efficiency:
    """Fractions of peak a real engine reaches."""

    bandwidth: float = DEFAULT_BANDWIDTH_EFFICIENCY  # eta: achieved / peak memory bandwidth
    compute: float = DEFAULT_COMPUTE_EFFICIENCY  # mu: achieved / peak tensor FLOP/s

    def __post_init__(self) -> None:
        for name in ("bandwidth", "compute"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} efficiency must be in (0, 1], got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class Roofline:
    """The model on ``tp`` ranks of ``device``: what prefill and decode cost."""

    config: ModelConfig
    params: ParamCount
    weights_bytes: int  # whole checkpoint, all ranks
    layout: KvLayout  # per rank
    device: Device
    tp: int = 1
    efficiency: Efficiency = Efficiency()
    use_fp8_compute: bool = False  # fp8 weights run fp8 GEMMs where the device has fp8 tensor cores

    def __post_init__(self) -> None:
        if self.tp < 1:
            raise ValueError(f"tp must be >= 1, got {self.tp}")

    @property
    def peak_flops(self) -> float:
        """FLOP/s of all ranks at the efficiency ``mu``."""
        tflops = self.device.tflops
        if self.use_fp8_compute and self.device.fp8_tflops:
            tflops = self.device.fp8_tflops
        return tflops * 1e12 * self.tp * self.efficiency.compute

    @property
    def bandwidth(self) -> float:
        """Bytes/s of all ranks at the efficiency ``eta``."""
        return self.device.bandwidth * self.tp * self.efficiency.bandwidth

    def prefill_flops(self, num_tokens: int) -> float:
        """FLOPs to prefill one prompt of ``num_tokens`` tokens."""
        linear = 2.0 * self.params.active * num_tokens
        return linear + self._attention_flops(num_tokens, _causal_keys)

    def ttft(self, num_tokens: int) -> float:
        """Seconds to the first token of one prompt (prefill at peak x mu)."""
        return self.prefill_flops(num_tokens) / self.peak_flops

    def decode_step(self, batch: int, context: int) -> float:
        """Seconds for one decode step of ``batch`` sequences at ``context`` tokens each."""
        # layout is per rank: GQA heads split across ranks, MLA latents replicated, so every rank reads its own
        read = self.weights_read(batch) + batch * self.layout.read_bytes(context) * self.tp
        flops = batch * (2.0 * self.params.active + self._attention_flops(context, lambda t, w: min(t, w)))
        return max(read / self.bandwidth, flops / self.peak_flops)

    def weights_read(self, batch: int) -> float:
        """Weight bytes one decode step reads: every dense weight, and the experts ``batch`` tokens route to."""
        if not self.config.is_moe:
            return float(self.weights_bytes)
        experts = self.config.num_experts or 1
        share = 1 - (1 - (self.config.num_experts_per_tok or 1) / experts) ** batch  # expected share touched
        expert_bytes = self.weights_bytes * self.params.experts / self.params.total
        return self.weights_bytes - expert_bytes * (1 - share)

    def _attention_flops(self, num_tokens: int, keys) -> float:
        """Attention FLOPs over all layers; ``keys(T, W)`` counts query-key pairs within a window ``W``."""
        config = self.config
        if config.is_mla:
            width = config.num_attention_heads * (
                (config.qk_nope_head_dim or 0) + (config.qk_rope_head_dim or 0) + (config.v_head_dim or 0)
            )
        else:
            width = 2 * config.num_attention_heads * config.head_dim  # QK^T and PV
        window = self.layout.window or num_tokens
        pairs = self.layout.num_full_layers * keys(num_tokens, num_tokens)
        pairs += self.layout.num_sliding_layers * keys(num_tokens, window)
        return 2.0 * pairs * width


def _causal_keys(num_tokens: int, window: int) -> float:
    """Query-key pairs of a causal prefill where each query sees at most ``window`` keys."""
    if num_tokens <= window:
        return num_tokens * num_tokens / 2
    return window * window / 2 + (num_tokens - window) * window
