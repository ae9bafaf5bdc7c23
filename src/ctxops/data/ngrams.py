"""Normalized words and their n-grams as 64-bit hashes, and the index of an eval set's n-grams.

Text is normalized as lm-evaluation-harness does for decontamination: lower case, punctuation dropped, split into
words (runs of letters and digits). Each word is hashed with xxh64; an n-gram's hash is a polynomial over its words'
hashes, computed for a whole document at once with numpy, so a corpus is scanned at numpy speed rather than one
Python object per n-gram. Hashes are deterministic across processes and machines.

:class:`NgramIndex` holds every n-gram of the eval items as sorted arrays (hash, item) and answers "which items own
the n-grams at these positions" for a corpus document. N-grams shared by a large share of the items (templates,
repeated filler) are *boilerplate*: kept apart, counted separately, and never make an item dirty. This module knows
words and hashes, not files or reports.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xxhash

_WORD = re.compile(r"[^\W_]+")
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: the polynomial step between a word and the next


def words(text: str) -> list[str]:
    """The normalized words of ``text``: lower case, letters and digits only."""
    return _WORD.findall(text.lower())


class _HashTable(dict[str, int]):
    """word -> xxh64, filled on first sight; a plain dict lookup per word (3x cheaper than an ``lru_cache`` call)."""

    def __missing__(self, word: str) -> int:
        if len(self) >= _TABLE_WORDS:  # a corpus of endless new words (ids, numbers) must not grow it forever
            self.clear()
        value = self[word] = xxhash.xxh64_intdigest(word.encode())
        return value


_TABLE_WORDS = 1 << 20  # about 150 MB at most (str, int and slot per word): a corpus's common words fit
_TABLE = _HashTable()


def word_hashes(tokens: Sequence[str]) -> np.ndarray:
    """One uint64 hash per word."""
    return np.fromiter(map(_TABLE.__getitem__, tokens), dtype=np.uint64, count=len(tokens))


class _BytesTable(dict[bytes, int]):
    """The same hashes keyed by an ASCII word's bytes (xxh64 of the bytes is xxh64 of ``str.encode()``)."""

    def __missing__(self, word: bytes) -> int:
        if len(self) >= _TABLE_WORDS:
            self.clear()
        value = self[word] = xxhash.xxh64_intdigest(word)
        return value


_BYTES_TABLE = _BytesTable()
# ASCII letters lower-cased, digits kept, every other byte a space: on ASCII text, split() then gives words()
_ASCII_WORDS = bytes(
    c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256)
)


def text_word_hashes(text: str) -> np.ndarray:
    """``word_hashes(words(text))``; ASCII text takes a byte path 4x faster than the regular expression."""
    if not text.isascii():
        return word_hashes(words(text))
    tokens = text.encode("ascii").translate(_ASCII_WORDS).split()
    return np.fromiter(map(_BYTES_TABLE.__getitem__, tokens), dtype=np.uint64, count=len(tokens))


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """The hash of every run of ``n`` consecutive words: element i covers words i..i+n-1 (empty when too short)."""
    count = len(hashes) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    out = hashes[:count].copy()
    for offset in range(1, n):  # uint64 arithmetic wraps, which is what a hash wants
        out *= _MULTIPLIER
        out ^= hashes[offset : offset + count]
    return out


def text_ngrams(text: str, n: int) -> np.ndarray:
    """Hashes of the n-grams of ``text``'s normalized words, in order."""
    return ngram_hashes(word_hashes(words(text)), n)


