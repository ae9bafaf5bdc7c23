"""Drift between two windows of the request log: one test per metric, Benjamini-Hochberg across them all.

Numeric metrics (prompt and completion tokens, cached share, queue time, TTFT, time per output token, end-to-end
latency) are tested with the two-sample Kolmogorov-Smirnov test, and their effect size is the Wasserstein distance
divided by the reference's standard deviation (Evidently's normed Wasserstein). Categorical metrics (finish reason,
HTTP status, error code, endpoint) are tested with chi-square on the 2 x k table, and their effect size is the
Jensen-Shannon distance (base 2, in [0, 1]). A metric drifts only when its Benjamini-Hochberg-adjusted p-value is
below ``alpha`` (1%) AND its effect size reaches the threshold (0.1 for both, Evidently's defaults for large samples):
on a large log a trivial difference is significant, but it is not drift. A metric with fewer than ``min_rows``
values on either side is "insufficient data": no test, no verdict. This module knows arrays and tests; the store
gives it the rows.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from ctxops.monitor.windows import Window
from ctxops.store import Store
from ctxops.store.requests import count_values, distinct_values, read_floats, window_filter

NUMERIC = ("prompt_tokens", "completion_tokens", "cached_share", "queue_time_s", "ttft_s", "tpot_s", "e2e_s")
CATEGORICAL = ("finish_reason", "status", "error_code", "endpoint")
_STORED = ("prompt_tokens", "completion_tokens", "cached_tokens", "queue_time_s", "ttft_s", "e2e_s")
INSUFFICIENT = "insufficient data"


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """How drift is decided (defaults: Evidently's effect thresholds, a 1% false discovery rate)."""

    # 1%, not 5%: a monitor that checks every few minutes must rarely cry wolf (bench/monitor_drift.py, 200
    # stationary window pairs of 500 requests: 5% raised an alarm on 4.5-5% of them, 1% on 0.5-1%)
    alpha: float = _opt(0.01, "false discovery rate over all metrics (Benjamini-Hochberg)")
    numeric_effect: float = _opt(0.1, "normed Wasserstein distance a numeric metric must reach to drift")
    categorical_effect: float = _opt(0.1, "Jensen-Shannon distance a categorical metric must reach to drift")
    min_rows: int = _opt(50, "values needed in each window before a metric is tested")
    beyond_threshold: float = _opt(
        0.05, "alert when this share of prompts exceeds the model's effective length (95% lower bound)"
    )

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not (self.numeric_effect >= 0 and self.categorical_effect >= 0):
            raise ValueError("numeric_effect and categorical_effect must be >= 0")
        if not math.isfinite(self.numeric_effect) or not 0 <= self.categorical_effect <= 1:
            raise ValueError("numeric_effect must be finite and categorical_effect in [0, 1]")
        if self.min_rows < 2:
            raise ValueError(f"min_rows must be >= 2, got {self.min_rows}")
        if not 0 <= self.beyond_threshold < 1:
            raise ValueError(f"beyond_threshold must be in [0, 1), got {self.beyond_threshold}")


@dataclass(slots=True)
class MetricDrift:
    """One metric's comparison (one row of the JSON ``metrics`` list)."""

    name: str
    kind: str  # numeric | categorical
    test: str  # ks | chi2 | the reason nothing was tested
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    effect: float | None  # normed Wasserstein | Jensen-Shannon distance
    drift: bool | None  # None: insufficient data
    n_reference: int
    n_current: int
    group: str | None = None  # the model or upstream, with --by
    effect_measure: str = field(default="")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.group is None:
            out.pop("group")
        return out


def derive_numeric(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Numeric metrics from stored columns, NaN (NULL, undefined) dropped per metric."""
    prompt, completion = columns["prompt_tokens"], columns["completion_tokens"]
    with np.errstate(divide="ignore", invalid="ignore"):
        cached_share = np.where(prompt > 0, columns["cached_tokens"] / prompt, np.nan)
        tpot = np.where(completion > 1, (columns["e2e_s"] - columns["ttft_s"]) / (completion - 1), np.nan)
    values = {**columns, "cached_share": cached_share, "tpot_s": tpot}
    return {name: values[name][~np.isnan(values[name])] for name in NUMERIC}


def compare_numeric(
    name: str, reference: np.ndarray, current: np.ndarray, config: DriftConfig
) -> MetricDrift:
    """KS test and normed Wasserstein distance (drift is decided later, after the p-values are adjusted)."""
    result = MetricDrift(name, "numeric", "ks", None, None, None, None, None, len(reference), len(current))
    result.effect_measure = "wasserstein / std(reference)"
    if min(len(reference), len(current)) < config.min_rows:
        result.test = INSUFFICIENT
        return result
    reference, current = (
        np.sort(reference),
        np.sort(current),
    )  # sorted input: scipy's own sorts are ~3x faster
    ks = stats.ks_2samp(reference, current)
    distance = stats.wasserstein_distance(reference, current)
    spread = float(np.std(reference))
    result.statistic, result.p_value = float(ks.statistic), float(ks.pvalue)
    result.effect = distance / spread if spread > 0 else (0.0 if distance == 0 else math.inf)
    return result


def compare_categorical(
    name: str, reference: dict[str, int], current: dict[str, int], config: DriftConfig
) -> MetricDrift:
    """Chi-square test on the 2 x k table and Jensen-Shannon distance of the two distributions."""
    n_ref, n_cur = sum(reference.values()), sum(current.values())
    result = MetricDrift(name, "categorical", "chi2", None, None, None, None, None, n_ref, n_cur)
    result.effect_measure = "jensen-shannon distance"
    if min(n_ref, n_cur) < config.min_rows:
        result.test = INSUFFICIENT
        return result
    categories = sorted(set(reference) | set(current))
    table = np.array([[reference.get(c, 0) for c in categories], [current.get(c, 0) for c in categories]])
    if len(categories) < 2:  # one value on both sides: nothing to test, nothing changed
        result.statistic, result.p_value, result.effect = 0.0, 1.0, 0.0
        return result
    chi2 = stats.chi2_contingency(table, correction=False)
    result.statistic, result.p_value = float(chi2.statistic), float(chi2.pvalue)
    result.effect = float(jensenshannon(table[0] / n_ref, table[1] / n_cur, base=2))
    return result


def decide(results: list[MetricDrift], config: DriftConfig) -> None:
    """Benjamini-Hochberg across every tested metric, then the effect-size threshold."""
    tested = [r for r in results if r.p_value is not None]
    if not tested:
        return
    adjusted = stats.false_discovery_control([r.p_value for r in tested], method="bh")
    for result, p_adjusted in zip(tested, adjusted, strict=True):
        threshold = config.numeric_effect if result.kind == "numeric" else config.categorical_effect
        result.p_adjusted = float(p_adjusted)
        result.drift = bool(p_adjusted < config.alpha and (result.effect or 0.0) >= threshold)


def compare_windows(
    store: Store, reference: Window, current: Window, config: DriftConfig, filters: dict[str, str]
) -> list[MetricDrift]:
    """Every metric between the two windows among rows matching ``filters`` (undecided: see :func:`decide`).

    Four reads (numbers and category counts, per window) run on their own connections at once: the database
    does most of the work outside the GIL, so a second core halves the wait on a large log.
    """
    wheres = [window_filter(w.start, w.end, filters) for w in (reference, current)]
    with ThreadPoolExecutor(4) as pool:
        numbers = [pool.submit(read_floats, store, _STORED, where) for where in wheres]
        counts = [pool.submit(count_values, store, CATEGORICAL, where) for where in wheres]
        (ref, cur), (ref_counts, cur_counts) = [f.result() for f in numbers], [f.result() for f in counts]
    ref_numeric, cur_numeric = derive_numeric(ref), derive_numeric(cur)
    results = [compare_numeric(name, ref_numeric[name], cur_numeric[name], config) for name in NUMERIC]
    for name in CATEGORICAL:
        results.append(compare_categorical(name, ref_counts[name], cur_counts[name], config))
    return results


def detect_drift(
    store: Store,
    reference: Window,
    current: Window,
    config: DriftConfig,
    model: str | None = None,
    by: str | None = None,
) -> list[MetricDrift]:
    """All metrics (per ``by`` group: ``model`` or ``upstream``), decided together under one FDR."""
    base = {"model": model} if model else {}
    if by is None:
        results = compare_windows(store, reference, current, config, base)
    else:
        span = window_filter(min(reference.start, current.start), max(reference.end, current.end), base)
        results = []
        for group in distinct_values(store, by, span):
            group_results = compare_windows(store, reference, current, config, {**base, by: group})
            for r in group_results:
                r.group = group
            results += group_results
    decide(results, config)
    return results
