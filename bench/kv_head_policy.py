"""What a head-aware KV policy really saves on `builtin`: bytes per token, what fits one budget, and decode speed.

The policy is `ctxops compress heads builtin`'s classification (bench/RESULTS.md: layer 1's two KV heads are
retrieval heads, the other six stream with 4 sink + 64 recent tokens), or --policy FILE. For one KV budget
(--budget) it prints, with and without the policy:
  - pool bytes per token, ring bytes per sequence, and the longest context one sequence can hold;
  - how many sequences of --length tokens fit at once: the arithmetic, and the engine's own count (N prompts
    submitted, the number running after the first step, with no preemption);
  - decode time per output token (median and min-max over --repeats) of --batch prompts of --length tokens:
    full cache, the split storage (native decode kernel when it is built), and the masked reference (the policy
    as a per-head mask over a full pool, torch path: what the engine ran before the split).

Usage: OMP_NUM_THREADS=1 python bench/kv_head_policy.py [--budget 64MiB] [--length 2048] [--batch 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from ctxops import LLM, SamplingParams
from ctxops.engine.config import parse_bytes
from ctxops.engine.kv_head_policy import HeadPolicy

BUILTIN_POLICY = HeadPolicy(
    ((False, False), (True, True), (False, False), (False, False)), 4, sink=4, recent=64
)


def _prompts(count: int, length: int) -> list[dict]:
    return [{"prompt_token_ids": [5 + (i * 7 + j * 13) % 2000 for j in range(length)]} for i in range(count)]


def fits(budget: int, length: int, policy_file: str | None, max_num_seqs: int) -> tuple[int, dict]:
    """Sequences of ``length`` tokens running at once after one step (``max_num_seqs + 1`` submitted, so the pool
    or ``max_num_seqs`` binds), and the pool these settings gave; (0, {}) when the settings do not fit at all."""
    settings = {"kv_cache_memory": budget, "max_model_len": length + 8, "max_num_seqs": max_num_seqs}
    if policy_file:
        settings["kv_head_policy"] = policy_file
    try:
        engine = LLM("builtin", max_num_batched_tokens=(max_num_seqs + 1) * (length + 8), **settings).engine
    except ValueError:
        return 0, {}
    for i, prompt in enumerate(_prompts(max_num_seqs + 1, length)):
        engine.add_request(str(i), prompt, SamplingParams(max_tokens=2, temperature=0, ignore_eos=True))
    engine.step()
    stats = engine.stats()
    assert stats.num_preemptions == 0
    return stats.num_running, engine.cache_info.to_dict()


def decode_time(llm: LLM, batch: int, length: int, new: int, repeats: int) -> list[float]:
    """Seconds per output token (decode only: the time after the first token over the tokens after it)."""
    params = SamplingParams(max_tokens=new, temperature=0, ignore_eos=True)
    per_token = []
    for _ in range(repeats):
        outs = llm.generate(_prompts(batch, length), params, use_tqdm=False)
        spans = [o.metrics.last_token_time - o.metrics.first_token_time for o in outs]
        per_token.append(max(spans) / (new - 1))
    return per_token


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", help="head_policy.json (default: builtin's layer-1 policy)")
    parser.add_argument("--budget", default="64MiB")
    parser.add_argument("--length", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    budget = parse_bytes(args.budget)
    with tempfile.TemporaryDirectory() as tmp:
        file = args.policy or str(Path(tmp) / "policy.json")
        if not args.policy:
            Path(file).write_text(json.dumps(BUILTIN_POLICY.to_dict()))
        policy = HeadPolicy.from_file(file)
        result: dict = {"budget": budget, "length": args.length, "policy": policy.to_dict()}
        for name, pfile in (("full", None), ("policy", file)):
            one = LLM("builtin", kv_cache_memory=budget, max_num_seqs=1, kv_head_policy=pfile).cache_info
            per_seq = one.sequence_bytes(args.length)  # its blocks, plus its ring under the policy
            arithmetic = budget // per_seq
            # the pool binds, not max_num_seqs: one more sequence than the arithmetic never runs
            running, info = fits(budget, args.length, pfile, max_num_seqs=arithmetic)
            more, _ = fits(budget, args.length, pfile, max_num_seqs=arithmetic + 1)
            assert running == arithmetic and more <= arithmetic, (running, more, arithmetic)
            result[name] = {
                "pool_bytes_per_token": one.bytes_per_token,
                "ring_bytes_per_sequence": one.ring_bytes_per_sequence,
                "max_context_one_sequence": one.num_tokens,
                "bytes_per_sequence": per_seq,
                f"sequences_of_{args.length}_fit": running,
                "pool": info,
            }
            print(name, json.dumps({k: v for k, v in result[name].items() if k != "pool"}), flush=True)
        if not args.no_speed:
            common = {"kv_cache_memory": "256MiB", "max_num_seqs": max(args.batch, 1)}
            full = LLM("builtin", **common)
            rows = {"full": full, "split": LLM("builtin", kv_head_policy=file, **common)}
            for name, llm in rows.items():
                result[f"tpot_{name}_s"] = decode_time(
                    llm, args.batch, args.length, args.new_tokens, args.repeats
                )
            full.engine.runner.head_window = policy.head_window()  # the masked reference, torch decode path
            result["tpot_masked_s"] = decode_time(
                full, args.batch, args.length, args.new_tokens, args.repeats
            )
            for name in ("full", "split", "masked"):
                times = result[f"tpot_{name}_s"]
                print(
                    f"TPOT {name}: median {statistics.median(times) * 1000:.2f} ms "
                    f"[{min(times) * 1000:.2f}, {max(times) * 1000:.2f}] over {len(times)} runs",
                    flush=True,
                )
        print(json.dumps(result))


if __name__ == "__main__":
    main()
