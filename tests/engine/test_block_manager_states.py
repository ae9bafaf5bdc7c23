"""Block manager driven by a hypothesis state machine against a shadow of the KV pool.

The machine allocates, computes, frees and re-admits sequences whose tokens come from a three-letter alphabet (so
prefixes collide and the prefix cache hits often), with 2-4 token blocks and pools of 1-8 blocks (so cached blocks
are evicted and the pool runs dry), window blocks (quantized KV) and press-style block replacement.

:class:`PoolOracle` plays the model: when tokens are computed it records, for every slot written, the whole prefix
whose K/V the slot now holds. After every step the bookkeeping is checked against it (:meth:`PoolOracle.check`):
reference counts, the free queue, windows, the prefix-cache map (a cached block really holds the prefix its hash
names) and every live sequence's view of its own KV. The scheduler's state machine reuses the oracle.
"""

from __future__ import annotations

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ctxops.engine.block_manager import BlockManager, block_hash
from ctxops.engine.sampling_params import SamplingParams
from ctxops.engine.sequence import Sequence

Prefix = tuple[int, ...]  # what a KV slot holds: the K/V of the last token of this prefix

ALPHABET = st.integers(0, 2)
PICK = st.integers(0, 63)  # an index into the sequences a rule may act on (taken modulo their number)


