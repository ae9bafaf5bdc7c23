"""The in-process target: the embedded engine (``AsyncLLM``) with any engine settings, e.g. a KV cache format.

Prompts are rendered with the model's own chat template (or raw) and sent as token ids, so the length counted while
building a sample is exactly what the engine sees; a verbatim sample (RULER's data, template already applied) is
tokenized as it is. Timings come from the streamed outputs, measured from the moment
the request is handed to the engine. This module knows the engine's Python API, not tasks or HTTP.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ctxops.engine.config import EngineConfig
from ctxops.evals.prompt import PromptStyle, TokenizerCounter
from ctxops.evals.sample import Sample
from ctxops.evals.targets.base import Completion, Target, TargetError

_HASHED_WHOLE = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "generation_config.json",
)
_EDGE = 1 << 20  # bytes hashed from each end of a weight file


def model_fingerprint(path: str | Path) -> str:
    """sha256 (first 16 hex digits) of a model directory: config and tokenizer files whole, weights by size+edges.

    Hashing every weight byte of a large model takes minutes; size plus the first and last MiB of each file tells
    two checkpoints apart in practice.
    """
    path = Path(path)
    digest = hashlib.sha256()
    for name in _HASHED_WHOLE:
        file = path / name
        if file.is_file():
            digest.update(name.encode() + file.read_bytes())
    for file in sorted(path.glob("*.safetensors")):
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(_EDGE))
            handle.seek(max(size - _EDGE, 0))
            digest.update(handle.read(_EDGE))
    return digest.hexdigest()[:16]


def _query_aware(config: EngineConfig) -> bool | None:
    """Whether the question is compressed with the context (kvpress's flag); None without a press."""
    return None if config.kv_press is None else config.kv_press_query_aware


def question_start(counter, sample: Sample, ids: list[int]) -> int | None:
    """Index of the first question token in ``ids`` (the sample's rendered prompt), or None if it has none.

    The context alone is rendered and tokenized the same way; the two token lists agree up to the question.
    """
    context = sample.context_text
    if not context or sample.verbatim:  # RULER's data: the template is in the text, the question not marked
        return None
    head = counter.encode(context, "")
    start = next(
        (i for i, (a, b) in enumerate(zip(ids, head, strict=False)) if a != b), min(len(ids), len(head))
    )
    return start if 0 < start < len(ids) else None


class LocalTarget(Target):
    """Evaluate a local model directory (or ``builtin``) on this machine's engine."""

    def __init__(self, config: EngineConfig, style: PromptStyle = PromptStyle.CHAT) -> None:
        from ctxops.engine.llm import AsyncLLM
        from ctxops.models.loader import resolve_model_path

        self.config = config
        self.path = resolve_model_path(config.model)
        self.llm = AsyncLLM(config)
        tokenizer = self.llm.tokenizer
        if style is PromptStyle.CHAT and not tokenizer.has_chat_template:
            style = PromptStyle.RAW  # a base model: no template to apply
        self.style = style
        self._counter = TokenizerCounter(tokenizer, style)
        self._ids = itertools.count()
        self._fingerprint = model_fingerprint(self.path)

    @property
    def count_tokens(self) -> TokenizerCounter:
        return self._counter

    @property
    def max_model_len(self) -> int | None:
        return self.llm.engine.max_model_len

    async def generate(self, sample: Sample) -> Completion:
        from ctxops.engine.llm import RequestFailedError
        from ctxops.engine.sampling_params import SamplingParams

        if sample.verbatim:  # RULER's prepared data: as its scripts tokenize it (special tokens added)
            ids = self._counter.tokenizer.encode(sample.verbatim_text, add_special_tokens=True)
        else:
            ids = self._counter.encode(sample.prompt, sample.answer_prefix)
        prompt: list[int] | dict = ids
        if self.config.kv_press is not None and not self.config.kv_press_query_aware:
            prompt = {"prompt_token_ids": ids, "question_start": question_start(self._counter, sample, ids)}
        params = SamplingParams(temperature=0.0, max_tokens=sample.max_tokens)
        start = time.perf_counter()
        ttft = None
        last = None
        try:
            async for out in self.llm.generate(prompt, params, f"eval-{next(self._ids)}"):
                if ttft is None and out.outputs[0].token_ids:
                    ttft = time.perf_counter() - start
                last = out
        except (ValueError, RequestFailedError) as exc:  # too long, empty prompt, or it failed in the engine
            raise TargetError(str(exc)) from exc
        e2e = time.perf_counter() - start
        if last is None:
            raise TargetError("the engine returned no output")
        completion = last.outputs[0]
        return Completion(
            text=completion.text,
            prompt_tokens=len(last.prompt_token_ids),
            output_tokens=len(completion.token_ids),
            cached_tokens=last.num_cached_tokens,
            ttft_s=ttft,
            e2e_s=e2e,
            finish_reason=completion.finish_reason,
        )

    def describe(self) -> dict[str, Any]:
        engine = {k: v for k, v in asdict(self.config).items() if k != "model"}
        return {
            "kind": "local",
            "model": self.config.model,
            "model_path": str(self.path),
            "model_hash": self._fingerprint,
            "prompt_style": self.style.value,
            "tokenizer": "the model's own",
            "engine": engine,
            "kv_cache": self.llm.engine.cache_info.to_dict(),  # the pool these settings gave: bytes, tokens
            "kv_press_query_aware": _query_aware(self.config),
            # the head policy, and what its split storage really costs (kv_cache holds the same numbers)
            "kv_head_policy": None if self.llm.engine.head_policy is None else self._head_policy(),
        }

    def _head_policy(self) -> dict[str, Any]:
        info = self.llm.engine.cache_info
        return {
            **self.llm.engine.head_policy.to_dict(),
            "pool_bytes_per_token": info.bytes_per_token,
            "pool_bytes_freed_per_token": info.full_bytes_per_token - info.bytes_per_token,
            "ring_bytes_per_sequence": info.ring_bytes_per_sequence,
        }

    def identity(self) -> dict[str, Any]:
        out = self.describe()
        for derived in (
            "model_path",
            "kv_cache",
            "kv_press_query_aware",
            "kv_head_policy",
        ):  # follow from the settings
            out.pop(derived)
        return out

    async def close(self) -> None:
        await self.llm.shutdown()
