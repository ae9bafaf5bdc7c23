"""Soak test for `ctxops serve`: 32 concurrent clients for minutes, a quarter of the streams abandoned mid-way.

Each client loops until the time is up, sending chat or text completions (half each), streamed or not, with prompts
of mixed length (log-uniform from a few tokens to a few thousand, within max_model_len) and 16-128 new tokens.
A share of the streams (``--abandon``, default 25%) is dropped by the client after a few chunks, closing the
connection, so the server must abort those requests and free their KV blocks. Meanwhile this process polls
``/health`` every 100 ms and samples the server's RSS (``/proc/PID/status`` VmRSS) every second.

Reports requests, errors by kind (HTTP status, stream error code or exception type), TTFT and end-to-end latency
percentiles of the requests that ran to the end, ``/health`` latency, the server's RSS growth from the end of the
warm-up to the end of the load, and what ``/metrics`` says once the load stops (``kv_cache_usage_perc`` and
``num_requests_running`` must come back to 0). Prints a markdown table, writes JSON to ``--out``, exits 1 when a
check fails: any 5xx or unexpected error, KV blocks or running requests left over, RSS growth > 5%,
``/health`` p99 >= 100 ms.

    nice python bench/soak.py [--minutes 10] [--model builtin | --url http://127.0.0.1:8000 [--pid PID]] --out soak.json

The load generator runs in a child process at a lower priority (``os.nice``), as in ``bench/serve_load.py``, so it
does not take the CPU the server answers with; the health poller stays at normal priority in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from server_process import free_port, start_server

SENTENCES = [
    "The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.", "There and back again.",
    "A river runs through the valley.", "The old mill turns slowly.", "Birds sing at dawn.",
]  # fmt: skip


def start_soak_server(args: argparse.Namespace, port: int, workdir: Path) -> subprocess.Popen:
    serve_args = [args.model, "--served-model-name", "soak", "--kv-cache-memory", args.kv_cache_memory,
                  "--request-log", str(workdir / "soak-requests.db")]  # fmt: skip
    if args.max_model_len:
        serve_args += ["--max-model-len", str(args.max_model_len)]
    return start_server(serve_args, port, workdir, timeout_s=300)


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def read_metrics(base: str, headers: dict[str, str]) -> dict[str, float]:
    """``/metrics`` samples by name, labels summed over; ``request_success_total`` also by finished_reason."""
    out: dict[str, float] = {}
    for line in httpx.get(base + "/metrics", headers=headers, timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            name, _, labels = key.partition("{")
            name = name.removeprefix("ctxops:")
            out[name] = out.get(name, 0.0) + float(value)
            if name == "request_success_total" and 'finished_reason="' in labels:
                reason = labels.split('finished_reason="')[1].split('"')[0]
                out[f"{name}:{reason}"] = out.get(f"{name}:{reason}", 0.0) + float(value)
    return out


# ---- the load (child process) ---------------------------------------------------------------------------------
class Load:
    """One client's request mix; every request becomes a dict of what happened to it."""

    def __init__(self, args: argparse.Namespace, model: str, max_len: int, chars_per_token: float) -> None:
        self.args = args
        self.model = model
        self.max_prompt = max(16, min(args.max_prompt_tokens, max_len - args.max_new_tokens - 64))
        self.chars_per_token = chars_per_token

    def prompt(self, rng: random.Random) -> str:
        tokens = math.exp(rng.uniform(math.log(8), math.log(self.max_prompt)))  # log-uniform: mostly short
        words: list[str] = [f"Document {rng.randrange(10**9)}."]
        while len(" ".join(words)) < tokens * self.chars_per_token:
            words.append(rng.choice(SENTENCES))
        return " ".join(words) + " What is the colour of the grass?"

    def body(self, rng: random.Random, chat: bool, stream: bool) -> dict[str, Any]:
        text = self.prompt(rng)
        body: dict[str, Any] = {
            "model": self.model, "max_tokens": rng.randint(16, self.args.max_new_tokens),
            "temperature": rng.choice([0.0, 0.7, 1.0]), "stream": stream, "user": f"soak-{rng.randrange(64)}",
        }  # fmt: skip
        if stream:
            body["stream_options"] = {"include_usage": True}
        if chat:
            body["messages"] = [{"role": "user", "content": text}]
        else:
            body["prompt"] = text
        return body

    async def one(self, client: httpx.AsyncClient, rng: random.Random) -> dict[str, Any]:
        chat = rng.random() < 0.5
        stream = rng.random() < self.args.stream_fraction
        abandon_after = rng.randint(1, 5) if stream and rng.random() < self.args.abandon else None
        url = "/v1/chat/completions" if chat else "/v1/completions"
        out: dict[str, Any] = {
            "chat": chat,
            "stream": stream,
            "abandoned": False,
            "error": None,
            "ttft": None,
        }
        start = time.perf_counter()
        try:
            if stream:
                await self._stream(client, url, self.body(rng, chat, True), abandon_after, start, out)
            else:
                response = await client.post(url, json=self.body(rng, chat, False))
                if response.status_code != 200:
                    out["error"] = f"HTTP {response.status_code}"
                elif not response.json()["choices"][0].get("finish_reason"):
                    out["error"] = "no finish_reason"
        except httpx.HTTPError as exc:
            out["error"] = type(exc).__name__
        out["e2e"] = time.perf_counter() - start
        return out

    async def _stream(
        self,
        client: httpx.AsyncClient,
        url: str,
        body: dict,
        abandon_after: int | None,
        start: float,
        out: dict,
    ) -> None:
        chunks = 0
        async with client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                await response.aread()
                out["error"] = f"HTTP {response.status_code}"
                return
            done = False
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    break
                item = json.loads(line[6:])
                if "error" in item:
                    out["error"] = f"stream error {item['error'].get('code')}"
                    return
                if item["choices"]:
                    chunks += 1
                    if out["ttft"] is None:
                        out["ttft"] = time.perf_counter() - start
                if abandon_after is not None and chunks >= abandon_after:
                    out["abandoned"] = True
                    return  # leaving the block closes the connection mid-stream
            if not done:
                out["error"] = "stream ended without [DONE]"