class PoolOracle:
    """What every block slot holds, what every live sequence expects of its KV, and every chain hash seen."""

    def __init__(self, bm: BlockManager) -> None:
        self.bm = bm
        self.num_windows = len(bm.free_windows)  # all free when the pool is built
        # (block id, slot) -> the prefix whose K/V is written there
        self.slots: dict[tuple[int, int], Prefix] = {}
        self.kv: dict[str, list[Prefix]] = {}  # pressed sequences: what their cache indices hold
        self.chains: dict[int, Prefix] = {}  # chain hash -> the block-aligned prefix it names

    def learn(self, seq: Sequence) -> None:
        """Remember the chain hashes of the sequence's full blocks (call whenever its tokens grow)."""
        bs, parent = self.bm.block_size, None
        for end in range(bs, seq.num_tokens + 1, bs):
            parent = block_hash(parent, seq.token_ids[end - bs : end])
            self.chains[parent] = tuple(seq.token_ids[:end])

    def chain(self, seq: Sequence, num_blocks: int) -> list[int]:
        bs, parent, out = self.bm.block_size, None, []
        for i in range(num_blocks):
            parent = block_hash(parent, seq.token_ids[i * bs : (i + 1) * bs])
            out.append(parent)
        return out

    def _slot(self, seq: Sequence, index: int) -> tuple[int, int]:
        bs = self.bm.block_size
        assert index // bs < len(seq.block_table), f"{seq!r} writes cache index {index} past its blocks"
        return seq.block_table[index // bs], index % bs

    def expected_kv(self, seq: Sequence) -> list[Prefix]:
        """What the sequence's cache indices 0..num_kv_tokens-1 must hold."""
        if seq.kv_offset == 0:  # unpressed: position p holds the K/V of its own prefix up to p
            return [tuple(seq.token_ids[: p + 1]) for p in range(seq.num_computed_tokens)]
        return self.kv[seq.request_id]

    def write(self, seq: Sequence, num_new: int) -> None:
        """The model computes ``token_ids[num_computed : num_computed + num_new]`` into the sequence's slots."""
        for pos in range(seq.num_computed_tokens, seq.num_computed_tokens + num_new):
            prefix = tuple(seq.token_ids[: pos + 1])
            self.slots[self._slot(seq, pos - seq.kv_offset)] = prefix
            if seq.kv_offset:
                self.kv[seq.request_id].append(prefix)

    def pressed(self, seq: Sequence, kept: list[Prefix]) -> None:
        """A press replaced the sequence's blocks and wrote the kept K/V, compacted, into the new ones."""
        self.kv[seq.request_id] = list(kept)
        for index, prefix in enumerate(kept):
            self.slots[self._slot(seq, index)] = prefix

    def check(self, live: list[Sequence]) -> None:
        """Every invariant of the pool, given every sequence that may hold blocks or a window."""
        bm, bs = self.bm, self.bm.block_size
        bm.check_invariants(live)
        holders = [0] * bm.num_blocks
        for seq in live:
            assert len(set(seq.block_table)) == len(seq.block_table), f"{seq!r} holds a block twice"
            for block_id in seq.block_table:
                holders[block_id] += 1
        free = list(bm.free_queue)
        assert len(set(free)) == len(free)
        for block in bm.blocks:
            assert block.ref_count == holders[block.block_id] >= 0
            assert (block.ref_count == 0) == (block.block_id in bm.free_queue)
        held = sum(1 for n in holders if n)
        assert bm.num_free_blocks + held == bm.num_blocks
        assert bm.usage == pytest.approx(held / bm.num_blocks)

        # windows: each held by at most one sequence, held or free, never both
        windows = [seq.window for seq in live if seq.window is not None]
        assert len(set(windows)) == len(windows), "a window is held twice"
        assert not set(windows) & set(bm.free_windows), "a window is both held and free"
        assert len(set(bm.free_windows)) == len(bm.free_windows)
        assert set(windows) | set(bm.free_windows) == set(range(self.num_windows)), "a window was lost"
        assert bm.uses_windows or not windows

        # prefix cache: the map and the blocks' hashes agree both ways, and a cached block holds what its hash names
        for h, block_id in bm.hash_to_block.items():
            block = bm.blocks[block_id]
            assert block.hash == h
            assert h in self.chains, f"block {block_id} is cached under a hash no sequence ever had"
            prefix = self.chains[h]
            assert block.token_ids == prefix[-bs:]
            for j in range(bs):
                assert self.slots.get((block_id, j)) == prefix[: len(prefix) - bs + j + 1], (
                    f"cached block {block_id} slot {j} does not hold the prefix its hash names"
                )
        for block in bm.blocks:
            if block.hash is not None:
                assert bm.hash_to_block.get(block.hash) == block.block_id, f"stray hash on {block.block_id}"
            else:
                assert block.token_ids == ()
        if not bm.enable_prefix_caching:
            assert not bm.hash_to_block

        # every live sequence: enough blocks for its KV, and that KV is its own
        for seq in live:
            assert 0 <= seq.num_computed_tokens <= seq.num_tokens
            assert 0 <= seq.kv_offset <= seq.num_computed_tokens
            assert len(seq.block_table) >= bm.blocks_needed(seq.num_kv_tokens)
            kv = self.expected_kv(seq)
            assert len(kv) == seq.num_kv_tokens
            for index, prefix in enumerate(kv):
                assert self.slots.get(self._slot(seq, index)) == prefix, f"{seq!r} lost its K/V at {index}"
            assert len(seq.block_hashes) <= seq.num_computed_tokens // bs
            assert seq.block_hashes == self.chain(seq, len(seq.block_hashes))
            if seq.compress:
                assert not seq.block_hashes
            for index, h in enumerate(seq.block_hashes):
                block = bm.blocks[seq.block_table[index]]
                assert block.hash in (None, h)

    def check_drained(self) -> None:
        """Nothing is held: every block and window is free and every block can be handed out again."""
        bm = self.bm
        assert bm.num_free_blocks == bm.num_blocks and bm.usage == 0.0
        assert all(block.ref_count == 0 for block in bm.blocks)
        assert sorted(bm.free_windows) == list(range(self.num_windows))
        probe = Sequence("probe", [0] * (bm.num_blocks * bm.block_size), SamplingParams())
        assert bm.allocate_slots(probe, probe.num_tokens), "a drained pool cannot hand out all its blocks"
        assert sorted(probe.block_table) == list(range(bm.num_blocks))
        assert not bm.hash_to_block  # handing out every block evicted every cached one
        bm.free(probe)
        assert bm.num_free_blocks == bm.num_blocks


class BlockManagerMachine(RuleBasedStateMachine):
    """Sequences with colliding prefixes go through the block manager's whole API."""

    def __init__(self) -> None:
        super().__init__()
        self.seqs: list[Sequence] = []
        self.cached: set[int] = set()  # the prefix cache's hashes after the last step

    @initialize(
        block_size=st.sampled_from([2, 3, 4]),
        num_blocks=st.integers(1, 8),
        prefix_caching=st.sampled_from([True, True, True, False]),
        num_windows=st.sampled_from([0, 0, 1, 2, 3]),
    )
    def setup(self, block_size: int, num_blocks: int, prefix_caching: bool, num_windows: int) -> None:
        self.bm = BlockManager(num_blocks, block_size, prefix_caching, num_windows)
        self.oracle = PoolOracle(self.bm)

    def _pick(self, candidates: list[Sequence], i: int) -> Sequence:
        return candidates[i % len(candidates)]

    # ---- which sequences a rule may act on ----------------------------------------------------------------------
    def _blockless(self) -> list[Sequence]:
        return [s for s in self.seqs if not s.block_table and s.num_computed_tokens == 0]

    def _computable(self) -> list[Sequence]:
        """Sequences with allocated slots not yet computed."""
        bs = self.bm.block_size
        return [
            s
            for s in self.seqs
            if s.num_uncomputed_tokens and len(s.block_table) * bs > s.num_kv_tokens and self._has_window(s)
        ]

    def _has_window(self, seq: Sequence) -> bool:
        return not self.bm.uses_windows or seq.window is not None

    # ---- rules --------------------------------------------------------------------------------------------------
    @precondition(lambda self: len(self.seqs) < 8)
    @rule(
        tokens=st.lists(ALPHABET, min_size=1, max_size=14),
        compress=st.sampled_from([False, False, False, True]),
    )
    def new_sequence(self, tokens: list[int], compress: bool) -> None:
        seq = Sequence(f"s{len(self.seqs)}", tokens, SamplingParams())
        seq.compress = compress
        self.seqs.append(seq)
        self.oracle.learn(seq)

    @precondition(lambda self: 0 < len(self.seqs) < 8)
    @rule(i=PICK, cut=st.integers(0, 16), suffix=st.lists(ALPHABET, max_size=6))
    def fork(self, i: int, cut: int, suffix: list[int]) -> None:
        """A new sequence that starts with (part of) another one's tokens, prompt or output."""
        tokens = self._pick(self.seqs, i).token_ids[:cut] + suffix
        self.new_sequence(tokens or [0], compress=False)

    @precondition(lambda self: self._blockless())
    @rule(i=PICK)
    def match_prefix(self, i: int) -> None:
        self._match(self._pick(self._blockless(), i))

    def _match(self, seq: Sequence) -> None:
        bm, bs = self.bm, self.bm.block_size
        # the longest cached chain of full blocks, leaving the last token to compute
        expected = 0
        if bm.enable_prefix_caching and not seq.compress:
            for h in self.oracle.chain(seq, (seq.num_tokens - 1) // bs):
                if h not in bm.hash_to_block:
                    break
                expected += bs
        queries, hits = bm.prefix_queries, bm.prefix_hits
        hit = bm.match_prefix(seq)
        assert hit == expected == seq.num_computed_tokens == len(seq.block_table) * bs
        assert hit < seq.num_tokens
        assert bm.prefix_queries == queries + seq.num_tokens and bm.prefix_hits == hits + hit
        if hit:
            event("prefix hit")

    @precondition(lambda self: self.seqs)
    @rule(i=PICK, data=st.data())
    def allocate_slots(self, i: int, data: st.DataObject) -> None:
        seq = self._pick(self.seqs, i)
        bm = self.bm
        num_new = data.draw(st.integers(0, seq.num_uncomputed_tokens), label="num_new")
        before_table, before_window = list(seq.block_table), seq.window
        before_free, before_cached = list(bm.free_queue), dict(bm.hash_to_block)
        needed = max(bm.blocks_needed(seq.num_kv_tokens + num_new) - len(seq.block_table), 0)
        window_short = bm.uses_windows and seq.window is None and not bm.free_windows
        ok = bm.allocate_slots(seq, num_new)
        assert ok == (needed <= len(before_free) and not window_short)
        if not ok:
            event("allocation refused")
            assert seq.block_table == before_table and seq.window == before_window
            assert list(bm.free_queue) == before_free and bm.hash_to_block == before_cached
            return
        assert seq.block_table[: len(before_table)] == before_table
        new = seq.block_table[len(before_table) :]
        assert len(new) == needed and new == before_free[:needed]  # least recently freed first
        for block_id in new:
            assert bm.blocks[block_id].ref_count == 1 and bm.blocks[block_id].hash is None
        if bm.uses_windows:
            assert seq.window is not None

    @precondition(lambda self: self._computable())
    @rule(i=PICK, data=st.data())
    def compute(self, i: int, data: st.DataObject) -> None:
        """The model fills allocated slots; full blocks are published."""
        seq = self._pick(self._computable(), i)
        room = len(seq.block_table) * self.bm.block_size - seq.num_kv_tokens
        num_new = data.draw(st.integers(1, min(room, seq.num_schedulable_tokens)), label="num_new")
        self.oracle.write(seq, num_new)
        seq.num_computed_tokens += num_new
        self.bm.cache_full_blocks(seq)
        if self.bm.enable_prefix_caching and not seq.compress:
            assert len(seq.block_hashes) == seq.num_computed_tokens // self.bm.block_size

    @precondition(lambda self: any(s.num_computed_tokens == s.num_tokens for s in self.seqs))
    @rule(i=PICK, token=ALPHABET)
    def append_token(self, i: int, token: int) -> None:
        """A token is sampled at the end of a computed sequence."""
        seq = self._pick([s for s in self.seqs if s.num_computed_tokens == s.num_tokens], i)
        seq.append_token(token)
        self.oracle.learn(seq)

    @precondition(lambda self: any(s.compress and not s.pressed and s.num_kv_tokens >= 2 for s in self.seqs))
    @rule(i=PICK, data=st.data())
    def press(self, i: int, data: st.DataObject) -> None:
        """KV press: keep some of the computed tokens' K/V in fewer, fresh blocks (as ModelRunner.apply_press)."""
        seq = self._pick([s for s in self.seqs if s.compress and not s.pressed and s.num_kv_tokens >= 2], i)
        bm = self.bm
        length = seq.num_kv_tokens
        keep = data.draw(st.integers(1, length - 1), label="keep")
        indices = sorted(
            data.draw(st.sets(st.integers(0, length - 1), min_size=keep, max_size=keep), label="kept")
        )
        kv = self.oracle.expected_kv(seq)
        kept = [kv[j] for j in indices]  # copied out before the blocks go
        old = list(seq.block_table)
        seq.pressed = True
        bm.replace_blocks(seq, keep)
        seq.kv_offset = length - keep
        assert len(seq.block_table) == bm.blocks_needed(keep) <= len(old)
        assert not seq.block_hashes
        self.oracle.pressed(seq, kept)
        event("pressed")

    @precondition(lambda self: self._blockless())
    @rule(i=PICK, chunk=st.integers(1, 16))
    def admit(self, i: int, chunk: int) -> None:
        """What the scheduler does for a waiting sequence: match its prefix, allocate a chunk, compute it."""
        seq = self._pick(self._blockless(), i)
        self._match(seq)
        num_new = min(chunk, seq.num_uncomputed_tokens)
        if not self.bm.allocate_slots(seq, num_new):
            self.bm.free(seq)
            return
        self.oracle.write(seq, num_new)
        seq.num_computed_tokens += num_new
        self.bm.cache_full_blocks(seq)

    @precondition(lambda self: any(s.num_computed_tokens == s.num_tokens for s in self.seqs))
    @rule(i=PICK, token=ALPHABET)
    def decode(self, i: int, token: int) -> None:
        """One decode step: sample a token, give it a slot, compute it."""
        seq = self._pick([s for s in self.seqs if s.num_computed_tokens == s.num_tokens], i)
        seq.append_token(token)
        self.oracle.learn(seq)
        if self.bm.allocate_slots(seq, 1):
            self.oracle.write(seq, 1)
            seq.num_computed_tokens += 1
            self.bm.cache_full_blocks(seq)

    @precondition(lambda self: self.seqs)
    @rule(i=PICK)
    def free(self, i: int) -> None:
        """Finish, abort or preempt: the sequence gives everything back and may be admitted again."""
        seq = self._pick(self.seqs, i)
        self.bm.free(seq)
        assert not seq.block_table and not seq.block_hashes and seq.window is None
        assert seq.num_computed_tokens == 0 and seq.kv_offset == 0 and not seq.pressed

    # ---- checks -------------------------------------------------------------------------------------------------
    @invariant()
    def pool_is_consistent(self) -> None:
        if not hasattr(self, "bm"):
            return
        self.oracle.check(self.seqs)
        cached = set(self.bm.hash_to_block)
        if self.cached - cached:
            event("cached block evicted")
        self.cached = cached

    def teardown(self) -> None:
        if not hasattr(self, "bm"):
            return
        for seq in self.seqs:
            self.bm.free(seq)
        self.oracle.check(self.seqs)
        self.oracle.check_drained()


def test_block_manager_states() -> None:
    run_state_machine_as_test(
        BlockManagerMachine, settings=settings(max_examples=200, stateful_step_count=50, deadline=None)
    )


@pytest.mark.slow
def test_block_manager_states_many() -> None:
    run_state_machine_as_test(
        BlockManagerMachine, settings=settings(max_examples=2000, stateful_step_count=60, deadline=None)
    )
