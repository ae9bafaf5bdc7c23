"""`ctxops serve --dashboard` as a real process with an API key: the dashboard beside the API shows the requests the
server just answered and its own KV cache gauge, refuses a visitor without the key, swaps `?key=` for a session
cookie that is not the key, and renders in Debian's Chromium after that one-time login."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from browser import chromium_page
from ctxops.serve.request_log import read_rows
from serve.serve_helpers import ServerProcess, tiny_args

KEY = "sk-dashboard-test"


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dash-serve")
    proc = ServerProcess(tiny_args(tiny_model_dir, "--api-key", KEY, "--dashboard"), workdir, "dash")
    proc.wait_ready()
    client = openai.OpenAI(base_url=proc.url, api_key=KEY)
    for prompt in ("one", "two words", "three words here"):
        client.completions.create(model="tiny", prompt=prompt, max_tokens=3)
    # the log is written off the request path, and the dashboard keeps its figures for --dashboard-refresh
    # seconds: wait for the three rows before anything asks it
    deadline = time.monotonic() + 20
    while len(read_rows(str(proc.log_path), "1 = 1", ())) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    yield proc
    proc.stop()


def _data(base: str, **kwargs) -> dict:
    reply = httpx.get(base + "/dashboard/data.json", timeout=30, **kwargs)
    reply.raise_for_status()
    return reply.json()


def test_the_dashboard_shows_this_servers_traffic_and_gauges(server):
    data = _data(server.base, headers={"Authorization": f"Bearer {KEY}"})
    assert data["traffic"]["requests_24h"] == 3 and data["traffic"]["errors_24h"] == 0
    assert sum(b["n"] for b in data["latency_by_prompt_length"]) == 3
    gauges = data["server"]  # scraped from this server's own /metrics with its key
    assert "error" not in gauges, gauges
    assert 0.0 <= gauges["kv_cache_usage_perc"] <= 1.0 and gauges["engine_healthy"] == 1.0
    # computed once per refresh period (30 s) and shared: drift over a large log must not run on every load
    assert _data(server.base, headers={"Authorization": f"Bearer {KEY}"})["now"] == data["now"]


def test_without_the_key_the_dashboard_is_refused(server):
    for path in ("/dashboard", "/dashboard/data.json", "/dashboard/report?run=x"):
        reply = httpx.get(server.base + path)
        assert reply.status_code == 401 and "?key=YOUR_KEY" in reply.text, path
    wrong = httpx.get(server.base + "/dashboard", params={"key": "sk-wrong"})
    assert wrong.status_code == 401 and "is not one of this server" in wrong.text
    bad_header = httpx.get(server.base + "/dashboard", headers={"Authorization": "Bearer sk-wrong"})
    assert bad_header.status_code == 401 and bad_header.json()["error"]["code"] == "invalid_api_key"
    forged = httpx.get(server.base + "/dashboard", cookies={"ctxops_session": "0" * 64})
    assert forged.status_code == 401


def test_the_key_in_the_url_becomes_a_session_cookie(server):
    with httpx.Client(base_url=server.base) as browser:
        login = browser.get("/dashboard/data.json", params={"key": KEY, "x": "1"})
        assert login.status_code == 303 and login.headers["location"] == "/dashboard/data.json?x=1"
        cookie = login.headers["set-cookie"]
        assert KEY not in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
        assert "Path=/dashboard" in cookie
        assert browser.get("/dashboard/data.json").status_code == 200  # the cookie alone now
        # the session opens the dashboard only: the API still needs the key itself
        assert browser.get("/v1/models").status_code == 401


def test_the_page_renders_after_a_one_time_login_in_chromium(server):
    with chromium_page(server.base) as seen:
        page = seen.page
        page.goto(f"{server.base}/dashboard?key={KEY}")
        assert page.url == server.base + "/dashboard"  # the key left the address bar
        assert page.title() == "ctxops dashboard"
        assert page.inner_text("#tile-requests_24h").split()[-1] == "3"
        assert "KV cache used" in page.inner_text("#server-table")
        page.reload()  # the session cookie carries the next loads (the page refreshes itself)
        assert page.title() == "ctxops dashboard"
    assert not seen.errors and not seen.external


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dashboard", "--request-log", ""], "--dashboard reads the request log"),
        (["--slo", "slo.toml"], "only apply with --dashboard"),
        (["--dashboard", "--slo", "missing.toml"], "--slo"),
    ],
)
def test_dashboard_flags_are_checked_before_anything_starts(args, message, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ctxops.cli.main import cli

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["serve", "builtin", *args])
    assert result.exit_code == 2 and message in result.output, result.output
