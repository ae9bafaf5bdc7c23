"""Statistics for eval results: Wilson intervals, percentiles, effective context length, and paired tests.

Scores are per-sample values in [0, 1]. For binary tasks the Wilson interval is exact in its usual sense; for the
fractional ``string_match_all`` scores it is applied to the mean with n samples, which is conservative because a
fractional score varies less than a 0/1 one with the same mean. This module knows numbers, not tasks or files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

RULER_THRESHOLD = 85.6  # Llama-2-7B-chat's RULER score at 4K: RULER's bar for "effective"


def wilson(mean: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``mean`` observed over ``n`` samples; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    z = stats.norm.ppf(0.5 + confidence / 2)
    denominator = 1 + z * z / n
    centre = (mean + z * z / (2 * n)) / denominator
    half = z * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def percentiles(
    values: Sequence[float | None], points: Sequence[float] = (50, 90, 99)
) -> dict[str, float | None]:
    """``{"p50": ..., "p90": ...}`` over the non-missing values (None when there are none)."""
    data = np.array([v for v in values if v is not None], dtype=float)
    return {f"p{p:g}": (float(np.percentile(data, p)) if data.size else None) for p in points}


def effective_length(scores: Mapping[int, float], threshold: float = RULER_THRESHOLD) -> int | None:
    """The longest length up to which every tested length scores at least ``threshold`` (None: not even the first).

    Pass point estimates for RULER's definition, or interval lower bounds for the conservative one.
    """
    best = None
    for length in sorted(scores):
        if scores[length] < threshold:
            break
        best = length
    return best


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (b: only A correct, c: only B correct)."""
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(b, b + c, 0.5).pvalue)


def paired_bootstrap(
    diffs: Sequence[float], clusters: Sequence[str] | None = None, resamples: int = 10_000, seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:  # fmt: skip
    """Mean of paired differences and its percentile bootstrap interval: (mean, low, high).

    With ``clusters`` (e.g. the task of each pair) resampling is stratified: each cluster is resampled within
    itself and keeps its size, so the task mix of the estimate never changes.
    """
    values = np.asarray(diffs, dtype=float)
    if values.size == 0:
        return 0.0, 0.0, 0.0
    rng = np.random.default_rng(seed)
    groups = [np.arange(values.size)] if clusters is None else _groups(clusters)
    totals = np.zeros(resamples)
    for index in groups:
        chunk = max(
            1, 2_000_000 // index.size
        )  # bound memory: resample in slices of at most ~16 MB of indices
        for start in range(0, resamples, chunk):
            stop = min(start + chunk, resamples)
            picks = rng.integers(0, index.size, size=(stop - start, index.size))
            totals[start:stop] += values[index][picks].sum(axis=1)
    means = totals / values.size
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(values.mean()), float(low), float(high)


def _groups(clusters: Sequence[str]) -> list[np.ndarray]:
    labels = np.asarray(clusters)
    return [np.flatnonzero(labels == label) for label in dict.fromkeys(clusters)]
