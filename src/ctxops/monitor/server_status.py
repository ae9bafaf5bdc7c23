"""What a running ctxops server says about itself right now, read from its Prometheus ``/metrics`` over HTTP.

The dashboard shows KV cache usage and the requests running and waiting: the request log holds finished requests
only, so these come from the server itself. The monitor never imports the server; it scrapes it like any other
client (with the API key when the server has keys). A server that cannot be reached gives ``error``, not an
exception. This module knows the metric names, not the server.
"""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

GAUGES = ("kv_cache_usage_perc", "num_requests_running", "num_requests_waiting", "engine_healthy")


def server_status(base_url: str, api_key: str | None = None, timeout_s: float = 5.0) -> dict[str, Any]:
    """``{"url", gauge: value, ...}`` from ``base_url/metrics``, or ``{"url", "error"}``."""
    url = base_url.rstrip("/").removesuffix("/v1") + "/metrics"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        reply = httpx.get(url, headers=headers, timeout=timeout_s)
        reply.raise_for_status()
    except httpx.HTTPError as exc:
        return {"url": url, "error": f"{type(exc).__name__}: {exc}"}
    out: dict[str, Any] = {"url": url}
    for family in text_string_to_metric_families(reply.text):
        name = family.name.removeprefix("ctxops:")
        if name in GAUGES and family.samples:
            out[name] = float(family.samples[0].value)
    return out
