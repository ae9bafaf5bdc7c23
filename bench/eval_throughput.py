"""Eval throughput: samples per hour with the samples in plan order, against prefix-sharing order.

Both runs evaluate the same model on the same samples (same tasks, lengths, seeds, depths, concurrency) in-process:

  plan order      samples sent as planned (task, length, sample index), as many in flight as --concurrency allows;
                  samples of one length that share their haystack up to the needle compute that prefix each.
  prefix order    ``ctxops eval``'s default: each (task, length) group deepest needle first, and a sample that
                  shares at least a quarter of its prompt with its group's first sample waits for it to finish, so
                  the shared prefix comes from the prefix cache.

Prints, per run: wall time, samples per hour, the share of prompt tokens served from the prefix cache and the score;
then the ratio prefix / plan of samples per hour and how many greedy outputs differ between the runs. Each run gets a
fresh engine (an empty prefix cache) warmed up on an unrelated prompt. Measures the installed ``ctxops``.

Usage: python bench/eval_throughput.py [--model builtin] [--tasks niah_single_1,niah_single_2]
       [--lengths 2k,4k] [--samples 10] [--concurrency 8] [--kv-cache-memory 512MiB]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from ctxops.engine.config import EngineConfig
from ctxops.evals.config import EvalConfig, parse_lengths, parse_tasks
from ctxops.evals.rundir import RunDir
from ctxops.evals.runner import run_eval
from ctxops.evals.targets.local import LocalTarget


async def _warm(target: LocalTarget) -> None:
    from ctxops.engine.sampling_params import SamplingParams

    ids = target.count_tokens.tokenizer.encode("The weather was mild and the roads were quiet. " * 40)
    async for _ in target.llm.generate(ids, SamplingParams(temperature=0.0, max_tokens=4), "warmup"):
        pass


async def _run(config: EvalConfig, engine: EngineConfig, out: Path) -> dict:
    target = LocalTarget(engine)
    await target.start()
    await _warm(target)
    start = time.perf_counter()
    outcome = await run_eval(config, target, RunDir(out), show_progress=False)  # closes the target
    seconds = time.perf_counter() - start
    records = list(RunDir(out).records())
    prompt = sum(r["prompt_tokens"] or 0 for r in records)
    cached = sum(r["cached_tokens"] or 0 for r in records)
    return {
        "seconds": seconds,
        "samples": outcome.done,
        "per_hour": 3600 * outcome.done / seconds,
        "cached_share": cached / prompt if prompt else 0.0,
        "score": 100 * sum(r["score"] for r in records) / len(records),
        "outputs": {(r["task"], r["length"], r["depth"], r["seed"]): r["output"] for r in records},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--tasks", default="niah_single_1,niah_single_2")
    parser.add_argument("--lengths", default="2k,4k")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--kv-cache-memory", default="512MiB")
    args = parser.parse_args()
    engine = EngineConfig(model=args.model, kv_cache_memory=args.kv_cache_memory)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, share in (("plan order", False), ("prefix order", True)):
            config = EvalConfig(
                tasks=parse_tasks(args.tasks), lengths=parse_lengths(args.lengths), samples=args.samples,
                concurrency=args.concurrency, share_prefixes=share,
            )  # fmt: skip
            result = asyncio.run(_run(config, engine, Path(tmp) / name.replace(" ", "-")))
            results[name] = result
            print(
                f"{name:<13} {result['samples']} samples in {result['seconds']:7.1f} s  "
                f"{result['per_hour']:8.0f} samples/h  prefix-cache share of prompt tokens "
                f"{100 * result['cached_share']:5.1f}%  score {result['score']:5.1f}",
                flush=True,
            )
    before, after = results["plan order"], results["prefix order"]
    differ = sum(before["outputs"][k] != after["outputs"].get(k) for k in before["outputs"])
    print(f"ratio prefix/plan samples per hour: {after['per_hour'] / before['per_hour']:.2f}")
    print(f"greedy outputs that differ between the runs: {differ} of {len(before['outputs'])}")


if __name__ == "__main__":
    main()
