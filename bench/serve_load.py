"""Load test for `ctxops serve`: concurrent streaming clients vs in-process `LLM.generate` on the same workload.

Reports request throughput, output tokens/s, TTFT and TPOT p50/p95 (TPOT as vLLM's benchmark defines it:
(E2E - TTFT) / (output tokens - 1), per request), and the server's output throughput as a ratio of the offline
engine's on the same prompts, run at the same concurrency (batches of --concurrency).

The two are measured in alternating rounds (offline, server, offline, server, ...), each round on fresh prompts so
neither side gains from its prefix cache, and the ratio is reported per round and as the median: on a shared machine
other processes come and go, and only measurements taken close together compare. Where /proc/stat exists, each
round also reports how many cores other processes used meanwhile (``other_cpu``), so disturbed rounds show.

    python bench/serve_load.py --concurrency 16 --num-requests 48 --max-tokens 128 --rounds 3 [--model DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from server_process import free_port, start_server


def make_prompts(n: int, words: int, start: int = 0) -> list[str]:
    return [
        f"request {i}: " + " ".join(f"w{(i * 7 + j) % 97}" for j in range(words))
        for i in range(start, start + n)
    ]


def start_bench_server(model: str, kv: str, port: int, workdir: Path) -> subprocess.Popen:
    args = [model, "--served-model-name", "bench", "--kv-cache-memory", kv,
            "--request-log", str(workdir / "bench-requests.db")]  # fmt: skip
    return start_server(args, port, workdir, timeout_s=120)


async def one_request(client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int) -> dict:
    body = {"model": "bench", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    start = time.perf_counter()
    ttft = None
    output_tokens = 0
    async with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            chunk = json.loads(line[5:])
            if chunk["choices"] and ttft is None:
                ttft = time.perf_counter() - start
            if chunk.get("usage"):
                output_tokens = chunk["usage"]["completion_tokens"]
    e2e = time.perf_counter() - start
    tpot = (e2e - ttft) / (output_tokens - 1) if output_tokens > 1 and ttft is not None else None
    return {"ttft": ttft, "e2e": e2e, "tpot": tpot, "output_tokens": output_tokens}


async def run_clients(
    port: int, prompts: list[str], max_tokens: int, concurrency: int
) -> tuple[list[dict], float]:
    url = f"http://127.0.0.1:{port}/v1/completions"
    limit = asyncio.Semaphore(concurrency)

    async def bounded(client: httpx.AsyncClient, prompt: str) -> dict:
        async with limit:
            return await one_request(client, url, prompt, max_tokens)

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:
        await one_request(client, url, "warm up", 4)
        start = time.perf_counter()
        results = await asyncio.gather(*(bounded(client, p) for p in prompts))
        return results, time.perf_counter() - start


def _clients_process(port: int, prompts: list[str], max_tokens: int, concurrency: int, out) -> None:
    # The load generator must not take CPU from the server it measures (on a 2-core machine it otherwise preempts
    # the model's compute threads): the clients run at a lower priority than the server process. Only this child
    # is lowered, so the offline rounds in the parent keep the server's priority.
    os.nice(10)
    out.put(asyncio.run(run_clients(port, prompts, max_tokens, concurrency)))


def run_server_round(
    port: int, prompts: list[str], max_tokens: int, concurrency: int
) -> tuple[list[dict], float]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_clients_process, args=(port, prompts, max_tokens, concurrency, out))
    child.start()
    results = out.get()
    child.join()
    return results


def run_offline_round(llm, prompts: list[str], max_tokens: int, concurrency: int) -> tuple[int, float]:
    from ctxops import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    start = time.perf_counter()
    tokens = 0
    for i in range(0, len(prompts), concurrency):
        outs = llm.generate(prompts[i : i + concurrency], params, use_tqdm=False)
        tokens += sum(len(o.outputs[0].token_ids) for o in outs)
    return tokens, time.perf_counter() - start


class OtherCPU:
    """Cores used by processes other than this one, its children and the server, over a ``with`` block."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.cores: float | None = None

    @staticmethod
    def _busy() -> float:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        return (sum(ticks[:3]) + sum(ticks[5:8])) / os.sysconf(
            "SC_CLK_TCK"
        )  # user nice system irq softirq steal

    def _ours(self) -> float:
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        if self.server_pid is not None:
            with open(f"/proc/{self.server_pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def __enter__(self) -> OtherCPU:
        self.available = os.path.exists("/proc/stat")
        if self.available:
            self.start = (time.perf_counter(), self._busy(), self._ours())
        return self

    def __exit__(self, *exc) -> None:
        if self.available:
            wall, busy, ours = time.perf_counter(), self._busy(), self._ours()
            self.cores = max((busy - self.start[1]) - (ours - self.start[2]), 0.0) / (wall - self.start[0])


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", help="model directory (default: a random tiny Llama written to a temp dir)"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--num-requests", type=int, default=64)
    parser.add_argument("--prompt-words", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--kv-cache-memory", default="256MiB")
    parser.add_argument("--rounds", type=int, default=3, help="alternating offline/server rounds")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ctxops-bench-"))
    model = args.model
    if model is None:
        from ctxops.models.random_model import write_random_model

        model = str(write_random_model(workdir / "model"))

    from ctxops import LLM, SamplingParams

    llm = LLM(model, kv_cache_memory=args.kv_cache_memory)
    llm.generate(["warm up"], SamplingParams(max_tokens=4), use_tqdm=False)
    port = free_port()
    server = start_bench_server(model, args.kv_cache_memory, port, workdir)
    rounds, results = [], []
    try:
        for r in range(args.rounds):
            prompts = make_prompts(args.num_requests, args.prompt_words, start=r * args.num_requests)
            with OtherCPU(server.pid) as offline_other:
                offline_tokens, offline_wall = run_offline_round(
                    llm, prompts, args.max_tokens, args.concurrency
                )
            with OtherCPU(server.pid) as server_other:
                served, wall = run_server_round(port, prompts, args.max_tokens, args.concurrency)
            results += served
            served_tps = sum(s["output_tokens"] for s in served) / wall
            offline_tps = offline_tokens / offline_wall
            rounds.append({
                "output_tokens_per_s": served_tps, "offline_output_tokens_per_s": offline_tps,
                "server_vs_offline_ratio": served_tps / offline_tps,
                "request_throughput_rps": len(served) / wall,
                "other_cpu": {"offline": offline_other.cores, "server": server_other.cores},
            })  # fmt: skip
            print(json.dumps({"round": r, **rounds[-1]}), file=sys.stderr, flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)

    ttfts = [r["ttft"] for r in results if r["ttft"] is not None]
    tpots = [r["tpot"] for r in results if r["tpot"] is not None]
    ratios = [r["server_vs_offline_ratio"] for r in rounds]

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    report = {
        "concurrency": args.concurrency, "num_requests": args.num_requests, "max_tokens": args.max_tokens,
        "rounds": len(rounds), "request_throughput_rps": median("request_throughput_rps"),
        "output_tokens_per_s": median("output_tokens_per_s"),
        "ttft_p50_ms": 1e3 * pct(ttfts, 50), "ttft_p95_ms": 1e3 * pct(ttfts, 95),
        "tpot_p50_ms": 1e3 * pct(tpots, 50), "tpot_p95_ms": 1e3 * pct(tpots, 95),
        "offline_output_tokens_per_s": median("offline_output_tokens_per_s"),
        "server_vs_offline_ratio": statistics.median(ratios),
        "server_vs_offline_ratio_range": [min(ratios), max(ratios)],
        "per_round": rounds, "cpu_count": os.cpu_count(),
    }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
