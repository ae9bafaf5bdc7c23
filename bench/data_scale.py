"""How fast `ctxops data contamination` reads a corpus, beside lm-evaluation-harness' 13-gram Janitor.

A generated corpus (words drawn from a Zipf distribution over 50,000 pseudo-words, so n-grams are as rare as in
natural text; lines of 100 words in 64 MB text files) and --items eval items of --item-words words from the same
distribution, 100 of them copied into the corpus exactly and 100 with 10% of their words replaced.

Three runs, each in its own process tree; peak memory is the largest sum of PSS over the tree (sampled every
0.2 s: forked workers share the parent's index, which PSS counts once), CPU is user + system time of the tree:
  ours         `ctxops data contamination --workers N` on the whole corpus: 13-grams and MinHash near-duplicate
               windows
  ours-13gram  the same with --near-dup 0, on the first --peer-mb MB: what the Janitor does
  janitor      lm_eval.decontamination.janitor.Janitor (pure-Python mode, as pip installs it) on the same slice:
               register_contaminant() for every item, then clean_python() on every corpus line

Usage: python bench/data_scale.py [--mb 1024] [--items 10000] [--item-words 300] [--peer-mb 32] [--work DIR]
                                  [--workers 2] [--skip-peer] [--generate-only]
A --work directory that already holds the data asked for (manifest.json) is reused, so the corpus can be made
ahead (`nice -n 10 ... --generate-only`) and the measured run reads it.
The peer needs lm-eval (`pip install lm-eval --no-deps` is enough: the Janitor imports only the standard library).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


def _lines(rng: np.random.Generator, words: list[str], size: int) -> list[str]:
    """Lines of ``LINE_WORDS`` Zipf words until they hold at least ``size`` bytes (a batch more, at most)."""
    lines: list[str] = []
    total = 0
    while total < size:
        ranks = np.minimum(rng.zipf(1.2, 20_000 * LINE_WORDS), len(words)) - 1
        batch = [" ".join(map(words.__getitem__, row)) for row in ranks.reshape(-1, LINE_WORDS).tolist()]
        lines += batch
        total += sum(map(len, batch)) + len(batch)
    return lines


def make_data(
    work: Path, mb: int, items: int, item_words: int, seed: int = 0
) -> tuple[Path, list[Path], int]:
    manifest = work / "manifest.json"
    wanted = {"mb": mb, "items": items, "item_words": item_words, "seed": seed, "layout": 2}
    if manifest.is_file():
        made = json.loads(manifest.read_text())
        if made["asked"] == wanted:
            return work / "items.jsonl", [work / f for f in made["files"]], made["bytes"]
    rng = np.random.default_rng(seed)
    vocab = vocabulary(rng)
    item_texts = [" ".join(zipf_words(rng, vocab, item_words)) for _ in range(items)]
    items_path = work / "items.jsonl"
    items_path.write_text(
        "".join(json.dumps({"id": f"i{i}", "text": t}) + "\n" for i, t in enumerate(item_texts))
    )
    planted = item_texts[:100] + [_edited(t, rng, vocab) for t in item_texts[100:200]]
    words = vocab.tolist()  # Python strings: joining them is 5x faster than joining numpy str_ elements
    files, written = [], 0
    while written < mb * 2**20 - 2**20:  # within 1 MiB of the size asked for
        path = work / f"corpus_{len(files):03d}.txt"
        target = min(FILE_MB * 2**20, mb * 2**20 - written)
        lines = _lines(rng, words, target)
        for text in planted[len(files) :: 16]:  # spread the planted items over the files, all inside the cut
            lines.insert(int(rng.integers(int(0.9 * len(lines)))), text)
        data = ("\n".join(lines) + "\n").encode()[:target]
        data = data[: data.rfind(b"\n") + 1]
        path.write_bytes(data)
        files.append(path)
        written += len(data)
    made = {"asked": wanted, "files": [f.name for f in files], "bytes": written}
    manifest.write_text(json.dumps(made))
    return items_path, files, written


def _edited(text: str, rng: np.random.Generator, vocab: np.ndarray) -> str:
    words = text.split()
    for i in rng.choice(len(words), len(words) // 10, replace=False):
        words[i] = str(vocab[rng.integers(len(vocab))])
    return " ".join(words)


def _children() -> dict[int, list[int]]:
    """parent pid -> child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def _tree_memory(root: int) -> tuple[int, int]:
    """(sum of PSS, sum of RSS) in kB over ``root`` and its descendants now.

    PSS divides each shared page among the processes that map it, so forked workers that share the parent's index
    copy-on-write are not counted twice; the RSS sum counts them in every process (an upper bound).
    """
    tree, todo, pss, rss = _children(), [root], 0, 0
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except OSError:
            continue
    return pss, rss


