"""Check ctxops' eval items against the builtin model's whole training data, generated on the fly, never written.

Usage::

    nice -n 10 .venv/bin/python scripts/builtin_contamination.py --out runs/builtin_contamination

The training documents are rebuilt with the code the model was trained with (``--train-commit``, default the
commit that shipped v3; ``git archive`` unpacks its ``src`` and ``scripts`` into a temporary directory) by a child
process running ``scripts/builtin_training_corpus.py``'s ``step_documents`` from that tree, with the recipes'
seeds. The child streams each document as a JSONL line on a pipe; this process, on today's code, builds the eval
items (as ``ctxops eval`` sends them now) and matches every document with ``ctxops.data``'s scan. Nothing of the
corpus touches the disk, and the child does the expensive part (tokenizing), so the check costs about what
generating the data costs.

Each recipe's steps are cut into chunks, chunk ``c`` of ``K`` holding steps ``c, c + K, c + 2K, ...``: every chunk
is a uniform sample of the schedule (all lengths). The two CPU fine-tune stages run first (cheap: short
documents), then the GPU run's chunks in order of ``c / K``, so a run stopped early has checked an even sample of
it. After every chunk the state is saved (``OutDir`` checkpoint) and the report rewritten with
the share of steps covered; a rerun resumes after the last finished chunk. 13-grams are matched in every chunk;
the near-duplicate windows (about 30x the CPU of 13-grams on this text, one grammar sends most windows to MinHash)
in the first chunk of each recipe only (``--near-dup-chunks``), and the report says so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ctxops.data.contamination import ContaminationConfig, ContaminationScan  # noqa: E402
from ctxops.data.contamination_report import write_report  # noqa: E402
from ctxops.data.corpus import Document  # noqa: E402
from ctxops.data.items import load_items  # noqa: E402
from ctxops.data.outdir import OutDir, fingerprint  # noqa: E402

TRAIN_COMMIT = "d59ce35"  # builtin v3 (its GPU base v2 used the same eval generators, commit 6fc016c)
STEPS = {"gpu": 6073, "cpu-keys-drill": 862, "cpu-keys": 722}  # the logged step counts of the three runs
TASKS = "niah_single_1,niah_single_2,niah_multikey_1,niah_multivalue,niah_multiquery,vt"
EVAL_SPEC = f"{TASKS}:512,1k,2k,4k:20"
CHUNK_STEPS = 96  # steps per chunk, about a minute of generation for the GPU recipe
COVERAGE_FILE = "coverage.json"

# the child: runs in the training commit's tree (its src first on sys.path), one JSON line per document, then a
# {"chunk": ...} line when a chunk's documents are all out
_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1] + "/scripts")
import builtin_training_corpus as btc
from ctxops.models.loader import BUILTIN_DIR
makers = {}
for line in sys.stdin:
    recipe_name, steps, chunk, chunks = json.loads(line)
    recipe = btc.RECIPES[recipe_name]()
    maker = makers.get(recipe_name) or makers.setdefault(recipe_name, btc.DocMaker(BUILTIN_DIR, recipe))
    for step in range(chunk, steps, chunks):
        for seed, text in btc.step_documents(maker, recipe, step, step / steps):
            sys.stdout.write(json.dumps({"id": f"{recipe_name}/step{step}/seed{seed}", "text": text}) + "\\n")
    sys.stdout.write(json.dumps({"chunk": [recipe_name, chunk]}) + "\\n")
    sys.stdout.flush()
"""


