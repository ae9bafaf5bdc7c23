"""Synthetic request-log traffic for the monitor benchmarks: one window of rows as columns or as store rows.

Prompt lengths are lognormal (median ``prompt_median``, log-spread ``sigma``); TTFT grows with the prompt (prefill)
times lognormal noise, scaled by ``ttft_factor``; completions are 16-512 tokens at 25 ms each; 1% of requests fail
(500 engine_failed), 20% stop at max_tokens, 10% use the completions endpoint.
"""

from __future__ import annotations

import numpy as np


def window(n: int, rng: np.random.Generator, sigma: float = 0.5, prompt_median: float = 4000.0,
           ttft_factor: float = 1.0) -> dict[str, np.ndarray]:  # fmt: skip
    prompt = np.maximum(1, rng.lognormal(np.log(prompt_median), sigma, n)).astype(int)
    ttft = ttft_factor * (0.05 + prompt / 20_000) * rng.lognormal(0.0, 0.3, n)
    completion = rng.integers(16, 513, n)
    failed = rng.random(n) < 0.01
    return {
        "prompt_tokens": prompt.astype(float),
        "completion_tokens": completion.astype(float),
        "cached_tokens": np.floor(prompt * rng.beta(1, 4, n)),
        "queue_time_s": rng.exponential(0.02, n),
        "ttft_s": ttft,
        "e2e_s": ttft + 0.025 * completion * rng.lognormal(0.0, 0.1, n),
        "status": np.where(failed, 500, 200),
        "error_code": np.where(failed, "engine_failed", "none"),
        "finish_reason": np.where(failed, "error", np.where(rng.random(n) < 0.2, "length", "stop")),
        "endpoint": np.where(rng.random(n) < 0.1, "completions", "chat.completions"),
    }


def counts(values: np.ndarray) -> dict[str, int]:
    keys, numbers = np.unique(values.astype(str), return_counts=True)
    return {str(k): int(c) for k, c in zip(keys, numbers, strict=True)}


def rows(columns: dict[str, np.ndarray], start: float, span_s: float, prefix: str) -> list[dict]:
    n = len(columns["prompt_tokens"])
    out = []
    for i in range(n):
        row = {name: values[i].item() for name, values in columns.items()}
        row["error_code"] = None if row["error_code"] == "none" else row["error_code"]
        out.append({**row, "request_id": f"{prefix}{i}", "created_at": start + span_s * i / n, "model": "m"})
    return out
