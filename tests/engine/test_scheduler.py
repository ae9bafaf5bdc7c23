"""Scheduler invariants with a fake model: budgets, decode-first order, chunked prefill, preemption, no leaks,
waiting for a shared prefix being computed (hand-made block layouts); and that wait end to end on a tiny model."""

from __future__ import annotations

import random

from ctxops import LLM
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


def test_whole_prompts_wait_for_a_step_with_room_and_longer_ones_still_chunk():
    """A head policy's scheduler never splits a prompt that fits one step; one longer than a step is chunked."""
    bm = BlockManager(64, BS, False)
    sched = Scheduler(bm, 8, 16, whole_prompts=True)
    first, second, long = (
        Sequence(n, list(range(k)), SamplingParams()) for n, k in (("a", 10), ("b", 12), ("c", 40))
    )
    for seq in (first, second, long):
        sched.add(seq)
    out = sched.schedule()
    assert [(s.seq.request_id, s.num_new_tokens) for s in out.scheduled] == [("a", 10)]  # b waits: 6 left
    sched.advance(out.scheduled)
    first.append_token(1)
    out = sched.schedule()  # a decodes (1), b fits whole in the 15 left, c never fits a step: chunked
    assert [(s.seq.request_id, s.num_new_tokens) for s in out.scheduled] == [("a", 1), ("b", 12), ("c", 3)]


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


def _ids(out) -> list[str]:
    return [s.seq.request_id for s in out.scheduled]


def _run_alone(sched: Scheduler, seq: Sequence) -> None:
    """Prefill ``seq`` to its end and finish it: its full blocks stay in the prefix cache."""
    sched.add(seq)
    while seq.num_computed_tokens < seq.num_tokens:
        sched.advance(sched.schedule().scheduled)
    sched.finish(seq, FinishReason.LENGTH)


def test_requests_wait_for_a_document_being_computed_after_their_cached_header():
    """Issue 14's layout, scaled down: the header is cached, the document is not, four questions arrive together."""
    bm, sched = _make(budget=1000)
    header, document = list(range(900, 908)), list(range(100, 124))  # 2 and 6 blocks
    _run_alone(sched, Sequence("earlier", header + [1], SamplingParams()))
    questions = [Sequence(f"q{i}", header + document + [i, i, i], SamplingParams()) for i in range(4)]
    for seq in questions:
        sched.add(seq)
    out = sched.schedule()
    assert _ids(out) == ["q0"] and out.num_batched_tokens == 27  # the others wait for the document
    sched.advance(out.scheduled)
    questions[0].append_token(5)
    out = sched.schedule()
    assert _ids(out) == ["q0", "q1", "q2", "q3"]
    assert [s.num_new_tokens for s in out.scheduled] == [1, 3, 3, 3]  # the document was computed once
    assert [q.num_cached_tokens for q in questions] == [8, 32, 32, 32]
    bm.check_invariants(sched.running)


def test_a_waiting_request_keeps_its_cached_part_and_waits_for_the_rest_of_a_chunked_prefill():
    bm, sched = _make(budget=16)
    document = list(range(100, 124))  # 6 blocks
    first, second = (
        Sequence("a", document + [1, 2], SamplingParams()),
        Sequence("b", document + [3, 4], SamplingParams()),
    )
    unrelated = Sequence("c", list(range(500, 506)), SamplingParams())
    for seq in (first, second, unrelated):
        sched.add(seq)
    out = sched.schedule()
    assert _ids(out) == ["a"] and out.num_batched_tokens == 16  # a chunk: 4 of the document's blocks
    sched.advance(out.scheduled)
    assert bm.num_cached_blocks(second) == 4
    out = sched.schedule()
    assert _ids(out) == ["a", "c"]  # b's next block is in a's last chunk: it waits; c does not share it
    sched.advance(out.scheduled)
    first.append_token(7)
    out = sched.schedule()
    assert _ids(out)[-1] == "b" and out.scheduled[-1].num_new_tokens == 2 and second.num_cached_tokens == 24


def test_a_request_waits_only_while_the_shared_part_is_being_computed():
    bm, sched = _make(budget=1000)
    document = list(range(100, 124))
    first = Sequence("a", document + [1, 2], SamplingParams())
    diverging = Sequence("b", document[:12] + list(range(600, 614)), SamplingParams())  # shares 3 blocks
    sched.add(first)
    sched.add(diverging)
    out = sched.schedule()
    assert _ids(out) == ["a"]
    sched.advance(out.scheduled)
    first.append_token(7)
    out = sched.schedule()
    assert (
        _ids(out) == ["a", "b"]
        and diverging.num_cached_tokens == 12
        and out.scheduled[1].num_new_tokens == 14
    )


def test_a_request_does_not_wait_for_a_block_whose_computing_request_failed():
    bm, sched = _make(budget=1000)
    document = list(range(100, 124))
    first, second = (
        Sequence("a", document + [1], SamplingParams()),
        Sequence("b", document + [2], SamplingParams()),
    )
    sched.add(first)
    sched.add(second)
    out = sched.schedule()
    assert _ids(out) == ["a"]
    sched.finish(first, FinishReason.ERROR)  # as LLMEngine does when a's step fails: nothing computed
    out = sched.schedule()
    assert _ids(out) == ["b"] and out.scheduled[0].num_new_tokens == 25 and second.num_cached_tokens == 0
    bm.check_invariants(sched.running)


