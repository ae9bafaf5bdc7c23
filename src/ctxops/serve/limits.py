"""Admission control: the server's lifecycle (starting, ready, draining), the in-flight cap and the body limit.

A request is admitted only while the server is ready and fewer than ``capacity + max_queue`` requests are in
flight, where ``capacity`` is how many the backend runs at once (the engine's ``max_num_seqs``). Beyond that it gets
429 with ``Retry-After``; while the model loads or after SIGTERM it gets 503. The body is read with a byte cap so
an oversized request is refused (413) without buffering it. This module counts requests; it knows nothing of
tokens or blocks.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum

from starlette.requests import Request

from ctxops.serve.errors import payload_too_large, queue_full, unavailable


class ServerState(StrEnum):
    """Where the server is in its life; only READY admits requests."""

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    FAILED = "failed"  # the backend died; the server drains and exits non-zero so a supervisor restarts it


class Admission:
    """Lifecycle plus the in-flight counter. All methods run on the event loop (no locks needed)."""

    def __init__(self, max_queue: int, retry_after_s: int = 1) -> None:
        self.max_queue = max_queue
        self.capacity = 0  # set once the backend reports how many requests it runs at once
        self.retry_after_s = retry_after_s
        self.state = ServerState.STARTING
        self.num_in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def max_in_flight(self) -> int:
        """Requests running plus waiting that the server accepts."""
        return self.capacity + self.max_queue

    def ready(self, capacity: int) -> None:
        """The backend is up and runs ``capacity`` requests at once."""
        self.capacity = capacity
        self.state = ServerState.READY

    def check_open(self) -> None:
        """Raise 503 unless the server is ready."""
        if self.state is not ServerState.READY:
            raise unavailable(self.state.value, self.retry_after_s)

    def acquire(self) -> None:
        """Take an in-flight slot or raise 429 (503 if not ready). Pair with :meth:`release`."""
        self.check_open()
        if self.num_in_flight >= self.max_in_flight:
            raise queue_full(self.max_in_flight, self.retry_after_s)
        self.num_in_flight += 1
        self._idle.clear()

    def release(self) -> None:
        """Give back a slot taken by :meth:`acquire`."""
        self.num_in_flight -= 1
        if self.num_in_flight == 0:
            self._idle.set()

    def fail(self) -> None:
        """The backend died: refuse everything from now on (503 ``failed``)."""
        self.state = ServerState.FAILED

    async def drain(self, timeout_s: float) -> bool:
        """Refuse new requests and wait for in-flight ones; False if ``timeout_s`` passed first."""
        if self.state is not ServerState.FAILED:
            self.state = ServerState.DRAINING
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (413) anything over ``max_bytes`` before or while it arrives."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise payload_too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise payload_too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)
