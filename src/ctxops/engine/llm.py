"""The Python API: ``LLM`` (blocking, batch) and ``AsyncLLM`` (asyncio, streaming), shaped like vLLM's.

``LLM.generate`` runs a list of prompts to completion and returns outputs in input order; ``LLM.chat`` applies the
model's chat template first. ``AsyncLLM.generate`` yields a request's cumulative output after every step and aborts
the request (freeing its KV blocks) when the consumer stops iterating. Both are thin facades over
:class:`~ctxops.engine.llm_engine.LLMEngine`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ctxops.engine.config import EngineConfig
from ctxops.engine.kv_cache import CacheInfo
from ctxops.engine.llm_engine import LLMEngine, Prompt
from ctxops.engine.outputs import RequestOutput
from ctxops.engine.sampling_params import SamplingParams
from ctxops.engine.sequence import FinishReason

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
        """The KV pool: ``num_blocks``, ``block_size``, ``bytes_per_block``, ``bytes_per_token``.

        With a head policy also ``full_bytes_per_token`` (a token's cost without it) and ``ring_bytes``.
        """
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


class RequestFailedError(RuntimeError):
    """One request failed inside the engine (its blocks are freed); the engine goes on with the others."""


class AsyncLLM:
    """An engine stepped by its own thread, streaming outputs to asyncio consumers.

    The engine thread owns the engine: it builds it (loads the weights, allocates the KV pool), applies queued adds
    and aborts between steps, steps while anything is unfinished, and hands each step's outputs to the event loop
    in one ``call_soon_threadsafe``. Then it waits, at most ``HANDOFF_TIMEOUT_S``, until the loop has run the
    consumers those outputs woke: both threads run Python under one GIL and a model step releases it at every
    tensor op, so consumers running during a step (each socket write hands the GIL back and forth) would stall it
    beyond their own CPU time. The timeout keeps a busy loop from stalling the engine; a consumer that lags only
    sees its outputs coalesced (see :class:`_Stream`).

    All tensor work stays on the engine thread because torch's OpenMP runtime keeps a worker team per calling
    thread: a second team (say, the thread that loaded the weights) makes it count more threads than cores, and
    then its workers sleep at every barrier instead of spinning, a fifth slower on 2 cores than ``LLM.generate``.
    """

    HANDOFF_TIMEOUT_S = 0.02  # longest pause of the engine thread for the event loop after a step

    def __init__(
        self,
        config: EngineConfig | None = None,
        on_dead: Callable[[BaseException], None] | None = None,
        **kwargs: Any,
    ) -> None:
        config = config or EngineConfig(**kwargs)
        self.on_dead = on_dead  # called on the event loop once the engine loop has failed for good
        self.engine: LLMEngine
        self._queues: dict[str, _Stream] = {}  # touched only on the event loop
        # ("add", Sequence) | ("abort", request_id), appended by the loop, applied by the engine thread between steps
        self._ops: collections.deque[tuple[str, Any]] = collections.deque()
        self._wake = threading.Event()
        self._built = threading.Event()  # set by the engine thread once the engine is built (or failed to)
        self._handed_off = threading.Event()  # set by the loop once it has run a step's consumers
        self._loop: asyncio.AbstractEventLoop | None = None  # where outputs are delivered
        self._stopping = False
        self.errored: BaseException | None = None
        self._build_error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._engine_thread, args=(config,), name="ctxops-engine", daemon=True
        )
        self._thread.start()
        self._built.wait()
        if self._build_error is not None:  # as LLMEngine(config) raises it: a bad path, a pool too small, ...
            raise self._build_error

    @property
    def cache_info(self) -> CacheInfo:
        return self.engine.cache_info

    @property
    def tokenizer(self):
        return self.engine.tokenizer

    async def generate(
        self, prompt: Prompt, sampling_params: SamplingParams | None, request_id: str
    ) -> AsyncIterator[RequestOutput]:
        """Yield the request's cumulative output after each step until it finishes.

        Validation errors (too long, empty, bad ids) raise here before anything is queued. Closing the iterator
        early (a client that disconnects) aborts the request and frees its blocks.
        """
        if self.errored is not None:
            raise EngineDeadError(f"the engine loop failed earlier: {self.errored!r}")
        if self._stopping:
            raise EngineDeadError("the engine was shut down")
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
                if item.outputs[0].finish_reason == FinishReason.ERROR:
                    raise RequestFailedError(f"the request failed in the engine: {item.outputs[0].error}")
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
        self._loop = asyncio.get_running_loop()
        self._ops.append(op)
        self._wake.set()

    # ---- the engine thread --------------------------------------------------------------------------------------
    def _engine_thread(self, config: EngineConfig) -> None:
        try:
            self.engine = LLMEngine(config)
        except BaseException as exc:
            self._build_error = exc
        self._built.set()
        if self._build_error is not None:
            return
        try:
            while not self._stopping:
                self._wake.clear()  # before reading the ops: a later submit sets it again
                outputs = self._apply_ops()
                if self.engine.has_unfinished_requests():
                    outputs += self.engine.step()
                elif not self._ops and not self._stopping:
                    self._deliver(outputs)
                    self._wake.wait()
                    continue
                self._deliver(outputs)
        except Exception as exc:  # an engine bug must surface to every waiting client, not hang them
            self.errored = exc
            # free what the dead requests held, so the gauges read true; the state may be past saving
            with contextlib.suppress(Exception):
                self.engine.fail_all(f"the engine failed: {type(exc).__name__}: {exc}")
            self._call_loop(self._fail_all, exc)

    def _apply_ops(self) -> list[RequestOutput]:
        aborted = []
        while self._ops:
            kind, arg = self._ops.popleft()
            if kind == "add":
                self.engine.add_sequence(arg)
            else:
                out = self.engine.abort_request(arg)
                if out is not None:
                    aborted.append(out)
        return aborted

    def _deliver(self, outputs: list[RequestOutput]) -> None:
        if outputs:
            self._handed_off.clear()
            if self._call_loop(self._dispatch, outputs):
                self._handed_off.wait(self.HANDOFF_TIMEOUT_S)

    def _call_loop(self, callback: Any, arg: Any) -> bool:
        loop = self._loop
        if loop is None:
            return False
        try:
            loop.call_soon_threadsafe(callback, arg)
        except RuntimeError:  # the loop closed: nobody is waiting any more
            return False
        return True

    # ---- on the event loop --------------------------------------------------------------------------------------
    def _dispatch(self, outputs: list[RequestOutput]) -> None:
        for out in outputs:
            queue = self._queues.get(out.request_id)
            if queue is not None:
                queue.put(out)
        # queued behind the consumers just woken, so it runs once they have taken (and sent) their outputs
        asyncio.get_running_loop().call_soon(self._handed_off.set)

    def _fail_all(self, exc: BaseException) -> None:
        for queue in self._queues.values():
            queue.put(EngineDeadError(f"engine step failed: {exc!r}"))
        if self.on_dead is not None:
            self.on_dead(exc)

    def stats(self):
        return self.engine.stats()

    async def shutdown(self) -> None:
        """Stop the engine thread after the step it is running (requests still queued are dropped)."""
        self._stopping = True
        self._wake.set()
        await asyncio.to_thread(self._thread.join)
