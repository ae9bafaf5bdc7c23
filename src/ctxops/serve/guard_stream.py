"""The guard's output side: canary and personal-data rules on an answer as it streams, across chunk boundaries.

A model's answer arrives a few characters at a time, so a canary or a card number is usually split over several
chunks. :class:`OutputFilter` keeps the last ``holdback_chars`` characters of the answer unsent; each new chunk is
appended to that tail, the tail is scanned as a whole, and only text that can no longer be part of a match is
released. On a ``block`` match the text before it is released, the stream ends with finish reason
``content_filter`` and the backend's request is closed (the engine stops generating; an upstream stream is
dropped). ``redact`` matches are replaced once they are complete (a match touching the unsent tail may still
grow). Plain (non-streamed) responses are the aggregate of the same filtered chunks. This module knows chunks and
text, not HTTP.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ctxops.detect.canary import find_canary
from ctxops.serve.guard import GUARD_CODE, Match, find_matches, redact
from ctxops.serve.guard_config import CANARY, Action
from ctxops.serve.request_log import RequestRecord
from ctxops.serve.responses import Chunk, Endpoint, is_usage_chunk

if TYPE_CHECKING:
    from ctxops.serve.guard import Guard


def chunk_text(endpoint: Endpoint, chunk: Chunk) -> str:
    """The text a chunk adds (chat: ``delta.content``; completions: ``text``)."""
    choice = chunk["choices"][0]
    if endpoint is Endpoint.CHAT:
        return (choice.get("delta") or {}).get("content") or ""
    return choice.get("text") or ""


def with_text(endpoint: Endpoint, chunk: Chunk, text: str, finish_reason: str | None) -> Chunk:
    """A copy of ``chunk`` carrying ``text`` and ``finish_reason`` instead of its own."""
    out = copy.deepcopy(chunk)
    choice = out["choices"][0]
    if endpoint is Endpoint.CHAT:
        choice.setdefault("delta", {})["content"] = text
    else:
        choice["text"] = text
    choice["finish_reason"] = finish_reason
    return out


class OutputFilter:
    """One request's answer, filtered."""

    def __init__(self, guard: Guard, endpoint: Endpoint, record: RequestRecord) -> None:
        self.guard = guard
        self.config = guard.config
        self.endpoint = endpoint
        self.record = record
        self.pending = ""  # received, scanned, not yet sent
        self.offset = 0  # where pending starts in the answer (characters received before it)
        self.counted: set[tuple[str, int]] = set()  # (rule, answer offset) of findings already counted
        self.sent: list[str] = []  # the text released: what the request log stores as the output
        self.cut = False

    def scan(self, text: str) -> list[Match]:
        """Output findings in ``text``: canaries in any form, plus the injection and personal-data rules."""
        matches = find_matches(text, self.config, "output")
        action = self.config.action("output", CANARY)
        if action is not None:
            for canary in self.config.canaries:
                for leak in find_canary(text, canary):
                    matches.append(Match(CANARY, action, leak.start, leak.end, leak.form))
        return sorted(matches, key=lambda m: (m.start, m.end))

    async def run(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        """The filtered stream; closes ``chunks`` when it cuts the answer."""
        try:
            async for chunk in chunks:
                if is_usage_chunk(chunk) or not chunk.get("choices"):
                    yield chunk
                    continue
                finish = chunk["choices"][0].get("finish_reason")
                self.pending += chunk_text(self.endpoint, chunk)
                matches = self.scan(self.pending)
                self._count(matches)
                cut = next((m for m in matches if m.action is Action.BLOCK), None)
                if cut is not None:
                    before = [m for m in matches if m.end <= cut.start]
                    self.cut = True
                    yield self._send(chunk, redact(self.pending[: cut.start], before), GUARD_CODE)
                    return
                yield self._send(chunk, self._release(matches, finish is not None), finish)
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
            if self.cut:
                self.record.finish_reason = GUARD_CODE
            if self.record.output is not None or self.cut:  # the log keeps what was sent, not what was said
                self.record.output = "".join(self.sent)

    def _send(self, chunk: Chunk, text: str, finish_reason: str | None) -> Chunk:
        self.sent.append(text)
        return with_text(self.endpoint, chunk, text, finish_reason)

    def _count(self, matches: list[Match]) -> None:
        """Count each finding once, though the tail holding it is scanned again with every chunk."""
        for m in matches:
            key = (m.rule, self.offset + m.start)
            if key not in self.counted:
                self.counted.add(key)
                self.guard.metrics.count("output", m, self.record)

    def _release(self, matches: list[Match], final: bool) -> str:
        """Redact complete matches and send what no future match can reach; everything when ``final``."""
        keep_from = 0 if final else max(0, len(self.pending) - self.config.holdback_chars)
        done = [m for m in matches if final or m.end < keep_from]
        if final or not matches:
            text = redact(self.pending, done)
            out, self.pending = (text, "") if final else (text[:keep_from], text[keep_from:])
            self.offset += keep_from
            return out
        # a match still growing into the tail holds back everything from its start
        open_start = min((m.start for m in matches if m not in done), default=keep_from)
        keep_from = min(keep_from, open_start)
        text = redact(self.pending[:keep_from], [m for m in done if m.end <= keep_from])
        self.pending = self.pending[keep_from:]
        self.offset += keep_from
        return text
