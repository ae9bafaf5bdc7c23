"""One plan: a model on N devices with given weights, KV dtype, context and concurrency -> memory, speed, cost.

``make_plan`` ties the pieces together (params -> weights bytes, KV layout, vLLM's memory arithmetic, the
roofline) and names the first term that stops the setup from working. It knows no rendering and no CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ctxops.models.config import ModelConfig
from ctxops.plan.dtypes import KvDtype, WeightDtype
from ctxops.plan.hardware import Device
from ctxops.plan.kv import KvLayout, kv_layout
from ctxops.plan.memory import (
    EngineProfile,
    GiB,
    MemoryPlan,
    activation_bytes,
    non_torch_bytes,
    weights_bytes,
)
from ctxops.plan.params import ParamCount, count_params
from ctxops.plan.performance import Efficiency, Roofline

DEFAULT_GPU_MEMORY_UTILIZATION = 0.92  # vLLM's current default (0.9 before)
DEFAULT_OUTPUT_LEN = 256  # tokens generated per request


class Limit(StrEnum):
    """The term that decides the verdict."""

    NONE = "none"
    WEIGHTS = "weights"  # weights + activation + overheads exceed the memory budget
    KV_CACHE = "kv_cache"  # the pool cannot hold one max_model_len request
    CONCURRENCY = "concurrency"  # it holds fewer than the requested concurrent requests
    TTFT = "ttft"  # prefill slower than the target
    DECODE = "decode_speed"  # per-user decode slower than the target


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """Everything a plan depends on; one per ``ctxops plan`` invocation or recommendation candidate."""

    config: ModelConfig
    device: Device
    model_name: str = ""  # for display; the architecture when empty
    num_gpus: int = 1
    tp: int | None = None  # tensor-parallel size; None = num_gpus (one replica)
    weights: WeightDtype | None = None  # None = the checkpoint's quantization_config, else bf16
    kv_dtype: KvDtype = KvDtype.BF16
    max_model_len: int | None = None  # tokens; None = the model's max_position_embeddings
    concurrency: int = 1  # requests of max_model_len tokens served at once (per deployment)
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    block_size: int = 16  # tokens per KV block
    max_num_batched_tokens: int = 8192  # scheduler token budget per step
    input_len: int | None = (
        None  # prompt tokens for TTFT and decode context; None = max_model_len - output_len
    )
    output_len: int = DEFAULT_OUTPUT_LEN
    profile: EngineProfile = EngineProfile.V1
    activation_gib: float | None = None  # None = the profile's estimate
    cuda_graphs_gib: float = 0.0  # measured -0.88..+1.03 GiB; 0 by default
    efficiency: Efficiency = field(default_factory=Efficiency)
    price_per_gpu_hour: float | None = None  # USD; None = the catalogue's indicative price
    max_ttft_s: float | None = None  # target, seconds
    min_decode_tok_s: float | None = None  # target, tokens/s per user
    warnings: tuple[str, ...] = ()  # caveats shown with the plan (e.g. an unknown family planned as dense)

    def __post_init__(self) -> None:
        tp = self.tp or self.num_gpus
        if self.num_gpus < 1 or tp < 1 or self.num_gpus % tp:
            raise ValueError(f"--tp {tp} must divide the number of GPUs ({self.num_gpus}); both must be >= 1")
        if self.concurrency < 1 or self.output_len < 1:
            raise ValueError("concurrency and output length must be at least 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        limit = self.config.max_position_embeddings
        if self.max_model_len is not None and not 0 < self.max_model_len <= limit:
            raise ValueError(
                f"max_model_len must be between 1 and the model's limit ({limit:,}), got {self.max_model_len:,}"
            )
        if self.input_len is not None and self.input_len + self.output_len > self.context:
            raise ValueError(
                f"input_len + output_len ({self.input_len + self.output_len}) exceeds max_model_len ({self.context})"
            )
        if self.block_size < 1 or self.max_num_batched_tokens < 1:
            raise ValueError("block_size and max_num_batched_tokens must be positive")

    @property
    def tensor_parallel(self) -> int:
        return self.tp or self.num_gpus

    @property
    def replicas(self) -> int:
        return self.num_gpus // self.tensor_parallel

    @property
    def context(self) -> int:
        return self.max_model_len or self.config.max_position_embeddings

    @property
    def weight_dtype(self) -> WeightDtype:
        return (
            self.weights or WeightDtype.from_quantization_config(self.config.quantization) or WeightDtype.BF16
        )

    @property
    def prompt_len(self) -> int:
        if self.input_len is not None:
            return self.input_len
        return max(self.context - min(self.output_len, self.context // 2), 1)


@dataclass(frozen=True, slots=True)
class Plan:
    """The answer: memory per rank, the pool, speed, cost and the verdict."""

    request: PlanRequest
    params: ParamCount
    layout: KvLayout
    memory: MemoryPlan
    weights_bytes: int  # the whole checkpoint, all ranks
    ttft_s: float
    decode_step_s: float
    decode_tok_s: float  # aggregate over all replicas at the requested concurrency
    throughput_tok_s: float  # output tokens/s, prefill included (one batch: prefills, then decode)
    cost_per_million: float  # USD per million output tokens
    limit: Limit

    @property
    def fits(self) -> bool:
        return self.limit == Limit.NONE

    @property
    def fits_memory(self) -> bool:
        return self.limit not in (Limit.WEIGHTS, Limit.KV_CACHE, Limit.CONCURRENCY)

    @property
    def reason(self) -> str:
        """One sentence naming the limiting term."""
        req, mem = self.request, self.memory
        pool_gib = mem.kv_pool / GiB
        return {
            Limit.NONE: f"fits: {mem.max_concurrency:.2f}x concurrency at {req.context:,} tokens",
            Limit.WEIGHTS: f"weights + overheads leave {pool_gib:.2f} GiB for the KV cache",
            Limit.KV_CACHE: f"the KV pool holds {mem.kv_cache_tokens:,} tokens, less than one {req.context:,}-token request",
            Limit.CONCURRENCY: f"{mem.max_concurrency:.2f}x concurrency at {req.context:,} tokens < {req.concurrency} requested",
            Limit.TTFT: f"TTFT {self.ttft_s:.2f} s > target {req.max_ttft_s} s",
            Limit.DECODE: f"{1 / self.decode_step_s:.1f} tok/s per user < target {req.min_decode_tok_s}",
        }[self.limit]

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable plan (``--json``); sizes in bytes, times in seconds."""
        req, mem = self.request, self.memory
        return {
            "model": req.model_name or req.config.architecture,
            "device": req.device.name,
            "num_gpus": req.num_gpus,
            "tp": req.tensor_parallel,
            "weights_dtype": req.weight_dtype.value,
            "kv_dtype": req.kv_dtype.value,
            "max_model_len": req.context,
            "concurrency": req.concurrency,
            "gpu_memory_utilization": req.gpu_memory_utilization,
            "params": self.params.total,
            "active_params": self.params.active,
            "weights_bytes": self.weights_bytes,
            "weights_bytes_per_gpu": mem.weights,
            "kv_bytes_per_token": self.model_layout.bytes_per_token,
            "kv_bytes_per_token_per_gpu": self.layout.bytes_per_token,
            "kv_bytes_per_token_in_window": self.model_layout.bytes_per_token_all_layers,
            "kv_full_layers": self.layout.num_full_layers,
            "kv_sliding_layers": self.layout.num_sliding_layers,
            "sliding_window": self.layout.window,
            "budget_bytes_per_gpu": mem.budget,
            "activation_bytes_per_gpu": mem.activation,
            "non_torch_bytes_per_gpu": mem.non_torch,
            "cuda_graph_bytes_per_gpu": mem.cuda_graphs,
            "kv_pool_bytes_per_gpu": mem.kv_pool,
            "kv_cache_tokens": mem.kv_cache_tokens,
            "max_concurrency": round(mem.max_concurrency * req.replicas, 4),
            "fits": self.fits,
            "limit": self.limit.value,
            "reason": self.reason,
            "prompt_len": req.prompt_len,
            "output_len": req.output_len,
            "ttft_s": self.ttft_s,
            "decode_ms_per_token": self.decode_step_s * 1e3,
            "decode_tok_s": self.decode_tok_s,
            "throughput_tok_s": self.throughput_tok_s,
            "price_per_gpu_hour": self.price_per_hour,
            "cost_per_million_tokens": self.cost_per_million,
            "bandwidth_efficiency": req.efficiency.bandwidth,
            "compute_efficiency": req.efficiency.compute,
            "engine_profile": req.profile.value,
            "warnings": list(req.warnings),
        }

    @property
    def model_layout(self) -> KvLayout:
        """The KV layout of the whole model (one rank's layout times TP, without head replication)."""
        req = self.request
        return kv_layout(req.config, req.kv_dtype, 1, req.block_size, req.max_num_batched_tokens)

    @property
    def price_per_hour(self) -> float:
        return _price(self.request)


