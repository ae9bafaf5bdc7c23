"""The dashboard: one self-contained HTML page (no scripts, no CDN; it reloads itself) and its figures as JSON.

``GET /dashboard`` renders :func:`~ctxops.monitor.dashboard_data.dashboard_data` as tables plus an inline SVG chart
of requests per hour; ``GET /dashboard/data.json`` returns the same figures; ``GET /dashboard/report?run=RUN_ID``
serves the report.html of an eval run recorded in the store (only those). This module knows HTML, not statistics.
"""

from __future__ import annotations

import html
import io
import math
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.routing import BaseRoute

from ctxops.monitor.dashboard_data import ServerStatus, dashboard_data
from ctxops.monitor.slo_config import SLOConfig
from ctxops.store import Store
from ctxops.store.eval_runs import get_run

_STYLE = """body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}h1{font-size:20px}
h2{font-size:16px;margin-top:28px}table{border-collapse:collapse;margin:6px 0}th,td{padding:3px 10px;
border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}.bad{color:#b00020;
font-weight:600}.muted{color:#777}.tiles{display:flex;gap:24px}.tile{border:1px solid #ddd;padding:8px 14px}
.tile b{display:block;font-size:22px}"""


def _fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    return format(value, spec) if isinstance(value, float) else html.escape(str(value))


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], table_id: str) -> str:
    if not rows:
        return f'<p class="muted" id="{table_id}">none</p>'
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = "".join("<tr>" + "".join(f"<td>{row.get(key) if key.endswith('_html') else _fmt(row.get(key))}</td>"
                                    for key, _ in columns) + "</tr>" for row in rows)  # fmt: skip
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'


def _when(seconds: float | None) -> str:
    return "-" if seconds is None else datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _chart(per_hour: list[int]) -> str:
    """Requests per hour over the last day as an inline SVG (matplotlib, text kept as text)."""
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 2.2))
    axes.bar(range(-len(per_hour), 0), per_hour, width=0.9, color="#4c72b0")
    axes.set_xlabel("hours ago")
    axes.set_ylabel("requests")
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _server(status: dict[str, Any] | None) -> str:
    if status is None:
        return '<p class="muted">no server given (--server URL)</p>'
    if "error" in status:
        return f'<p class="bad" id="server-error">{html.escape(status["url"])}: {html.escape(status["error"])}</p>'
    kv = status.get("kv_cache_usage_perc")
    row = {**status, "kv": None if kv is None else f"{kv:.1%}"}
    return _table([row], [("url", "metrics"), ("kv", "KV cache used"), ("num_requests_running", "running"),
                          ("num_requests_waiting", "waiting"), ("engine_healthy", "healthy")], "server-table")  # fmt: skip


