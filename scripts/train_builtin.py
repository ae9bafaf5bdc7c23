"""Train ctxops' ``builtin`` model from scratch: a small Llama for long-context retrieval, on a CPU or one GPU.

Usage::

    .venv/bin/python scripts/train_builtin.py --threads 1 --steps 3000      # the CPU recipe (v1, 77 min)
    OUT=results bash scripts/train_builtin_gpu.sh                           # the GPU recipe (v2)
    .venv/bin/python scripts/train_builtin.py --recipe cpu-keys-drill --init-from V2_DIR --out S1 \
        --threads 2 --workers 1                                             # v2 -> v3, stage 1 (6 min, 2 cores)
    .venv/bin/python scripts/train_builtin.py --recipe cpu-keys --init-from S1 \
        --threads 2 --workers 1                                             # stage 2 (20 min): v3, shipped
    .venv/bin/python scripts/train_builtin.py --steps 20 --tiny             # a smoke run (what the test does)

What it does, in one process with one optimizer:

1. trains a byte-level BPE tokenizer (single-digit tokens, ~2K vocabulary) on the eval generators' own text;
2. builds training documents from the same generators (``ctxops.evals``; ``builtin_training/data.py``): NIAH in
   noise and prose haystacks with many needles (distractors at all depths) and several questions per document,
   each answer in the exact eval format (chat template, then the answer prefix, then the answer), plus exact
   samples of the eval tasks (``build_sample``) at training seeds >= 10,000,000 (evaluation uses seeds from 42;
   held-out checks 9,000,000+); with ``--workers N`` they are built ahead in N processes;
3. trains (``builtin_training/model.py``) with loss on every answer token (other tokens weighted 0.1), a length
   curriculum from 64 tokens up, bf16 autocast, AdamW with warmup + cosine decay, over steps (CPU) or wall-clock
   time (``--minutes``, GPU); with ``key_aux`` > 0 a training-only key probe adds a loss that makes the model carry
   each needle's key to its value (what multi-key retrieval needs; never exported); the recipes are in
   ``builtin_training/recipe.py``;
4. checkpoints every few minutes (``--work`` dir) and resumes from the last checkpoint when rerun; logs loss and
   held-out exact-match accuracy to ``--work/log.jsonl``;
5. writes a Hugging Face model directory (config.json, model.safetensors or shards, tokenizer.json,
   tokenizer_config.json, generation_config.json) that ``ctxops.LLM`` loads like any other model.

This is a reproducible job, not part of ctxops' runtime: it imports ctxops.evals for its text, never the reverse.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # builtin_training/

from builtin_training.data import (  # noqa: E402  (re-exported: the tests use them from this script)
    NUM_ADJECTIVES,
    NUM_NOUNS,
    BatchPool,
    DocMaker,
)
from builtin_training.model import KeyProbe, Llama, weighted_loss  # noqa: E402
from builtin_training.recipe import (  # noqa: E402
    CHAT_TEMPLATE,
    EVAL_TASKS,
    HELDOUT_SEED_BASE,
    SPECIAL_TOKENS,
    Recipe,
)

from ctxops.compress.task_items import task_item  # noqa: E402  (eval items: one copy with ctxops compress)
from ctxops.compress.trainer import adamw, warmup_cosine  # noqa: E402


# ---------------------------------------------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------------------------------------------
def tokenizer_corpus(rng: random.Random) -> list[str]:
    """Text from the eval generators: prose, noise, needles, questions, answers, variable chains, words."""
    from ctxops.evals import words
    from ctxops.evals.haystack import NOISE_SENTENCES
    from ctxops.evals.prose import prose_sentences
    from ctxops.evals.tasks import niah, variable_tracking

    out = [" ".join(prose_sentences(rng, 40)) for _ in range(300)]
    out += [" ".join(NOISE_SENTENCES)] * 50
    for _ in range(3000):
        key = words.key_word(rng)
        kind = rng.choice(["numbers", "uuids", "words"])
        out.append(f"One of the special magic {kind} for {key} is: {words.number_value(rng)}.")
        out.append(niah.TEMPLATE.format(kind=kind, context="", query=key))
        out.append(niah.ANSWER_PREFIX.format(kind=kind, query=key))
    for _ in range(300):
        out.append(" ".join(variable_tracking.chain(rng)[2]))
        value = str(rng.randint(10000, 99999))
        out.append(variable_tracking.TEMPLATE.format(context="", value=value))
        out.append(variable_tracking.ANSWER_PREFIX.format(value=value))
        out.append(" ".join(words.pseudo_word(rng) for _ in range(20)))
    out += [" ".join(words.ADJECTIVES), " ".join(words.NOUNS)] * 20
    return out


def build_tokenizer(directory: Path, vocab_size: int, seed: int) -> None:
    """Byte-level BPE with digits split one per token; writes tokenizer.json + tokenizer_config.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(random.Random(seed)), trainer=trainer)
    bos = SPECIAL_TOKENS[0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    config = {
        "bos_token": bos,
        "eos_token": "<|im_end|>",
        "pad_token": "<|end_of_text|>",
        "chat_template": CHAT_TEMPLATE,
        "model_max_length": 8192,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# held-out accuracy: greedy exact match, measured by teacher forcing (argmax at every answer token = greedy output)
# ---------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def heldout_accuracy(model: Llama, maker: DocMaker, tasks: tuple[str, ...], length: int, n: int) -> dict:
    model.eval()
    device = next(model.parameters()).device
    out = {}
    for task in tasks:
        hits = 0
        for i in range(n):
            depth = (0.0, 0.25, 0.5, 0.75, 1.0)[i % 5]
            item = task_item(maker.counter, task, length, depth, HELDOUT_SEED_BASE + i)
            prompt, answer = item.prompt_ids, maker.encode_answer(item.answer)
            ids = torch.tensor([prompt + answer], device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits = model(ids[:, :-1])
            pred = logits[0, len(prompt) - 1 :].argmax(-1)
            hits += int(torch.equal(pred, ids[0, len(prompt) :]))
        out[f"{task}@{length}"] = round(hits / n, 3)
    model.train()
    return out


def load_weights(model: Llama, directory: Path) -> None:
    """Weights from a model directory this script exported (one safetensors file or a sharded index)."""
    from safetensors.torch import load_file

    index = directory / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else []
    state: dict[str, torch.Tensor] = {}
    for name in files or ["model.safetensors"]:
        state.update(load_file(str(directory / name)))
    model.load_state_dict(state)


# ---------------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------------
def export(model: Llama, tok_dir: Path, out: Path, vocab: int, shard_mb: float = 0.0) -> None:
    """A Hugging Face model directory; ``shard_mb`` > 0 splits the weights into shards of at most that size."""
    from safetensors.torch import save_file

    r = model.recipe
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if tok_dir.resolve() != out.resolve():
            (out / name).write_bytes((tok_dir / name).read_bytes())
    tok = json.loads((tok_dir / "tokenizer.json").read_text())
    specials = {t["content"]: t["id"] for t in tok["added_tokens"]}
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": r.hidden_size,
        "intermediate_size": r.intermediate_size,
        "num_hidden_layers": r.num_layers,
        "num_attention_heads": r.num_heads,
        "num_key_value_heads": r.num_kv_heads,
        "head_dim": r.hidden_size // r.num_heads,
        "hidden_act": "silu",
        "max_position_embeddings": r.max_position_embeddings,
        "rms_norm_eps": 1e-5,
        "rope_theta": r.rope_theta,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "float32",
        "bos_token_id": specials["<|begin_of_text|>"],
        "eos_token_id": specials["<|im_end|>"],
        "pad_token_id": specials["<|end_of_text|>"],
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    generation = {"eos_token_id": [specials["<|im_end|>"], specials["<|end_of_text|>"]], "do_sample": False}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    total = sum(v.numel() * v.element_size() for v in state.values())
    if shard_mb <= 0 or total <= shard_mb * 2**20:
        save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
        return
    shards: list[dict[str, torch.Tensor]] = [{}]
    for name, tensor in state.items():
        size = sum(v.numel() * v.element_size() for v in shards[-1].values())
        if shards[-1] and size + tensor.numel() * tensor.element_size() > shard_mb * 2**20:
            shards.append({})
        shards[-1][name] = tensor
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# training loop
# ---------------------------------------------------------------------------------------------------------------
def lr_at(r: Recipe, step: int, progress: float) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to ``min_lr_ratio`` over the schedule's progress."""
    frac = progress if r.minutes > 0 else (step - r.warmup) / max(1, r.steps - r.warmup)
    return warmup_cosine(r.lr, step, r.warmup, frac, r.min_lr_ratio)


def train(
    recipe: Recipe,
    work: Path,
    out: Path,
    quiet: bool = False,
    stop_at: int | None = None,
    device: str = "cpu",
    workers: int = 0,
    shard_mb: float = 0.0,
    final_eval: int = 0,
) -> dict:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    work.mkdir(parents=True, exist_ok=True)
    tok_dir = work / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file():
        build_tokenizer(tok_dir, recipe.vocab_size, recipe.seed)
    batches = BatchPool(tok_dir, recipe, workers)  # before any CUDA call (the workers fork)
    maker = batches.maker
    vocab = maker.tok.vocab_size

    torch.manual_seed(recipe.seed)
    model = Llama(recipe, vocab)
    if recipe.init_from:
        load_weights(model, Path(recipe.init_from))
    model = model.to(device)
    probe = KeyProbe(recipe.hidden_size, NUM_ADJECTIVES, NUM_NOUNS).to(
        device
    )  # training only, never exported
    params = [*model.parameters(), *(probe.parameters() if recipe.key_aux > 0 else [])]
    opt = adamw(params, recipe.lr, recipe.weight_decay, fused=device.startswith("cuda"))
    ckpt = work / "checkpoint.pt"
    state = {"step": 0, "tokens": 0, "seconds": 0.0}
    if ckpt.is_file():
        saved = torch.load(ckpt, weights_only=False, map_location=device)
        if saved["recipe"] != asdict(recipe):
            raise SystemExit(f"{ckpt} was written by a different recipe; remove {work} to start over")
        model.load_state_dict(saved["model"])
        probe.load_state_dict(saved["probe"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
        print(f"resumed from {ckpt} at step {state['step']}")

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save(
            {
                "recipe": asdict(recipe),
                "model": model.state_dict(),
                "probe": probe.state_dict(),
                "optimizer": opt.state_dict(),
                "state": state,
            },
            tmp,
        )
        os.replace(tmp, ckpt)

    log = (work / "log.jsonl").open("a")
    n_params = sum(p.numel() for p in model.parameters())
    if state["step"] == 0:
        start = {"event": "start", "params": n_params, "device": device, "workers": workers}
        log.write(json.dumps({**start, "recipe": asdict(recipe)}) + "\n")
    model.train()
    last_save = last_export = time.time()
    ema = None
    window: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # device tensors, read every log_every
    window_start = time.time()
    window_tokens = 0
    columns = [
        TextColumn("[bold]builtin"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    ]

    def done() -> bool:
        if stop_at is not None and state["step"] >= stop_at:
            return True
        return recipe.progress(state["step"], state["seconds"]) >= 1.0

    with Progress(*columns, disable=quiet) as bar:
        task_id = bar.add_task(
            "train", total=1.0, completed=recipe.progress(state["step"], state["seconds"]), info=""
        )
        while not done():
            step = state["step"]
            progress = recipe.progress(step, state["seconds"])
            t0 = time.time()
            ids, weights, marks = batches.get(step, progress)
            t_data = time.time() - t0
            ids = ids.to(device, non_blocking=True)
            weights = weights.to(device, non_blocking=True)
            marks = marks.to(device, non_blocking=True)
            for group in opt.param_groups:
                group["lr"] = lr_at(recipe, step, progress)
            loss, ans_loss, key_loss = weighted_loss(model, ids, weights, marks, probe)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            window.append((loss.detach(), ans_loss, grad_norm.detach(), key_loss))
            window_tokens += ids.numel()
            state["step"] += 1
            state["tokens"] += ids.numel()
            evaluate = state["step"] % recipe.eval_every == 0
            if len(window) < recipe.log_every and not evaluate and not done_soon(recipe, state, t0):
                state["seconds"] += time.time() - t0
                continue
            values = torch.stack([torch.stack(w) for w in window]).float().cpu()  # one device sync per window
            now = time.time()
            state["seconds"] += now - t0
            dt = now - window_start
            for _loss_v, ans_v, _, _ in values.tolist():
                ema = ans_v if ema is None else 0.95 * ema + 0.05 * ans_v
            record = {
                "step": state["step"],
                "loss": round(values[:, 0].mean().item(), 4),
                "answer_loss": round(values[:, 1].mean().item(), 4),
                "len": ids.shape[1],
                "batch": ids.shape[0],
                "lr": round(lr_at(recipe, step, progress), 6),
                "grad_norm": round(values[:, 2].mean().item(), 3),
                "key_loss": round(values[:, 3].mean().item(), 4),
                "tok_s": round(window_tokens / max(dt, 1e-9)),
                "data_s": round(t_data, 3),
                "tokens": state["tokens"],
                "seconds": round(state["seconds"], 1),
                "progress": round(progress, 4),
            }
            window, window_tokens, window_start = [], 0, now
            finished = done()
            if evaluate or finished:
                top = max(512, int(min(recipe.max_len, ids.shape[1])))
                acc = heldout_accuracy(model, maker, ("niah_single_2", "niah_multikey_1"), top, 10)
                record["heldout"] = acc
                bar.console.print(f"step {state['step']}: answer loss {ema:.3f}, held-out {acc}")
                window_start = time.time()  # evaluation time is not training time
            log.write(json.dumps(record) + "\n")
            log.flush()
            info = f"step {state['step']} ans_loss {ema:.3f} len {ids.shape[1]} {record['tok_s']} tok/s"
            bar.update(task_id, completed=recipe.progress(state["step"], state["seconds"]), info=info)
            if quiet and recipe.log_every > 1:
                print(info, flush=True)
            if time.time() - last_save > recipe.ckpt_minutes * 60 or finished:
                save()
                last_save = time.time()
            if recipe.minutes > 0 and time.time() - last_export > recipe.ckpt_minutes * 60:
                export(model, tok_dir, out, vocab, shard_mb)  # a usable model even if the run is cut short
                last_export = time.time()
    batches.close()
    export(model, tok_dir, out, vocab, shard_mb)
    if final_eval:
        lengths = [n for n in (256, 512, 1024, 2048, 4096) if n <= 2 * recipe.max_len]
        table = {}
        for length in lengths:
            for task in EVAL_TASKS:
                try:
                    table.update(heldout_accuracy(model, maker, (task,), length, final_eval))
                except ValueError:  # too short for this task
                    continue
            print(f"final held-out @{length}: {table}", flush=True)
        log.write(json.dumps({"event": "final_heldout", "samples": final_eval, "accuracy": table}) + "\n")
    summary = {"event": "done", "params": n_params, **state, "answer_loss_ema": ema, "out": str(out)}
    log.write(json.dumps(summary) + "\n")
    log.close()
    return summary


def done_soon(recipe: Recipe, state: dict, t0: float) -> bool:
    """True when the wall-clock schedule ends with this step (so the last window is logged)."""
    return recipe.progress(state["step"], state["seconds"] + time.time() - t0) >= 1.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "src/ctxops/models/builtin")
    parser.add_argument("--work", type=Path, default=ROOT / "runs/train_builtin")
    parser.add_argument("--steps", type=int, help="override the recipe's step count")
    parser.add_argument(
        "--recipe",
        choices=("cpu", "gpu", "gpu-keys", "cpu-keys-drill", "cpu-keys", "tiny"),
        default="cpu",
        help="cpu: the 2-core recipe; gpu: the wider wall-clock recipe for one GPU; cpu-keys: the 2-core "
        "key-matching fine-tune of GPU weights (with --init-from); tiny: smoke tests",
    )
    parser.add_argument("--tiny", action="store_true", help="same as --recipe tiny")
    parser.add_argument("--init-from", type=Path, help="start from this model directory's weights")
    parser.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda)")
    parser.add_argument(
        "--workers", type=int, default=0, help="processes that build batches ahead (0: inline)"
    )
    parser.add_argument(
        "--minutes", type=float, help="run the schedule on wall-clock time for this many minutes"
    )
    parser.add_argument(
        "--shard-mb", type=float, default=0.0, help="split exported weights into shards (MiB)"
    )
    parser.add_argument(
        "--final-eval",
        type=int,
        default=0,
        metavar="N",
        help="after training, held-out exact match of every eval task at 256..4K tokens, N samples each",
    )
    parser.add_argument(
        "--stop-at",
        type=int,
        help="stop (and export) at this step, keeping the recipe's schedule; rerun without it to go on",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared 2-core machine a second thread stalls on a busy core; 2 on an idle one)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipes = {
        "cpu": Recipe,
        "gpu": Recipe.gpu,
        "gpu-keys": Recipe.gpu_keys,
        "cpu-keys-drill": Recipe.cpu_keys_drill,
        "cpu-keys": Recipe.cpu_keys,
        "tiny": Recipe.tiny,
    }
    recipe = recipes["tiny" if args.tiny else args.recipe]()
    if "-keys" in args.recipe and not args.init_from:
        parser.error(
            f"--recipe {args.recipe} fine-tunes existing weights: pass --init-from MODEL_DIR (e.g. v2)"
        )
    if args.init_from:
        if not (args.init_from / "config.json").is_file():
            parser.error(
                f"--init-from {args.init_from}: no config.json there (a model directory is expected)"
            )
        recipe.init_from = str(args.init_from)
    if args.steps:
        recipe.steps = args.steps
    if args.minutes is not None:
        if args.minutes <= 0:
            parser.error("--minutes must be > 0")
        recipe.minutes = args.minutes
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    summary = train(
        recipe,
        args.work,
        args.out,
        quiet=args.quiet,
        stop_at=args.stop_at,
        device=args.device,
        workers=args.workers,
        shard_mb=args.shard_mb,
        final_eval=args.final_eval,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
