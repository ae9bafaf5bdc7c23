"""MinHash signatures and LSH bands of many word windows at once, in numpy: the same values as ``datasketch``.

A window's MinHash is, per permutation, the least permuted hash of its shingles; ``datasketch`` computes it one set
at a time (a Python call per window). Here every shingle of a stretch of document is permuted once, as
``datasketch``'s ``affine32`` scheme does it (MurmurHash3's 32-bit finalizer, then ``a * h + b`` modulo 2^32 with
the same ``a`` and ``b``), shingles outside the set are masked with the largest value, and the minimum over each
window comes from the van Herk / Gil-Werman trick: prefix and suffix minima within blocks of the window's length,
so any window is the minimum of one suffix and one prefix. Overlapping windows (a stride of a quarter window)
share their shingles' work. The tests hold the result equal to ``datasketch.MinHash.update_batch``.

LSH banding follows ``datasketch.MinHashLSH``'s layout (``b`` bands of ``r`` rows, chosen by ``datasketch`` for
the threshold); a band's ``r`` values are folded into one 64-bit key, and the candidates of every window of a
document are found with one sorted search per band. A folded key can collide where ``datasketch``'s byte keys
would not; that only adds candidates, which the caller verifies. This module knows arrays, not documents.
"""

from __future__ import annotations

import numpy as np
from datasketch import MinHash, MinHashLSH

from ctxops.data.ngrams import search_sorted

NUM_PERM = 128
EMPTY = np.uint32(0xFFFFFFFF)  # datasketch's value of an empty set in the affine32 scheme, and our mask
_CHUNK = 32_768  # shingles permuted at once: 16 MiB of uint32 per array
_MASK32 = np.uint64(0xFFFFFFFF)
_FOLD = np.uint64(0x9E3779B97F4A7C15)  # odd: folding a band's rows into one key is a bijection per step


