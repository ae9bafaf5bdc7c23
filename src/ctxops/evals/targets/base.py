"""What a target is: something that counts a sample's tokens and generates its answer, with timings.

Two targets implement it: the in-process engine (:mod:`.local`) and an OpenAI-compatible endpoint
(:mod:`.endpoint`). The runner only sees this interface; a target knows how to talk to a model, not tasks or scoring.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from ctxops.evals.prompt import TokenCounter
from ctxops.evals.sample import Sample


class TargetError(RuntimeError):
    """The target failed for good on one request (after retries) or cannot be used at all."""


@dataclass(frozen=True)
class Completion:
    """One generated answer and how long it took (seconds; vLLM's definitions).

    TTFT: request sent -> first output token. TPOT: (end-to-end - TTFT) / (output tokens - 1), None with <2 tokens.
    """

    text: str
    prompt_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    ttft_s: float | None
    e2e_s: float
    finish_reason: str | None = None
    attempts: int = 1

    @property
    def tpot_s(self) -> float | None:
        if self.ttft_s is None or not self.output_tokens or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)


class Target(abc.ABC):
    """A model to evaluate."""

    @property
    @abc.abstractmethod
    def count_tokens(self) -> TokenCounter:
        """Counts a (prompt, answer prefix) pair as this target will tokenize it."""

    @property
    def counts_exactly(self) -> bool:
        """False when lengths are only estimated (no tokenizer for this target)."""
        return True

    @property
    def max_model_len(self) -> int | None:
        """The longest prompt + output the target accepts, when known."""
        return None

    @abc.abstractmethod
    async def generate(self, sample: Sample) -> Completion:
        """Generate the answer to ``sample`` (greedy, ``sample.max_tokens``)."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Provenance for run.json: what this target is (kind, model hash or served name, settings)."""

    def identity(self) -> dict[str, Any]:
        """The part of ``describe()`` that must match for a run to be resumed."""
        return self.describe()

    async def start(self) -> None:  # noqa: B027  (optional hook)
        """Open connections / start engines; fail here with a clear message when the target is unusable."""

    async def close(self) -> None:  # noqa: B027  (optional hook)
        """Release resources."""
