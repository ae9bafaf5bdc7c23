"""Synthetic request rows and eval run directories for the monitor's tests."""

from __future__ import annotations

import json

import numpy as np

from ctxops.evals.summary import summarize
from postgres_server import db_url, postgres  # noqa: F401  (fixtures)


def traffic(n: int, start: float, span_s: float, seed: int, prompt_median: float = 2000.0,
            ttft_median: float = 0.3, model: str = "m", upstream: str | None = None, error_share: float = 0.0,
            prefix: str = "r") -> list[dict]:  # fmt: skip
    """``n`` request rows spread over ``[start, start + span_s)``: lognormal prompt lengths and latencies."""
    rng = np.random.default_rng(seed)
    prompt = rng.lognormal(np.log(prompt_median), 0.5, n).astype(int) + 1
    ttft = rng.lognormal(np.log(ttft_median), 0.4, n)
    completion = rng.integers(20, 200, n)
    failed = rng.random(n) < error_share
    return [
        {
            "request_id": f"{prefix}{seed}-{i}", "created_at": start + span_s * i / n, "endpoint": "chat.completions",
            "model": model, "upstream": upstream, "status": 500 if failed[i] else 200,
            "error_code": "engine_failed" if failed[i] else None, "prompt_tokens": int(prompt[i]),
            "cached_tokens": int(prompt[i]) // 4, "completion_tokens": int(completion[i]), "queue_time_s": 0.01,
            "ttft_s": float(ttft[i]), "e2e_s": float(ttft[i] + 0.02 * completion[i]),
            "finish_reason": "error" if failed[i] else "stop",
        }
        for i in range(n)
    ]  # fmt: skip


def write_eval_run(directory, model: str, scores: dict[int, float], served: bool = True) -> None:
    """An eval run directory whose summary.json (made by the eval harness' own summarize) scores ``scores``."""
    records = []
    for length, score in scores.items():
        for seed in range(40):  # a share ``score`` of 40 samples correct at this length
            ok = seed < round(score * 40)
            records.append({"task": "niah_single_1", "length": length, "depth": 0.5, "seed": seed,
                            "score": float(ok), "correct": ok, "output": "x", "prompt_tokens": length,
                            "input_tokens": length, "output_tokens": 4})  # fmt: skip
    target = {"kind": "endpoint", "served_model_name": model} if served else {"kind": "local", "model": model}
    run = {"target": target, "tasks": ["niah_single_1"], "lengths": sorted(scores),
           "created": "2026-01-01T00:00:00+00:00", "updated": "2026-01-01T01:00:00+00:00"}  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.json").write_text(json.dumps(summarize(records, run)))