def make_plan(request: PlanRequest) -> Plan:
    """Plan ``request``: memory per rank as vLLM sizes it, roofline speed, cost, and the limiting term."""
    req, tp = request, request.tensor_parallel
    params = count_params(req.config)
    layout = kv_layout(req.config, req.kv_dtype, tp, req.block_size, req.max_num_batched_tokens)
    total_weights = weights_bytes(params, req.weight_dtype)
    activation = activation_bytes(req.config, req.profile, req.context, tp)
    if req.activation_gib is not None:
        activation = int(req.activation_gib * GiB)
    memory = MemoryPlan(
        total=req.device.memory_bytes,
        gpu_memory_utilization=req.gpu_memory_utilization,
        weights=-(-total_weights // tp),
        activation=activation,
        non_torch=non_torch_bytes(tp),
        cuda_graphs=int(req.cuda_graphs_gib * GiB),
        layout=layout,
        max_model_len=req.context,
    )
    roofline = Roofline(
        req.config,
        params,
        total_weights,
        layout,
        req.device,
        tp,
        req.efficiency,
        use_fp8_compute=req.weight_dtype == WeightDtype.FP8,
    )
    batch = -(-req.concurrency // req.replicas)  # requests per replica
    ttft = roofline.ttft(req.prompt_len)
    step = roofline.decode_step(batch, req.prompt_len + req.output_len // 2)
    decode_tok_s = req.replicas * batch / step
    cycle = batch * ttft + req.output_len * step  # seconds: prefill every prompt, then decode together
    throughput = req.replicas * batch * req.output_len / cycle
    price = _price(req)
    cost = price * req.num_gpus / (throughput * 3600) * 1e6
    plan = Plan(
        req, params, layout, memory, total_weights, ttft, step, decode_tok_s, throughput, cost, Limit.NONE
    )
    return replace(plan, limit=_limit(plan, batch))


def _limit(plan: Plan, batch: int) -> Limit:
    req, mem = plan.request, plan.memory
    if mem.kv_pool <= 0:
        return Limit.WEIGHTS
    if mem.max_concurrency < 1:
        return Limit.KV_CACHE
    if mem.max_concurrency < batch:
        return Limit.CONCURRENCY
    if req.max_ttft_s is not None and plan.ttft_s > req.max_ttft_s:
        return Limit.TTFT
    if req.min_decode_tok_s is not None and 1 / plan.decode_step_s < req.min_decode_tok_s:
        return Limit.DECODE
    return Limit.NONE


def _price(request: PlanRequest) -> float:
    """USD per GPU-hour: the user's, else the catalogue's indicative price."""
    if request.price_per_gpu_hour is not None:
        return request.price_per_gpu_hour
    return request.device.price_per_hour
