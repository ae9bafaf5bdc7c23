"""Helpers for the serve tests: a real `ctxops serve` subprocess on a free loopback port, and metric lookup."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

KV = "32MiB"
MODEL_NAME = "tiny"


def tiny_args(model_dir, *extra: str) -> list[str]:
    """`ctxops serve` arguments for the tiny test model under the tests' served name and KV pool."""
    return [str(model_dir), "--served-model-name", MODEL_NAME, "--kv-cache-memory", KV, *extra]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python -m ctxops serve ...` in a subprocess; output goes to a file (a full pipe would stall it)."""

    def __init__(
        self,
        args: list[str],
        workdir: Path,
        name: str,
        launcher: list[str] | None = None,
        env: dict | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/v1"
        self.log_path = workdir / f"{name}-requests.db"
        self.output = workdir / f"{name}.out"
        launcher = launcher or ["-m", "ctxops"]  # or a script that injects a fault, then runs the same CLI
        cmd = [sys.executable, *launcher, "serve", *args, "--port", str(self.port),
               "--request-log", str(self.log_path)]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
        self.proc = subprocess.Popen(cmd, stdout=self.output.open("w"), stderr=subprocess.STDOUT, env=env)
        self._ready = False

    def wait_ready(self, timeout_s: float = 90.0) -> ServerProcess:
        deadline = time.monotonic() + timeout_s
        while not self._ready:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                self._ready = httpx.get(self.base + "/health", timeout=1.0).status_code == 200
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready after {timeout_s}s:\n{self.output.read_text()}")
            time.sleep(0.1)
        return self

    def metrics(self) -> dict[str, float]:
        """`/metrics` as {name{labels}: value}."""
        text = httpx.get(self.base + "/metrics").text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def metric(values: dict[str, float], name: str, **labels: str) -> float | None:
    """One sample, matched by name and a subset of labels."""
    for key, value in values.items():
        base, _, rest = key.partition("{")
        if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            return value
    return None


def metric_sum(values: dict[str, float], name: str, **labels: str) -> float:
    """The sum of every sample matched by name and a subset of labels."""
    total = 0.0
    for key, value in values.items():
        base, _, rest = key.partition("{")
        if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total
