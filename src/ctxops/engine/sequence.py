"""One request's state as the engine runs it: its tokens, how many have KV in the cache, and its blocks.

A sequence is plain Python data shared by the block manager, the scheduler and the model runner. It knows token
ids, never text or tensors.
"""

from __future__ import annotations

import time
from enum import Enum, StrEnum

from ctxops.engine.outputs import Logprob, RequestMetrics
from ctxops.engine.sampling_params import SamplingParams


class SequenceStatus(Enum):
    """Where a sequence is in its life."""

    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


class FinishReason(StrEnum):
    """Why a sequence stopped, with OpenAI's/vLLM's strings."""

    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"
    ERROR = "error"  # the request failed inside the engine; the engine goes on with the others


class Sequence:
    """Tokens (prompt then output), the count already in the KV cache, and the blocks holding them."""

    def __init__(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        params: SamplingParams,
        prompt: str | None = None,
        arrival_time: float | None = None,
    ) -> None:
        self.request_id = request_id
        self.prompt = prompt
        self.params = params
        self.token_ids: list[int] = list(prompt_token_ids)
        self.num_prompt_tokens = len(prompt_token_ids)
        self.num_computed_tokens = 0  # tokens whose K/V are written in this sequence's blocks
        self.num_cached_tokens = 0  # prompt tokens served from the prefix cache at first admission
        self.block_table: list[int] = []
        self.block_hashes: list[int] = []  # hash chain of this sequence's full, cached blocks
        # hash chain of the full blocks of its tokens, held or not (grown by the block manager as needed)
        self.hash_chain: list[int] = []
        # full-precision window block (quantized KV formats), from the block manager
        self.window: int | None = None
        # KV compression (a press): the prompt's KV is pruned once its prefill ends. Such a sequence neither
        # reuses nor publishes prefix-cache blocks, since its blocks stop matching its tokens.
        self.compress = False  # a press will prune this sequence's prompt KV at the end of its prefill
        self.kv_offset = 0  # positions dropped by the press: cache index = position - kv_offset
        self.pressed = False  # the press ran on the current prefill (reset when the blocks are freed)
        # query-agnostic press: only the first press_end prompt tokens (the context) are compressed; the question
        # after them is prefilled once the press has run. None: the whole prompt, question included (query-aware)
        self.press_end: int | None = None
        self.status = SequenceStatus.WAITING
        self.finish_reason: FinishReason | None = None
        self.stop_reason: str | int | None = None
        self.error: str | None = None  # why it failed, with FinishReason.ERROR
        self.logprobs: list[dict[int, Logprob]] | None = [] if params.logprobs is not None else None
        self.cumulative_logprob = 0.0
        self.text = ""  # detokenized output, maintained by the engine
        # incremental detokenization window: text of token_ids[prefix:read] is already in self.text
        self.detok_prefix_offset = max(self.num_prompt_tokens - 5, 0)
        self.detok_read_offset = self.num_prompt_tokens
        self.metrics = RequestMetrics(arrival_time=arrival_time or time.time())
        self.was_admitted = False

    def __len__(self) -> int:
        return len(self.token_ids)

    def __repr__(self) -> str:
        return (
            f"Sequence({self.request_id!r}, {self.status.value}, tokens={len(self)}, "
            f"computed={self.num_computed_tokens}, blocks={len(self.block_table)})"
        )

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def prompt_token_ids(self) -> list[int]:
        return self.token_ids[: self.num_prompt_tokens]

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens :]

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def num_kv_tokens(self) -> int:
        """Tokens whose K/V sit in this sequence's blocks (fewer than computed once a press pruned the prompt)."""
        return self.num_computed_tokens - self.kv_offset

    @property
    def press_pending(self) -> bool:
        """A press will run at the end of this sequence's prefill (its prefill chunks are scored)."""
        return self.compress and not self.pressed

    @property
    def press_length(self) -> int:
        """Tokens the pending press covers: the context (query-agnostic) or everything computed so far."""
        return self.press_end if self.press_end is not None else self.num_tokens

    @property
    def num_uncomputed_tokens(self) -> int:
        return len(self.token_ids) - self.num_computed_tokens

    @property
    def num_schedulable_tokens(self) -> int:
        """Tokens the next step may compute: a prefill stops at the context's end while its press is pending."""
        if self.press_end is not None and self.press_pending:
            return self.press_end - self.num_computed_tokens
        return self.num_uncomputed_tokens

    @property
    def is_finished(self) -> bool:
        return self.status == SequenceStatus.FINISHED

    def append_token(self, token_id: int) -> None:
        self.token_ids.append(token_id)
