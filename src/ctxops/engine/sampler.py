"""Turns logits into next tokens: greedy, temperature, top-k, top-p, per-request seeds, min_tokens, logprobs.

Each seeded request owns a ``torch.Generator``, so its samples do not depend on what else is in the batch.
Logprobs are taken from the raw distribution (before temperature and truncation), as vLLM reports them by default.
The sampler knows logits and sampling parameters; it does not know text or the cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ctxops.engine.sampling_params import SamplingParams


@dataclass(slots=True)
class SampleResult:
    """The token chosen for one sequence, and its logprob info when asked."""

    token_id: int
    logprob: float | None = None  # of the chosen token
    rank: int | None = None
    top_logprobs: list[tuple[int, float]] | None = None  # (token id, logprob), best first


@dataclass(slots=True)
class SampleFailure:
    """Sampling one row raised: that request fails, the other rows of the batch keep their tokens."""

    error: BaseException


def _truncate(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask everything outside the top-k and the top-p nucleus with -inf. (V,) in, (V,) out."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the mass before it already reaches top_p; the most likely token always stays, even when
        # top_p is below float32's smallest value (1e-300 rounds to 0, which would drop every token)
        drop = probs.cumsum(-1) - probs >= top_p
        drop[0] = False
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    return logits


class Sampler:
    """Samples one token per row of a (N, vocab) fp32 logits tensor."""

    def __init__(self, seed: int) -> None:
        self._default = torch.Generator().manual_seed(seed)
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, request_id: str, params: SamplingParams) -> torch.Generator:
        if request_id not in self._generators:
            seed = params.seed
            if seed is None:
                seed = int(torch.randint(0, 2**62, (), generator=self._default))
            self._generators[request_id] = torch.Generator().manual_seed(seed)
        return self._generators[request_id]

    def release(self, request_id: str) -> None:
        self._generators.pop(request_id, None)

    def sample(
        self,
        logits: torch.Tensor,  # (N, vocab) fp32
        request_ids: list[str],
        params: list[SamplingParams],
        banned: list[list[int]],  # per row: token ids not allowed yet (eos under min_tokens)
    ) -> list[SampleResult | SampleFailure]:
        for row, ids in enumerate(banned):
            if ids:
                logits[row, ids] = float("-inf")
        greedy = logits.argmax(-1).tolist()
        want_logprobs = any(p.logprobs is not None for p in params)
        logprobs = logits.log_softmax(-1) if want_logprobs else None
        results: list[SampleResult | SampleFailure] = []
        for row, (rid, p) in enumerate(zip(request_ids, params, strict=True)):
            try:  # one row's failure is its request's alone (rerunning the batch would re-advance the generators)
                token = greedy[row] if p.is_greedy else self._sample_row(logits[row], rid, p)
                result = SampleResult(token)
                if logprobs is not None and p.logprobs is not None:
                    self._fill_logprobs(result, logprobs[row], p.logprobs)
            except Exception as exc:
                results.append(SampleFailure(exc))
                continue
            results.append(result)
        return results

    def _sample_row(self, logits: torch.Tensor, request_id: str, p: SamplingParams) -> int:
        scaled = _truncate(logits / p.temperature, p.top_k, p.top_p)
        probs = scaled.softmax(-1)
        # a distribution that overflowed has lost its mass: take the mode
        if not bool(torch.isfinite(probs).all()):
            return int(logits.argmax())
        return int(torch.multinomial(probs, 1, generator=self.generator(request_id, p)))

    @staticmethod
    def _fill_logprobs(result: SampleResult, row: torch.Tensor, k: int) -> None:
        chosen = row[result.token_id]
        result.logprob = float(chosen)
        result.rank = int((row > chosen).sum()) + 1
        if k:
            top = torch.topk(row, k)
            result.top_logprobs = list(zip(top.indices.tolist(), top.values.tolist(), strict=True))
        else:
            result.top_logprobs = []
