"""How fast `ctxops data contamination` reads a corpus, beside lm-evaluation-harness' 13-gram Janitor.

A generated corpus (words drawn from a Zipf distribution over 50,000 pseudo-words, so n-grams are as rare as in
natural text; lines of 100 words in 64 MB text files) and --items eval items of --item-words words from the same
distribution, 100 of them copied into the corpus exactly and 100 with 10% of their words replaced.

Three runs, each in its own process (peak memory is that process's maximum resident set size):
  ours         `ctxops data contamination` on the whole corpus: 13-grams and MinHash near-duplicate windows
  ours-13gram  the same with --near-dup 0, on the first --peer-mb MB: what the Janitor does
  janitor      lm_eval.decontamination.janitor.Janitor (pure-Python mode, as pip installs it) on the same slice:
               register_contaminant() for every item, then clean_python() on every corpus line

Usage: python bench/data_scale.py [--mb 1024] [--items 10000] [--item-words 300] [--peer-mb 32] [--work DIR]
The peer needs lm-eval (`pip install lm-eval --no-deps` is enough: the Janitor imports only the standard library).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FILE_MB = 64
LINE_WORDS = 100
_JANITOR = """
import json, sys, time
from lm_eval.decontamination.janitor import Janitor
items, corpus = sys.argv[1], sys.argv[2]
start = time.perf_counter()
janitor = Janitor(ngram_n=13)
for line in open(items):
    janitor.register_contaminant(json.loads(line)["text"])
indexed = time.perf_counter()
dirty = 0
for line in open(corpus):
    dirty += len(janitor.clean_python(line)) != 1
print(json.dumps({"index_s": indexed - start, "scan_s": time.perf_counter() - indexed, "dirty_lines": dirty}))
"""


def vocabulary(rng: np.random.Generator, size: int = 50_000) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(3, 10, size)
    return np.array(["".join(rng.choice(letters, n)) for n in lengths])


def zipf_words(rng: np.random.Generator, vocab: np.ndarray, count: int) -> np.ndarray:
    ranks = np.minimum(rng.zipf(1.2, count), len(vocab)) - 1
    return vocab[ranks]


def make_data(
    work: Path, mb: int, items: int, item_words: int, seed: int = 0
) -> tuple[Path, list[Path], int]:
    rng = np.random.default_rng(seed)
    vocab = vocabulary(rng)
    item_texts = [" ".join(zipf_words(rng, vocab, item_words)) for _ in range(items)]
    items_path = work / "items.jsonl"
    items_path.write_text(
        "".join(json.dumps({"id": f"i{i}", "text": t}) + "\n" for i, t in enumerate(item_texts))
    )
    planted = item_texts[:100] + [_edited(t, rng, vocab) for t in item_texts[100:200]]
    files, written = [], 0
    while written < mb * 2**20 - 2**20:  # within 1 MiB of the size asked for
        path = work / f"corpus_{len(files):03d}.txt"
        lines = [
            " ".join(row) for row in zipf_words(rng, vocab, 200_000 * LINE_WORDS).reshape(-1, LINE_WORDS)
        ]
        for text in planted[len(files) :: 16]:  # spread the planted items over the files
            lines.insert(int(rng.integers(len(lines))), text)
        data = ("\n".join(lines) + "\n").encode()[: min(FILE_MB * 2**20, mb * 2**20 - written)]
        data = data[: data.rfind(b"\n") + 1]
        path.write_bytes(data)
        files.append(path)
        written += len(data)
    return items_path, files, written


def _edited(text: str, rng: np.random.Generator, vocab: np.ndarray) -> str:
    words = text.split()
    for i in rng.choice(len(words), len(words) // 10, replace=False):
        words[i] = str(vocab[rng.integers(len(vocab))])
    return " ".join(words)


_MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)
sys.stdout.buffer.write(done.stdout)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(done.returncode)
"""


def timed(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak resident memory in MB of ``command``, its stdout), through a fresh wrapper process."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True
    )
    peak_kb = int(done.stderr.strip().splitlines()[-1])  # ru_maxrss is in KB on Linux
    return time.perf_counter() - start, peak_kb / 1024, done.stdout


def ours(items: Path, corpus: list[Path], out: Path, near_dup: str) -> tuple[float, float, dict]:
    command = [sys.executable, "-m", "ctxops", "data", "contamination", "--eval", str(items), "--out", str(out),
               "--near-dup", near_dup, *[a for p in corpus for a in ("--corpus", str(p))]]  # fmt: skip
    wall, peak, _ = timed(command)
    return wall, peak, json.loads((out / "report.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="corpus size in MiB")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--item-words", type=int, default=300)
    parser.add_argument(
        "--peer-mb", type=int, default=32, help="MiB of the first corpus file both 13-gram runs read"
    )
    parser.add_argument(
        "--peer-only", action="store_true", help="skip the whole-corpus run with near-duplicates"
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="where to generate the corpus (default: a temp dir)"
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ctxops-data-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    items, corpus, size = make_data(work, args.mb, args.items, args.item_words)
    print(
        f"generated {size / 2**20:.0f} MiB in {len(corpus)} files, {args.items} items, {time.perf_counter() - start:.0f} s"
    )

    if not args.peer_only:
        wall, peak, report = ours(items, corpus, work / "ours", "0.6")
        rate = size / 2**20 / wall
        print(f"ours         {size / 2**20:7.0f} MiB  {wall:7.1f} s  {rate:6.2f} MiB/s  peak {peak:6.0f} MB  "
              f"dirty {report['dirty']} {report['dirty_by_kind']}  -> 1 GiB in {1024 / rate / 60:.1f} min")  # fmt: skip

    piece = work / "slice.txt"
    data = corpus[0].read_bytes()[: args.peer_mb * 2**20]
    piece.write_bytes(data[: data.rfind(b"\n") + 1])
    sliced = piece.stat().st_size / 2**20
    wall13, peak13, report13 = ours(items, [piece], work / "ours13", "0")
    index13 = report13["corpus"]["index_seconds"]
    scan13 = report13["corpus"]["seconds"] - index13
    print(f"ours-13gram  {sliced:7.1f} MiB  {wall13:7.1f} s  {sliced / wall13:6.2f} MiB/s  peak {peak13:6.0f} MB  "
          f"dirty {report13['dirty']} (index {index13:.1f} s, scan {scan13:.1f} s)")  # fmt: skip
    try:
        wall_j, peak_j, out = timed([sys.executable, "-c", _JANITOR, str(items), str(piece)])
    except subprocess.CalledProcessError as exc:
        print(f"janitor      not run ({exc.stderr.strip().splitlines()[-1]}); pip install lm-eval --no-deps")
        return
    janitor = json.loads(out.strip().splitlines()[-1])
    print(f"janitor      {sliced:7.1f} MiB  {wall_j:7.1f} s  {sliced / wall_j:6.2f} MiB/s  peak {peak_j:6.0f} MB  "
          f"dirty lines {janitor['dirty_lines']} (index {janitor['index_s']:.1f} s, scan {janitor['scan_s']:.1f} s)")  # fmt: skip
    print(f"ratio (janitor / ours-13gram, same slice): whole process {wall_j / wall13:.2f}x, "
          f"scan alone {janitor['scan_s'] / scan13:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
