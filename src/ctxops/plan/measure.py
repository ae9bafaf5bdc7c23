"""``--measure``: run the model with the embedded engine on this machine and set the plan against what happened.

Compares predicted and measured KV bytes per token, KV pool size for a byte budget, and decode time per token
against the memory-bandwidth roofline of this CPU (bandwidth probed). It is the only planner module that needs
the engine, and it imports it (and torch) only when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ctxops.plan.dtypes import KvDtype
from ctxops.plan.hardware import Device, probe_cpu
from ctxops.plan.kv import kv_layout
from ctxops.plan.params import count_params
from ctxops.plan.performance import Efficiency, Roofline

_PROMPT = "The key value cache grows with every token."
_ELEMENT_BYTES = {KvDtype.BF16: 2, KvDtype.FP16: 2, KvDtype.FP32: 4}


@dataclass(frozen=True, slots=True)
class Comparison:
    """One quantity, predicted by the planner and measured on the engine."""

    name: str
    unit: str
    predicted: float
    measured: float

    @property
    def ratio(self) -> float:
        """Measured over predicted (1.0 = the plan holds exactly)."""
        return self.measured / self.predicted if self.predicted else float("nan")

    def to_dict(self) -> dict[str, float | str]:
        return {
            "name": self.name,
            "unit": self.unit,
            "predicted": self.predicted,
            "measured": self.measured,
            "ratio": self.ratio,
        }


def measure(
    model: str | Path,
    kv_cache_memory: int = 64 * 2**20,
    max_model_len: int = 256,
    block_size: int = 16,
    dtype: str = "auto",
    max_tokens: int = 16,
    device: Device | None = None,
) -> list[Comparison]:
    """Load ``model`` in the engine and compare the plan with it.

    Args:
        model: a local model directory or ``builtin``.
        kv_cache_memory: bytes given to the engine's KV pool.
        max_model_len: the engine's context limit, tokens.
        block_size: tokens per KV block.
        dtype: the engine's weight/KV dtype (``auto`` = the checkpoint's).
        max_tokens: tokens to decode for the speed measurement (at least 2).
        device: this machine as the planner sees it; probed when None.

    Returns:
        KV bytes per token, pool tokens and decode seconds per token, predicted vs measured.
    """
    from ctxops import LLM, SamplingParams  # the engine (and torch) only here

    llm = LLM(
        str(model),
        dtype=dtype,
        max_model_len=max_model_len,
        kv_cache_memory=kv_cache_memory,
        block_size=block_size,
    )
    info, config = llm.cache_info, llm.engine.model_config
    kv_dtype = KvDtype.from_torch_name(info.dtype)
    layout = kv_layout(config, kv_dtype, block_size=block_size)
    per_token = layout.bytes_per_token_all_layers  # the engine keeps every layer at full length
    predicted_tokens = kv_cache_memory // (block_size * per_token) * block_size
    params = count_params(config)
    weights = params.total * _ELEMENT_BYTES.get(kv_dtype, 2)
    roofline = Roofline(
        config, params, weights, layout, device or probe_cpu(), efficiency=Efficiency(1.0, 1.0)
    )
    output = llm.generate(
        [_PROMPT],
        SamplingParams(max_tokens=max(max_tokens, 2), temperature=0, ignore_eos=True),
        use_tqdm=False,
    )[0]
    metrics = output.metrics
    steps = len(output.outputs[0].token_ids) - 1
    measured_step = (metrics.finished_time - metrics.first_token_time) / steps
    context = len(output.prompt_token_ids) + steps // 2
    return [
        Comparison("KV bytes per token", "bytes", per_token, info.bytes_per_token),
        Comparison("KV pool", "tokens", predicted_tokens, info.num_blocks * info.block_size),
        Comparison(
            "decode time per token (bandwidth roofline)", "s", roofline.decode_step(1, context), measured_step
        ),
    ]
