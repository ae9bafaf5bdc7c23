"""The engine loop: requests in, one ``step()`` at a time, ``RequestOutput``s out.

``step()`` is schedule -> run the model -> prune the KV of prompts whose prefill just ended (with ``kv_press``,
see :mod:`ctxops.engine.kv_press`) -> append sampled tokens, detokenize, apply stop rules
(:mod:`ctxops.engine.output_processor`) -> report. The engine
validates requests at the door (a prompt longer than ``max_model_len`` is refused at once, never queued) and owns
the tokenizer, so the scheduler and model runner below it see token ids only. It knows nothing about HTTP.

One request's failure costs only that request: when a batched model step raises, each of its requests is run
again alone (their KV slots are simply rewritten), and those that still fail finish with ``FinishReason.ERROR``
and their blocks are freed, while the rest go on. A failure while pressing, sampling or detokenizing one request
fails that request the same way. When every request of a step failed, a one-token probe of the engine's own
tells a broken engine from bad requests (a client cannot take the engine down by repeating one): only if the probe
fails too is :class:`EngineBrokenError` raised, for the caller to shut down.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from ctxops.engine.block_manager import BlockManager
from ctxops.engine.config import EngineConfig
from ctxops.engine.kv_cache import CacheInfo, plan_cache
from ctxops.engine.kv_head_policy import HeadPolicy
from ctxops.engine.model_runner import ModelRunner
from ctxops.engine.output_processor import OutputProcessor, make_output
from ctxops.engine.outputs import RequestOutput
from ctxops.engine.sampler import SampleFailure, SampleResult
from ctxops.engine.sampling_params import SamplingParams
from ctxops.engine.scheduler import ScheduledSequence, Scheduler
from ctxops.engine.sequence import FinishReason, Sequence
from ctxops.models.config import ModelConfig
from ctxops.models.loader import eos_token_ids, resolve_model_path, torch_dtype
from ctxops.models.tokenizer import Tokenizer

Prompt = str | list[int] | dict[str, Any]
logger = logging.getLogger("ctxops.engine")


class PromptTooLongError(ValueError):
    """The prompt does not fit in ``max_model_len``; carries the numbers for an API error."""

    def __init__(self, num_tokens: int, max_model_len: int) -> None:
        self.num_tokens = num_tokens
        self.max_model_len = max_model_len
        super().__init__(
            f"the prompt has {num_tokens} tokens, longer than the maximum model length of {max_model_len}; "
            "shorten the prompt or start the engine with a larger max_model_len"
        )


class EngineBrokenError(RuntimeError):
    """Every request of a step failed and so did a one-token probe: the engine, not a request, is at fault."""


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot for metrics: queue sizes, KV usage, prefix-cache counters (tokens)."""

    num_running: int
    num_waiting: int
    kv_cache_usage: float
    prefix_cache_queries: int
    prefix_cache_hits: int
    num_preemptions: int
    # K/V bytes the running sequences hold now: their blocks, plus their rings under a kv_head_policy
    kv_bytes_in_use: int = 0
    # with kv_head_policy: what the running sequences would hold in a full cache minus what they hold (blocks +
    # rings); negative while they are shorter than a ring's worth of tokens
    kv_head_policy_saved_bytes: int = 0


