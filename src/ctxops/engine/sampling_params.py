"""How one request samples and when it stops, with vLLM's field names and defaults.

``SamplingParams`` is validated when built, so a bad value fails at the edge (the CLI, the HTTP schema, the Python
call) with a message naming the field; the ranges themselves live in :mod:`ctxops.engine.limits`. It knows nothing
of tokenizers or tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ctxops.engine import limits


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Sampling and stopping rules for one request (vLLM-compatible names).

    ``temperature=0`` is greedy. ``logprobs=None`` returns none; ``logprobs=k`` returns the sampled token's log
    probability plus the top ``k`` alternatives, from the model's raw distribution (before temperature and
    truncation, as vLLM's default).
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 (or -1) = all tokens
    seed: int | None = None
    max_tokens: int | None = 16  # None = up to max_model_len
    min_tokens: int = 0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    logprobs: int | None = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", [self.stop])
        object.__setattr__(self, "stop", list(self.stop or []))
        object.__setattr__(self, "stop_token_ids", list(self.stop_token_ids or []))
        if self.n != 1:
            raise ValueError(
                f"n must be 1 (several completions per request are not supported yet), got {self.n}"
            )
        limits.TEMPERATURE.check(self.temperature)
        limits.TOP_P.check(self.top_p)
        limits.TOP_K.check(self.top_k)
        limits.SEED.check(self.seed)
        limits.MAX_TOKENS.check(self.max_tokens)
        limits.MIN_TOKENS.check(self.min_tokens)
        limits.LOGPROBS.check(self.logprobs)
        if self.top_k == -1:
            object.__setattr__(self, "top_k", 0)
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens must be in [0, max_tokens], got {self.min_tokens}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError("stop strings must be non-empty")
        for token in self.stop_token_ids:
            try:
                limits.TOKEN_ID.check(token)
            except ValueError:
                raise ValueError(
                    f"stop_token_ids must be non-negative integer token ids, got {self.stop_token_ids}"
                ) from None

    @property
    def is_greedy(self) -> bool:
        """Temperatures below ``GREEDY_TEMPERATURE`` sample the argmax (dividing by them overflows)."""
        return self.temperature < limits.GREEDY_TEMPERATURE
