"""AsyncLLM: concurrent streams equal offline results, outputs grow step by step, abort frees blocks."""

from __future__ import annotations

import asyncio

import pytest

from ctxops import LLM, AsyncLLM, EngineConfig, PromptTooLongError, SamplingParams

PARAMS = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)


def _prompts():
    return [[5 + (i * 13 + j * 7) % 400 for j in range(10 + 3 * i)] for i in range(8)]


def _config(path):
    return EngineConfig(model=str(path), kv_cache_memory="4MiB", max_model_len=512)


def test_concurrent_streams_match_offline_generate(tiny_model_dir):
    offline = LLM(str(tiny_model_dir), kv_cache_memory="4MiB", max_model_len=512)
    expected = [o.outputs[0].token_ids for o in offline.generate(_prompts(), PARAMS, use_tqdm=False)]

    async def main():
        llm = AsyncLLM(_config(tiny_model_dir))

        async def one(i, prompt):
            lengths, last = [], None
            async for out in llm.generate(prompt, PARAMS, request_id=f"r{i}"):
                lengths.append(len(out.outputs[0].token_ids))
                last = out
            return lengths, last

        results = await asyncio.gather(*(one(i, p) for i, p in enumerate(_prompts())))
        await llm.shutdown()
        return results

    results = asyncio.run(main())
    for (lengths, last), tokens in zip(results, expected, strict=True):
        assert last.finished and last.outputs[0].token_ids == tokens
        assert (
            lengths == sorted(lengths) and lengths[-1] == 12 and len(lengths) > 1
        )  # streamed, maybe coalesced


def test_closing_the_stream_aborts_and_frees_blocks(tiny_model_dir):
    async def main():
        llm = AsyncLLM(_config(tiny_model_dir))
        params = SamplingParams(temperature=0, max_tokens=400, ignore_eos=True)
        stream = llm.generate(list(range(5, 105)), params, request_id="gone")
        async for out in stream:
            if len(out.outputs[0].token_ids) >= 3:
                break
        await stream.aclose()  # what a disconnecting HTTP client does
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not llm.engine.has_unfinished_requests():
                break
        usage = llm.stats().kv_cache_usage
        await llm.shutdown()
        return usage, llm.engine.block_manager.num_free_blocks, llm.cache_info.num_blocks

    usage, free, total = asyncio.run(main())
    assert usage == 0.0 and free == total


def test_validation_errors_raise_before_queueing(tiny_model_dir):
    async def main():
        llm = AsyncLLM(_config(tiny_model_dir))
        with pytest.raises(PromptTooLongError):
            async for _ in llm.generate([5 + i % 400 for i in range(600)], PARAMS, request_id="long"):
                pass
        assert not llm.engine.has_unfinished_requests()
        await llm.shutdown()

    asyncio.run(main())


def test_an_engine_that_cannot_be_built_raises_from_the_constructor(tiny_model_dir):
    with pytest.raises(ValueError, match="kv_cache_memory"):  # built on the engine thread, raised here
        AsyncLLM(EngineConfig(model=str(tiny_model_dir), kv_cache_memory="1KiB", max_model_len=512))


def test_generate_after_shutdown_refuses(tiny_model_dir):
    from ctxops.engine.llm import EngineDeadError

    async def main():
        llm = AsyncLLM(_config(tiny_model_dir))
        await llm.shutdown()
        with pytest.raises(EngineDeadError):
            async for _ in llm.generate([5, 6, 7], PARAMS, request_id="late"):
                pass

    asyncio.run(main())