class LLMEngine:
    """Runs requests on the embedded model, one scheduling step per call to :meth:`step`."""

    PROBE_ID = "ctxops-engine-probe"  # the request id of the one-token health probe (never a client's)

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        path = resolve_model_path(config.model)
        self.model_path = path
        self.model_config = ModelConfig.from_path(path)
        self.max_model_len = config.max_model_len or self.model_config.max_position_embeddings
        self.model_config.check_engine_support(self.max_model_len)
        self.tokenizer = Tokenizer(path)
        self.output = OutputProcessor(
            self.tokenizer, eos_token_ids(path, self.model_config), self.max_model_len
        )
        dtype = torch_dtype(config.dtype, self.model_config)
        self.head_policy = None
        if config.kv_head_policy is not None:
            self.head_policy = HeadPolicy.from_file(config.kv_head_policy)
            self.head_policy.check_model(self.model_config, f"kv_head_policy {config.kv_head_policy}")
        # the storage split: None when there is no policy or every head of it keeps every token
        split = self.head_policy if self.head_policy is not None and self.head_policy.has_streaming else None
        self.cache_info: CacheInfo = plan_cache(
            self.model_config,
            dtype,
            config.kv_cache_memory,
            config.block_size,
            self.max_model_len,
            config.kv_cache_dtype,
            config.max_num_seqs,
            split,
        )
        # A split sequence's ring cannot be rebuilt from shared blocks (the streaming heads are not in them), so
        # it neither reuses nor publishes prefix-cache blocks; ring ids are handed out as the per-sequence windows.
        self.block_manager = BlockManager(
            self.cache_info.num_blocks,
            config.block_size,
            config.enable_prefix_caching and split is None,
            self.cache_info.num_windows + self.cache_info.num_rings,
        )
        self.scheduler = Scheduler(
            self.block_manager,
            config.max_num_seqs,
            config.max_num_batched_tokens,
            whole_prompts=split is not None,
        )
        self.runner = ModelRunner(
            self.model_config,
            path,
            dtype,
            self.cache_info,
            config.seed,
            config.quantization,
            config.kv_press,
            config.kv_compression_ratio,
            split,
        )
        self.sequences: dict[str, Sequence] = {}

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """The token ids that end a request (unless ``ignore_eos``)."""
        return self.output.eos_token_ids

    @eos_token_ids.setter
    def eos_token_ids(self, ids: tuple[int, ...]) -> None:
        self.output.eos_token_ids = ids

    # ---- requests in ------------------------------------------------------------------------------------------
    def tokenize_prompt(self, prompt: Prompt) -> tuple[str | None, list[int]]:
        """A prompt is text, a list of token ids, or {"prompt": text} / {"prompt_token_ids": ids}.

        A dict may also carry ``"question_start"``: the index of the prompt's first question token. With a KV
        press, only the tokens before it (the context) are compressed and the question is prefilled after the
        press, uncompressed: kvpress's query-agnostic setting, where a compressed document serves any question.
        """
        if isinstance(prompt, dict):
            if "prompt_token_ids" in prompt:
                prompt = list(prompt["prompt_token_ids"])
            elif "prompt" in prompt:
                prompt = prompt["prompt"]
            else:
                raise ValueError("a dict prompt needs 'prompt' (text) or 'prompt_token_ids'")
        if isinstance(prompt, str):
            return prompt, self.tokenizer.encode(prompt)
        if isinstance(prompt, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            vocab = self.model_config.vocab_size
            bad = [t for t in prompt if not 0 <= t < vocab]
            if bad:
                raise ValueError(f"prompt token ids must be in [0, {vocab}); got {bad[:5]}")
            return None, list(prompt)
        raise TypeError(f"a prompt must be a string or a list of token ids, got {type(prompt).__name__}")

    def make_sequence(self, request_id: str, prompt: Prompt, params: SamplingParams) -> Sequence:
        """Validate and tokenize a request without touching engine state (safe from any thread)."""
        text, ids = self.tokenize_prompt(prompt)
        if not ids:
            raise ValueError("the prompt is empty; give at least one token")
        if len(ids) > self.max_model_len:
            raise PromptTooLongError(len(ids), self.max_model_len)
        vocab = self.model_config.vocab_size
        if any(t >= vocab for t in params.stop_token_ids):
            raise ValueError(
                f"stop_token_ids must be token ids in [0, {vocab}); got {params.stop_token_ids[:5]}"
            )
        seq = Sequence(request_id, ids, params, prompt=text)
        seq.compress = self.config.kv_press is not None and len(ids) >= self.config.kv_press_min_tokens
        if isinstance(prompt, dict) and prompt.get("question_start") is not None:
            start = prompt["question_start"]
            if isinstance(start, bool) or not isinstance(start, int) or not 0 < start < len(ids):
                raise ValueError(
                    f"question_start must be a token index inside the prompt (1 to {len(ids) - 1}), got {start!r}"
                )
            if seq.compress:
                seq.press_end = start
        return seq

    def add_sequence(self, seq: Sequence) -> None:
        if seq.request_id in self.sequences:
            raise ValueError(f"request id {seq.request_id!r} is already running")
        self.sequences[seq.request_id] = seq
        self.scheduler.add(seq)

    def add_request(self, request_id: str, prompt: Prompt, params: SamplingParams | None = None) -> Sequence:
        seq = self.make_sequence(request_id, prompt, params or SamplingParams())
        self.add_sequence(seq)
        return seq

    def abort_request(self, request_id: str) -> RequestOutput | None:
        """Stop a request and free its blocks; returns its final output, or None if it is unknown."""
        seq = self.sequences.pop(request_id, None)
        if seq is None:
            return None
        self.scheduler.finish(seq, FinishReason.ABORT)
        self.runner.release(request_id)
        return make_output(seq)

    def has_unfinished_requests(self) -> bool:
        return self.scheduler.has_unfinished()

    # ---- one step ---------------------------------------------------------------------------------------------
    def step(self, only_finished: bool = False) -> list[RequestOutput]:
        """Schedule, run the model once, and return the outputs of every request that advanced.

        ``only_finished`` skips building outputs of requests still running: a batch caller that waits for the end
        would otherwise copy every request's whole output at every step (quadratic in the output length).
        """
        out = self.scheduler.schedule()
        if out.is_empty:
            return []
        banned = {
            s.seq.request_id: self.output.banned_tokens(s.seq)
            for s in out.scheduled
            if s.seq.params.min_tokens
        }
        pressing = [  # prefills reaching the end of what their press covers
            s.seq
            for s in out.scheduled
            if s.seq.press_pending and s.seq.num_computed_tokens + s.num_new_tokens == s.seq.press_length
        ]
        results, failed = self._run_isolated(out.scheduled, banned)
        failed.update({seq.request_id: r.error for seq, r in results if isinstance(r, SampleFailure)})
        self.scheduler.advance([s for s in out.scheduled if s.seq.request_id not in failed])
        for seq in pressing:
            if seq.request_id not in failed:
                self._guarded(seq, failed, self.runner.apply_press, seq, self.block_manager)
        now = time.time()
        outputs = []
        for seq, result in results:
            if seq.request_id not in failed:
                self._guarded(seq, failed, self._append, seq, result, now)
        produced = {seq.request_id for seq, _ in results}
        for s in out.scheduled:
            seq = s.seq
            if seq.request_id in failed:
                self._fail(seq, failed[seq.request_id])
            elif seq.request_id not in produced:
                continue  # a prompt chunk: nothing to report yet
            if seq.is_finished or not only_finished:
                outputs.append(make_output(seq))
            if seq.is_finished:
                self.sequences.pop(seq.request_id, None)
                self.runner.release(seq.request_id)
        if len(failed) == len(out.scheduled):
            self._check_broken(failed)
        return outputs

    # ---- failures ---------------------------------------------------------------------------------------------
    def _run_isolated(
        self, scheduled: list[ScheduledSequence], banned: dict[str, list[int]]
    ) -> tuple[list[tuple[Sequence, SampleResult | SampleFailure]], dict[str, BaseException]]:
        """Run the step; if it raises, run each request alone so only the failing ones fail.

        The failed batch raised before sampling (sampling failures come back per row), so the reruns compute the
        same KV and draw the same samples as the batch would have.
        """
        try:
            return self.runner.run(scheduled, banned), {}
        except Exception as exc:
            if len(scheduled) == 1:
                return [], {scheduled[0].seq.request_id: exc}
        results: list[tuple[Sequence, SampleResult | SampleFailure]] = []
        failed: dict[str, BaseException] = {}
        for s in scheduled:
            try:
                results += self.runner.run([s], banned)
            except Exception as exc:
                failed[s.seq.request_id] = exc
        return results, failed

    def _guarded(self, seq: Sequence, failed: dict[str, BaseException], call: Any, *args: Any) -> None:
        """Run one request's post-step work; a failure there fails the request, not the step."""
        try:
            call(*args)
        except Exception as exc:
            failed[seq.request_id] = exc

    def _check_broken(self, failed: dict[str, BaseException]) -> None:
        """Every request of the step failed: raise EngineBrokenError if a one-token probe fails too."""
        probe = Sequence(self.PROBE_ID, [0], SamplingParams(temperature=0.0, max_tokens=1))
        if not self.block_manager.allocate_slots(probe, 1):
            return  # no free block to test with: the failed requests were the evidence, and they were bad
        try:
            self.runner.run([ScheduledSequence(probe, 1)], {})
        except Exception as exc:
            first = next(iter(failed.values()))
            raise EngineBrokenError(
                f"every request of a step failed ({type(first).__name__}: {first}) and so did a one-token probe "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        finally:
            self.block_manager.free(probe)
            self.runner.release(self.PROBE_ID)

    def _fail(self, seq: Sequence, exc: BaseException) -> None:
        """Finish a request that failed inside the engine and free its blocks."""
        logger.error("request %s failed in the engine: %s: %s", seq.request_id, type(exc).__name__, exc)
        seq.error = f"{type(exc).__name__}: {exc}"
        self.scheduler.finish(seq, FinishReason.ERROR)

    def fail_all(self, reason: str) -> list[RequestOutput]:
        """Finish every request with an error and free its blocks (the engine is shutting down after a fault)."""
        outputs = []
        for seq in list(self.sequences.values()):
            seq.error = reason
            self.scheduler.finish(seq, FinishReason.ERROR)
            self.runner.release(seq.request_id)
            outputs.append(make_output(seq))
        self.sequences.clear()
        return outputs

    def _append(self, seq: Sequence, result: SampleResult, now: float) -> None:
        reason, stop = self.output.process(seq, result, now)
        if reason is not None:
            seq.stop_reason = stop
            self.scheduler.finish(seq, reason)

    # ---- outputs ----------------------------------------------------------------------------------------------
    def stats(self) -> EngineStats:
        in_use, full = self._kv_bytes()
        return EngineStats(
            num_running=self.scheduler.num_running,
            num_waiting=self.scheduler.num_waiting,
            kv_cache_usage=self.block_manager.usage,
            prefix_cache_queries=self.block_manager.prefix_queries,
            prefix_cache_hits=self.block_manager.prefix_hits,
            num_preemptions=self.scheduler.num_preemptions,
            kv_bytes_in_use=in_use,
            kv_head_policy_saved_bytes=full - in_use if self.cache_info.num_rings else 0,
        )

    def _kv_bytes(self) -> tuple[int, int]:
        """(bytes the running sequences hold, bytes their tokens would take in a full cache of this dtype)."""
        info = self.cache_info
        running = self.scheduler.running
        blocks = {block for seq in running for block in seq.block_table}  # a shared prefix block counts once
        side = info.ring_bytes_per_sequence + (
            info.window_bytes // info.num_windows if info.num_windows else 0
        )
        held = len(blocks) * info.bytes_per_block + sum(seq.window is not None for seq in running) * side
        full = sum(seq.num_kv_tokens for seq in running) * info.full_bytes_per_token
        return held, full
