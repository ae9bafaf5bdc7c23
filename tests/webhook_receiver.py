"""A real webhook receiver on loopback for tests: records each POST, can answer errors, can be down."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """``start()`` listens on ``port`` (0: a free one); ``received`` holds (headers, body) of each POST."""

    def __init__(self, port: int = 0, fail_first: int = 0) -> None:
        self.port, self.fail_first = port, fail_first
        self.received: list[tuple[dict[str, str], dict]] = []
        self.attempts = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.attempts += 1
                status = 503 if receiver.attempts <= receiver.fail_first else 200
                if status == 200:
                    receiver.received.append((dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
