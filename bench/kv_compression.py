"""What each KV setting saves and costs: bytes per token, tokens in a fixed budget, prefill and decode speed.

One process, the same prompt for every configuration; ratios are against the uncompressed cache (``auto``) of the
same model run. Models: a random-weight ~55M Llama (the shape of bench/engine_vs_hf.py; head_dim 64, 2 KV heads)
and the builtin model when src/ctxops/models/builtin/config.json exists.

Columns:
  B/token       KV bytes one cached token costs (all layers, scales included; the window pool is not per token)
  x bf16        tokens per byte against a bf16 cache of the same model (the issue's targets: int8 >= 1.9, int4 >= 3.5)
  tokens        prompt tokens that fit in --budget (a press keeps (1 - ratio) of each prompt: it fits 1/(1-ratio)x)
  prefill x     prefill speed (prompt tokens / TTFT) relative to auto
  decode x      decode speed (tokens / s after the first) relative to auto
  agree         greedy tokens equal to auto's (random weights: near-flat logits, a harsh test)

Usage: python bench/kv_compression.py [--prompt 2048] [--new 64] [--dtype bfloat16] [--block-size 16] [--threads 1]
       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from engine_vs_hf import SHAPE, build_model, tokens  # noqa: E402

from ctxops import LLM, SamplingParams  # noqa: E402
from ctxops.engine.kv_cache import bytes_per_token  # noqa: E402

BUILTIN = Path(__file__).resolve().parents[1] / "src/ctxops/models/builtin/config.json"

CONFIGS: list[tuple[str, dict]] = [
    ("auto", {}),
    ("int8", {"kv_cache_dtype": "int8"}),
    ("int4", {"kv_cache_dtype": "int4"}),
    ("snapkv 0.5", {"kv_press": "snapkv", "kv_compression_ratio": 0.5}),
    ("streaming_llm 0.5", {"kv_press": "streaming_llm", "kv_compression_ratio": 0.5}),
    ("h2o 0.5", {"kv_press": "h2o", "kv_compression_ratio": 0.5}),
    ("int4 + snapkv 0.5", {"kv_cache_dtype": "int4", "kv_press": "snapkv", "kv_compression_ratio": 0.5}),
    ("weights int8", {"quantization": "int8"}),
]


def run_one(path: str, settings: dict, prompt: list[int], new: int, args) -> dict:
    """One timed generate with a fresh engine (bench_model interleaves configurations round by round)."""
    llm = LLM(
        path,
        kv_cache_memory=args.budget,
        max_model_len=len(prompt) + new + 16,
        max_num_seqs=4,
        block_size=args.block_size,
        enable_prefix_caching=False,  # every repeat prefills for real
        dtype=args.dtype,
        **settings,
    )
    info = llm.cache_info
    params = SamplingParams(temperature=0, max_tokens=new, ignore_eos=True)
    llm.generate([prompt[:64]], SamplingParams(max_tokens=2), use_tqdm=False)  # warm up
    start = time.perf_counter()
    out = llm.generate([prompt], params, use_tqdm=False)[0]
    end = time.perf_counter()
    decode_s = out.metrics.finished_time - out.metrics.first_token_time
    best = {
        "ttft_s": out.metrics.first_token_time - out.metrics.arrival_time,
        "decode_tok_s": (new - 1) / decode_s,
        "e2e_s": end - start,
        "tokens": out.outputs[0].token_ids,
    }
    ratio = settings.get("kv_compression_ratio", 0.0) if settings.get("kv_press") else 0.0
    config = llm.engine.model_config
    return {
        **best,
        "bytes_per_token": info.bytes_per_token,
        "bf16_bytes_per_token": bytes_per_token(config, torch.bfloat16),
        "pool_tokens": info.num_tokens,
        "prompt_tokens_in_budget": int(info.num_tokens / (1.0 - ratio)),
        "window_bytes": info.window_bytes,
    }


def bench_model(name: str, path: str, args) -> list[dict]:
    prompt = tokens(args.prompt, seed=1)
    if name == "builtin":
        from ctxops.models.config import ModelConfig
        from ctxops.models.loader import resolve_model_path

        vocab = ModelConfig.from_path(resolve_model_path(path)).vocab_size
        prompt = [t % vocab for t in prompt]
    # round-robin over configurations, fastest of --repeats rounds each: load drift on a shared box hits all alike
    best: dict[str, dict] = {}
    for round_ in range(args.repeats):
        for label, settings in CONFIGS:
            result = run_one(path, settings, prompt, args.new, args)
            for key in ("ttft_s", "e2e_s"):
                result[key] = min(result[key], best.get(label, result)[key])
            result["decode_tok_s"] = max(result["decode_tok_s"], best.get(label, result)["decode_tok_s"])
            best[label] = result
        print(f"  round {round_ + 1}/{args.repeats} done", file=sys.stderr)
    rows = [{"model": name, "config": label, **best[label]} for label, _ in CONFIGS]
    base = rows[0]
    print(
        f"\n{name}: prompt {args.prompt} tokens, {args.new} new, budget {args.budget}, block {args.block_size}"
    )
    print(
        f"{'config':<20}{'B/token':>9}{'x bf16':>8}{'tokens':>10}{'prefill x':>11}{'decode x':>10}{'agree':>8}"
    )
    for r in rows:
        r["x_bf16"] = r["bf16_bytes_per_token"] / r["bytes_per_token"]
        r["prefill_x"] = base["ttft_s"] / r["ttft_s"]
        r["decode_x"] = r["decode_tok_s"] / base["decode_tok_s"]
        r["agree"] = sum(a == b for a, b in zip(r["tokens"], base["tokens"], strict=True)) / len(
            base["tokens"]
        )
        print(
            f"{r['config']:<20}{r['bytes_per_token']:>9}{r['x_bf16']:>8.2f}{r['prompt_tokens_in_budget']:>10}"
            f"{r['prefill_x']:>11.2f}{r['decode_x']:>10.2f}{r['agree']:>8.0%}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompt", type=int, default=2048)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--budget", default="256MiB", help="KV cache memory for every configuration")
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--dtype", default="bfloat16", help="weights, activations and the auto KV cache")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds over all configurations; the best counts"
    )
    parser.add_argument("--json", type=Path, default=None, help="write every row here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"building the random ~55M Llama ({SHAPE['num_hidden_layers']} layers)", file=sys.stderr)
        rows += bench_model("random-55M", str(build_model(Path(tmp))), args)
    if BUILTIN.exists():
        rows += bench_model("builtin", "builtin", args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
