"""ctxops: plan, serve, evaluate and compress long-context language models.

The public API mirrors vLLM's: ``LLM``, ``AsyncLLM``, ``SamplingParams``, ``RequestOutput``.
"""

from ctxops.engine.config import EngineConfig
from ctxops.engine.kv_cache import CacheInfo
from ctxops.engine.llm import LLM, AsyncLLM
from ctxops.engine.llm_engine import PromptTooLongError
from ctxops.engine.outputs import CompletionOutput, Logprob, RequestMetrics, RequestOutput
from ctxops.engine.sampling_params import SamplingParams
from ctxops.models.config import ModelConfig, ModelConfigError, UnsupportedModelError

__version__ = "0.1.0"

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
