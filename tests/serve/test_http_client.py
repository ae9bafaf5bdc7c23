"""The gateway's HTTP/1.1 client against real sockets on loopback that answer byte for byte as each test scripts.

Each scripted server is a thread with a listening socket: it reads one request (headers and Content-Length body),
records it, and writes the bytes the test gives (or sleeps, or closes). Framing (Content-Length, chunked, close-
delimited), keep-alive reuse and expiry, back-pressure, and which failure each broken answer raises are checked;
the gateway tests (test_gateway*.py) cover the same client behind real ``ctxops serve`` upstreams.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable

import pytest

from ctxops.serve.backends.http_client import (
    ConnectFailed,
    Disconnected,
    HTTPClient,
    ProtocolError,
    ResponseTimeout,
)

Script = Callable[[socket.socket, bytes], bool]  # (connection, request bytes) -> keep the connection open?


class ScriptedServer:
    """Accepts connections; for every request calls ``script`` (which writes the answer) and counts connections."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                request, buffer = head + b"\r\n\r\n" + buffer[:length], buffer[length:]
                self.requests.append(request)
                if not self.script(conn, request):
                    return

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve():
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def answer(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def chunked(*parts: bytes) -> bytes:
    framed = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"


def run(coro):
    return asyncio.run(coro)


def test_json_request_is_framed_and_the_answer_read_whole(serve):
    server = serve(lambda c, r: c.sendall(answer(b'{"ok": true}')) or True)

    async def go():
        client = HTTPClient(timeout_s=5)
        status, body = await client.fetch(
            "POST", server.url + "/v1/completions?x=1", {"a": 1}, {"Authorization": "Bearer k"}
        )
        await client.aclose()
        return status, body

    assert run(go()) == (200, b'{"ok": true}')
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/completions?x=1 HTTP/1.1"
    assert b"Authorization: Bearer k" in lines and b"Content-Type: application/json" in lines
    assert b"Content-Length: 7" in lines and body == b'{"a":1}'


def test_chunked_sse_lines_are_split_across_chunk_boundaries(serve):
    stream = chunked(b'data: {"a"', b": 1}\r\n\r\ndata: [DO", b"NE]\n\n")
    server = serve(lambda c, r: c.sendall(stream) or True)

    async def go():
        client = HTTPClient(timeout_s=5)
        response = await client.request("POST", server.url + "/s", {})
        lines = [line async for line in response.aiter_lines()]
        await response.aclose()
        return response.status_code, lines

    status, lines = run(go())
    assert status == 200
    assert lines == [b'data: {"a": 1}', b"", b"data: [DONE]", b""]


def test_a_body_ended_by_the_close_is_whole_and_the_connection_is_not_pooled(serve):
    def script(conn, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        return False  # closes

    server = serve(script)

    async def go():
        client = HTTPClient(timeout_s=5)
        first = await client.fetch("GET", server.url + "/")
        second = await client.fetch("GET", server.url + "/")
        return first, second

    assert run(go()) == ((200, b"all of it"), (200, b"all of it"))
    assert server.connections == 2


def test_keep_alive_reuses_one_connection_until_it_has_idled_past_the_limit(serve):
    server = serve(lambda c, r: c.sendall(answer(b"x")) or True)

    async def go():
        client = HTTPClient(timeout_s=5, keepalive_s=0.3)
        for _ in range(3):
            assert await client.fetch("GET", server.url + "/") == (200, b"x")
        reused = server.connections
        await asyncio.sleep(0.5)  # past keepalive_s: the idle connection is dropped, a new one opened
        await client.fetch("GET", server.url + "/")
        await client.aclose()
        return reused

    assert run(go()) == 1
    assert server.connections == 2


def test_an_unread_body_closes_its_connection_instead_of_pooling_it(serve):
    server = serve(lambda c, r: c.sendall(chunked(b"a" * 10)[:-5]) or True)  # the last chunk never comes

    async def go():
        client = HTTPClient(timeout_s=5)
        response = await client.request("GET", server.url + "/")
        await response.aclose()
        assert not client._idle.get(("http", "127.0.0.1", server.port))
        await client.aclose()

    run(go())


def test_nothing_listening_is_connect_failed():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # a port nobody listens on

    async def go():
        await HTTPClient(timeout_s=5).fetch("GET", f"http://127.0.0.1:{port}/")

    with pytest.raises(ConnectFailed, match="cannot connect"):
        run(go())


def test_silence_after_the_request_is_a_response_timeout(serve):
    server = serve(lambda c, r: time.sleep(1.0) or False)

    async def go():
        await HTTPClient(timeout_s=0.2).fetch("POST", server.url + "/", {})

    with pytest.raises(ResponseTimeout, match="before answering"):
        run(go())


def test_silence_mid_body_is_a_response_timeout(serve):
    def script(conn, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        time.sleep(1.0)
        return False

    server = serve(script)

    async def go():
        response = await HTTPClient(timeout_s=0.2).request("GET", server.url + "/")
        return [chunk async for chunk in response.aiter_bytes()]

    with pytest.raises(ResponseTimeout, match="mid-answer"):
        run(go())


def test_a_close_before_or_during_the_answer_is_disconnected(serve):
    closes = serve(lambda c, r: False)  # reads the request, closes without a byte
    breaks = serve(
        lambda c, r: c.sendall(answer(b"0123456789")[:-4]) or False
    )  # 6 of 10 body bytes, then close

    async def go(url):
        await HTTPClient(timeout_s=5).fetch("GET", url + "/")

    with pytest.raises(Disconnected, match="before answering"):
        run(go(closes.url))
    with pytest.raises(Disconnected, match="mid-answer"):
        run(go(breaks.url))


def test_bytes_that_are_not_http_are_a_protocol_error(serve):
    server = serve(lambda c, r: c.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n") or False)

    async def go():
        await HTTPClient(timeout_s=5).fetch("GET", server.url + "/")

    with pytest.raises(ProtocolError, match="not HTTP/1.1"):
        run(go())


def test_a_large_body_is_read_whole_through_back_pressure(serve):
    body = bytes(range(256)) * (3 * 2**20 // 256)  # 3 MiB: three times the buffer at which reading pauses
    server = serve(lambda c, r: c.sendall(answer(body)) or True)

    async def go():
        response = await HTTPClient(timeout_s=5).request("GET", server.url + "/")
        received = b""
        async for chunk in response.aiter_bytes():
            received += chunk
            await asyncio.sleep(0)  # a slow reader
        return received

    assert run(go()) == body


def test_bad_urls_and_header_values_are_refused_before_anything_is_sent():
    async def go(url, headers=None):
        await HTTPClient(timeout_s=5).fetch("GET", url, headers=headers)

    with pytest.raises(ValueError, match="http:// or https://"):
        run(go("ftp://example.com/"))
    with pytest.raises(ValueError, match="line break"):
        run(go("http://127.0.0.1:9/", {"X-Key": "a\r\nInjected: 1"}))
    with pytest.raises(ValueError, match="positive"):
        HTTPClient(timeout_s=0)
