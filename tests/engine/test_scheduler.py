"""Scheduler invariants with a fake model: budgets, decode-first order, chunked prefill, preemption, no leaks."""

from __future__ import annotations

import random

from ctxops.engine.block_manager import BlockManager
from ctxops.engine.sampling_params import SamplingParams
from ctxops.engine.scheduler import Scheduler
from ctxops.engine.sequence import FinishReason, Sequence, SequenceStatus

BS = 4


def _make(num_blocks=64, max_seqs=8, budget=32, prefix=True):
    bm = BlockManager(num_blocks, BS, prefix)
    return bm, Scheduler(bm, max_seqs, budget)


def _step(sched: Scheduler, rng: random.Random, max_tokens: dict[str, int]) -> list[Sequence]:
    """One engine step with a fake model: computed tokens advance, finished prompts sample a random token."""
    out = sched.schedule()
    assert out.num_batched_tokens <= sched.max_num_batched_tokens
    assert len(sched.running) <= sched.max_num_seqs
    sched.advance(out.scheduled)
    done = []
    for s in out.scheduled:
        if s.seq.num_computed_tokens == s.seq.num_tokens:
            s.seq.append_token(rng.randrange(1000))
            if s.seq.num_output_tokens >= max_tokens[s.seq.request_id]:
                sched.finish(s.seq, FinishReason.LENGTH)
                done.append(s.seq)
    return done


def test_long_prompt_is_chunked_under_the_budget():
    bm, sched = _make(budget=16)
    seq = Sequence("a", list(range(40)), SamplingParams())
    sched.add(seq)
    chunks = []
    for _ in range(3):
        out = sched.schedule()
        chunks.append(out.scheduled[0].num_new_tokens)
        samples = out.scheduled[0].samples
        sched.advance(out.scheduled)
    assert chunks == [16, 16, 8]
    assert samples and seq.num_computed_tokens == 40


def test_decodes_are_scheduled_before_a_running_prefill():
    bm, sched = _make(budget=16)
    short = Sequence("short", list(range(4)), SamplingParams())
    sched.add(short)
    sched.advance(sched.schedule().scheduled)
    short.append_token(7)  # now decoding
    long = Sequence("long", list(range(100, 160)), SamplingParams())
    sched.add(long)
    sched.advance(sched.schedule().scheduled)  # admits long with the remaining budget
    short.append_token(8)
    out = sched.schedule()
    assert out.scheduled[0].seq is short and out.scheduled[0].num_new_tokens == 1
    assert out.scheduled[1].seq is long and out.num_batched_tokens == 16


def test_max_num_seqs_limits_running():
    bm, sched = _make(max_seqs=2, budget=1000)
    for i in range(5):
        sched.add(Sequence(str(i), [i, i + 1, i + 2], SamplingParams()))
    out = sched.schedule()
    assert len(out.scheduled) == 2 and sched.num_waiting == 3


def test_preemption_by_recompute_when_blocks_run_out():
    bm, sched = _make(num_blocks=6, budget=64)  # 24 token slots
    a = Sequence("a", list(range(10)), SamplingParams())
    b = Sequence("b", list(range(50, 60)), SamplingParams())
    sched.add(a)
    sched.add(b)
    rng = random.Random(0)
    preempted = []
    for _ in range(20):
        out = sched.schedule()
        preempted += out.preempted
        sched.advance(out.scheduled)
        for s in out.scheduled:
            if s.seq.num_computed_tokens == s.seq.num_tokens:
                s.seq.append_token(rng.randrange(100))
        bm.check_invariants(sched.running)
    assert b in preempted  # the newest sequence gave way
    assert b.status in (SequenceStatus.WAITING, SequenceStatus.RUNNING)
    assert b.metrics.num_preemptions >= 1


def test_thousand_requests_finish_and_leak_no_block():
    rng = random.Random(1234)
    bm, sched = _make(num_blocks=48, max_seqs=6, budget=24)
    shared = list(range(500, 512))  # a common 3-block prefix so the prefix cache is exercised
    max_tokens, finished = {}, []
    for i in range(1000):
        prompt = (shared if rng.random() < 0.5 else []) + [
            rng.randrange(1000) for _ in range(rng.randint(1, 30))
        ]
        max_tokens[str(i)] = rng.randint(1, 12)
        sched.add(Sequence(str(i), prompt, SamplingParams()))
    steps = 0
    while sched.has_unfinished():
        finished += _step(sched, rng, max_tokens)
        bm.check_invariants(sched.running)
        steps += 1
        assert steps < 100_000, "scheduler stopped making progress"
    assert len(finished) == 1000
    assert bm.num_free_blocks == bm.num_blocks
    bm.check_invariants([])
    assert bm.prefix_hits > 0
    assert all(s.num_output_tokens == max_tokens[s.request_id] for s in finished)


def test_requests_sharing_a_prefix_that_is_being_computed_wait_one_step_and_reuse_it():
    bm, sched = _make(budget=1000)
    document = list(range(100, 148))  # 12 blocks
    first = Sequence("q1", document + [1, 2, 3], SamplingParams())
    second = Sequence("q2", document + [4, 5], SamplingParams())
    other = Sequence("other", list(range(500, 530)), SamplingParams())
    for seq in (first, second, other):
        sched.add(seq)
    out = sched.schedule()
    assert [s.seq.request_id for s in out.scheduled] == ["q1", "other"]  # q2 waits for the document's blocks
    sched.advance(out.scheduled)
    out = sched.schedule()
    assert [s.seq.request_id for s in out.scheduled][-1] == "q2"
    assert second.num_cached_tokens == 48 and out.scheduled[-1].num_new_tokens == 2
