"""Always-valid p-values: the mixture sequential probability ratio test (mSPRT) with a normal mixture.

For two independent streams X (baseline) and Y (candidate) observed n at a time, with d_n the difference of their
means and V = var(X) + var(Y), the mixture likelihood ratio against "no difference" under a N(0, tau^2) prior on
the true difference is ``Lambda_n = sqrt(V / (V + n tau^2)) * exp(n^2 tau^2 d_n^2 / (2 V (V + n tau^2)))``, and
``p_n = min(p_{n-1}, 1 / Lambda_n)`` is a p-value that stays valid however often it is looked at: stopping at the
first n where p_n <= alpha keeps the false-alarm rate at alpha (Johari, Pekelis and Walsh, "Always Valid
Inference"). Here the stream is the time order of the requests, so the running minimum is taken over every prefix
of the data, which is what any sequence of looks would have seen. ``tau`` is the size of effect worth detecting,
in the metric's own unit. This module knows arrays, not requests or arms.
"""

from __future__ import annotations

import numpy as np

MIN_PREFIX = 10  # pairs before the variance estimate is trusted (earlier prefixes are skipped)


def msprt_p_value(baseline: np.ndarray, candidate: np.ndarray, tau: float) -> float:
    """The always-valid p-value of "the means differ" after every prefix of the paired-up streams (1.0: too few)."""
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    n_max = min(baseline.size, candidate.size)
    if n_max < MIN_PREFIX:
        return 1.0
    x, y = baseline[:n_max].astype(float), candidate[:n_max].astype(float)
    n = np.arange(1, n_max + 1, dtype=float)
    mean_x, mean_y = np.cumsum(x) / n, np.cumsum(y) / n
    var_x = np.maximum(np.cumsum(x * x) / n - mean_x**2, 0.0)
    var_y = np.maximum(np.cumsum(y * y) / n - mean_y**2, 0.0)
    v = var_x + var_y
    d = mean_y - mean_x
    valid = (n >= MIN_PREFIX) & (v > 0)
    if not valid.any():  # no spread at all: identical constant streams, or a constant shift
        return 1.0 if np.all(d == 0) else 0.0
    n, v, d = n[valid], v[valid], d[valid]
    t2 = tau * tau
    log_lambda = 0.5 * np.log(v / (v + n * t2)) + (n * n * t2 * d * d) / (2 * v * (v + n * t2))
    return float(min(1.0, np.exp(-log_lambda.max())))
