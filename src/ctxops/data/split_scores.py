"""An eval run's scores split into clean and dirty items by a contamination check, as the GPT-3 paper reports them.

Items are matched by id (``task/length/depth/seed``, then ``/variant`` for a record of ``eval --perturb``,
:func:`ctxops.data.items.item_id`) between the run's ``samples.jsonl`` and the check's ``findings.jsonl``. Per task and overall: each group's mean score with its 95%
Wilson interval (as the eval report computes them), the difference dirty minus clean with a 95% percentile
bootstrap interval (each group resampled on its own), and the two-sided Mann-Whitney U p-value. The result is
written to ``RUN/contamination_split.json``. This module knows records and findings, not corpora.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ctxops.data.contamination_report import FINDINGS_FILE
from ctxops.data.items import item_id
from ctxops.evals.rundir import RunDir
from ctxops.evals.stats import wilson

SPLIT_FILE = "contamination_split.json"
RUN_CONTAMINATION_DIR = (
    "contamination"  # RUN/contamination: the check `ctxops eval --contamination-corpus` runs
)
_RESAMPLES = 10_000


class SplitError(ValueError):
    """The contamination directory cannot be read, or names no item of the run."""


def read_dirty_ids(directory: str | Path) -> set[str]:
    """The ids of the dirty items in a ``ctxops data contamination`` output directory."""
    path = Path(directory) / FINDINGS_FILE
    if not path.is_file():
        raise SplitError(f"{path}: not found; pass the --out directory of `ctxops data contamination`")
    try:
        return {json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SplitError(f"{path}: not a findings file ({exc})") from exc


def _group(scores: list[float]) -> dict[str, Any]:
    n = len(scores)
    mean = float(np.mean(scores)) if n else None
    low, high = wilson(mean or 0.0, n)
    return {
        "n": n,
        "score": None if mean is None else 100 * mean,
        "ci95": [100 * low, 100 * high] if n else None,
    }


def _difference(clean: list[float], dirty: list[float], seed: int = 0) -> dict[str, Any]:
    if not clean or not dirty:
        return {"dirty_minus_clean": None, "ci95": None, "mann_whitney_p": None}
    rng = np.random.default_rng(seed)
    a, b = np.asarray(clean), np.asarray(dirty)
    means_a = a[rng.integers(0, len(a), (_RESAMPLES, len(a)))].mean(axis=1)
    means_b = b[rng.integers(0, len(b), (_RESAMPLES, len(b)))].mean(axis=1)
    low, high = np.quantile(means_b - means_a, [0.025, 0.975])
    p = 1.0 if np.all(a == a[0]) and np.all(b == a[0]) else float(stats.mannwhitneyu(b, a).pvalue)
    return {
        "dirty_minus_clean": 100 * float(b.mean() - a.mean()),
        "ci95": [100 * low, 100 * high],
        "mann_whitney_p": p,
    }


def split_scores(run_dir: RunDir, contamination_dir: str | Path) -> dict[str, Any]:
    """Clean and dirty scores per task and overall; writes ``contamination_split.json`` into the run."""
    dirty_ids = read_dirty_ids(contamination_dir)
    groups: dict[str, dict[str, list[float]]] = {}
    matched = 0
    for record in run_dir.records():
        # the perturbation variant (``eval --perturb``) is part of the id: perturbed records of one item differ
        key = item_id(
            record["task"], record["length"], record.get("depth"), record["seed"], record.get("variant") or ""
        )
        is_dirty = key in dirty_ids
        matched += is_dirty
        for task in (record["task"], "all"):
            groups.setdefault(task, {"clean": [], "dirty": []})["dirty" if is_dirty else "clean"].append(
                float(record["score"])
            )
    groups["all"] = groups.pop("all", {"clean": [], "dirty": []})  # the overall row last
    if dirty_ids and not matched:
        raise SplitError(
            f"none of the {len(dirty_ids)} dirty ids in {contamination_dir} is an item of {run_dir.path}; was the "
            "check run on this run's items (--eval RUN or the same task spec)?"
        )
    result = {
        "contamination": str(contamination_dir),
        "tests": "Wilson 95% interval per group; dirty - clean: percentile bootstrap 95% interval, Mann-Whitney U",
        "tasks": {
            task: {
                "clean": _group(g["clean"]),
                "dirty": _group(g["dirty"]),
                **_difference(g["clean"], g["dirty"]),
            }
            for task, g in groups.items()
        },
    }
    run_dir.write_json(SPLIT_FILE, result)
    return result


def format_split(result: dict[str, Any]) -> list[str]:
    """Terminal lines: per task, clean and dirty scores with intervals and the difference."""

    def cell(group: dict[str, Any]) -> str:
        if not group["n"]:
            return "n=0"
        low, high = group["ci95"]
        return f"{group['score']:.1f} [{low:.1f}, {high:.1f}] n={group['n']}"

    lines = ["clean vs dirty (contamination):"]
    for task, row in result["tasks"].items():
        diff = row["dirty_minus_clean"]
        extra = ""
        if diff is not None:
            low, high = row["ci95"]
            extra = f"; dirty - clean {diff:+.1f} [{low:+.1f}, {high:+.1f}], Mann-Whitney p={row['mann_whitney_p']:.3g}"
        lines.append(f"  {task}: clean {cell(row['clean'])}; dirty {cell(row['dirty'])}{extra}")
    return lines
