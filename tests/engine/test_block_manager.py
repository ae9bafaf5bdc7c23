"""Block manager: allocation, reference counts, prefix hits by hash chain, LRU reuse of freed cached blocks."""

from __future__ import annotations

import pytest

from ctxops.engine.block_manager import BlockManager, block_hash
from ctxops.engine.sampling_params import SamplingParams
from ctxops.engine.sequence import Sequence

BS = 4


def _seq(tokens, rid="r") -> Sequence:
    return Sequence(rid, list(tokens), SamplingParams())


def _run_prefill(bm: BlockManager, seq: Sequence) -> None:
    """What the scheduler + runner do for a whole prompt: match, allocate, compute, publish."""
    bm.match_prefix(seq)
    assert bm.allocate_slots(seq, seq.num_uncomputed_tokens)
    seq.num_computed_tokens = seq.num_tokens
    bm.cache_full_blocks(seq)


def test_allocate_and_free_return_every_block():
    bm = BlockManager(8, BS)
    seq = _seq(range(10))
    assert bm.allocate_slots(seq, 10)
    assert len(seq.block_table) == 3 and bm.num_free_blocks == 5
    bm.check_invariants([seq])
    bm.free(seq)
    assert bm.num_free_blocks == 8 and seq.block_table == []
    bm.check_invariants([])


def test_allocation_fails_without_side_effects_when_short():
    bm = BlockManager(2, BS)
    seq = _seq(range(12))
    assert not bm.allocate_slots(seq, 12)
    assert seq.block_table == [] and bm.num_free_blocks == 2


def test_shared_prefix_is_reused_and_ref_counted():
    bm = BlockManager(16, BS)
    a = _seq(list(range(10)), "a")
    _run_prefill(bm, a)
    b = _seq(list(range(8)) + [99, 98, 97], "b")
    hit = bm.match_prefix(b)
    assert hit == 8 and b.block_table == a.block_table[:2]
    assert [bm.blocks[i].ref_count for i in b.block_table] == [2, 2]
    assert bm.allocate_slots(b, b.num_uncomputed_tokens)
    bm.check_invariants([a, b])
    assert bm.prefix_hits == 8 and bm.prefix_queries == 10 + 11


def test_last_token_is_never_matched():
    bm = BlockManager(16, BS)
    a = _seq(range(8), "a")
    _run_prefill(bm, a)
    b = _seq(range(8), "b")  # the same 8 tokens: only the first block may hit, the last token is recomputed
    assert bm.match_prefix(b) == 4


def test_diverging_block_stops_the_chain():
    bm = BlockManager(16, BS)
    _run_prefill(bm, _seq([1, 2, 3, 4, 5, 6, 7, 8, 9], "a"))
    b = _seq([1, 2, 3, 4, 0, 6, 7, 8, 9], "b")
    assert bm.match_prefix(b) == 4


def test_freed_cached_blocks_stay_reusable_until_evicted_lru():
    bm = BlockManager(6, BS)
    a = _seq(range(9), "a")  # 3 blocks, 2 full and cached
    _run_prefill(bm, a)
    bm.free(a)
    b = _seq(range(9), "b")
    assert bm.match_prefix(b) == 8  # hits after free
    bm.free(b)
    # Fill the pool with other content: the uncached blocks go first, then the oldest cached ones.
    c = _seq(range(100, 117), "c")
    assert bm.allocate_slots(c, 17)  # needs 5 of 6 blocks: one cached block must be evicted
    d = _seq(range(9), "d")
    assert bm.match_prefix(d) == 4  # the first block (freed last, in reverse order) survived
    bm.check_invariants([c, d])


def test_hash_chain_names_each_block_with_its_whole_prefix_and_is_computed_once():
    bm = BlockManager(16, BS)
    seq = _seq(range(10))
    chain = bm.hash_chain(seq, 2)
    assert chain == [block_hash(None, [0, 1, 2, 3]), block_hash(block_hash(None, [0, 1, 2, 3]), [4, 5, 6, 7])]
    assert bm.hash_chain(seq, 1) is chain and len(chain) == 2  # never recomputed nor shortened
    same_block_other_prefix = _seq([9, 9, 9, 9, 4, 5, 6, 7])
    assert bm.hash_chain(same_block_other_prefix, 2)[1] != chain[1]


def test_counting_cached_blocks_takes_nothing():
    bm = BlockManager(16, BS)
    a = _seq(range(13), "a")
    _run_prefill(bm, a)  # 3 full blocks cached
    bm.free(a)
    free, queue = bm.num_free_blocks, list(bm.free_queue)
    b = _seq(list(range(8)) + [50, 51, 52, 53, 54], "b")
    assert bm.num_cached_blocks(b) == 2
    assert bm.num_free_blocks == free and list(bm.free_queue) == queue and not b.block_table
    assert bm.prefix_queries == 13 and bm.prefix_hits == 0
    assert bm.num_cached_blocks(_seq(range(12), "c")) == 2  # the last token is never matched
    assert bm.num_matchable_blocks(_seq(range(12), "c")) == 2
    pressed = _seq(range(13), "pressed")
    pressed.compress = True
    assert bm.num_matchable_blocks(pressed) == 0 and bm.num_cached_blocks(pressed) == 0


def test_prefix_caching_disabled_never_hits():
    bm = BlockManager(16, BS, enable_prefix_caching=False)
    _run_prefill(bm, _seq(range(10), "a"))
    assert bm.match_prefix(_seq(range(10), "b")) == 0


def test_double_free_is_caught():
    bm = BlockManager(4, BS)
    seq = _seq(range(4))
    bm.allocate_slots(seq, 4)
    table = list(seq.block_table)
    bm.free(seq)
    seq.block_table = table
    with pytest.raises(AssertionError):
        bm.free(seq)
