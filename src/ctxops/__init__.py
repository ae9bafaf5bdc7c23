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
    "EngineBrokenError": "ctxops.engine.llm_engine",
    "EngineConfig": "ctxops.engine.config",
    "EngineDeadError": "ctxops.engine.llm",
    "GGUFImportError": "ctxops.models.gguf_file",
    "Logprob": "ctxops.engine.outputs",
    "ModelConfig": "ctxops.models.config",
    "ModelConfigError": "ctxops.models.config",
    "PromptTooLongError": "ctxops.engine.llm_engine",
    "RequestFailedError": "ctxops.engine.llm",
    "RequestMetrics": "ctxops.engine.outputs",
    "RequestOutput": "ctxops.engine.outputs",
    "SamplingParams": "ctxops.engine.sampling_params",
    "UnsupportedModelError": "ctxops.models.config",
    "import_gguf": "ctxops.models.gguf_import",
}

if TYPE_CHECKING:
    from ctxops.engine.config import EngineConfig
    from ctxops.engine.kv_cache import CacheInfo
    from ctxops.engine.llm import LLM, AsyncLLM, EngineDeadError, RequestFailedError
    from ctxops.engine.llm_engine import EngineBrokenError, PromptTooLongError
    from ctxops.engine.outputs import CompletionOutput, Logprob, RequestMetrics, RequestOutput
    from ctxops.engine.sampling_params import SamplingParams
    from ctxops.models.config import ModelConfig, ModelConfigError, UnsupportedModelError
    from ctxops.models.gguf_file import GGUFImportError
    from ctxops.models.gguf_import import import_gguf


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
    "EngineBrokenError",
    "EngineConfig",
    "EngineDeadError",
    "GGUFImportError",
    "Logprob",
    "ModelConfig",
    "ModelConfigError",
    "PromptTooLongError",
    "RequestFailedError",
    "RequestMetrics",
    "RequestOutput",
    "SamplingParams",
    "UnsupportedModelError",
    "__version__",
    "import_gguf",
]