async def run_load(
    args: argparse.Namespace, base: str, headers: dict, model: str, max_len: int, cpt: float
) -> list:
    load = Load(args, model, max_len, cpt)
    deadline = time.monotonic() + args.minutes * 60
    results: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=args.concurrency * 2, max_keepalive_connections=args.concurrency)

    async def client_loop(i: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(args.seed * 1000 + i)
        while time.monotonic() < deadline:
            result = await load.one(client, rng)
            result["t"] = time.monotonic() - (deadline - args.minutes * 60)
            results.append(result)

    timeout = httpx.Timeout(600, connect=30)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout, limits=limits) as client:
        await asyncio.gather(*(client_loop(i, client) for i in range(args.concurrency)))
    return results


def _load_process(
    args: argparse.Namespace, base: str, headers: dict, model: str, max_len: int, cpt: float, out
) -> None:
    os.nice(10)  # the load must not take the server's CPU (2 cores: it would preempt the model's threads)
    out.put(asyncio.run(run_load(args, base, headers, model, max_len, cpt)))


# ---- the watcher (this process) -------------------------------------------------------------------------------
def watch(base: str, pid: int | None, child: multiprocessing.Process, warmup_s: float) -> dict[str, Any]:
    """Poll /health every 100 ms and RSS every second until the load process ends."""
    health_ms: list[float] = []
    health_bad: Counter[str] = Counter()
    rss: list[tuple[float, int]] = []
    start = time.monotonic()
    next_rss = start
    with httpx.Client(timeout=5) as client:
        while child.is_alive():
            tick = time.monotonic()
            try:
                t0 = time.perf_counter()
                status = client.get(base + "/health").status_code
                health_ms.append(1e3 * (time.perf_counter() - t0))
                if status != 200:
                    health_bad[f"HTTP {status}"] += 1
            except httpx.HTTPError as exc:
                health_bad[type(exc).__name__] += 1
            if pid is not None and tick >= next_rss:
                value = rss_bytes(pid)
                if value is not None:
                    rss.append((tick - start, value))
                next_rss += 1.0
            time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
    end = rss[-1][0] if rss else 0.0
    return {"health_ms": health_ms, "health_bad": dict(health_bad), "rss": rss,
            "rss_warm": _window_median(rss, warmup_s), "rss_end": _window_median(rss, end)}  # fmt: skip


def _window_median(series: list[tuple[float, int]], at: float, window_s: float = 10.0) -> float | None:
    """Median RSS over the ``window_s`` seconds before ``at`` (one sample jumps with the batch in flight)."""
    values = [v for t, v in series if at - window_s <= t <= at]
    return float(np.median(values)) if values else None


