"""Near-duplicates of eval passages inside long documents: MinHash LSH (``datasketch``) over word windows.

Each eval item is cut into windows of ``window`` words; each corpus document is read as windows of the same size
every ``window // 4`` words, so a passage buried at any depth of a 100K-word document lines up with some corpus
window to within an eighth of a window. A window is the set of its word bigrams, minus the eval set's boilerplate
bigrams. LSH proposes (eval window, corpus window) pairs whose Jaccard similarity is likely above
``CANDIDATE_JACCARD``; the exact Jaccard, then the *aligned similarity* decide: the share of the eval window's words
that the corpus text (the window and a stride either side) holds in the same order, in runs of at least
``MIN_RUN`` words (``difflib``). Jaccard alone cannot tell a passage with 20% of its words edited from unrelated
text written from the same phrases; order can (measured on ctxops' own prose grammar: edited copies 0.69 and up,
unrelated windows at most 0.41).

Most corpus windows never reach MinHash: a window can only reach the candidate Jaccard with some eval window if
that share of its bigrams occurs somewhere in the eval set (J(A, B) >= t implies |A ∩ B| >= t·|A|), which numpy
checks for a whole document at once. This module knows hashes and windows, not files or reports.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from ctxops.data.ngrams import ngram_hashes

NUM_PERM = 128
CANDIDATE_JACCARD = (
    0.25  # bigram Jaccard of 20%-edited copies is >= 0.40 (measured), so they all reach the check
)
MIN_RUN = 3  # words: shorter common runs are the shared phrases of unrelated text
MIN_SHINGLES = 8  # an eval window with fewer distinct non-boilerplate bigrams says nothing and is skipped
_MASK32 = np.uint64(0xFFFFFFFF)  # the affine32 scheme takes 32-bit hash values


def _identity(value: int) -> int:
    return value


_SCHEME = "affine32"  # datasketch 2's default: 32-bit values, 32-bit permutations
_TEMPLATE = MinHash(
    num_perm=NUM_PERM, seed=1, scheme=_SCHEME
)  # its permutations are computed once and shared


def minhash(shingles: np.ndarray) -> MinHash:
    """The MinHash of a set of (64-bit) shingle hashes."""
    sketch = MinHash(
        num_perm=NUM_PERM, seed=1, hashfunc=_identity, permutations=_TEMPLATE.permutations, scheme=_SCHEME
    )
    sketch.update_batch((shingles & _MASK32).tolist())
    return sketch


def lean_minhash(hashvalues: np.ndarray) -> LeanMinHash:
    """The MinHash that :func:`minhash` gave these hash values (e.g. read back from a journal)."""
    return LeanMinHash(seed=1, hashvalues=hashvalues, scheme=_SCHEME)


@dataclass(frozen=True, slots=True)
class WindowMatch:
    """An eval item's window found near-duplicated in a corpus window."""

    item: int  # index of the eval item
    item_word: int  # first word of the eval window in the item
    doc_word: int  # first word of the corpus window in the document
    similarity: float  # aligned similarity (see the module docstring)


class WindowIndex:
    """The eval items' windows in an LSH, with their exact shingle sets for verification."""

    def __init__(self, window: int, threshold: float, shingle: int = 2) -> None:
        if window < 10:
            raise ValueError(f"window must be at least 10 words, got {window}")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.window, self.threshold, self.shingle = window, threshold, shingle
        self.lsh = MinHashLSH(threshold=CANDIDATE_JACCARD, num_perm=NUM_PERM)
        self.item_words: list[np.ndarray] = []
        self.sets: list[np.ndarray] = []
        self.owners: list[tuple[int, int]] = []  # (item, first word) of each window
        self.boilerplate = np.zeros(0, dtype=np.uint64)
        self.vocabulary = np.zeros(0, dtype=np.uint64)  # every kept eval shingle, sorted

    def add_items(self, item_words: Sequence[np.ndarray], boilerplate: np.ndarray) -> None:
        """Cut every item (its word hashes) into windows and index them; ``boilerplate`` shingles are dropped."""
        self.boilerplate = np.unique(boilerplate)
        self.item_words = list(item_words)
        for item, hashes in enumerate(item_words):
            for start in _window_starts(
                len(hashes), self.window, self.window
            ):  # the last one ends at the end
                shingles = self._set(hashes[start : start + self.window])
                if len(shingles) < MIN_SHINGLES:
                    continue
                key = len(self.sets)
                self.sets.append(shingles)
                self.owners.append((item, start))
                self.lsh.insert(key, minhash(shingles), check_duplication=False)
        self.vocabulary = np.unique(np.concatenate(self.sets)) if self.sets else self.vocabulary

    def _set(self, window_hashes: np.ndarray) -> np.ndarray:
        shingles = np.unique(ngram_hashes(window_hashes, self.shingle))
        return np.setdiff1d(shingles, self.boilerplate, assume_unique=True)

    def matches(self, doc_hashes: np.ndarray) -> Iterator[WindowMatch]:
        """Every (eval window, corpus window) pair of the document at or above the threshold."""
        shingles = ngram_hashes(doc_hashes, self.shingle)
        if not self.sets or not len(shingles):
            return
        kept = ~np.isin(shingles, self.boilerplate) if len(self.boilerplate) else np.ones(len(shingles), bool)
        known = np.isin(shingles, self.vocabulary)  # vocabulary holds no boilerplate: known implies kept
        running_kept = np.concatenate([[0], np.cumsum(kept)])
        running_known = np.concatenate([[0], np.cumsum(known)])
        span = max(1, self.window - self.shingle + 1)
        stride = max(1, self.window // 4)
        least = CANDIDATE_JACCARD
        for start in _window_starts(len(shingles), span, stride):
            stop = min(start + span, len(shingles))
            # positional counts first (cheap); a loose bound, the set bound below is the real one
            if running_known[stop] - running_known[start] < 0.5 * least * (
                running_kept[stop] - running_kept[start]
            ):
                continue
            segment = shingles[start:stop]
            window_set = set(segment[kept[start:stop]].tolist())
            if len(window_set) < MIN_SHINGLES:
                continue
            if len(set(segment[known[start:stop]].tolist())) < least * len(window_set):
                continue
            window = np.sort(np.fromiter(window_set, dtype=np.uint64, count=len(window_set)))
            region = doc_hashes[max(0, start - stride) : start + self.window + stride].tolist()
            for key in self.lsh.query(minhash(window)):
                if _jaccard(self.sets[key], window) < least:
                    continue
                item, item_word = self.owners[key]
                passage = self.item_words[item][item_word : item_word + self.window].tolist()
                similarity = aligned_similarity(passage, region)
                if similarity >= self.threshold:
                    yield WindowMatch(item, item_word, start, similarity)


def aligned_similarity(passage: list[int], region: list[int]) -> float:
    """Share of ``passage``'s words found in ``region`` in the same order, in common runs of >= MIN_RUN words."""
    matcher = difflib.SequenceMatcher(None, passage, region, autojunk=False)
    covered = sum(block.size for block in matcher.get_matching_blocks() if block.size >= MIN_RUN)
    return covered / max(1, len(passage))


def _window_starts(count: int, span: int, stride: int) -> list[int]:
    """Window starts every ``stride`` positions, plus one that ends at the document's end."""
    last = max(0, count - span)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)
