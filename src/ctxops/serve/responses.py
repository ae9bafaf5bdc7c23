"""OpenAI response objects: streamed chunks, their aggregation into one response, and SSE framing.

Backends speak one language: a stream of ``chat.completion.chunk`` / ``text_completion`` chunk dicts ending with a
usage-only chunk (``choices: []``). A streamed response forwards those chunks; a plain response is
:func:`aggregate` of them. So the embedded engine and an upstream share every formatting path. This module knows
OpenAI's JSON shapes, not engines or sockets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

Chunk = dict[str, Any]


class Endpoint(StrEnum):
    """The two generation endpoints; the value is what the request log stores."""

    CHAT = "chat.completions"
    COMPLETIONS = "completions"

    @property
    def chunk_object(self) -> str:
        """``object`` of a streamed chunk."""
        return "chat.completion.chunk" if self is Endpoint.CHAT else "text_completion"

    @property
    def response_object(self) -> str:
        """``object`` of a complete response."""
        return "chat.completion" if self is Endpoint.CHAT else "text_completion"


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None) -> dict[str, Any]:
    """OpenAI's usage object (``prompt_tokens_details.cached_tokens`` as OpenAI reports prefix-cache hits)."""
    out: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    return out


def chunk(
    endpoint: Endpoint,
    request_id: str,
    created: int,
    model: str,
    text: str,
    *,
    first: bool = False,
    finish_reason: str | None = None,
    logprobs: dict[str, Any] | None = None,
) -> Chunk:
    """One streamed choice delta (chat: ``delta``, with the role on the first chunk; completions: ``text``)."""
    choice: dict[str, Any] = {"index": 0}
    if endpoint is Endpoint.CHAT:
        choice["delta"] = {"role": "assistant", "content": text} if first else {"content": text}
    else:
        choice["text"] = text
    choice["logprobs"] = logprobs
    choice["finish_reason"] = finish_reason
    return {
        "id": request_id,
        "object": endpoint.chunk_object,
        "created": created,
        "model": model,
        "choices": [choice],
    }


def usage_chunk(endpoint: Endpoint, request_id: str, created: int, model: str, used: dict[str, Any]) -> Chunk:
    """The last chunk of a stream: no choices, only usage."""
    return {
        "id": request_id, "object": endpoint.chunk_object, "created": created, "model": model, "choices": [],
        "usage": used,
    }  # fmt: skip


def is_usage_chunk(item: Chunk) -> bool:
    """True for the trailing usage-only chunk."""
    return not item.get("choices") and item.get("usage") is not None


def _merge_logprobs(endpoint: Endpoint, parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not parts:
        return None
    if endpoint is Endpoint.CHAT:
        return {"content": [item for part in parts for item in part.get("content") or []]}
    keys = ("tokens", "token_logprobs", "top_logprobs", "text_offset")
    return {key: [v for part in parts for v in part.get(key) or []] for key in keys}


def aggregate(endpoint: Endpoint, chunks: Iterable[Chunk]) -> dict[str, Any]:
    """Fold a chunk stream into the complete (non-streamed) response."""
    head: Chunk | None = None
    texts: list[str] = []
    logprobs: list[dict[str, Any]] = []
    finish_reason = None
    used = None
    for item in chunks:
        head = head or item
        used = item.get("usage") or used
        for choice in item.get("choices") or []:
            texts.append(
                (choice.get("delta") or {}).get("content") or ""
                if endpoint is Endpoint.CHAT
                else choice.get("text") or ""
            )
            if choice.get("logprobs"):
                logprobs.append(choice["logprobs"])
            finish_reason = choice.get("finish_reason") or finish_reason
    if head is None:
        raise ValueError("an empty chunk stream cannot be aggregated")
    choice: dict[str, Any] = {"index": 0}
    if endpoint is Endpoint.CHAT:
        choice["message"] = {"role": "assistant", "content": "".join(texts)}
    else:
        choice["text"] = "".join(texts)
    choice["logprobs"] = _merge_logprobs(endpoint, logprobs)
    choice["finish_reason"] = finish_reason
    return {
        "id": head["id"], "object": endpoint.response_object, "created": head["created"], "model": head["model"],
        "choices": [choice], "usage": used,
    }  # fmt: skip


def sse(item: Chunk | str) -> bytes:
    """One server-sent event: ``data: {json}`` (or a literal such as ``[DONE]``) and a blank line."""
    data = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"), ensure_ascii=False)
    return f"data: {data}\n\n".encode()
