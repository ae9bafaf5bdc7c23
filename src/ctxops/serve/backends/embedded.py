"""The embedded backend: requests run on this process's :class:`~ctxops.engine.llm.AsyncLLM`.

It renders chat messages with the model's template, tokenizes, checks the context window (so an oversized request
gets OpenAI's ``context_length_exceeded`` with the numbers), maps OpenAI fields onto vLLM-style
:class:`~ctxops.engine.sampling_params.SamplingParams`, and turns the engine's cumulative outputs into deltas.
While stop strings are set, the last ``len(longest stop) - 1`` characters are held back, so a stop string that
arrives split over several tokens is never streamed. It knows requests and token ids, not blocks.

Templating and tokenizing run in worker threads, never on the event loop, and a prompt whose size in bytes proves
it longer than the context window is refused before it is tokenized, so a 20 MB body costs milliseconds and stalls
no other client. A request that fails inside the engine gets a 500 of its own (``request_failed``) while the engine
serves the others; if the engine loop itself dies, the server is told (``on_fatal``) so that it drains and exits.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from ctxops.engine.config import EngineConfig
from ctxops.engine.llm import AsyncLLM, EngineDeadError, RequestFailedError
from ctxops.engine.llm_engine import PromptTooLongError
from ctxops.engine.outputs import Logprob, RequestOutput
from ctxops.engine.sampling_params import SamplingParams
from ctxops.serve import responses
from ctxops.serve.backends.base import Backend, GenerationRequest
from ctxops.serve.errors import (
    APIError,
    bad_request,
    context_length_exceeded,
    engine_failed,
    prompt_too_large,
    request_failed,
)
from ctxops.serve.metrics import BackendStats
from ctxops.serve.request_log import RequestRecord
from ctxops.serve.responses import Chunk, Endpoint
from ctxops.serve.schemas import ChatCompletionRequest, ChatMessage, DetokenizeRequest, TokenizeRequest


def _chat_logprobs(token_ids: list[int], entries: list[dict[int, Logprob]], top: int) -> dict[str, Any]:
    """Chat's logprobs: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""
    content = []
    for token_id, entry in zip(token_ids, entries, strict=True):
        chosen = entry[token_id]
        ranked = sorted(entry.values(), key=lambda lp: lp.rank)[:top]
        content.append({
            "token": chosen.decoded_token or "",
            "logprob": chosen.logprob,
            "bytes": list((chosen.decoded_token or "").encode()),
            "top_logprobs": [
                {"token": lp.decoded_token or "", "logprob": lp.logprob, "bytes": list((lp.decoded_token or "").encode())}
                for lp in ranked
            ],
        })  # fmt: skip
    return {"content": content}


def _completion_logprobs(
    token_ids: list[int], entries: list[dict[int, Logprob]], top: int, text_offset: int
) -> dict[str, Any]:
    """Legacy completions' logprobs: parallel lists of tokens, logprobs, top alternatives and text offsets."""
    tokens, values, tops, offsets = [], [], [], []
    for token_id, entry in zip(token_ids, entries, strict=True):
        chosen = entry[token_id]
        token = chosen.decoded_token or ""
        tokens.append(token)
        values.append(chosen.logprob)
        ranked = sorted(entry.values(), key=lambda lp: lp.rank)[:top]
        tops.append({lp.decoded_token or "": lp.logprob for lp in ranked})
        offsets.append(text_offset)
        text_offset += len(token)
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


