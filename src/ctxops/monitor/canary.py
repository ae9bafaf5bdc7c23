"""Canaries: fixed-seed eval samples sent to a live endpoint again and again, each run paired with a baseline.

A canary run is an eval run (the eval harness does the work: prompts, requests, scoring; its run directory holds
samples.jsonl and report.html) recorded in the store as kind ``canary`` with every sample's outcome. Because the
seed is fixed, every run asks the same questions, so runs pair sample by sample: at each length, the samples the
baseline answered and the current run missed (``worse``) against the reverse (``better``) give McNemar's exact
test (one-sided binomial test of worse among the discordant pairs, p = 1/2 under no change). p-values are
Benjamini-Hochberg-adjusted across lengths; a length whose adjusted p is below ``alpha`` with a lower score is a
regression. The baseline is the model's first canary run in the store, or a pinned run (a canary or eval run
directory). This module knows samples and tests, not HTTP (the eval target does that).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scipy import stats

from ctxops.evals.config import EvalConfig
from ctxops.evals.report import write_reports
from ctxops.evals.rundir import RunDir, record_key
from ctxops.evals.runner import run_eval
from ctxops.evals.targets import Target
from ctxops.store import Store, StoreError
from ctxops.store.eval_runs import first_run, get_run, save_run


def outcomes(records: list[dict[str, Any]]) -> dict[str, bool]:
    """``task|length|depth|seed`` -> answered correctly (a later record of the same sample wins)."""
    return {"|".join(str(part) for part in record_key(r)): bool(r["correct"]) for r in records}


@dataclass(slots=True)
class LengthComparison:
    """Current run vs baseline at one length, over the samples both ran."""

    length: int
    n_pairs: int
    baseline_correct: int
    current_correct: int
    worse: int  # baseline right, current wrong
    better: int  # baseline wrong, current right
    p_value: float  # exact McNemar, one-sided (a drop)
    p_adjusted: float | None = None
    regression: bool = False


def compare_runs(baseline: dict[str, bool], current: dict[str, bool], alpha: float) -> list[LengthComparison]:
    """One comparison per length over the paired samples; regressions decided under one FDR across lengths."""
    by_length: dict[int, list[tuple[bool, bool]]] = {}
    for key in baseline.keys() & current.keys():
        by_length.setdefault(int(key.split("|")[1]), []).append((baseline[key], current[key]))
    out = []
    for length, pairs in sorted(by_length.items()):
        worse = sum(b and not c for b, c in pairs)
        better = sum(c and not b for b, c in pairs)
        p = (
            stats.binomtest(worse, worse + better, 0.5, alternative="greater").pvalue
            if worse + better
            else 1.0
        )
        out.append(LengthComparison(length, len(pairs), sum(b for b, _ in pairs), sum(c for _, c in pairs),
                                    worse, better, float(p)))  # fmt: skip
    if out:
        adjusted = stats.false_discovery_control([c.p_value for c in out], method="bh")
        for comparison, p_adjusted in zip(out, adjusted, strict=True):
            comparison.p_adjusted = float(p_adjusted)
            comparison.regression = bool(p_adjusted < alpha and comparison.worse > comparison.better)
    return out


def run_canary(
    store: Store, target: Target, config: EvalConfig, model: str, out_root: Path
) -> dict[str, Any]:
    """One canary run into a new directory under ``out_root``; recorded in the store and returned."""
    now = time.time()
    run_dir = RunDir(out_root / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)))
    outcome = asyncio.run(run_eval(config, target, run_dir, show_progress=False))
    summary = write_reports(run_dir)
    effective = summary.get("effective_length") or {}
    row = {
        "run_id": str(run_dir.path.resolve()),
        "kind": "canary",
        "model": model,
        "created_at": now,
        "effective_length": effective.get("lower_bound") or effective.get("point_estimate"),
        "report_path": str(run_dir.file("report.html")),
        "summary": {
            "outcomes": outcomes(list(run_dir.records())),
            "failed": outcome.failed,
            "errors": outcome.errors[:5],
            "overall": summary.get("overall"),
        },  # fmt: skip
    }
    save_run(store, row)
    return row


def baseline_for(store: Store, model: str, pinned: str | None) -> tuple[str, dict[str, bool]] | None:
    """(run id, outcomes) of the pinned run (stored, or a run directory on disk) or the model's first canary."""
    if pinned is None:
        first = first_run(store, model)
        return (first["run_id"], first["summary"]["outcomes"]) if first else None
    stored = get_run(store, str(Path(pinned).resolve())) or get_run(store, pinned)
    if stored and "outcomes" in stored["summary"]:
        return stored["run_id"], stored["summary"]["outcomes"]
    try:
        found = outcomes(list(RunDir(pinned).records()))
    except (OSError, ValueError) as exc:
        found, reason = {}, str(exc)
    else:
        reason = "no samples.jsonl records"
    if not found:
        raise StoreError(
            f"baseline {pinned}: not a canary run in the store nor an eval run directory ({reason})"
        )
    return pinned, found


def describe(comparisons: list[LengthComparison]) -> list[dict[str, Any]]:
    """JSON form of the comparisons."""
    return [asdict(c) for c in comparisons]
