"""A/B verdict between two arms of a served model: one test per metric, a class per metric, one verdict.

Metrics and their tests, candidate against baseline over the request log since a time:

- ``ttft_s`` and ``e2e_s``: Mann-Whitney U (one-sided: the candidate is slower), effect = ratio of medians;
- ``error_rate`` (HTTP status >= 500) and ``finish_length_rate`` (answers cut at max_tokens): Fisher's exact test
  when a count is small, the two-proportion z-test otherwise (one-sided: the candidate's rate is higher);
- ``canary_quality``: the paired exact test of :mod:`ctxops.monitor.canary` on the two arms' same-seed canary runs
  (stored as models ``NAME@ARM``), per length, Benjamini-Hochberg-adjusted;
- ``feedback``: users' scores (``POST /v1/feedback``), Mann-Whitney U (one-sided: the candidate scores lower).

Repeated looks. Every request metric also gets an always-valid p-value (:mod:`ctxops.rollout.sequential`, on the
requests in time order; latencies on a log scale), and only that one can fail a metric, so looking after every
request does not raise the false-alarm rate above alpha. The fixed-sample p-value is reported beside it. A metric
is ``fail`` when its always-valid p <= alpha and its effect is beyond the allowed one in the bad direction,
``marginal`` when its effect is beyond the allowance but not (yet) significant, ``pass`` otherwise (a
significant difference inside the allowance passes: two processes never serve at exactly the same speed); a
canary regression fails at once (each canary run is one look of fixed size). The verdict is ``rollback`` when any metric fails, ``promote`` when every metric
passes and both arms have the minimum samples, else ``continue``. This module knows rows and tests, not HTTP.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import sqlalchemy as sa
from scipy import stats

from ctxops.monitor.canary import compare_runs
from ctxops.rollout.sequential import msprt_p_value
from ctxops.store import Store
from ctxops.store.requests import window_filter
from ctxops.store.schema import eval_runs, feedback, requests

_SMALL_COUNT = 5  # below this many events in a cell the exact test is used
_GENERATION = ("chat.completions", "completions")


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


class MetricClass(StrEnum):
    """How one metric came out."""

    PASS = "pass"
    MARGINAL = "marginal"
    FAIL = "fail"
    NODATA = "nodata"


class Verdict(StrEnum):
    """What to do with the candidate."""

    PROMOTE = "promote"
    CONTINUE = "continue"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    """Thresholds of the judge; every one is stated in the JSON it writes."""

    alpha: float = _opt(
        0.05, "false-alarm rate per metric, held under repeated looks (always-valid p-values)"
    )
    latency_ratio: float = _opt(
        1.25, "allowed candidate/baseline ratio of median latencies (1.25: 25% slower)"
    )
    error_increase: float = _opt(0.02, "allowed rise of the error rate (HTTP 5xx share, absolute)")
    finish_increase: float = _opt(0.05, "allowed rise of the share of answers cut at max_tokens (absolute)")
    feedback_drop: float = _opt(0.1, "allowed fall of the mean feedback score")
    min_requests: int = _opt(50, "requests per arm before a promote")
    min_canary_pairs: int = _opt(
        10, "same-seed canary samples answered by both arms before a promote (0: judge on traffic alone)"
    )

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not self.latency_ratio > 1:
            raise ValueError(
                f"latency_ratio must be > 1 (e.g. 1.25 allows 25% slower), got {self.latency_ratio}"
            )
        for name in ("error_increase", "finish_increase", "feedback_drop"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.min_requests < 1 or self.min_canary_pairs < 0:
            raise ValueError("min_requests must be >= 1 and min_canary_pairs >= 0")


@dataclass(slots=True)
class Metric:
    """One metric's test and class; ``baseline``/``candidate`` are the compared statistics."""

    name: str
    test: str
    baseline: float | None
    candidate: float | None
    p_value: float | None
    p_always_valid: float | None = None
    cls: MetricClass = MetricClass.NODATA
    reason: str = ""
    n: list[int] = field(default_factory=list)  # samples [baseline, candidate]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["class"] = out.pop("cls").value
        return out


def _classify(metric: Metric, beyond: bool, alpha: float, allowed: str) -> Metric:
    """fail: worse beyond the allowance, sequentially significant; marginal: beyond it, not (yet) significant."""
    significant = metric.p_always_valid is not None and metric.p_always_valid <= alpha
    if significant and beyond:
        metric.cls, metric.reason = MetricClass.FAIL, f"worse beyond {allowed} (always-valid p <= {alpha:g})"
    elif beyond:
        metric.cls, metric.reason = MetricClass.MARGINAL, f"beyond {allowed}, not yet significant"
    else:  # a difference inside the allowance, significant or not, is no reason to hold the candidate back
        metric.cls, metric.reason = MetricClass.PASS, f"within {allowed}"
    return metric


