"""Scheduler and block manager driven by a hypothesis state machine, stepped as ``LLMEngine.step`` steps them.

Requests arrive with prompts from a three-letter alphabet (shared prefixes, so the prefix cache and the scheduler's
wait-for-the-prefix rule come into play), some longer than the step's token budget (chunked prefill) and up to the
whole pool (preemption), some pressed (block replacement; some with a question prefilled after the press). They
are stepped, aborted (waiting, running or preempted) and finished at random or at their token limit. A fake model
writes the shadow KV of :class:`test_block_manager_states.PoolOracle`, so every step also checks that each
sequence's blocks hold its own KV; each schedule is checked for budgets, order, preemption and work conservation.
"""

from __future__ import annotations

import copy

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
from test_block_manager_states import PoolOracle

from ctxops.engine.block_manager import BlockManager
from ctxops.engine.sampling_params import SamplingParams
from ctxops.engine.scheduler import Scheduler, SchedulerOutput
from ctxops.engine.sequence import FinishReason, Sequence, SequenceStatus

ALPHABET = st.integers(0, 2)
PICK = st.integers(0, 63)
MAX_STEPS_TO_DRAIN = 5_000
REQUEST_FIELDS = {
    "prompt": st.lists(ALPHABET, min_size=1, max_size=48),
    "shared": st.integers(0, 24),
    "max_tokens": st.integers(1, 16),
    "stop_after": st.none() | st.integers(1, 16),
    "samples": st.lists(ALPHABET, min_size=16, max_size=16),
    "question": st.none() | st.integers(1, 47),
}
REQUEST = st.fixed_dictionaries(REQUEST_FIELDS)


class Request:
    """What the fake model will do for one request: the tokens it samples and when it stops."""

    def __init__(self, seq: Sequence, samples: list[int], stop_after: int | None) -> None:
        self.seq = seq
        self.samples = samples  # the output tokens, in order (max_tokens of them)
        self.stop_after = stop_after  # the output count at which the model emits a stop token, if it does
        self.aborted = False


