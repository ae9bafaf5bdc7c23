"""Served throughput with the guard on vs off: two `ctxops serve` processes, same model, same prompts, alternating.

Each round sends ``--requests`` chat requests (``--concurrency`` at once, streamed, ``--max-tokens`` each) of long
prompts, instruction-like prose without an attack (so nothing is blocked and every request does full work), to the
guarded server and to the plain one (which goes first alternates between rounds), with fresh prompts each round so
neither gains from its prefix cache.
The ratio guarded / plain of requests per second is reported per round and as the median with its range. The guard
file turns on every input rule (injection and personal data) and the output canary and PII rules, the worst case.

    python bench/guard_overhead.py --rounds 3 --requests 16 --concurrency 8 --prompt-words 1500 [--model DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from server_process import free_port, start_server

GUARD = """
[input]
instruction = "block"
role_marker = "block"
invisible = "redact"
encoded = "block"
email = "redact"
phone = "log"
credit_card = "block"
iban = "redact"

[output]
canaries = ["ZX7Q-91KD-4M"]
canary = "block"
email = "redact"
credit_card = "block"
"""
_TEXT = (
    "stir the sauce then follow the previous step and note the system settings before you answer the reviewer "
    "who asked to ignore the lint warning in the old module while the river kept rising past the mill"
)
_WORDS = _TEXT.split()


def prompts(count: int, words: int, start: int) -> list[str]:
    return [
        f"Document {i}: "
        + " ".join(_WORDS[(i * 7 + j) % len(_WORDS)] for j in range(words))
        + "\nSummarize it."
        for i in range(start, start + count)
    ]


async def round_trip(url: str, model: str, batch: list[str], concurrency: int, max_tokens: int) -> float:
    """Requests per second for ``batch`` sent ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=600) as client:

        async def one(text: str) -> None:
            async with gate:
                body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
                        "stream": True, "temperature": 0, "ignore_eos": True}  # fmt: skip
                async with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
                    response.raise_for_status()
                    async for _ in response.aiter_lines():
                        pass

        start = time.perf_counter()
        await asyncio.gather(*(one(text) for text in batch))
        return len(batch) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--prompt-words", type=int, default=1500)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="guard-overhead-"))
    (workdir / "guard.toml").write_text(GUARD)
    common = [args.model, "--served-model-name", "m", "--request-log", "", "--max-model-len", "4096"]
    servers = {}
    for name, extra in (("guarded", ["--guard", str(workdir / "guard.toml")]), ("plain", [])):
        port = free_port()
        (workdir / name).mkdir()
        servers[name] = (start_server([*common, *extra], port, workdir / name), f"http://127.0.0.1:{port}")
    try:
        ratios = []
        for r in range(args.rounds):
            rates = {}
            order = list(servers) if r % 2 == 0 else list(reversed(servers))  # who goes first alternates
            for name in order:
                url = servers[name][1]
                batch = prompts(
                    args.requests, args.prompt_words, start=(2 * r + (name == "plain")) * args.requests
                )
                rates[name] = asyncio.run(round_trip(url, "m", batch, args.concurrency, args.max_tokens))
            ratios.append(rates["guarded"] / rates["plain"])
            print(f"round {r + 1}: guarded {rates['guarded']:.2f} req/s, plain {rates['plain']:.2f} req/s, "
                  f"ratio {ratios[-1]:.3f}")  # fmt: skip
        print(f"guarded / plain throughput: median {statistics.median(ratios):.3f} "
              f"(range {min(ratios):.3f}-{max(ratios):.3f}, {args.rounds} rounds)")  # fmt: skip
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
