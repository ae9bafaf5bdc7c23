"""`ctxops monitor ui` as a real process: data.json equals the store's own figures, the page renders offline in
Debian's Chromium (Playwright, executable_path) without console errors, and eval reports open from it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from browser import chromium_page
from ctxops.store import open_store
from ctxops.store.eval_runs import import_run_dir, save_run
from ctxops.store.incidents import open_incident
from ctxops.store.requests import insert_requests
from monitor_data import traffic, write_eval_run


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")
    db, now = str(root / "s.db"), time.time()
    rows = traffic(300, now - 6 * 3600, 6 * 3600 - 60, seed=3, error_share=0.05)
    store = open_store(db)
    insert_requests(store, rows)
    write_eval_run(root / "run", "m", {1024: 1.0, 2048: 1.0, 4096: 0.3})
    (root / "run" / "report.html").write_text(
        "<!doctype html><title>ctxops eval report</title><p>the report</p>"
    )
    import_run_dir(store, root / "run")
    save_run(store, {"run_id": "canary-1", "kind": "canary", "model": "m", "created_at": now - 60, "effective_length": None,
                     "report_path": None, "summary": {"outcomes": {"a": True, "b": False, "c": True}}})  # fmt: skip
    open_incident(store, "drift:m", "drift", "traffic drifted for m: ttft_s", {}, now - 30)
    store.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ctxops", "monitor", "ui", "--db", db, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + "/dashboard/data.json", timeout=30).status_code == 200:
                break
        assert time.monotonic() < deadline and proc.poll() is None, "the dashboard did not start"
        time.sleep(0.3)
    yield base, rows
    proc.terminate()
    proc.wait(timeout=30)


def test_figures_equal_the_stores(dashboard):
    base, rows = dashboard
    data = httpx.get(base + "/dashboard/data.json", timeout=30).json()
    now = data["now"]
    assert data["traffic"]["requests_24h"] == len(rows)
    assert data["traffic"]["errors_24h"] == sum(r["status"] >= 500 for r in rows)
    assert data["traffic"]["requests_1h"] == sum(r["created_at"] >= now - 3600 for r in rows)
    assert sum(data["traffic"]["per_hour"]) == len(rows)
    ok = [r for r in rows if r["status"] < 400 and 1024 < r["prompt_tokens"] <= 4096]
    bucket = next(b for b in data["latency_by_prompt_length"] if b["bucket"] == "1K-4K")
    assert bucket["n"] == len(ok)
    assert bucket["ttft_p95"] == pytest.approx(np.percentile([r["ttft_s"] for r in ok], 95))
    assert data["beyond_effective_length"][0]["effective_length"] == 2048
    assert [c["correct"] for c in data["canaries"]] == [2]
    assert [i["title"] for i in data["incidents"]] == ["traffic drifted for m: ttft_s"]
    assert len(data["drift"]["metrics"]) == 11
    assert httpx.get(base + "/dashboard/report", params={"run": "/etc/passwd"}).status_code == 404


def test_the_page_renders_offline_in_chromium(dashboard):
    base, rows = dashboard
    with chromium_page(base) as seen:
        page = seen.page
        page.goto(base + "/dashboard")
        assert page.title() == "ctxops dashboard"
        assert page.inner_text("#tile-requests_24h").split()[-1] == str(len(rows))
        box = page.locator("#chart-traffic svg").bounding_box()
        assert box and box["width"] > 300 and box["height"] > 80
        assert (
            page.locator("#drift-table tr").count() == 12 and page.locator("#incident-table tr").count() == 2
        )
        page.click("#eval-table a")
        assert "the report" in page.inner_text("body")
    assert not seen.errors and not seen.external
