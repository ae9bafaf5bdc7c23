"""The gateway's ``/tokenize`` and ``/detokenize``: forwarded to the upstreams in the user's order until one answers.

vLLM and ctxops serve the tokenizer routes at the server root (beside ``/v1``). A tokenizer call changes nothing
upstream, so any failure (unreachable, 5xx) moves it on to the next upstream, and none of it feeds the circuit
breakers; a 4xx is the client's mistake and goes back as the upstream worded it. It knows HTTP, not routing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from ctxops.serve.backends.http_client import HTTPClient, HTTPFailure
from ctxops.serve.config import UpstreamSpec
from ctxops.serve.errors import relayed_error, upstream_error


async def forward_tokenizer(
    client: HTTPClient,
    path: str,
    request: BaseModel,
    order: list[UpstreamSpec],
    models: dict[str, str],
    default_model: str,
    headers: Callable[[UpstreamSpec], dict[str, str]],
) -> dict[str, Any]:
    """POST ``request`` to ``{root}{path}`` of each upstream in ``order`` until one answers below 500.

    ``models`` maps an upstream URL to its own model id; the client's ``model``, then ``default_model``, stand in.
    """
    failures = []
    for upstream in order:
        body = request.model_dump(exclude_unset=True)
        body["model"] = models.get(upstream.url) or body.get("model") or default_model
        try:
            status, raw = await client.fetch(
                "POST", upstream.url.removesuffix("/v1") + path, body, headers(upstream)
            )
        except HTTPFailure as exc:
            failures.append(f"{upstream.name}: {type(exc).__name__}")
            continue
        if status >= 500:
            failures.append(f"{upstream.name}: answered {status}")
            continue
        if status >= 400:
            raise relayed_error(status, raw)
        return json.loads(raw)
    raise upstream_error("every upstream failed: " + "; ".join(failures))