class EmbeddedBackend(Backend):
    """Serves one local model with the in-process engine."""

    def __init__(self, engine_config: EngineConfig, model_name: str | None = None) -> None:
        self.engine_config = engine_config
        self.model_name = model_name or engine_config.model
        self.capacity = engine_config.max_num_seqs
        self.llm: AsyncLLM | None = None
        self.created = int(time.time())
        # a prompt over this many (normalized) bytes certainly exceeds max_model_len; set once the model is loaded
        self.max_prompt_bytes = 0

    async def start(self) -> None:
        """Load weights and size the KV pool in a worker thread (seconds to minutes), keeping the loop free."""
        self.llm = await asyncio.to_thread(
            functools.partial(AsyncLLM, self.engine_config, on_dead=self._engine_died)
        )
        token_bytes = await asyncio.to_thread(lambda: self.llm.tokenizer.max_token_bytes)  # type: ignore[union-attr]
        self.max_prompt_bytes = self.max_model_len * token_bytes

    def _engine_died(self, exc: BaseException) -> None:
        if self.on_fatal is not None:
            self.on_fatal(exc)

    @property
    def failure(self) -> BaseException | None:
        """The error that killed the engine loop, if it died."""
        return self.llm.errored if self.llm is not None else None

    async def stop(self) -> None:
        """Stop the engine loop."""
        if self.llm is not None:
            await self.llm.shutdown()

    @property
    def max_model_len(self) -> int:
        """Longest prompt + completion, in tokens."""
        assert self.llm is not None
        return self.llm.engine.max_model_len

    def stats(self) -> BackendStats:
        """Engine queue sizes, KV usage and prefix-cache counters."""
        if self.llm is None or self.llm.errored is not None:  # a dead engine runs nothing and holds nothing
            return BackendStats(
                num_running=0,
                num_waiting=0,
                kv_cache_usage=0.0 if self.llm else None,
                healthy=self.failure is None,
            )
        s = self.llm.stats()
        return BackendStats(
            num_running=s.num_running,
            num_waiting=s.num_waiting,
            kv_cache_usage=s.kv_cache_usage,
            kv_bytes_in_use=s.kv_bytes_in_use,
            prefix_cache_queries=s.prefix_cache_queries,
            prefix_cache_hits=s.prefix_cache_hits,
            num_preemptions=s.num_preemptions,
        )

    def model_card(self) -> dict[str, Any]:
        """The ``/v1/models`` entry, with vLLM's ``max_model_len`` and ``root`` extras."""
        return {
            "id": self.model_name, "object": "model", "created": self.created, "owned_by": "ctxops",
            "root": self.engine_config.model, "max_model_len": self.max_model_len if self.llm else None,
        }  # fmt: skip

    # ---- prompts ------------------------------------------------------------------------------------------------
    def _render_chat(
        self, messages: list[ChatMessage], add_generation_prompt: bool, continue_final_message: bool = False
    ) -> str:
        assert self.llm is not None
        tokenizer = self.llm.tokenizer
        if not tokenizer.has_chat_template:
            raise bad_request(
                "This model has no chat template; use /v1/completions with a text prompt", param="messages"
            )
        plain = [
            {"role": m.role, "content": m.text(), **({"name": m.name} if m.name else {})} for m in messages
        ]
        try:
            return tokenizer.apply_chat_template(
                plain,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=continue_final_message,
            )
        except ValueError as exc:
            raise bad_request(str(exc), param="messages") from exc

    def _prompt(self, request: GenerationRequest) -> tuple[list[int], str | None]:
        """Token ids the engine will see and the prompt as text (for the log); same rules as offline ``LLM``."""
        assert self.llm is not None
        tokenizer = self.llm.tokenizer
        if isinstance(request, ChatCompletionRequest):
            self._check_bytes(sum(len(m.text()) for m in request.messages), "messages")  # chars <= bytes
            text = self._render_chat(
                request.messages, request.add_generation_prompt, request.continue_final_message
            )
            self._check_bytes(tokenizer.normalized_num_bytes(text), "messages")
            return tokenizer.encode(text, add_special_tokens=False), text
        if isinstance(request.prompt, str):
            self._check_bytes(tokenizer.normalized_num_bytes(request.prompt), "prompt")
            return tokenizer.encode(
                request.prompt, add_special_tokens=request.add_special_tokens
            ), request.prompt
        ids = list(request.prompt)  # type: ignore[arg-type]
        vocab = self.llm.engine.model_config.vocab_size
        bad = [t for t in ids if not 0 <= t < vocab]
        if bad:
            raise bad_request(f"prompt token ids must be in [0, {vocab}); got {bad[:5]}", param="prompt")
        return ids, None

    def _check_bytes(self, num_bytes: int, param: str) -> None:
        """Refuse a prompt that its size alone proves longer than the context window."""
        if self.max_prompt_bytes and num_bytes > self.max_prompt_bytes:
            raise prompt_too_large(self.max_model_len, num_bytes, self.max_prompt_bytes, param)

    def _check_length(self, request: GenerationRequest, num_prompt: int) -> int:
        """The completion budget (explicit, or whatever fits); 400 context_length_exceeded when none fits."""
        param = "messages" if isinstance(request, ChatCompletionRequest) else "prompt"
        limit = self.max_model_len
        wanted = request.max_output_tokens
        if wanted is None:
            if num_prompt >= limit:
                raise context_length_exceeded(limit, num_prompt, 1, param)
            return limit - num_prompt
        if num_prompt + wanted > limit:
            raise context_length_exceeded(limit, num_prompt, wanted, param)
        return wanted

    @staticmethod
    def _sampling_params(request: GenerationRequest, max_tokens: int) -> SamplingParams:
        try:
            return SamplingParams(
                temperature=request.temperature, top_p=request.top_p, top_k=request.top_k, seed=request.seed,
                max_tokens=max_tokens, min_tokens=request.min_tokens, stop=request.stop_list,
                stop_token_ids=list(request.stop_token_ids or []), ignore_eos=request.ignore_eos,
                logprobs=request.num_logprobs, include_stop_str_in_output=request.include_stop_str_in_output,
                skip_special_tokens=request.skip_special_tokens,
            )  # fmt: skip
        except ValueError as exc:
            raise bad_request(str(exc), param=_param_of(exc)) from exc

    # ---- generation ---------------------------------------------------------------------------------------------
    async def stream(
        self, endpoint: Endpoint, request: GenerationRequest, record: RequestRecord
    ) -> AsyncIterator[Chunk]:
        """Validate, then yield one chunk per engine step that produced text, then the usage chunk."""
        assert self.llm is not None
        prompt_ids, prompt_text = await asyncio.to_thread(self._prompt, request)
        max_tokens = self._check_length(request, len(prompt_ids))
        params = self._sampling_params(request, max_tokens)
        record.prompt_tokens, record.max_tokens = len(prompt_ids), max_tokens
        record.prompt = prompt_text if prompt_text is not None else json.dumps(prompt_ids)
        emit = _DeltaEmitter(endpoint, request, record, self.model_name)
        async with aclosing(self.llm.generate(prompt_ids, params, record.request_id)) as outputs:
            try:
                out = await anext(outputs)  # the engine validates here, before queuing anything
            except PromptTooLongError as exc:  # defensive: _check_length normally catches this first
                raise context_length_exceeded(
                    exc.max_model_len, exc.num_tokens, max_tokens, "prompt"
                ) from exc
            except ValueError as exc:
                raise bad_request(str(exc), param=_param_of(exc)) from exc
            except (RequestFailedError, EngineDeadError) as exc:
                raise _engine_error(exc) from exc
            while True:
                item = emit.step(out)
                if item is not None:
                    yield item
                if out.finished:
                    break
                try:
                    out = await anext(outputs)
                except (RequestFailedError, EngineDeadError) as exc:
                    emit.note_partial()
                    raise _engine_error(exc) from exc
        yield emit.usage_chunk()

    # ---- tokenizer endpoints ------------------------------------------------------------------------------------
    async def tokenize(self, request: TokenizeRequest, record: RequestRecord) -> dict[str, Any]:
        """Count and list tokens exactly as generation would see them (in a worker thread)."""
        return await asyncio.to_thread(self._tokenize, request)

    def _tokenize(self, request: TokenizeRequest) -> dict[str, Any]:
        assert self.llm is not None
        tokenizer = self.llm.tokenizer
        if (request.prompt is None) == (request.messages is None):
            raise bad_request("give exactly one of 'prompt' (text) or 'messages' (chat)", param="prompt")
        if request.messages is not None:
            text = self._render_chat(
                request.messages, request.add_generation_prompt, request.continue_final_message
            )
            special = bool(request.add_special_tokens)
        else:
            text = request.prompt or ""
            special = request.add_special_tokens is not False
        self._check_bytes(
            tokenizer.normalized_num_bytes(text), "prompt" if request.messages is None else "messages"
        )
        ids = tokenizer.encode(text, add_special_tokens=special)
        strs = (
            [tokenizer.decode([t], skip_special_tokens=False) for t in ids]
            if request.return_token_strs
            else None
        )
        return {"count": len(ids), "max_model_len": self.max_model_len, "tokens": ids, "token_strs": strs}

    async def detokenize(self, request: DetokenizeRequest, record: RequestRecord) -> dict[str, Any]:
        """Token ids back to text (special tokens kept, as vLLM does)."""
        assert self.llm is not None
        vocab = self.llm.engine.model_config.vocab_size
        bad = [t for t in request.tokens if not 0 <= t < vocab]
        if bad:
            raise bad_request(f"token ids must be in [0, {vocab}); got {bad[:5]}", param="tokens")
        return {"prompt": await asyncio.to_thread(self.llm.tokenizer.decode, request.tokens, False)}


