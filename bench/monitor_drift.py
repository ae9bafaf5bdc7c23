"""How often `ctxops monitor drift` cries wolf, how often it catches a real shift, and how fast it reads 1M rows.

1. False alarms: window pairs drawn from the same synthetic traffic; an alarm is any metric judged drifting.
2. Power: the current window's median prompt length +15%, or its TTFT +20%; detected = that metric drifts.
   Both at --per-window requests per window, over --pairs pairs, for each prompt-length spread in --sigmas
   (lognormal log-sd: the wider the spread, the smaller a 15% shift is against it). Rates carry 95% Wilson intervals.
3. Scale: --rows request rows in a store (half reference, half current), then `detect_drift` and the CLI timed,
   for each --db (a SQLite path, or a postgresql:// URL whose database this overwrites).

    python bench/monitor_drift.py --pairs 200 --per-window 500 --rows 1000000 --db /tmp/drift.db
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import sqlalchemy as sa
from monitor_traffic import counts, rows, window

from ctxops.evals.stats import wilson
from ctxops.monitor.drift import (
    CATEGORICAL,
    NUMERIC,
    DriftConfig,
    compare_categorical,
    compare_numeric,
    decide,
    derive_numeric,
    detect_drift,
)
from ctxops.monitor.windows import Window
from ctxops.store import open_store
from ctxops.store.requests import insert_requests
from ctxops.store.schema import requests

STORED = ("prompt_tokens", "completion_tokens", "cached_tokens", "queue_time_s", "ttft_s", "e2e_s")


def judge(ref: dict, cur: dict, config: DriftConfig) -> dict[str, bool]:
    a, b = derive_numeric({k: ref[k] for k in STORED}), derive_numeric({k: cur[k] for k in STORED})
    results = [compare_numeric(n, a[n], b[n], config) for n in NUMERIC]
    results += [compare_categorical(n, counts(ref[n]), counts(cur[n]), config) for n in CATEGORICAL]
    decide(results, config)
    return {r.name: bool(r.drift) for r in results}


def rate(hits: int, n: int) -> str:
    low, high = wilson(hits / n, n)
    return f"{hits / n:6.1%} (95% CI {low:.1%}-{high:.1%}, {hits}/{n})"


def statistics_bench(pairs: int, per_window: int, sigmas: list[float], seed: int, alpha: float) -> dict:
    config, out = DriftConfig(alpha=alpha), {}
    for sigma in sigmas:
        rng = np.random.default_rng(seed)
        alarms = prompt_hits = ttft_hits = 0
        for _ in range(pairs):
            ref = window(per_window, rng, sigma)
            alarms += any(judge(ref, window(per_window, rng, sigma), config).values())
            prompt_hits += judge(ref, window(per_window, rng, sigma, prompt_median=4000.0 * 1.15), config)[
                "prompt_tokens"
            ]
            ttft_hits += judge(ref, window(per_window, rng, sigma, ttft_factor=1.2), config)["ttft_s"]
        out[sigma] = {
            "false_alarms": alarms,
            "prompt_power": prompt_hits,
            "ttft_power": ttft_hits,
            "pairs": pairs,
        }
        print(f"sigma {sigma}: false alarms {rate(alarms, pairs)}  | prompt +15%: {rate(prompt_hits, pairs)}"
              f"  | TTFT +20%: {rate(ttft_hits, pairs)}", flush=True)  # fmt: skip
    return out


def fill(db: str, n_rows: int, seed: int) -> tuple[Window, Window]:
    store = open_store(db)
    rng, half, t0, chunk = np.random.default_rng(seed), n_rows // 2, 1_700_000_000.0, 50_000
    windows = Window(t0, t0 + half, "ref"), Window(t0 + half, t0 + n_rows, "cur")
    with store.engine.begin() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(requests)).scalar() == n_rows:
            print(f"{db}: reusing its {n_rows:,} rows", flush=True)  # same seed, same rows
            return windows
        conn.execute(requests.delete())
    started = time.perf_counter()
    for part in range(0, n_rows, chunk):
        size = min(chunk, n_rows - part)
        columns = window(size, rng, 0.5, ttft_factor=1.2 if part >= half else 1.0)
        insert_requests(store, rows(columns, t0 + part, size, prefix=f"b{part}-"))
    print(f"{db}: wrote {n_rows:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
    store.close()
    return windows


def scale_bench(db: str, n_rows: int, seed: int) -> dict:
    ref, cur = fill(db, n_rows, seed)
    store = open_store(db)
    started, cpu_started = time.perf_counter(), time.process_time()
    results = detect_drift(store, ref, cur, DriftConfig())
    in_process, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    store.close()
    windows = [f"{w.to_dict()['start']}..{w.to_dict()['end']}" for w in (ref, cur)]
    args = [sys.executable, "-m", "ctxops", "monitor", "drift", "--db", db, "--json",
            "--reference", windows[0], "--current", windows[1]]  # fmt: skip
    started = time.perf_counter()
    report = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    cli = time.perf_counter() - started
    drifted = sorted(r.name for r in results if r.drift)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{db}: detect_drift over {n_rows:,} rows {in_process:.2f} s wall, {cpu:.2f} s CPU (load average {load:.1f} "
          f"on {os.cpu_count()} cores); CLI end to end {cli:.2f} s; "
          f"drifted {drifted}; CLI rows {report['metrics'][0]['n_reference']:,}+{report['metrics'][0]['n_current']:,}")  # fmt: skip
    return {"db": db, "rows": n_rows, "detect_drift_s": in_process, "detect_drift_cpu_s": cpu, "cli_s": cli,
            "load_average": load, "drifted": drifted}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--per-window", type=int, default=500)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", nargs="*", default=[], help="stores for the scale run (none: skip it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=DriftConfig().alpha, help="the drift test's FDR")
    args = parser.parse_args()
    result = (
        {"statistics": statistics_bench(args.pairs, args.per_window, args.sigmas, args.seed, args.alpha)}
        if args.pairs
        else {}
    )
    result["scale"] = [scale_bench(db, args.rows, args.seed) for db in args.db]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