class SchedulerMachine(RuleBasedStateMachine):
    """The engine's step loop with a fake model, over a small pool and a small token budget."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self.by_id: dict[str, Request] = {}

    @initialize(
        block_size=st.sampled_from([2, 4]),
        num_blocks=st.integers(2, 10),
        max_num_seqs=st.sampled_from([1, 2, 2, 3, 3, 4]),
        extra_budget=st.integers(0, 12),
        prefix_caching=st.sampled_from([True, True, False]),
        quantized=st.booleans(),
        press_ratio=st.sampled_from([None, None, 0.25, 0.5, 0.75]),
        press_min_tokens=st.sampled_from([0, 0, 4, 9]),
    )
    def setup(
        self,
        block_size: int,
        num_blocks: int,
        max_num_seqs: int,
        extra_budget: int,
        prefix_caching: bool,
        quantized: bool,
        press_ratio: float | None,
        press_min_tokens: int,
    ) -> None:
        # as LLMEngine builds them: a quantized cache has one window per running sequence, the budget holds a block
        self.bm = BlockManager(num_blocks, block_size, prefix_caching, max_num_seqs if quantized else 0)
        self.sched = Scheduler(self.bm, max_num_seqs, block_size + extra_budget)
        self.oracle = PoolOracle(self.bm)
        # plan_cache's bound: the pool holds one sequence of max_model_len tokens
        self.max_model_len = num_blocks * block_size
        self.press_ratio = press_ratio
        self.press_min_tokens = press_min_tokens  # shorter prompts are not pressed (kv_press_min_tokens)

    # ---- the engine's loop ------------------------------------------------------------------------------------
    def _step(self) -> SchedulerOutput:
        """One ``LLMEngine.step``: schedule, run the fake model, advance, press, sample and stop."""
        sched = self.sched
        had_work = sched.has_unfinished()
        running_before = list(sched.running)
        out = sched.schedule()
        self._check_schedule(out, had_work, running_before)
        if out.is_empty:
            return out
        pressing = [
            s.seq
            for s in out.scheduled
            if s.seq.press_pending and s.seq.num_computed_tokens + s.num_new_tokens == s.seq.press_length
        ]
        sampling = [s.seq for s in out.scheduled if s.samples]
        for s in out.scheduled:
            # the fake model writes the step's K/V (raises if a token has no slot in the sequence's blocks)
            self.oracle.write(s.seq, s.num_new_tokens)
            if s.num_new_tokens > 1 and not s.samples:
                event("chunked prefill")
        sched.advance(out.scheduled)
        for seq in pressing:
            self._press(seq)
        for seq in sampling:
            request = self.by_id[seq.request_id]
            seq.append_token(request.samples[seq.num_output_tokens])
            self.oracle.learn(seq)
            if request.stop_after is not None and seq.num_output_tokens >= request.stop_after:
                sched.finish(seq, FinishReason.STOP)
            elif seq.num_output_tokens >= len(request.samples) or seq.num_tokens >= self.max_model_len:
                sched.finish(seq, FinishReason.LENGTH)
        if out.preempted:
            event("preemption")
        return out

    def _press(self, seq: Sequence) -> None:
        """``ModelRunner.apply_press`` without tensors: keep the first token and the most recent ones."""
        assert self.press_ratio is not None
        seq.pressed = True
        length = seq.num_kv_tokens
        keep = max(int(length * (1.0 - self.press_ratio)), 1)
        if keep >= length:
            return
        kv = self.oracle.expected_kv(seq)
        kept = kv[:1] + kv[length - keep + 1 :]
        self.bm.replace_blocks(seq, keep)
        seq.kv_offset = length - keep
        self.oracle.pressed(seq, kept)
        event("pressed")

    # ---- rules ------------------------------------------------------------------------------------------------
    @precondition(lambda self: len(self.requests) < 12)
    @rule(**REQUEST_FIELDS)
    def add_request(
        self,
        prompt: list[int],
        shared: int,
        max_tokens: int,
        stop_after: int | None,
        samples: list[int],
        question: int | None,
    ) -> None:
        """A new request; ``shared`` tokens of the previous request's prompt start it (a common document)."""
        if self.requests:
            prompt = self.requests[-1].seq.prompt_token_ids[:shared] + prompt
        prompt = prompt[: self.max_model_len]
        seq = Sequence(f"r{len(self.requests)}", prompt, SamplingParams(max_tokens=max_tokens))
        # as LLMEngine.make_sequence
        seq.compress = self.press_ratio is not None and len(prompt) >= self.press_min_tokens
        if seq.compress and question is not None and question < len(prompt):
            seq.press_end = question
        request = Request(seq, samples[:max_tokens], stop_after)
        self.requests.append(request)
        self.by_id[seq.request_id] = request
        self.oracle.learn(seq)
        self.sched.add(seq)
        if len(prompt) > self.sched.max_num_batched_tokens:
            event("prompt longer than the budget")

    @precondition(lambda self: len(self.requests) < 12)
    @rule(data=st.data(), count=st.integers(2, 4))
    def add_burst(self, data: st.DataObject, count: int) -> None:
        """Several requests arrive together (they compete for the pool and the budget)."""
        for _ in range(count):
            self.add_request(**data.draw(REQUEST, label="request"))

    @rule()
    def step(self) -> None:
        self._step()

    @rule(steps=st.integers(2, 8))
    def steps(self, steps: int) -> None:
        for _ in range(steps):
            self._step()

    @precondition(lambda self: self.requests)
    @rule(i=PICK)
    def abort(self, i: int) -> None:
        """``LLMEngine.abort_request`` between steps, wherever the request is; an ended request stays as it was."""
        request = self.requests[i % len(self.requests)]
        seq = request.seq
        if seq.is_finished:
            reason, free = seq.finish_reason, self.bm.num_free_blocks
            self.sched.finish(seq, FinishReason.ABORT)
            assert seq.finish_reason is reason and self.bm.num_free_blocks == free
            return
        if seq in self.sched.running:
            event("abort running")
        elif seq.metrics.num_preemptions:
            event("abort preempted")
        else:
            event("abort waiting")
        request.aborted = True
        self.sched.finish(seq, FinishReason.ABORT)
        assert seq.finish_reason is FinishReason.ABORT and seq.is_finished

    # ---- checks -----------------------------------------------------------------------------------------------
    def _check_schedule(self, out: SchedulerOutput, had_work: bool, running_before: list[Sequence]) -> None:
        sched, bm = self.sched, self.bm
        # progress: requests left and every one fits the pool alone, so a step always computes something
        assert not had_work or not out.is_empty, "a step with unfinished requests scheduled nothing"
        assert out.num_batched_tokens <= sched.max_num_batched_tokens
        assert len(sched.running) <= sched.max_num_seqs
        scheduled = [s.seq for s in out.scheduled]
        assert len(set(map(id, scheduled))) == len(scheduled), "a sequence is scheduled twice"
        for s in out.scheduled:
            seq = s.seq
            assert seq.status is SequenceStatus.RUNNING and seq in sched.running
            assert 1 <= s.num_new_tokens <= seq.num_schedulable_tokens
            assert len(seq.block_table) >= bm.blocks_needed(seq.num_kv_tokens + s.num_new_tokens)
            assert not bm.uses_windows or seq.window is not None
        for seq in out.preempted:
            assert seq.status is SequenceStatus.WAITING and seq in sched.waiting
            assert all(seq is not s for s in scheduled)
        if out.preempted:  # a pool short enough to preempt admits nobody new
            assert all(seq in running_before for seq in scheduled)
        # a running sequence is left out only when the budget is spent
        if any(all(seq is not s for s in scheduled) for seq in sched.running):
            assert out.num_batched_tokens == sched.max_num_batched_tokens
        # decodes go before prefill chunks among the sequences already running
        kinds = [s.seq.num_uncomputed_tokens == 1 for s in out.scheduled if s.seq in running_before]
        assert kinds == sorted(kinds, reverse=True), "a prefill chunk was scheduled before a decode"
        # preemption by recompute takes the newest running sequences, the rest keep their order
        if out.preempted:
            kept = running_before[: len(running_before) - len(out.preempted)]
            assert out.preempted == running_before[len(kept) :][::-1], "an older sequence was preempted"
            assert sched.running == kept
        else:
            assert sched.running[: len(running_before)] == running_before
        self._check_admission(out, running_before)

    def _check_admission(self, out: SchedulerOutput, running_before: list[Sequence]) -> None:
        """Work conservation: a request is left waiting while budget and seats remain only if it cannot fit.

        The one excuse is the wait-for-the-prefix rule: a request whose next uncached full block (after the part
        the prefix cache holds, wherever that ends) a running request has yet to compute may wait to reuse it,
        which only makes sense when both use the prefix cache (neither is pressed).
        """
        sched, bm = self.sched, self.bm
        budget = sched.max_num_batched_tokens - out.num_batched_tokens
        if out.preempted or budget <= 0 or len(sched.running) >= sched.max_num_seqs:
            return
        for seq in sched.waiting:
            trial_bm, trial = copy.deepcopy((bm, seq))
            hit = trial_bm.match_prefix(trial)
            if self._in_flight(seq, hit):
                event("waits for a prefix being computed" + (" after a cached part" if hit else ""))
                continue
            # the first request that could not be deferred was tried: admitting it must fail
            num_new = min(trial.num_schedulable_tokens, budget)
            assert not trial_bm.allocate_slots(trial, num_new), f"{seq!r} was left waiting though it fits"
            event("admission stopped by the pool")
            return

    def _in_flight(self, seq: Sequence, hit: int) -> bool:
        """A running request shares ``seq``'s tokens up to the end of its next full block and has not computed it."""
        end = hit + self.bm.block_size
        if not self.bm.enable_prefix_caching or seq.compress or end > seq.num_tokens - 1:
            return False
        prefix = seq.token_ids[:end]
        return any(
            not other.compress
            and other.num_computed_tokens < end <= other.num_tokens
            and other.token_ids[:end] == prefix
            for other in self.sched.running
        )

    @invariant()
    def queues_and_pool_are_consistent(self) -> None:
        if not hasattr(self, "sched"):
            return
        sched, bm = self.sched, self.bm
        running, waiting = sched.running, list(sched.waiting)
        queued = {id(seq) for seq in running + waiting}
        assert len(queued) == len(running) + len(waiting), "a sequence is queued twice"
        assert len(running) <= sched.max_num_seqs
        for seq in running:
            assert seq.status is SequenceStatus.RUNNING
            assert len(seq.block_table) >= bm.blocks_needed(seq.num_kv_tokens)
            assert seq.num_uncomputed_tokens >= 1  # a sampled token, or the rest of its prompt, is pending
            assert not bm.uses_windows or seq.window is not None
        for seq in waiting:
            assert seq.status is SequenceStatus.WAITING
            assert not seq.block_table and not seq.block_hashes and seq.window is None
            assert seq.num_computed_tokens == 0 and seq.kv_offset == 0 and not seq.pressed
        for request in self.requests:
            seq = request.seq
            assert seq.is_finished != (id(seq) in queued), f"{seq!r} is lost or finished while queued"
            if seq.is_finished:
                assert not seq.block_table and seq.window is None and seq.finish_reason is not None
            assert seq.num_output_tokens <= len(request.samples)
            assert seq.output_token_ids == request.samples[: seq.num_output_tokens]
        self.oracle.check([r.seq for r in self.requests])

    def teardown(self) -> None:
        """No more requests: the loop runs until every request ends, and then the pool is whole again."""
        if not hasattr(self, "sched"):
            return
        steps = 0
        while self.sched.has_unfinished():
            self._step()
            self.queues_and_pool_are_consistent()
            steps += 1
            assert steps < MAX_STEPS_TO_DRAIN, "the scheduler stopped making progress"
        assert not self.sched.has_unfinished() and self.sched.num_waiting == self.sched.num_running == 0
        for request in self.requests:
            seq = request.seq
            assert seq.is_finished
            if request.aborted:
                assert seq.finish_reason is FinishReason.ABORT
                continue
            expected = len(request.samples)
            if request.stop_after is not None:
                expected = min(expected, request.stop_after)
            expected = min(expected, max(self.max_model_len - seq.num_prompt_tokens, 1))
            assert seq.num_output_tokens == expected
        self.oracle.check([r.seq for r in self.requests])
        self.oracle.check_drained()