def _latency(name: str, x: np.ndarray, y: np.ndarray, config: AnalysisConfig) -> Metric:
    x, y = x[np.isfinite(x) & (x > 0)], y[np.isfinite(y) & (y > 0)]
    if x.size == 0 or y.size == 0:
        return Metric(name, "mann_whitney_u", None, None, None, reason="no data", n=[x.size, y.size])
    p = float(stats.mannwhitneyu(y, x, alternative="greater").pvalue)
    p_av = msprt_p_value(np.log(x), np.log(y), tau=math.log(config.latency_ratio))
    mx, my = float(np.median(x)), float(np.median(y))
    metric = Metric(name, "mann_whitney_u", mx, my, p, p_av, n=[x.size, y.size])
    return _classify(
        metric, my > mx * config.latency_ratio, config.alpha, f"x{config.latency_ratio:g} of the median"
    )


def _rate(name: str, x: np.ndarray, y: np.ndarray, allowed: float, alpha: float) -> Metric:
    if x.size == 0 or y.size == 0:
        return Metric(name, "two_proportion", None, None, None, reason="no data", n=[x.size, y.size])
    kx, ky = int(x.sum()), int(y.sum())
    rx, ry = kx / x.size, ky / y.size
    if min(kx, ky, x.size - kx, y.size - ky) < _SMALL_COUNT:
        test = "fisher_exact"
        p = float(stats.fisher_exact([[ky, y.size - ky], [kx, x.size - kx]], alternative="greater").pvalue)
    else:
        test = "two_proportion_z"
        pooled = (kx + ky) / (x.size + y.size)
        se = math.sqrt(pooled * (1 - pooled) * (1 / x.size + 1 / y.size))
        p = float(stats.norm.sf((ry - rx) / se)) if se > 0 else 1.0
    p_av = msprt_p_value(x, y, tau=allowed) if ry > rx else 1.0  # one-sided: only a rise can fail
    metric = Metric(name, test, rx, ry, p, p_av, n=[x.size, y.size])
    return _classify(metric, ry - rx > allowed, alpha, f"+{allowed:g}")


def _arm_rows(store: Store, model: str, arm: str, since: float) -> dict[str, np.ndarray]:
    """One arm's generation requests since ``since``, in arrival order, as arrays."""
    where = sa.and_(
        window_filter(since, math.inf, {"model": model, "arm": arm}), requests.c.endpoint.in_(_GENERATION)
    )
    columns = [requests.c[n] for n in ("request_id", "status", "finish_reason", "ttft_s", "e2e_s")]
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(*columns).where(where).order_by(requests.c.created_at)).all()
    ok = [r for r in rows if r.status < 400]
    return {
        "request_id": np.array([r.request_id for r in rows], dtype=object),
        "error": np.array([r.status >= 500 for r in rows], dtype=float),
        "cut": np.array([r.finish_reason == "length" for r in ok], dtype=float),
        "ttft_s": np.array([r.ttft_s for r in ok], dtype=float),  # None -> nan, dropped by the test
        "e2e_s": np.array([r.e2e_s for r in ok], dtype=float),
    }


