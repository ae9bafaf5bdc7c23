"""The dashboard's figures, computed from the store at one instant (the page and ``data.json`` both show these).

Traffic and errors over the last hour and day, requests per hour, the server's KV cache usage (when given one), TTFT and end-to-end percentiles by prompt-length
bucket, requests the guard blocked or redacted over the day, the share of traffic beyond each model's effective
length, drift (the last hour against the week before), SLO attainment and burn (when an SLO file is given), canary history, open incidents and recent eval runs. This
module knows the store and the checks, not HTML.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import sqlalchemy as sa

from ctxops.monitor.drift import DriftConfig, detect_drift
from ctxops.monitor.effective_length import beyond_effective_length
from ctxops.monitor.runner import json_safe
from ctxops.monitor.slo import evaluate_slos
from ctxops.monitor.slo_config import SLOConfig
from ctxops.monitor.windows import Window
from ctxops.store import Store
from ctxops.store.eval_runs import recent_runs
from ctxops.store.incidents import list_incidents
from ctxops.store.requests import count_values, read_floats, window_filter
from ctxops.store.schema import eval_runs, requests

BUCKETS = ((0, 1024, "<=1K"), (1024, 4096, "1K-4K"), (4096, 16384, "4K-16K"), (16384, 65536, "16K-64K"),
           (65536, math.inf, ">64K"))  # fmt: skip
_HOUR, _DAY = 3600.0, 86400.0
# a server's gauges now, e.g. functools.partial(server_status, url, key) (server_status.py)
ServerStatus = Callable[[], dict[str, Any]]


def _pct(values: np.ndarray, p: float) -> float | None:
    return float(np.percentile(values, p)) if values.size else None


def traffic(store: Store, now: float) -> dict[str, Any]:
    """Requests and 5xx over the last hour and day, requests per hour over the day (oldest first), guard counts.

    The guard counts are the requests of the day whose strongest guard action was ``block`` or ``redact``.
    """
    day = read_floats(store, ("created_at", "status"), window_filter(now - _DAY, now))
    guard = count_values(store, ("guard_action",), window_filter(now - _DAY, now))["guard_action"]
    created, status = day["created_at"], day["status"]
    last_hour = created >= now - _HOUR
    hourly = np.histogram(created, bins=24, range=(now - _DAY, now))[0] if created.size else np.zeros(24, int)
    return {
        "requests_1h": int(last_hour.sum()), "errors_1h": int((status[last_hour] >= 500).sum()),
        "requests_24h": int(created.size), "errors_24h": int((status >= 500).sum()),
        "per_hour": [int(n) for n in hourly],
        "guard_blocked_24h": guard.get("block", 0), "guard_redacted_24h": guard.get("redact", 0),
    }  # fmt: skip


def latency_by_bucket(store: Store, now: float) -> list[dict[str, Any]]:
    """TTFT and end-to-end p50/p95 of answered generation requests over the last day, per prompt-length bucket."""
    where = sa.and_(
        window_filter(now - _DAY, now), requests.c.status < 400, requests.c.prompt_tokens.is_not(None)
    )
    columns = read_floats(store, ("prompt_tokens", "ttft_s", "e2e_s"), where)
    out = []
    for low, high, label in BUCKETS:
        mask = (
            (columns["prompt_tokens"] > low) & (columns["prompt_tokens"] <= high)
            if columns["prompt_tokens"].size
            else np.zeros(0, bool)
        )
        ttft, e2e = columns["ttft_s"][mask], columns["e2e_s"][mask]
        ttft, e2e = ttft[~np.isnan(ttft)], e2e[~np.isnan(e2e)]
        out.append({"bucket": label, "n": int(mask.sum()), "ttft_p50": _pct(ttft, 50), "ttft_p95": _pct(ttft, 95),
                    "e2e_p50": _pct(e2e, 50), "e2e_p95": _pct(e2e, 95)})  # fmt: skip
    return out


def canary_history(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """The newest canary runs with their share of correct samples."""
    query = (
        sa.select(eval_runs)
        .where(eval_runs.c.kind == "canary")
        .order_by(eval_runs.c.created_at.desc())
        .limit(limit)
    )
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    out = []
    for r in rows:
        outcomes = (r["summary"] or {}).get("outcomes") or {}
        correct = sum(bool(v) for v in outcomes.values())
        out.append({"run_id": r["run_id"], "model": r["model"], "created_at": r["created_at"], "samples": len(outcomes),
                    "correct": correct})  # fmt: skip
    return out


def dashboard_data(
    store: Store, now: float, slo: SLOConfig | None = None, server: ServerStatus | None = None
) -> dict[str, Any]:
    """Every figure the dashboard shows, as JSON-ready data (``server``: reads a ctxops server's gauges now)."""
    reference, current = Window(now - 7 * _DAY, now - _HOUR, "7d..1h"), Window(now - _HOUR, now, "1h..")
    drift = detect_drift(store, reference, current, DriftConfig())
    data = {
        "now": now,
        "traffic": traffic(store, now),
        "latency_by_prompt_length": latency_by_bucket(store, now),
        "beyond_effective_length": [
            b.to_dict() for b in beyond_effective_length(store, reference, current, 0.05)
        ],
        "drift": {
            "reference": reference.text,
            "current": current.text,
            "metrics": [m.to_dict() for m in drift],
        },
        "slo": [s.to_dict() for s in evaluate_slos(store, slo, now)] if slo else None,
        "canaries": canary_history(store),
        "incidents": list_incidents(store, live_only=True),
        "eval_runs": [r for r in recent_runs(store) if r["kind"] == "eval"],
        "server": server() if server else None,
    }
    return json_safe(data)
