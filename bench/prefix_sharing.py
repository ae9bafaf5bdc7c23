"""In-batch prefix sharing: eight questions about one document, sent together, against the document cached first.

Each prompt is the same 64-token header + the same 2,000-token document + its own 16-token question. The header
alone is already cached (an earlier request with the same system prompt) in both scenarios:

  document-first  one request with the document is run first, then the eight questions (the document is cached);
                  the time is both calls together.
  one batch       the eight prompts go in one ``generate`` call; the scheduler must compute the document once and
                  let the other seven wait for it and reuse it.

Prints each scenario's time (every repeat and the best), the prompt tokens served from the prefix cache per
request, the ratio one-batch / document-first (the target is <= 1.2) and whether the greedy outputs of both
scenarios agree. Every repeat builds a fresh engine and warms it up on an unrelated 2K prompt, so no scenario pays
first-call costs or finds the other's blocks. Measures the installed ``ctxops`` (put another checkout's ``src`` on
``PYTHONPATH`` to measure it instead).

Usage: python bench/prefix_sharing.py [--dtype bfloat16|float32] [--threads 2] [--repeats 3] [--new-tokens 16]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import torch
from engine_vs_hf import SHAPE, build_model, tokens

import ctxops
from ctxops import LLM, SamplingParams

HEADER, DOCUMENT, QUESTION, QUESTIONS = 64, 2000, 16, 8


def fresh_llm(path: Path, dtype: str) -> LLM:
    llm = LLM(str(path), dtype=dtype, max_model_len=4096, kv_cache_memory="1GiB", max_num_batched_tokens=8192)
    warm = SamplingParams(temperature=0, max_tokens=2, ignore_eos=True)
    llm.generate([tokens(2048, 999)], warm, use_tqdm=False)  # first-call allocations, away from the timings
    return llm


def timed(llm: LLM, prompts: list[list[int]], params: SamplingParams) -> tuple[float, list]:
    start = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)
    return time.perf_counter() - start, outs


def run_once(path: Path, dtype: str, new_tokens: int) -> dict[str, tuple[float, list[int], list[list[int]]]]:
    header, document = tokens(HEADER, 1), tokens(DOCUMENT, 2)
    prompts = [header + document + tokens(QUESTION, 100 + q) for q in range(QUESTIONS)]
    params = SamplingParams(temperature=0, max_tokens=new_tokens, ignore_eos=True)
    one = SamplingParams(temperature=0, max_tokens=1, ignore_eos=True)
    results = {}
    for scenario in ("document-first", "one batch"):
        llm = fresh_llm(path, dtype)
        llm.generate([header + tokens(QUESTION, 50)], one, use_tqdm=False)  # the header alone is cached
        seconds = 0.0
        if scenario == "document-first":
            seconds, _ = timed(llm, [header + document + tokens(QUESTION, 51)], one)
        batch_seconds, outs = timed(llm, prompts, params)
        results[scenario] = (
            seconds + batch_seconds,
            [o.num_cached_tokens for o in outs],
            [o.outputs[0].token_ids for o in outs],
        )
        del llm
        gc.collect()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=16)
    args = parser.parse_args()
    if args.repeats < 1 or args.threads < 1 or args.new_tokens < 1:
        parser.error("--repeats, --threads and --new-tokens must be at least 1")
    torch.set_num_threads(args.threads)
    print(
        f"ctxops from {Path(ctxops.__file__).parent}; random Llama {SHAPE['hidden_size']}h x "
        f"{SHAPE['num_hidden_layers']}L, {args.dtype}, {args.threads} threads, torch {torch.__version__}",
        flush=True,
    )
    times: dict[str, list[float]] = {"document-first": [], "one batch": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = build_model(Path(tmp))
        for rep in range(args.repeats):
            results = run_once(path, args.dtype, args.new_tokens)
            for scenario, (seconds, cached, _) in results.items():
                times[scenario].append(seconds)
                print(
                    f"  repeat {rep + 1}: {scenario:<15} {seconds:6.2f} s  cached tokens {cached}", flush=True
                )
    outputs = {scenario: result[2] for scenario, result in results.items()}
    same = sum(a == b for a, b in zip(outputs["document-first"], outputs["one batch"], strict=True))
    best = {scenario: min(values) for scenario, values in times.items()}
    print(f"\n{'scenario':<16} {'best (s)':>9} {'all repeats (s)':>24}  cached tokens (last repeat)")
    for scenario, values in times.items():
        spread = " ".join(f"{v:.2f}" for v in values)
        print(f"{scenario:<16} {best[scenario]:>9.2f} {spread:>24}  {results[scenario][1]}")
    ratio = best["one batch"] / best["document-first"]
    print(
        f"one batch / document-first: {ratio:.2f}x (target <= 1.2x); greedy outputs equal {same}/{QUESTIONS}"
    )
    print(f"one-batch cached tokens: {sum(results['one batch'][1])} (target >= {(QUESTIONS - 1) * DOCUMENT})")


if __name__ == "__main__":
    main()
