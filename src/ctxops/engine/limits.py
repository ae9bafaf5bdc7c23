"""The numeric limits of every sampling field and engine seed a user can type: one table, read by every edge.

:class:`~ctxops.engine.sampling_params.SamplingParams` and :class:`~ctxops.engine.config.EngineConfig` check their
values against it once, in ``__post_init__``; the HTTP schemas turn it into pydantic constraints (so
``/openapi.json`` states them and a bad value is a 400 naming the field); the CLI's flags go through the same
dataclasses. A value outside its range, or a non-finite float, is refused with the field, the range and the value.
Limits follow OpenAI's API where it sets one (temperature in [0, 2]) and torch's where the engine would otherwise
fail (a seed must fit in a signed 64-bit integer). This module knows numbers, not requests or tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Range:
    """An interval a field's value must lie in; ``None`` bounds are open-ended."""

    name: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the value must be strictly greater than ``low``
    integer: bool = False

    def describe(self) -> str:
        """``an integer in [0, 20]``, ``a finite number in (0, 1]``, ``an integer >= 1``."""
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.low_open else '['}{_fmt(self.low)}, {_fmt(self.high)}]"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {_fmt(self.low)}"
        if self.high is not None:
            return f"{kind} <= {_fmt(self.high)}"
        return kind

    def check(self, value: Any) -> None:
        """Raise ``ValueError("<name> must be <range>, got <value>")`` unless ``value`` is inside."""
        if value is None:
            return
        if self.integer:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value <= self.high
        if not ok:
            raise ValueError(f"{self.name} must be {self.describe()}, got {value!r}")

    def constraints(self) -> dict[str, Any]:
        """Keyword arguments for ``pydantic.Field`` that enforce (and publish) this range."""
        out: dict[str, Any] = {} if self.integer else {"allow_inf_nan": False}
        if self.low is not None:
            out["gt" if self.low_open else "ge"] = int(self.low) if self.integer else self.low
        if self.high is not None:
            out["le"] = int(self.high) if self.integer else self.high
        return out


def _fmt(bound: float) -> str:
    if isinstance(bound, int) and abs(bound) >= 2**31:
        return f"{'-' if bound < 0 else ''}2**{math.ceil(math.log2(abs(bound)))}" + (
            " - 1" if bound > 0 else ""
        )
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


TEMPERATURE = Range("temperature", 0.0, 2.0)
TOP_P = Range("top_p", 0.0, 1.0, low_open=True)
TOP_K = Range("top_k", -1, _INT32_MAX, integer=True)  # -1 and 0: no top-k
SEED = Range("seed", -(2**63), 2**63 - 1, integer=True)  # torch.Generator.manual_seed's signed 64-bit range
MAX_TOKENS = Range("max_tokens", 1, _INT32_MAX, integer=True)
MIN_TOKENS = Range("min_tokens", 0, _INT32_MAX, integer=True)
LOGPROBS = Range("logprobs", 0, 20, integer=True)  # OpenAI's top_logprobs cap
TOKEN_ID = Range("token id", 0, _INT32_MAX, integer=True)  # further bounded by the vocabulary at the engine

# Below this a temperature is greedy: dividing logits by it overflows to inf (vLLM uses the same cut-off).
GREEDY_TEMPERATURE = 1e-5