def search_sorted(
    keys: np.ndarray, values: np.ndarray, order: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``searchsorted(keys, values)`` left and right, for values in any order.

    The values are searched in ascending order and the answers put back: binary searches that follow each other
    through ``keys`` keep it in cache, 2.5x faster on a million values than searching them as they come.
    ``order`` is ``np.argsort(values)`` when the caller has it already (one sort serves several searches).
    """
    order = np.argsort(values) if order is None else order
    ascending = values[order]
    left, right = np.empty(len(values), dtype=np.int64), np.empty(len(values), dtype=np.int64)
    left[order] = np.searchsorted(keys, ascending, side="left")
    right[order] = np.searchsorted(keys, ascending, side="right")
    return left, right


def contains(sorted_set: np.ndarray, values: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """``np.isin(values, sorted_set)`` for a sorted array of unique values, without re-sorting the set.

    ``order`` is ``np.argsort(values)`` if known. One search per value: the set is unique, so a value is in it when
    the element at its left insertion point equals it.
    """
    if not len(sorted_set) or not len(values):
        return np.zeros(len(values), dtype=bool)
    order = np.argsort(values) if order is None else order
    ascending = values[order]
    left = np.minimum(np.searchsorted(sorted_set, ascending, side="left"), len(sorted_set) - 1)
    out = np.empty(len(values), dtype=bool)
    out[order] = sorted_set[left] == ascending
    return out


@dataclass
class NgramIndex:
    """Every n-gram of a set of items, each once per item, boilerplate held apart."""

    keys: np.ndarray  # sorted uint64 n-gram hashes (a hash owned by k items appears k times)
    owners: np.ndarray  # int32 item index of each key
    boilerplate: np.ndarray  # sorted unique uint64 hashes shared by too many items to count
    item_totals: np.ndarray  # int64 distinct non-boilerplate n-grams per item
    is_answer: np.ndarray  # bool per key: the n-gram covers a word of its item's gold answer

    @classmethod
    def build(
        cls,
        item_ngrams: Sequence[np.ndarray],
        groups: Sequence[str],
        boilerplate_share: float,
        answer_ngrams: Sequence[np.ndarray] | None = None,
    ) -> NgramIndex:
        """Index ``item_ngrams`` (one array per item); ``groups`` are the items' tasks.

        An n-gram found in at least ``boilerplate_share`` of the items of its task (a task of 2 items or more)
        or of all items is boilerplate. ``answer_ngrams`` (per item) marks the n-grams that hold an answer.
        """
        uniques = [np.unique(h) for h in item_ngrams]
        keys = np.concatenate(uniques) if uniques else np.zeros(0, dtype=np.uint64)
        owners = (
            np.concatenate([np.full(len(u), i, dtype=np.int32) for i, u in enumerate(uniques)])
            if uniques
            else np.zeros(0, dtype=np.int32)
        )
        boiler = _shared(keys, len(uniques), boilerplate_share)
        labels = np.asarray(groups)
        for group in dict.fromkeys(groups):
            members = np.flatnonzero(labels == group)
            if len(members) >= 2:
                mask = np.isin(owners, members)
                boiler = np.union1d(boiler, _shared(keys[mask], len(members), boilerplate_share))
        answers = np.zeros(len(keys), dtype=bool)
        if answer_ngrams is not None:
            offsets = np.cumsum([0, *map(len, uniques)])
            for i, grams in enumerate(answer_ngrams):
                answers[offsets[i] : offsets[i + 1]] = np.isin(uniques[i], grams)
        keep = ~np.isin(keys, boiler)
        keys, owners, answers = keys[keep], owners[keep], answers[keep]
        order = np.argsort(keys, kind="stable")
        totals = np.bincount(owners, minlength=len(uniques)).astype(np.int64)
        return cls(keys[order], owners[order], boiler, totals, answers[order])

    def lookup(
        self, doc_ngrams: np.ndarray, order: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(positions in the document, key indices) of every hit; a hash owned by k items gives k hits.

        ``order`` is ``np.argsort(doc_ngrams)`` if the caller has it (shared with :meth:`boilerplate_hits`).
        """
        if not len(self.keys) or not len(doc_ngrams):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        left, right = search_sorted(self.keys, doc_ngrams, order)
        counts = right - left
        positions = np.repeat(np.arange(len(doc_ngrams)), counts)
        if not len(positions):
            return positions, positions
        starts = np.repeat(left, counts)
        within = np.arange(len(positions)) - np.repeat(np.cumsum(counts) - counts, counts)
        return positions, starts + within

    def boilerplate_hits(self, doc_ngrams: np.ndarray, order: np.ndarray | None = None) -> int:
        """How many of the document's n-grams are boilerplate n-grams of the eval set."""
        return int(contains(self.boilerplate, doc_ngrams, order).sum())


def answer_ngrams(item_words: Sequence[str], answers: Sequence[str], n: int) -> np.ndarray:
    """Hashes of the n-grams of ``item_words`` that cover a word of any answer where it occurs in the item."""
    hashes = ngram_hashes(word_hashes(item_words), n)
    covered = np.zeros(len(hashes), dtype=bool)
    for answer in answers:
        target = words(answer)
        if not target:
            continue
        for start in range(len(item_words) - len(target) + 1):
            if item_words[start : start + len(target)] == target:
                covered[max(0, start - n + 1) : start + len(target)] = True
    return hashes[covered]


def _shared(keys: np.ndarray, num_items: int, share: float) -> np.ndarray:
    """Hashes present in at least ``share`` of ``num_items`` items (``keys`` holds each item's hashes once)."""
    if num_items < 2 or not len(keys):
        return np.zeros(0, dtype=np.uint64)
    values, counts = np.unique(keys, return_counts=True)
    return values[counts >= max(2, share * num_items)]