def _latest_canary(store: Store, model: str, since: float) -> dict[str, bool] | None:
    query = (
        sa.select(eval_runs.c.summary)
        .where(eval_runs.c.model == model, eval_runs.c.kind == "canary", eval_runs.c.created_at >= since)
        .order_by(eval_runs.c.created_at.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return row.summary.get("outcomes") if row else None


def _quality(
    store: Store, model: str, baseline: str, candidate: str, since: float, config: AnalysisConfig
) -> Metric:
    base, cand = (_latest_canary(store, f"{model}@{arm}", since) for arm in (baseline, candidate))
    if not base or not cand:
        return Metric(
            "canary_quality", "paired_exact_mcnemar", None, None, None, reason="no canary runs for both arms"
        )
    lengths = compare_runs(base, cand, config.alpha)
    pairs = sum(c.n_pairs for c in lengths)
    rate = lambda k: k / pairs if pairs else None  # noqa: E731
    metric = Metric("canary_quality", "paired_exact_mcnemar", rate(sum(c.baseline_correct for c in lengths)),
                    rate(sum(c.current_correct for c in lengths)),
                    min((c.p_adjusted for c in lengths if c.p_adjusted is not None), default=None), n=[pairs, pairs])  # fmt: skip
    worse = [c for c in lengths if c.regression]
    if worse:
        metric.cls = MetricClass.FAIL
        metric.reason = "canary accuracy fell at " + ", ".join(
            f"{c.length} tokens ({c.baseline_correct}->{c.current_correct} of {c.n_pairs}, BH p={c.p_adjusted:.2g})"
            for c in worse
        )
    elif metric.candidate is not None and metric.baseline is not None and metric.candidate < metric.baseline:
        metric.cls, metric.reason = MetricClass.MARGINAL, "fewer canary samples right, not significant"
    else:
        metric.cls, metric.reason = MetricClass.PASS, "no canary regression"
    return metric


def _feedback(store: Store, ids: tuple[np.ndarray, np.ndarray], config: AnalysisConfig) -> Metric | None:
    with store.engine.connect() as conn:
        given = dict(conn.execute(sa.select(feedback.c.request_id, feedback.c.score)).all())
    scores = [np.array([given[r] for r in arm_ids if r in given], dtype=float) for arm_ids in ids]
    x, y = scores
    if x.size == 0 and y.size == 0:
        return None
    if x.size == 0 or y.size == 0:
        return Metric(
            "feedback",
            "mann_whitney_u",
            None,
            None,
            None,
            reason="feedback for one arm only",
            n=[x.size, y.size],
        )
    p = float(stats.mannwhitneyu(y, x, alternative="less").pvalue)
    p_av = msprt_p_value(-x, -y, tau=config.feedback_drop)
    metric = Metric(
        "feedback", "mann_whitney_u", float(x.mean()), float(y.mean()), p, p_av, n=[x.size, y.size]
    )
    return _classify(
        metric, x.mean() - y.mean() > config.feedback_drop, config.alpha, f"-{config.feedback_drop:g}"
    )


def analyze(store: Store, model: str, baseline: str, candidate: str, since: float = -math.inf,
            config: AnalysisConfig | None = None) -> dict[str, Any]:  # fmt: skip
    """The verdict and per-metric results (the JSON ``ctxops rollout analyze`` prints)."""
    config = config or AnalysisConfig()
    if baseline == candidate:
        raise ValueError("baseline and candidate must be two different arms")
    x, y = (_arm_rows(store, model, arm, since) for arm in (baseline, candidate))
    metrics = [
        _latency("ttft_s", x["ttft_s"], y["ttft_s"], config),
        _latency("e2e_s", x["e2e_s"], y["e2e_s"], config),
        _rate("error_rate", x["error"], y["error"], config.error_increase, config.alpha),
        _rate("finish_length_rate", x["cut"], y["cut"], config.finish_increase, config.alpha),
        _quality(store, model, baseline, candidate, since, config),
    ]
    if (scored := _feedback(store, (x["request_id"], y["request_id"]), config)) is not None:
        metrics.append(scored)
    samples = {"baseline": int(x["error"].size), "candidate": int(y["error"].size),
               "canary_pairs": metrics[4].n[0] if metrics[4].n else 0}  # fmt: skip
    failed = [m for m in metrics if m.cls is MetricClass.FAIL]
    reasons = [f"{m.name}: {m.reason}" for m in failed]
    enough = (
        min(samples["baseline"], samples["candidate"]) >= config.min_requests
        and samples["canary_pairs"] >= config.min_canary_pairs  # 0 judges on traffic alone
    )
    if failed:
        verdict = Verdict.ROLLBACK
    elif enough and all(m.cls in (MetricClass.PASS, MetricClass.NODATA) for m in metrics):
        verdict, reasons = Verdict.PROMOTE, ["every metric passes with the minimum samples"]
    else:
        verdict = Verdict.CONTINUE
        reasons = [f"{m.name}: {m.reason}" for m in metrics if m.cls is MetricClass.MARGINAL]
        if not enough:
            reasons.append(
                f"need {config.min_requests} requests per arm and {config.min_canary_pairs} canary pairs"
            )
    return {
        "verdict": verdict.value, "reasons": reasons, "model": model, "baseline": baseline, "candidate": candidate,
        "samples": samples, "metrics": [m.to_dict() for m in metrics],
        "sequential": {"method": "mSPRT always-valid p-values (normal mixture, tau = the allowed effect)",
                       "alpha": config.alpha},
        "thresholds": asdict(config),
    }  # fmt: skip
