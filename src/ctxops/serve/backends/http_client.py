"""A lean HTTP/1.1 client for the gateway's calls to its upstreams, over a pool of keep-alive connections.

Why not httpx: on the gateway's hot path httpx took most of the gateway's own CPU per request (its layered
transport, anyio streams and pure-Python h11 state machine: about 3 of the 5 ms of CPU one forwarded 1-token
completion cost on this 2-core machine). Here a request is written with one ``transport.write`` and the answer is
parsed by ``httptools`` (llhttp, the C parser uvicorn uses) straight into a queue of body chunks. It speaks what an
OpenAI-compatible upstream needs: one request at a time per connection, a JSON (or no) body, an answer framed by
Content-Length, chunked encoding or the connection's close, keep-alive, ``http`` and ``https``.

Its failures say how far a request got, which is what the gateway's no-replay rule needs: :class:`ConnectFailed`
(the request never left: refused, unreachable, connect timeout), :class:`ResponseTimeout` (sent, then nothing for
``timeout`` seconds), :class:`Disconnected` (sent, then the connection closed or broke before the answer ended),
:class:`ProtocolError` (what came back was not HTTP/1.1). All are :class:`HTTPFailure`. Idle connections are
dropped after ``keepalive_s`` (shorter than an upstream's own keep-alive, so a connection the upstream is closing is
never reused: that race would look like a dropped connection). It knows sockets and HTTP framing, not OpenAI,
routes or retries.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httptools

_MAX_BUFFERED = 1 << 20  # bytes of unread body before the socket stops being read (back-pressure)
_Key = tuple[str, str, int]  # (scheme, host, port): one pool each


class HTTPFailure(Exception):
    """A request that did not get a whole answer."""


class ConnectFailed(HTTPFailure):
    """No connection could be opened: the request certainly never reached the server."""


class ResponseTimeout(HTTPFailure):
    """The request was sent and nothing came back for ``timeout`` seconds (the server may be running it)."""


class Disconnected(HTTPFailure):
    """The request was sent, then the connection closed or broke before the answer ended."""


class ProtocolError(HTTPFailure):
    """The server's bytes were not an HTTP/1.1 answer."""


class _Connection(asyncio.Protocol):
    """One TCP connection: the parser's callbacks fill the current answer's status, headers and body chunks."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)  # one per connection: it follows keep-alive answers
        self.closed = False
        self.idle_since = 0.0  # loop time it went back to the pool
        self.waiter: asyncio.Future[None] | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the previous answer (the connection is about to carry a new request)."""
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: deque[bytes] = deque()  # body bytes received and not read yet
        self.buffered = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False  # the answer ended and allows the connection to carry another request
        self.error: HTTPFailure | None = None
        self.paused = False

    # ---- asyncio.Protocol --------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"the upstream's answer is not HTTP/1.1 ({exc})"))
            self.close()
            return
        if self.buffered > _MAX_BUFFERED and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete:
            return
        framed = "content-length" in self.headers or "chunked" in self.headers.get("transfer-encoding", "")
        if self.headers_done and not framed and exc is None:
            self.on_message_complete()  # a body delimited by the connection's close has ended
            return
        where = "mid-answer" if self.headers_done else "before answering"
        self._fail(Disconnected(f"the connection closed {where}" + (f" ({exc})" if exc else "")))

    # ---- httptools callbacks -----------------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        # the parser says whether the connection may carry another request only inside this callback
        self.keep_alive = not self.closed and self.parser.should_keep_alive()
        self._wake()

    # ---- waiting -----------------------------------------------------------------------------------------------
    async def wait(self, timeout: float) -> None:
        """Until the parser has something new (headers, body, the end) or the connection failed."""
        if self.error is not None:
            raise self.error
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, self._time_out, waiter, timeout)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None
        if self.error is not None:
            raise self.error

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _time_out(self, waiter: asyncio.Future[None], timeout: float) -> None:
        if not waiter.done():
            where = "mid-answer" if self.headers_done else "before answering"
            waiter.set_exception(ResponseTimeout(f"nothing came back for {timeout:g} s {where}"))

    def _fail(self, error: HTTPFailure) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def take(self) -> bytes | None:
        """The next unread body chunk, if one arrived."""
        if not self.chunks:
            return None
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered <= _MAX_BUFFERED // 2 and self.transport is not None:
            self.transport.resume_reading()
            self.paused = False
        return chunk

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True


