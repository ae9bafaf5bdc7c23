"""Device memory as vLLM spends it: weights, activation peak, non-torch overhead, CUDA graphs, then the KV pool.

vLLM (V1) requests ``total x gpu_memory_utilization``, profiles one dummy batch, and gives what is left after
weights, the activation peak and non-torch allocations to the KV pool; the pool is cut into blocks and the
"maximum concurrency" is how many ``max_model_len`` requests those blocks hold. This module reproduces that
arithmetic per tensor-parallel rank. It knows bytes; it does not know time, prices or which device is cheapest.

The activation peak is the least certain term, so it is stated and settable:

* ``v1`` (default; chunked prefill): a measured constant, independent of ``max_model_len``: 4.8 GiB for dense
  text models, 7.4 GiB for MoE (llm-d, vLLM 0.11, H100).
* ``v0`` (no chunked prefill): the profile batch is ``max_model_len`` tokens, so the peak grows with it: the MLP
  block's live tensors, ``T x (2 hidden + 3 intermediate)`` 16-bit values, plus the sampler's fp32 logits, probs
  and logprobs for ``max_num_seqs`` sequences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from ctxops.models.config import ModelConfig
from ctxops.plan.dtypes import WeightDtype
from ctxops.plan.kv import KvLayout
from ctxops.plan.params import ParamCount

GiB = 2**30
DENSE_ACTIVATION = 4.8 * GiB  # bytes, vLLM V1 profile peak for dense text models
MOE_ACTIVATION = 7.4 * GiB  # bytes, vLLM V1 profile peak for MoE models
NON_TORCH = {1: 0.13 * GiB, 2: 0.55 * GiB}  # bytes per rank by TP size (NCCL buffers for TP >= 2)
V0_MAX_NUM_SEQS = 256  # sequences in the V0 sampler's profile run
V0_MIN_BATCHED_TOKENS = 2048


class EngineProfile(StrEnum):
    """How the serving engine's profile run sizes the activation peak."""

    V1 = "v1"
    V0 = "v0"


def weights_bytes(params: ParamCount, dtype: WeightDtype) -> int:
    """Checkpoint bytes: quantizable linear weights at ``dtype`` (metadata included), the rest 16-bit.

    Embeddings, lm_head, norms and biases stay 16-bit in quantized checkpoints (≈2.1 GB for Llama-3.1-8B int4).
    """
    low = params.quantizable * dtype.bits_per_weight / 8
    return math.ceil(low + 2 * (params.embedding + params.small))


def activation_bytes(config: ModelConfig, profile: EngineProfile, max_model_len: int, tp: int = 1) -> int:
    """Peak activation bytes per rank during vLLM's profile run (see the module docstring)."""
    if profile == EngineProfile.V1:
        return int(MOE_ACTIVATION if config.is_moe else DENSE_ACTIVATION)
    tokens = max(max_model_len, V0_MIN_BATCHED_TOKENS)
    intermediate = config.intermediate_size
    if config.is_moe:
        intermediate = (config.moe_intermediate_size or intermediate) * (config.num_experts_per_tok or 1)
    mlp = tokens * (2 * config.hidden_size + 3 * intermediate // tp) * 2  # 16-bit values
    sampler = V0_MAX_NUM_SEQS * config.vocab_size * 4 * 3  # fp32 logits, probs, logprobs
    return mlp + sampler


def non_torch_bytes(tp: int) -> int:
    """CUDA context and NCCL allocations outside torch, per rank."""
    return int(NON_TORCH[1] if tp == 1 else NON_TORCH[2])


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """One rank's memory budget and the KV pool it leaves. All sizes are bytes per rank."""

    total: int  # device memory as CUDA reports it
    gpu_memory_utilization: float
    weights: int
    activation: int
    non_torch: int
    cuda_graphs: int
    layout: KvLayout
    max_model_len: int

    def __post_init__(self) -> None:
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.max_model_len <= 0:
            raise ValueError(f"max_model_len must be positive, got {self.max_model_len}")

    @property
    def budget(self) -> int:
        """What vLLM requests: ``ceil(total x gpu_memory_utilization)``."""
        return math.ceil(self.total * self.gpu_memory_utilization)

    @property
    def overheads(self) -> int:
        return self.activation + self.non_torch + self.cuda_graphs

    @property
    def kv_pool(self) -> int:
        """Bytes left for the KV cache (negative when weights and overheads already exceed the budget)."""
        return self.budget - self.weights - self.overheads

    @property
    def num_blocks(self) -> int:
        """Blocks of ``block_size`` tokens across every layer (uniform layouts)."""
        block_bytes = self.layout.block_size * self.layout.bytes_per_token_all_layers
        return max(self.kv_pool, 0) // block_bytes

    @property
    def max_concurrency(self) -> float:
        """How many requests of ``max_model_len`` tokens the pool holds at once."""
        if self.layout.is_hybrid:
            return max(self.kv_pool, 0) / self.layout.request_bytes(self.max_model_len)
        return self.num_blocks / math.ceil(self.max_model_len / self.layout.block_size)

    @property
    def kv_cache_tokens(self) -> int:
        """Tokens the pool holds, as vLLM logs "GPU KV cache size".

        Blocks x block_size; for hybrid (sliding + global) layouts, concurrency x max_model_len.
        """
        if self.layout.is_hybrid:
            return int(self.max_concurrency * self.max_model_len)
        return self.num_blocks * self.layout.block_size