class Permutations:
    """The ``a`` and ``b`` of ``datasketch``'s affine32 MinHash with seed 1, and the finalizer it applies first."""

    def __init__(self, num_perm: int = NUM_PERM, seed: int = 1) -> None:
        template = MinHash(num_perm=num_perm, seed=seed, scheme="affine32")
        self.a, self.b = (np.asarray(p, dtype=np.uint32) for p in template.permutations)
        self.num_perm = num_perm

    def permuted(self, shingles: np.ndarray) -> np.ndarray:
        """``(len(shingles), num_perm)`` uint32: every shingle's value under every permutation."""
        h = (shingles & _MASK32).astype(np.uint32)
        h ^= h >> np.uint32(16)  # MurmurHash3 fmix32, as datasketch pre-mixes affine32 input
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
        out = h[:, None] * self.a[None, :]
        out += self.b[None, :]
        return out

    def signature(self, shingles: np.ndarray) -> np.ndarray:
        """The MinHash of one set of shingle hashes (``EMPTY`` everywhere for an empty set)."""
        if not len(shingles):
            return np.full(self.num_perm, EMPTY, dtype=np.uint32)
        return self.permuted(shingles).min(axis=0)

    def sets(self, sets: list[np.ndarray]) -> np.ndarray:
        """MinHashes ``(len(sets), num_perm)`` of non-empty sets, permuted together in chunks."""
        out = np.empty((len(sets), self.num_perm), dtype=np.uint32)
        first = 0
        while first < len(sets):
            last, size = first, 0
            while last < len(sets) and (size == 0 or size + len(sets[last]) <= _CHUNK):
                size += len(sets[last])
                last += 1
            values = self.permuted(np.concatenate(sets[first:last]))
            ends = np.cumsum([len(x) for x in sets[first:last]]).tolist()
            # a min per slice: 15x faster than minimum.reduceat along axis 0, which strides across rows
            for row, (lo, hi) in enumerate(zip([0, *ends[:-1]], ends, strict=True), first):
                out[row] = values[lo:hi].min(axis=0)
            first = last
        return out

    def windows(self, shingles: np.ndarray, member: np.ndarray, starts: np.ndarray, span: int) -> np.ndarray:
        """MinHashes ``(len(starts), num_perm)`` of the windows ``shingles[s : s + span]``.

        Each window (clipped to the end) is the set of its shingles where ``member`` is True. ``starts`` must be
        ascending. Work is done in chunks of about ``_CHUNK`` shingles.
        """
        out = np.empty((len(starts), self.num_perm), dtype=np.uint32)
        first = 0
        while first < len(starts):
            lo = int(starts[first])
            last = int(np.searchsorted(starts, lo + _CHUNK, side="right")) - 1
            last = max(last, first)
            hi = min(int(starts[last]) + span, len(shingles))
            out[first : last + 1] = self._sliding_min(
                shingles[lo:hi], member[lo:hi], starts[first : last + 1] - lo, span
            )
            first = last + 1
        return out

    def _sliding_min(
        self, shingles: np.ndarray, member: np.ndarray, starts: np.ndarray, span: int
    ) -> np.ndarray:
        values = self.permuted(shingles)
        values[~member] = EMPTY
        blocks = -(-max(len(values), 1) // span)
        padded = np.full(
            (blocks * span + span, self.num_perm), EMPTY, dtype=np.uint32
        )  # a spare block at the end
        padded[: len(values)] = values
        prefix = padded.reshape(-1, span, self.num_perm)
        suffix = prefix.copy()
        # running minima along each block, one position at a time over every block and permutation at once
        # (3x faster than minimum.accumulate along the middle axis, whose inner loop strides across rows)
        for j in range(1, span):
            np.minimum(prefix[:, j - 1], prefix[:, j], out=prefix[:, j])
            np.minimum(suffix[:, span - j], suffix[:, span - j - 1], out=suffix[:, span - j - 1])
        prefix, suffix = prefix.reshape(-1, self.num_perm), suffix.reshape(-1, self.num_perm)
        # [s, s + span) is the suffix of s's block and the prefix of the next block up to s + span - 1
        return np.minimum(suffix[starts], prefix[starts + span - 1])


class BandIndex:
    """The LSH bands of a set of signatures, each band a sorted array of folded keys."""

    def __init__(self, signatures: np.ndarray, threshold: float, num_perm: int = NUM_PERM) -> None:
        params = MinHashLSH(threshold=threshold, num_perm=num_perm)  # datasketch picks b bands of r rows
        self.ranges = [(int(a), int(b)) for a, b in params.hashranges]
        self.keys: list[np.ndarray] = []
        self.owners: list[np.ndarray] = []
        for band in self._fold(signatures):
            order = np.argsort(band, kind="stable")
            self.keys.append(band[order])
            self.owners.append(order)

    def _fold(self, signatures: np.ndarray) -> list[np.ndarray]:
        folded = []
        for a, b in self.ranges:
            key = np.zeros(len(signatures), dtype=np.uint64)
            for column in range(a, b):
                key = key * _FOLD + signatures[:, column].astype(np.uint64)
            folded.append(key)
        return folded

    def candidates(self, signatures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query row, indexed row) of every pair that shares at least one band, each pair once, sorted."""
        rows, owners = [], []
        for band, keys, order in zip(self._fold(signatures), self.keys, self.owners, strict=True):
            left, right = search_sorted(keys, band)
            count = right - left
            hit = np.flatnonzero(count)
            if not len(hit):
                continue
            repeats = count[hit]
            query = np.repeat(hit, repeats)
            # offsets 0..count-1 within each run of equal keys
            within = np.arange(repeats.sum()) - np.repeat(np.cumsum(repeats) - repeats, repeats)
            rows.append(query)
            owners.append(order[np.repeat(left[hit], repeats) + within])
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        # each pair once, sorted by (query, indexed): one int64 key per pair sorts 10x faster than unique rows
        width = np.int64(len(self.keys[0]))
        pairs = np.sort(np.concatenate(rows).astype(np.int64) * width + np.concatenate(owners))
        pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])]  # np.unique's hash table is slower
        return pairs // width, pairs % width
