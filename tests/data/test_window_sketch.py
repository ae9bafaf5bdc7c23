"""Vectorized MinHash windows and LSH bands give what datasketch gives, one window at a time."""

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHashLSH

from ctxops.data.near_dup import _distinct_counts, _window_starts, minhash
from ctxops.data.ngrams import contains, search_sorted
from ctxops.data.window_sketch import BandIndex, Permutations


@pytest.mark.parametrize("length", [5, 98, 99, 100, 700])
def test_window_signatures_equal_datasketch_minhash_of_each_window(length):
    rng = np.random.default_rng(length)
    shingles = rng.integers(0, 2**63, length, dtype=np.uint64)
    shingles[length // 2 :: 7] = shingles[0]  # repeated values, as repeated bigrams are
    member = rng.random(length) > 0.2
    span, permutations = 99, Permutations()
    starts = np.asarray(_window_starts(length, span, 24))
    signatures = permutations.windows(shingles, member, starts, span)
    for row, start in enumerate(starts):
        window = np.unique(shingles[start : start + span][member[start : start + span]])
        assert (signatures[row] == minhash(window).hashvalues).all()
    assert (permutations.signature(shingles) == minhash(shingles).hashvalues).all()


def test_band_candidates_hold_every_pair_datasketch_lsh_returns():
    rng = np.random.default_rng(0)
    permutations = Permutations()
    base = [rng.integers(0, 2**63, 80, dtype=np.uint64) for _ in range(60)]
    indexed = np.stack([permutations.signature(b) for b in base])
    queries = np.stack(
        [
            permutations.signature(np.concatenate([b[:50], rng.integers(0, 2**63, 30, dtype=np.uint64)]))
            for b in base
        ]
    )
    lsh = MinHashLSH(threshold=0.25, num_perm=128)
    for key, signature in enumerate(indexed):
        lsh.insert(key, LeanMinHash(seed=1, hashvalues=signature, scheme="affine32"))
    expected = {
        (row, key)
        for row, signature in enumerate(queries)
        for key in lsh.query(LeanMinHash(seed=1, hashvalues=signature, scheme="affine32"))
    }
    rows, keys = BandIndex(indexed, 0.25).candidates(queries)
    found = set(zip(rows.tolist(), keys.tolist(), strict=True))
    assert expected <= found
    assert len({(i, i) for i in range(60)} & found) >= 55  # J = 0.45: LSH proposes 98% of such pairs
    assert len(found - expected) <= len(expected) // 100  # folded band keys rarely add a pair


def test_sorted_search_membership_and_distinct_window_counts():
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(0, 1000, 300).astype(np.uint64))
    values = rng.integers(0, 1000, 2000).astype(np.uint64)
    left, right = search_sorted(keys, values)
    assert (left == np.searchsorted(keys, values)).all()
    assert (right == np.searchsorted(keys, values, side="right")).all()
    assert (contains(keys, values) == np.isin(values, keys)).all()
    member = values % 3 != 0  # as for kept and known shingles: a property of the value, not the position
    starts = np.asarray(_window_starts(2000, 99, 25))
    kept, known = _distinct_counts(values, member, ~member, starts, 99)
    for i, s in enumerate(starts):
        window, inside = values[s : s + 99], member[s : s + 99]
        assert kept[i] == len(set(window[inside].tolist()))
        assert known[i] == len(set(window[~inside].tolist()))


def test_signatures_of_many_sets_equal_datasketch():
    rng = np.random.default_rng(3)
    sets = [np.unique(rng.integers(0, 2**63, int(rng.integers(1, 300)), dtype=np.uint64)) for _ in range(300)]
    signatures = Permutations().sets(sets)
    assert all((signatures[i] == minhash(s).hashvalues).all() for i, s in enumerate(sets))
