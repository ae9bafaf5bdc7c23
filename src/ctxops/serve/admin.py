"""The gateway's admin API: ``GET /admin/routes`` and ``PUT /admin/routes``, and the SIGHUP reload of the file.

Both routes need the admin key (``--admin-key``; it must differ from every user key, so a user key never changes
routes). ``PUT`` takes the routes as JSON (the shape ``GET`` returns) or ``{"weights": {ARM: W}}`` to change
only weights. Routes are checked whole before they replace the running ones: any error answers 400 with what
is wrong, and the routes in force stay as they were. A new upstream is asked for its model id before the swap.
SIGHUP rereads the routes file the gateway started with, under the same rule. Requests already routed keep their
arm, so a reload never cuts a stream. This module knows HTTP bodies and routes, not how a request is forwarded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ctxops.serve.auth import KeyStore
from ctxops.serve.backends.upstream import UpstreamBackend
from ctxops.serve.errors import APIError, bad_request, unauthorized
from ctxops.serve.limits import read_body
from ctxops.serve.routes import Routes, RoutesError

logger = logging.getLogger("ctxops.serve")
_MAX_BODY = 1 << 20  # a routes body is small; 1 MiB is generous


class RoutesAdmin:
    """Reads and replaces the gateway's routes on behalf of an operator holding the admin key."""

    def __init__(self, backend: UpstreamBackend, admin_key: str | None, routes_file: str | None) -> None:
        assert backend.router is not None
        self.backend = backend
        self.router = backend.router
        self.keys = KeyStore([admin_key] if admin_key else [])
        self.routes_file = routes_file

    def _check_key(self, request: Request) -> None:
        if not self.keys.enabled:
            raise APIError(403, "the admin API is off: start the gateway with --admin-key (or CTXOPS_ADMIN_KEY)",
                           code="admin_disabled")  # fmt: skip
        try:
            self.keys.check(request.headers.get("authorization"))
        except APIError as exc:
            raise unauthorized(
                f"admin API: {exc.message} (this needs the admin key, not a user key)"
            ) from exc

    async def get(self, request: Request) -> Response:
        """``GET /admin/routes``: the routes in force, with looked-up effective lengths."""
        try:
            self._check_key(request)
        except APIError as exc:
            return exc.response()
        return JSONResponse(self.router.routes.to_dict())

    async def put(self, request: Request) -> Response:
        """``PUT /admin/routes``: replace the routes (or only weights); 400 and no change on any error."""
        try:
            self._check_key(request)
            raw = _json(await read_body(request, _MAX_BODY))
            routes = self._parse(raw)
        except APIError as exc:
            return exc.response()
        await self.backend.discover([a.upstream for a in routes.models[self.router.model].arms])
        self.router.swap(routes)
        return JSONResponse(self.router.routes.to_dict())

    def _parse(self, raw: Any) -> Routes:
        try:
            if isinstance(raw, dict) and set(raw) == {"weights"}:
                if not isinstance(raw["weights"], dict):
                    raise RoutesError('"weights" must map arm names to numbers')
                current = self.router.current
                changed = current.with_weights({k: _number(k, v) for k, v in raw["weights"].items()})
                return Routes({**self.router.routes.models, self.router.model: changed})
            return Routes.from_dict(raw, self.router.model)
        except RoutesError as exc:
            raise bad_request(f"routes not changed: {exc}", code="invalid_routes") from exc

    async def reload_file(self) -> None:
        """SIGHUP: reread the routes file; a bad file is logged and the routes in force stay."""
        if self.routes_file is None:
            logger.warning("SIGHUP: the gateway was started without --routes; nothing to reload")
            return
        try:
            routes = Routes.from_file(self.routes_file, self.router.model)
        except RoutesError as exc:
            logger.error("SIGHUP: routes not changed: %s", exc)
            return
        await self.backend.discover([a.upstream for a in routes.models[self.router.model].arms])
        self.router.swap(routes)
        logger.info("SIGHUP: routes reloaded from %s", Path(self.routes_file))


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise bad_request(f"routes not changed: the body is not JSON ({exc})", code="invalid_routes") from exc


def _number(arm: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RoutesError(f"weight of arm {arm} must be a number, got {value!r}")
    return float(value)