def settle(base: str, headers: dict, timeout_s: float = 30.0) -> tuple[dict[str, float], float]:
    """/metrics once running requests and KV usage are back to 0 (or after ``timeout_s``), and the wait."""
    start = time.monotonic()
    while True:
        values = read_metrics(base, headers)
        idle = values.get("num_requests_running", 1) == 0 and values.get("kv_cache_usage_perc", 1) == 0
        if idle or time.monotonic() - start > timeout_s:
            return values, time.monotonic() - start
        time.sleep(0.2)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def calibrate(base: str, headers: dict) -> tuple[str, int, float]:
    """Served model name, max_model_len, and characters per token of the filler text (from /tokenize)."""
    card = httpx.get(base + "/v1/models", headers=headers, timeout=10).json()["data"][0]
    text = " ".join(SENTENCES * 20)
    count = httpx.post(base + "/tokenize", headers=headers, json={"prompt": text}, timeout=10).json()["count"]
    return card["id"], int(card.get("max_model_len") or 2048), len(text) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs")
    parser.add_argument(
        "--warmup-minutes", type=float, help="RSS baseline taken here (default: min(1, minutes/5))"
    )
    parser.add_argument("--model", default="builtin", help="model to serve (default: builtin)")
    parser.add_argument("--url", help="soak a running server at this base URL instead of starting one")
    parser.add_argument("--pid", type=int, help="with --url: the server's process id, for its RSS")
    parser.add_argument("--api-key", help="key for a server started with --api-key")
    parser.add_argument("--kv-cache-memory", default="256MiB", help="KV pool of the server started here")
    parser.add_argument(
        "--max-model-len", type=int, help="for the server started here (default: the model's)"
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--abandon", type=float, default=0.25, help="share of streams the client drops mid-way"
    )
    parser.add_argument("--stream-fraction", type=float, default=0.75, help="share of requests streamed")
    parser.add_argument("--max-prompt-tokens", type=int, default=3000)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    warmup_s = 60 * (args.warmup_minutes if args.warmup_minutes is not None else min(1.0, args.minutes / 5))
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    server = None
    if args.url:
        base, pid = args.url.rstrip("/"), args.pid
    else:
        workdir = Path(tempfile.mkdtemp(prefix="ctxops-soak-"))
        port = free_port()
        server = start_soak_server(args, port, workdir)
        base, pid = f"http://127.0.0.1:{port}", server.pid
    try:
        model, max_len, cpt = calibrate(base, headers)
        before = read_metrics(base, headers)
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        child = ctx.Process(target=_load_process, args=(args, base, headers, model, max_len, cpt, queue))
        child.start()
        load_start = time.monotonic()
        results, watched = _collect(queue, child, base, pid, warmup_s)
        watched["wall_s"] = time.monotonic() - load_start
        after, settle_s = settle(base, headers)
        rss_settled = rss_bytes(pid) if pid is not None else None
        alive = server is None or server.poll() is None
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    label = model if args.url else f"{args.model} (KV pool {args.kv_cache_memory})"
    report = summarize(args, results, watched, before, after, settle_s, rss_settled, alive, label, max_len)
    print(markdown(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    sys.exit(0 if all(report["checks"].values()) else 1)


def _collect(queue, child, base: str, pid: int | None, warmup_s: float) -> tuple[list, dict]:
    """Watch while the load runs; the results arrive through the queue (read before join: a full pipe blocks)."""
    box: dict[str, Any] = {}
    reader = threading.Thread(target=lambda: box.setdefault("results", queue.get()), daemon=True)
    reader.start()
    watched = watch(base, pid, child, warmup_s)
    reader.join()
    child.join()
    return box["results"], watched


def summarize(args, results, watched, before, after, settle_s, rss_settled, alive, model, max_len) -> dict:
    finished = [r for r in results if not r["abandoned"] and r["error"] is None]
    errors = Counter(r["error"] for r in results if r["error"] is not None)
    server_errors = sum(
        n for kind, n in errors.items() if kind.startswith("HTTP 5") or "stream error" in kind
    )
    ttft = [r["ttft"] for r in finished if r["ttft"] is not None]
    e2e = [r["e2e"] for r in finished]
    rss_warm, rss_end = watched["rss_warm"], watched["rss_end"]
    growth = (rss_end - rss_warm) / rss_warm if rss_warm and rss_end else None
    health = watched["health_ms"]
    server_side = {
        key: after.get(key, 0.0) - before.get(key, 0.0)
        for key in ("request_success_total", "request_success_total:abort", "request_errors_total",
                    "num_preemptions_total", "prompt_tokens_total", "generation_tokens_total")
    }  # fmt: skip
    checks = {
        "no_errors": not errors and not watched["health_bad"] and alive,
        "kv_blocks_freed": after.get("kv_cache_usage_perc") == 0.0,
        "no_requests_running": after.get("num_requests_running") == 0.0,
        "rss_growth_le_5pct": growth is not None and growth <= 0.05,
        "health_p99_lt_100ms": pct(health, 99) < 100,
    }
    return {
        "model": model, "max_model_len": max_len, "minutes": args.minutes, "concurrency": args.concurrency,
        "requests": len(results), "finished": len(finished), "wall_s": watched["wall_s"],
        "requests_per_s": len(results) / watched["wall_s"],
        "output_tokens_per_s": server_side["generation_tokens_total"] / watched["wall_s"],
        "abandoned": sum(r["abandoned"] for r in results),
        "streamed": sum(r["stream"] for r in results), "chat": sum(r["chat"] for r in results),
        "errors": dict(errors), "server_errors": server_errors,
        "ttft_ms": {q: 1e3 * pct(ttft, q) for q in (50, 90, 99)},
        "e2e_ms": {q: 1e3 * pct(e2e, q) for q in (50, 90, 99)},
        "health_ms": {q: pct(health, q) for q in (50, 99)} | {"max": max(health, default=float("nan"))},
        "health_polls": len(health), "health_failures": watched["health_bad"],
        "rss_mib": {"warm": _mib(rss_warm), "end": _mib(rss_end), "settled": _mib(rss_settled),
                    "peak": _mib(max((v for _, v in watched["rss"]), default=None))},
        "rss_growth_pct": None if growth is None else 100 * growth,
        "after_load": {"kv_cache_usage_perc": after.get("kv_cache_usage_perc"),
                       "num_requests_running": after.get("num_requests_running"),
                       "num_requests_waiting": after.get("num_requests_waiting"), "settle_s": settle_s},
        "server_counters": server_side, "server_alive": alive, "checks": checks,
        "rss_series": watched["rss"][:: max(1, len(watched["rss"]) // 120)],
    }  # fmt: skip


def _mib(value: float | None) -> float | None:
    return None if value is None else value / 2**20


def markdown(r: dict) -> str:
    def ms(d: dict) -> str:
        return " / ".join(f"{d[q]:.0f}" for q in (50, 90, 99))

    errors = ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "none"
    rss, after, c = r["rss_mib"], r["after_load"], r["server_counters"]
    rows = [
        ("model, concurrency, duration", f"{r['model']} (max_model_len {r['max_model_len']}), "
                                         f"{r['concurrency']} clients, {r['minutes']:g} min"),
        ("requests (finished / abandoned by the client)", f"{r['requests']} ({r['finished']} / {r['abandoned']})"),
        ("load wall time, requests/s, output tokens/s",
         f"{r['wall_s']:.0f} s, {r['requests_per_s']:.2f}, {r['output_tokens_per_s']:.0f}"),
        ("streamed / chat", f"{r['streamed']} / {r['chat']}"),
        ("errors by kind", errors),
        ("TTFT p50 / p90 / p99 (ms, finished streams)", ms(r["ttft_ms"])),
        ("e2e p50 / p90 / p99 (ms, finished requests)", ms(r["e2e_ms"])),
        ("/health p50 / p99 / max (ms), polls", f"{r['health_ms'][50]:.1f} / {r['health_ms'][99]:.1f} / "
                                                f"{r['health_ms']['max']:.1f}, {r['health_polls']}"),
        ("server RSS warm-up end / load end / peak (MiB; 10 s medians)", f"{_f(rss['warm'])} / {_f(rss['end'])} / {_f(rss['peak'])}"),
        ("RSS growth after warm-up", "n/a" if r["rss_growth_pct"] is None else f"{r['rss_growth_pct']:+.2f}%"),
        ("after the load: kv_cache_usage_perc, num_requests_running",
         f"{after['kv_cache_usage_perc']}, {after['num_requests_running']} (after {after['settle_s']:.1f} s)"),
        ("server: aborted requests, preemptions, prompt / generated tokens",
         f"{c['request_success_total:abort']:.0f}, {c['num_preemptions_total']:.0f}, "
         f"{c['prompt_tokens_total']:.0f} / {c['generation_tokens_total']:.0f}"),
        ("checks", ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in r["checks"].items())),
    ]  # fmt: skip
    return "\n".join(["| soak | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    main()
