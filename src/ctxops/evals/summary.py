"""Turn a run's records into ``summary.json``.

It holds per task × length scores with Wilson intervals, the depth × length
grid, latency percentiles per length, effective context length under both definitions, and warnings about what
the numbers leave out (samples without the target's token counts).

Scores are RULER's (mean per-sample score × 100). The per-length "all tasks" score pools every sample at that
length, which equals the mean over tasks when each task has the same number of samples; ``average`` names the tasks
it covers, and calls it RULER's average only when all 13 of RULER's tasks are in (an average over fewer tasks, QA
left out, is not comparable with RULER's tables). Every latency figure carries the concurrency it was measured under;
``latency_solo`` holds the samples sent one at a time (``--latency-samples``). Perturbed samples (``--perturb``) stay
out of every table above and go to ``robustness`` (:mod:`.robustness`). This module knows records and statistics,
not rendering.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ctxops.evals import robustness, stats
from ctxops.evals.ruler_data import RULER_13
from ctxops.evals.rundir import record_key

ALL = "all tasks"


def cell(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Score, Wilson interval (both × 100), counts and empty outputs of one group of records."""
    n = len(records)
    mean = sum(r["score"] for r in records) / n if n else 0.0
    low, high = stats.wilson(mean, n)
    return {
        "n": n,
        "score": 100 * mean,
        "ci_low": 100 * low,
        "ci_high": 100 * high,
        "correct": sum(bool(r["correct"]) for r in records),
        "nulls": sum(not (r.get("output") or "").strip() for r in records),
    }


def latency(records: list[dict[str, Any]], default_concurrency: int | None = None) -> dict[str, Any]:
    """TTFT, TPOT and end-to-end percentiles (seconds), mean token counts, and the concurrency they ran under.

    ``concurrency`` lists the distinct values the records ran under (older records carry none: the run's).
    """
    prompt = [r["prompt_tokens"] or r["input_tokens"] for r in records]
    output = [r["output_tokens"] for r in records if r.get("output_tokens") is not None]
    levels = {r.get("concurrency", default_concurrency) for r in records}
    return {
        "concurrency": sorted(c for c in levels if c is not None),
        "ttft_s": stats.percentiles([r.get("ttft_s") for r in records]),
        "tpot_s": stats.percentiles([r.get("tpot_s") for r in records]),
        "e2e_s": stats.percentiles([r.get("e2e_s") for r in records]),
        "mean_prompt_tokens": sum(prompt) / len(prompt) if prompt else None,
        "mean_output_tokens": sum(output) / len(output) if output else None,
        "cached_tokens": sum(r.get("cached_tokens") or 0 for r in records),
    }


def token_count_warnings(records: list[dict[str, Any]], run: dict[str, Any]) -> list[str]:
    """A warning when samples lack the target's own prompt or output token counts (an endpoint sent no usage)."""
    no_prompt = sum(r.get("prompt_tokens") is None for r in records)
    no_output = sum(r.get("output_tokens") is None for r in records)
    if not (no_prompt or no_output):
        return []
    endpoint = (run.get("target") or {}).get("kind") == "endpoint"
    source = "the server" if endpoint else "the target"
    prompt_effect = "prompt tokens fall back to the client-side count, input_tokens"
    output_effect = "mean output tokens and TPOT leave them out"
    if no_prompt == no_output:
        parts = [
            f"{no_prompt} of {len(records)} samples have no token counts from {source} ({prompt_effect}; {output_effect})"
        ]
    else:
        parts = [
            f"{count} of {len(records)} samples have no {kind} token count from {source} ({effect})"
            for count, kind, effect in (
                (no_prompt, "prompt", prompt_effect),
                (no_output, "output", output_effect),
            )
            if count
        ]
    fix = (
        "its responses carried no usage; use a server that reports usage when streaming "
        "(stream_options.include_usage: vLLM, SGLang, ctxops serve)"
        if endpoint
        else "the target reported no usage"
    )
    return ["; ".join(parts) + f": {fix}"]


def dedupe(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the first record of each key (a hand-merged file may repeat one)."""
    seen: dict[tuple, dict[str, Any]] = {}
    for record in records:
        seen.setdefault(record_key(record), record)
    return list(seen.values())


def average_label(tasks: list[str]) -> dict[str, Any]:
    """What the all-task average is over, and whether it is RULER's (all 13 of its tasks, nothing else)."""
    ruler = sorted(tasks) == sorted(RULER_13)
    label = (
        "average of RULER's 13 tasks" if ruler else f"average of {len(tasks)} task{'s' * (len(tasks) != 1)}"
    )
    missing = [t for t in RULER_13 if t not in tasks]
    return {"label": label, "tasks": list(tasks), "ruler": ruler, "missing_ruler_tasks": missing}


def summarize(
    records: Iterable[dict[str, Any]],
    run: dict[str, Any],
    threshold: float = stats.RULER_THRESHOLD,
    latency_records: Iterable[dict[str, Any]] = (),
) -> dict:
    """The summary.json content for ``records`` of the run described by ``run`` (its run.json).

    ``latency_records`` are the samples sent one at a time (latency.jsonl); they are not scored into the results.
    """
    everything = dedupe(records)
    records = [r for r in everything if not r.get("variant")]
    solo: dict[int, list] = defaultdict(list)
    for r in dedupe(latency_records):
        solo[r["length"]].append(r)
    by_cell: dict[tuple[str, int], list] = defaultdict(list)
    by_length: dict[int, list] = defaultdict(list)
    by_depth: dict[tuple[float, int], list] = defaultdict(list)
    for r in records:
        by_cell[(r["task"], r["length"])].append(r)
        by_length[r["length"]].append(r)
        if r.get("depth") is not None:
            by_depth[(round(r["depth"], 6), r["length"])].append(r)
    lengths = sorted(by_length)
    tasks = list(dict.fromkeys([*run.get("tasks", []), *sorted({r["task"] for r in records})]))
    tasks = [t for t in tasks if any((t, n) in by_cell for n in lengths)]
    overall = {n: cell(by_length[n]) for n in lengths}
    summary = {
        "warnings": token_count_warnings(records, run),
        "run": {
            k: run.get(k)
            for k in ("ctxops_version", "created", "updated", "status", "target", "tasks", "lengths")
        },
        "num_samples": len(records),
        "threshold": threshold,
        "lengths": lengths,
        "tasks": tasks,
        "cells": {t: {str(n): cell(by_cell[(t, n)]) for n in lengths if (t, n) in by_cell} for t in tasks},
        "overall": {str(n): overall[n] for n in lengths},
        "average": average_label(tasks),
        "depth_grid": [{"depth": d, "length": n, **cell(rs)} for (d, n), rs in sorted(by_depth.items())],
        "latency": {str(n): latency(by_length[n], run.get("concurrency")) for n in lengths},
        "latency_solo": {str(n): latency(solo[n], 1) for n in sorted(solo)},
        "effective_length": {
            "lower_bound": stats.effective_length({n: c["ci_low"] for n, c in overall.items()}, threshold),
            "point_estimate": stats.effective_length({n: c["score"] for n, c in overall.items()}, threshold),
            "definitions": {
                "lower_bound": f"longest length up to which every length's 95% Wilson lower bound is >= {threshold}",
                "point_estimate": f"RULER's: longest length up to which every length's score is >= {threshold}",
            },
        },
    }
    robust = robustness.summarize_robustness(everything, run, threshold)
    if robust:
        summary["robustness"] = robust
    return summary
