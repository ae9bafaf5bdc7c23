"""Exact and near-duplicate documents within corpora: clusters, and the ids to keep.

Exact duplicates share the sha256 of their normalized words (case and punctuation do not count). Near-duplicates
are found as datatrove and text-dedup do: MinHash (``datasketch``, 128 permutations) of each document's word
5-grams, LSH at a Jaccard ``threshold`` (0.8 by default), and the MinHash estimate of the pair confirms it.
Clusters are the connected components (union-find); the first document of each cluster in corpus order is kept.
Memory is one MinHash (512 bytes) and one id per document, not the text. Results are written whole, atomically,
once every document is read (``clusters.jsonl``, ``kept.txt``, ``report.json``, ``report.md``).

:func:`run_dedup` journals each document's id, digest and MinHash (:mod:`ctxops.data.journal`); a run killed or
stopped midway is resumed by replaying the journal through the same union-find, so its result equals a fresh run's.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from ctxops.data import corpus as corpus_io
from ctxops.data.corpus import Document
from ctxops.data.journal import Journal, Stop, pending
from ctxops.data.near_dup import NUM_PERM, lean_minhash, minhash
from ctxops.data.ngrams import ngram_hashes, word_hashes, words
from ctxops.data.outdir import OutDir, file_signature, fingerprint

CLUSTERS_FILE = "clusters.jsonl"
KEPT_FILE = "kept.txt"
IDS_PART, RECORDS_PART = "dedup.ids", "dedup.records"  # journal: one id line and one record per document
RECORD = np.dtype([("digest", "S32"), ("has_sketch", "u1"), ("sketch", "<u4", (NUM_PERM,))])


@dataclass(frozen=True)
class DedupConfig:
    """What counts as a duplicate."""

    threshold: float = field(
        default=0.8, metadata={"help": "estimated Jaccard of word 5-gram sets for a near-duplicate"}
    )
    shingle: int = field(default=5, metadata={"help": "words per shingle"})

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if not 1 <= self.shingle <= 20:
            raise ValueError(f"shingle must be between 1 and 20 words, got {self.shingle}")


class Dedup:
    """Documents seen so far, their exact hashes and MinHashes, and the union-find over them."""

    def __init__(self, config: DedupConfig) -> None:
        self.config = config
        self.ids: list[str] = []
        self.parent: list[int] = []
        self.kind: dict[int, str] = {}  # document -> "exact" or "near", for documents joined to a cluster
        self.exact: dict[bytes, int] = {}
        self.sketches: list[LeanMinHash | None] = []
        self.lsh = MinHashLSH(threshold=config.threshold, num_perm=NUM_PERM)

    def add(self, doc: Document) -> np.ndarray:
        """Take one document into account; returns its :data:`RECORD` (what :meth:`replay` needs of it)."""
        record = np.zeros((), dtype=RECORD)
        tokens = words(doc.text)
        record["digest"] = hashlib.sha256(" ".join(tokens).encode()).digest()
        if record["digest"].item() not in self.exact:  # an exact twin needs no sketch
            shingles = np.unique(
                ngram_hashes(word_hashes(tokens), min(self.config.shingle, max(1, len(tokens))))
            )
            if len(shingles):
                record["has_sketch"] = 1
                record["sketch"] = minhash(shingles).hashvalues
        self.replay(f"{doc.source}:{doc.doc_id}", record)
        return record

    def replay(self, doc_id: str, record: np.ndarray) -> None:
        """Place one document, known by its id and :data:`RECORD`, in the clusters."""
        index = len(self.ids)
        self.ids.append(doc_id)
        self.parent.append(index)
        digest = record["digest"].item()
        if digest in self.exact:
            self._union(self.exact[digest], index, "exact")
            self.sketches.append(None)  # its twin already stands for it in the LSH
            return
        self.exact[digest] = index
        if not record["has_sketch"]:
            self.sketches.append(None)
            return
        sketch = lean_minhash(record["sketch"])
        for other in self.lsh.query(sketch):
            other_sketch = self.sketches[other]
            if other_sketch is not None and sketch.jaccard(other_sketch) >= self.config.threshold:
                self._union(other, index, "near")
        self.lsh.insert(index, sketch, check_duplication=False)
        self.sketches.append(sketch)

    def _find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def _union(self, kept: int, dropped: int, kind: str) -> None:
        a, b = self._find(kept), self._find(dropped)
        if a != b:
            self.parent[max(a, b)] = min(a, b)  # the earlier document roots the cluster
        self.kind.setdefault(dropped, kind)

    def clusters(self) -> list[dict[str, Any]]:
        """Every cluster of two or more documents: the kept id and the duplicates with how each matched."""
        members: dict[int, list[int]] = {}
        for i in range(len(self.ids)):
            members.setdefault(self._find(i), []).append(i)
        out = []
        for root, group in members.items():
            if len(group) > 1:
                duplicates = [
                    {"id": self.ids[i], "kind": self.kind.get(i, "near")} for i in group if i != root
                ]
                out.append({"kept": self.ids[root], "duplicates": duplicates})
        return out

    def kept_ids(self) -> list[str]:
        """Ids of the documents to keep: one per cluster and every document without a duplicate, in order."""
        return [self.ids[i] for i in range(len(self.ids)) if self._find(i) == i]


def run_dedup(
    dedup: Dedup,
    sources: Sequence[str | Path],
    out: OutDir,
    on_document: Callable[[int], None] | None = None,
    stop: Stop | None = None,
    checkpoint_s: float = 30.0,
) -> tuple[bool, dict[str, Any] | None]:
    """Add every document of ``sources`` to ``dedup``, journaled in ``out``, and write the report.

    Returns (resumed, the report's summary, or None when ``stop`` was raised: then the journal is committed at the
    document boundary). A rerun with the same sources and settings replays the journal and continues after its
    last commit. No documents raises :class:`~ctxops.data.corpus.CorpusError`.
    """
    started = time.monotonic()
    files = corpus_io.expand_paths(sources)
    key = fingerprint("dedup", asdict(dedup.config), NUM_PERM, [file_signature(p) for p in files])
    journal = Journal(out, key, checkpoint_s)
    saved = journal.resume()
    done: dict[str, int] = dict(saved["done"]) if saved else {}
    if saved:
        ids = [json.loads(line) for line in journal.committed(IDS_PART).decode().splitlines()]
        records = np.frombuffer(journal.committed(RECORDS_PART), dtype=RECORD)
        for doc_id, record in zip(ids, records, strict=True):
            dedup.replay(doc_id, record)
    for source, count, doc in pending(files, done):
        if done and source not in done:  # the previous file is finished
            journal.commit({"done": done})
        record = dedup.add(doc)
        journal.append(IDS_PART, (json.dumps(dedup.ids[-1]) + "\n").encode())
        journal.append(RECORDS_PART, record.tobytes())
        done[source] = count
        if on_document is not None:
            on_document(len(doc.text))
        if stop or journal.due():
            journal.commit({"done": done})
            if stop:
                return saved is not None, None
    if not dedup.ids:
        raise corpus_io.CorpusError(f"{', '.join(map(str, sources))}: no documents with text")
    summary = write_report(out, dedup, time.monotonic() - started)
    journal.close()
    return saved is not None, summary


def write_report(out: OutDir, dedup: Dedup, seconds: float) -> dict[str, Any]:
    """Write clusters.jsonl, kept.txt, report.json and report.md (each atomically); returns the summary."""
    clusters = dedup.clusters()
    kinds = [d["kind"] for c in clusters for d in c["duplicates"]]
    summary = {
        "documents": len(dedup.ids),
        "kept": len(dedup.ids) - len(kinds),
        "clusters": len(clusters),
        "exact_duplicates": kinds.count("exact"),
        "near_duplicates": kinds.count("near"),
        "seconds": round(seconds, 2),
        "settings": {**asdict(dedup.config), "num_perm": NUM_PERM},
    }
    out.write_jsonl(CLUSTERS_FILE, clusters)
    out.write_text(KEPT_FILE, "".join(i + "\n" for i in dedup.kept_ids()))
    out.write_json("report.json", summary)
    largest = sorted(clusters, key=lambda c: -len(c["duplicates"]))[:5]
    lines = [
        "# Deduplication report",
        "",
        f"{summary['documents']:,} documents: {summary['kept']:,} kept; {summary['exact_duplicates']:,} exact and "
        f"{summary['near_duplicates']:,} near duplicates (word {dedup.config.shingle}-gram MinHash, Jaccard >= "
        f"{dedup.config.threshold}) in {summary['clusters']:,} clusters.",
        "",
        *(
            f"- `{c['kept']}` and {len(c['duplicates'])} more, e.g. `{c['duplicates'][0]['id']}`"
            for c in largest
        ),
    ]
    out.write_text("report.md", "\n".join(lines) + "\n")
    return summary
