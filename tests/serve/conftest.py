"""Real `ctxops serve` processes on loopback, started once per session and shared by the serve tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_helpers import KV, MODEL_NAME, ServerProcess


@pytest.fixture(scope="session")
def serve_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="session")
def _processes(tiny_model_dir, serve_dir):
    """Every server the serve tests use, started in parallel (each costs seconds of start-up)."""
    common = [str(tiny_model_dir), "--served-model-name", MODEL_NAME, "--kv-cache-memory", KV]
    procs = {
        "main": ServerProcess([*common, "--log-prompts", "--max-body-size", "256KiB"], serve_dir, "main"),
        "limited": ServerProcess(
            [
                *common,
                "--max-num-seqs",
                "1",
                "--max-queue",
                "0",
                "--api-key",
                "sk-one",
                "--api-key",
                "sk-two",
                "--drain-timeout",
                "30",
            ],
            serve_dir,
            "limited",
        ),  # fmt: skip
        "second": ServerProcess(common, serve_dir, "second"),
    }
    yield procs
    for proc in procs.values():
        proc.stop()


@pytest.fixture(scope="session")
def main_server(_processes) -> ServerProcess:
    return _processes["main"].wait_ready()


@pytest.fixture(scope="session")
def limited_server(_processes) -> ServerProcess:
    return _processes["limited"].wait_ready()


@pytest.fixture(scope="session")
def second_server(_processes) -> ServerProcess:
    return _processes["second"].wait_ready()


@pytest.fixture(scope="session")
def offline_llm(tiny_model_dir):
    """The same model offline, for token-exact comparisons."""
    from ctxops import LLM

    return LLM(str(tiny_model_dir), kv_cache_memory=KV)
