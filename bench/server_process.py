"""A `ctxops serve` subprocess for the serving benchmarks: a free loopback port, started, waited on until ready.

Shared by serve_load.py, soak.py and fuzz_api.py (run as scripts from this folder, so they import it by name).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(serve_args: list[str], port: int, workdir: Path, timeout_s: float = 180) -> subprocess.Popen:
    """`ctxops serve SERVE_ARGS --port PORT`, output in WORKDIR/server.out; returns once /health is 200."""
    cmd = [sys.executable, "-m", "ctxops", "serve", *serve_args, "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=(workdir / "server.out").open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit((workdir / "server.out").read_text())
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not become ready in {timeout_s:.0f} s")