@dataclass
class Measured:
    """One command's wall and CPU seconds and its process tree's peak memory."""

    wall: float
    cpu: float  # user + system seconds of the command and every process it waited for
    peak_pss_mb: float  # the largest sum of PSS over the tree, sampled every 0.2 s
    peak_rss_mb: float  # the largest sum of RSS over the tree (shared pages counted in every process)
    stdout: str


def timed(command: list[str]) -> Measured:
    """Run ``command``, sampling its process tree's memory; CPU from the rusage of waited-for children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_pss = peak_rss = 0
    while child.poll() is None:
        pss, rss = _tree_memory(child.pid)
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.2)
    wall = time.perf_counter() - start
    out, err = child.communicate()
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, command, out, err)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Measured(wall, cpu, peak_pss / 1024, peak_rss / 1024, out)


def ours(items: Path, corpus: list[Path], out: Path, near_dup: str, workers: int) -> tuple[Measured, dict]:
    command = [sys.executable, "-m", "ctxops", "data", "contamination", "--eval", str(items), "--out", str(out),
               "--near-dup", near_dup, "--workers", str(workers),
               *[a for p in corpus for a in ("--corpus", str(p))]]  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)  # a finished run's checkpoint would make this one a no-op resume
    run = timed(command)
    return run, json.loads((out / "report.json").read_text())


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
        "--workers", type=int, default=2, help="processes of the whole-corpus run (this machine has 2 cores)"
    )
    parser.add_argument(
        "--skip-peer", action="store_true", help="only the whole-corpus run (no 13-gram slice, no Janitor)"
    )
    parser.add_argument("--generate-only", action="store_true", help="make the data in --work and stop")
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

    if args.generate_only:
        return
    if not args.peer_only:
        load = os.getloadavg()
        run, report = ours(items, corpus, work / "ours", "0.6", args.workers)
        after = os.getloadavg()
        rate = size / 2**20 / run.wall
        print(f"ours         {size / 2**20:7.0f} MiB  {run.wall:7.1f} s  {rate:6.2f} MiB/s  CPU {run.cpu:7.1f} s  "
              f"peak PSS {run.peak_pss_mb:6.0f} MB (RSS sum {run.peak_rss_mb:6.0f} MB)  workers {args.workers}  "
              f"dirty {report['dirty']} {report['dirty_by_kind']}  -> 1 GiB in {1024 / rate / 60:.1f} min; "
              f"load average before {load[0]:.2f} {load[1]:.2f}, after {after[0]:.2f} {after[1]:.2f}")  # fmt: skip

    if args.skip_peer:
        return
    piece = work / "slice.txt"
    data = corpus[0].read_bytes()[: args.peer_mb * 2**20]
    piece.write_bytes(data[: data.rfind(b"\n") + 1])
    sliced = piece.stat().st_size / 2**20
    run13, report13 = ours(items, [piece], work / "ours13", "0", 1)
    index13 = report13["corpus"]["index_seconds"]
    scan13 = report13["corpus"]["seconds"] - index13
    print(f"ours-13gram  {sliced:7.1f} MiB  {run13.wall:7.1f} s  {sliced / run13.wall:6.2f} MiB/s  "
          f"peak PSS {run13.peak_pss_mb:6.0f} MB  dirty {report13['dirty']} (one process; index {index13:.1f} s, "
          f"scan {scan13:.1f} s)")  # fmt: skip
    try:
        janitor_run = timed([sys.executable, "-c", _JANITOR, str(items), str(piece)])
    except subprocess.CalledProcessError as exc:
        print(f"janitor      not run ({exc.stderr.strip().splitlines()[-1]}); pip install lm-eval --no-deps")
        return
    janitor = json.loads(janitor_run.stdout.strip().splitlines()[-1])
    wall_j = janitor_run.wall
    print(f"janitor      {sliced:7.1f} MiB  {wall_j:7.1f} s  {sliced / wall_j:6.2f} MiB/s  "
          f"peak PSS {janitor_run.peak_pss_mb:6.0f} MB  dirty lines {janitor['dirty_lines']} "
          f"(index {janitor['index_s']:.1f} s, scan {janitor['scan_s']:.1f} s)")  # fmt: skip
    print(f"ratio (janitor / ours-13gram, same slice): whole process {wall_j / run13.wall:.2f}x, "
          f"scan alone {janitor['scan_s'] / scan13:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
