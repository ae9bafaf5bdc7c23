"""The before/after table every ``ctxops compress`` command ends with, made by the eval harness itself.

Each model (or engine setting) runs the same :class:`~ctxops.evals.config.EvalConfig` through
:func:`~ctxops.evals.runner.run_eval` into its own resumable run directory, and :func:`write_reports` gives its
summary: score per length with 95% Wilson intervals and the effective context length (point estimate and the
interval's lower bound). Beside them: parameters, weight bytes on disk, KV bytes per prompt token (a press counts
what it keeps, a head policy what its split storage holds: retrieval-head blocks plus a ring), and latency from the
run (p50 time to first token and per output token, at the run's concurrency: comparable between rows of one
table, noisy on a shared machine).

This module knows run directories, summaries and tables; it does not prune, score or train.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

from safetensors import safe_open

from ctxops.engine.config import EngineConfig
from ctxops.evals.config import EvalConfig, format_length
from ctxops.evals.report import write_reports
from ctxops.evals.rundir import RunDir
from ctxops.evals.runner import run_eval
from ctxops.evals.sweep import full_bytes_per_token, kept_share
from ctxops.evals.targets.local import LocalTarget
from ctxops.models.loader import resolve_model_path, weight_files

COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"


def _parameters(path: Path) -> int:
    """Elements over every tensor of the checkpoint (shapes read from the headers, no weights loaded)."""
    total = 0
    for file in weight_files(path):
        with safe_open(str(file), "pt") as handle:
            for name in handle.keys():  # noqa: SIM118  (safe_open has keys(), not iteration)
                total += math.prod(handle.get_slice(name).get_shape())
    return total


def evaluate(label: str, engine: EngineConfig, config: EvalConfig, out: Path, progress: bool = True) -> dict:
    """Run (or resume) one row's eval under ``out/label``; return its table row."""
    run_dir = RunDir(out / label)
    target = LocalTarget(engine)
    asyncio.run(run_eval(config, target, run_dir, show_progress=progress))
    summary = write_reports(run_dir)
    run = run_dir.read_run()
    path = resolve_model_path(engine.model)
    lengths = sorted(int(n) for n in summary["overall"])
    # a press counts what it keeps, a head policy what its blocks and ring hold (both real pool bytes)
    kv = round(full_bytes_per_token(run["target"]["kv_cache"]) * kept_share(run["target"], lengths))
    latency = summary["latency"].get(str(lengths[-1]), {})
    return {
        "label": label,
        "model": str(path),
        "parameters": _parameters(path),
        "weight_bytes": sum(f.stat().st_size for f in weight_files(path)),
        "kv_bytes_per_token": kv,
        "ttft_p50_s": latency.get("ttft_s", {}).get("p50"),
        "tpot_p50_s": latency.get("tpot_s", {}).get("p50"),
        "scores": {
            n: {k: summary["overall"][n][k] for k in ("score", "ci_low", "ci_high", "n")}
            for n in summary["overall"]
        },
        "effective_length": {
            "point_estimate": summary["effective_length"]["point_estimate"],
            "lower_bound": summary["effective_length"]["lower_bound"],
        },
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as one Markdown table: sizes, speed, score by length [95% interval], effective length."""
    lengths = sorted({int(n) for r in rows for n in r["scores"]})
    head = ["", "params", "weights", "KV B/token", "TTFT p50", "TPOT p50"]
    head += [format_length(n) for n in lengths] + ["effective length (lower bound)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["label"],
            f"{r['parameters'] / 1e6:.2f}M",
            f"{r['weight_bytes'] / 2**20:.1f} MiB",
            str(r["kv_bytes_per_token"]),
            "-" if r["ttft_p50_s"] is None else f"{r['ttft_p50_s']:.2f} s",
            "-" if r["tpot_p50_s"] is None else f"{r['tpot_p50_s'] * 1000:.0f} ms",
        ]
        for n in lengths:
            s = r["scores"].get(str(n))
            cells.append("-" if s is None else f"{s['score']:.0f} [{s['ci_low']:.0f}, {s['ci_high']:.0f}]")
        eff = r["effective_length"]
        cells.append(f"{eff['point_estimate'] or 0} ({eff['lower_bound'] or 0})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare(
    rows: list[tuple[str, EngineConfig]], config: EvalConfig, out: Path, progress: bool = True
) -> tuple[list[dict], str]:
    """Evaluate every (label, engine settings) row; write comparison.json and comparison.md under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    table = [evaluate(label, engine, config, out, progress) for label, engine in rows]
    text = markdown(table)
    (out / COMPARISON_JSON).write_text(json.dumps(table, indent=1) + "\n")
    (out / COMPARISON_MD).write_text(text)
    return table, text
