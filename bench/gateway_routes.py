"""The gateway's routes under load: overhead per request, streams across route reloads, and a hybrid length table.

Three parts, each against real `ctxops serve builtin` processes on loopback:

- ``overhead``: ``--requests`` unstreamed 1-token completions sent one at a time, alternating between the upstream
  directly and the gateway (routes file, one arm); the added latency is the difference of the two p50s.
- ``reloads``: ``--streams`` concurrent streamed completions (64 tokens each, repeated) through a gateway with two
  arms while ``--reloads`` weight changes go through ``PUT /admin/routes``; a stream is broken when it raises or
  ends without a finish reason. After the last reload, five requests are sent and counted by the arm that served
  them (all should come from the newly weighted arm: a PUT takes effect for the next request).
- ``hybrid``: an edge arm (``--max-model-len 2048``, cost 1) and a long arm (8192, cost 4) under the ``length``
  policy; a mixed-length load (prompts of ~300 to ~6000 tokens, each path its own prompts) goes through the gateway and the same load goes
  to the long arm alone; the table gives requests and prompt tokens per arm and bucket, and p50 latency per bucket
  both ways.

Speed numbers on a shared CPU box are noisy (other jobs compete for the cores): read them as orders of magnitude.

    python bench/gateway_routes.py --part all --requests 200 --streams 32 --reloads 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
from server_process import free_port, start_server

ADMIN = {"Authorization": "Bearer bench-admin"}


def routes_file(path: Path, policy: str, arms: list[dict]) -> Path:
    lines = ["[models.gw]", f'policy = "{policy}"']
    for arm in arms:
        lines.append("[[models.gw.arms]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in arm.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def serve(work: Path, name: str, args: list[str]) -> tuple[str, object]:
    port = free_port()
    folder = work / name
    folder.mkdir()
    proc = start_server([*args, "--request-log", str(folder / "requests.db")], port, folder, timeout_s=600)
    return f"http://127.0.0.1:{port}", proc


def gateway(work: Path, name: str, policy: str, arms: list[dict]) -> tuple[str, object]:
    path = routes_file(work / f"{name}.toml", policy, arms)
    return serve(work, name, ["gw", "--routes", str(path), "--admin-key", "bench-admin"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc; every thread of it)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def overhead(work: Path, upstream: str, n: int) -> dict:
    """Added p50 latency, and the gateway's own CPU per request: on a shared box the CPU figure is the steadier one
    (the wall difference swings with whatever else runs; CPU time is what the gateway adds on an idle core)."""
    gw, proc = gateway(work, "gw-overhead", "weighted", [{"name": "a", "upstream": upstream + "/v1"}])
    times: dict[str, list[float]] = {"direct": [], "gateway": []}
    cpu_before = cpu_seconds(proc.pid)
    with httpx.Client(timeout=60) as client:
        for i in range(n + 10):
            for label, base, model in (("direct", upstream, "builtin"), ("gateway", gw, "gw"))[
                :: 1 if i % 2 else -1
            ]:
                start = time.perf_counter()
                client.post(base + "/v1/completions", json={"model": model, "prompt": "hi", "max_tokens": 1})
                if i >= 10:  # the first ten warm both paths up
                    times[label].append(time.perf_counter() - start)
    cpu_ms = (cpu_seconds(proc.pid) - cpu_before) * 1000 / (n + 10)
    proc.terminate()
    p50 = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return {"requests": n, "p50_ms": p50, "added_p50_ms": p50["gateway"] - p50["direct"],
            "gateway_cpu_ms_per_request": round(cpu_ms, 2), "load_average": os.getloadavg()[0]}  # fmt: skip


async def _stream(client: httpx.AsyncClient, gw: str, stop: asyncio.Event, tally: dict) -> None:
    body = {"model": "gw", "prompt": "stream", "max_tokens": 64, "stream": True, "ignore_eos": True}
    while not stop.is_set():
        finished = False
        try:
            async with client.stream("POST", gw + "/v1/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                        item = json.loads(line[5:])
                        finished = finished or any(c.get("finish_reason") for c in item.get("choices") or [])
            tally["ok" if finished else "broken"] += 1
        except httpx.HTTPError:
            tally["broken"] += 1


async def reloads(work: Path, upstreams: list[str], streams: int, n_reloads: int) -> dict:
    arms = [{"name": "a", "upstream": upstreams[0] + "/v1"}, {"name": "b", "upstream": upstreams[1] + "/v1"}]
    gw, proc = gateway(work, "gw-reloads", "weighted", arms)
    tally: dict[str, int] = defaultdict(int)
    stop = asyncio.Event()
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=streams + 8)) as client:
        tasks = [asyncio.create_task(_stream(client, gw, stop, tally)) for _ in range(streams)]
        await asyncio.sleep(2)
        for i in range(n_reloads):
            weights = {"a": float(i % 2), "b": float(1 - i % 2)}
            answer = await client.put(gw + "/admin/routes", json={"weights": weights}, headers=ADMIN)
            assert answer.status_code == 200, answer.text
            await asyncio.sleep(0.5)
        await client.put(gw + "/admin/routes", json={"weights": {"a": 0.0, "b": 1.0}}, headers=ADMIN)
        await client.put(gw + "/admin/routes", json={"weights": {"a": 1.0, "b": 0.0}}, headers=ADMIN)
        changed = time.perf_counter()  # every request sent after the PUT answered should come from arm a
        hits = []
        for _ in range(5):
            r = await client.post(
                gw + "/v1/completions", json={"model": "gw", "prompt": "x", "max_tokens": 1}
            )
            hits.append(r.headers.get("x-ctxops-upstream") == upstreams[0].removeprefix("http://"))
        effective = {"requests_after_put": len(hits), "on_new_arm": sum(hits),
                     "seconds_for_them": time.perf_counter() - changed}  # fmt: skip
        stop.set()
        await asyncio.gather(*tasks)
    proc.terminate()
    return {"streams": streams, "reloads": n_reloads, "streams_finished": tally["ok"], "broken": tally["broken"],
            "after_last_put": effective}  # fmt: skip


def hybrid(work: Path, n_per_bucket: int) -> dict:
    edge, edge_proc = serve(
        work, "edge", ["builtin", "--max-model-len", "2048", "--kv-cache-memory", "64MiB"]
    )
    long, long_proc = serve(
        work, "long", ["builtin", "--max-model-len", "8192", "--kv-cache-memory", "256MiB"]
    )
    arms = [{"name": "edge", "upstream": edge + "/v1", "max_model_len": 2048, "cost": 1.0},
            {"name": "long", "upstream": long + "/v1", "max_model_len": 8192, "cost": 4.0}]  # fmt: skip
    gw, gw_proc = gateway(work, "gw-hybrid", "length", arms)
    targets = {"~300": 300, "~1000": 1000, "~1900": 1900, "~3000": 3000, "~6000": 6000}  # prompt tokens
    sample = " ".join(f"w{j % 997}" for j in range(400))
    per_word = (
        httpx.post(long + "/tokenize", json={"prompt": sample}).json()["count"] / 400
    )  # tokens per word
    table: dict[str, dict] = {}
    with httpx.Client(timeout=600) as client:
        for bucket, tokens in targets.items():
            rows: dict[str, list] = defaultdict(list)
            for i in range(n_per_bucket):
                for k, (label, base, model) in enumerate(
                    (("routed", gw, "gw"), ("all_long", long, "builtin"))
                ):
                    # each path its own prompt: no prefix-cache hit from the other path's request
                    words = (f"w{(i * 7 + k * 13 + j) % 997}" for j in range(int(tokens / per_word)))
                    prompt = f"{label} {i} " + " ".join(words)
                    start = time.perf_counter()
                    r = client.post(base + "/v1/completions",
                                    json={"model": model, "prompt": prompt, "max_tokens": 16, "ignore_eos": True})  # fmt: skip
                    elapsed = time.perf_counter() - start
                    used = r.json().get("usage") or {}
                    arm = r.headers.get("x-ctxops-upstream", "long")
                    arm = "edge" if arm == edge.removeprefix("http://") else "long"
                    rows[label].append((elapsed, arm, used.get("prompt_tokens") or 0, r.status_code))
            table[bucket] = {
                "prompt_tokens_mean": statistics.mean(t for _, _, t, _ in rows["routed"]),
                "routed_to": {a: sum(1 for _, x, _, _ in rows["routed"] if x == a) for a in ("edge", "long")},
                "errors": sum(1 for *_, s in rows["routed"] if s != 200),
                "p50_s_routed": statistics.median(e for e, *_ in rows["routed"]),
                "p50_s_all_long": statistics.median(e for e, *_ in rows["all_long"]),
                "edge_prompt_tokens": sum(t for _, x, t, _ in rows["routed"] if x == "edge"),
                "long_prompt_tokens": sum(t for _, x, t, _ in rows["routed"] if x == "long"),
            }
    for proc in (gw_proc, edge_proc, long_proc):
        proc.terminate()
    total = {k: sum(b[k] for b in table.values()) for k in ("edge_prompt_tokens", "long_prompt_tokens")}
    return {"per_bucket": table, "tokens": total,
            "share_of_tokens_kept_off_the_long_arm": total["edge_prompt_tokens"] / max(1, sum(total.values()))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["overhead", "reloads", "hybrid", "all"], default="all")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--per-bucket", type=int, default=4)
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.part in ("overhead", "reloads", "all"):
            a, a_proc = serve(work, "a", ["builtin", "--kv-cache-memory", "128MiB"])
            b, b_proc = serve(work, "b", ["builtin", "--kv-cache-memory", "128MiB"])
            if args.part in ("overhead", "all"):
                results["overhead"] = overhead(work, a, args.requests)
                print(json.dumps(results["overhead"]), flush=True)
            if args.part in ("reloads", "all"):
                results["reloads"] = asyncio.run(reloads(work, [a, b], args.streams, args.reloads))
                print(json.dumps(results["reloads"]), flush=True)
            a_proc.terminate()
            b_proc.terminate()
        if args.part in ("hybrid", "all"):
            results["hybrid"] = hybrid(work, args.per_bucket)
            print(json.dumps(results["hybrid"], indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
