"""A request that fails inside the engine fails alone; an engine that fails every request gives up clearly.

Faults are injected into the real engine (a sampler or batch preparation that raises for one marked request), the
rest of the engine runs as in production.
"""

from __future__ import annotations

import asyncio

import pytest

from ctxops import LLM, SamplingParams
from ctxops.engine.llm import AsyncLLM, EngineDeadError, RequestFailedError
from ctxops.engine.llm_engine import EngineBrokenError
from ctxops.engine.model_runner import ModelRunner
from ctxops.engine.sampler import Sampler
from ctxops.engine.scheduler import Scheduler

POISON_SEED = 666
KV = "32MiB"
PROMPTS = ["the first prompt", "a second, longer prompt about something", "three", "and a fourth one"]


def _params(seed: int | None = None) -> SamplingParams:
    return SamplingParams(temperature=0.8, seed=seed or 7, max_tokens=12, ignore_eos=True)


@pytest.fixture
def poison_sampler(monkeypatch):
    """The sampler raises for the poisoned request only (as the seed >= 2**64 overflow once did)."""
    original = Sampler._sample_row

    def sample_row(self, logits, request_id, p):
        if p.seed == POISON_SEED:
            raise OverflowError("injected: cannot sample this request")
        return original(self, logits, request_id, p)

    monkeypatch.setattr(Sampler, "_sample_row", sample_row)


@pytest.fixture
def poison_batch(monkeypatch):
    """Building any batch that holds the poisoned request raises (a model-step failure, not a sampling one)."""
    original = ModelRunner.prepare

    def prepare(self, scheduled):
        if any(s.seq.params.seed == POISON_SEED for s in scheduled):
            raise RuntimeError("injected: this batch cannot run")
        return original(self, scheduled)

    monkeypatch.setattr(ModelRunner, "prepare", prepare)


def _free_blocks(llm: LLM) -> int:
    return llm.engine.block_manager.num_free_blocks


@pytest.mark.parametrize("fault", ["poison_sampler", "poison_batch"])
def test_one_failing_request_fails_alone(tiny_model_dir, fault, request):
    llm = LLM(str(tiny_model_dir), kv_cache_memory=KV)
    clean = llm.generate(PROMPTS, _params(), use_tqdm=False)
    total = _free_blocks(llm)
    request.getfixturevalue(fault)
    params = [_params(), _params(POISON_SEED), _params(), _params()]
    outs = llm.generate(PROMPTS, params, use_tqdm=False)
    assert outs[1].outputs[0].finish_reason == "error"
    assert "injected" in (outs[1].outputs[0].error or "")
    for i in (0, 2, 3):  # the others are token-identical to a run without the poisoned request
        assert outs[i].outputs[0].finish_reason == "length"
        assert outs[i].outputs[0].token_ids == clean[i].outputs[0].token_ids
    assert _free_blocks(llm) == total  # the failed request's blocks came back
    assert not llm.engine.sequences
    again = llm.generate(PROMPTS[:1], _params(), use_tqdm=False)  # and the engine goes on
    assert again[0].outputs[0].token_ids == clean[0].outputs[0].token_ids


@pytest.mark.usefixtures("poison_sampler")
def test_a_client_repeating_a_bad_request_cannot_break_the_engine(tiny_model_dir):
    """Every request of each step fails, step after step: the engine's probe still runs, so it goes on."""
    llm = LLM(str(tiny_model_dir), kv_cache_memory=KV)
    total = _free_blocks(llm)
    for _ in range(10):
        out = llm.generate("x", _params(POISON_SEED), use_tqdm=False)[0]
        assert out.outputs[0].finish_reason == "error"
    assert llm.generate("x", _params(), use_tqdm=False)[0].outputs[0].finish_reason == "length"
    assert _free_blocks(llm) == total


def test_an_engine_that_fails_its_own_probe_is_broken(tiny_model_dir, monkeypatch):
    llm = LLM(str(tiny_model_dir), kv_cache_memory=KV)
    total = _free_blocks(llm)

    def broken(self, scheduled, banned):
        raise RuntimeError("injected: the model cannot run at all")

    monkeypatch.setattr(ModelRunner, "run", broken)
    with pytest.raises(EngineBrokenError, match="and so did a one-token probe"):
        llm.generate(PROMPTS, _params(), use_tqdm=False)
    assert _free_blocks(llm) == total


def test_stop_token_ids_outside_the_vocabulary_are_refused_at_the_door(tiny_model_dir):
    """With min_tokens they indexed past the logits (an IndexError in the engine, once per step)."""
    llm = LLM(str(tiny_model_dir), kv_cache_memory=KV)
    vocab = llm.engine.model_config.vocab_size
    bad = SamplingParams(max_tokens=4, min_tokens=2, stop_token_ids=[vocab])
    with pytest.raises(ValueError, match=rf"stop_token_ids must be token ids in \[0, {vocab}\)"):
        llm.generate("x", bad, use_tqdm=False)


@pytest.mark.usefixtures("poison_sampler")
def test_async_streams_survive_a_failing_neighbour(tiny_model_dir):
    async def main():
        llm = AsyncLLM(model=str(tiny_model_dir), kv_cache_memory=KV)

        async def run(i: int, seed: int | None):
            last = None
            async for out in llm.generate(PROMPTS[i], _params(seed), f"r{i}"):
                last = out
            return last.outputs[0].token_ids

        results = await asyncio.gather(
            run(0, None), run(1, POISON_SEED), run(2, None), run(3, None), return_exceptions=True
        )
        assert isinstance(results[1], RequestFailedError) and "injected" in str(results[1])
        assert all(isinstance(r, list) and len(r) == 12 for i, r in enumerate(results) if i != 1)
        assert llm.stats().kv_cache_usage == 0 and llm.errored is None
        after = await run(0, None)  # the engine still serves
        assert after == results[0]
        await llm.shutdown()

    asyncio.run(main())


def test_a_dead_engine_fails_every_stream_frees_blocks_and_says_so(tiny_model_dir, monkeypatch):
    """An error outside any one request (here the scheduler's bookkeeping) kills the loop, loudly."""
    deaths: list[BaseException] = []

    def advance(self, scheduled):
        raise AssertionError("injected: scheduler state corrupt")

    async def main():
        llm = AsyncLLM(model=str(tiny_model_dir), kv_cache_memory=KV, on_dead=deaths.append)
        monkeypatch.setattr(Scheduler, "advance", advance)

        async def run(i: int):
            async for _ in llm.generate(PROMPTS[i], _params(), f"d{i}"):
                pass

        results = await asyncio.gather(run(0), run(1), return_exceptions=True)
        assert all(isinstance(r, EngineDeadError) for r in results)
        await asyncio.sleep(0)  # on_dead runs on the loop after the streams are failed
        assert len(deaths) == 1 and "scheduler state corrupt" in str(deaths[0])
        stats = llm.stats()
        assert stats.num_running == stats.num_waiting == 0 and stats.kv_cache_usage == 0
        with pytest.raises(EngineDeadError):
            await run(2)
        await llm.shutdown()

    asyncio.run(main())