def _param_of(exc: ValueError) -> str | None:
    """The request field a sampling or engine validation message starts with ("top_p must be ..."), if any."""
    word = str(exc).split(" ", 1)[0]
    return word if word in SamplingParams.__dataclass_fields__ else None


def _engine_error(exc: RequestFailedError | EngineDeadError) -> APIError:
    """A request that failed in the engine is its own 500; so is one the engine was running when it died.

    Never a 503 for those: a 503 invites a gateway or client to replay the request elsewhere, and one of them is
    the request that killed the engine. Requests that arrive after the death get 503 ``failed`` at the door.
    """
    if isinstance(exc, RequestFailedError):
        return request_failed(str(exc))
    return engine_failed()


class _DeltaEmitter:
    """Turns one request's cumulative engine outputs into OpenAI chunks and fills its record."""

    def __init__(
        self, endpoint: Endpoint, request: GenerationRequest, record: RequestRecord, model: str
    ) -> None:
        self.endpoint = endpoint
        self.record = record
        self.model = model
        self.created = int(record.created_at)
        self.num_logprobs = request.num_logprobs
        self.holdback = (
            max((len(s) for s in request.stop_list), default=1) - 1
        )  # chars that may start a stop string
        self.num_chars = 0  # text characters already sent
        self.num_tokens = 0  # tokens already reported (logprobs)
        self.text_len = 0  # characters of text the engine had produced at the previous step
        self.last_token_time: float | None = None  # engine wall clock, seconds
        self.cached_tokens = 0

    def step(self, out: RequestOutput) -> Chunk | None:
        """The chunk for this output, or None when it adds nothing visible yet."""
        completion = out.outputs[0]
        self._timings(out)
        text = completion.text
        end = len(text) if out.finished else max(len(text) - self.holdback, self.num_chars)
        delta = text[self.num_chars : end]
        self.num_chars = max(end, self.num_chars)
        new_ids = completion.token_ids[self.num_tokens :]
        logprobs = self._logprobs(new_ids, completion.logprobs, self.text_len)
        self.text_len = len(text)
        first = self.num_tokens == 0
        self.num_tokens = len(completion.token_ids)
        if out.finished:
            self._finish(out)
        if not delta and logprobs is None and not out.finished and not first:
            return None
        return responses.chunk(
            self.endpoint, self.record.request_id, self.created, self.model, delta,
            first=first, finish_reason=completion.finish_reason if out.finished else None, logprobs=logprobs,
        )  # fmt: skip

    def _timings(self, out: RequestOutput) -> None:
        metrics = out.metrics
        if metrics is None:
            return
        if self.record.ttft_s is None and metrics.first_token_time is not None:
            self.record.ttft_s = max(metrics.first_token_time - self.record.created_at, 0.0)
        if self.record.queue_time_s is None and metrics.first_scheduled_time is not None:
            self.record.queue_time_s = metrics.first_scheduled_time - metrics.arrival_time
        last = metrics.last_token_time
        if last is not None and self.last_token_time is not None and last > self.last_token_time:
            self.record.token_gaps_s.append(last - self.last_token_time)
        self.last_token_time = last

    def _logprobs(
        self, new_ids: list[int], entries: list[dict[int, Logprob]] | None, offset: int
    ) -> dict | None:
        if self.num_logprobs is None or entries is None or not new_ids:
            return None
        new_entries = entries[self.num_tokens : self.num_tokens + len(new_ids)]
        if self.endpoint is Endpoint.CHAT:
            return _chat_logprobs(new_ids, new_entries, self.num_logprobs)
        return _completion_logprobs(new_ids, new_entries, self.num_logprobs, offset)

    def note_partial(self) -> None:
        """The request failed midway: keep the count of tokens already streamed (the log shows what was sent)."""
        self.record.completion_tokens = self.num_tokens

    def _finish(self, out: RequestOutput) -> None:
        completion = out.outputs[0]
        self.record.finish_reason = completion.finish_reason
        self.record.completion_tokens = len(completion.token_ids)
        self.record.cached_tokens = out.num_cached_tokens
        self.record.output = completion.text

    def usage_chunk(self) -> Chunk:
        """The trailing usage chunk."""
        used = responses.usage(
            self.record.prompt_tokens or 0, self.record.completion_tokens or 0, self.record.cached_tokens
        )
        return responses.usage_chunk(self.endpoint, self.record.request_id, self.created, self.model, used)