def test_a_request_computes_what_an_aborted_request_left_and_reuses_what_it_published():
    bm, sched = _make(budget=16)
    document = list(range(100, 124))
    first, second = (
        Sequence("a", document + [1], SamplingParams()),
        Sequence("b", document + [2], SamplingParams()),
    )
    sched.add(first)
    sched.add(second)
    sched.advance(sched.schedule().scheduled)  # a's first chunk: 4 of the document's 6 blocks
    sched.finish(first, FinishReason.ABORT)
    out = sched.schedule()
    assert _ids(out) == ["b"] and out.scheduled[0].num_new_tokens == 9 and second.num_cached_tokens == 16
    bm.check_invariants(sched.running)


def test_a_preempted_request_is_recomputed_first_and_the_request_sharing_its_document_reuses_it():
    bm, sched = _make(num_blocks=10, budget=16)  # 40 token slots
    old = Sequence("old", list(range(700, 711)), SamplingParams())  # its decodes will need the pool
    document = list(range(100, 124))
    first, second = (
        Sequence("a", document + [1], SamplingParams()),
        Sequence("b", document + [2], SamplingParams()),
    )
    sched.add(old)
    rng, max_tokens = random.Random(0), {"old": 8, "a": 2, "b": 2}
    _step(sched, rng, max_tokens)
    sched.add(first)
    sched.add(second)
    computed = {"a": 0, "b": 0}
    preempted = []
    while sched.has_unfinished():
        out = sched.schedule()
        preempted += [seq.request_id for seq in out.preempted]
        for s in out.scheduled:
            if s.seq.request_id in computed:
                computed[s.seq.request_id] += s.num_new_tokens
        sched.advance(out.scheduled)
        for s in out.scheduled:
            if s.seq.num_computed_tokens == s.seq.num_tokens:
                s.seq.append_token(rng.randrange(100))
                if s.seq.num_output_tokens >= max_tokens[s.seq.request_id]:
                    sched.finish(s.seq, FinishReason.LENGTH)
        bm.check_invariants(sched.running)
    assert preempted == ["a"]  # a had computed (and published) 3 of the document's 6 blocks
    assert first.num_cached_tokens == 0 and second.num_cached_tokens == 24
    assert computed == {"a": 15 + 13 + 1, "b": 1 + 1}  # a recomputed from its own 3 blocks; b reused all
    assert bm.num_free_blocks == bm.num_blocks


def test_a_request_that_waits_keeps_its_place_ahead_of_later_ones():
    bm, sched = _make(max_seqs=2, budget=1000)
    document = list(range(100, 124))
    first, second = (
        Sequence("a", document + [1], SamplingParams()),
        Sequence("b", document + [2], SamplingParams()),
    )
    later = [
        Sequence(name, list(range(start, start + 5)), SamplingParams())
        for name, start in (("c", 500), ("d", 600))
    ]
    for seq in (first, second, *later):
        sched.add(seq)
    out = sched.schedule()
    assert _ids(out) == ["a", "c"] and [seq.request_id for seq in sched.waiting] == ["b", "d"]
    sched.advance(out.scheduled)
    sched.finish(first, FinishReason.STOP)  # a seat frees: b takes it, not d
    later[0].append_token(9)
    out = sched.schedule()
    assert _ids(out) == ["c", "b"] and out.scheduled[1].num_new_tokens == 1 and second.num_cached_tokens == 24


def test_questions_sent_together_compute_their_document_once_and_answer_as_without_sharing(tiny_model_dir):
    """Issue 14's scenario on a tiny model: a cached header, one document, eight questions in one call."""
    vocab = 400
    header, document = (
        [(7 * i) % vocab + 5 for i in range(32)],
        [(11 * i + 3) % vocab + 5 for i in range(200)],
    )
    prompts = [header + document + [(13 * q + i) % vocab + 5 for i in range(8)] for q in range(8)]
    params = SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)
    config = dict(kv_cache_memory="4MiB", max_model_len=1024, block_size=16, max_num_batched_tokens=1024)
    llm = LLM(str(tiny_model_dir), **config)
    llm.generate([header + [1]], SamplingParams(max_tokens=1), use_tqdm=False)  # the header alone is cached
    outs = llm.generate(prompts, params, use_tqdm=False)
    # 1024 tokens a step would let four prompts compute the document side by side; one does, seven reuse its
    # 224 tokens (the full blocks of header + document)
    assert [o.num_cached_tokens for o in outs] == [32] + [224] * 7
    plain = LLM(str(tiny_model_dir), enable_prefix_caching=False, **config)
    expected = [o.outputs[0].token_ids for o in plain.generate(prompts, params, use_tqdm=False)]
    assert [o.outputs[0].token_ids for o in outs] == expected
