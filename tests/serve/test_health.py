"""``/health`` tells the truth: 503 ``failed`` the moment the engine dies, with metrics that say so.

An in-process server (the real app, the real embedded engine, its lifespan run by Starlette's TestClient) whose
scheduler is made to fail; the process-level exit is covered by ``test_faults.py``.
"""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from ctxops.engine.config import EngineConfig
from ctxops.engine.scheduler import Scheduler
from ctxops.serve.app import Server
from ctxops.serve.backends.embedded import EmbeddedBackend
from ctxops.serve.config import ServerConfig


def _metrics(client: TestClient) -> dict[str, float]:
    out = {}
    for line in client.get("/metrics").text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key.split("{")[0]] = float(value)
    return out


def test_health_and_metrics_turn_at_once_when_the_engine_dies(tiny_model_dir, monkeypatch):
    fatal: list[BaseException] = []
    backend = EmbeddedBackend(EngineConfig(model=str(tiny_model_dir), kv_cache_memory="32MiB"), "tiny")
    server = Server(ServerConfig(request_log=None), backend, on_fatal=fatal.append)
    with TestClient(server.app) as client:
        while client.get("/health").status_code != 200:  # the model loads in a worker thread
            pass
        assert _metrics(client)["ctxops:engine_healthy"] == 1.0

        def advance(self, scheduled):
            raise AssertionError("injected: scheduler state corrupt")

        monkeypatch.setattr(Scheduler, "advance", advance)
        body = {"model": "tiny", "prompt": "hello", "max_tokens": 8}
        dead = client.post("/v1/completions", json=body)  # a 500, never a 503 that invites a replay elsewhere
        assert dead.status_code == 500 and dead.json()["error"]["code"] == "engine_failed"
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "failed"
        assert "scheduler state corrupt" in health.json()["error"]
        values = _metrics(client)
        assert values["ctxops:engine_healthy"] == 0.0
        assert values["ctxops:num_requests_running"] == 0.0 and values["ctxops:kv_cache_usage_perc"] == 0.0
        monkeypatch.undo()  # even a healthy scheduler cannot bring a dead engine back: everything is refused
        again = client.post("/v1/completions", json=body)
        assert again.status_code == 503 and again.json()["error"]["code"] == "failed"
        assert len(fatal) == 1  # the runner was told once, to drain and exit 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("seed", 2**64, "less than or equal to 9223372036854775807"),
        ("temperature", 1e9, "less than or equal to 2"),
        ("top_p", 0, "greater than 0"),
    ],
)
def test_out_of_range_sampling_values_are_400_before_the_engine(tiny_model_dir, field, value, message):
    backend = EmbeddedBackend(EngineConfig(model=str(tiny_model_dir), kv_cache_memory="32MiB"), "tiny")
    with TestClient(Server(ServerConfig(request_log=None), backend).app) as client:
        while client.get("/health").status_code != 200:
            pass
        reply = client.post(
            "/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 2, field: value}
        )
        assert reply.status_code == 400 and reply.json()["error"]["param"] == field
        assert message in reply.json()["error"]["message"]
        for literal in ("Infinity", "NaN", "-Infinity"):  # Python's json accepts these; JSON does not
            raw = '{"model": "tiny", "prompt": "hi", "temperature": ' + literal + "}"
            bad = client.post("/v1/completions", content=raw, headers={"content-type": "application/json"})
            assert (
                bad.status_code == 400 and f"{literal} is not a JSON number" in bad.json()["error"]["message"]
            )
        assert (
            client.post(
                "/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 2}
            ).status_code
            == 200
        )


def test_a_bad_request_repeated_is_a_400_every_time_and_the_server_stays_up(tiny_model_dir):
    """An out-of-vocabulary stop token with min_tokens was a 500 from the engine; three in a row took it down."""
    backend = EmbeddedBackend(EngineConfig(model=str(tiny_model_dir), kv_cache_memory="32MiB"), "tiny")
    with TestClient(Server(ServerConfig(request_log=None), backend).app) as client:
        while client.get("/health").status_code != 200:
            pass
        vocab = backend.llm.engine.model_config.vocab_size
        body = {"model": "tiny", "prompt": "hi", "max_tokens": 4, "min_tokens": 2, "stop_token_ids": [vocab]}
        for _ in range(8):
            reply = client.post("/v1/completions", json=body)
            assert reply.status_code == 400 and reply.json()["error"]["param"] == "stop_token_ids"
        assert client.get("/health").status_code == 200
        ok = client.post("/v1/completions", json={**body, "stop_token_ids": [vocab - 1]})
        assert ok.status_code == 200
