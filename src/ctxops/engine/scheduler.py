"""Continuous batching with chunked prefill and preemption by recompute.

Every step has a token budget (``max_num_batched_tokens``). Running sequences are served first, decodes before
prefill chunks, so a long prompt never stalls the streams already generating; then waiting sequences are admitted
(prefix-cache hits first attached) while the budget, ``max_num_seqs`` and the block pool allow. A prompt longer than
the remaining budget is split into chunks over several steps, sharing steps with decodes. A waiting request whose
next uncached full block a running sequence is computing waits for it and then reuses it, wherever the block lies
in its prompt (requests sharing a document sent together compute it once). When a running sequence needs a block
and none is free, the newest running sequence is preempted: its blocks are freed and it goes back to the front of
the queue to be recomputed (its cached full blocks usually make that cheap). Under a head policy
(``whole_prompts``) a prompt that fits one step is never split: it waits for a step with room for all of it.

The scheduler knows sequences, token counts and the block manager; it never sees tensors or text.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from ctxops.engine.block_manager import BlockManager
from ctxops.engine.sequence import FinishReason, Sequence, SequenceStatus


@dataclass(slots=True)
class ScheduledSequence:
    """A sequence and the tokens it computes this step: ``token_ids[num_computed : num_computed + num_new]``."""

    seq: Sequence
    num_new_tokens: int

    @property
    def samples(self) -> bool:
        """True when this step reaches the end of the sequence's tokens, so a next token is sampled."""
        return self.seq.num_computed_tokens + self.num_new_tokens == self.seq.num_tokens


@dataclass(slots=True)
class SchedulerOutput:
    """One step's work."""

    scheduled: list[ScheduledSequence] = field(default_factory=list)
    preempted: list[Sequence] = field(default_factory=list)

    @property
    def num_batched_tokens(self) -> int:
        return sum(s.num_new_tokens for s in self.scheduled)

    @property
    def is_empty(self) -> bool:
        return not self.scheduled


class Scheduler:
    """Decides which sequences run each step and how many tokens each computes."""

    def __init__(
        self,
        block_manager: BlockManager,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        whole_prompts: bool = False,
    ) -> None:
        self.block_manager = block_manager
        # admit a prompt that fits one step only when the step's budget takes it whole (a head policy's streaming
        # heads see the whole prompt only within one step; see ctxops.models.split_kv)
        self.whole_prompts = whole_prompts
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions = 0

    # ---- queue ------------------------------------------------------------------------------------------------
    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        return len(self.running)

    # ---- one step ---------------------------------------------------------------------------------------------
    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput()
        budget = self._schedule_running(out, self.max_num_batched_tokens)
        if not out.preempted:  # a pool short enough to preempt admits nobody new this step
            self._schedule_waiting(out, budget)
        return out

    def _schedule_running(self, out: SchedulerOutput, budget: int) -> int:
        decodes = [s for s in self.running if s.num_uncomputed_tokens == 1]
        prefills = [s for s in self.running if s.num_uncomputed_tokens > 1]
        for seq in decodes + prefills:
            if budget <= 0:
                break
            if seq.status != SequenceStatus.RUNNING:  # preempted earlier in this step
                continue
            num_new = min(seq.num_schedulable_tokens, budget)
            while not self.block_manager.allocate_slots(seq, num_new):
                victim = self.running[-1]
                budget += self._preempt(victim, out)
                if victim is seq:
                    break
            else:
                out.scheduled.append(ScheduledSequence(seq, num_new))
                budget -= num_new
        return budget

    def _schedule_waiting(self, out: SchedulerOutput, budget: int) -> None:
        # the running sequences: budget is left for waiting ones only when every running one was scheduled
        computing = [s.seq for s in out.scheduled]
        deferred: list[Sequence] = []
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            if not seq.block_table:
                num_cached = self.block_manager.num_cached_blocks(seq)
                if self._waits_for_prefix(seq, num_cached, computing):
                    deferred.append(self.waiting.popleft())
                    continue
                hit = self.block_manager.match_prefix(seq, num_cached)
                if not seq.was_admitted:
                    seq.num_cached_tokens = hit
            num_new = min(seq.num_schedulable_tokens, budget)
            if self.whole_prompts and num_new < seq.num_schedulable_tokens <= self.max_num_batched_tokens:
                break  # the next step with room prefills it whole
            if not self.block_manager.allocate_slots(seq, num_new):
                self.block_manager.free(seq)
                break
            self.waiting.popleft()
            computing.append(seq)
            seq.status = SequenceStatus.RUNNING
            if not seq.was_admitted:
                seq.was_admitted = True
                seq.metrics.first_scheduled_time = time.time()
            self.running.append(seq)
            out.scheduled.append(ScheduledSequence(seq, num_new))
            budget -= num_new
        self.waiting.extendleft(reversed(deferred))  # a request that waits keeps its place in the queue

    def _waits_for_prefix(self, seq: Sequence, index: int, computing: list[Sequence]) -> bool:
        """True when block ``index`` of ``seq``, its first uncached full block, is one a running sequence computes.

        The block's hash names its whole prefix, so wherever it lies in the prompt, ``seq`` can wait and then
        reuse it instead of computing it again (questions about one document sent together compute it once).
        The cached blocks before it are matched once the wait ends. Only a running sequence is waited for: one
        preempted, aborted or failed has left ``running``, so the next step ``seq`` computes the block itself, and
        a running one always advances (waiting requests are admitted only after every running one is scheduled).
        A pressed sequence neither waits nor is waited for: it never reuses nor publishes prefix-cache blocks.
        """
        bm = self.block_manager
        if index >= bm.num_matchable_blocks(seq):
            return False
        wanted, size = bm.hash_chain(seq, index + 1)[index], bm.block_size
        for other in computing:
            if other.compress or not other.num_computed_tokens // size <= index < other.num_tokens // size:
                continue
            if bm.hash_chain(other, index + 1)[index] == wanted:
                return True
        return False

    def _preempt(self, victim: Sequence, out: SchedulerOutput) -> int:
        """Free the victim's blocks and requeue it first; return the budget it had taken this step."""
        self.running.remove(victim)
        refund = 0
        for i, s in enumerate(out.scheduled):
            if s.seq is victim:
                refund = s.num_new_tokens
                del out.scheduled[i]
                break
        self.block_manager.free(victim)
        victim.status = SequenceStatus.WAITING
        victim.metrics.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.appendleft(victim)
        out.preempted.append(victim)
        return refund

    # ---- after the model ran ----------------------------------------------------------------------------------
    def advance(self, scheduled: list[ScheduledSequence]) -> None:
        """Mark the step's tokens computed and publish their full blocks to the prefix cache."""
        for s in scheduled:
            s.seq.num_computed_tokens += s.num_new_tokens
            self.block_manager.cache_full_blocks(s.seq)

    def finish(self, seq: Sequence, reason: FinishReason) -> None:
        """End a sequence (stopped, out of length, or aborted) and free its blocks."""
        if seq.is_finished:
            return
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self.block_manager.free(seq)
        seq.status = SequenceStatus.FINISHED
        seq.finish_reason = reason
        seq.metrics.finished_time = time.time()
