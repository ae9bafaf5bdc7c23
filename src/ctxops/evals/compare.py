"""``ctxops compare``: is run B worse or better than run A on the same items, and is the difference real?

Samples are paired by (task, length, depth, seed). Two tests, overall and per length: the exact McNemar test on
correct/incorrect (``scipy.stats.binomtest`` on the discordant pairs) and a paired bootstrap of the mean score
difference (B - A), resampled within each task. A difference is significant when McNemar's p < alpha or the
bootstrap interval excludes zero; its sign makes it a regression or an improvement. Also reports latency deltas,
the settings the two run.json files record differently (from :mod:`.provenance`), and lines of samples.jsonl that
hold no record. Perturbed samples (``--perturb``) are left out of those tests and compared as brittleness instead
(:func:`.robustness.brittleness_change`): a variant that costs B significantly more than it costs A is a
brittleness regression. This module knows records and statistics, not how runs were produced.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from ctxops.evals import robustness, stats
from ctxops.evals.provenance import setting_differences
from ctxops.evals.rundir import RunDir, RunDirError, record_key
from ctxops.evals.summary import dedupe


class Verdict(StrEnum):
    """The outcome of a comparison."""

    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    NO_CHANGE = "no significant change"


@dataclass(frozen=True)
class PairedResult:
    """Paired statistics for one group of items (all, or one length)."""

    n: int
    score_a: float  # × 100
    score_b: float
    delta: float  # B - A, × 100
    delta_low: float  # bootstrap interval of delta
    delta_high: float
    only_a_correct: int  # McNemar's b
    only_b_correct: int  # McNemar's c
    mcnemar_p: float
    verdict: Verdict


def paired(pairs: list[tuple[dict, dict]], alpha: float, resamples: int, seed: int) -> PairedResult:
    """Compare the A and B records of ``pairs``."""
    diffs = [b["score"] - a["score"] for a, b in pairs]
    clusters = [a["task"] for a, _ in pairs]
    mean, low, high = stats.paired_bootstrap(
        diffs, clusters, resamples=resamples, seed=seed, confidence=1 - alpha
    )
    only_a = sum(bool(a["correct"]) and not b["correct"] for a, b in pairs)
    only_b = sum(bool(b["correct"]) and not a["correct"] for a, b in pairs)
    p = stats.mcnemar_exact(only_a, only_b)
    significant = p < alpha or low > 0 or high < 0
    direction = mean if mean != 0 else only_b - only_a
    verdict = Verdict.NO_CHANGE
    if significant and direction < 0:
        verdict = Verdict.REGRESSION
    elif significant and direction > 0:
        verdict = Verdict.IMPROVEMENT
    n = len(pairs)
    return PairedResult(
        n=n,
        score_a=100 * sum(a["score"] for a, _ in pairs) / n,
        score_b=100 * sum(b["score"] for _, b in pairs) / n,
        delta=100 * mean, delta_low=100 * low, delta_high=100 * high,
        only_a_correct=only_a, only_b_correct=only_b, mcnemar_p=p, verdict=verdict,
    )  # fmt: skip


def _latency(pairs: list[tuple[dict, dict]]) -> dict[str, Any]:
    out = {}
    for metric in ("ttft_s", "e2e_s", "tpot_s"):
        a = stats.percentiles([x[metric] for x, _ in pairs], (50,))["p50"]
        b = stats.percentiles([y[metric] for _, y in pairs], (50,))["p50"]
        out[metric] = {"a_p50": a, "b_p50": b, "ratio": (b / a) if a and b else None}
    return out


def compare_runs(
    run_a: RunDir, run_b: RunDir, alpha: float = 0.05, resamples: int = 10_000, seed: int = 0
) -> dict[str, Any]:
    """Pair the two runs' samples and test them overall and per length."""
    samples_a, samples_b = run_a.read_samples(), run_b.read_samples()
    records_a, records_b = dedupe(samples_a.records), dedupe(samples_b.records)
    a = {record_key(r): r for r in records_a if not r.get("variant")}
    b = {record_key(r): r for r in records_b if not r.get("variant")}
    keys = sorted(a.keys() & b.keys(), key=lambda k: (k[0], k[1], -1 if k[2] is None else k[2], k[3]))
    if not keys:
        raise RunDirError(
            f"{run_a.path} and {run_b.path} share no samples (paired by task, length, depth and seed); "
            "compare runs made with the same --tasks, --lengths, --depths and --seed"
        )
    mismatched = sum(a[k]["prompt_hash"] != b[k]["prompt_hash"] for k in keys)
    pairs = [(a[k], b[k]) for k in keys]
    by_length: dict[int, list] = defaultdict(list)
    for pair in pairs:
        by_length[pair[0]["length"]].append(pair)
    overall = paired(pairs, alpha, resamples, seed)
    brittleness = robustness.brittleness_change(records_a, records_b, alpha, resamples, seed)
    return {
        "a": str(run_a.path),
        "b": str(run_b.path),
        "alpha": alpha,
        "paired": len(keys),
        "only_in_a": len(a) - len(keys),
        "only_in_b": len(b) - len(keys),
        "different_prompts": mismatched,
        "setting_differences": setting_differences(run_a.read_run(), run_b.read_run()),
        "unreadable_lines": {
            "a": [line.number for line in samples_a.bad_lines],
            "b": [line.number for line in samples_b.bad_lines],
        },
        "overall": _plain(overall),
        "per_length": {
            str(n): _plain(paired(ps, alpha, resamples, seed)) for n, ps in sorted(by_length.items())
        },
        "latency": {str(n): _latency(ps) for n, ps in sorted(by_length.items())},
        "verdict": overall.verdict.value,
        "brittleness": brittleness,
        "brittleness_regression": bool(brittleness and brittleness["regressions"]),
    }


def _plain(result: PairedResult) -> dict[str, Any]:
    return {**asdict(result), "verdict": result.verdict.value}
