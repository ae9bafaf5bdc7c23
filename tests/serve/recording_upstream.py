"""A stand-in OpenAI-compatible upstream that records what it receives and streams a scripted answer.

Run as a script (``python recording_upstream.py PORT``). The answer to a request is the text after ``REPLY:`` in
its last message (or prompt) with `` AT `` turned into ``@``, streamed three characters per chunk, so a canary or
an address in it is split over chunks.
``GET /received`` returns every request body received so far: the guard tests read it to prove what reached the
upstream (nothing, or the redacted text).
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "recorder"
CHUNK_CHARS = 3


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received: list[dict] = []
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _json(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._json({"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            with self.lock:
                self._json(list(self.received))

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            self.received.append(body)
        chat = "messages" in body
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        answer = (
            prompt.partition("REPLY:")[2].replace(" AT ", "@") or "ok"
        )  # " AT ": an address the input guard cannot see
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pieces = [answer[i : i + CHUNK_CHARS] for i in range(0, len(answer), CHUNK_CHARS)]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            fields = {"delta": {"content": piece}} if chat else {"text": piece}
            item = {"id": "r", "object": "chat.completion.chunk" if chat else "text_completion", "created": 1,
                    "model": MODEL, "choices": [{"index": 0, "finish_reason": "stop" if last else None, **fields}]}  # fmt: skip
            try:
                self._send(f"data: {json.dumps(item)}\n\n".encode())
            except OSError:  # the gateway hung up (the guard cut the answer)
                self.close_connection = True
                return
        usage = {"prompt_tokens": 5, "completion_tokens": len(pieces), "total_tokens": 5 + len(pieces)}
        self._send(
            f"data: {json.dumps({'id': 'r', 'object': 'x', 'created': 1, 'model': MODEL, 'choices': [], 'usage': usage})}\n\n".encode()
        )
        self._send(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _send(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _Recorder).serve_forever()