def test_a_pressed_prompt_neither_waits_for_nor_holds_back_a_shared_first_block() -> None:
    """A pressed prompt never reuses nor publishes prefix-cache blocks, so the wait-for-the-prefix rule skips it.

    Found by the state machine: two pressed requests ``[0, 0, 0]`` (block size 2, budget 4) arriving together ran
    one after the other, the second waiting for a block the first would never publish.
    """
    bm = BlockManager(32, 4)
    sched = Scheduler(bm, 4, 1000)
    document = [1, 2, 3, 4] * 3
    first = Sequence("q1", document + [5], SamplingParams())
    second = Sequence("q2", document + [6], SamplingParams())
    short = Sequence("q3", document[:8] + [7], SamplingParams())  # under kv_press_min_tokens: not pressed
    first.compress = second.compress = True
    for seq in (first, second, short):
        sched.add(seq)
    out = sched.schedule()
    assert [s.seq.request_id for s in out.scheduled] == ["q1", "q2", "q3"]
    assert [s.num_new_tokens for s in out.scheduled] == [13, 13, 9]


def test_scheduler_states() -> None:
    run_state_machine_as_test(
        SchedulerMachine, settings=settings(max_examples=200, stateful_step_count=30, deadline=None)
    )


@pytest.mark.slow
def test_scheduler_states_many() -> None:
    run_state_machine_as_test(
        SchedulerMachine, settings=settings(max_examples=2000, stateful_step_count=50, deadline=None)
    )