class Response:
    """An answer whose headers arrived; its body is still to be read.

    Read it with :meth:`aiter_bytes`, :meth:`aiter_lines` or :meth:`aread`; :meth:`aclose` gives the connection back
    (or closes it when the body was not read to its end).
    """

    def __init__(self, client: HTTPClient, key: _Key, conn: _Connection, timeout: float) -> None:
        self._client, self._key, self._conn, self._timeout = client, key, conn, timeout
        self.status_code = conn.status
        self.headers = conn.headers
        self._released = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; raises :class:`HTTPFailure` when the answer breaks off."""
        conn = self._conn
        while True:
            chunk = conn.take()
            if chunk is not None:
                yield chunk
            elif conn.complete:
                return
            else:
                await conn.wait(self._timeout)

    async def aiter_lines(self) -> AsyncIterator[bytes]:
        """Body lines without their line ends, as bytes (a UTF-8 character never contains a newline byte)."""
        pending = b""
        async for chunk in self.aiter_bytes():
            pending += chunk
            if b"\n" not in chunk:
                continue
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line[:-1] if line.endswith(b"\r") else line
        if pending:
            yield pending

    async def aread(self) -> bytes:
        """The whole body; the connection goes back to the pool."""
        body = b"".join([chunk async for chunk in self.aiter_bytes()])
        await self.aclose()
        return body

    async def aclose(self) -> None:
        """Pool the connection when its answer ended cleanly and it may be kept, else close it."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        if conn.complete and conn.keep_alive and conn.error is None and not conn.closed:
            self._client._put_back(self._key, conn)
        else:
            conn.close()


class HTTPClient:
    """Requests over pooled keep-alive connections, one pool per (scheme, host, port)."""

    def __init__(self, timeout_s: float, connect_timeout_s: float = 5.0, keepalive_s: float = 2.0) -> None:
        if timeout_s <= 0 or connect_timeout_s <= 0 or keepalive_s < 0:
            raise ValueError("timeouts must be positive and the keep-alive time non-negative")
        self.timeout_s = timeout_s  # seconds to wait for the answer's next bytes
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s  # idle connections older than this are closed, not reused
        self._idle: dict[_Key, list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def request(
        self,
        method: str,
        url: str,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send one request and return once the answer's headers arrived (its body is still to be read)."""
        timeout = self.timeout_s if timeout is None else timeout
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"cannot send to {url!r}: the URL must be http:// or https:// with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname, port)
        body = b"" if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Accept: */*"]
        if json_body is not None:
            lines.append("Content-Type: application/json")
        if json_body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        for name, value in (headers or {}).items():
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        conn = await self._connection(key, timeout)
        try:
            assert conn.transport is not None
            conn.transport.write(data)
            while not conn.headers_done:
                await conn.wait(timeout)
        except BaseException:  # no answer, or the caller gave up: the connection is in an unknown state
            conn.close()
            raise
        return Response(self, key, conn, timeout)

    async def fetch(
        self,
        method: str,
        url: str,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """One request whose whole answer is wanted: (status, body)."""
        response = await self.request(method, url, json_body, headers, timeout)
        try:
            return response.status_code, await response.aread()
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close every idle connection (answers being read close theirs when done)."""
        for pool in self._idle.values():
            for conn in pool:
                conn.close()
        self._idle.clear()

    async def _connection(self, key: _Key, timeout: float) -> _Connection:
        """A pooled connection still fresh enough to reuse, else a new one."""
        loop = asyncio.get_running_loop()
        pool = self._idle.get(key)
        while pool:
            conn = pool.pop()
            if conn.closed or loop.time() - conn.idle_since > self.keepalive_s:
                conn.close()
                continue
            conn.reset()
            return conn
        scheme, host, port = key
        tls = self._tls_context() if scheme == "https" else None
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), host, port, ssl=tls),
                min(timeout, self.connect_timeout_s),
            )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"cannot connect to {host}:{port} ({type(exc).__name__}: {exc})") from exc
        return conn

    def _put_back(self, key: _Key, conn: _Connection) -> None:
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(key, []).append(conn)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls
