"""``POST /v1/feedback {"id": REQUEST_ID, "score": S}``: a user's score in [0, 1] of one answer, kept in the store.

The id is the answer's ``id`` (the ``x-request-id`` header). The endpoint needs a user key when keys are set,
and the request log's store (it answers 400 when the server logs nothing). The write runs in a worker thread.
The A/B analysis compares arms on these scores. This module knows one body and one row, not the analysis.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ctxops.serve.errors import APIError, bad_request
from ctxops.serve.limits import read_body
from ctxops.store import Store
from ctxops.store.feedback import save_feedback

_MAX_BODY = 4096  # bytes: an id and a number


def parse_feedback(body: bytes) -> tuple[str, float]:
    """(request id, score) from the body, or a 400 saying what is wrong."""
    try:
        raw: Any = json.loads(body)
    except ValueError as exc:
        raise bad_request(f"the body is not JSON ({exc})") from exc
    if not isinstance(raw, dict) or set(raw) != {"id", "score"}:
        raise bad_request('send {"id": "<the answer\'s id>", "score": <a number in [0, 1]>}')
    request_id, score = raw["id"], raw["score"]
    if not isinstance(request_id, str) or not request_id.strip():
        raise bad_request("id must be the answer's id (a non-empty string)", param="id")
    if (
        isinstance(score, bool)
        or not isinstance(score, int | float)
        or not (math.isfinite(score) and 0 <= score <= 1)
    ):
        raise bad_request(f"score must be a number in [0, 1], got {score!r}", param="score")
    return request_id, float(score)


async def post_feedback(request: Request, store: Store | None, key_check: Any) -> Response:
    """Handle one ``POST /v1/feedback``; ``key_check(header)`` raises a 401 for a missing or wrong user key."""
    try:
        key_check(request.headers.get("authorization"))
        if store is None:
            raise bad_request("feedback needs the request log: start the server with --db (or --request-log)")
        request_id, score = parse_feedback(await read_body(request, _MAX_BODY))
        await asyncio.to_thread(save_feedback, store, request_id, score, time.time())
    except APIError as exc:
        return exc.response()
    return JSONResponse({"id": request_id, "score": score, "object": "feedback"})
