"""Write a sample of the builtin model's training documents as text, for ``ctxops data contamination``.

Usage::

    .venv/bin/python scripts/builtin_training_corpus.py --recipe gpu --steps 6073 --every 20 \
        --out runs/builtin_corpus/gpu.jsonl.zst

It rebuilds the documents exactly as ``builtin_training/data.py`` does (``make_batch``: the same recipe, step seeds
``recipe.seed * 1_000_003 + step`` and document seeds ``TRAIN_SEED_BASE + step * stride + i``) and decodes their
token ids back to text, special tokens included. One thing is approximated: the GPU and CPU fine-tune recipes ran
on a wall-clock schedule, so which length each step drew depended on timing; here a step's progress is
``step / steps`` (the logged step counts: gpu 6,073, cpu-keys-drill 862, cpu-keys 722). Every ``--every``-th step
is written; the documents of a step are all written.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # builtin_training/

from builtin_training.data import DocMaker, batch_lengths  # noqa: E402
from builtin_training.recipe import TRAIN_SEED_BASE, Recipe  # noqa: E402

RECIPES = {"gpu": Recipe.gpu, "cpu-keys-drill": Recipe.cpu_keys_drill, "cpu-keys": Recipe.cpu_keys}


def step_documents(maker: DocMaker, recipe: Recipe, step: int, progress: float) -> list[tuple[int, str]]:
    """(seed, text) of every document of one step, as ``make_batch`` builds them."""
    import random

    rng = random.Random(recipe.seed * 1_000_003 + step)
    length = batch_lengths(recipe, progress, rng)
    count = max(1, recipe.tokens_per_step // length)
    stride = max(1000, recipe.tokens_per_step // recipe.min_len)
    seeds = [TRAIN_SEED_BASE + step * stride + i for i in range(count)]
    return [(seed, maker.tok.decode(maker.doc(seed, length)[0], skip_special_tokens=False)) for seed in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="gpu")
    parser.add_argument("--steps", type=int, required=True, help="the recipe's logged step count")
    parser.add_argument("--every", type=int, default=20, help="write every N-th step")
    parser.add_argument("--out", type=Path, required=True, help="a .jsonl.zst file")
    args = parser.parse_args()
    from ctxops.models.loader import BUILTIN_DIR

    recipe = RECIPES[args.recipe]()
    maker = DocMaker(BUILTIN_DIR, recipe)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    start, docs, chars = time.monotonic(), 0, 0
    with tmp.open("wb") as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as compressed:
        text_out = io.TextIOWrapper(compressed, encoding="utf-8")
        for step in range(0, args.steps, args.every):
            for seed, text in step_documents(maker, recipe, step, step / args.steps):
                record = {"id": f"{args.recipe}/step{step}/seed{seed}", "text": text}
                text_out.write(json.dumps(record) + "\n")
                docs, chars = docs + 1, chars + len(text)
        text_out.flush()
        text_out.detach()
    tmp.replace(args.out)
    print(
        f"{docs} documents, {chars / 1e6:.1f}M characters in {time.monotonic() - start:.0f} s -> {args.out}"
    )


if __name__ == "__main__":
    main()
