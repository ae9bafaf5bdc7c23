"""When the gateway moves a request to its next arm, and the prompt count the length policy routes by.

Under ``length`` a request moves on when the arm's context is too small (``context_length_exceeded``); under
``fallback`` also on a 5xx or a timeout before the first byte (the request may have run there: that policy trades
the weighted gateway's no-replay rule for availability). An unreachable or refusing (429/503) upstream moves a
request on under every policy. The prompt is counted by an upstream's ``/tokenize`` (vLLM and ctxops serve it).
This module knows error codes and one HTTP call, not the routes.
"""

from __future__ import annotations

import json
from typing import Any

from ctxops.serve.backends.http_client import HTTPClient, HTTPFailure
from ctxops.serve.config import UpstreamSpec
from ctxops.serve.errors import APIError
from ctxops.serve.routes import Policy


def falls_back(error: APIError, policy: Policy | None) -> bool:
    """Whether a failure before the first byte moves the request to the next arm under ``policy``.

    ``length`` moves on when the arm's context is too small; ``fallback`` also on a 5xx or a timeout (the request
    may have run there: that policy trades the no-replay rule of the weighted gateway for availability).
    """
    if policy not in (Policy.LENGTH, Policy.FALLBACK):
        return False
    if error.code == "context_length_exceeded":
        return True
    return policy is Policy.FALLBACK and error.status >= 500


def failure_kind(error: APIError) -> str:
    """The short name of a failure that moved a request on, as ``route_reason`` logs it (fallback:<kind>)."""
    if error.code == "context_length_exceeded":
        return "context_length_exceeded"
    return "timeout" if error.status == 504 else f"{error.status}"


async def count_prompt(
    client: HTTPClient,
    request: Any,
    upstream: UpstreamSpec,
    model: str | None,
    headers: dict[str, str],
) -> int | None:
    """The prompt's tokens, counted by ``upstream``'s ``/tokenize`` (None when it cannot say)."""
    messages = getattr(request, "messages", None)
    if messages is not None:
        body: dict[str, Any] = {"messages": [m.model_dump(exclude_none=True) for m in messages]}
    elif isinstance(getattr(request, "prompt", None), str):
        body = {"prompt": request.prompt}
    else:
        return None
    body["model"] = model
    try:
        url = upstream.url.removesuffix("/v1") + "/tokenize"
        status, raw = await client.fetch("POST", url, body, headers, timeout=5.0)
        return int(json.loads(raw)["count"]) if status == 200 else None
    except (HTTPFailure, ValueError, KeyError, TypeError):
        return None
