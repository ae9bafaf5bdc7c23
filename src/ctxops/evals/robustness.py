"""Brittleness: how much each perturbation costs, paired with the clean item of the same seed, depth and length.

For every variant (``family=level``) the records pair with their clean twins on (task, length, depth, seed).
Brittleness is clean minus perturbed accuracy (× 100) with a paired bootstrap interval (resampled within each task)
and the exact McNemar p-value on the discordant pairs (clean right and perturbed wrong, and the reverse), the same
tests ``ctxops compare`` uses (:mod:`.stats`). Rows come per variant, per variant × length and per variant × task ×
length, worst first. The *robust effective length* is the effective length (:func:`stats.effective_length`) of the
worst variant, with an interval from the per-length Wilson bounds (lower bounds give its low end, upper bounds its
high end). With a model card's ``trained_on`` list (tasks and perturbation families or ``family=level`` variants
the model was trained on) the pairs split into in-distribution and held-out. This module knows records and
statistics, not how samples were built or drawn.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from ctxops.evals import stats
from ctxops.evals.rundir import record_key

Pair = tuple[dict[str, Any], dict[str, Any]]  # (clean record, perturbed record)
IN_DISTRIBUTION = "in-distribution"
HELD_OUT = "held-out"


def pairs_by_variant(records: list[dict[str, Any]]) -> dict[str, list[Pair]]:
    """Perturbed records paired with their clean twins, per variant; a record without a twin is left out."""
    clean = {record_key(r): r for r in records if not r.get("variant")}
    out: dict[str, list[Pair]] = defaultdict(list)
    for r in records:
        if r.get("variant") and record_key(r)[:4] in clean:
            out[r["variant"]].append((clean[record_key(r)[:4]], r))
    return dict(out)


def brittleness(pairs: list[Pair], resamples: int = 10_000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Clean and perturbed scores, their paired drop with its bootstrap interval, and McNemar's exact p (× 100)."""
    drops = [c["score"] - p["score"] for c, p in pairs]
    mean, low, high = stats.paired_bootstrap(
        drops, [c["task"] for c, _ in pairs], resamples=resamples, seed=seed, confidence=confidence
    )
    only_clean = sum(bool(c["correct"]) and not p["correct"] for c, p in pairs)
    only_perturbed = sum(bool(p["correct"]) and not c["correct"] for c, p in pairs)
    n = len(pairs)
    return {
        "n": n,
        "clean": 100 * sum(c["score"] for c, _ in pairs) / n,
        "perturbed": 100 * sum(p["score"] for _, p in pairs) / n,
        "drop": 100 * mean,
        "drop_low": 100 * low,
        "drop_high": 100 * high,
        "only_clean_correct": only_clean,
        "only_perturbed_correct": only_perturbed,
        "mcnemar_p": stats.mcnemar_exact(only_clean, only_perturbed),
    }


def split_of(task: str, variant: str, trained_on: dict[str, Any] | None) -> str | None:
    """in-distribution when the model card lists the task and the variant's family (or the variant); else held-out.

    None when there is no card list to judge by.
    """
    if not trained_on:
        return None
    families = set(trained_on.get("perturbations") or ())
    seen = task in set(trained_on.get("tasks") or ()) and bool({variant, variant.split("=")[0]} & families)
    return IN_DISTRIBUTION if seen else HELD_OUT


def robust_effective_length(pairs: dict[str, list[Pair]], threshold: float) -> dict[str, Any] | None:
    """The worst variant's effective length (point estimate) with its interval from the Wilson bounds."""
    from ctxops.evals.summary import cell  # summary imports this module

    best: dict[str, Any] | None = None
    for variant, ps in pairs.items():
        by_length: dict[int, list] = defaultdict(list)
        for _, p in ps:
            by_length[p["length"]].append(p)
        cells = {n: cell(rs) for n, rs in by_length.items()}
        entry = {
            "variant": variant,
            "point_estimate": stats.effective_length({n: c["score"] for n, c in cells.items()}, threshold),
            "lower_bound": stats.effective_length({n: c["ci_low"] for n, c in cells.items()}, threshold),
            "upper_bound": stats.effective_length({n: c["ci_high"] for n, c in cells.items()}, threshold),
            "scores": {str(n): cells[n]["score"] for n in sorted(cells)},
        }
        rank = (entry["point_estimate"] or 0, entry["lower_bound"] or 0, sum(entry["scores"].values()))
        if best is None or rank < best["_rank"]:
            best = {**entry, "_rank": rank}
    if best is not None:
        best.pop("_rank")
    return best


