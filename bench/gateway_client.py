"""The gateway's upstream hop, client by client: CPU per streamed request with ctxops' client, httpx and aiohttp.

One real ``ctxops serve builtin`` upstream on loopback; each client sends ``--requests`` streamed 1-token
completions one at a time (as the gateway does: ``stream: true`` with usage, every SSE line read, the connection
kept alive) and the CPU time of this process per request is printed (``time.process_time``: what the client itself
costs, independent of how busy the upstream and the rest of the machine are), with the p50 wall time beside it.
Rounds alternate the clients so that load changes hit all of them. aiohttp is measured when it is installed
(``pip install aiohttp``; it is not a ctxops dependency).

    python bench/gateway_client.py --requests 300 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from server_process import free_port, start_server

from ctxops.serve.backends.http_client import HTTPClient

BODY = {
    "model": "builtin",
    "prompt": "hi",
    "max_tokens": 1,
    "stream": True,
    "stream_options": {"include_usage": True},
}


async def ours(url: str, n: int) -> list[float]:
    client = HTTPClient(timeout_s=60)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = await client.request("POST", url, BODY)
        async for line in response.aiter_lines():
            if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                json.loads(line[5:])
        await response.aclose()
        times.append(time.perf_counter() - start)
    await client.aclose()
    return times


async def with_httpx(url: str, n: int) -> list[float]:
    times = []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(n):
            start = time.perf_counter()
            async with client.stream("POST", url, json=BODY) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:") and line[5:].strip() != "[DONE]":
                        json.loads(line[5:])
            times.append(time.perf_counter() - start)
    return times


async def with_aiohttp(url: str, n: int) -> list[float]:
    import aiohttp

    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            start = time.perf_counter()
            async with session.post(url, json=BODY) as response:
                async for line in response.content:
                    if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                        json.loads(line[5:])
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    clients = {"ctxops": ours, "httpx": with_httpx}
    try:
        import aiohttp  # noqa: F401

        clients["aiohttp"] = with_aiohttp
    except ImportError:
        print("aiohttp is not installed: measuring ctxops and httpx only")
    cpu: dict[str, list[float]] = {name: [] for name in clients}
    wall: dict[str, list[float]] = {name: [] for name in clients}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = start_server(["builtin", "--kv-cache-memory", "128MiB"], port, Path(tmp), timeout_s=600)
        url = f"http://127.0.0.1:{port}/v1/completions"
        try:
            for run in clients.values():  # warm-up: imports, first connections
                asyncio.run(run(url, 10))
            for _ in range(args.rounds):
                for name, run in clients.items():
                    before = time.process_time()
                    times = asyncio.run(run(url, args.requests))
                    cpu[name].append((time.process_time() - before) * 1000 / args.requests)
                    wall[name] += times
        finally:
            proc.terminate()
    result = {
        name: {
            "cpu_ms_per_request": [round(c, 3) for c in cpu[name]],
            "p50_wall_ms": round(statistics.median(wall[name]) * 1000, 2),
        }
        for name in clients
    }
    base = statistics.median(cpu["ctxops"])
    for name in clients:
        result[name]["cpu_vs_ctxops"] = round(statistics.median(cpu[name]) / base, 2)
    result["load_average"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
