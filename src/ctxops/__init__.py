"""ctxops: plan, serve, evaluate and compress long-context language models.

The public API mirrors vLLM's: ``LLM``, ``AsyncLLM``, ``SamplingParams``, ``RequestOutput``.

Names are resolved on first use (PEP 562), so ``import ctxops.plan`` and ``ctxops plan`` never import torch;
only touching an engine name (``from ctxops import LLM``) loads the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "LLM": "ctxops.engine.llm",
    "AsyncLLM": "ctxops.engine.llm",
    "CacheInfo": "ctxops.engine.kv_cache",
    "CompletionOutput": "ctxops.engine.outputs",
    "EngineConfig": "ctxops.engine.config",
    "Logprob": "ctxops.engine.outputs",
    "ModelConfig": "ctxops.models.config",
    "ModelConfigError": "ctxops.models.config",
    "PromptTooLongError": "ctxops.engine.llm_engine",
    "RequestMetrics": "ctxops.engine.outputs",
    "RequestOutput": "ctxops.engine.outputs",
    "SamplingParams": "ctxops.engine.sampling_params",
    "UnsupportedModelError": "ctxops.models.config",
}

if TYPE_CHECKING:
    from ctxops.engine.config import EngineConfig
    from ctxops.engine.kv_cache import CacheInfo
    from ctxops.engine.llm import LLM, AsyncLLM
    from ctxops.engine.llm_engine import PromptTooLongError
    from ctxops.engine.outputs import CompletionOutput, Logprob, RequestMetrics, RequestOutput
    from ctxops.engine.sampling_params import SamplingParams
    from ctxops.models.config import ModelConfig, ModelConfigError, UnsupportedModelError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ctxops' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "LLM",
    "AsyncLLM",
    "CacheInfo",
    "CompletionOutput",
    "EngineConfig",
    "Logprob",
    "ModelConfig",
    "ModelConfigError",
    "PromptTooLongError",
    "RequestMetrics",
    "RequestOutput",
    "SamplingParams",
    "UnsupportedModelError",
    "__version__",
]
