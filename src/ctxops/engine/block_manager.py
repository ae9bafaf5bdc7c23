"""Paged KV blocks: allocation, reference counts and the prefix cache.

The pool has a fixed number of blocks of ``block_size`` token slots. A sequence's ``block_table`` lists its blocks
in order. A block that is full of computed tokens gets a hash chained from its parent's
(``xxh3_64(parent_hash || token ids)``); another sequence whose prompt starts with the same tokens reuses it instead
of recomputing it. Freed blocks keep their hash and stay reusable until the space is needed: blocks are recycled
least-recently-freed first, with never-hashed blocks recycled before cached ones. The chain of a sequence's token
blocks is kept on it, so the scheduler can count the cached blocks a waiting request would reuse without taking
them, and find whether a running request is computing its next one.

With a quantized KV format the block manager also hands out full-precision *window* blocks, one per sequence
(where the block being filled is kept until it is full and quantized); under a head policy the same per-sequence
ids name the sequence's streaming-head *ring*. They are taken with a sequence's first blocks and returned when
it is freed. A sequence pruned by a press (``seq.compress``) never matches nor publishes
prefix-cache blocks, and :meth:`BlockManager.replace_blocks` swaps its blocks for fewer, fresh ones.

The block manager knows token ids and block ids, never tensors.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from dataclasses import dataclass

import xxhash

from ctxops.engine.sequence import Sequence


@dataclass(slots=True)
class Block:
    """One block of the pool."""

    block_id: int
    ref_count: int = 0
    hash: int | None = None  # set once the block is full and registered in the prefix cache
    token_ids: tuple[int, ...] = ()  # the block's tokens, kept to rule out hash collisions


def block_hash(parent: int | None, token_ids: list[int] | tuple[int, ...]) -> int:
    """Chain hash of a full block: it identifies the whole prefix up to and including this block."""
    h = xxhash.xxh3_64()
    h.update((parent if parent is not None else 0).to_bytes(8, "little"))
    h.update(array("q", token_ids).tobytes())
    return h.intdigest()


class BlockManager:
    """Hands out blocks to sequences and shares full blocks between sequences with equal prefixes."""

    def __init__(
        self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True, num_windows: int = 0
    ) -> None:
        if num_blocks <= 0:
            raise ValueError(f"num_blocks must be positive, got {num_blocks}")
        self.free_windows: list[int] = list(range(num_windows - 1, -1, -1))  # pop() hands out 0 first
        self.uses_windows = num_windows > 0
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.free_queue: OrderedDict[int, None] = OrderedDict(
            (i, None) for i in range(num_blocks)
        )  # LRU first
        self.hash_to_block: dict[int, int] = {}
        # Prefix-cache counters, in tokens (as vLLM's prefix_cache_queries / prefix_cache_hits).
        self.prefix_queries = 0
        self.prefix_hits = 0

    # ---- capacity -------------------------------------------------------------------------------------------
    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free_blocks(self) -> int:
        return len(self.free_queue)

    @property
    def usage(self) -> float:
        """Fraction of blocks held by running sequences (cached-but-free blocks count as free)."""
        return 1.0 - self.num_free_blocks / self.num_blocks

    def blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    # ---- prefix cache ---------------------------------------------------------------------------------------
    def hash_chain(self, seq: Sequence, num_blocks: int) -> list[int]:
        """The chain hashes of the sequence's first ``num_blocks`` full blocks of tokens (at least that many).

        They depend on the tokens alone, which only grow, so each is computed once and kept on the sequence.
        """
        chain, size = seq.hash_chain, self.block_size
        for index in range(len(chain), num_blocks):
            chain.append(
                block_hash(chain[-1] if chain else None, seq.token_ids[index * size : (index + 1) * size])
            )
        return chain

    def num_matchable_blocks(self, seq: Sequence) -> int:
        """Full blocks of ``seq`` the prefix cache may serve: none after the last token, which is always computed."""
        if not self.enable_prefix_caching or seq.compress:
            return 0
        return (seq.num_tokens - 1) // self.block_size

    def num_cached_blocks(self, seq: Sequence) -> int:
        """How many of the sequence's first full blocks the prefix cache holds now (nothing is taken)."""
        limit, size, chain = self.num_matchable_blocks(seq), self.block_size, seq.hash_chain
        for index in range(limit):
            tokens = seq.token_ids[index * size : (index + 1) * size]
            # the chain grows only as far as the cache matches: an unseen prompt hashes one block here
            if index == len(chain):
                chain.append(block_hash(chain[-1] if chain else None, tokens))
            block_id = self.hash_to_block.get(chain[index])
            if block_id is None or self.blocks[block_id].token_ids != tuple(tokens):
                return index
        return limit

    def match_prefix(self, seq: Sequence, num_blocks: int | None = None) -> int:
        """Attach the cached blocks that hold the longest prefix of ``seq``; return the tokens they cover.

        At most ``len(seq) - 1`` tokens are matched: the last token is always computed, to produce logits.
        ``num_blocks`` is :meth:`num_cached_blocks` if the caller just counted it (nothing changed since).
        Only called for a sequence that holds no blocks yet.
        """
        assert not seq.block_table and seq.num_computed_tokens == 0
        self.prefix_queries += seq.num_tokens
        if num_blocks is None:
            num_blocks = self.num_cached_blocks(seq)
        for h in seq.hash_chain[:num_blocks]:
            block_id = self.hash_to_block[h]
            self._take(block_id)
            seq.block_table.append(block_id)
            seq.block_hashes.append(h)
        hit = num_blocks * self.block_size
        seq.num_computed_tokens = hit
        self.prefix_hits += hit
        return hit

    def cache_full_blocks(self, seq: Sequence) -> None:
        """Register the sequence's newly completed blocks (full of computed tokens) in the prefix cache."""
        if not self.enable_prefix_caching or seq.compress:
            return
        num_full = seq.num_computed_tokens // self.block_size
        chain = self.hash_chain(seq, num_full)
        for index in range(len(seq.block_hashes), num_full):
            h = chain[index]
            tokens = tuple(seq.token_ids[index * self.block_size : (index + 1) * self.block_size])
            seq.block_hashes.append(h)
            block = self.blocks[seq.block_table[index]]
            if h not in self.hash_to_block:  # an equal block computed concurrently keeps its place
                block.hash, block.token_ids = h, tokens
                self.hash_to_block[h] = block.block_id

    # ---- allocation -----------------------------------------------------------------------------------------
    def allocate_slots(self, seq: Sequence, num_new_tokens: int) -> bool:
        """Give ``seq`` blocks for ``num_new_tokens`` more tokens; False (and no change) if the pool is short."""
        needed = self.blocks_needed(seq.num_kv_tokens + num_new_tokens) - len(seq.block_table)
        if needed > self.num_free_blocks:
            return False
        if self.uses_windows and seq.window is None:
            if not self.free_windows:
                return False
            seq.window = self.free_windows.pop()
        self._take_fresh(seq, max(needed, 0))
        return True

    def free(self, seq: Sequence) -> None:
        """Release the sequence's blocks. Cached blocks stay findable until their space is reused."""
        self._release(seq)
        seq.num_computed_tokens = 0
        seq.kv_offset = 0
        seq.pressed = False  # a recomputed prefill is pressed again
        if seq.window is not None:
            self.free_windows.append(seq.window)
            seq.window = None

    def replace_blocks(self, seq: Sequence, num_kv_tokens: int) -> None:
        """Swap a pruned sequence's blocks for fresh ones holding ``num_kv_tokens``.

        The old blocks are released first (shared ones stay with their other holders, cached ones stay findable),
        so the new, never-published blocks always fit. The caller must have copied what it keeps out of them.
        """
        self._release(seq)
        self._take_fresh(seq, self.blocks_needed(num_kv_tokens))

    def _release(self, seq: Sequence) -> None:
        """Drop the sequence's hold on its blocks; a block nobody holds goes back to the free queue."""
        for block_id in reversed(seq.block_table):  # the prefix's first blocks are evicted last
            block = self.blocks[block_id]
            block.ref_count -= 1
            assert block.ref_count >= 0, f"block {block_id} freed twice"
            if block.ref_count == 0:
                self.free_queue[block_id] = None
                if block.hash is None:  # nothing to keep: recycle it before any cached block
                    self.free_queue.move_to_end(block_id, last=False)
        seq.block_table = []
        seq.block_hashes = []

    def _take_fresh(self, seq: Sequence, count: int) -> None:
        """Append ``count`` blocks from the free queue (least recently freed first) to the sequence's table."""
        for _ in range(count):
            block_id, _ = self.free_queue.popitem(last=False)
            self._evict(block_id)
            self.blocks[block_id].ref_count = 1
            seq.block_table.append(block_id)

    def _take(self, block_id: int) -> None:
        block = self.blocks[block_id]
        if block.ref_count == 0:
            del self.free_queue[block_id]
        block.ref_count += 1

    def _evict(self, block_id: int) -> None:
        block = self.blocks[block_id]
        if block.hash is not None:
            if self.hash_to_block.get(block.hash) == block_id:
                del self.hash_to_block[block.hash]
            block.hash, block.token_ids = None, ()

    # ---- checks ---------------------------------------------------------------------------------------------
    def check_invariants(self, live: list[Sequence]) -> None:
        """Assert the pool's bookkeeping is consistent with the live sequences (used by tests)."""
        expected = [0] * self.num_blocks
        for seq in live:
            for block_id in seq.block_table:
                expected[block_id] += 1
        for block in self.blocks:
            assert block.ref_count == expected[block.block_id], f"block {block.block_id} ref count drifted"
            assert (block.ref_count == 0) == (block.block_id in self.free_queue), (
                f"block {block.block_id} misfiled"
            )
        for h, block_id in self.hash_to_block.items():
            assert self.blocks[block_id].hash == h
