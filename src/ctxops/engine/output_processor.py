"""After sampling: append each request's token, record its logprobs, detokenize incrementally, apply stop rules.

The engine hands every sampled token here and learns whether, and why, the request is finished; it then tells the
scheduler. :func:`make_output` builds the :class:`RequestOutput` a caller sees. Detokenization works on a small
window of recent tokens (cost linear in the output) and holds back a trailing partial character until it completes.
It knows token ids, text and sampling parameters; never tensors, blocks or the scheduler.
"""

from __future__ import annotations

from ctxops.engine.outputs import CompletionOutput, Logprob, RequestOutput
from ctxops.engine.sampler import SampleResult
from ctxops.engine.sequence import FinishReason, Sequence
from ctxops.models.tokenizer import Tokenizer

StopCause = str | int | None  # the stop string or stop token id that ended a request (None: EOS or a length)


class OutputProcessor:
    """Turns sampled tokens into text and finish decisions for one engine's tokenizer and limits."""

    def __init__(self, tokenizer: Tokenizer, eos_token_ids: tuple[int, ...], max_model_len: int) -> None:
        self.tokenizer = tokenizer
        self.eos_token_ids = eos_token_ids
        self.max_model_len = max_model_len

    def banned_tokens(self, seq: Sequence) -> list[int]:
        """Token ids the sampler must not draw for ``seq`` now (EOS and stop tokens before ``min_tokens``)."""
        if seq.num_output_tokens >= seq.params.min_tokens:
            return []
        eos = [] if seq.params.ignore_eos else list(self.eos_token_ids)
        return eos + list(seq.params.stop_token_ids)

    def process(
        self, seq: Sequence, result: SampleResult, now: float
    ) -> tuple[FinishReason | None, StopCause]:
        """Append one sampled token to ``seq``; (why it finished, what stopped it), or (None, None) to go on."""
        seq.append_token(result.token_id)
        if seq.metrics.first_token_time is None:
            seq.metrics.first_token_time = now
        seq.metrics.last_token_time = now
        if seq.logprobs is not None:
            self._record_logprobs(seq, result)
        delta = self._detokenize(seq)
        return self._check_stop(seq, result.token_id, delta)

    def _record_logprobs(self, seq: Sequence, result: SampleResult) -> None:
        assert seq.logprobs is not None and result.logprob is not None
        entry = {
            result.token_id: Logprob(
                result.logprob, result.rank or 1, self.tokenizer.decode([result.token_id])
            )
        }
        for rank, (tid, lp) in enumerate(result.top_logprobs or [], start=1):
            entry.setdefault(tid, Logprob(lp, rank, self.tokenizer.decode([tid])))
        seq.logprobs.append(entry)
        seq.cumulative_logprob += result.logprob

    def _detokenize(self, seq: Sequence) -> str:
        """Incremental detokenization over a small window, so long outputs stay linear in cost."""
        skip = seq.params.skip_special_tokens
        prefix = self.tokenizer.decode(seq.token_ids[seq.detok_prefix_offset : seq.detok_read_offset], skip)
        full = self.tokenizer.decode(seq.token_ids[seq.detok_prefix_offset :], skip)
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            delta = full[len(prefix) :]
            seq.detok_prefix_offset, seq.detok_read_offset = seq.detok_read_offset, seq.num_tokens
            seq.text += delta
            return delta
        return ""

    def _check_stop(self, seq: Sequence, token: int, delta: str) -> tuple[FinishReason | None, StopCause]:
        params = seq.params
        if seq.num_output_tokens >= params.min_tokens:
            if token in params.stop_token_ids:
                return FinishReason.STOP, token
            if not params.ignore_eos and token in self.eos_token_ids:
                return FinishReason.STOP, None
            if delta and params.stop:
                hit = _find_stop_string(seq, len(delta))
                if hit is not None:
                    return FinishReason.STOP, hit
        if params.max_tokens is not None and seq.num_output_tokens >= params.max_tokens:
            return FinishReason.LENGTH, None
        if seq.num_tokens >= self.max_model_len:
            return FinishReason.LENGTH, None
        return None, None


def _find_stop_string(seq: Sequence, delta_len: int) -> str | None:
    """The first stop string in the text's new tail (it may start before the delta); cuts the text there."""
    longest = max(len(s) for s in seq.params.stop)
    search_from = max(len(seq.text) - delta_len - longest + 1, 0)
    for stop in seq.params.stop:
        index = seq.text.find(stop, search_from)
        if index != -1:
            end = index + len(stop) if seq.params.include_stop_str_in_output else index
            seq.text = seq.text[:end]
            return stop
    return None


def make_output(seq: Sequence) -> RequestOutput:
    """What a caller sees of ``seq`` now (a running request's text without a trailing partial character)."""
    finished = seq.is_finished
    text = seq.text if finished else seq.text.rstrip("\ufffd")
    completion = CompletionOutput(
        index=0,
        text=text,
        token_ids=list(seq.output_token_ids),
        cumulative_logprob=seq.cumulative_logprob if seq.logprobs is not None else None,
        logprobs=list(seq.logprobs) if seq.logprobs is not None else None,
        finish_reason=seq.finish_reason.value if seq.finish_reason else None,
        stop_reason=seq.stop_reason,
        error=seq.error,
    )
    return RequestOutput(
        request_id=seq.request_id,
        prompt=seq.prompt,
        prompt_token_ids=list(seq.prompt_token_ids),
        outputs=[completion],
        finished=finished,
        num_cached_tokens=seq.num_cached_tokens,
        metrics=seq.metrics,
    )
