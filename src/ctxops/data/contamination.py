"""Which eval items appear in a training corpus: n-gram overlap and near-duplicate windows, per item.

An item is *dirty* when at least ``min_matches`` of its distinct non-boilerplate n-grams (13 normalized words by
default, as lm-evaluation-harness decontaminates; GPT-3 used 8 to 13) occur in some corpus document, or when one of
its windows has a near-duplicate in a corpus window (:mod:`ctxops.data.near_dup`). Boilerplate n-grams, those in
at least ``boilerplate_share`` of a task's items (templates, repeated filler), are counted apart and never make an
item dirty. The corpus is streamed (:mod:`ctxops.data.corpus`); every ``checkpoint_s`` seconds and after every
file the state is saved, and a rerun resumes after the last saved document. Accumulators only grow (a bit set, a
maximum, a bounded list of places), so a document seen twice after a crash changes nothing.

This module knows items, hashes and documents; :mod:`ctxops.data.contamination_report` writes the files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctxops.data import corpus as corpus_io
from ctxops.data.items import EvalItem
from ctxops.data.journal import pending
from ctxops.data.near_dup import WindowIndex, WindowMatch
from ctxops.data.ngrams import NgramIndex, answer_ngrams, ngram_hashes, text_word_hashes, word_hashes, words
from ctxops.data.outdir import OutDir, file_signature, fingerprint
from ctxops.data.workers import ordered_map

MAX_PLACES = 3  # places recorded per item and kind


@dataclass(frozen=True)
class ContaminationConfig:
    """How overlap is measured."""

    ngram: int = field(default=13, metadata={"help": "n-gram size in normalized words (lm-eval: 13)"})
    near_dup: float = field(
        default=0.6,
        metadata={
            "help": "aligned similarity of a window that counts as a near-duplicate (share of its words "
            "found in order in runs of 3+); 0 = off"
        },  # fmt: skip
    )
    window: int = field(default=100, metadata={"help": "window size in words for near-duplicates"})
    boilerplate_share: float = field(
        default=0.5, metadata={"help": "an n-gram in this share of a task's items is boilerplate"}
    )
    min_matches: int = field(default=1, metadata={"help": "distinct n-grams matched that make an item dirty"})
    checkpoint_s: float = 30.0  # seconds between checkpoints

    def __post_init__(self) -> None:
        if not 5 <= self.ngram <= 50:
            raise ValueError(f"ngram must be between 5 and 50 words, got {self.ngram}")
        if not 0.0 <= self.near_dup <= 1.0:
            raise ValueError(f"near_dup must be between 0 and 1 (0 turns it off), got {self.near_dup}")
        if not 10 <= self.window <= 10_000:
            raise ValueError(f"window must be between 10 and 10000 words, got {self.window}")
        if not 0.0 < self.boilerplate_share <= 1.0:
            raise ValueError(f"boilerplate_share must be in (0, 1], got {self.boilerplate_share}")
        if self.min_matches < 1:
            raise ValueError(f"min_matches must be at least 1, got {self.min_matches}")
        if self.checkpoint_s < 0:
            raise ValueError(f"checkpoint_s must not be negative, got {self.checkpoint_s}")


@dataclass(frozen=True)
class DocumentMatches:
    """What one corpus document matched, before it is recorded (small: it crosses a pipe from a worker)."""

    words: int
    keys: np.ndarray  # indices into the n-gram index of the distinct item n-grams found
    ngram_places: list[tuple[int, int, int]]  # (item, word of the median hit, hits) per item hit
    boilerplate_hits: int
    near_dup: list[WindowMatch]


@dataclass
class ItemState:
    """What has been found of one item so far."""

    near_dup: float = 0.0  # best aligned similarity of any of its windows
    places: list[dict[str, Any]] = field(default_factory=list)

    def add_place(self, place: dict[str, Any], strength: str) -> None:
        """Keep ``place`` if it is among the ``MAX_PLACES`` strongest of its kind (by its ``strength`` field)."""
        if place in self.places:  # the same document seen again after a resume
            return
        same = sorted((p for p in self.places if p["kind"] == place["kind"]), key=lambda p: -p[strength])
        if len(same) < MAX_PLACES:
            self.places.append(place)
        elif place[strength] > same[-1][strength]:
            self.places[self.places.index(same[-1])] = place


class ContaminationScan:
    """The eval items' indexes and what the corpus documents seen so far matched."""

    def __init__(self, items: Sequence[EvalItem], config: ContaminationConfig) -> None:
        started = time.monotonic()
        self.items, self.config = list(items), config
        tokens = [words(item.text) for item in self.items]
        hashes = [word_hashes(t) for t in tokens]
        tasks = [item.task for item in self.items]
        answers = [
            answer_ngrams(t, item.answers, config.ngram) for t, item in zip(tokens, self.items, strict=True)
        ]
        grams = [ngram_hashes(h, config.ngram) for h in hashes]
        self.index = NgramIndex.build(grams, tasks, config.boilerplate_share, answers)
        self.windows: WindowIndex | None = None
        if config.near_dup > 0:
            bigrams = NgramIndex.build([ngram_hashes(h, 2) for h in hashes], tasks, config.boilerplate_share)
            self.windows = WindowIndex(config.window, config.near_dup)
            self.windows.add_items(hashes, bigrams.boilerplate)
        self.matched = np.zeros(len(self.index.keys), dtype=bool)
        self.states = [ItemState() for _ in self.items]
        self.counts = {"documents": 0, "words": 0, "boilerplate_hits": 0}
        self.done: dict[str, int] = {}  # source -> documents finished
        self.index_seconds = time.monotonic() - started  # building the items' indexes

    def fingerprint(self, sources: Sequence[Path]) -> str:
        items = fingerprint([(i.id, i.task, i.text, i.answers) for i in self.items])
        return fingerprint(items, asdict(self.config), [file_signature(p) for p in sources])

    def scan_document(self, doc: corpus_io.Document) -> None:
        """Match one corpus document against every item and record what it matched."""
        self.record(doc, self.match(doc.text))

    def match(self, text: str) -> DocumentMatches:
        """What one document's text matches; reads the indexes only, so worker processes can call it."""
        hashes = text_word_hashes(text)
        grams = ngram_hashes(hashes, self.config.ngram)
        order = np.argsort(grams)  # one sort for both searches of the document's n-grams
        positions, keys = self.index.lookup(grams, order)
        places: list[tuple[int, int, int]] = []
        if len(keys):
            owners = self.index.owners[keys]
            by_item = np.lexsort((positions, owners))  # by item, then position
            items, starts, counts = np.unique(owners[by_item], return_index=True, return_counts=True)
            for item, start, count in zip(items.tolist(), starts.tolist(), counts.tolist(), strict=True):
                # the median hit: inside the copied passage
                middle = int(positions[by_item[start + count // 2]])
                places.append((item, middle, count))
        near = list(self.windows.matches(hashes)) if self.windows is not None else []
        return DocumentMatches(
            len(hashes), np.unique(keys), places, self.index.boilerplate_hits(grams, order), near
        )

    def record(self, doc: corpus_io.Document, found: DocumentMatches) -> None:
        """Add one document's matches (from :meth:`match`, here or in a worker) to the accumulators."""
        self.matched[found.keys] = True
        for item, word, count in found.ngram_places:
            place = {"kind": "ngram", "source": doc.source, "doc": doc.doc_id, "word": word, "ngrams": count}
            self.states[item].add_place(place, "ngrams")
        self.counts["boilerplate_hits"] += found.boilerplate_hits
        for match in found.near_dup:
            state = self.states[match.item]
            similarity = round(match.similarity, 4)
            state.near_dup = max(state.near_dup, similarity)
            place = {"kind": "near_dup", "source": doc.source, "doc": doc.doc_id, "word": match.doc_word,
                     "item_word": match.item_word, "similarity": similarity}  # fmt: skip
            state.add_place(place, "similarity")
        self.counts["documents"] += 1
        self.counts["words"] += found.words

    def item_matches(self) -> np.ndarray:
        """Distinct non-boilerplate n-grams of each item found in the corpus so far."""
        return np.bincount(self.index.owners[self.matched], minlength=len(self.items))

    def answer_matches(self) -> np.ndarray:
        """Distinct n-grams holding a gold answer of each item found in the corpus so far."""
        return np.bincount(self.index.owners[self.matched & self.index.is_answer], minlength=len(self.items))

    def findings(self) -> list[dict[str, Any]]:
        """One record per dirty item: its id, task, the kinds of match, how much matched and where."""
        matches = self.item_matches()
        with_answer = self.answer_matches()
        out = []
        for i, (item, state) in enumerate(zip(self.items, self.states, strict=True)):
            kinds = []
            if matches[i] >= self.config.min_matches:
                kinds.append("ngram")
            if self.config.near_dup > 0 and state.near_dup >= self.config.near_dup:
                kinds.append("near_dup")
            if not kinds:
                continue
            total = int(self.index.item_totals[i])
            out.append({
                "id": item.id, "task": item.task, "kinds": kinds,
                "ngram": {"matched": int(matches[i]), "total": total, "share": round(int(matches[i]) / max(1, total), 4),
                          "with_answer": int(with_answer[i])},
                "near_dup": {"similarity": state.near_dup},
                "where": state.places,
            })  # fmt: skip
        return out

    # ---- checkpoint ----------------------------------------------------------------------------------------
    def state(self, key: str) -> dict[str, Any]:
        return {
            "fingerprint": key,
            "done": self.done,
            "counts": self.counts,
            "items": [{"near_dup": s.near_dup, "places": s.places} for s in self.states],
        }

    def restore(self, state: dict[str, Any], matched: np.ndarray) -> None:
        self.done = dict(state["done"])
        self.counts = dict(state["counts"])
        self.states = [ItemState(s["near_dup"], list(s["places"])) for s in state["items"]]
        self.matched = matched.astype(bool)


def run_scan(
    scan: ContaminationScan,
    sources: Sequence[str | Path],
    out: OutDir,
    on_document: Callable[[int], None] | None = None,
    workers: int = 1,
) -> bool:
    """Stream every corpus document through ``scan``, checkpointing into ``out``; True if it resumed.

    ``on_document`` is called with each document's character count (progress). With ``workers`` > 1 documents are
    matched in that many forked processes (:mod:`ctxops.data.workers`) and recorded here in corpus order, so the
    result and the checkpoints are the same as with one. An empty corpus raises
    :class:`~ctxops.data.corpus.CorpusError`.
    """
    files = corpus_io.expand_paths(sources)
    if not files:
        raise corpus_io.CorpusError(f"{', '.join(map(str, sources))}: no corpus files found")
    key = scan.fingerprint(files)
    saved = out.load_state(key, ["matched"])
    if saved is not None:
        scan.restore(saved[0], saved[1]["matched"])
    last_save = time.monotonic()
    current = ""
    stream = pending(files, dict(scan.done))
    texts = ordered_map(scan.match, stream, workers, argument=lambda row: row[2].text)
    for (source, count, doc), found in texts:
        if current and source != current:  # a file is finished
            out.save_state(scan.state(key), {"matched": scan.matched})
            last_save = time.monotonic()
        current = source
        scan.record(doc, found)
        scan.done[source] = count
        if on_document is not None:
            on_document(len(doc.text))
        if time.monotonic() - last_save > scan.config.checkpoint_s:
            out.save_state(scan.state(key), {"matched": scan.matched})
            last_save = time.monotonic()
    if scan.counts["documents"] == 0:  # an empty corpus leaves nothing behind
        raise corpus_io.CorpusError(
            f"{', '.join(map(str, sources))}: the corpus holds no documents with text"
        )
    out.save_state(scan.state(key), {"matched": scan.matched})
    return saved is not None
