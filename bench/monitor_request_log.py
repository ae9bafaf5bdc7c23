"""Does writing the request log slow serving? Served throughput with the log off, on SQLite, and on Postgres.

One `ctxops serve` per setting (same model and settings; `--request-log ''`, a SQLite file, a postgresql:// URL),
all started up front; then rounds in which each server in turn takes the same load (concurrent streaming
completions, short outputs so requests, and so log rows, come fast), in a rotated order so no setting always goes
first. Throughput is requests per second; the ratio of each logged setting to the unlogged one is reported per
round and as the median with its range. The target is a ratio >= 0.97.

    python bench/monitor_request_log.py --rounds 5 --num-requests 96 --max-tokens 8 [--postgres postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from serve_load import make_prompts, run_server_round
from server_process import free_port, start_server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--num-requests", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--prompt-words", type=int, default=32)
    parser.add_argument(
        "--postgres", default=None, help="a Postgres URL for the third setting (its requests table grows)"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ctxops-log-bench-"))
    settings = {"off": "", "sqlite": str(workdir / "log.db")}
    if args.postgres:
        settings["postgres"] = args.postgres
    servers = {}
    try:
        for name, log in settings.items():
            port = free_port()
            (workdir / name).mkdir()
            serve_args = [args.model, "--served-model-name", "bench", "--request-log", log]
            servers[name] = (start_server(serve_args, port, workdir / name, timeout_s=180), port)
        rates: dict[str, list[float]] = {name: [] for name in settings}
        names = list(settings)
        for round_index in range(args.rounds):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                prompts = make_prompts(args.num_requests, args.prompt_words, start=round_index * 10_000)
                _, seconds = run_server_round(servers[name][1], prompts, args.max_tokens, args.concurrency)
                rates[name].append(args.num_requests / seconds)
            print(
                f"round {round_index + 1}: " + ", ".join(f"{n} {rates[n][-1]:.1f} req/s" for n in names),
                flush=True,
            )
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=60)
    result = {"rates": rates}
    for name in names[1:]:
        ratios = [on / off for on, off in zip(rates[name], rates["off"], strict=True)]
        result[f"{name}_vs_off"] = {
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
        }
        print(
            f"{name} log / no log: median {statistics.median(ratios):.3f} (rounds {min(ratios):.3f}-{max(ratios):.3f})"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