def render(data: dict[str, Any], refresh_s: int) -> str:
    """The page for ``data``."""
    t = data["traffic"]
    tiles = "".join(f'<div class="tile" id="tile-{key}">{label}<b>{t[key]}</b></div>' for key, label in (
        ("requests_1h", "requests, last hour"), ("errors_1h", "5xx, last hour"), ("requests_24h", "requests, 24 h"),
        ("errors_24h", "5xx, 24 h"), ("guard_blocked_24h", "guard blocked, 24 h"),
        ("guard_redacted_24h", "guard redacted, 24 h")))  # fmt: skip
    drift = [dict(m, verdict="insufficient data" if m["drift"] is None else ("DRIFT" if m["drift"] else "ok"))
             for m in data["drift"]["metrics"]]  # fmt: skip
    runs = [dict(r, created=_when(r["created_at"]), report_html=(
        f'<a href="/dashboard/report?run={quote(r["run_id"], safe="")}">report</a>' if r["report_path"] else "-"))
        for r in data["eval_runs"]]  # fmt: skip
    canaries = [dict(c, created=_when(c["created_at"])) for c in data["canaries"]]
    incidents = [dict(i, opened=_when(i["opened_at"])) for i in data["incidents"]]
    slo = _table(data["slo"], [("name", "objective"), ("target", "target"), ("attainment", "attainment"),
                               ("error_budget_left", "budget left"), ("status", "status")], "slo-table") \
        if data["slo"] is not None else '<p class="muted">no SLO file given (--slo)</p>'  # fmt: skip
    sections = [
        f"<h2>Traffic</h2><div class=tiles>{tiles}</div><div id=chart-traffic>{_chart(t['per_hour'])}</div>",
        "<h2>Server now</h2>" + _server(data["server"]),
        "<h2>Latency by prompt length (last 24 h, seconds)</h2>"
        + _table(
            data["latency_by_prompt_length"],
            [
                ("bucket", "prompt tokens"),
                ("n", "requests"),
                ("ttft_p50", "TTFT p50"),
                ("ttft_p95", "TTFT p95"),
                ("e2e_p50", "e2e p50"),
                ("e2e_p95", "e2e p95"),
            ],
            "latency-table",
        ),  # fmt: skip
        "<h2>Beyond effective context length (last hour)</h2>"
        + _table(
            data["beyond_effective_length"],
            [
                ("model", "model"),
                ("effective_length", "effective length"),
                ("share_current", "share"),
                ("n_current", "requests"),
                ("alert", "alert"),
                ("note", "note"),
            ],
            "beyond-table",
        ),  # fmt: skip
        f"<h2>Drift ({data['drift']['current']} vs {data['drift']['reference']})</h2>"
        + _table(
            drift,
            [
                ("name", "metric"),
                ("test", "test"),
                ("p_adjusted", "p (BH)"),
                ("effect", "effect"),
                ("n_reference", "n ref"),
                ("n_current", "n cur"),
                ("verdict", "verdict"),
            ],
            "drift-table",
        ),  # fmt: skip
        "<h2>SLOs</h2>" + slo,
        "<h2>Canaries</h2>"
        + _table(
            canaries,
            [("created", "run"), ("model", "model"), ("correct", "correct"), ("samples", "samples")],
            "canary-table",
        ),  # fmt: skip
        "<h2>Open incidents</h2>"
        + _table(
            incidents,
            [("id", "#"), ("state", "state"), ("opened", "opened"), ("title", "title")],
            "incident-table",
        ),  # fmt: skip
        "<h2>Recent eval runs</h2>"
        + _table(
            runs,
            [
                ("created", "finished"),
                ("model", "model"),
                ("effective_length", "effective length"),
                ("report_html", "report"),
            ],
            "eval-table",
        ),  # fmt: skip
    ]
    return (f'<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="{refresh_s}">'
            f"<title>ctxops dashboard</title><style>{_STYLE}</style></head><body><h1>ctxops dashboard</h1>"
            f'<p class="muted">as of {_when(data["now"])}; refreshes every {refresh_s} s</p>{"".join(sections)}'
            "</body></html>")  # fmt: skip


def dashboard_routes(
    store: Store,
    slo: SLOConfig | None = None,
    refresh_s: int = 30,
    server: ServerStatus | None = None,
) -> list[BaseRoute]:
    """The dashboard's routes over ``store`` (and ``server``: what a ctxops server says of its KV cache now).

    The figures (drift over a week of log among them: seconds on a large log) are computed at most once per
    ``refresh_s`` and shared by the page, ``data.json`` and every open tab: inside ``ctxops serve`` they run beside
    the requests being served.
    """
    router = APIRouter()
    lock, cached = threading.Lock(), {"at": -math.inf, "data": None}

    def figures() -> dict[str, Any]:
        with lock:  # one computation at a time; callers arriving meanwhile get its result
            now = time.time()
            if now - cached["at"] >= refresh_s:
                cached["data"], cached["at"] = dashboard_data(store, now, slo, server), now
            return cached["data"]

    @router.get("/dashboard")
    def page() -> HTMLResponse:
        return HTMLResponse(render(figures(), refresh_s))

    @router.get("/dashboard/data.json")
    def data() -> JSONResponse:
        return JSONResponse(figures())

    @router.get("/dashboard/report")
    def report(run: str) -> FileResponse:
        row = get_run(store, run)
        if row is None or not row["report_path"] or not Path(row["report_path"]).is_file():
            raise HTTPException(404, f"no report for run {run!r} in the store")
        return FileResponse(row["report_path"], media_type="text/html")

    return list(router.routes)


def build_dashboard(
    store: Store,
    slo: SLOConfig | None = None,
    refresh_s: int = 30,
    server: ServerStatus | None = None,
) -> FastAPI:
    """A FastAPI app serving only the dashboard (``ctxops monitor ui``).

    ``ctxops serve --dashboard`` mounts the same routes beside its API instead.
    """
    app = FastAPI(title="ctxops dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.router.routes.extend(dashboard_routes(store, slo, refresh_s, server))
    return app