def summarize_robustness(
    records: list[dict[str, Any]], run: dict[str, Any], threshold: float = stats.RULER_THRESHOLD,
    resamples: int = 10_000,
) -> dict[str, Any] | None:  # fmt: skip
    """The ``robustness`` section of summary.json (None when the run has no perturbed records)."""
    pairs = pairs_by_variant(records)
    if not pairs:
        return None
    trained_on = run.get("trained_on")
    rows, by_length, by_cell = [], [], []
    for variant, ps in pairs.items():
        family, _, level = variant.partition("=")
        rows.append({"variant": variant, "family": family, "level": level, **brittleness(ps, resamples)})
        groups: dict[tuple[str, int], list[Pair]] = defaultdict(list)
        for pair in ps:
            groups[(pair[0]["task"], pair[0]["length"])].append(pair)
        for length in sorted({n for _, n in groups}):
            pooled = [p for (_, n), g in groups.items() if n == length for p in g]
            by_length.append({"variant": variant, "length": length, **brittleness(pooled, resamples)})
        for (task, length), g in sorted(groups.items()):
            split = split_of(task, variant, trained_on)
            by_cell.append({"variant": variant, "task": task, "length": length, "split": split,
                            **brittleness(g, resamples)})  # fmt: skip
    worst_first = lambda r: (-r["drop"], -r["drop_high"], r["variant"])  # noqa: E731
    rows.sort(key=worst_first)
    rank = {r["variant"]: i for i, r in enumerate(rows)}
    splits = {}
    if trained_on:
        for name in (IN_DISTRIBUTION, HELD_OUT):
            chosen = [
                p for v, ps in pairs.items() for p in ps if split_of(p[0]["task"], v, trained_on) == name
            ]
            splits[name] = brittleness(chosen, resamples) if chosen else None
    return {
        "definition": "drop = clean minus perturbed score (x 100) over pairs with the same task, length, depth "
        "and seed; interval: paired bootstrap (95%, resampled within task); p: exact McNemar on discordant pairs",
        "variants": rows,
        "by_length": sorted(
            by_length, key=lambda r: (rank[r["variant"]], r["length"])
        ),  # variants worst first
        "by_cell": sorted(by_cell, key=worst_first),
        "robust_effective_length": robust_effective_length(pairs, threshold),
        "trained_on": trained_on,
        "splits": splits,
    }


def read_trained_on(card: str | Path) -> dict[str, list[str]] | None:
    """``ctxops.trained_on`` ({tasks, perturbations}) from a model card's YAML front matter; None when absent.

    A card that exists but whose front matter is malformed raises ValueError naming the file.
    """
    path = Path(card)
    if path.is_dir():
        path = path / "README.md"
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return None
    try:
        meta = yaml.safe_load(text.split("---", 2)[1]) or {}
    except (yaml.YAMLError, IndexError) as exc:
        raise ValueError(f"{path}: the front matter is not valid YAML ({exc})") from exc
    trained = (meta.get("ctxops") or {}).get("trained_on") if isinstance(meta, dict) else None
    if trained is None:
        return None
    if not isinstance(trained, dict) or not all(isinstance(trained.get(k, []), list) for k in trained):
        raise ValueError(f"{path}: ctxops.trained_on must map 'tasks' and 'perturbations' to lists")
    return {"tasks": list(trained.get("tasks", [])), "perturbations": list(trained.get("perturbations", []))}


def brittleness_change(
    records_a: list[dict[str, Any]], records_b: list[dict[str, Any]], alpha: float = 0.05,
    resamples: int = 10_000, seed: int = 0,
) -> dict[str, Any] | None:  # fmt: skip
    """Per variant, run B's brittleness minus run A's, on the items both runs hold clean and perturbed.

    Each item gives (clean B - perturbed B) - (clean A - perturbed A); the mean has a paired bootstrap interval
    (resampled within task) at confidence 1 - alpha/m for m variants (Bonferroni, so that testing every variant
    does not raise false alarms). A variant whose interval lies above zero is a brittleness regression: B loses
    more to it than A does. None when the runs share no perturbed items.
    """
    pairs_a, pairs_b = pairs_by_variant(records_a), pairs_by_variant(records_b)
    shared = sorted(pairs_a.keys() & pairs_b.keys())
    if not shared:
        return None
    confidence = 1 - alpha / len(shared)
    rows = []
    for variant in shared:
        a = {record_key(c)[:4]: c["score"] - p["score"] for c, p in pairs_a[variant]}
        b = {record_key(c)[:4]: (c["score"] - p["score"], c["task"]) for c, p in pairs_b[variant]}
        keys = sorted(a.keys() & b.keys(), key=str)
        diffs = [b[k][0] - a[k] for k in keys]
        mean, low, high = stats.paired_bootstrap(
            diffs, [b[k][1] for k in keys], resamples=resamples, seed=seed, confidence=confidence
        )
        rows.append({
            "variant": variant, "n": len(keys), "drop_a": 100 * sum(a[k] for k in keys) / len(keys),
            "drop_b": 100 * sum(b[k][0] for k in keys) / len(keys), "change": 100 * mean,
            "change_low": 100 * low, "change_high": 100 * high, "regression": low > 0,
        })  # fmt: skip
    rows.sort(key=lambda r: -r["change"])
    return {
        "confidence": confidence,
        "variants": rows,
        "regressions": [r["variant"] for r in rows if r["regression"]],
    }
