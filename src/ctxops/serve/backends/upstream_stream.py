"""An upstream's SSE stream read into chunks, with the token accounting the gateway does on the way.

:func:`read_chunks` parses ``data:`` lines into chunk dicts, renames them to the gateway's model and request id,
notes timings (TTFT, inter-token gaps) and usage in the request's record, and counts completion tokens itself in
a :class:`Tally` for upstreams that send no usage (llama.cpp's server streams none); :func:`counted_usage` turns
that count into the usage chunk the client gets, marked ``"usage_source": "counted"`` (a lower bound: an upstream
may hold a partial character back or batch tokens into one chunk). An ``error`` event or a stream that ends
without ``[DONE]`` raises a 502. It knows chunks and records, not routing, retries or breakers.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ctxops.serve.backends.http_client import Response
from ctxops.serve.errors import upstream_error
from ctxops.serve.request_log import RequestRecord
from ctxops.serve.responses import Chunk, Endpoint, is_usage_chunk, usage_chunk


@dataclass(slots=True)
class Tally:
    """What one relayed stream has carried so far."""

    tokens: int = 0  # completion tokens counted from the content chunks relayed
    usage: bool = False  # the upstream sent its own usage chunk
    created: int | None = None  # ``created`` of the upstream's first chunk


async def read_chunks(
    response: Response, record: RequestRecord, tally: Tally, model_name: str
) -> AsyncIterator[Chunk]:
    """Parse the upstream's SSE stream into chunks, noting timings, usage and counts."""
    last_token = None
    lines = response.aiter_lines()
    async for line in lines:
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            async for _ in lines:  # read to the body's end: a response closed unread takes its connection
                pass  # with it, and the next request would pay a new TCP connect (keep-alive lost)
            return
        item = json.loads(data)
        if "error" in item:
            error = item["error"] if isinstance(item["error"], dict) else {"message": item["error"]}
            raise upstream_error(f"the upstream failed mid-stream: {error.get('message')}")
        item["model"], item["id"] = model_name, record.request_id  # the gateway's names and ids
        if tally.created is None:
            tally.created = item.get("created")
        now = time.perf_counter()
        if is_usage_chunk(item):
            tally.usage = True
            _note_usage(record, item["usage"])
        else:
            tokens = _count_tokens(item)
            if tokens:
                tally.tokens += tokens
                if record.ttft_s is None:
                    record.ttft_s = record.elapsed()
                elif last_token is not None:
                    record.token_gaps_s.append(now - last_token)
                last_token = now
        for choice in item.get("choices") or []:
            record.finish_reason = choice.get("finish_reason") or record.finish_reason
        yield item
    raise upstream_error("the upstream closed the stream without sending [DONE]")


def counted_usage(endpoint: Endpoint, record: RequestRecord, tally: Tally, model_name: str) -> Chunk:
    """The usage chunk the upstream did not send: the completion tokens counted, the prompt unknown."""
    prompt = record.prompt_tokens
    used = {
        "prompt_tokens": prompt,
        "completion_tokens": tally.tokens,
        "total_tokens": None if prompt is None else prompt + tally.tokens,
        "usage_source": "counted",
    }
    created = tally.created if isinstance(tally.created, int) else int(record.created_at)
    return usage_chunk(endpoint, record.request_id, created, model_name, used)


def _count_tokens(item: Chunk) -> int:
    """Completion tokens in one chunk: its logprob entries when it has them, else one per choice with text.

    An empty text counts (llama.cpp and vLLM send one for a token whose bytes are not yet a whole character),
    except in a chat stream's opening role chunk and in an end marker that only carries the finish reason.
    """
    count = 0
    for choice in item.get("choices") or []:
        logprobs = choice.get("logprobs")
        entries = (logprobs.get("content") or logprobs.get("tokens")) if isinstance(logprobs, dict) else None
        if entries:
            count += len(entries)
            continue
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        opener = isinstance(delta, dict) and "role" in delta
        if isinstance(text, str) and (text or not (opener or choice.get("finish_reason"))):
            count += 1
    return count


def _note_usage(record: RequestRecord, used: dict[str, Any]) -> None:
    record.prompt_tokens = used.get("prompt_tokens")
    record.completion_tokens = used.get("completion_tokens")
    details = used.get("prompt_tokens_details") or {}
    record.cached_tokens = details.get("cached_tokens")
    record.usage_source = "upstream"
