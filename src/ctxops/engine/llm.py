"""The Python API: ``LLM`` (blocking, batch) and ``AsyncLLM`` (asyncio, streaming), shaped like vLLM's.

``LLM.generate`` runs a list of prompts to completion and returns outputs in input order; ``LLM.chat`` applies the
model's chat template first. ``AsyncLLM.generate`` yields a request's cumulative output after every step and aborts
the request (freeing its KV blocks) when the consumer stops iterating. Both are thin facades over
:class:`~ctxops.engine.llm_engine.LLMEngine`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ctxops.engine.config import EngineConfig
from ctxops.engine.kv_cache import CacheInfo
from ctxops.engine.llm_engine import LLMEngine, Prompt
from ctxops.engine.outputs import RequestOutput
from ctxops.engine.sampling_params import SamplingParams

Message = dict[str, Any]


def _as_prompt_list(prompts: Prompt | Sequence[Prompt]) -> list[Prompt]:
    if isinstance(prompts, str | dict):
        return [prompts]
    if isinstance(prompts, list) and prompts and all(isinstance(t, int) for t in prompts):
        return [prompts]  # one prompt of token ids
    return list(prompts)


def _params_for(params: SamplingParams | Sequence[SamplingParams] | None, count: int) -> list[SamplingParams]:
    if params is None:
        return [SamplingParams()] * count
    if isinstance(params, SamplingParams):
        return [params] * count
    params = list(params)
    if len(params) != count:
        raise ValueError(
            f"got {len(params)} sampling params for {count} prompts; pass one, or one per prompt"
        )
    return params


class LLM:
    """Offline generation: ``LLM("path/to/model").generate(["..."], SamplingParams(max_tokens=32))``."""

    def __init__(self, model: str = EngineConfig.default("model"), **kwargs: Any) -> None:
        self.engine = LLMEngine(EngineConfig(model=model, **kwargs))
        self._ids = itertools.count()

    @property
    def cache_info(self) -> CacheInfo:
        """The KV pool: ``num_blocks``, ``block_size``, ``bytes_per_block``, ``bytes_per_token``."""
        return self.engine.cache_info

    def get_tokenizer(self):
        return self.engine.tokenizer

    def generate(
        self,
        prompts: Prompt | Sequence[Prompt],
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        use_tqdm: bool = True,
    ) -> list[RequestOutput]:
        """Run every prompt to completion; outputs come back in the order of ``prompts``."""
        prompt_list = _as_prompt_list(prompts)
        params = _params_for(sampling_params, len(prompt_list))
        seqs = [
            self.engine.make_sequence(str(next(self._ids)), p, sp)
            for p, sp in zip(prompt_list, params, strict=True)
        ]
        for seq in seqs:
            self.engine.add_sequence(seq)
        finished: dict[str, RequestOutput] = {}
        try:
            with Progress(
                TextColumn("generating"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                disable=not use_tqdm,
                transient=True,
            ) as progress:
                task = progress.add_task("requests", total=len(seqs))
                while self.engine.has_unfinished_requests():
                    for out in self.engine.step(only_finished=True):
                        if out.finished:
                            finished[out.request_id] = out
                            progress.advance(task)
        except BaseException:  # an interrupted batch must not leave its requests holding blocks
            for seq in seqs:
                self.engine.abort_request(seq.request_id)
            raise
        return [finished[seq.request_id] for seq in seqs]

    def chat(
        self,
        messages: list[Message] | list[list[Message]],
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        use_tqdm: bool = True,
        add_generation_prompt: bool = True,
    ) -> list[RequestOutput]:
        """Apply the chat template to one conversation (a list of messages) or several, then generate."""
        conversations = [messages] if messages and isinstance(messages[0], dict) else messages
        prompts: list[Prompt] = [self.render_chat(c, add_generation_prompt) for c in conversations]  # type: ignore[arg-type]
        return self.generate(prompts, sampling_params, use_tqdm)

    def render_chat(self, messages: list[Message], add_generation_prompt: bool = True) -> list[int]:
        """Chat messages -> prompt token ids (the template supplies BOS, so none is added again)."""
        text = self.engine.tokenizer.apply_chat_template(
            messages, add_generation_prompt=add_generation_prompt
        )
        return self.engine.tokenizer.encode(text, add_special_tokens=False)


class _Stream:
    """The newest cumulative output of one request.

    A slow consumer skips intermediate outputs but never loses tokens: each output holds everything generated so
    far (vLLM coalesces streamed outputs the same way).
    """

    __slots__ = ("latest", "event")

    def __init__(self) -> None:
        self.latest: RequestOutput | BaseException | None = None
        self.event = asyncio.Event()

    def put(self, item: RequestOutput | BaseException) -> None:
        if isinstance(self.latest, BaseException):
            return  # an error is final
        self.latest = item
        self.event.set()

    async def get(self) -> RequestOutput | BaseException:
        await self.event.wait()
        self.event.clear()
        item, self.latest = self.latest, None
        assert item is not None
        return item


class EngineDeadError(RuntimeError):
    """The engine loop failed; the async engine accepts no more requests."""


class AsyncLLM:
    """An engine driven by an asyncio task; model steps run in a worker thread so the event loop stays free."""

    def __init__(self, config: EngineConfig | None = None, **kwargs: Any) -> None:
        self.engine = LLMEngine(config or EngineConfig(**kwargs))
        self._queues: dict[str, _Stream] = {}
        self._pending: list[
            tuple[str, Any]
        ] = []  # ("add", Sequence) | ("abort", request_id), applied between steps
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctxops-engine")
        self.errored: BaseException | None = None

    @property
    def cache_info(self) -> CacheInfo:
        return self.engine.cache_info

    @property
    def tokenizer(self):
        return self.engine.tokenizer

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._wake = asyncio.Event()
            self._loop_task = asyncio.get_running_loop().create_task(self._run_loop())

    async def generate(
        self, prompt: Prompt, sampling_params: SamplingParams | None, request_id: str
    ) -> AsyncIterator[RequestOutput]:
        """Yield the request's cumulative output after each step until it finishes.

        Validation errors (too long, empty, bad ids) raise here before anything is queued. Closing the iterator
        early (a client that disconnects) aborts the request and frees its blocks.
        """
        if self.errored is not None:
            raise EngineDeadError(f"the engine loop failed earlier: {self.errored!r}")
        if request_id in self._queues:
            raise ValueError(f"request id {request_id!r} is already running")
        seq = self.engine.make_sequence(request_id, prompt, sampling_params or SamplingParams())
        queue = _Stream()
        self._queues[request_id] = queue
        self._submit(("add", seq))
        finished = False
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                finished = item.finished
                yield item
                if finished:
                    break
        finally:
            self._queues.pop(request_id, None)
            if not finished:
                self._submit(("abort", request_id))

    async def abort(self, request_id: str) -> None:
        """Stop a request and free its KV blocks before the next step."""
        self._submit(("abort", request_id))

    def _submit(self, op: tuple[str, Any]) -> None:
        self._pending.append(op)
        self._ensure_loop()
        assert self._wake is not None
        self._wake.set()

    def _apply_pending(self) -> None:
        ops, self._pending = self._pending, []
        for kind, arg in ops:
            if kind == "add":
                self.engine.add_sequence(arg)
            else:
                out = self.engine.abort_request(arg)
                queue = self._queues.get(arg)
                if out is not None and queue is not None:
                    queue.put(out)

    async def _run_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        try:
            while True:
                self._apply_pending()
                if not self.engine.has_unfinished_requests():
                    self._wake.clear()
                    if not self._pending:
                        await self._wake.wait()
                    continue
                outputs = await loop.run_in_executor(self._executor, self.engine.step)
                for out in outputs:
                    queue = self._queues.get(out.request_id)
                    if queue is not None:
                        queue.put(out)
        except Exception as exc:  # an engine bug must surface to every waiting client, not hang them
            self.errored = exc
            for queue in self._queues.values():
                queue.put(EngineDeadError(f"engine step failed: {exc!r}"))
            raise

    def stats(self):
        return self.engine.stats()

    async def shutdown(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop_task
        self._executor.shutdown(wait=True)
