"""The live gauges the dashboard scrapes from a ctxops server's /metrics: read from a real server, or an error."""

from __future__ import annotations

import socket

import pytest

from ctxops.monitor.dashboard import render
from ctxops.monitor.server_status import server_status


def test_an_unreachable_server_is_an_error_not_an_exception():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    status = server_status(f"http://127.0.0.1:{port}/v1", timeout_s=2)
    assert status["url"] == f"http://127.0.0.1:{port}/metrics" and "ConnectError" in status["error"]


@pytest.mark.slow  # starts a server
def test_a_real_servers_gauges(tiny_model_dir, tmp_path):
    from serve.serve_helpers import ServerProcess, tiny_args

    server = ServerProcess(tiny_args(tiny_model_dir, "--api-key", "sk-dash"), tmp_path, "gauges").wait_ready()
    try:
        refused = server_status(server.url)
        status = server_status(server.url, api_key="sk-dash")
    finally:
        server.stop()
    assert "401" in refused["error"]
    assert status["kv_cache_usage_perc"] == 0.0 and status["num_requests_running"] == 0.0
    assert status["engine_healthy"] == 1.0
    data = {"server": status}
    assert 'id="server-table"' in render_server(data)


def render_server(data: dict) -> str:
    page = render(
        {"now": 0.0, "traffic": {"requests_1h": 0, "errors_1h": 0, "requests_24h": 0, "errors_24h": 0,
                                 "per_hour": [0] * 24},
         "latency_by_prompt_length": [], "beyond_effective_length": [], "drift": {"reference": "r", "current": "c",
         "metrics": []}, "slo": None, "canaries": [], "incidents": [], "eval_runs": [], **data},
        refresh_s=30,
    )  # fmt: skip
    return page
