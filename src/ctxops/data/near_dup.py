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

Many corpus windows never reach MinHash: a window can only reach the candidate Jaccard with some eval window if
that share of its bigrams occurs somewhere in the eval set (J(A, B) >= t implies |A ∩ B| >= t·|A|), which numpy
checks for a whole document at once. The rest are signed and banded a document at a time
(:mod:`ctxops.data.window_sketch`: the values ``datasketch`` gives, without a Python call per window), and the
MinHash estimate of each candidate pair drops most of them before the exact Jaccard. This module knows hashes and
windows, not files or reports.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from datasketch import LeanMinHash, MinHash

from ctxops.data.ngrams import contains, ngram_hashes
from ctxops.data.window_sketch import BandIndex, Permutations

NUM_PERM = 128
CANDIDATE_JACCARD = (
    0.25  # bigram Jaccard of 20%-edited copies is >= 0.40 (measured), so they all reach the check
)
MIN_RUN = 3  # words: shorter common runs are the shared phrases of unrelated text
MIN_SHINGLES = 8  # an eval window with fewer distinct non-boilerplate bigrams says nothing and is skipped
# a candidate whose MinHash estimate is this far below CANDIDATE_JACCARD is dropped before the exact check: at
# J = 0.25 the estimate's standard deviation over 128 permutations is 0.038, so 0.1 loses such a pair < 1% of the
# time, and the copies that matter (J >= 0.40) practically never
ESTIMATE_SLACK = 0.1
_PAIR_BATCH = 8192  # candidate pairs compared at once: 2 x 4 MB of signatures
_COUNT_BATCH = 4096  # windows whose distinct counts are taken at once (4096 x window int64 indices)
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
    """The eval items' windows: their shingle sets, MinHash signatures and LSH bands."""

    def __init__(self, window: int, threshold: float, shingle: int = 2) -> None:
        if window < 10:
            raise ValueError(f"window must be at least 10 words, got {window}")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.window, self.threshold, self.shingle = window, threshold, shingle
        self.permutations = Permutations(NUM_PERM)
        self.bands: BandIndex | None = None
        self.signatures = np.zeros((0, NUM_PERM), dtype=np.uint32)
        self.item_words: list[np.ndarray] = []
        self.sets: list[np.ndarray] = []
        self.owners: list[tuple[int, int]] = []  # (item, first word) of each window
        self.boilerplate = np.zeros(0, dtype=np.uint64)
        self.vocabulary = np.zeros(0, dtype=np.uint64)  # every kept eval shingle, sorted

    def add_items(self, item_words: Sequence[np.ndarray], boilerplate: np.ndarray) -> None:
        """Cut every item (its word hashes) into windows and index them; ``boilerplate`` shingles are dropped."""
        self.boilerplate = np.unique(boilerplate)
        self.item_words = list(item_words)
        pieces, owners = [], []
        for item, hashes in enumerate(item_words):
            shingles = ngram_hashes(hashes, self.shingle)
            for start in _window_starts(
                len(hashes), self.window, self.window
            ):  # the last one ends at the end
                pieces.append(shingles[start : start + self.window - self.shingle + 1])
                owners.append((item, start))
        if not pieces:
            return
        # every window's set at once: sort (window, shingle), keep the first of each pair, drop boilerplate
        window = np.repeat(np.arange(len(pieces)), [len(p) for p in pieces])
        values = np.concatenate(pieces)
        order = np.lexsort((values, window))
        window, values = window[order], values[order]
        first = np.ones(len(values), dtype=bool)
        first[1:] = (window[1:] != window[:-1]) | (values[1:] != values[:-1])
        keep = first & ~contains(self.boilerplate, values)
        window, values = window[keep], values[keep]
        sizes = np.bincount(window, minlength=len(pieces))
        sets = np.split(values, np.cumsum(sizes)[:-1])
        for key in np.flatnonzero(sizes >= MIN_SHINGLES).tolist():
            self.sets.append(sets[key])
            self.owners.append(owners[key])
        if self.sets:
            self.signatures = self.permutations.sets(self.sets)
            self.bands = BandIndex(self.signatures, CANDIDATE_JACCARD, NUM_PERM)
            self.vocabulary = np.unique(np.concatenate(self.sets))

    def matches(self, doc_hashes: np.ndarray) -> Iterator[WindowMatch]:
        """Every (eval window, corpus window) pair of the document at or above the threshold."""
        shingles = ngram_hashes(doc_hashes, self.shingle)
        if self.bands is None or not len(shingles):
            return
        order = np.argsort(shingles)  # one sort serves both memberships and the distinct counts
        kept = ~contains(self.boilerplate, shingles, order)
        known = contains(
            self.vocabulary, shingles, order
        )  # vocabulary holds no boilerplate: known implies kept
        span = max(1, self.window - self.shingle + 1)
        stride = max(1, self.window // 4)
        least = CANDIDATE_JACCARD
        starts = np.asarray(_window_starts(len(shingles), span, stride))
        stops = np.minimum(starts + span, len(shingles))
        # positional counts first (cheap); a loose bound, the set bound below is the real one
        running_kept = np.concatenate([[0], np.cumsum(kept)])
        running_known = np.concatenate([[0], np.cumsum(known)])
        loose = running_known[stops] - running_known[starts] >= 0.5 * least * (
            running_kept[stops] - running_kept[starts]
        )
        starts = starts[loose]
        distinct_kept, distinct_known = _distinct_counts(shingles, kept, known, starts, span, order)
        starts = starts[(distinct_kept >= MIN_SHINGLES) & (distinct_known >= least * distinct_kept)]
        if not len(starts):
            return
        signatures = self.permutations.windows(shingles, kept, starts, span)
        rows, keys = self.bands.candidates(signatures)
        # MinHash's estimate of the Jaccard similarity drops most LSH candidates before the exact check
        close = _agreements(signatures, rows, self.signatures, keys) >= (least - ESTIMATE_SLACK) * NUM_PERM
        window_sets: dict[int, np.ndarray] = {}
        for row, key in zip(rows[close].tolist(), keys[close].tolist(), strict=True):
            start = int(starts[row])
            if row not in window_sets:
                segment = shingles[start : start + span]
                window_sets[row] = np.unique(segment[kept[start : start + span]])
            if _jaccard(self.sets[key], window_sets[row]) < least:
                continue
            item, item_word = self.owners[key]
            passage = self.item_words[item][item_word : item_word + self.window].tolist()
            region = doc_hashes[max(0, start - stride) : start + self.window + stride].tolist()
            similarity = aligned_similarity(passage, region)
            if similarity >= self.threshold:
                yield WindowMatch(item, item_word, start, similarity)


def _agreements(a: np.ndarray, rows: np.ndarray, b: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Permutations on which ``a[rows[i]]`` and ``b[keys[i]]`` agree, per pair: MinHash's estimate x NUM_PERM.

    Taken ``_PAIR_BATCH`` pairs at a time: the gathered rows of a batch stay in cache, and a document's million
    candidate pairs never hold 2 x 512 MB of gathered signatures at once.
    """
    out = np.empty(len(rows), dtype=np.int64)
    for lo in range(0, len(rows), _PAIR_BATCH):
        hi = lo + _PAIR_BATCH
        out[lo:hi] = np.count_nonzero(a[rows[lo:hi]] == b[keys[lo:hi]], axis=1)
    return out


def _distinct_counts(
    values: np.ndarray,
    kept: np.ndarray,
    known: np.ndarray,
    starts: np.ndarray,
    span: int,
    order: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct kept and distinct known values in each window ``values[s : s + span]``, for every start ``s``.

    A value counts at its first position in the window: where its previous occurrence lies before the window.
    ``order`` is ``np.argsort(values)`` (any sort) if the caller has it.
    """
    order = np.argsort(values) if order is None else order
    if len(values):
        # equal values in position order: sort (value's rank, position), one int64 each; a quicksort of these
        # is 3x faster than a stable sort of the 64-bit values
        ranks = np.zeros(len(values), dtype=np.int64)
        ranks[1:] = np.cumsum(values[order][1:] != values[order][:-1])
        order = order[np.argsort(ranks * len(values) + order)]
    ordered = values[order]
    previous = np.full(len(values), -1, dtype=np.int64)
    same = ordered[1:] == ordered[:-1]
    previous[order[1:][same]] = order[:-1][same]
    kept_counts = np.zeros(len(starts), dtype=np.int64)
    known_counts = np.zeros(len(starts), dtype=np.int64)
    offsets = np.arange(span)
    for lo in range(0, len(starts), _COUNT_BATCH):
        batch = starts[lo : lo + _COUNT_BATCH]
        index = batch[:, None] + offsets[None, :]
        inside = index < len(values)
        index = np.minimum(index, len(values) - 1)
        first = inside & (previous[index] < batch[:, None])
        kept_counts[lo : lo + len(batch)] = (first & kept[index]).sum(axis=1)
        known_counts[lo : lo + len(batch)] = (first & known[index]).sum(axis=1)
    return kept_counts, known_counts


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
