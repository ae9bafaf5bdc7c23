"""Capacity planning before the hardware is bought: memory, concurrency, latency and cost of a model on a GPU.

Pure Python over :class:`ctxops.models.config.ModelConfig`; nothing here imports torch except
:mod:`ctxops.plan.measure`, which runs the engine on request.
"""

from ctxops.plan.dtypes import KvDtype, WeightDtype
from ctxops.plan.hardware import CATALOGUE, Device, UnknownGpuError, parse_gpu
from ctxops.plan.memory import EngineProfile
from ctxops.plan.model_source import UnknownModelError, preset_names, resolve_model
from ctxops.plan.params import ParamCount, count_params
from ctxops.plan.performance import Efficiency
from ctxops.plan.planner import Limit, Plan, PlanRequest, make_plan
from ctxops.plan.recommend import recommend

__all__ = [
    "CATALOGUE",
    "Device",
    "Efficiency",
    "EngineProfile",
    "KvDtype",
    "Limit",
    "ParamCount",
    "Plan",
    "PlanRequest",
    "UnknownGpuError",
    "UnknownModelError",
    "WeightDtype",
    "count_params",
    "make_plan",
    "parse_gpu",
    "preset_names",
    "recommend",
    "resolve_model",
]