def train_tree(commit: str) -> Path:
    """``src`` and ``scripts`` of ``commit`` unpacked into a temporary directory, plus today's corpus script."""
    tree = Path(tempfile.mkdtemp(prefix=f"ctxops-train-{commit}-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src", "scripts"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    # step_documents only calls DocMaker, batch_lengths and the recipes, which that commit already had
    shutil.copy(ROOT / "scripts" / "builtin_training_corpus.py", tree / "scripts")
    return tree


def plan(chunk_steps: int) -> list[tuple[str, int, int, int]]:
    """(recipe, steps, chunk, chunks) of every chunk, in the order that keeps the done part an even sample."""
    rows = []
    for recipe, steps in STEPS.items():
        chunks = max(1, math.ceil(steps / chunk_steps))
        rows += [(recipe, steps, chunk, chunks) for chunk in range(chunks)]
    # the CPU fine-tune stages (1.6% of the generation cost, the last data v3 saw) first, whole; then the GPU run
    return sorted(rows, key=lambda r: (r[0] == "gpu", r[2] / r[3], r[0]))


def stream(tree: Path, chunks: list[tuple[str, int, int, int]]) -> Iterator[Document | tuple[str, int]]:
    """The documents of ``chunks`` from a child in ``tree``, and (recipe, chunk) after each chunk's last one."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tree)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree / "src"), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("".join(json.dumps(c) + "\n" for c in chunks))
    child.stdin.close()
    for line in child.stdout:
        record = json.loads(line)
        if "chunk" in record:
            yield record["chunk"][0], record["chunk"][1]
        else:
            yield Document(record["id"].split("/")[0], record["id"], record["text"])
    if child.wait() != 0:
        raise SystemExit(f"the generator in {tree} failed (exit {child.returncode})")


def merged(thirteen: ContaminationScan, near: ContaminationScan) -> ContaminationScan:
    """One scan holding both: 13-grams of every document, near-duplicates of the near-duplicate chunks."""
    both = ContaminationScan(thirteen.items, near.config)
    both.matched = thirteen.matched | near.matched
    both.counts = {k: thirteen.counts[k] + near.counts[k] for k in thirteen.counts}
    both.done = {k: thirteen.done.get(k, 0) + near.done.get(k, 0) for k in {*thirteen.done, *near.done}}
    both.index_seconds = thirteen.index_seconds + near.index_seconds
    for target, a, b in zip(both.states, thirteen.states, near.states, strict=True):
        target.near_dup = max(a.near_dup, b.near_dup)
        for place in [*a.places, *b.places]:
            target.add_place(place, "ngrams" if place["kind"] == "ngram" else "similarity")
    return both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train-commit", default=TRAIN_COMMIT)
    parser.add_argument("--chunk-steps", type=int, default=CHUNK_STEPS)
    parser.add_argument(
        "--near-dup-chunks", type=int, default=1, help="chunks of each recipe with near-dup windows"
    )
    parser.add_argument("--max-chunks", type=int, default=0, help="stop after this many chunks (0: all)")
    parser.add_argument(
        "--recipes", default=",".join(STEPS), help="comma-separated recipes to check (default: all three)"
    )
    parser.add_argument(
        "--ngram", type=int, default=13,
        help="n-gram size; 5 asks whether a needle's key and value ('for amber fox is 1234567') were trained on",
    )  # fmt: skip
    args = parser.parse_args()
    start = time.monotonic()
    items = load_items(EVAL_SPEC, "builtin")
    thirteen = ContaminationScan(items, ContaminationConfig(ngram=args.ngram, near_dup=0.0))
    near = ContaminationScan(items, ContaminationConfig(ngram=args.ngram))
    recipes = args.recipes.split(",")
    unknown = set(recipes) - set(STEPS)
    if unknown:
        raise SystemExit(f"--recipes: unknown {', '.join(sorted(unknown))}; choose from {', '.join(STEPS)}")
    chunks = [c for c in plan(args.chunk_steps) if c[0] in recipes]
    extra = [] if args.ngram == 13 else [args.ngram]  # 13-gram checkpoints keep their fingerprint
    key = fingerprint(
        [(i.id, i.text) for i in items], args.train_commit, args.chunk_steps, args.near_dup_chunks, *extra
    )
    out = OutDir(args.out)
    done: list[list[Any]] = []
    saved = out.load_state(key, ["matched13", "matched_near"])
    seconds = 0.0
    if saved is not None:
        state, arrays = saved
        done = state["chunks"]
        seconds = state["seconds"]
        for scan, name in ((thirteen, "13"), (near, "near")):
            scan.restore(state[name], arrays[f"matched{'13' if name == '13' else '_near'}"])
    todo = [c for c in chunks if [c[0], c[2]] not in done]
    if args.max_chunks:
        todo = todo[: args.max_chunks]
    print(f"{len(items)} items; {len(done)} of {len(chunks)} chunks done, {len(todo)} to do", flush=True)
    tree = train_tree(args.train_commit)
    try:
        last = time.monotonic()
        for event in stream(tree, todo):
            if isinstance(event, Document):
                step = int(event.doc_id.split("/step")[1].split("/")[0])
                recipe_chunks = max(1, math.ceil(STEPS[event.source] / args.chunk_steps))
                scan = near if step % recipe_chunks < args.near_dup_chunks else thirteen
                scan.scan_document(event)
                scan.done[event.source] = scan.done.get(event.source, 0) + 1
                continue
            done.append(list(event))
            seconds += time.monotonic() - last
            last = time.monotonic()
            state = {"fingerprint": key, "chunks": done, "seconds": seconds, "13": thirteen.state(key),
                     "near": near.state(key)}  # fmt: skip
            out.save_state(state, {"matched13": thirteen.matched, "matched_near": near.matched})
            report(out, merged(thirteen, near), done, chunks, seconds, args)
            print(f"chunk {event[0]} {event[1]}: {len(done)}/{len(chunks)}, {seconds:.0f} s", flush=True)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    print(f"done in {time.monotonic() - start:.0f} s -> {args.out}")


def report(
    out: OutDir,
    scan: ContaminationScan,
    done: list[list[Any]],
    chunks: list[tuple[str, int, int, int]],
    seconds: float,
    args: argparse.Namespace,
) -> None:
    """The report of what is done so far, and ``coverage.json``: which share of each recipe's steps it covers."""
    write_report(out, scan, seconds)
    coverage = {}
    for recipe, steps in STEPS.items():
        mine = [c for c in chunks if c[0] == recipe]
        finished = [c for c in mine if [recipe, c[2]] in done]
        covered = sum(len(range(c[2], steps, c[3])) for c in finished)
        near = sum(len(range(c[2], steps, c[3])) for c in finished if c[2] < args.near_dup_chunks)
        coverage[recipe] = {"steps": steps, "steps_checked": covered, "share": round(covered / steps, 4),
                            "steps_with_near_dup": near}  # fmt: skip
    out.write_json(COVERAGE_FILE, {
        "train_commit": args.train_commit, "eval_items": EVAL_SPEC, "chunks_done": len(done),
        "chunks": len(chunks), "seconds": round(seconds, 1), "recipes": coverage,
        "matched_ngrams": int(np.count_nonzero(scan.matched)),
    })  # fmt: skip


if __name__ == "__main__":
    main()
